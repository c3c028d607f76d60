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
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}}), ErrCredentialsRejected, false)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}}), ErrCredentialsRejected, false)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 429}}), ErrUnavailable, true)
	f(wrap(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}), ErrUnavailable, true)
	// TLS trust, both ways: our roots refusing the host are the operator's
	// setup; the host refusing our client certificate is our credentials.
	f(wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ErrMisconfigured, false)
	f(wrap(x509.HostnameError{Host: "x"}), ErrMisconfigured, false)
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(42))), ErrCredentialsRejected, false)  // bad_certificate
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(116))), ErrCredentialsRejected, false) // certificate_required
	f(wrap(fmt.Errorf("redirect: %w", ErrTokenURINotAllowed)), ErrCredentialsRejected, false)
	f(wrap(fmt.Errorf("remote error: %w", tls.AlertError(80))), ErrUnavailable, true) // internal_error
}

// TestCredentialRefusalTable is docs/tenants.md's table (APNs, FCM and Web
// Push rows): only the answers
// saying that the host refused our credentials are ErrCredentialsRejected
// (which suspends a tenant's provider for that host); an answer one device
// token can cause never is.
func TestCredentialRefusalTable(t *testing.T) {
	if !errors.Is(ErrCredentialsRejected, ErrMisconfigured) {
		t.Fatal("ErrCredentialsRejected does not match ErrMisconfigured: the router would not answer provider_misconfigured")
	}
	for _, c := range []struct {
		status int
		reason string
		want   error
	}{
		{403, "InvalidProviderToken", ErrCredentialsRejected},
		{403, "ExpiredProviderToken", ErrCredentialsRejected},
		{403, "MissingProviderToken", ErrCredentialsRejected},
		{403, "BadCertificate", ErrCredentialsRejected},
		{403, "BadCertificateEnvironment", ErrCredentialsRejected},
		{403, "BadEnvironmentKeyInToken", ErrCredentialsRejected},
		{403, "Forbidden", ErrMisconfigured},
		{403, "SomethingNew", ErrMisconfigured},
		{400, "BadTopic", ErrMisconfigured},
		{400, "TopicDisallowed", ErrMisconfigured},
		{400, "MissingTopic", ErrMisconfigured},
		{400, "BadDeviceToken", ErrTokenDead},
		{400, "DeviceTokenNotForTopic", ErrTokenDead},
		{410, "Unregistered", ErrTokenDead},
		{429, "TooManyProviderTokenUpdates", ErrUnavailable},
	} {
		if got, _ := classifyAPNs(answer{status: c.status, reason: c.reason}); got != c.want {
			t.Errorf("APNs %d %s = %v; want %v", c.status, c.reason, got, c.want)
		}
	}
	for _, c := range []struct {
		status int
		reason string
		want   error
	}{
		{401, "UNAUTHENTICATED", ErrCredentialsRejected},
		{403, "PERMISSION_DENIED", ErrCredentialsRejected},
		{403, "SENDER_ID_MISMATCH", ErrTokenDead},
		{401, "THIRD_PARTY_AUTH_ERROR", ErrMisconfigured},
		{404, "UNREGISTERED", ErrTokenDead},
		{401, "", ErrMisconfigured},
		{403, "", ErrMisconfigured},
	} {
		if got, _ := classifyFCM(answer{status: c.status, reason: c.reason}); got != c.want {
			t.Errorf("FCM %d %s = %v; want %v", c.status, c.reason, got, c.want)
		}
	}
	// Web Push: the Web Push rows of the table, retries included (API.md,
	// "Web Push", Outcomes).
	for _, c := range []struct {
		a     answer
		want  error
		retry bool
	}{
		{answer{status: 401}, ErrCredentialsRejected, false},
		{answer{status: 403}, ErrTokenDead, false},
		{answer{status: 404}, ErrTokenDead, false},
		{answer{status: 410}, ErrTokenDead, false},
		{answer{status: 400}, ErrMisconfigured, false},
		{answer{status: 413}, ErrPayloadTooLarge, false},
		{answer{status: 429}, ErrUnavailable, true},
		{answer{status: 500}, ErrUnavailable, true},
		{answer{status: 503}, ErrUnavailable, true},
		{answer{status: 307}, ErrUnavailable, false}, // a redirect, not followed
		{answer{err: fmt.Errorf("guard: %w", ErrEndpointNotAllowed)}, ErrMisconfigured, false},
		{answer{err: &url.Error{Op: "Post", URL: "https://x", Err: syscall.ECONNREFUSED}}, ErrUnavailable, true},
	} {
		got, retry := classifyWebPush(c.a)
		if got != c.want || retry != c.retry {
			t.Errorf("Web Push %d %v = %v, retry %v; want %v, retry %v", c.a.status, c.a.err, got, retry, c.want, c.retry)
		}
	}
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
