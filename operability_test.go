package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/internal/testkit"
)

// The operator's APNs certificate reaches the router's expiry watch as its
// notAfter; token auth gives none.
func TestOperatorCertificateExpiryIsRead(t *testing.T) {
	key, _ := testkit.NewP8(t)
	notAfter := time.Now().Add(60 * 24 * time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Apple Push Services: com.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p12, err := pkcs12.Modern.Encode(key, cert, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "APNS_TYPE": "certificate", "APNS_TOPIC": "com.example",
		"APNS_CERTIFICATE": base64.StdEncoding.EncodeToString(p12), "APNS_CERTIFICATE_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.router.APNSCertificateNotAfter.Equal(notAfter) {
		t.Fatalf("router.APNSCertificateNotAfter = %v; want %v", c.router.APNSCertificateNotAfter, notAfter)
	}
	if c, err = parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey})); err != nil || !c.router.APNSCertificateNotAfter.IsZero() {
		t.Fatalf("without a certificate: %v, %v; want none", c.router.APNSCertificateNotAfter, err)
	}
}

func TestMetricsTenantLabelsAndEventLogSettings(t *testing.T) {
	c, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey}))
	if err != nil || c.router.TenantLabels != 0 || c.eventLog != "" {
		t.Fatalf("defaults: labels %d, event log %q, %v; want both off", c.router.TenantLabels, c.eventLog, err)
	}
	c, err = parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "METRICS_TENANT_LABELS": "20", "EVENT_LOG": "stdout"}))
	if err != nil || c.router.TenantLabels != 20 || c.eventLog != "stdout" {
		t.Fatalf("set: labels %d, event log %q, %v", c.router.TenantLabels, c.eventLog, err)
	}
	for _, bad := range []string{"-1", "1001", "many"} {
		if _, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "METRICS_TENANT_LABELS": bad})); err == nil ||
			!strings.HasPrefix(err.Error(), "METRICS_TENANT_LABELS") {
			t.Errorf("METRICS_TENANT_LABELS=%s: %v; want an error naming it", bad, err)
		}
	}
	// A file is appended to, never truncated.
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := openEventLog(path)
	if err != nil {
		t.Fatal(err)
	}
	out.Write([]byte("later\n"))
	out.Close()
	if b, _ := os.ReadFile(path); string(b) != "earlier\nlater\n" {
		t.Fatalf("event log file holds %q", b)
	}
	if _, err := openEventLog(filepath.Join(t.TempDir(), "no-such-dir", "e")); err == nil {
		t.Fatal("an event log in a missing directory opened")
	}
}
