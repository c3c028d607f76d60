package router

import (
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
}

// clientIP is the address the limits count: the peer, or the first hop a
// trusted proxy reports.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) string {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	trusted := false
	for _, p := range s.cfg.RateLimits.TrustedProxies {
		if p.Contains(peer) {
			trusted = true
			break
		}
	}
	if trusted {
		if v := ctx.Request.Header.Peek("Fly-Client-IP"); len(v) > 0 {
			if a, err := netip.ParseAddr(strings.TrimSpace(string(v))); err == nil {
				return a.String()
			}
		}
		if v := ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor); len(v) > 0 {
			first, _, _ := strings.Cut(string(v), ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return a.String()
			}
		}
	}
	return peer.String()
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
		return &requestError{status: fasthttp.StatusTooManyRequests, name: "rate_limited",
			desc: "too many requests; retry after " + strconv.Itoa(secs) + " s"}
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
