package router

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
	"push-server/verify"
)

// setClock replaces fasthttpLog's clock.
func (l *fasthttpLog) setClock(now func() time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
}

// printfCalls is how many lines fasthttp asked for, written or withheld.
func (l *fasthttpLog) printfCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// steppingClock is a clock that moves by step on every reading.
type steppingClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *steppingClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *steppingClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// raw writes req on a connection of its own and returns what the server
// answered before it closed the connection.
func (h *harness) raw(req string) string {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		h.t.Fatal(err)
	}
	answer, _ := io.ReadAll(c)
	return string(answer)
}

// TestTokensAndCredentialsStayOutOfLogsAndAnswers makes pushes fail in
// every way a provider can fail them (APNs and FCM answering errors, a
// provider closing the connection, an untrusted TLS server, a tenant's
// provider suspended over it) and sends malformed requests that carry a
// client JWT and a relay signature, then greps the server's log (at
// debug), every answer and /metrics for the device tokens, the JWT and the
// signature.
func TestTokensAndCredentialsStayOutOfLogsAndAnswers(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	key, p8 := testkit.NewP8(t)
	sandbox := dispatchtest.StartAPNs(t, true)
	sandbox.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	untrusted := dispatchtest.StartAPNs(t, true) // its certificate is in no pool of ours
	fcm := dispatchtest.StartFCM(t)
	dead := testkit.ClosingServer(t)
	noDelay := func(int, time.Duration) time.Duration { return 0 }

	const (
		prodTok          = "deadbeef00000000000000000000000000000000000000000000000000000001"
		sandboxTok       = "deadbeef00000000000000000000000000000000000000000000000000000002"
		tenantAPNsTok    = "deadbeef00000000000000000000000000000000000000000000000000000003"
		tenantSandboxTok = "deadbeef00000000000000000000000000000000000000000000000000000004"
		fcmTok           = "fcmLeakCheck1:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
		tenantFCMTok     = "fcmLeakCheck2:APA91bHun4MxP5egoKMwt2KZFBaFUH-2RYqx"
		tenantJWTSecret  = "tenant-jwt-secret-for-the-leak-test"
	)
	// The operator's providers: production APNs drops every connection
	// (the *url.Error path, token in its URL), sandbox APNs and FCM answer
	// what they are told.
	base := dispatch.Config{
		Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID, APNSPKCS8PEM: p8,
			FCMCredentials: fcm.ServiceAccountJSON(fcmProject)},
		APNSURL: dead, APNSSandboxURL: sandbox.URL(), RootCAs: sandbox.RootCAs(),
		FCMURL:      fcm.URL(),
		MaxAttempts: 2, RetryDelay: noDelay, Logger: logger,
	}
	// Tenants' providers: production APNs does not know the tenant's key
	// (403 InvalidProviderToken, which suspends the tenant's production
	// host), the sandbox host is a server we do not trust (a TLS refusal:
	// the *url.Error path, not a suspension, docs/tenants.md), FCM drops
	// every connection.
	shared := dispatch.Config{
		APNSURL: sandbox.URL(), APNSSandboxURL: untrusted.URL(), FCMURL: dead, RootCAs: sandbox.RootCAs(),
		MaxAttempts: 2, RetryDelay: noDelay, Logger: logger,
	}
	var err error
	if shared.FCMTokenURIs, err = dispatch.NewTokenURIs(fcm.TokenURL()); err != nil {
		t.Fatal(err)
	}
	pool := dispatch.NewPool(shared, 10, time.Minute)
	t.Cleanup(func() { pool.Close() })
	vault, err := dispatch.NewVault([]byte("vault-key-0123456789-abcdefghijk"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, options{
		dispatch:  base,
		configure: func(c *Config) { c.Logger = logger; c.ServeMetrics = true },
		deps: func(d *Deps) {
			d.Tenants = d.Store.(cache.Tenants)
			d.TenantAuth = &verify.TenantAuth{Secret: []byte(tenantJWTSecret), Leeway: time.Minute}
			d.Vault, d.Pool = vault, pool
		},
	})
	// Every fasthttp line is written, so that every one is checked.
	fl := h.srv.http.Logger.(*fasthttpLog)
	fl.setClock((&steppingClock{t: time.Now(), step: time.Hour}).now)

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	did := verify.DIDKey(pub)
	jwt := clientJWT(t, priv, h.url, time.Now(), time.Now().Add(time.Hour))
	sigBody := `{"topic":"t","tag":1,"message":"signed"}`
	sig := h.signed(sigBody, time.Now().Unix())["X-Ed25519-Signature"]

	var answers bytes.Buffer
	do := func(method, path, body string, header map[string]string) reply {
		t.Helper()
		r := h.do(method, path, body, header)
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, path, r.status, r.header, r.body)
		return r
	}
	register := func(path, id, typ, token string, header map[string]string) {
		t.Helper()
		body := fmt.Sprintf(`{"client_id":%q,"type":%q,"token":%q}`, id, typ, token)
		if r := do("POST", path, body, header); r.status != 200 {
			t.Fatalf("register %s: %d %s", id, r.status, r.body)
		}
	}
	send := func(path string, i int, want int) {
		t.Helper()
		body := fmt.Sprintf(`{"topic":"t","tag":1,"message":"m-%d"}`, i)
		if r := do("POST", path, body, h.signed(body, time.Now().Unix())); r.status != want {
			t.Errorf("send %d to %s: %d %s; want %d", i, path, r.status, r.body, want)
		}
	}

	register("/clients", "prod", "apns", prodTok, nil)
	register("/clients", did, "apns-sandbox", sandboxTok, map[string]string{"Authorization": "Bearer " + jwt})
	register("/clients", "droid", "fcm", fcmTok, nil)
	sandbox.Script(sandboxTok,
		dispatchtest.Answer{Status: 500}, dispatchtest.Answer{Status: 500}, // retried, then 502
		dispatchtest.Answer{Reason: "InvalidProviderToken", Status: 403},
		dispatchtest.Answer{Reason: "TooManyProviderTokenUpdates", Status: 429},
		dispatchtest.Answer{Reason: "BadDeviceToken"}) // the client is removed
	fcm.Script(fcmTok,
		dispatchtest.Answer{Reason: "INTERNAL"}, dispatchtest.Answer{Reason: "INTERNAL"},
		dispatchtest.Answer{Reason: "PERMISSION_DENIED"},
		dispatchtest.Answer{Reason: "INVALID_ARGUMENT"},
		dispatchtest.Answer{Reason: "UNREGISTERED"})
	for i := range 2 {
		send("/clients/prod", i, 502)
	}
	sandboxID := strings.TrimPrefix(did, "did:key:")
	for i, want := range []int{502, 502, 502, 410} {
		send("/clients/"+sandboxID, i, want)
	}
	for i := range 4 {
		send("/clients/droid", i, map[int]int{0: 502, 1: 502, 2: 502, 3: 410}[i])
	}

	// A tenant whose APNs host is not trusted and whose FCM drops
	// connections.
	tenantAuth := map[string]string{"Authorization": "Bearer " + verify.SignTenantToken([]byte(tenantJWTSecret), "acme", time.Hour, time.Now())}
	if r := do("POST", "/tenants", `{"id":"acme"}`, tenantAuth); r.status != 200 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	_, tenantP8 := testkit.NewP8(t)
	for path, parts := range map[string]map[string]string{
		"/apns":   {"apns_topic": "com.example.acme", "apns_pkcs8_pem": "@" + string(tenantP8), "apns_key_id": "KEY1234567", "apns_team_id": "TEAM123456"},
		"/fcm_v1": {"credentials": "@" + string(fcm.ServiceAccountJSON("tenant-project"))},
	} {
		body, ct := multipartBody(t, parts)
		hdr := map[string]string{"Authorization": tenantAuth["Authorization"], "Content-Type": ct}
		if r := do("POST", "/tenants/acme"+path, body, hdr); r.status != 200 {
			t.Fatalf("upload %s: %d %s", path, r.status, r.body)
		}
	}
	register("/acme/clients", "ios", "apns", tenantAPNsTok, nil)
	register("/acme/clients", "ios-dev", "apns-sandbox", tenantSandboxTok, nil)
	register("/acme/clients", "droid", "fcm", tenantFCMTok, nil)
	for i := range 2 {
		send("/acme/clients/ios", i, 502) // the second one meets the suspension
		send("/acme/clients/ios-dev", i, 502)
		send("/acme/clients/droid", i, 502)
	}
	do("GET", "/tenants/acme", "", tenantAuth)

	// Malformed requests carrying the JWT and the relay signature, in
	// places where fasthttp quotes what it refuses, and in requests the
	// router refuses.
	malformed := []string{
		"POST /clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + jwt + "\x01\r\n\r\n",
		"POST /clients/x HTTP/1.1\r\nHost: a\r\nX-Ed25519-Signature: " + sig + "\x01\r\n\r\n",
		"POST /clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + jwt + "\r\nX-Ed25519-Signature: " + sig + "\r\nno colon here\r\n\r\n",
		"HELLO " + jwt + "\r\nAuthorization: Bearer " + jwt + "\r\n\r\n",
		"POST /clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + jwt + "\r\nContent-Length: 1000000\r\n\r\n{",
	}
	for _, req := range malformed {
		fmt.Fprintf(&answers, "raw -> %s\n", h.raw(req))
	}
	do("POST", "/clients", `{"client_id":`, map[string]string{"Authorization": "Bearer " + jwt})
	do("POST", "/clients", `{"client_id":"`+did+`","type":"apns","token":"`+prodTok+`"}`, map[string]string{"Authorization": "Bearer " + jwt + "x"})
	do("POST", "/clients/prod", `{"topic":`, map[string]string{"X-Ed25519-Timestamp": "1", "X-Ed25519-Signature": sig})
	do("POST", "/clients/prod", sigBody+" ", map[string]string{"X-Ed25519-Timestamp": fmt.Sprint(time.Now().Unix()), "X-Ed25519-Signature": sig})
	// fasthttp logs a refused request after its answer is written.
	testkit.Eventually(t, 5*time.Second, "fasthttp logs the malformed requests", func() bool { return fl.printfCalls() >= len(malformed) })

	metrics := do("GET", "/metrics", "", nil)
	logText := logs.String()
	for _, want := range []string{"rejects this server's setup", "suspended", `"component":"fasthttp"`, "request failed"} {
		if !strings.Contains(logText, want) {
			t.Errorf("the log lacks %q: the failures were not logged, so the check proves nothing:\n%s", want, logText)
		}
	}
	jwtParts := strings.Split(jwt, ".")
	secrets := map[string]string{
		"APNs token": prodTok, "sandbox APNs token": sandboxTok, "tenant APNs token": tenantAPNsTok, "tenant sandbox APNs token": tenantSandboxTok,
		"FCM token": fcmTok, "tenant FCM token": tenantFCMTok,
		"client JWT": jwt, "client JWT signature": jwtParts[2], "client JWT header": jwtParts[0],
		"relay signature": sig,
	}
	for where, text := range map[string]string{"the log": logText, "the answers": answers.String(), "/metrics": string(metrics.body)} {
		for what, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("the %s appears in %s: …%s…", what, where, text[max(0, i-300):min(len(text), i+len(s)+50)])
			}
		}
	}
	t.Logf("checked %d bytes of logs, %d of answers, %d of metrics", len(logText), answers.Len(), len(metrics.body))
}

// TestMalformedRequestsAreLoggedOncePerSecond: a flood of malformed
// requests writes one line per second, and the next line says how many
// were left out.
func TestMalformedRequestsAreLoggedOncePerSecond(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	h := newHarness(t, options{configure: func(c *Config) { c.Logger = logger }})
	fl := h.srv.http.Logger.(*fasthttpLog)
	clock := &steppingClock{t: time.Now()}
	fl.setClock(clock.now)
	var flush func() // the withheld count's timer, fired by hand below
	fl.mu.Lock()
	fl.afterFunc = func(_ time.Duration, f func()) *time.Timer { flush = f; return nil }
	fl.mu.Unlock()

	const flood = 50
	for i := range flood {
		if a := h.raw(fmt.Sprintf("GARBAGE %d\r\n\r\n", i)); !strings.Contains(a, " 400 ") {
			t.Fatalf("garbage got %q; want 400", a)
		}
	}
	testkit.Eventually(t, 5*time.Second, "fasthttp logs the flood", func() bool { return fl.printfCalls() == flood })
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if strings.Contains(l, `"component":"fasthttp"`) {
				out = append(out, l)
			}
		}
		return out
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `"withheld":0`) {
		t.Fatalf("%d malformed requests within a second wrote %d lines; want 1 with withheld 0:\n%s", flood, len(got), strings.Join(got, "\n"))
	}

	clock.advance(time.Second)
	h.raw("GARBAGE again\r\n\r\n")
	testkit.Eventually(t, 5*time.Second, "fasthttp logs the next one", func() bool { return fl.printfCalls() == flood+1 })
	got := lines()
	if len(got) != 2 || !strings.Contains(got[1], fmt.Sprintf(`"withheld":%d`, flood-1)) {
		t.Fatalf("a second later: %d lines; want 2, the second with withheld %d:\n%s", len(got), flood-1, strings.Join(got, "\n"))
	}

	// A burst followed by silence: the timer writes the count on its own.
	for i := range flood {
		h.raw(fmt.Sprintf("GARBAGE %d\r\n\r\n", i))
	}
	testkit.Eventually(t, 5*time.Second, "fasthttp logs the second flood", func() bool { return fl.printfCalls() == 2*flood+1 })
	fl.mu.Lock()
	due := flush
	fl.mu.Unlock()
	if due == nil {
		t.Fatal("no timer was set for the withheld count")
	}
	clock.advance(time.Second)
	due()
	got = lines()
	if len(got) != 3 || !strings.Contains(got[2], fmt.Sprintf(`"withheld":%d`, flood)) {
		t.Fatalf("after a silent burst: %d lines; want 3, the last with withheld %d:\n%s", len(got), flood, strings.Join(got, "\n"))
	}
}
