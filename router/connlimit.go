package router

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// connLimitListener enforces MaxConns and MaxConnsPerIP on accepted
// connections and refuses the ones past a cap with the contract's envelope
// (429 rate_limited past the per-peer cap, 503 overloaded past the total),
// where fasthttp's own caps would answer in plain text. Peers are grouped as
// the rate limits group them (IPv6 by RateLimits.IPv6Prefix); the peer is
// the TCP peer, since no header has been read yet.
type connLimitListener struct {
	net.Listener
	maxConns, maxPerIP int
	ipv6Prefix         int
	log                *slog.Logger

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int

	refusing   atomic.Int64 // refusals being written and drained
	lastLogged atomic.Int64 // unix nanoseconds of the last refusal logged
	unlogged   atomic.Int64 // refusals since then
}

func newConnLimitListener(ln net.Listener, cfg *Config, log *slog.Logger) *connLimitListener {
	return &connLimitListener{
		Listener:   ln,
		maxConns:   cfg.MaxConns,
		maxPerIP:   cfg.MaxConnsPerIP,
		ipv6Prefix: cfg.RateLimits.IPv6Prefix,
		log:        log,
		perIP:      map[netip.Addr]int{},
	}
}

// Bounds of a refusal. The answer fits any fresh socket's send buffer, so
// the write deadline only matters for a peer that stopped reading; the
// drain lets a client that sent its request read the answer instead of a
// reset (see lingerListener). Past maxRefusing refusals at once (a flood),
// a refusal is written with a short deadline and closed at once, so that a
// flood of refused connections cannot hold descriptors either.
const (
	refuseWriteTimeout = 50 * time.Millisecond
	refuseDrainFor     = 200 * time.Millisecond
	refuseDrainBytes   = 64 << 10
	maxRefusing        = 1024
	refusalLogEvery    = time.Minute
)

// Accept returns the next connection within the caps; a connection past
// them is answered and closed without holding up the accept loop.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := l.peerKey(c.RemoteAddr())
		l.mu.Lock()
		switch {
		case l.total >= l.maxConns:
			l.mu.Unlock()
			l.refuse(c, overloadedConnResponse, "MAX_CONNS")
			connsRefusedTotal.Inc()
			continue
		case l.maxPerIP > 0 && l.perIP[key] >= l.maxPerIP:
			l.mu.Unlock()
			l.refuse(c, rateLimitedConnResponse, "MAX_CONNS_PER_IP")
			connsRefusedPerIP.Inc()
			continue
		}
		l.total++
		if l.maxPerIP > 0 {
			l.perIP[key]++
		}
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, key: key}, nil
	}
}

// peerKey groups c's peer as the per-IP rate limit does.
func (l *connLimitListener) peerKey(addr net.Addr) netip.Addr {
	var a netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		a, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		a = ap.Addr()
	}
	a = a.Unmap()
	if a.Is6() && l.ipv6Prefix > 0 && l.ipv6Prefix < 128 {
		if p, err := a.Prefix(l.ipv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return a
}

// release gives back a connection's slots.
func (l *connLimitListener) release(key netip.Addr) {
	l.mu.Lock()
	l.total--
	if l.maxPerIP > 0 {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key)
		}
	}
	l.mu.Unlock()
}

// refuse answers c with response and closes it, off the accept goroutine.
func (l *connLimitListener) refuse(c net.Conn, response func() []byte, limit string) {
	l.logRefusal(limit)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		_ = c.SetWriteDeadline(time.Now().Add(time.Millisecond))
		_, _ = c.Write(response())
		_ = c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		if _, err := c.Write(response()); err == nil {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
				_ = c.SetReadDeadline(time.Now().Add(refuseDrainFor))
				_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrainBytes))
			}
		}
		_ = c.Close()
	}()
}

// logRefusal warns at most once a minute, with the count since the last
// warning, so that an operator sees a cap being reached while a flood of
// refusals does not become a flood of log lines.
func (l *connLimitListener) logRefusal(limit string) {
	l.unlogged.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLogged.Load()
	if now-last < int64(refusalLogEvery) || !l.lastLogged.CompareAndSwap(last, now) {
		return
	}
	n := l.unlogged.Swap(0)
	l.log.Warn("connections refused past a connection cap", "limit", limit, "refused", n,
		"max_conns", l.maxConns, "max_conns_per_ip", l.maxPerIP)
}

// limitedConn gives its slots back once, when it is closed.
type limitedConn struct {
	net.Conn
	l      *connLimitListener
	key    netip.Addr
	closed atomic.Bool
}

// CloseWrite lets lingerConn, which wraps this one, end the stream after a
// refusal's answer (a FIN), so the client reads the end at once instead of
// after the linger's drain.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.key)
	}
	return err
}

// The refusals' answers: the envelope, Retry-After and Connection: close
// (the connection is closed after them), with the Date of the moment.
var (
	overloadedConnResponse  = connRefusal(errConnsOverloaded)
	rateLimitedConnResponse = connRefusal(errConnsFromPeer)
)

// connRefusal writes cause's row of errorNames as a raw HTTP/1.1 response:
// no request was read, so there is no fasthttp.RequestCtx to answer on.
func connRefusal(cause error) func() []byte {
	status, body := staticError(cause)
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\r\n" +
		"Server: push-server\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Date: "
	return func() []byte {
		b := make([]byte, 0, len(head)+64+len(body))
		b = append(b, head...)
		b = fasthttp.AppendHTTPDate(b, time.Now())
		b = append(b, "\r\n\r\n"...)
		return append(b, body...)
	}
}
