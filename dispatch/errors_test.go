package dispatch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"golang.org/x/oauth2"
)

func TestClassifyTransport(t *testing.T) {
	f := func(err error, want error, wantRetry bool) {
		t.Helper()
		got, retry := classifyTransport(err)
		if got != want || retry != wantRetry {
			t.Fatalf("classifyTransport(%v) = %v, retry %v; want %v, retry %v", err, got, retry, want, wantRetry)
		}
	}
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://x", Err: err} }
	f(wrap(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), ErrUnavailable, true)
	f(wrap(context.DeadlineExceeded), ErrUnavailable, true)
	f(wrap(fmt.Errorf("read: %w", syscall.ECONNRESET)), ErrUnavailable, true)
	// The token endpoint refusing our assertion is our credentials; its
	// outage is not.
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}}), ErrMisconfigured, false)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}}), ErrMisconfigured, false)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 429}}), ErrUnavailable, true)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}), ErrUnavailable, true)
	// TLS trust, both ways.
	f(wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ErrMisconfigured, false)
	f(wrap(x509.HostnameError{Host: "x"}), ErrMisconfigured, false)
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(42))), ErrMisconfigured, false)  // bad_certificate
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(116))), ErrMisconfigured, false) // certificate_required
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(80))), ErrUnavailable, true)     // internal_error
}

func TestProviderErrorText(t *testing.T) {
	f := func(pe *ProviderError, want string) {
		t.Helper()
		if got := pe.Error(); got != want {
			t.Fatalf("Error() = %q; want %q", got, want)
		}
		if !errors.Is(pe, pe.Err) {
			t.Fatalf("%v does not unwrap to %v", pe, pe.Err)
		}
	}
	f(&ProviderError{Provider: "apns", Status: 410, Reason: "Unregistered", Attempts: 1, Err: ErrTokenDead}, "apns answered 410 Unregistered after 1 attempt(s)")
	f(&ProviderError{Provider: "fcm", Attempts: 3, Err: ErrUnavailable, Cause: errors.New("connection refused")},
		"fcm: no answer after 3 attempt(s): dispatch: provider unavailable (connection refused)")
}
