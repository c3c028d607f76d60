package router

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// selfSignedP12 makes a throwaway APNs-style client certificate valid for
// a day and packs it with its key into a .p12 under password.
func selfSignedP12(t *testing.T, password string) []byte {
	t.Helper()
	return p12Expiring(t, password, time.Now().Add(24*time.Hour))
}

// p12Expiring makes a throwaway APNs client certificate valid until
// notAfter, packed with its key under password.
func p12Expiring(t *testing.T, password string, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Apple Push Services: com.example.p12"},
		NotBefore: notAfter.Add(-400 * day), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p12, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

func TestTenantCertificateUpload(t *testing.T) {
	h := newTenantHarness(t, embeddedStore)
	h.createTenant("p12")
	p12 := selfSignedP12(t, "right password")
	h.upload("p12", "/apns", map[string]string{"apns_topic": "com.example.p12", "apns_certificate": "@" + string(p12), "apns_certificate_password": "wrong"}).
		expectError(t, 400, "bad_apns_credentials", "apns_certificate_password")
	var v map[string]any
	r := h.do("GET", "/tenants/p12", "", bearer("p12", time.Hour))
	json.Unmarshal(r.body, &v)
	if fmt.Sprint(v["enabled_providers"]) != "[noop]" {
		t.Fatalf("a refused upload stored something: %s", r.body)
	}
	if r := h.upload("p12", "/apns", map[string]string{"apns_topic": "com.example.p12", "apns_certificate": "@" + string(p12), "apns_certificate_password": "right password"}); r.status != 200 {
		t.Fatalf("certificate upload: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/tenants/p12", "", bearer("p12", time.Hour))
	json.Unmarshal(r.body, &v)
	if v["apns_type"] != "certificate" || v["apns_topic"] != "com.example.p12" {
		t.Fatalf("after the certificate upload: %s", r.body)
	}
	if r := h.do("DELETE", "/tenants/p12/apns", "", bearer("p12", time.Hour)); r.status != 204 {
		t.Fatalf("DELETE apns: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/tenants/p12", "", bearer("p12", time.Hour))
	json.Unmarshal(r.body, &v)
	if fmt.Sprint(v["enabled_providers"]) != "[noop]" || v["apns_type"] != nil {
		t.Fatalf("after DELETE apns: %s", r.body)
	}
}
