package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// gatedConn is the socket under a coalescingConn in these tests: it records
// every write it gets, and its writes can be held until the test lets them
// go, which is how a slow socket looks from above.
type gatedConn struct {
	net.Conn // the client end of a net.Pipe; reads pass through

	mu      sync.Mutex
	writes  [][]byte
	gate    chan struct{} // when non-nil, each write waits for a receive from it
	entered chan struct{} // a write has started (buffered)
	fail    error
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.mu.Unlock()
	select {
	case g.entered <- struct{}{}:
	default:
	}
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return 0, fail
	}
	g.mu.Lock()
	g.writes = append(g.writes, bytes.Clone(p))
	g.mu.Unlock()
	return len(p), nil
}

func (g *gatedConn) written() (n int, all []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.writes {
		all = append(all, w...)
	}
	return len(g.writes), all
}

func newGatedConn(t *testing.T) (*gatedConn, net.Conn) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	return &gatedConn{Conn: client, entered: make(chan struct{}, 1)}, server
}

// TestCoalescingConnGathersWritesWhileTheSocketIsBusy is the point of the
// type: while one write is on the socket, the writes of every other push
// gather and leave in one syscall, each one whole and in its own order.
func TestCoalescingConnGathersWritesWhileTheSocketIsBusy(t *testing.T) {
	g, _ := newGatedConn(t)
	g.gate = make(chan struct{})
	c := newCoalescingConn(g)
	defer c.Close()

	if _, err := c.Write([]byte("first;")); err != nil {
		t.Fatal(err)
	}
	<-g.entered // the flusher is now inside the socket's Write, held by the gate

	const writers, each = 50, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := c.Write(fmt.Appendf(nil, "w%02d-%d;", w, i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait() // every Write returned while the socket was still busy
	close(g.gate)

	deadline := time.Now().Add(5 * time.Second)
	want := len("first;") + writers*each*len("w00-0;")
	for {
		if n, all := g.written(); len(all) == want {
			if n != 2 {
				t.Errorf("%d writes reached the socket; want 2 (the first, then all %d gathered)", n, writers*each)
			}
			for w := range writers {
				prev := -1
				for i := range each {
					at := bytes.Index(all, fmt.Appendf(nil, "w%02d-%d;", w, i))
					if at < 0 || at < prev {
						t.Fatalf("writer %d's write %d is missing or out of order in %q", w, i, all)
					}
					prev = at
				}
			}
			return
		}
		if time.Now().After(deadline) {
			_, all := g.written()
			t.Fatalf("after 5 s the socket got %d of %d bytes", len(all), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescingConnBoundsWhatWaits: a writer that would grow the pending
// bytes past maxCoalesced waits for the socket instead, and order holds.
func TestCoalescingConnBoundsWhatWaits(t *testing.T) {
	g, _ := newGatedConn(t)
	g.gate = make(chan struct{})
	c := newCoalescingConn(g)
	defer c.Close()

	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	big := bytes.Repeat([]byte("b"), maxCoalesced)
	if _, err := c.Write([]byte("c")); err != nil { // gathers
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		if _, err := c.Write(big); err != nil { // too much: must wait
			t.Error(err)
		}
	}()
	select {
	case <-returned:
		t.Fatal("a write past the bound returned while the socket was busy")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	<-returned
	_, all := g.written()
	if want := append([]byte("ac"), big...); !bytes.Equal(all, want) {
		t.Fatalf("socket got %d bytes starting %q; want %d starting %q", len(all), all[:min(len(all), 3)], len(want), want[:3])
	}
}

// TestCoalescingConnFailsLoudly: a write the flusher could not make is
// reported by the next Write, and the socket is closed so that the reader
// of the connection (http2's read loop) fails every waiting stream at once.
func TestCoalescingConnFailsLoudly(t *testing.T) {
	g, _ := newGatedConn(t)
	broken := errors.New("connection reset by peer")
	g.fail = broken
	c := newCoalescingConn(g)
	defer c.Close()

	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("first Write = %v; want nil (queued)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("next"))
		if errors.Is(err, broken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Write still returns %v 5 s after the socket failed; want %v", err, broken)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after a failed write = %v; want the closed socket's error", err)
	}
}

// TestCoalescingConnCloseSendsWhatWaits: the last frames (a GOAWAY, TLS's
// close_notify) are still handed to the socket by Close.
func TestCoalescingConnCloseSendsWhatWaits(t *testing.T) {
	g, peer := newGatedConn(t)
	g.gate = make(chan struct{})
	c := newCoalescingConn(g)
	if _, err := c.Write([]byte("one;")); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := c.Write([]byte("two;")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	close(g.gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, all := g.written(); string(all) != "one;two;" {
		t.Errorf("socket got %q by Close; want %q", all, "one;two;")
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v; want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v; want net.ErrClosed", err)
	}
	_ = peer
}
