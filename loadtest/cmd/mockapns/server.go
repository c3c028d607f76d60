package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"push-server/dispatch/dispatchtest"
)

// HTTP/2 limits the mock advertises and enforces. The windows are large so a
// load test never waits on flow control, yet small enough that the
// WINDOW_UPDATE path runs in a test.
const (
	// maxStreams is SETTINGS_MAX_CONCURRENT_STREAMS; Apple advertises about
	// a thousand, and a smaller value would make the client open
	// connections that production would not.
	maxStreams = 1000
	// streamWindow is SETTINGS_INITIAL_WINDOW_SIZE: far above APNs' payload
	// limit, so a stream-level WINDOW_UPDATE is only ever needed by a body
	// Apple would refuse anyway.
	streamWindow = 1 << 20
	// connWindow is the connection-level receive window; the mock tops it up
	// once a quarter of it has been consumed, at the next flush.
	connWindow = 1 << 20
	// maxFrameSize is the default SETTINGS_MAX_FRAME_SIZE, which the mock
	// does not raise.
	maxFrameSize = 16 << 10
	// maxHeaderBlock bounds one request's encoded header block (HEADERS plus
	// CONTINUATIONs) and is advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
	maxHeaderBlock = 64 << 10
	// handshakeTimeout bounds a TLS handshake, so a silent dialer does not
	// keep a goroutine.
	handshakeTimeout = 10 * time.Second
)

// serverConfig configures newServer.
type serverConfig struct {
	// Addr is the listen address; "" = 127.0.0.1:0.
	Addr string
	// KeyID, TeamID and Key are the provider key the mock trusts: a push
	// needs an ES256 provider token whose header kid is KeyID, whose iss is
	// TeamID and that Key verifies.
	KeyID, TeamID string
	Key           *ecdsa.PublicKey
	// Coalesce is how long a connection pauses after answering a burst of
	// pushes, so that the next burst gathers (see conn.run): the latency
	// it may add to a push. 0 reads each push as it comes.
	Coalesce time.Duration
}

// server is a mock of Apple's HTTP/2 provider API (POST /3/device/{token})
// built for load tests: each TLS connection is served by a single goroutine
// that reads frames and writes the answers itself (see conn), so it costs a
// few microseconds of CPU per push where net/http's HTTP/2 server, with a
// goroutine and a handler per stream, cost tens.
//
// It validates what a sender can get wrong in a way that matters to
// push-server (path, device token, provider token, topic, apns-id, payload
// size) and records nothing but a count.
type server struct {
	ln       net.Listener
	tlsConf  *tls.Config
	certDER  []byte
	url      string
	tokens   tokenCache
	coalesce time.Duration

	accepted atomic.Int64 // pushes answered 200

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	wg     sync.WaitGroup        // the accept loop and the connections
}

// newServer listens on cfg.Addr with a fresh self-signed certificate and
// serves until Close.
func newServer(cfg serverConfig) (*server, error) {
	if cfg.Key == nil || cfg.KeyID == "" || cfg.TeamID == "" {
		return nil, errors.New("mock APNs needs a provider key, key id and team id")
	}
	cert, err := dispatchtest.SelfSignedCert("push-server load-test APNs mock")
	if err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	s := &server{
		ln: ln,
		tlsConf: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
			// Full-size records from the start: a burst of answers then goes
			// out in one record and one write.
			DynamicRecordSizingDisabled: true,
		},
		certDER:  cert.Certificate[0],
		url:      baseURL(ln.Addr()),
		coalesce: cfg.Coalesce,
		tokens:   tokenCache{keyID: cfg.KeyID, teamID: cfg.TeamID, key: cfg.Key, ok: make(map[string]time.Time)},
		conns:    make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// URL returns the base URL for APNS_URL, https://127.0.0.1:port.
func (s *server) URL() string { return s.url }

// CertPEM returns the mock's TLS certificate in PEM form, for clients to
// trust.
func (s *server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.certDER})
}

// Count returns how many pushes the mock answered 200.
func (s *server) Count() int64 { return s.accepted.Load() }

// Close stops listening, closes every connection and waits for their
// goroutines. It is idempotent.
func (s *server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for nc := range s.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("cannot close mock APNs listener: %w", err)
	}
	return nil
}

func (s *server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.forget(nc)
			serveConn(s, nc)
		}()
	}
}

func (s *server) forget(nc net.Conn) {
	_ = nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// baseURL is https://host:port for the listener, with an unspecified host
// (0.0.0.0, ::) replaced by 127.0.0.1, which the certificate covers.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "https://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
