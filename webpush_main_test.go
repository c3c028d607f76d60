package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/dispatch"
	"push-server/internal/testkit"
)

// vapidPair makes a key pair with the vapid-keygen command, as an operator
// would, and reads it back from its env-file lines.
func vapidPair(t *testing.T) (priv, pub string) {
	t.Helper()
	var out bytes.Buffer
	if code := run([]string{"vapid-keygen"}, envMap(nil), &out, os.Stderr); code != 0 {
		t.Fatal("vapid-keygen failed")
	}
	m := regexp.MustCompile(`^VAPID_PUBLIC_KEY=([A-Za-z0-9_-]{87})\nVAPID_PRIVATE_KEY=([A-Za-z0-9_-]{43})\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("vapid-keygen printed %q; want VAPID_PUBLIC_KEY=<87 base64url> and VAPID_PRIVATE_KEY=<43 base64url>, a line each", out.String())
	}
	return m[2], m[1]
}

// TestVAPIDKeygenPrintsAWorkingPair: the pair vapid-keygen prints is one
// key (the public key is the private key's), new each time, and serve
// accepts it.
func TestVAPIDKeygenPrintsAWorkingPair(t *testing.T) {
	priv, pub := vapidPair(t)
	if derived, err := dispatch.CheckVAPID(priv, "mailto:ops@example.com"); err != nil || derived != pub {
		t.Fatalf("the printed private key derives %q, %v; the printed public key is %q", derived, err, pub)
	}
	if again, _ := vapidPair(t); again == priv {
		t.Fatal("vapid-keygen printed the same key twice")
	}
	c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey,
		"VAPID_PRIVATE_KEY": priv, "VAPID_SUBJECT": "mailto:ops@example.com", "VAPID_PUBLIC_KEY": pub}))
	if err != nil || c.dispatch.VAPIDPrivateKey != priv || c.dispatch.VAPIDSubject != "mailto:ops@example.com" {
		t.Fatalf("the printed pair in the environment: %v", err)
	}
	d, err := dispatch.New(c.dispatch)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Available(dispatch.TypeWebPush) || d.VAPIDPublicKey() != pub {
		t.Fatalf("with VAPID_PRIVATE_KEY set, webpush available = %v and its public key %q; want true and %q", d.Available(dispatch.TypeWebPush), d.VAPIDPublicKey(), pub)
	}
}

// TestWebPushSettings: each Web Push variable is read, and a bad one stops
// start-up with one line naming it, through check as through serve.
func TestWebPushSettings(t *testing.T) {
	priv, pub := vapidPair(t)
	_, otherPub := vapidPair(t)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"RELAY_PUBLIC_KEY": testKey, "DATA_DIR": t.TempDir()}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	c, err := parseConfig(envMap(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.dispatch.VAPIDPrivateKey != "" || c.dispatch.WebPushTTL != 86400*time.Second ||
		c.router.WebPushAllowedOrigins != nil {
		t.Fatalf("defaults: key set %v, TTL %s, origins %v; want no key, 86400 s, none", c.dispatch.VAPIDPrivateKey != "", c.dispatch.WebPushTTL, c.router.WebPushAllowedOrigins)
	}
	c, err = parseConfig(envMap(base("WEBPUSH_TTL", "3600", "WEBPUSH_ALLOWED_ORIGINS", "push.example.com, http://127.0.0.1:9000")))
	if err != nil {
		t.Fatal(err)
	}
	if c.dispatch.WebPushTTL != time.Hour {
		t.Errorf("WEBPUSH_TTL=3600: %s; want 1h", c.dispatch.WebPushTTL)
	}
	// Registration (router) and sending (dispatch, and the tenants' Pool
	// built from it) hold endpoints to the one list.
	if c.router.WebPushAllowedOrigins == nil || c.router.WebPushAllowedOrigins != c.dispatch.WebPushAllowedOrigins {
		t.Fatal("WEBPUSH_ALLOWED_ORIGINS did not reach both the router and dispatch")
	}
	for endpoint, ok := range map[string]bool{
		"https://push.example.com/s/1": true, "http://127.0.0.1:9000/s/1": true, "https://fcm.googleapis.com/fcm/send/x": true,
		"https://push.example.org/s/1": false, "http://127.0.0.1:9001/s/1": false, "http://push.example.com/s/1": false,
	} {
		if got := c.router.WebPushAllowedOrigins.Check(endpoint) == nil; got != ok {
			t.Errorf("endpoint %s allowed = %v; want %v", endpoint, got, ok)
		}
	}

	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{base("VAPID_PRIVATE_KEY", "not-a-key", "VAPID_SUBJECT", "mailto:ops@example.com"), "VAPID_PRIVATE_KEY"},
		{base("VAPID_PRIVATE_KEY", priv), "VAPID_SUBJECT"},
		{base("VAPID_PRIVATE_KEY", priv, "VAPID_SUBJECT", "ops@example.com"), "VAPID_SUBJECT"},
		{base("VAPID_PRIVATE_KEY", priv, "VAPID_SUBJECT", "mailto:ops@example.com", "VAPID_PUBLIC_KEY", otherPub), "VAPID_PUBLIC_KEY"},
		{base("VAPID_PUBLIC_KEY", pub), "VAPID_PUBLIC_KEY"},
		{base("WEBPUSH_TTL", "soon"), "WEBPUSH_TTL"},
		{base("WEBPUSH_TTL", "0"), "WEBPUSH_TTL"},
		{base("WEBPUSH_TTL", "3000h"), "WEBPUSH_TTL"},
		{base("WEBPUSH_ALLOWED_ORIGINS", "http://push.example.com"), "WEBPUSH_ALLOWED_ORIGINS"},
		{base("WEBPUSH_ALLOWED_ORIGINS", "https://push.example.com/path"), "WEBPUSH_ALLOWED_ORIGINS"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check"}, envMap(tc.env), &stdout, &stderr)
		line := stderr.String()
		if code != 2 || !strings.HasPrefix(line, "push-server: configuration: "+tc.want) || strings.Count(line, "\n") != 1 {
			t.Errorf("check with %v: exit %d, %q; want 2 and one line naming %s", tc.env, code, line, tc.want)
		}
		if strings.Contains(line, priv) {
			t.Errorf("check's line quotes the private key: %q", line)
		}
	}
	// The mismatch line says which public key the private key has.
	var stderr bytes.Buffer
	run([]string{"check"}, envMap(base("VAPID_PRIVATE_KEY", priv, "VAPID_SUBJECT", "mailto:ops@example.com", "VAPID_PUBLIC_KEY", otherPub)), &bytes.Buffer{}, &stderr)
	if !strings.Contains(stderr.String(), pub) {
		t.Errorf("the mismatch line %q does not give the derived public key %s", stderr.String(), pub)
	}
	var stdout bytes.Buffer
	if code := run([]string{"check"}, envMap(base("VAPID_PRIVATE_KEY", priv, "VAPID_SUBJECT", "https://wallet.example.com/contact", "VAPID_PUBLIC_KEY", pub)), &stdout, &stderr); code != 0 {
		t.Fatalf("check with a matching pair: exit %d, %s", code, stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer that a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMockProvidersPrintsTheWebPushOrigin: mock-providers starts the mock
// push service too, and the WEBPUSH_ALLOWED_ORIGINS it prints, put in the
// environment, lets the gateway take the mock's subscriptions.
func TestMockProvidersPrintsTheWebPushOrigin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- mockProviders(ctx, []string{"--apns=", "--fcm=", "--webpush="}, &out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mock-providers: %v", err)
		}
	}()
	testkit.Eventually(t, 10*time.Second, "mock-providers to print its settings", func() bool {
		return strings.Contains(out.String(), "WEBPUSH_ALLOWED_ORIGINS=")
	})
	env := map[string]string{"RELAY_PUBLIC_KEY": testKey}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = strings.Trim(v, "'")
	}
	origin := env["WEBPUSH_ALLOWED_ORIGINS"]
	if !strings.HasPrefix(origin, "http://127.0.0.1:") {
		t.Fatalf("WEBPUSH_ALLOWED_ORIGINS=%q; want the mock's loopback origin", origin)
	}
	// A subscription made at the mock, as a browser would.
	priv, pub := vapidPair(t)
	resp, err := http.Post(origin+"/subscribe", "application/json", strings.NewReader(`{"applicationServerKey":"`+pub+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 201 {
		t.Fatalf("POST %s/subscribe: %d %s", origin, resp.StatusCode, sub)
	}
	env["VAPID_PRIVATE_KEY"], env["VAPID_SUBJECT"] = priv, "mailto:ops@example.com"
	c, err := parseConfig(envMap(env))
	if err != nil {
		t.Fatalf("the printed settings do not configure the gateway: %v", err)
	}
	if err := dispatch.CheckWebPushSubscription(string(sub), c.router.WebPushAllowedOrigins); err != nil {
		t.Fatalf("with the printed WEBPUSH_ALLOWED_ORIGINS the mock's subscription is refused: %v", err)
	}
	if err := dispatch.CheckWebPushSubscription(string(sub), nil); err == nil {
		t.Fatal("the mock's subscription passes without WEBPUSH_ALLOWED_ORIGINS: the check above proves nothing")
	}
}
