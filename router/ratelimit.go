package router

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// RateLimits bound registrations and unregistrations, the public, unsigned
// endpoints. Sends are signed by the relay and bounded by MaxInFlightSends
// instead. A zero limit turns that limit off.
type RateLimits struct {
	// PerIP is how many register/unregister calls one client address may
	// make per Window (RATE_LIMIT_PER_IP).
	PerIP int
	// PerClient is how many one client id may get per Window
	// (RATE_LIMIT_PER_CLIENT).
	PerClient int
	// Window is the fixed window both count in (RATE_LIMIT_WINDOW).
	Window time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For / Fly-Client-IP
	// is believed (TRUSTED_PROXIES). From any other peer those headers are
	// ignored: a client could write anything in them.
	TrustedProxies []netip.Prefix
	// EdgeHeader names a header that the platform's edge proxy overwrites
	// on every request with the address it accepted the connection from
	// (Fly-Client-IP on Fly; main sets it when FLY_APP_NAME is set). It is
	// believed from any peer: on such a platform every peer is the proxy,
	// and its addresses are not known in advance. Empty: none.
	EdgeHeader string
	// IPv6Prefix is how many leading bits of an IPv6 caller's address the
	// per-IP limit counts (RATE_LIMIT_IPV6_PREFIX, 48..128; 0 means 64):
	// one host is routinely given a whole /64, so per-address buckets
	// would let it pick a fresh address for every call.
	IPv6Prefix int
}

// clientIP is the address the limits count (see clientAddr), IPv6 callers
// reduced to their IPv6Prefix.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) string {
	a := s.clientAddr(ctx)
	if bits := s.cfg.RateLimits.IPv6Prefix; a.Is6() && bits < 128 {
		p, err := a.Prefix(bits)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// clientAddr is the caller's address: the edge proxy's header where the
// platform has one; else, from a trusted proxy, the rightmost
// X-Forwarded-For address that is not itself a trusted proxy;
// else the peer. X-Forwarded-For is read from the right because each proxy
// appends the address it accepted the connection from: the entries left of
// the first untrusted one are whatever the caller chose to write.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	rl := &s.cfg.RateLimits
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	if rl.EdgeHeader != "" {
		if a, ok := parseAddr(ctx.Request.Header.Peek(rl.EdgeHeader)); ok {
			return a
		}
	}
	if !rl.trusted(peer) {
		return peer
	}
	// Fly-Client-IP is not read here: a proxy other than Fly's passes a
	// caller's own Fly-Client-IP through untouched, so believing it would
	// let every caller pick a fresh bucket per request.
	// Every X-Forwarded-For line counts, in order, as one list (RFC 9110
	// §5.3). Walking left stops at the first address a trusted proxy did
	// not vouch for; an entry that does not parse stops it too, at the
	// last trusted hop: what lies left of it cannot be attributed to
	// anyone we trust.
	caller := peer
	lines := ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for {
			j := bytes.LastIndexByte(rest, ',')
			a, ok := parseAddr(rest[j+1:])
			if !ok {
				return caller
			}
			if !rl.trusted(a) {
				return a
			}
			caller = a
			if j < 0 {
				break
			}
			rest = rest[:j]
		}
	}
	return caller
}

// trusted reports whether a is one of the TrustedProxies.
func (rl *RateLimits) trusted(a netip.Addr) bool {
	for _, p := range rl.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr reads one forwarded address: an IP, optionally with a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies write it.
func parseAddr(v []byte) (netip.Addr, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(v))
	if err != nil {
		ap, perr := netip.ParseAddrPort(string(v))
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		// A zone names an interface of the proxy's host, not a caller.
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// rateLimit counts one call for the caller's address and for the client id
// (scoped to the tenant) and refuses it with 429 and Retry-After past a
// limit. A limiter that cannot be reached does not block registrations:
// the store error would follow anyway.
func (s *Server) rateLimit(ctx *fasthttp.RequestCtx, tenant, clientID string) error {
	rl := s.cfg.RateLimits
	if s.deps.Limiter == nil || rl.Window <= 0 {
		return nil
	}
	check := func(key string, limit int) error {
		if limit <= 0 {
			return nil
		}
		ok, retry, err := s.deps.Limiter.Allow(context.Background(), key, limit, rl.Window)
		if err != nil || ok {
			return nil
		}
		secs := int((retry + time.Second - 1) / time.Second)
		if secs < 1 {
			secs = 1
		}
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(secs))
		rateLimited.Inc()
		return refused(errRateLimited, "too many requests; retry after "+strconv.Itoa(secs)+" s")
	}
	if err := check("ip/"+s.clientIP(ctx), rl.PerIP); err != nil {
		return err
	}
	return check("client/"+tenant+"/"+clientID, rl.PerClient)
}

// ParseTrustedProxies reads TRUSTED_PROXIES: comma-separated addresses or
// CIDR prefixes.
func ParseTrustedProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
