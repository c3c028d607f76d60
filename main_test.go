package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
	"push-server/verify"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const testKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" // RFC 8032 test 1

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	f := func(env map[string]string, wantVar string) {
		t.Helper()
		if _, ok := env["RELAY_PUBLIC_KEY"]; !ok {
			env["RELAY_PUBLIC_KEY"] = testKey
		}
		_, err := parseConfig(envMap(env))
		if err == nil || !strings.HasPrefix(err.Error(), wantVar) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("parseConfig(%v) = %v; want one line starting with %s", env, err, wantVar)
		}
	}
	f(map[string]string{"PORT": "http"}, "PORT")
	f(map[string]string{"PORT": "70000"}, "PORT")
	f(map[string]string{"RELAY_PUBLIC_KEY": ""}, "RELAY_PUBLIC_KEY")
	f(map[string]string{"RELAY_PUBLIC_KEY": "abcd"}, "RELAY_PUBLIC_KEY")
	f(map[string]string{"VALIDATE_SIGNATURES": "maybe"}, "VALIDATE_SIGNATURES")
	f(map[string]string{"REQUIRE_CLIENT_AUTH": "2"}, "REQUIRE_CLIENT_AUTH")
	f(map[string]string{"SIGNATURE_MAX_AGE": "5m"}, "SIGNATURE_MAX_AGE")
	f(map[string]string{"DEDUP_TTL": "forever"}, "DEDUP_TTL")
	f(map[string]string{"CLIENT_TTL": "-1s"}, "CLIENT_TTL")
	f(map[string]string{"CLIENT_TTL": "a month"}, "CLIENT_TTL")
	f(map[string]string{"CLIENT_TTL": "59s"}, "CLIENT_TTL")
	f(map[string]string{"CLIENT_TTL": "30"}, "CLIENT_TTL")
	f(map[string]string{"REDIS_URL": "localhost:6379"}, "REDIS_URL")
	f(map[string]string{"MAX_BODY_SIZE": "-1"}, "MAX_BODY_SIZE")
	f(map[string]string{"JWT_SECRET": "x"}, "JWT_SECRET")
	f(map[string]string{"JWT_SECRET": strings.Repeat("s", 32)}, "TENANT_CREDENTIALS_KEY")
	f(map[string]string{"JWT_SECRET": strings.Repeat("s", 32), "TENANT_CREDENTIALS_KEY": "abcd"}, "TENANT_CREDENTIALS_KEY")
	f(map[string]string{"REDIS_URL": "redis://a:1,b:2"}, "REDIS_URL")
	f(map[string]string{"REDIS_REPLICA_URL": "redis://r:6379"}, "REDIS_REPLICA_URL")
	f(map[string]string{"TELEMETRY_PROMETHEUS_PORT": "3000"}, "TELEMETRY_PROMETHEUS_PORT")
	f(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES")
	f(map[string]string{"RATE_LIMIT_PER_IP": "-5"}, "RATE_LIMIT_PER_IP")
	f(map[string]string{"APNS_CERTIFICATE": "%%%"}, "APNS_CERTIFICATE")
	f(map[string]string{"SHUTDOWN_DELAY": "soon"}, "SHUTDOWN_DELAY")
	f(map[string]string{"SHUTDOWN_DELAY": "-1s"}, "SHUTDOWN_DELAY")
	f(map[string]string{"SHUTDOWN_DELAY": "10m"}, "SHUTDOWN_DELAY")
	f(map[string]string{"REDIS_MAX_FLUSH_DELAY": "1s"}, "REDIS_MAX_FLUSH_DELAY")
	f(map[string]string{"REDIS_MAX_FLUSH_DELAY": "fast"}, "REDIS_MAX_FLUSH_DELAY")
	f(map[string]string{"REDIS_CACHE_SIZE": "1024"}, "REDIS_CACHE_SIZE")
	f(map[string]string{"TENANT_FCM_TOKEN_URIS": "http://metadata.internal/token"}, "TENANT_FCM_TOKEN_URIS")
	f(map[string]string{"TENANT_FCM_TOKEN_URIS": "https://proxy.example/token,/token"}, "TENANT_FCM_TOKEN_URIS")
	f(map[string]string{"TENANT_FCM_TOKEN_URIS": "https://user:pw@proxy.example/token"}, "TENANT_FCM_TOKEN_URIS")
	f(map[string]string{"TENANT_FCM_TOKEN_URIS": "https://proxy.example/token?x=1"}, "TENANT_FCM_TOKEN_URIS")
	f(map[string]string{"TENANT_FCM_TOKEN_URIS": "https://proxy.example/token#f"}, "TENANT_FCM_TOKEN_URIS")
}

// REDIS_URL and REDIS_REPLICA_URL take redis:// and rediss:// alone, and
// each says so in its own words, the password redacted.
func TestRedisURLConfig(t *testing.T) {
	f := func(primary, replica, wantErr string) {
		t.Helper()
		_, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "REDIS_URL": primary, "REDIS_REPLICA_URL": replica}))
		if got := fmt.Sprint(err); err == nil && wantErr != "" || err != nil && got != wantErr {
			t.Errorf("REDIS_URL=%q REDIS_REPLICA_URL=%q: error %v; want %q", primary, replica, err, wantErr)
		}
	}
	f("redis://a:1", "", "")
	f("rediss://a:1, redis://b:2", "rediss://r:1", "")
	f("localhost:6379", "", `REDIS_URL: want redis:// or rediss:// URLs (comma-separated for cluster seeds), got "localhost:6379"`)
	f("redis://a:1, http://u:secret@b:2", "", `REDIS_URL: want redis:// or rediss:// URLs (comma-separated for cluster seeds), got "http://u:***@b:2"`)
	f("redis://a:1", "http://u:secret@r:1", `REDIS_REPLICA_URL: want a redis:// or rediss:// URL, got "http://u:***@r:1"`)
	f("", "redis://r:1", "REDIS_REPLICA_URL: needs REDIS_URL (the primary) too")
}

func TestTenantTokenURIs(t *testing.T) {
	google := "https://oauth2.googleapis.com/token"
	for _, tc := range []struct {
		value          string
		allowed, other []string
	}{
		{"", []string{google}, []string{"http://127.0.0.1:8080/token"}},
		{" http://127.0.0.1:8080/token , https://token-proxy.example/token ",
			[]string{google, "http://127.0.0.1:8080/token", "https://token-proxy.example/token"},
			[]string{"http://127.0.0.1:8081/token", "https://token-proxy.example/token/x"}},
	} {
		c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "TENANT_FCM_TOKEN_URIS": tc.value}))
		if err != nil {
			t.Fatalf("TENANT_FCM_TOKEN_URIS=%q: %v", tc.value, err)
		}
		for _, u := range tc.allowed {
			if err := c.tenantTokenURIs.Check(u); err != nil {
				t.Errorf("TENANT_FCM_TOKEN_URIS=%q: %s refused: %v", tc.value, u, err)
			}
		}
		for _, u := range tc.other {
			if c.tenantTokenURIs.Check(u) == nil {
				t.Errorf("TENANT_FCM_TOKEN_URIS=%q: %s allowed", tc.value, u)
			}
		}
		if c.dispatch.FCMTokenURIs != nil {
			t.Errorf("TENANT_FCM_TOKEN_URIS=%q restricts FCM_V1_CREDENTIALS, the operator's own", tc.value)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey}))
	if err != nil {
		t.Fatal(err)
	}
	if c.port != 3000 || c.publicURL != "http://localhost:3000" || !c.router.ValidateSignatures ||
		c.maxAge.Seconds() != 300 || c.dataDir != "./data" || c.router.DedupTTL.Hours() != 24 || c.redisURL != "" ||
		c.shutdownDelay != 5*time.Second || c.redisFlush != 50*time.Microsecond || c.redisCacheSize != 16<<20 {
		t.Fatalf("defaults = %+v", c)
	}
	if c, err = parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "REDIS_MAX_FLUSH_DELAY": "0"})); err != nil || c.redisFlush != 0 {
		t.Fatalf("REDIS_MAX_FLUSH_DELAY=0: %v, %v; want 0 (off)", c.redisFlush, err)
	}
	c, err = parseConfig(envMap(map[string]string{"VALIDATE_SIGNATURES": "false", "SIGNATURE_MAX_AGE": "0", "PORT": "8080"}))
	if err != nil || c.relayKey != nil || c.maxAge != 0 || c.publicURL != "http://localhost:8080" {
		t.Fatalf("without signatures: %+v, %v", c, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, "30": 30 * time.Second, "1500ms": 1500 * time.Millisecond} {
		c, err = parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "SHUTDOWN_DELAY": v}))
		if err != nil || c.shutdownDelay != want {
			t.Errorf("SHUTDOWN_DELAY=%s: %v, %v; want %s", v, c.shutdownDelay, err, want)
		}
	}
}

func TestServeExitsTwoOnBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"serve"}, envMap(map[string]string{"PORT": "nope"}), &bytes.Buffer{}, &stderr)
	if code != 2 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 || !strings.Contains(stderr.String(), "PORT") {
		t.Fatalf("exit %d, stderr %q; want 2 and one line naming PORT", code, stderr.String())
	}
}

func TestSignPrintsHeadersThatVerify(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"keygen"}, envMap(nil), &out, os.Stderr); code != 0 {
		t.Fatal("keygen failed")
	}
	var pubHex, privHex string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "RELAY_PUBLIC_KEY":
			pubHex = v
		case "RELAY_PRIVATE_KEY":
			privHex = v
		}
	}
	body := []byte(`{"topic":"t","tag":1,"message":"m"}`)
	file := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(file, body, 0o600)
	out.Reset()
	if code := run([]string{"sign", "--key", privHex, "--body", file}, envMap(nil), &out, os.Stderr); code != 0 {
		t.Fatal("sign failed")
	}
	headers := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		headers[k] = v
	}
	pub, _ := hex.DecodeString(pubHex)
	relay, err := verify.NewRelay(ed25519.PublicKey(pub), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Verify([]byte(headers["X-Ed25519-Timestamp"]), []byte(headers["X-Ed25519-Signature"]), body); err != nil {
		t.Fatalf("signed headers %v do not verify: %v", headers, err)
	}
}

// secretPieces returns distinctive slices of secret as a log search would
// find them: the middle of the text and of its base64 and hex forms, and
// for PEM text the middle of each full body line.
func secretPieces(secret []byte) []string {
	mid := func(s string) string {
		if len(s) <= 40 {
			return s
		}
		return s[len(s)/2-12 : len(s)/2+12]
	}
	pieces := []string{mid(string(secret)), mid(base64.StdEncoding.EncodeToString(secret)), mid(hex.EncodeToString(secret))}
	if bytes.Contains(secret, []byte("-----BEGIN")) {
		for _, l := range strings.Split(string(secret), "\n") {
			if len(l) == 64 {
				pieces = append(pieces, l[8:40])
			}
		}
	}
	return pieces
}

// checkNoSecret fails t for every piece of secrets found in text.
func checkNoSecret(t *testing.T, where, text string, secrets [][]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, p := range secretPieces(s) {
			if i := strings.Index(text, p); i >= 0 {
				t.Errorf("%s shows secret piece %q: …%s…", where, p, text[max(0, i-160):min(len(text), i+len(p)+40)])
			}
		}
	}
}

// TestServeKeepsSecretsOutOfItsOutput runs serve in-process with
// credentials in the environment, as an operator's deployment has them:
// first with each credential broken in turn (start-up must fail naming the
// variable without quoting it), then valid but refused by the providers,
// at LOG_LEVEL=debug with metrics on their own port. No piece of a secret
// may reach stderr, a response, or /metrics; /metrics must be served on
// TELEMETRY_PROMETHEUS_PORT only.
func TestServeKeepsSecretsOutOfItsOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("serves on real ports")
	}
	apnsKey, p8 := testkit.NewP8(t)
	der, _ := x509.MarshalPKCS8PrivateKey(apnsKey) // its DER, for a test of base64 in place of PEM
	p12Password := "p12-Pass-Wd7!distinct"
	certTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Apple Push Services: com.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	certDER, _ := x509.CreateCertificate(rand.Reader, certTmpl, certTmpl, &apnsKey.PublicKey, apnsKey)
	cert, _ := x509.ParseCertificate(certDER)
	p12, err := pkcs12.Modern.Encode(apnsKey, cert, nil, p12Password)
	if err != nil {
		t.Fatal(err)
	}
	apns := dispatchtest.StartAPNs(t, false) // h2c: an http:// APNS_URL
	apns.TrustKey("OTHERKEY12", "TEAM123456", &apnsKey.PublicKey)
	fcm, other := dispatchtest.StartFCM(t), dispatchtest.StartFCM(t)
	sa := bytes.Replace(other.ServiceAccountJSON("p"), []byte(other.TokenURL()), []byte(fcm.TokenURL()), 1)
	var acct struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(sa, &acct); err != nil {
		t.Fatal(err)
	}
	jwtSecret := "jwt-Secret-for-tenants-Kq3#Lm9$Np2%"
	vaultKey := "5ec2e7c0ffee5ec2e7c0ffee5ec2e7c0ffee5ec2e7c0ffee5ec2e7c0ffee0a0b"
	redisPassword := "redis-Pa55-word-Zx"
	secrets := [][]byte{p8, p12, []byte(p12Password), []byte(acct.PrivateKey), []byte(jwtSecret), []byte(vaultKey), []byte(redisPassword)}

	base := map[string]string{
		"VALIDATE_SIGNATURES": "false", "DATA_DIR": t.TempDir(), "LOG_LEVEL": "debug", "SHUTDOWN_DELAY": "0",
		"PROVIDER_MAX_ATTEMPTS": "1", "APNS_TYPE": "token", "APNS_TOPIC": "com.example", "APNS_KEY_ID": "KEY1234567",
		"APNS_TEAM_ID": "TEAM123456", "APNS_PKCS8_PEM": string(p8), "APNS_URL": apns.URL(), "APNS_SANDBOX_URL": apns.URL(),
		"FCM_V1_CREDENTIALS": string(sa), "FCM_URL": fcm.URL(), "JWT_SECRET": jwtSecret, "TENANT_CREDENTIALS_KEY": vaultKey,
		"PORT": strconv.Itoa(testkit.FreePort(t)),
	}
	with := func(changes map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range changes {
			env[k] = v
		}
		return env
	}

	// Broken credentials: start-up fails and says which variable.
	broken := []struct {
		name string
		env  map[string]string
	}{
		{"APNS_CERTIFICATE", map[string]string{"APNS_TYPE": "certificate", "APNS_CERTIFICATE": base64.StdEncoding.EncodeToString(p12),
			"APNS_CERTIFICATE_PASSWORD": p12Password + "-typo"}},
		{"APNS_CERTIFICATE", map[string]string{"APNS_TYPE": "certificate", "APNS_CERTIFICATE": base64.StdEncoding.EncodeToString(p12[:len(p12)/2]),
			"APNS_CERTIFICATE_PASSWORD": p12Password}},
		{"APNS_PKCS8_PEM", map[string]string{"APNS_PKCS8_PEM": string(p8[:len(p8)-60])}},
		{"APNS_PKCS8_PEM", map[string]string{"APNS_PKCS8_PEM": base64.StdEncoding.EncodeToString(der)}},
		{"FCM_V1_CREDENTIALS", map[string]string{"FCM_V1_CREDENTIALS": string(sa[:len(sa)-40])}},
		{"FCM_V1_CREDENTIALS", map[string]string{"FCM_V1_CREDENTIALS": strings.Replace(string(sa), "BEGIN PRIVATE KEY", "BEGIN X", 1)}},
		{"JWT_SECRET", map[string]string{"JWT_SECRET": jwtSecret[:20]}},
		{"TENANT_CREDENTIALS_KEY", map[string]string{"TENANT_CREDENTIALS_KEY": vaultKey[:60]}},
		{"TENANT_CREDENTIALS_PREVIOUS_KEYS", map[string]string{"TENANT_CREDENTIALS_PREVIOUS_KEYS": vaultKey + "," + vaultKey[2:]}},
		{"REDIS_URL", map[string]string{"REDIS_URL": "redis://default:" + redisPassword + "@127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))}},
		{"REDIS_URL", map[string]string{"REDIS_URL": "http://default:" + redisPassword + "@127.0.0.1:1"}},
	}
	for _, b := range broken {
		var stderr bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- run([]string{"serve"}, envMap(with(b.env)), io.Discard, &stderr) }()
		select {
		case code := <-done:
			if code == 0 || !strings.Contains(stderr.String(), b.name) {
				t.Errorf("broken %s: exit %d, stderr %q; want a failure naming it", b.name, code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("broken %s: serve did not stop", b.name)
		}
		checkNoSecret(t, "stderr with a broken "+b.name, stderr.String(), secrets)
	}

	// Valid credentials the providers refuse, metrics on their own port.
	env := with(map[string]string{"TELEMETRY_PROMETHEUS_PORT": strconv.Itoa(testkit.FreePort(t))})
	api, metricsURL := "http://127.0.0.1:"+env["PORT"], "http://127.0.0.1:"+env["TELEMETRY_PROMETHEUS_PORT"]
	logs := &testkit.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"serve"}, envMap(env), io.Discard, logs) }()
	c := &http.Client{Timeout: 10 * time.Second}
	var answers strings.Builder
	do := func(method, url, body string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, logs.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, url, resp.StatusCode, resp.Header, b)
		return resp.StatusCode, string(b)
	}
	if !testkit.Poll(10*time.Second, func() bool {
		resp, err := c.Get(api + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("serve did not answer /health:\n%s", logs.String())
	}
	if st, body := do("GET", api+"/metrics", "", nil); st != 404 {
		t.Errorf("GET /metrics on PORT with TELEMETRY_PROMETHEUS_PORT set: %d %.100s; want 404", st, body)
	}
	do("POST", api+"/clients", `{"client_id":"ios","type":"apns","token":"aaaa000000000000000000000000000000000000000000000000000000000001"}`, nil)
	do("POST", api+"/clients", `{"client_id":"droid","type":"fcm","token":"fcm-1"}`, nil)
	for i := range 2 {
		if st, body := do("POST", api+"/clients/ios", fmt.Sprintf(`{"topic":"t","tag":1,"message":"m%d"}`, i), nil); st != 502 {
			t.Errorf("send through refused APNs credentials: %d %s; want 502", st, body)
		}
		if st, body := do("POST", api+"/clients/droid", fmt.Sprintf(`{"topic":"t","tag":1,"message":"m%d"}`, i), nil); st != 502 {
			t.Errorf("send through a refused service account: %d %s; want 502", st, body)
		}
	}
	do("POST", api+"/tenants", `{"id":"acme"}`, map[string]string{"Authorization": "Bearer " + jwtSecret})
	do("POST", api+"/tenants", `{"id":"acme"}`, map[string]string{"Authorization": "Bearer " +
		verify.SignTenantToken([]byte(jwtSecret), "other", time.Hour, time.Now())})
	st, metrics := do("GET", metricsURL+"/metrics", "", nil)
	if st != 200 || !strings.Contains(metrics, `push_requests_total{route="send",status="502"}`) {
		t.Errorf("GET /metrics on TELEMETRY_PROMETHEUS_PORT: %d %.300s", st, metrics)
	}
	// A malformed request to the metrics port, its Authorization refused
	// by fasthttp: the line goes to the configured log, without the value.
	if conn, err := net.Dial("tcp", strings.TrimPrefix(metricsURL, "http://")); err == nil {
		fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer %s\x01\r\n\r\n",
			verify.SignTenantToken([]byte(jwtSecret), "acme", time.Hour, time.Now()))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadAll(conn)
		conn.Close()
	}
	if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(logs.String(), "invalid header value") }) {
		t.Errorf("the metrics port's refusal of a malformed request is not in the configured log:\n%s", logs.String())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after SIGTERM\n%s", code, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	if !strings.Contains(logs.String(), "rejects this server's setup") {
		t.Errorf("the providers' refusals were not logged, so the audit saw nothing:\n%s", logs.String())
	}
	checkNoSecret(t, "logs", logs.String(), secrets)
	checkNoSecret(t, "responses", answers.String(), secrets)
	checkNoSecret(t, "metrics", metrics, secrets)
	if strings.Contains(logs.String()+answers.String()+metrics, "ya29.") {
		t.Error("an FCM access token appears in the output")
	}
	if i := strings.Index(logs.String(), "eyJ"); i >= 0 {
		t.Errorf("a JWT appears in the logs: …%.200s", logs.String()[i:])
	}
}

// CLIENT_TTL's floor is one minute; 0 still turns expiry off.
func TestClientTTLFloor(t *testing.T) {
	for v, want := range map[string]time.Duration{"1m": time.Minute, "60": time.Minute, "0": 0, "720h": 720 * time.Hour} {
		c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "CLIENT_TTL": v}))
		if err != nil {
			t.Errorf("CLIENT_TTL=%s: %v", v, err)
		} else if c.clientTTL != want {
			t.Errorf("CLIENT_TTL=%s: %v; want %v", v, c.clientTTL, want)
		}
	}
}
