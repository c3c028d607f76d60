package router

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// clientKey is the per-IP limit's key for a request from peer with the
// given header lines (name, value, name, value, …), each added as its own
// line.
func clientKey(t *testing.T, rl RateLimits, peer string, header ...string) string {
	t.Helper()
	s, err := New(Config{RateLimits: rl}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var req fasthttp.Request
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer), Port: 40000}, nil)
	return s.clientIP(&ctx)
}

func TestClientIPReadsForwardedForFromTheRight(t *testing.T) {
	rl := RateLimits{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	const xff = "X-Forwarded-For"
	for _, tc := range []struct {
		name, peer string
		header     []string
		want       string
	}{
		{"untrusted peer: headers ignored", "203.0.113.5", []string{xff, "198.51.100.1", "Fly-Client-IP", "198.51.100.2"}, "203.0.113.5"},
		{"no header", "10.0.0.1", nil, "10.0.0.1"},
		{"one hop", "10.0.0.1", []string{xff, "203.0.113.9"}, "203.0.113.9"},
		{"spoofed leftmost entries", "10.0.0.1", []string{xff, "198.51.100.1, 198.51.100.2, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops skipped", "10.0.0.1", []string{xff, "198.51.100.1, 203.0.113.9, 10.0.0.3, 10.0.0.2"}, "203.0.113.9"},
		{"every line, in order", "10.0.0.1", []string{xff, "198.51.100.1, 198.51.100.7", xff, "203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"a spoofed line before the proxy's", "10.0.0.1", []string{xff, "198.51.100.1", xff, "203.0.113.9"}, "203.0.113.9"},
		{"only trusted hops: the leftmost", "10.0.0.1", []string{xff, "10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"with a port", "10.0.0.1", []string{xff, "198.51.100.1, 203.0.113.9:4711"}, "203.0.113.9"},
		{"unparsable rightmost: the proxy", "10.0.0.1", []string{xff, "203.0.113.9, garbage"}, "10.0.0.1"},
		{"unparsable past a trusted hop: that hop", "10.0.0.1", []string{xff, "203.0.113.9, unknown, 10.0.0.2"}, "10.0.0.2"},
		{"empty entry", "10.0.0.1", []string{xff, "203.0.113.9,"}, "10.0.0.1"},
		{"zone", "10.0.0.1", []string{xff, "fe80::1%eth0"}, "10.0.0.1"},
		// Off Fly a proxy passes the caller's own Fly-Client-IP through.
		{"Fly-Client-IP off Fly ignored, even from a trusted proxy", "10.0.0.1", []string{"Fly-Client-IP", "203.0.113.7", xff, "198.51.100.1"}, "198.51.100.1"},
		{"unparsable Fly-Client-IP ignored", "10.0.0.1", []string{"Fly-Client-IP", "203.0.113.7x", xff, "198.51.100.1"}, "198.51.100.1"},
		{"mapped peer", "::ffff:203.0.113.5", nil, "203.0.113.5"},
	} {
		if got := clientKey(t, rl, tc.peer, tc.header...); got != tc.want {
			t.Errorf("%s: peer %s, %q → %s; want %s", tc.name, tc.peer, tc.header, got, tc.want)
		}
	}
}

// On Fly (EdgeHeader set) every peer is Fly's proxy, whose address is not
// known in advance: its Fly-Client-IP is the caller, from any peer.
func TestClientIPBelievesTheEdgeHeader(t *testing.T) {
	rl := RateLimits{EdgeHeader: "Fly-Client-IP"}
	if got := clientKey(t, rl, "172.16.5.2", "Fly-Client-IP", "203.0.113.7", "X-Forwarded-For", "198.51.100.1"); got != "203.0.113.7" {
		t.Errorf("on Fly: %s; want the Fly-Client-IP 203.0.113.7", got)
	}
	if got := clientKey(t, rl, "172.16.5.2", "Fly-Client-IP", "not an address", "X-Forwarded-For", "198.51.100.1"); got != "172.16.5.2" {
		t.Errorf("on Fly with an unparsable Fly-Client-IP: %s; want the peer", got)
	}
	if got := clientKey(t, RateLimits{}, "172.16.5.2", "Fly-Client-IP", "203.0.113.7"); got != "172.16.5.2" {
		t.Errorf("off Fly, untrusted peer: %s; want the peer", got)
	}
}

// One host owns a whole /64: per-address buckets would be no limit.
func TestClientIPGroupsIPv6ByPrefix(t *testing.T) {
	edge := func(bits int, addr string) string {
		return clientKey(t, RateLimits{EdgeHeader: "Fly-Client-IP", IPv6Prefix: bits}, "10.0.0.1", "Fly-Client-IP", addr)
	}
	a, b, other := edge(0, "2001:db8:1:2::1"), edge(0, "2001:db8:1:2:ffff:ee:dd:9"), edge(0, "2001:db8:1:3::1")
	if a != b || a != "2001:db8:1:2::/64" {
		t.Errorf("one /64: %s and %s; want both 2001:db8:1:2::/64", a, b)
	}
	if other == a {
		t.Errorf("another /64 shares the bucket %s", a)
	}
	if got := clientKey(t, RateLimits{IPv6Prefix: 0}, "2001:db8:1:2::5"); got != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 peer: %s; want its /64", got)
	}
	if edge(48, "2001:db8:1:2::1") != edge(48, "2001:db8:1:3::1") {
		t.Error("IPv6Prefix 48: two /64s of one /48 differ")
	}
	if edge(128, "2001:db8:1:2::1") == edge(128, "2001:db8:1:2::2") {
		t.Error("IPv6Prefix 128: two addresses share a bucket")
	}
	if got := edge(0, "203.0.113.7"); got != "203.0.113.7" {
		t.Errorf("IPv4: %s; want the address", got)
	}
}
