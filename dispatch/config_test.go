package dispatch

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/dispatch/dispatchtest"
)

func TestConfigParse(t *testing.T) {
	key := newAPNsKey(t)
	cert := newClientCert(t, time.Now().Add(24*time.Hour))
	expired := newClientCert(t, time.Now().Add(-time.Minute))
	fcm := dispatchtest.StartFCM(t).ServiceAccountJSON(testProject)
	rsaKeyPEM := func() []byte { // a PKCS#8 key, but RSA
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}()
	p384 := func() []byte { // ECDSA PKCS#8, wrong curve
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}()

	token := func(c *Config) {
		c.APNSType, c.APNSTopic, c.APNSPKCS8PEM, c.APNSKeyID, c.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	}
	certificate := func(enc *pkcs12.Encoder) func(c *Config) {
		return func(c *Config) {
			c.APNSType, c.APNSTopic, c.APNSCertificate, c.APNSCertificatePassword = APNSTypeCertificate, testTopic, cert.p12(t, enc, "secret"), "secret"
		}
	}
	// f applies edits to an empty Config; want is "" for valid, else a
	// substring of the error, which must start with the variable's name.
	f := func(want string, edits ...func(c *Config)) {
		t.Helper()
		var c Config
		for _, e := range edits {
			e(&c)
		}
		_, err := c.Parse()
		switch {
		case want == "" && err != nil:
			t.Fatalf("Parse() = %v; want nil", err)
		case want != "" && err == nil:
			t.Fatalf("Parse() = nil; want an error with %q", want)
		case want != "" && !strings.Contains(err.Error(), want):
			t.Fatalf("Parse() = %q; want it to contain %q", err, want)
		}
	}
	set := func(fn func(c *Config)) func(c *Config) { return fn }

	f("")                                // nothing configured: noop only
	f("", token)                         // token auth
	f("", certificate(pkcs12.Modern))    // AES .p12 (OpenSSL 3): go-pkcs12 fallback
	f("", certificate(pkcs12.LegacyDES)) // 3DES .p12: apns2's own decoder
	f("", certificate(pkcs12.LegacyRC2))
	f("", set(func(c *Config) { c.FCMCredentials = fcm }))
	f("", token, set(func(c *Config) {
		c.APNSURL, c.APNSSandboxURL, c.FCMURL = "http://127.0.0.1:8080", "https://mock:443/", "https://fcm.example"
	}))

	f(`APNS_TYPE: want "certificate" or "token", got "p8"`, token, set(func(c *Config) { c.APNSType = "p8" }))
	f("APNS_TOPIC: required when APNS_TYPE is set", token, set(func(c *Config) { c.APNSTopic = "" }))
	f("APNS_CERTIFICATE: required", certificate(pkcs12.Modern), set(func(c *Config) { c.APNSCertificate = nil }))
	f("APNS_CERTIFICATE_PASSWORD: does not open the .p12 in APNS_CERTIFICATE", certificate(pkcs12.Modern), set(func(c *Config) { c.APNSCertificatePassword = "wrong" }))
	f("APNS_CERTIFICATE: cannot open .p12 with APNS_CERTIFICATE_PASSWORD", certificate(pkcs12.Modern), set(func(c *Config) { c.APNSCertificate = []byte("not a p12") }))
	f("APNS_CERTIFICATE: the certificate expired on", set(func(c *Config) {
		c.APNSType, c.APNSTopic, c.APNSCertificate, c.APNSCertificatePassword = APNSTypeCertificate, testTopic, expired.p12(t, pkcs12.Modern, "pw"), "pw"
	}))
	f("APNS_PKCS8_PEM: required when APNS_TYPE is token", token, set(func(c *Config) { c.APNSPKCS8PEM = nil }))
	f("APNS_PKCS8_PEM: want a P-256 PKCS#8 key", token, set(func(c *Config) { c.APNSPKCS8PEM = []byte("garbage") }))
	f("APNS_PKCS8_PEM: want a P-256 PKCS#8 key", token, set(func(c *Config) { c.APNSPKCS8PEM = rsaKeyPEM }))
	f("APNS_PKCS8_PEM: want a P-256 PKCS#8 key, got curve P-384", token, set(func(c *Config) { c.APNSPKCS8PEM = p384 }))
	f("APNS_KEY_ID: required", token, set(func(c *Config) { c.APNSKeyID = "" }))
	f("APNS_TEAM_ID: required", token, set(func(c *Config) { c.APNSTeamID = "" }))
	f("FCM_V1_CREDENTIALS: want a service-account JSON", set(func(c *Config) { c.FCMCredentials = []byte("{") }))
	f(`FCM_V1_CREDENTIALS: want "type": "service_account", got "authorized_user"`, set(func(c *Config) {
		c.FCMCredentials = []byte(`{"type":"authorized_user"}`)
	}))
	f("FCM_V1_CREDENTIALS: project_id is missing", set(func(c *Config) {
		c.FCMCredentials = []byte(strings.Replace(string(fcm), `"project_id":"`+testProject+`"`, `"project_id":""`, 1))
	}))
	f("FCM_V1_CREDENTIALS: private_key is not PEM", set(func(c *Config) {
		c.FCMCredentials = []byte(`{"type":"service_account","project_id":"p","client_email":"a@b","private_key":"nope"}`)
	}))
	f("FCM_V1_CREDENTIALS: token_uri", set(func(c *Config) {
		c.FCMCredentials = []byte(strings.Replace(string(fcm), `"token_uri":"`, `"token_uri":"ftp:`, 1))
	}))
	for _, bad := range []string{"127.0.0.1:8080", "ftp://host", "https://host/3/device", "https://host?x=1", "https://", "http://u:p@host"} {
		f("APNS_URL: want scheme://host[:port]", token, set(func(c *Config) { c.APNSURL = bad }))
		f("APNS_SANDBOX_URL: want scheme://host[:port]", token, set(func(c *Config) { c.APNSSandboxURL = bad }))
		f("FCM_URL: want scheme://host[:port]", set(func(c *Config) { c.FCMURL = bad }))
	}
	f("PROVIDER_TIMEOUT", set(func(c *Config) { c.Timeout = -time.Second }))
	f("PROVIDER_MAX_ATTEMPTS", set(func(c *Config) { c.MaxAttempts = -1 }))
	f("PROVIDER_MAX_RETRIES_PER_SECOND", set(func(c *Config) { c.MaxRetriesPerSecond = -1 }))
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{Credentials: Credentials{APNSType: "token"}})
	if err == nil || !strings.HasPrefix(err.Error(), "APNS_TOPIC:") {
		t.Fatalf("New with a bad Config = %v; want the APNS_TOPIC error of Parse", err)
	}
}

func TestDispatcherSenders(t *testing.T) {
	d := mustNew(t, Config{})
	for _, typ := range []string{TypeAPNS, TypeAPNSSandbox, TypeFCM, "gcm", ""} {
		if _, err := d.Sender(typ); !errors.Is(err, ErrProviderNotAvailable) {
			t.Errorf("Sender(%q) with nothing configured = %v; want ErrProviderNotAvailable", typ, err)
		}
		if d.Available(typ) {
			t.Errorf("Available(%q) = true with nothing configured", typ)
		}
	}
	s, err := d.Sender("NOOP")
	if err != nil || s != Sender(d.Noop()) {
		t.Fatalf("Sender(NOOP) = %v, %v; want the dispatcher's Noop", s, err)
	}
	if err := s.Send(t.Context(), "any", &Notification{Kind: KindRaw}); err != nil || d.Noop().Sent() != 1 {
		t.Fatalf("noop Send = %v, Sent() = %d; want nil, 1", err, d.Noop().Sent())
	}

	key := newAPNsKey(t)
	cfg := Config{Credentials: Credentials{APNSType: APNSTypeToken, APNSTopic: testTopic, APNSPKCS8PEM: key.pem, APNSKeyID: testKeyID, APNSTeamID: testTeamID}}
	d = mustNew(t, cfg)
	for typ, want := range map[string]bool{TypeAPNS: true, "APNS-Sandbox": true, TypeFCM: false, TypeNoop: true} {
		if got := d.Available(typ); got != want {
			t.Errorf("with APNs only, Available(%q) = %v; want %v", typ, got, want)
		}
	}
}
