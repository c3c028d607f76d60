package dispatch

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// checkNoToken fails when err's text, or what the sender logged, holds the
// device token.
func checkNoToken(t *testing.T, what string, err error, logs *testkit.SyncBuffer, token string) {
	t.Helper()
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: %v; want a *ProviderError", what, err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("%s: the error text holds the device token: %s", what, err)
	}
	if logs != nil && strings.Contains(logs.String(), token) {
		t.Errorf("%s: the log holds the device token:\n%s", what, logs)
	}
}

// TestProviderErrorsNeverHoldTheToken: apns2 puts the device token in the
// request URL, and net/http quotes that URL in the error of a request that
// got no answer. Such an error becomes a 502 body, a log line and a
// tenant's suspension reason, so it must lose the URL's path on the way,
// and still classify as before.
func TestProviderErrorsNeverHoldTheToken(t *testing.T) {
	t.Run("connection closed", func(t *testing.T) {
		dead := testkit.ClosingServer(t)
		a := newTokenAPNs(t, false, func(c *Config) { c.APNSURL = dead })
		err := a.s.Send(t.Context(), testToken, visible())
		checkNoToken(t, "Send to a server that closes connections", err, nil, testToken)
		var pe *ProviderError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Status != 0 || pe.Cause == nil {
			t.Fatalf("Send to a server that closes connections = %v; want ErrUnavailable with its cause", err)
		}
		// The operator still learns which host failed and how.
		if !strings.Contains(err.Error(), "Post "+dead+":") {
			t.Errorf("the error %q does not name the method and host %s", err, dead)
		}
	})
	t.Run("untrusted server", func(t *testing.T) {
		var logs testkit.SyncBuffer
		a := newTokenAPNs(t, true, func(c *Config) { c.RootCAs, c.Logger = nil, slogTo(&logs) })
		err := a.s.Send(t.Context(), testToken, visible())
		checkNoToken(t, "Send to an untrusted server", err, &logs, testToken)
		if !errors.Is(err, ErrMisconfigured) {
			t.Fatalf("Send to an untrusted server = %v; want ErrMisconfigured (the TLS cause still classifies)", err)
		}
		if !strings.Contains(logs.String(), "certificate") {
			t.Errorf("the log does not say what failed:\n%s", logs.String())
		}
	})
	t.Run("token that breaks the URL", func(t *testing.T) {
		// Before registration refused such tokens, one reached apns2,
		// whose URL then did not parse: net/http quotes it in full.
		a := newTokenAPNs(t, false, nil)
		bad := testToken + "\x7f"
		err := a.s.Send(t.Context(), bad, visible())
		checkNoToken(t, "Send with a control character in the token", err, nil, testToken)
	})
}

// TestTokenEndpointBodyStaysOut: x/oauth2/jwt quotes a refusing token
// endpoint's whole answer in its error. An endpoint that echoes the request
// would thus put our signed assertion (a JWT that buys access tokens for
// an hour) into the 502 body and the log.
func TestTokenEndpointBodyStaysOut(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(append([]byte("refused: "), body...))
	}))
	t.Cleanup(echo.Close)
	var logs testkit.SyncBuffer
	f := newFCM(t, func(c *Config, m *dispatchtest.FCM) {
		c.FCMCredentials = []byte(strings.Replace(string(c.FCMCredentials), m.TokenURL(), echo.URL+"/token", 1))
		c.Logger = slogTo(&logs)
	})
	err := f.s.Send(t.Context(), fcmToken, visible())
	if !errors.Is(err, ErrMisconfigured) {
		t.Fatalf("Send with a refusing token endpoint = %v; want ErrMisconfigured", err)
	}
	for where, text := range map[string]string{"error": err.Error(), "log": logs.String()} {
		if strings.Contains(text, "eyJ") || strings.Contains(text, "assertion") {
			t.Errorf("the token endpoint's answer (our assertion) appears in the %s: %s", where, text)
		}
		if !strings.Contains(text, "400 Bad Request") {
			t.Errorf("the %s does not say the token endpoint answered 400: %s", where, text)
		}
	}
}

func TestCleanCause(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	inner := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	err := cleanCause(&url.Error{Op: "Post", URL: "https://api.push.apple.com/3/device/" + token, Err: inner})
	if got, want := err.Error(), "Post https://api.push.apple.com: read tcp: connection reset by peer"; got != want {
		t.Errorf("cleanCause(*url.Error) = %q; want %q", got, want)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe != inner {
		t.Error("the cleaned error no longer unwraps to the transport error")
	}
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 401, Status: "401 Unauthorized"}, Body: []byte("secret body"),
		ErrorCode: "invalid_grant", ErrorDescription: "Invalid JWT Signature."}
	err = cleanCause(&url.Error{Op: "Post", URL: "https://fcm.googleapis.com/v1/projects/p/messages:send", Err: re})
	if got, want := err.Error(), `Post https://fcm.googleapis.com: oauth2: the token endpoint answered 401 Unauthorized "invalid_grant" "Invalid JWT Signature."`; got != want {
		t.Errorf("cleanCause(RetrieveError) = %q; want %q", got, want)
	}
	// x/oauth2/jwt's refusals carry only the body: its RFC 6749 fields
	// are read from it, and nothing else.
	re = &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400, Status: "400 Bad Request"},
		Body: []byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature.","echo":"secret body"}`)}
	if got, want := cleanCause(re).Error(), `oauth2: the token endpoint answered 400 Bad Request "invalid_grant" "Invalid JWT Signature."`; got != want {
		t.Errorf("cleanCause(RetrieveError from x/oauth2/jwt) = %q; want %q", got, want)
	}
	if got, _ := classifyTransport(err); !errors.Is(got, ErrCredentialsRejected) {
		t.Errorf("a cleaned token refusal classifies as %v; want ErrCredentialsRejected", got)
	}
	pe := &ProviderError{Provider: TypeFCM, Reason: "quoted " + token, Err: ErrUnavailable, Cause: errors.New("x " + token + " y")}
	pe.redactToken(token)
	if strings.Contains(pe.Error(), token) || strings.Contains(pe.Reason, token) || !strings.Contains(pe.Error(), "x <device token> y") {
		t.Errorf("redactToken left %q, reason %q", pe.Error(), pe.Reason)
	}
}
