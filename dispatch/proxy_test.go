package dispatch

import (
	"bytes"
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// viaName rewrites a mock's 127.0.0.1 URL to host name, which only the
// test proxy resolves (testkit.Proxy).
func viaName(u, name string) string { return strings.Replace(u, "127.0.0.1", name, 1) }

// TestProvidersGoThroughTheProxy: with HTTPS_PROXY and HTTP_PROXY set, the
// APNs pushes (a CONNECT tunnel, TLS to APNs inside it), the FCM pushes
// and the OAuth token fetch all go through the proxy; a host in NO_PROXY
// is dialled directly. The providers' host names resolve nowhere but in
// the proxy, so a push that succeeds went through it.
func TestProvidersGoThroughTheProxy(t *testing.T) {
	proxy := testkit.StartProxy(t)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "sandbox.push-server.test,other.example")

	key := newAPNsKey(t)
	prod, sandbox := dispatchtest.StartAPNs(t, true), dispatchtest.StartAPNs(t, true)
	prod.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	sandbox.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	fcm := dispatchtest.StartFCM(t)
	roots := prod.RootCAs()
	roots.AppendCertsFromPEM(sandbox.CertPEM())

	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	cfg.APNSURL = viaName(prod.URL(), "apns.push-server.test")
	cfg.APNSSandboxURL = viaName(sandbox.URL(), "sandbox.push-server.test")
	cfg.RootCAs = roots
	cfg.FCMURL = viaName(fcm.URL(), "fcm.push-server.test")
	cfg.FCMCredentials = bytes.ReplaceAll(fcm.ServiceAccountJSON(testProject), []byte("127.0.0.1"), []byte("fcm.push-server.test"))
	d := mustNew(t, cfg) // Proxy nil: the environment, read now

	for range 2 {
		if err := mustSender(t, d, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("APNs push through the proxy: %v", err)
		}
		if err := mustSender(t, d, TypeFCM).Send(t.Context(), fcmToken, visible()); err != nil {
			t.Fatalf("FCM push through the proxy: %v", err)
		}
	}
	if prod.Count() != 2 || fcm.Count() != 2 || fcm.TokenFetches() != 1 {
		t.Fatalf("APNs got %d pushes, FCM %d and %d token fetches; want 2, 2, 1", prod.Count(), fcm.Count(), fcm.TokenFetches())
	}
	apnsHost := strings.TrimPrefix(cfg.APNSURL, "https://")
	fcmBase := cfg.FCMURL
	seen := proxy.Seen()
	want := []string{
		"CONNECT " + apnsHost, // once: the HTTP/2 connection is reused
		"POST " + fcmBase + "/token",
		"POST " + fcmBase + "/v1/projects/" + testProject + "/messages:send",
		"POST " + fcmBase + "/v1/projects/" + testProject + "/messages:send",
	}
	got := slices.Clone(seen)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the proxy carried\n%s\nwant (in any order)\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	// NO_PROXY: the sandbox host is dialled directly, where its name does
	// not resolve; the proxy never hears of it.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := mustSender(t, d, TypeAPNSSandbox).Send(ctx, testToken, visible()); err == nil {
		t.Fatal("a push to a NO_PROXY host that does not resolve succeeded")
	}
	for _, s := range proxy.Seen() {
		if strings.Contains(s, "sandbox") {
			t.Fatalf("the proxy carried %q, a NO_PROXY host", s)
		}
	}
	if sandbox.Count() != 0 {
		t.Fatalf("the sandbox mock got %d pushes", sandbox.Count())
	}
}

// TestProxyFromEnvironmentRules: the rules are net/http's, read when the
// function is made (not cached for the process, as
// http.ProxyFromEnvironment is).
func TestProxyFromEnvironmentRules(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://egress.internal:3128")
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("NO_PROXY", ".corp.example,10.0.0.0/8,fcm.example:8443")
	p := ProxyFromEnvironment()
	for target, want := range map[string]string{
		"https://api.push.apple.com":             "http://egress.internal:3128",
		"https://fcm.googleapis.com":             "http://egress.internal:3128",
		"https://mock.corp.example":              "", // NO_PROXY domain
		"https://10.1.2.3:443":                   "", // NO_PROXY CIDR
		"https://fcm.example:8443":               "", // NO_PROXY host:port
		"https://fcm.example":                    "http://egress.internal:3128",
		"http://fcm.googleapis.com":              "", // HTTP_PROXY unset
		"https://127.0.0.1:2197":                 "", // loopback: never proxied
		"https://localhost:2197":                 "",
		"https://oauth2.googleapis.com/token":    "http://egress.internal:3128",
		"https://api.sandbox.push.apple.com:443": "http://egress.internal:3128",
	} {
		u, _ := url.Parse(target)
		got, err := p(u)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		gotS := ""
		if got != nil {
			gotS = got.String()
		}
		if gotS != want {
			t.Errorf("proxy for %s = %q; want %q", target, gotS, want)
		}
	}
	t.Setenv("HTTPS_PROXY", "http://other.internal:8080")
	if got, _ := ProxyFromEnvironment()(&url.URL{Scheme: "https", Host: "api.push.apple.com"}); got == nil || got.Host != "other.internal:8080" {
		t.Errorf("a later ProxyFromEnvironment did not see the changed environment: %v", got)
	}
}
