package dispatch

import (
	"net"
	"sync"
	"time"
)

// coalescingConn gathers the writes of concurrent pushes on one provider
// connection into one write syscall.
//
// x/net/http2's client flushes after every frame it writes: a push costs a
// HEADERS flush and a DATA flush, two TLS records and two syscalls, and on a
// busy connection each push's syscalls are paid separately (they were a
// quarter of the CPU an APNs push cost). Under the TLS layer, this conn takes
// a write into a buffer and returns at once; one flusher goroutine per
// connection writes whatever has gathered, after yielding once so that the
// other pushes that are already runnable can add theirs first (the same trick
// as the relay-signature batcher). A lone push waits for one scheduler turn,
// not for a timer.
//
// A write that fails in the flusher is reported by the next Write and the
// connection is closed, so http2's read loop fails every stream still waiting
// on it at once; those pushes see a transport error, as they would have, and
// are retried by the sender's policy.
type coalescingConn struct {
	net.Conn

	// wmu is held while bytes go to the socket, so they go in order; it is
	// taken before mu.
	wmu     sync.Mutex
	mu      sync.Mutex
	pending []byte        // written by callers, not yet handed to the socket
	err     error         // sticky: the first write error, or net.ErrClosed after Close
	wake    chan struct{} // buffered(1): "pending is not empty"; closed by Close
	done    chan struct{} // closed when the flusher has returned
}

// maxCoalesced bounds the pending buffer: a caller that would grow it past
// this writes it out itself, so memory stays bounded when the socket is slow.
const maxCoalesced = 256 << 10

// closeFlushTimeout bounds how long Close spends handing what is still
// pending (a GOAWAY, a TLS close_notify) to a peer that stopped reading.
const closeFlushTimeout = time.Second

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{
		Conn:    c,
		pending: make([]byte, 0, 16<<10),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go cc.flushLoop()
	return cc
}

// Write queues p for the flusher. It returns an error only once an earlier
// write has failed or the conn is closed.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	if len(c.pending)+len(p) <= maxCoalesced {
		c.pending = append(c.pending, p...)
		select { // under mu: Close closes wake under mu too
		case c.wake <- struct{}{}:
		default:
		}
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()

	// Back-pressure: write what waits, then p, from this goroutine.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if err := c.writeLocked(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

// writeLocked hands pending to the socket; wmu and mu are held.
func (c *coalescingConn) writeLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	if _, err := c.Conn.Write(c.pending); err != nil {
		c.fail(err)
		return err
	}
	c.pending = c.pending[:0]
	return nil
}

// fail records a write error and closes the socket, so that the reader of
// the connection fails too; mu is held.
func (c *coalescingConn) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	c.Conn.Close()
}

func (c *coalescingConn) flushLoop() {
	defer close(c.done)
	var out []byte
	for range c.wake {
		c.wmu.Lock()
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			c.wmu.Unlock()
			return
		}
		out, c.pending = c.pending, out[:0]
		c.mu.Unlock()
		if len(out) > 0 {
			if _, err := c.Conn.Write(out); err != nil {
				c.mu.Lock()
				c.fail(err)
				c.mu.Unlock()
			}
		}
		c.wmu.Unlock()
	}
}

// Close hands what is still pending to the socket (bounded by
// closeFlushTimeout), stops the flusher and closes the socket.
func (c *coalescingConn) Close() error {
	c.wmu.Lock()
	c.mu.Lock()
	if c.err == net.ErrClosed {
		c.mu.Unlock()
		c.wmu.Unlock()
		return net.ErrClosed
	}
	if c.err == nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		_ = c.writeLocked()
	}
	c.err = net.ErrClosed
	close(c.wake)
	c.mu.Unlock()
	c.wmu.Unlock()
	<-c.done
	return c.Conn.Close()
}
