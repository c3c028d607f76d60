package router

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
	"push-server/verify"
)

// secretForms returns distinctive pieces of secret, as an operator's log
// search would find them: the text itself when short, else a slice from its
// middle, plus its standard base64 and hex forms.
func secretForms(secret []byte) []string {
	piece := func(s string) string {
		if len(s) <= 48 {
			return s
		}
		return s[len(s)/2-16 : len(s)/2+16]
	}
	return []string{piece(string(secret)), piece(base64.StdEncoding.EncodeToString(secret)), piece(hex.EncodeToString(secret))}
}

// pemForms returns slices of a PEM block's base64 body lines (what a log
// line or an escaped JSON string holding the key would contain) and of its
// DER in other encodings.
func pemForms(t *testing.T, p []byte) []string {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatalf("not PEM: %q", p)
	}
	var forms []string
	lines := strings.Split(strings.TrimSpace(string(p)), "\n")
	for _, l := range lines[1 : len(lines)-1] {
		if len(l) >= 48 {
			forms = append(forms, l[8:40])
		}
	}
	return append(forms, secretForms(block.Bytes)[1:]...)
}

// TestSecretsNeverLeak configures every kind of credential the gateway
// holds (a relay key pair, the tenants API's JWT secret, the vault key, an
// APNs .p8 and .p12 with its password, an FCM service account), drives the
// error paths where a careless message would quote one (refused uploads,
// bad tokens, providers rejecting the credentials, an OAuth token endpoint
// refusing the service account, malformed requests) with logging at debug,
// and checks that no piece of any secret appears in a log line, a response
// body or header, or /metrics. It also checks that /metrics stays off the
// API's port when it has a port of its own.
func TestSecretsNeverLeak(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The mocks trust nothing of ours, so every push fails on credentials.
	apns := dispatchtest.StartAPNs(t, true)
	apns.TrustKey("UNRELATED1", "TEAM123456", &mustP8Key(t).PublicKey)
	fcm := dispatchtest.StartFCM(t)
	other := dispatchtest.StartFCM(t)

	_, envP8 := testkit.NewP8(t)
	untrustedSA := bytes.Replace(other.ServiceAccountJSON("secret-project"), []byte(other.TokenURL()), []byte(fcm.TokenURL()), 1)
	vaultKey := []byte("vault-key-0123456789-abcdefghijk")
	jwtSecret := []byte("tenant-jwt-secret-Zq8#kLm2$vN5pR7wXy")
	p12Password := "p12-Password-Hq4!unique"
	p12 := selfSignedP12(t, p12Password)
	_, tenantP8 := testkit.NewP8(t)
	tenantSA := fcm.ServiceAccountJSON("tenant-project")

	var secrets []string
	secrets = append(secrets, pemForms(t, envP8)...)
	secrets = append(secrets, pemForms(t, tenantP8)...)
	for _, sa := range [][]byte{untrustedSA, tenantSA} {
		var acct struct {
			PrivateKey string `json:"private_key"`
		}
		if err := json.Unmarshal(sa, &acct); err != nil || acct.PrivateKey == "" {
			t.Fatalf("service account without private_key: %v", err)
		}
		secrets = append(secrets, pemForms(t, []byte(acct.PrivateKey))...)
	}
	secrets = append(secrets, secretForms(vaultKey)...)
	secrets = append(secrets, secretForms(jwtSecret)...)
	secrets = append(secrets, secretForms(p12)[1:]...) // the .p12 is binary: its base64 and hex
	secrets = append(secrets, p12Password)

	vault, err := dispatch.NewVault(vaultKey)
	if err != nil {
		t.Fatal(err)
	}
	base := dispatch.Config{
		Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID, APNSPKCS8PEM: envP8,
			FCMCredentials: untrustedSA},
		APNSURL: apns.URL(), APNSSandboxURL: apns.URL(), FCMURL: fcm.URL(), RootCAs: apns.RootCAs(),
		MaxAttempts: 2, RetryDelay: func(int, time.Duration) time.Duration { return 0 }, Logger: logger,
	}
	shared := base
	shared.APNSType, shared.APNSPKCS8PEM, shared.FCMCredentials = "", nil, nil
	if shared.FCMTokenURIs, err = dispatch.NewTokenURIs(fcm.TokenURL()); err != nil { // as TENANT_FCM_TOKEN_URIS would
		t.Fatal(err)
	}
	pool := dispatch.NewPool(shared, 10, time.Minute)
	t.Cleanup(func() { pool.Close() })
	h := newHarness(t, options{
		dispatch:  base,
		configure: func(c *Config) { c.Logger = logger; c.ServeMetrics = true; c.RequireClientAuth = false },
		deps: func(d *Deps) {
			d.Tenants = d.Store.(cache.Tenants)
			d.TenantAuth = &verify.TenantAuth{Secret: jwtSecret, Leeway: time.Minute}
			d.Vault, d.Pool = vault, pool
		},
	})
	secrets = append(secrets, secretForms(h.relayPriv.Seed())...)

	// Every answer the test sees, headers and body.
	var answers strings.Builder
	do := func(method, path, body string, header map[string]string) reply {
		t.Helper()
		r := h.do(method, path, body, header)
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, path, r.status, r.header, r.body)
		return r
	}
	token := func(tenant string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + verify.SignTenantToken(jwtSecret, tenant, time.Hour, time.Now())}
	}
	upload := func(tenant, path string, parts map[string]string) reply {
		t.Helper()
		body, ct := multipartBody(t, parts)
		hdr := token(tenant)
		hdr["Content-Type"] = ct
		return do("POST", "/tenants/"+tenant+path, body, hdr)
	}
	sendTo := func(path, msg string) reply {
		body := fmt.Sprintf(`{"topic":"t","tag":1,"message":%q}`, msg)
		return do("POST", path, body, h.signed(body, time.Now().Unix()))
	}

	// Single-tenant providers whose credentials the providers refuse: APNs
	// answers 403 InvalidProviderToken, FCM's token endpoint invalid_grant.
	h.register("ios", "apns", "aaaa000000000000000000000000000000000000000000000000000000000001", false)
	h.register("droid", "fcm", "fcm-token-1", false)
	for i := range 3 {
		if r := sendTo("/clients/ios", fmt.Sprintf("m-%d", i)); r.status != 502 {
			t.Errorf("send with refused APNs credentials: %d %s; want 502", r.status, r.body)
		}
		if r := sendTo("/clients/droid", fmt.Sprintf("m-%d", i)); r.status != 502 {
			t.Errorf("send with a refused FCM service account: %d %s; want 502", r.status, r.body)
		}
	}

	// The tenants API: bad tokens, and credentials it must refuse.
	do("POST", "/tenants", `{"id":"acme"}`, map[string]string{"Authorization": "Bearer " +
		verify.SignTenantToken([]byte("some-other-secret-of-32-bytes-or-more"), "acme", time.Hour, time.Now())})
	do("POST", "/tenants", `{"id":"acme"}`, map[string]string{"Authorization": "Bearer " +
		verify.SignTenantToken(jwtSecret, "acme", -time.Hour, time.Now())})
	do("POST", "/tenants", `{"id":"acme"}`, map[string]string{"Authorization": string(jwtSecret)})
	if r := do("POST", "/tenants", `{"id":"acme"}`, token("acme")); r.status != 200 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	upload("acme", "/apns", map[string]string{"apns_topic": "com.example.acme", "apns_certificate": "@" + string(p12),
		"apns_certificate_password": "not " + p12Password}).expectError(t, 400, "bad_apns_credentials", "apns_certificate_password")
	upload("acme", "/apns", map[string]string{"apns_topic": "com.example.acme", "apns_certificate": "@" + string(p12[:len(p12)/2]),
		"apns_certificate_password": p12Password})
	upload("acme", "/apns", map[string]string{"apns_topic": "com.example.acme", "apns_pkcs8_pem": "@" + string(tenantP8[:len(tenantP8)-40]),
		"apns_key_id": "KEY1234567", "apns_team_id": "TEAM123456"})
	upload("acme", "/apns", map[string]string{"apns_topic": "com.example.acme", "apns_pkcs8_pem": "@" + strings.Replace(string(tenantP8), "PRIVATE KEY", "RSA PRIVATE KEY", 2),
		"apns_key_id": "KEY1234567", "apns_team_id": "TEAM123456"})
	upload("acme", "/fcm_v1", map[string]string{"credentials": "@" + string(untrustedSA)}).
		expectError(t, 400, "bad_fcm_v1_credentials", "credentials")
	upload("acme", "/fcm_v1", map[string]string{"credentials": string(untrustedSA[:len(untrustedSA)-30])})
	upload("acme", "/fcm_v1", map[string]string{"credentials": "@" + strings.Replace(string(tenantSA), "BEGIN PRIVATE KEY", "BEGIN NONSENSE", 1)})
	// Accepted credentials that APNs then refuses: the tenant's provider
	// is suspended, which is logged with its reason.
	if r := upload("acme", "/apns", map[string]string{"apns_topic": "com.example.acme", "apns_pkcs8_pem": "@" + string(tenantP8),
		"apns_key_id": "KEY1234567", "apns_team_id": "TEAM123456"}); r.status != 200 {
		t.Fatalf("tenant .p8 upload: %d %s", r.status, r.body)
	}
	if r := upload("acme", "/fcm_v1", map[string]string{"credentials": "@" + string(tenantSA)}); r.status != 200 {
		t.Fatalf("tenant service account upload: %d %s", r.status, r.body)
	}
	do("GET", "/tenants/acme", "", token("acme"))
	do("POST", "/acme/clients", `{"client_id":"ios","type":"apns","token":"bbbb000000000000000000000000000000000000000000000000000000000002"}`, nil)
	fcm.Script("fcm-acme", dispatchtest.Answer{Status: 403, Reason: "PERMISSION_DENIED"})
	do("POST", "/acme/clients", `{"client_id":"droid","type":"fcm","token":"fcm-acme"}`, nil)
	for i := range 2 {
		sendTo("/acme/clients/ios", fmt.Sprintf("t-%d", i))
		sendTo("/acme/clients/droid", fmt.Sprintf("t-%d", i))
	}

	// Malformed requests, bad signatures and client JWTs.
	do("POST", "/clients", `{"client_id":`, nil)
	do("POST", "/clients", `{"client_id":"x","type":"apns","token":"t"}`, map[string]string{"Authorization": "Bearer " +
		verify.SignTenantToken(jwtSecret, "x", time.Hour, time.Now())})
	body := `{"topic":"t","tag":1,"message":"unsigned"}`
	do("POST", "/clients/ios", body, map[string]string{"X-Ed25519-Timestamp": "1", "X-Ed25519-Signature": strings.Repeat("ab", 64)})
	do("POST", "/clients/ios", `{"topic":`, h.signed(`{"topic":`, time.Now().Unix()))
	do("GET", "/nowhere", "", nil)

	metrics := do("GET", "/metrics", "", nil)
	if metrics.status != 200 || !strings.Contains(string(metrics.body), "push_requests_total") {
		t.Fatalf("GET /metrics: %d %.200s", metrics.status, metrics.body)
	}

	logText := logs.String()
	if !strings.Contains(logText, "rejects this server's setup") || !strings.Contains(logText, "suspended") {
		t.Errorf("the provider failures were not logged; the audit would see nothing:\n%s", logText)
	}
	for where, text := range map[string]string{"logs": logText, "responses": answers.String(), "metrics": string(metrics.body)} {
		for _, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("secret piece %q appears in %s: …%s…", s, where, text[max(0, i-200):min(len(text), i+len(s)+50)])
			}
		}
		// Bearer tokens: the tenants API's JWTs (all start "eyJ") and
		// Google's access tokens ("ya29.").
		for _, s := range []string{"eyJ", "ya29."} {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("a token (%q…) appears in %s: …%s…", s, where, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
	t.Logf("secrets audit: %d secret pieces checked against %d bytes of logs, %d of responses, %d of metrics",
		len(secrets), len(logText), answers.Len(), len(metrics.body))
}

// TestMetricsOffTheAPIPort checks that with ServeMetrics off (main does so
// when TELEMETRY_PROMETHEUS_PORT is set) GET /metrics on the API's port is
// an ordinary 404, in multi-tenant mode too, where "/metrics" could look
// like a tenant path.
func TestMetricsOffTheAPIPort(t *testing.T) {
	h := newTenantHarness(t, embeddedStore)
	h.do("GET", "/metrics", "", nil).expectError(t, 404, "not_found")
	if r := h.do("GET", "/metrics/", "", nil); r.status != 404 {
		t.Errorf("GET /metrics/: %d; want 404", r.status)
	}
}

// mustP8Key is a throwaway P-256 key the APNs mock trusts in place of ours.
func mustP8Key(t *testing.T) *ecdsa.PrivateKey {
	k, _ := testkit.NewP8(t)
	return k
}
