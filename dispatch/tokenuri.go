package dispatch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// GoogleTokenURIs are the OAuth token endpoints a tenant's service account
// may name when the operator allows nothing more. The first is what Google
// writes in every service-account JSON today and what x/oauth2/google uses
// when token_uri is empty (JWTTokenURL). The second is the one Google wrote
// into keys made before it moved to oauth2.googleapis.com in 2018: such
// keys never expire by default and are still in use, and the endpoint is
// Google's own host, so allowing it lets no tenant reach anything else.
var GoogleTokenURIs = []string{
	"https://oauth2.googleapis.com/token",
	"https://accounts.google.com/o/oauth2/token",
}

// googleOnly is GoogleTokenURIs as a TokenURIs: the list when the operator
// configured none.
var googleOnly = func() *TokenURIs {
	t, err := NewTokenURIs()
	if err != nil {
		panic("BUG: GoogleTokenURIs: " + err.Error())
	}
	return t
}()

// ErrTokenURINotAllowed means a tenant's service account names a token
// endpoint outside the allow-list: the gateway refuses to contact it, as
// it would otherwise POST wherever a tenant asks (internal services, cloud
// metadata endpoints).
var ErrTokenURINotAllowed = errors.New("dispatch: token_uri is not an allowed token endpoint")

// TokenURIs is an allow-list of OAuth token endpoints for tenants' service
// accounts. A URL is allowed when its scheme, host, port and path equal
// those of an entry; a URL with user info, a query or a fragment never is.
// Check on a nil or zero TokenURIs allows nothing (Config and
// CheckFCMCredentials say what their nil means). It is safe for concurrent
// use: read-only after NewTokenURIs.
type TokenURIs struct {
	allowed map[string]bool // by tokenURIKey
}

// NewTokenURIs returns GoogleTokenURIs plus extra, the operator's own
// endpoints (mocks, a proxy in front of Google). Each extra must be an
// absolute https URL, or http for a loopback host (localhost, 127.0.0.0/8,
// ::1) so local mocks work, without user info, query or fragment. Its
// error names the first bad entry.
func NewTokenURIs(extra ...string) (*TokenURIs, error) {
	t := &TokenURIs{allowed: make(map[string]bool, len(GoogleTokenURIs)+len(extra))}
	for _, s := range append(append([]string(nil), GoogleTokenURIs...), extra...) {
		key, err := allowedTokenURIKey(s)
		if err != nil {
			return nil, err
		}
		t.allowed[key] = true
	}
	return t, nil
}

// ParseTokenURIs is NewTokenURIs of a comma-separated list, the form of
// TENANT_FCM_TOKEN_URIS; empty entries are skipped.
func ParseTokenURIs(list string) (*TokenURIs, error) {
	var extra []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			extra = append(extra, s)
		}
	}
	return NewTokenURIs(extra...)
}

// Check returns nil when tokenURI is allowed, else an error wrapping
// ErrTokenURINotAllowed that quotes tokenURI.
func (t *TokenURIs) Check(tokenURI string) error {
	if t != nil {
		if key, ok := tokenURIKey(tokenURI); ok && t.allowed[key] {
			return nil
		}
	}
	return fmt.Errorf("token_uri %q: %w", tokenURI, ErrTokenURINotAllowed)
}

// checkRedirect is an http.Client CheckRedirect that follows a token
// endpoint's redirect only to another allowed endpoint: otherwise an
// allowed endpoint that redirects (a proxy, a mock) would lead the POST
// anywhere.
func (t *TokenURIs) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return t.Check(req.URL.String())
}

// allowedTokenURIKey checks one entry of the allow-list and returns its key.
func allowedTokenURIKey(s string) (string, error) {
	key, ok := tokenURIKey(s)
	if !ok {
		return "", fmt.Errorf("%q is not an absolute http(s) URL without user info, query or fragment", s)
	}
	u, _ := url.Parse(s)
	if strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()) {
		return "", fmt.Errorf("%q is http to a host that is not loopback", s)
	}
	return key, nil
}

// tokenURIKey returns the form under which a token URL is compared:
// lowercase scheme and host, the port without the scheme's default, and
// the path as it goes on the wire. ok is false for anything but a plain
// absolute http(s) URL, so user info ("https://oauth2.googleapis.com@evil"),
// a query or a fragment is never allowed.
func tokenURIKey(s string) (key string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		strings.Contains(s, "#") || u.Host == "" || u.Hostname() == "" {
		return "", false
	}
	origin, ok := originKey(u) // the same origin rules as Web Push's allow-list
	if !ok {
		return "", false
	}
	return origin + u.EscapedPath(), true
}

// loopbackHost reports whether host names this machine only.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redirectGuard is a token fetch's transport and redirect policy when an
// allow-list applies: it follows a redirect only to an allowed endpoint
// (checkRedirect). oauth2 flattens a failed fetch's error to text, so the
// refusal would reach the caller as a plain transport error (at upload, or
// at push time an outage retried as such); the guard remembers it instead,
// until the next fetch starts. oauth2 serialises the fetches of one token
// source, so "the last fetch" is well defined.
type redirectGuard struct {
	allowed *TokenURIs
	next    http.RoundTripper
	refused atomic.Pointer[error] // the last fetch's refused redirect, or nil
}

func (g *redirectGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response == nil { // a fetch's first request, not a redirect
		g.refused.Store(nil)
	}
	return g.next.RoundTrip(req)
}

func (g *redirectGuard) checkRedirect(req *http.Request, via []*http.Request) error {
	err := g.allowed.checkRedirect(req, via)
	if errors.Is(err, ErrTokenURINotAllowed) {
		g.refused.Store(&err)
	}
	return err
}

// refusedRedirect returns the error of a redirect off the list that ended
// the last token fetch, or nil.
func (g *redirectGuard) refusedRedirect() error {
	if g == nil {
		return nil
	}
	if p := g.refused.Load(); p != nil {
		return *p
	}
	return nil
}
