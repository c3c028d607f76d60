package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http2"
)

// Connection settings shared by the provider transports.
const (
	dialTimeout = 10 * time.Second
	keepAlive   = 15 * time.Second
	// readIdleTimeout makes the HTTP/2 transport ping a connection that has
	// been silent this long and drop it when the ping goes unanswered, so a
	// connection a middlebox killed silently is not handed to the next push.
	readIdleTimeout = 15 * time.Second
	// maxErrorBody bounds how much of an error answer is kept in memory.
	maxErrorBody = 64 << 10
)

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}

// newAPNsTransport returns the HTTP/2 transport for an APNs host of the
// given scheme. "http" means h2c with prior knowledge (mocks, load tests):
// http2.Transport dials TLS only through DialTLSContext, so AllowHTTP plus
// a plain TCP dial there gives HTTP/2 without TLS. "https" presents the
// client certificate (certificate auth) and trusts roots (nil = system).
// Either way HTTP/2 writes to a coalescingConn (over TLS, not under it), so
// that concurrent pushes share TLS records and write syscalls.
func newAPNsTransport(scheme string, cert *tls.Certificate, roots *x509.CertPool, proxy ProxyFunc) *http2.Transport {
	if scheme == "http" {
		return &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				c, err := dialProvider(ctx, proxy, scheme, network, addr)
				if err != nil {
					return nil, err
				}
				return newCoalescingConn(c), nil
			},
			ReadIdleTimeout: readIdleTimeout,
		}
	}
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	dial := func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
		return dialH2TLS(ctx, proxy, network, addr, cfg)
	}
	return &http2.Transport{TLSClientConfig: tc, DialTLSContext: dial, ReadIdleTimeout: readIdleTimeout}
}

// dialH2TLS opens a TLS connection for HTTP/2 under a coalescingConn,
// through proxy's choice for addr (dialProvider). cfg is the transport's,
// with ServerName and NextProtos ["h2"] already set; like http2.Transport's
// own dial, it refuses a server that does not choose h2.
func dialH2TLS(ctx context.Context, proxy ProxyFunc, network, addr string, cfg *tls.Config) (net.Conn, error) {
	raw, err := dialProvider(ctx, proxy, "https", network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, err
	}
	if st := tc.ConnectionState(); st.NegotiatedProtocol != http2.NextProtoTLS || !st.NegotiatedProtocolIsMutual {
		tc.Close()
		return nil, fmt.Errorf("%s: server did not agree to HTTP/2 (ALPN %q)", addr, st.NegotiatedProtocol)
	}
	return coalescingTLSConn{newCoalescingConnOver(tc, raw), tc}, nil
}

// newFCMTransport returns the transport for FCM and its OAuth token
// endpoint: HTTP/2 over TLS, plain HTTP/1.1 for an http:// URL; through
// the proxy that proxy names (nil: direct).
func newFCMTransport(roots *x509.CertPool, proxy ProxyFunc) *http.Transport {
	var proxyFor func(*http.Request) (*url.URL, error)
	if proxy != nil {
		proxyFor = proxy.forRequest
	}
	return &http.Transport{
		Proxy:               proxyFor,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: dialTimeout,
	}
}

// tryRecord is what recordingTransport saw of one try. It travels in the
// request context, so the sender reads what the provider libraries do not
// return (the Retry-After header, the HTTP status of an FCM answer). One
// try runs on one goroutine: no lock is needed.
type tryRecord struct {
	requests   int
	status     int
	retryAfter time.Duration
	err        error // the transport error of the last request, nil when it got an answer
	// stop, when set, cancels the try's context. The FCM SDK retries 503s
	// and transport errors on its own (up to 4 times, sleeping up to 4 s);
	// stopping the context ends those retries at once, so Config's
	// MaxAttempts and RetryDelay alone decide.
	stop context.CancelFunc
}

type tryRecordKey struct{}

func withTryRecord(ctx context.Context, r *tryRecord) context.Context {
	return context.WithValue(ctx, tryRecordKey{}, r)
}

// tryContext is a context that carries its own tryRecord: one allocation a
// try, where withTryRecord's record escapes into a second one. It is never
// reused: x/net/http2 may still hold a request's context after RoundTrip
// returns.
type tryContext struct {
	context.Context
	rec tryRecord
}

func newTryContext(parent context.Context) *tryContext { return &tryContext{Context: parent} }

// Value returns the record for tryRecordKey and asks the parent otherwise.
func (c *tryContext) Value(key any) any {
	if _, ok := key.(tryRecordKey); ok {
		return &c.rec
	}
	return c.Context.Value(key)
}

// recordingTransport notes each answer in the request's tryRecord.
type recordingTransport struct {
	next http.RoundTripper
	// buffer reads every answer body into memory before returning it. The
	// FCM SDK retries a failed body read as a network error; reading it
	// here makes the failure ours to stop. FCM answers are small.
	buffer bool
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(tryRecordKey{}).(*tryRecord)
	if rec == nil {
		return t.next.RoundTrip(req)
	}
	rec.requests++
	resp, err := t.next.RoundTrip(req)
	if err == nil && t.buffer {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if err == nil {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
		} else {
			resp = nil
		}
	}
	if err != nil {
		rec.err = err
		if rec.stop != nil {
			rec.stop()
		}
		return nil, err
	}
	rec.err = nil
	rec.status = resp.StatusCode
	rec.retryAfter = parseRetryAfter(resp.Header)
	if rec.stop != nil && resp.StatusCode == http.StatusServiceUnavailable {
		rec.stop()
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the wrapped
// transport; apns2.Client.CloseIdleConnections requires the method.
func (t *recordingTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
