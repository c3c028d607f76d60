package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
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
