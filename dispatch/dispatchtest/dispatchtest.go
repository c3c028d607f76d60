// Package dispatchtest runs mock APNs and FCM HTTP v1 servers and a mock
// Web Push service (WebPushService): the project's only mocks, standing at
// the network edge where Apple, Google and the browsers' push services
// would be.
//
// The mocks validate requests the way the real providers do (headers, paths,
// payload limits, provider tokens, OAuth access tokens) and answer in the
// providers' own error shapes, so a sender tested against them is tested
// against the wire contract rather than against itself. Tests script the
// answers for a device token (Script) to provoke retries, dead tokens and
// hanging providers.
//
// The package imports only the standard library, so router, bench and
// loadtest can use it without importing dispatch.
package dispatchtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Answer is what a mock replies to one push, after the push passed the
// mock's validation.
type Answer struct {
	// Status is the HTTP status. 0 means 200, unless Reason is set: then it
	// is the status the provider uses for Reason (APNs "Unregistered" → 410,
	// FCM "UNREGISTERED" → 404); a reason the provider does not document
	// gets 400 from APNs, 500 from FCM.
	Status int
	// Reason is the provider's error name: the APNs {"reason":…}, e.g.
	// "BadDeviceToken", "Unregistered", "TooManyRequests"; or the FCM error
	// code, e.g. "UNREGISTERED", "INVALID_ARGUMENT", "UNAVAILABLE",
	// "QUOTA_EXCEEDED", "SENDER_ID_MISMATCH", or a canonical status such as
	// "PERMISSION_DENIED". "" with a non-200 Status picks the provider's usual
	// reason for that status.
	Reason string
	// RetryAfter is the Retry-After header value; "" sends none.
	RetryAfter string
	// Delay is how long the mock waits before answering, to play a hanging
	// provider. The wait ends early when the client gives up (request
	// context), and then nothing is answered.
	Delay time.Duration
	// Hold, when set, is called after Delay with the request's context,
	// before answering: the mock answers once it returns true, and answers
	// nothing when it returns false (the client gave up). It lets a test act
	// while a push is in flight without guessing a delay; Gate.Hold is the
	// usual one. HeldToken(ctx) is the push's device token.
	Hold func(ctx context.Context) bool
}

// script holds the scripted answers per device token. It is safe for
// concurrent use.
type script struct {
	// n counts scripted tokens plus the default script, so the hot path of a
	// load test (nothing scripted) never takes mu.
	n  atomic.Int32
	mu sync.Mutex
	m  map[string][]Answer // guarded by mu; "" holds the default script
}

// set replaces the answers for token; no answers removes its script.
func (s *script) set(token string, answers []Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string][]Answer)
	}
	if len(answers) == 0 {
		delete(s.m, token)
	} else {
		s.m[token] = append([]Answer(nil), answers...)
	}
	s.n.Store(int32(len(s.m)))
}

// next returns the answer for the next push to token: the first of its
// script, which is consumed unless it is the last one (the last repeats).
// Tokens without a script of their own use the default script.
func (s *script) next(token string) (Answer, bool) {
	if s.n.Load() == 0 {
		return Answer{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	as, ok := s.m[token]
	if !ok {
		token = ""
		if as, ok = s.m[""]; !ok {
			return Answer{}, false
		}
	}
	a := as[0]
	if len(as) > 1 {
		s.m[token] = as[1:]
	}
	return a, true
}

func (s *script) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
	s.n.Store(0)
}

// wait plays a's Delay, then its Hold, for a push to token; it reports
// whether the mock should answer.
func (a *Answer) wait(ctx context.Context, token string) bool {
	if !wait(ctx, a.Delay) {
		return false
	}
	// The token rides in the context only when a Hold reads it, so an
	// unheld push (a load test's) allocates nothing for it.
	return a.Hold == nil || a.Hold(context.WithValue(ctx, heldTokenKey{}, token))
}

// heldTokenKey is the context key of the token of the push being held.
type heldTokenKey struct{}

// HeldToken returns the device token of the push an Answer.Hold was called
// for, from the context Hold was given; "" for any other context.
func HeldToken(ctx context.Context) string {
	token, _ := ctx.Value(heldTokenKey{}).(string)
	return token
}

// wait sleeps for d unless ctx ends first; it reports whether the full d
// passed. A timer instead of a goroutine keeps a hanging mock cheap.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// server is the listener and http.Server every mock runs on.
type server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve returns
	once sync.Once
	err  error // from Close, guarded by once
}

// listen binds addr ("" = 127.0.0.1:0) and serves h on it in the
// background; wrap, when set, wraps the listener (TLS).
func listen(addr string, h http.Handler, protos *http.Protocols, wrap func(net.Listener) net.Listener) (*server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	s := &server{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			Protocols:         protos,
			ReadHeaderTimeout: 10 * time.Second,
			// Apple advertises about a thousand concurrent streams per
			// connection; the default 250 would make a load test open
			// connections that production would not.
			HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

// mockCert is the certificate of a mock serving TLS: what its clients
// must trust (RootCAs) or be given (CertPEM). Zero without TLS.
type mockCert struct {
	der   []byte
	roots *x509.CertPool
}

// newMockCert makes a mock's self-signed certificate for commonName.
func newMockCert(commonName string) (tls.Certificate, mockCert, error) {
	cert, err := SelfSignedCert(commonName)
	if err != nil {
		return tls.Certificate{}, mockCert{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	return cert, mockCert{der: cert.Certificate[0], roots: roots}, nil
}

// pem returns the certificate as PEM; nil without TLS.
func (c mockCert) pem() []byte {
	if c.der == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})
}

// listenMock is listen for a mock: TLS under cfg when it is set, with
// HTTP/2 where cfg's NextProtos offer it, else plain HTTP with unencrypted
// HTTP/2 (h2c) beside what protos allows. It returns the server and its
// base URL.
func listenMock(addr string, h http.Handler, protos http.Protocols, cfg *tls.Config) (*server, string, error) {
	scheme := "http"
	var wrap func(net.Listener) net.Listener
	if cfg != nil {
		wrap = func(ln net.Listener) net.Listener { return tls.NewListener(ln, cfg) }
		protos.SetHTTP2(true)
		scheme = "https"
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	srv, err := listen(addr, h, &protos, wrap)
	if err != nil {
		return nil, "", err
	}
	return srv, srv.baseURL(scheme), nil
}

// baseURL is scheme://host:port for the listener, with an unspecified host
// (0.0.0.0, ::) replaced by 127.0.0.1, which the TLS certificate covers.
func (s *server) baseURL(scheme string) string {
	host, port, err := net.SplitHostPort(s.ln.Addr().String())
	if err != nil {
		return scheme + "://" + s.ln.Addr().String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// close stops the server at once: open connections are closed, so handlers
// waiting in an Answer's Delay see their context end. It is idempotent.
func (s *server) close() error {
	s.once.Do(func() {
		s.err = s.srv.Close()
		<-s.done
		if s.err != nil {
			s.err = fmt.Errorf("cannot close mock server: %w", s.err)
		}
	})
	return s.err
}

// idGen makes unique ids cheaply: a random prefix fixed per mock and a
// counter, so no per-request call into crypto/rand is needed.
type idGen struct {
	prefix [6]byte
	seq    atomic.Uint64
}

func newIDGen() *idGen {
	g := &idGen{}
	_, _ = rand.Read(g.prefix[:]) // crypto/rand.Read never fails since Go 1.24
	return g
}

// uuid returns a new lowercase UUID-formatted id (8-4-4-4-12 hex digits), the
// form APNs uses for apns-id.
func (g *idGen) uuid() string {
	var raw [16]byte
	copy(raw[:6], g.prefix[:])
	n := g.seq.Add(1)
	for i := 15; i >= 8; i-- {
		raw[i] = byte(n)
		n >>= 8
	}
	raw[6] = 0x40 | raw[6]&0x0f // version 4 layout, so strict parsers accept it
	raw[8] = 0x80 | raw[8]&0x3f
	var b [36]byte
	hex.Encode(b[0:8], raw[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], raw[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], raw[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], raw[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], raw[10:16])
	return string(b[:])
}

// IsAPNsID reports whether s has the 8-4-4-4-12 hex form APNs requires of a
// client-chosen apns-id (either case).
func IsAPNsID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// bearer returns the credential of an "Authorization: Bearer x" header value;
// the scheme is case-insensitive (apns2 sends "bearer", oauth2 "Bearer").
func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return h[len(p):], true
}

// bufPool holds request-body buffers, so a load test through the mock does
// not allocate one per push.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// readBody reads at most limit+1 bytes of r's body into a pooled buffer;
// len > limit means the body is too large. The caller returns the buffer
// with bufPool.Put and must not keep the slice past that.
func readBody(r *http.Request, limit int) (*[]byte, error) {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	for len(b) <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(cap(b), limit+1)
		n, err := r.Body.Read(b[len(b):end])
		b = b[:len(b)+n]
		if err != nil {
			*bp = b
			if err == io.EOF {
				return bp, nil
			}
			return bp, fmt.Errorf("cannot read request body: %w", err)
		}
	}
	*bp = b
	return bp, nil
}
