package dispatch

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// ProxyFunc picks the outbound proxy for a provider URL: nil for a direct
// connection. It has the shape of httpproxy.Config.ProxyFunc.
type ProxyFunc func(target *url.URL) (*url.URL, error)

// ProxyFromEnvironment returns the proxy choice of HTTPS_PROXY, HTTP_PROXY
// and NO_PROXY (or their lowercase forms), read now, by the same rules as
// net/http's ProxyFromEnvironment (whose code this is: net/http vendors
// httpproxy): https URLs use HTTPS_PROXY, http ones HTTP_PROXY; NO_PROXY
// lists hosts, domains (".example.com" or "example.com" for its
// subdomains too) and CIDRs to reach directly; localhost and loopback
// addresses are never proxied. Unlike http.ProxyFromEnvironment it is
// not cached for the process, so a Dispatcher built later sees the
// environment as it is then.
//
// APNs (dialProvider), FCM, Web Push and the OAuth token fetch
// (newFCMTransport's Proxy) all go through the proxy it names; another
// provider client should build its transport with newFCMTransport(roots,
// cfg.Proxy), or dial with dialProvider, so that it does too.
func ProxyFromEnvironment() ProxyFunc {
	return httpproxy.FromEnvironment().ProxyFunc()
}

// forRequest adapts p to http.Transport.Proxy.
func (p ProxyFunc) forRequest(req *http.Request) (*url.URL, error) { return p(req.URL) }

// dialProvider opens a TCP connection to addr, a provider host of the
// given URL scheme, through the proxy p names for it, if any: for
// http.Transport-less clients (the APNs HTTP/2 transport dials its own
// connections, so it must tunnel itself). Through a proxy the connection
// is an HTTP CONNECT tunnel to addr (for an https:// proxy, inside TLS to
// the proxy); the caller speaks TLS or h2c over it as over a direct one.
func dialProvider(ctx context.Context, p ProxyFunc, scheme, network, addr string) (net.Conn, error) {
	var proxy *url.URL
	if p != nil {
		var err error
		if proxy, err = p(&url.URL{Scheme: scheme, Host: addr}); err != nil {
			return nil, fmt.Errorf("proxy for %s: %w", addr, err)
		}
	}
	if proxy == nil {
		return dialer.DialContext(ctx, network, addr)
	}
	return dialConnect(ctx, proxy, addr)
}

// dialConnect opens a CONNECT tunnel to addr through proxy (http:// or
// https://, with optional user:password for Basic Proxy-Authorization).
func dialConnect(ctx context.Context, proxy *url.URL, addr string) (net.Conn, error) {
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		port := "80"
		if proxy.Scheme == "https" {
			port = "443"
		}
		proxyAddr = net.JoinHostPort(proxy.Hostname(), port)
	}
	conn, err := dialer.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	switch proxy.Scheme {
	case "http":
	case "https":
		tc := tls.Client(conn, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
		}
		conn = tc
	default:
		conn.Close()
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported for CONNECT (want http or https)", proxyAddr, proxy.Scheme)
	}
	// The handshake runs under ctx's deadline; the tunnel then lives as
	// long as the connection.
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	err = req.Write(conn)
	var resp *http.Response
	if err == nil {
		// The proxy says nothing after its answer until we speak (TLS or
		// h2c begins with the client), so nothing the reader buffers past
		// the header belongs to the tunnel; a proxy that sent more is
		// refused rather than losing those bytes.
		br := bufio.NewReader(conn)
		resp, err = http.ReadResponse(br, req)
		// resp.Body is not closed: a CONNECT answer's body is the tunnel.
		if err == nil {
			if br.Buffered() > 0 {
				err = fmt.Errorf("proxy sent %d bytes past its answer to CONNECT", br.Buffered())
			}
		}
	}
	if !stop() {
		err = ctx.Err()
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("CONNECT %s: %s", addr, strings.TrimSpace(resp.Status))
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}
