package dispatch

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescingConn gathers the writes of concurrent pushes on one provider
// connection into one write to the layer below, and so into one TLS record
// and one write syscall.
//
// x/net/http2's client flushes after every frame it writes: a push costs a
// HEADERS flush and a DATA flush. Over TLS, each flush that reaches
// crypto/tls is a record of its own, sealed on the goroutine x/net/http2
// starts for each request; that goroutine's small new stack grows inside
// the AES-GCM code, and the copy cost as much as the sealing itself. So this
// conn sits above TLS: a write goes into a buffer and returns at once, and
// one flusher goroutine per connection hands whatever has gathered to TLS
// in one Write, one record for up to 16 KB of frames, sealed on the
// flusher's stack, which has long since grown. For h2c it sits over the TCP
// socket directly. The flusher is woken by the first write into an empty
// buffer and then yields once (runtime.Gosched, as the relay-signature
// batcher does), so that the pushes already runnable, on this core or
// another, queue their frames before it takes the buffer: under load the
// frames of many pushes leave in one record and one syscall. A lone push
// waits for one scheduler turn, not for a timer. Measured on the APNs load
// run with the conn under TLS: write syscalls per push 2.3 → 1.5 (the
// fasthttp answer and Redis included), sends/s +4–15 % against flushing
// without the yield. Above TLS rather than under it: BENCHMARKS.md, "the
// APNs push, client side".
//
// Only the flusher writes, so a caller never blocks on the socket, except
// when maxCoalesced bytes already wait (back-pressure). Write deadlines are
// therefore the flusher's, not the caller's: each write to the layer below
// must finish within flushTimeout, or the connection fails. SetWriteDeadline
// is accepted and ignored, so http2.Transport.WriteByteTimeout has no effect
// on these connections (it is not set).
//
// A write that fails is reported by every later Write, and the socket gets a
// short read deadline, so that http2's read loop first reads what the peer
// sent before failing (a GOAWAY, a TLS alert that names a rejected
// certificate) and then fails every stream still waiting; those pushes see a
// transport error and are retried by the sender's policy. The socket is
// closed only by Close.
type coalescingConn struct {
	// Conn is what the flusher writes to and the reader reads from: the
	// TLS connection, or the socket itself for h2c.
	net.Conn
	// raw is the socket: its deadlines bound the flusher's writes (a TLS
	// connection passes them down too), and a forced Close closes it.
	raw net.Conn

	mu      sync.Mutex
	space   sync.Cond     // on mu: pending was taken, or the conn failed or is closing
	pending []byte        // written by callers, not yet handed to the socket
	failed  error         // sticky: the first socket write error
	closing bool          // Close was called
	wake    chan struct{} // buffered(1): "pending is not empty"; closed by Close
	done    chan struct{} // closed when the flusher has returned
}

const (
	// maxCoalesced bounds the pending buffer: a writer that would grow it
	// past this waits for the flusher, so memory stays bounded when the
	// socket is slow.
	maxCoalesced = 256 << 10
	// flushTimeout bounds one socket write: a peer that reads nothing for
	// this long fails the connection (http2's own ping check takes 30 s).
	flushTimeout = 30 * time.Second
	// closeFlushTimeout bounds how long Close spends handing what is still
	// pending (a GOAWAY, a TLS close_notify) to a peer that stopped reading.
	closeFlushTimeout = time.Second
	// failedReadGrace is how long the reader may still read what the peer
	// sent before a write failed.
	failedReadGrace = 100 * time.Millisecond
)

// newCoalescingConn returns a coalescingConn writing straight to the
// socket c.
func newCoalescingConn(c net.Conn) *coalescingConn { return newCoalescingConnOver(c, c) }

// newCoalescingConnOver returns a coalescingConn writing to c, a layer (TLS)
// over the socket raw.
func newCoalescingConnOver(c, raw net.Conn) *coalescingConn {
	cc := &coalescingConn{
		Conn:    c,
		raw:     raw,
		pending: make([]byte, 0, 16<<10),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	cc.space.L = &cc.mu
	go cc.flushLoop()
	return cc
}

// Write queues p for the flusher. It returns an error only once a write has
// failed or the conn is closing.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.usable() && len(c.pending) > 0 && len(c.pending)+len(p) > maxCoalesced {
		c.space.Wait()
	}
	switch {
	case c.closing:
		return 0, net.ErrClosed
	case c.failed != nil:
		return 0, c.failed
	}
	c.pending = append(c.pending, p...)
	select { // under mu: Close closes wake under mu too
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// SetWriteDeadline does nothing: Write never waits for the socket (see the
// type's documentation). It returns nil so that crypto/tls's Close, which
// sets write deadlines around its close_notify, proceeds.
func (c *coalescingConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only; see SetWriteDeadline.
func (c *coalescingConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// coalescingTLSConn is a coalescingConn over TLS. ConnectionState lets
// http2.Transport fill in Response.TLS, as it does for its own dials.
type coalescingTLSConn struct {
	*coalescingConn
	tls *tls.Conn
}

// ConnectionState returns the TLS connection's state.
func (c coalescingTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// usable reports whether writes are still accepted; mu is held.
func (c *coalescingConn) usable() bool { return !c.closing && c.failed == nil }

func (c *coalescingConn) flushLoop() {
	defer close(c.done)
	var out []byte
	for range c.wake {
		runtime.Gosched() // let the runnable pushes add their frames first
		if !c.flushOnce(&out) {
			return
		}
	}
	// Closing: what is still pending goes out under Close's deadline.
	c.flushOnce(&out)
}

// flushOnce hands what is pending to the socket and reports whether the
// socket is still healthy. out is the flusher's spare buffer.
func (c *coalescingConn) flushOnce(out *[]byte) bool {
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		return false
	}
	*out, c.pending = c.pending, (*out)[:0]
	c.space.Broadcast()
	if !c.closing {
		// Under mu, so that Close's shorter deadline, set under mu
		// too, is never overwritten by this one.
		_ = c.raw.SetWriteDeadline(time.Now().Add(flushTimeout))
	}
	c.mu.Unlock()
	if len(*out) == 0 {
		return true
	}
	if _, err := c.Conn.Write(*out); err != nil {
		c.mu.Lock()
		c.failed = err
		c.space.Broadcast()
		c.mu.Unlock()
		_ = c.raw.SetReadDeadline(time.Now().Add(failedReadGrace))
		return false
	}
	return true
}

// Close hands what is still pending to the layer below (bounded by
// closeFlushTimeout, which also cuts short a socket write already blocked),
// stops the flusher and closes the connection: over TLS that sends
// close_notify first, within the same closeFlushTimeout. A second Close, such as x/net/http2's forced
// close while the first one waits, closes the socket at once.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return c.raw.Close()
	}
	c.closing = true
	deadline := time.Now().Add(closeFlushTimeout)
	_ = c.raw.SetWriteDeadline(deadline)
	close(c.wake)
	c.space.Broadcast()
	c.mu.Unlock()
	<-c.done
	if c.Conn == c.raw {
		return c.Conn.Close()
	}
	// crypto/tls sets a write deadline of its own (5 s) for close_notify:
	// the socket is closed under it at the deadline set above.
	force := time.AfterFunc(time.Until(deadline), func() { _ = c.raw.Close() })
	defer force.Stop()
	return c.Conn.Close()
}
