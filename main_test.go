package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
}

func TestDefaults(t *testing.T) {
	c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey}))
	if err != nil {
		t.Fatal(err)
	}
	if c.port != 3000 || c.publicURL != "http://localhost:3000" || !c.router.ValidateSignatures ||
		c.maxAge.Seconds() != 300 || c.dataDir != "./data" || c.router.DedupTTL.Hours() != 24 || c.redisURL != "" {
		t.Fatalf("defaults = %+v", c)
	}
	c, err = parseConfig(envMap(map[string]string{"VALIDATE_SIGNATURES": "false", "SIGNATURE_MAX_AGE": "0", "PORT": "8080"}))
	if err != nil || c.relayKey != nil || c.maxAge != 0 || c.publicURL != "http://localhost:8080" {
		t.Fatalf("without signatures: %+v, %v", c, err)
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
