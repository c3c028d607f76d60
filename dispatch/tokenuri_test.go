package dispatch

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// mustTokenURIs is GoogleTokenURIs plus extra.
func mustTokenURIs(t testing.TB, extra ...string) *TokenURIs {
	t.Helper()
	u, err := NewTokenURIs(extra...)
	if err != nil {
		t.Fatalf("NewTokenURIs(%q): %v", extra, err)
	}
	return u
}

// hitCounter is a server that counts every request it gets: where a
// tenant's token_uri points when the gateway must not go there.
func hitCounter(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

func TestTokenURIsCompareExactly(t *testing.T) {
	allowed := mustTokenURIs(t, "http://127.0.0.1:9999/token")
	for _, u := range []string{
		"https://oauth2.googleapis.com/token",
		"https://accounts.google.com/o/oauth2/token",
		"HTTPS://OAUTH2.GOOGLEAPIS.COM/token", // scheme and host are case-insensitive
		"https://oauth2.googleapis.com:443/token",
		"http://127.0.0.1:9999/token",
	} {
		if err := allowed.Check(u); err != nil {
			t.Errorf("Check(%q) = %v; want allowed", u, err)
		}
	}
	for _, u := range []string{
		"",
		"https://oauth2.googleapis.com/token/",
		"https://oauth2.googleapis.com/Token",
		"https://oauth2.googleapis.com/%74oken",
		"https://oauth2.googleapis.com/token?x=1",
		"https://oauth2.googleapis.com/token?",
		"https://oauth2.googleapis.com/token#x",
		"https://user@oauth2.googleapis.com/token",
		"https://oauth2.googleapis.com@169.254.169.254/token",
		"https://oauth2.googleapis.com.evil.example/token",
		"https://oauth2.googleapis.com./token",
		"https://oauth2.googleapis.com:8443/token",
		"http://oauth2.googleapis.com/token",
		"http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
		"http://127.0.0.1:9998/token",
		"http://localhost:9999/token",
		"http://[::ffff:127.0.0.1]:9999/token",
		"//oauth2.googleapis.com/token",
		"oauth2.googleapis.com/token",
	} {
		err := allowed.Check(u)
		if !errors.Is(err, ErrTokenURINotAllowed) {
			t.Errorf("Check(%q) = %v; want ErrTokenURINotAllowed", u, err)
		}
	}
	var none *TokenURIs
	if none.Check("https://oauth2.googleapis.com/token") == nil {
		t.Error("a nil TokenURIs allowed something")
	}
}

func TestParseTokenURIs(t *testing.T) {
	u, err := ParseTokenURIs(" http://localhost:8080/token , https://token-proxy.internal.example/oauth2/token,,http://[::1]:1/t")
	if err != nil {
		t.Fatalf("ParseTokenURIs: %v", err)
	}
	for _, ok := range []string{"http://localhost:8080/token", "https://token-proxy.internal.example/oauth2/token", "http://[::1]:1/t", GoogleTokenURIs[0]} {
		if err := u.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v; want allowed", ok, err)
		}
	}
	for _, bad := range []string{
		"http://token-proxy.internal.example/token", // http beyond loopback
		"http://169.254.169.254/token",
		"ftp://127.0.0.1/token",
		"/token",
		"127.0.0.1:8080/token",
		"https://user:pw@proxy.example/token",
		"https://proxy.example/token?key=1",
		"https://proxy.example/token#x",
		"https://",
	} {
		if _, err := ParseTokenURIs("https://ok.example/token," + bad); err == nil {
			t.Errorf("ParseTokenURIs accepted %q", bad)
		}
	}
}

func TestCheckFCMCredentialsRefusesDisallowedTokenURIWithoutARequest(t *testing.T) {
	fcm := dispatchtest.StartFCM(t)
	target, hits := hitCounter(t)
	sa := withField(t, fcm.ServiceAccountJSON(testProject), "token_uri", target+"/token")
	ctx, cancel := contextWithTimeout(t, 5*time.Second)
	defer cancel()
	for name, allowed := range map[string]*TokenURIs{
		"nil (Google only)":  nil,
		"another endpoint":   mustTokenURIs(t, fcm.TokenURL()),
		"the same host only": mustTokenURIs(t, target+"/other"),
	} {
		_, err := CheckFCMCredentials(ctx, sa, nil, allowed)
		wantPart(t, name, err, PartFCMCredentials, "token_uri")
		if !errors.Is(err, ErrTokenURINotAllowed) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v; want ErrTokenURINotAllowed only", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the disallowed token_uri got %d requests; want 0", n)
	}
	// Listed, the same account is checked against it.
	if _, err := CheckFCMCredentials(ctx, sa, nil, mustTokenURIs(t, target+"/token")); err != nil || hits.Load() != 1 {
		t.Fatalf("allowed token_uri: err %v, %d requests; want nil and one", err, hits.Load())
	}
}

func TestCheckFCMCredentialsFollowsNoRedirectOffTheList(t *testing.T) {
	fcm := dispatchtest.StartFCM(t)
	target, hits := hitCounter(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+"/token", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	sa := withField(t, fcm.ServiceAccountJSON(testProject), "token_uri", redirector.URL+"/token")
	ctx, cancel := contextWithTimeout(t, 5*time.Second)
	defer cancel()
	_, err := CheckFCMCredentials(ctx, sa, nil, mustTokenURIs(t, redirector.URL+"/token"))
	wantPart(t, "redirect off the list", err, PartFCMCredentials, "redirected")
	if !errors.Is(err, ErrTokenURINotAllowed) {
		t.Errorf("redirect off the list: %v does not wrap ErrTokenURINotAllowed", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests; want 0", n)
	}
}

func TestPoolRefusesStoredDisallowedTokenURIWithoutFetching(t *testing.T) {
	apns := dispatchtest.StartAPNs(t, true)
	fcm := dispatchtest.StartFCM(t)
	base := baseConfig()
	base.APNSURL, base.APNSSandboxURL, base.FCMURL, base.RootCAs = apns.URL(), apns.URL(), fcm.URL(), apns.RootCAs()
	var logs testkit.SyncBuffer
	base.Logger = slogTo(&logs)
	// No FCMTokenURIs: the Pool allows Google's endpoints only, so the
	// mock's token_uri, stored by an older version or allowed before,
	// is refused.
	p := startPool(t, base, 10, 0, nil)

	at := newAPNsTenant(t, testTopic, testKeyID, testTeamID)
	apns.TrustKey(testKeyID, testTeamID, &at.key.key.PublicKey)
	creds := at.creds
	creds.FCMCredentials = fcm.ServiceAccountJSON(testProject)
	d := mustGet(t, p, "stored", 1, creds)
	err := mustSender(t, d, TypeFCM).Send(t.Context(), fcmToken, visible())
	var pe *ProviderError
	if !errors.As(err, &pe) || !errors.Is(err, ErrMisconfigured) || pe.Provider != TypeFCM || pe.Attempts != 0 {
		t.Fatalf("fcm push with a disallowed token_uri: %v; want an fcm ProviderError for ErrMisconfigured, 0 attempts", err)
	}
	if n, sends := fcm.TokenFetches(), fcm.Count(); n != 0 || sends != 0 {
		t.Fatalf("the disallowed token endpoint issued %d tokens and got %d sends; want 0 and 0", n, sends)
	}
	if !errors.Is(pe.Cause, ErrTokenURINotAllowed) {
		t.Errorf("Cause %v does not say the token_uri is not allowed", pe.Cause)
	}
	if got := logs.String(); !strings.Contains(got, "token_uri") {
		t.Errorf("the refusal was not logged for the operator: %q", got)
	}
	// The tenant's other provider is not affected.
	if err := mustSender(t, d, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
		t.Fatalf("APNs push of the same tenant: %v", err)
	}
}

// TestFCMPushWhoseTokenFetchIsRedirectedOffTheListIsMisconfigured: the
// tenant's token endpoint is allowed but redirects elsewhere at push time.
// The redirect is not followed, and the push fails as the tenant's setup
// (ErrMisconfigured, which suspends the tenant's FCM), not as an outage
// that would be retried for ever.
func TestFCMPushWhoseTokenFetchIsRedirectedOffTheListIsMisconfigured(t *testing.T) {
	apns := dispatchtest.StartAPNs(t, true)
	fcm := dispatchtest.StartFCM(t)
	target, hits := hitCounter(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+"/token", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	base := baseConfig()
	base.APNSURL, base.APNSSandboxURL, base.FCMURL, base.RootCAs = apns.URL(), apns.URL(), fcm.URL(), apns.RootCAs()
	base.FCMTokenURIs = mustTokenURIs(t, redirector.URL+"/token")
	p := startPool(t, base, 10, 0, nil)

	at := newAPNsTenant(t, testTopic, testKeyID, testTeamID)
	apns.TrustKey(testKeyID, testTeamID, &at.key.key.PublicKey)
	creds := at.creds
	creds.FCMCredentials = withField(t, fcm.ServiceAccountJSON(testProject), "token_uri", redirector.URL+"/token")
	d := mustGet(t, p, "redirected", 1, creds)
	err := mustSender(t, d, TypeFCM).Send(t.Context(), fcmToken, visible())
	var pe *ProviderError
	if !errors.As(err, &pe) || !errors.Is(err, ErrMisconfigured) || pe.Provider != TypeFCM {
		t.Fatalf("fcm push whose token fetch is redirected off the list: %v; want an fcm ProviderError for ErrMisconfigured", err)
	}
	if pe.Attempts != 1 {
		t.Errorf("%d attempts; want 1 (a misconfiguration is not retried)", pe.Attempts)
	}
	if !errors.Is(pe.Cause, ErrTokenURINotAllowed) {
		t.Errorf("Cause %v does not say the redirect target is not allowed", pe.Cause)
	}
	if n, sends := hits.Load(), fcm.Count(); n != 0 || sends != 0 {
		t.Fatalf("the redirect target got %d requests and FCM %d sends; want 0 and 0", n, sends)
	}
}
