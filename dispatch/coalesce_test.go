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
	pass     bool          // writes also go to the socket, for a peer that reads them
	closed   chan struct{} // closed by Close: a held write fails, as on a closed socket
	once     sync.Once
}

// Close ends a held write too, as closing a socket does.
func (g *gatedConn) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Conn.Close()
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
		case <-g.closed:
			return 0, net.ErrClosed
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
	pass := g.pass
	g.mu.Unlock()
	if pass {
		return g.Conn.Write(p)
	}
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
	return &gatedConn{Conn: client, entered: make(chan struct{}, 1), closed: make(chan struct{})}, server
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

// recordCounter is a TCP proxy in front of a TLS server that counts the TLS
// records the client sends, by type, as a capture of the wire would.
type recordCounter struct {
	addr  string
	mu    sync.Mutex
	n     map[byte]int
	conns []net.Conn // both ends of every proxied connection, closed at Cleanup
}

func startRecordCounter(t *testing.T, target string) *recordCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{addr: ln.Addr().String(), n: make(map[byte]int)}
	var wg sync.WaitGroup
	// Closes what it proxies rather than waiting for the ends to: a
	// Dispatcher's Close closes only idle connections.
	t.Cleanup(func() {
		ln.Close()
		rc.mu.Lock()
		for _, c := range rc.conns {
			c.Close()
		}
		rc.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			rc.mu.Lock()
			rc.conns = append(rc.conns, client, server)
			rc.mu.Unlock()
			wg.Add(2)
			go func() { // server → client, untouched
				defer wg.Done()
				_, _ = io.Copy(client, server)
				client.Close()
			}()
			go func() { // client → server, record by record
				defer wg.Done()
				defer server.Close()
				var hdr [5]byte
				for {
					if _, err := io.ReadFull(client, hdr[:]); err != nil {
						return
					}
					body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
					if _, err := io.ReadFull(client, body); err != nil {
						return
					}
					rc.mu.Lock()
					rc.n[hdr[0]]++
					rc.mu.Unlock()
					if _, err := server.Write(append(hdr[:], body...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return rc
}

// appData is how many application-data records (type 23) went through.
func (rc *recordCounter) appData() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n[23]
}

// TestConcurrentPushesShareTLSRecords: pushes in flight together on one
// APNs connection leave in shared TLS records. x/net/http2 flushes a
// HEADERS and a DATA frame per push; when each flush was a TLS record (the
// coalescing under TLS), a push cost at least two records, each sealed on
// the request's own new goroutine.
func TestConcurrentPushesShareTLSRecords(t *testing.T) {
	key := newAPNsKey(t)
	m := dispatchtest.StartAPNs(t, true)
	m.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	rc := startRecordCounter(t, strings.TrimPrefix(m.URL(), "https://"))
	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = "https://"+rc.addr, "https://"+rc.addr, m.RootCAs()
	s := mustSender(t, mustNew(t, cfg), TypeAPNS)
	if err := s.Send(t.Context(), testToken, visible()); err != nil { // dials
		t.Fatal(err)
	}

	const pushes = 64
	before := rc.appData()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := s.Send(t.Context(), testToken, visible()); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := len(m.Requests()); got != pushes+1 {
		t.Fatalf("the mock got %d pushes; want %d", got, pushes+1)
	}
	records := rc.appData() - before
	t.Logf("%d pushes in %d TLS records", pushes, records)
	if records >= pushes {
		t.Errorf("%d concurrent pushes took %d TLS records; want fewer records than pushes (two a push without coalescing above TLS)", pushes, records)
	}
}

// TestCoalescingTLSConnCloseIsBounded: over TLS, Close sends close_notify
// after the pending frames, and a peer that stopped reading holds it no
// longer than closeFlushTimeout in all (crypto/tls alone would wait 5 s for
// close_notify).
func TestCoalescingTLSConnCloseIsBounded(t *testing.T) {
	cert, err := dispatchtest.SelfSignedCert("close test server")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	g, peer := newGatedConn(t)
	g.pass = true
	srv := tls.Server(peer, &tls.Config{Certificates: []tls.Certificate{cert}})
	handshook := make(chan error, 1)
	go func() { handshook <- srv.Handshake() }()
	tc := tls.Client(g, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshook; err != nil {
		t.Fatal(err)
	}

	// A peer that reads: the frames, then close_notify (io.EOF), arrive.
	c := newCoalescingConnOver(tc, g)
	if _, err := c.Write([]byte("last frames")); err != nil {
		t.Fatal(err)
	}
	read := make(chan string, 1)
	go func() { b, _ := io.ReadAll(srv); read <- string(b) }()
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := <-read; got != "last frames" {
		t.Errorf("the peer read %q before close_notify; want %q", got, "last frames")
	}

	// A peer that reads nothing: Close returns within closeFlushTimeout.
	g2, peer2 := newGatedConn(t)
	g2.pass = true
	srv2 := tls.Server(peer2, &tls.Config{Certificates: []tls.Certificate{cert}})
	go func() { handshook <- srv2.Handshake() }()
	tc2 := tls.Client(g2, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := tc2.Handshake(); err != nil {
		t.Fatal(err)
	}
	<-handshook
	g2.mu.Lock()
	g2.gate = make(chan struct{}) // never opens
	g2.mu.Unlock()
	c2 := newCoalescingConnOver(tc2, g2)
	if _, err := c2.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	<-g2.entered
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c2.Close() }()
	select {
	case <-closed:
	case <-time.After(closeFlushTimeout + 5*time.Second):
		t.Fatalf("Close still blocked after %s on a peer that reads nothing", closeFlushTimeout+5*time.Second)
	}
	if took := time.Since(start); took > closeFlushTimeout+time.Second {
		t.Errorf("Close took %s; want about closeFlushTimeout (%s)", took, closeFlushTimeout)
	}
}
