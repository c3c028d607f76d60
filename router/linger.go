package router

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// lingerListener wraps the accepted connections so that one answered with a
// transport error (oversize headers or body, garbage) closes gently.
//
// fasthttp answers such a request before reading all of it and then closes
// the connection at once. With request bytes still unread, the kernel sends
// a reset instead of a normal close, and a reset can reach the client before
// it has read the answer, which the client then never sees: it gets
// ECONNRESET instead of the envelope (measured: 26 of 400 requests with
// 64 KiB of headers). net/http avoids this with a short drain before
// closing; this is the same for fasthttp.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn closes gently once linger is set (by transportError).
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// Bounds of the drain: long enough for a client to read its answer, short
// and small enough that a client that keeps sending cannot hold the
// connection (like net/http's 500 ms).
const (
	lingerFor      = 500 * time.Millisecond
	lingerMaxBytes = 1 << 20
)

// Close sends the end of the stream after the answer, then reads and drops
// what the client still sends until it closes too (or the bounds run out),
// in a goroutine so that fasthttp's worker is not held, and only then
// closes the socket.
func (c *lingerConn) Close() error {
	if !c.linger.Load() {
		return c.Conn.Close()
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	go func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, lingerMaxBytes))
		_ = c.Conn.Close()
	}()
	return nil
}
