package dispatch

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// gatedConn is the socket under a coalescingConn in these tests: a real
// loopback TCP connection for reads and deadlines, whose writes are recorded
// and can be held until the test lets them go (or until the write deadline
// passes), which is how a slow socket looks from above.
type gatedConn struct {
	net.Conn

	mu       sync.Mutex
	writes   [][]byte
	gate     chan struct{} // when non-nil, each write waits for it to close
	deadline time.Time     // the write deadline last set
	moved    chan struct{} // closed (and replaced) when the deadline moves
	entered  chan struct{} // a write has started (buffered)
	fail     error
}

// SetWriteDeadline applies to a held write too, as it does to a write
// blocked in a real socket.
func (g *gatedConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	g.deadline = t
	if g.moved != nil {
		close(g.moved)
	}
	g.moved = make(chan struct{})
	g.mu.Unlock()
	return g.Conn.SetWriteDeadline(t)
}

func (g *gatedConn) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	for {
		g.mu.Lock()
		gate, deadline, moved := g.gate, g.deadline, g.moved
		g.mu.Unlock()
		if gate == nil {
			break
		}
		var expired <-chan time.Time
		if !deadline.IsZero() {
			expired = time.After(time.Until(deadline))
		}
		select {
		case <-gate:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-moved:
			continue
		}
		break
	}
	g.mu.Lock()
	fail := g.fail
	g.mu.Unlock()
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

// newGatedConn returns a gatedConn over one end of a loopback TCP
// connection, and the other end.
func newGatedConn(t *testing.T) (*gatedConn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
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

	want := len("first;") + writers*each*len("w00-0;")
	var n int
	var all []byte
	if !testkit.Poll(5*time.Second, func() bool { n, all = g.written(); return len(all) == want }) {
		t.Fatalf("after 5 s the socket got %d of %d bytes", len(all), want)
	}
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
	want := append([]byte("ac"), big...)
	var all []byte
	if !testkit.Poll(5*time.Second, func() bool { _, all = g.written(); return len(all) >= len(want) }) || !bytes.Equal(all, want) {
		t.Fatalf("socket got %d bytes starting %q; want %d starting %q", len(all), all[:min(len(all), 3)], len(want), want[:3])
	}
}

// TestCoalescingConnFailsLoudly: a write the flusher could not make is
// reported by every later Write, and the reader of the connection (http2's
// read loop) still reads what the peer sent before (a GOAWAY, a TLS alert)
// and then fails, so that every waiting stream fails at once.
func TestCoalescingConnFailsLoudly(t *testing.T) {
	g, peer := newGatedConn(t)
	if _, err := peer.Write([]byte("goaway")); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("connection reset by peer")
	g.fail = broken
	c := newCoalescingConn(g)
	defer c.Close()

	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("first Write = %v; want nil (queued)", err)
	}
	var err error
	if !testkit.Poll(5*time.Second, func() bool { _, err = c.Write([]byte("next")); return errors.Is(err, broken) }) {
		t.Fatalf("Write still returns %v 5 s after the socket failed; want %v", err, broken)
	}
	got, err := io.ReadAll(c)
	if string(got) != "goaway" {
		t.Errorf("the reader got %q after the failed write; want what the peer sent first, %q", got, "goaway")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the reader ended with %v; want the failure's read deadline", err)
	}
}

// TestCoalescingConnCloseUnblocksAStuckSocket: a peer that stopped reading
// must not hold Close (http2 closes a connection whose pings go unanswered),
// nor a writer waiting for room.
func TestCoalescingConnCloseUnblocksAStuckSocket(t *testing.T) {
	g, _ := newGatedConn(t)
	g.gate = make(chan struct{}) // never opens
	c := newCoalescingConn(g)
	if _, err := c.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := c.Write(bytes.Repeat([]byte("x"), maxCoalesced)); err != nil { // fills pending
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("no room")) // waits for the flusher
		waiting <- err
	}()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(closeFlushTimeout + 5*time.Second):
		t.Fatalf("Close still blocked after %s on a socket that takes nothing", closeFlushTimeout+5*time.Second)
	}
	if took := time.Since(start); took > closeFlushTimeout+time.Second {
		t.Errorf("Close took %s; want about closeFlushTimeout (%s)", took, closeFlushTimeout)
	}
	if err := <-waiting; !errors.Is(err, net.ErrClosed) {
		t.Errorf("the writer waiting for room got %v; want net.ErrClosed", err)
	}
	// A second, forced Close (x/net/http2's) returns at once.
	if err := c.Close(); err == nil {
		t.Error("second Close = nil; want the closed socket's error")
	}
}

// TestCoalescingConnCloseSendsWhatWaits: the last frames (a GOAWAY, TLS's
// close_notify) are still handed to the socket by Close.
func TestCoalescingConnCloseSendsWhatWaits(t *testing.T) {
	g, _ := newGatedConn(t)
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
	if err := c.Close(); err == nil {
		t.Errorf("second Close = nil; want the closed socket's error")
	}
}

// TestDialH2TLSRefusesAServerThatDoesNotSpeakHTTP2: like http2.Transport's
// own dial, ours refuses a TLS server that does not choose h2, and leaves no
// flusher behind.
func TestDialH2TLSRefusesAServerThatDoesNotSpeakHTTP2(t *testing.T) {
	// A TLS server that does no ALPN at all: the handshake succeeds, and
	// only the protocol check can refuse it.
	cert, err := dispatchtest.SelfSignedCert("no-alpn test server")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	addr := ln.Addr().String()
	before := runtime.NumGoroutine()
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{http2.NextProtoTLS}}
	c, err := dialH2TLS(t.Context(), nil, "tcp", addr, cfg)
	if err == nil {
		c.Close()
		t.Fatal("dialH2TLS to an HTTP/1.1-only server succeeded; want an error")
	}
	if !strings.Contains(err.Error(), "HTTP/2") {
		t.Errorf("error %q does not say the server refused HTTP/2", err)
	}
	testkit.Poll(5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the refused dial, %d before: the flusher was left running", n, before)
	}
}
