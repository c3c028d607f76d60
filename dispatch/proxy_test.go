package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestWebPushGoesThroughTheProxy: with HTTPS_PROXY set, a Web Push goes
// through a CONNECT tunnel to the push service, TLS to the service inside
// it, and the service decrypts it and accepts its VAPID JWT, whose aud is
// the endpoint's origin as the sender sees it (the proxied name, not the
// listener's address); with the host in NO_PROXY it is dialled directly.
// The push service's name resolves nowhere but in the proxy, so a push
// that succeeds went through it.
func TestWebPushGoesThroughTheProxy(t *testing.T) {
	proxy := testkit.StartProxy(t)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "other.example")

	mock, err := dispatchtest.NewWebPushService(dispatchtest.WebPushOptions{TLS: true, Record: true, Host: "webpush.push-server.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mock.Close() })
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	origins, err := ParseWebPushOrigins(mock.Origin())
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.VAPIDPrivateKey, cfg.VAPIDSubject = priv, testVAPIDSubject
	cfg.WebPushAllowedOrigins = origins
	cfg.RootCAs = mock.RootCAs()
	d := mustNew(t, cfg) // Proxy nil: the environment, read now

	sub := mock.Subscribe(pub)
	for range 2 {
		if err := mustSender(t, d, TypeWebPush).Send(t.Context(), sub, visible()); err != nil {
			t.Fatalf("Web Push through the proxy: %v", err)
		}
	}
	got := mock.Received()
	if len(got) != 2 {
		t.Fatalf("the push service accepted %d pushes, want 2", len(got))
	}
	var payload map[string]string
	if err := json.Unmarshal(got[0].Plaintext, &payload); err != nil || payload["title"] != visible().Title {
		t.Fatalf("the push service decrypted %q (%v); want the notification's JSON with title %q", got[0].Plaintext, err, visible().Title)
	}
	if got[0].Proto != "HTTP/2.0" {
		t.Errorf("the push came over %s; want HTTP/2.0, TLS inside the tunnel", got[0].Proto)
	}
	if got[0].Audience != mock.Origin() || got[0].PublicKey != pub {
		t.Fatalf("the VAPID JWT had aud %q and k %q; want %q and %q", got[0].Audience, got[0].PublicKey, mock.Origin(), pub)
	}
	host := strings.TrimPrefix(mock.Origin(), "https://")
	// Once: the HTTP/2 connection inside the tunnel is reused.
	if seen := proxy.Seen(); !slices.Equal(seen, []string{"CONNECT " + host}) {
		t.Fatalf("the proxy carried %q; want one CONNECT %s", seen, host)
	}

	// NO_PROXY: the push service is dialled directly, where its name does
	// not resolve; the proxy never hears of it.
	t.Setenv("NO_PROXY", "webpush.push-server.test")
	direct := mustNew(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := mustSender(t, direct, TypeWebPush).Send(ctx, sub, visible()); err == nil {
		t.Fatal("a Web Push to a NO_PROXY host that does not resolve succeeded")
	}
	if seen := proxy.Seen(); len(seen) != 1 || mock.Count() != 2 {
		t.Fatalf("after the NO_PROXY push the proxy carried %q and the push service got %d requests; want 1 and 2", seen, mock.Count())
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
