package testkit

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// ProxyHostSuffix ends the host names a Proxy resolves: a request for
// "name.test:port" goes to 127.0.0.1:port. A provider URL with such a host
// is reachable only through the proxy (the .test domain is reserved and
// never resolves), and Go's proxy rules would never send a loopback
// address or localhost to a proxy in the first place.
const ProxyHostSuffix = ".test"

// Proxy is an outbound HTTP proxy for tests, as an egress proxy is: it
// tunnels CONNECT (what https:// traffic uses) and forwards plain requests
// with an absolute URI (http:// traffic). It reaches only hosts ending in
// ProxyHostSuffix, on 127.0.0.1, and refuses any other with 403, so a test
// never sends traffic off the machine. It records what it carried.
type Proxy struct {
	// URL is the proxy's address, for HTTPS_PROXY or HTTP_PROXY.
	URL string

	srv     *httptest.Server
	forward *http.Transport
	mu      sync.Mutex
	seen    []string
	tunnels map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// StartProxy starts a Proxy on 127.0.0.1; it stops, with every tunnel it
// holds, in t.Cleanup.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	p := &Proxy{tunnels: make(map[net.Conn]struct{})}
	p.forward = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, loopbackFor(addr))
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	t.Cleanup(p.close)
	return p
}

// Seen returns what the proxy carried, in order: "CONNECT host:port" for a
// tunnel, "METHOD http://host:port/path" for a forwarded request.
func (p *Proxy) Seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func (p *Proxy) note(s string) {
	p.mu.Lock()
	p.seen = append(p.seen, s)
	p.mu.Unlock()
}

// loopbackFor maps "name.test:port" to "127.0.0.1:port"; "" for any other
// address.
func loopbackFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !strings.HasSuffix(host, ProxyHostSuffix) {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.note("CONNECT " + r.Host)
		p.tunnel(w, r)
		return
	}
	p.note(r.Method + " " + r.URL.Scheme + "://" + r.URL.Host + r.URL.Path)
	if !r.URL.IsAbs() || loopbackFor(hostPort(r.URL.Host, r.URL.Scheme)) == "" {
		http.Error(w, "this proxy only reaches *"+ProxyHostSuffix+" hosts", http.StatusForbidden)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	resp, err := p.forward.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// hostPort adds the scheme's default port to host when it has none.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(host, "443")
	}
	return net.JoinHostPort(host, "80")
}

func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	target := loopbackFor(r.Host)
	if target == "" {
		http.Error(w, "this proxy only reaches *"+ProxyHostSuffix+" hosts", http.StatusForbidden)
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	down, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !p.track(up, down) {
		return
	}
	_, _ = rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	if err := rw.Flush(); err != nil {
		p.untrack(up, down)
		return
	}
	// What the client sent before our answer arrived is in rw's reader.
	p.wg.Add(2)
	go p.pipe(up, rw.Reader, down)
	go p.pipe(down, up, up)
}

// pipe copies until either side ends, then closes both.
func (p *Proxy) pipe(dst io.Writer, src io.Reader, other net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	if c, ok := dst.(net.Conn); ok {
		p.untrack(c, other)
	}
}

// track registers a tunnel's two ends; false (both closed) when the proxy
// is already closed.
func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tunnels == nil {
		a.Close()
		b.Close()
		return false
	}
	p.tunnels[a], p.tunnels[b] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) untrack(a, b net.Conn) {
	p.mu.Lock()
	if p.tunnels != nil {
		delete(p.tunnels, a)
		delete(p.tunnels, b)
	}
	p.mu.Unlock()
	a.Close()
	b.Close()
}

func (p *Proxy) close() {
	p.srv.Close()
	p.mu.Lock()
	for c := range p.tunnels {
		c.Close()
	}
	p.tunnels = nil
	p.mu.Unlock()
	p.wg.Wait()
	p.forward.CloseIdleConnections()
}
