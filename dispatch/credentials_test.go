package dispatch

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// pkcs8PEM is key as a PKCS#8 PEM block.
func pkcs8PEM(t *testing.T, key crypto.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// wantPart checks that err is a *CredentialError for part whose message
// contains substr.
func wantPart(t *testing.T, what string, err error, part, substr string) {
	t.Helper()
	var ce *CredentialError
	switch {
	case err == nil:
		t.Errorf("%s: nil error; want one for part %q", what, part)
	case !errors.As(err, &ce):
		t.Errorf("%s: error %v (%T) is not a *CredentialError", what, err, err)
	case ce.Part != part:
		t.Errorf("%s: Part = %q (%v); want %q", what, ce.Part, err, part)
	case !strings.Contains(err.Error(), substr):
		t.Errorf("%s: error %q does not contain %q", what, err, substr)
	case !strings.HasPrefix(err.Error(), part+": "):
		t.Errorf("%s: error %q does not start with its part", what, err)
	}
}

func TestCheckAPNSCertificate(t *testing.T) {
	cert := newClientCert(t, time.Now().Add(24*time.Hour))
	modern := cert.p12(t, pkcs12.Modern, "secret")
	for name, p12 := range map[string][]byte{
		"AES (OpenSSL 3)": modern,
		"3DES":            cert.p12(t, pkcs12.LegacyDES, "secret"),
		"base64":          []byte(base64.StdEncoding.EncodeToString(modern)),
	} {
		if err := CheckAPNSCertificate(p12, "secret"); err != nil {
			t.Errorf("%s .p12 with its password: %v", name, err)
		}
	}

	wantPart(t, "wrong password", CheckAPNSCertificate(modern, "wrong"), PartAPNSCertificatePassword, "does not open the .p12")
	wantPart(t, "no password", CheckAPNSCertificate(cert.p12(t, pkcs12.LegacyDES, "secret"), ""), PartAPNSCertificatePassword, "does not open the .p12")
	wantPart(t, "not a .p12", CheckAPNSCertificate([]byte("\x30\x82garbage"), "secret"), PartAPNSCertificate, "cannot open .p12")
	wantPart(t, "empty", CheckAPNSCertificate(nil, "secret"), PartAPNSCertificate, "required")

	noKey, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{cert.cert}, "secret")
	if err != nil {
		t.Fatal(err)
	}
	wantPart(t, "certificate without key", CheckAPNSCertificate(noKey, "secret"), PartAPNSCertificate, "no private key")

	expired := newClientCert(t, time.Now().Add(-time.Minute))
	wantPart(t, "expired", CheckAPNSCertificate(expired.p12(t, pkcs12.Modern, "pw"), "pw"), PartAPNSCertificate, "expired on")

	other := newClientCert(t, time.Now().Add(time.Hour))
	mismatched, err := pkcs12.Modern.Encode(other.key, cert.cert, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	wantPart(t, "key of another certificate", CheckAPNSCertificate(mismatched, "pw"), PartAPNSCertificate, "does not match")
}

func TestCheckAPNSKey(t *testing.T) {
	key := newAPNsKey(t)
	der, _ := pem.Decode(key.pem)
	for name, in := range map[string][]byte{
		"PEM":           key.pem,
		"base64 of PEM": []byte(base64.StdEncoding.EncodeToString(key.pem)),
		"base64 of DER": []byte(base64.StdEncoding.EncodeToString(der.Bytes)),
	} {
		if err := CheckAPNSKey(in, testKeyID, testTeamID); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wantPart(t, "P-384", CheckAPNSKey(pkcs8PEM(t, p384), testKeyID, testTeamID), PartAPNSPKCS8PEM, "got curve P-384")
	wantPart(t, "RSA", CheckAPNSKey(pkcs8PEM(t, rsaKey), testKeyID, testTeamID), PartAPNSPKCS8PEM, "want a P-256 PKCS#8 key")
	wantPart(t, "garbage", CheckAPNSKey([]byte("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"), testKeyID, testTeamID), PartAPNSPKCS8PEM, "want a P-256 PKCS#8 key")
	wantPart(t, "not PEM", CheckAPNSKey([]byte("garbage"), testKeyID, testTeamID), PartAPNSPKCS8PEM, "want a P-256 PKCS#8 key")
	wantPart(t, "empty", CheckAPNSKey(nil, testKeyID, testTeamID), PartAPNSPKCS8PEM, "required")
	wantPart(t, "no key id", CheckAPNSKey(key.pem, "", testTeamID), PartAPNSKeyID, "required")
	wantPart(t, "key id with a line break", CheckAPNSKey(key.pem, testKeyID+"\n", testTeamID), PartAPNSKeyID, "letters and digits")
	wantPart(t, "no team id", CheckAPNSKey(key.pem, testKeyID, ""), PartAPNSTeamID, "required")
	wantPart(t, "quoted team id", CheckAPNSKey(key.pem, testKeyID, `"`+testTeamID+`"`), PartAPNSTeamID, "letters and digits")
}

func TestCheckAPNSTopic(t *testing.T) {
	for _, ok := range []string{testTopic, "com.example.wallet.voip", "com.example.app.push-type.liveactivity"} {
		if err := CheckAPNSTopic(ok); err != nil {
			t.Errorf("CheckAPNSTopic(%q) = %v", ok, err)
		}
	}
	wantPart(t, "empty topic", CheckAPNSTopic(""), PartAPNSTopic, "required")
	wantPart(t, "topic with a space", CheckAPNSTopic("com.example wallet"), PartAPNSTopic, "without spaces")
	wantPart(t, "topic with a line break", CheckAPNSTopic(testTopic+"\r\n"), PartAPNSTopic, "without spaces")
}

// withField returns the service-account JSON with one field replaced.
func withField(t *testing.T, sa []byte, key, value string) []byte {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(sa, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckFCMCredentials(t *testing.T) {
	a, b := dispatchtest.StartFCM(t), dispatchtest.StartFCM(t)
	sa := a.ServiceAccountJSON(testProject)
	ctx, cancel := contextWithTimeout(t, 5*time.Second)
	defer cancel()

	allowed := mustTokenURIs(t, a.TokenURL(), b.TokenURL())
	project, err := CheckFCMCredentials(ctx, sa, nil, allowed)
	if err != nil || project != testProject {
		t.Fatalf("CheckFCMCredentials(good) = %q, %v; want %q, nil", project, err, testProject)
	}
	if n := a.TokenFetches(); n != 1 {
		t.Fatalf("the mock issued %d access tokens; want 1: the check must prove the key", n)
	}

	refused := func(what string, js []byte, reason string) {
		t.Helper()
		_, err := CheckFCMCredentials(ctx, js, nil, allowed)
		wantPart(t, what, err, PartFCMCredentials, reason)
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v wraps ErrUnavailable; a refused key is the tenant's to fix", what, err)
		}
	}
	// A key the token endpoint never issued: another mock's account.
	refused("account of another endpoint", withField(t, sa, "token_uri", b.TokenURL()), "unknown issuer")
	// The right account with a key it does not hold.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	refused("substituted key", withField(t, sa, "private_key", string(pkcs8PEM(t, rsaKey))), "invalid JWT signature")
	refused("not JSON", []byte("{"), "want a service-account JSON")
	refused("EC key", withField(t, sa, "private_key", string(newAPNsKey(t).pem)), "private_key must be RSA")
	refused("no project", withField(t, sa, "project_id", ""), "project_id is missing")

	// Nothing listens: the check cannot tell whether the key is good.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/token"
	ln.Close()
	_, err = CheckFCMCredentials(ctx, withField(t, sa, "token_uri", closedURL), nil, mustTokenURIs(t, closedURL))
	wantPart(t, "unreachable token_uri", err, PartFCMCredentials, "cannot get an access token")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable token_uri: %v does not wrap ErrUnavailable", err)
	}
}

func TestCheckFCMCredentialsHonoursDeadline(t *testing.T) {
	// A token endpoint that accepts connections and never answers.
	hanging := "http://" + testkit.SilentServer(t) + "/token"
	sa := withField(t, dispatchtest.StartFCM(t).ServiceAccountJSON(testProject), "token_uri", hanging)

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := CheckFCMCredentials(ctx, sa, nil, mustTokenURIs(t, hanging))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("CheckFCMCredentials took %v with a 300ms deadline", took)
	}
	wantPart(t, "hanging token_uri", err, PartFCMCredentials, "in time")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("hanging token_uri: %v does not wrap ErrUnavailable", err)
	}
}

// The expiry the gateway watches is the certificate's own notAfter, and a
// .p12 that CheckAPNSCertificate refuses gives no date.
func TestAPNSCertificateNotAfter(t *testing.T) {
	notAfter := time.Now().Add(20 * 24 * time.Hour).Truncate(time.Second)
	cert := newClientCert(t, notAfter)
	got, err := APNSCertificateNotAfter(cert.p12(t, pkcs12.Modern, "pw"), "pw")
	if err != nil || !got.Equal(notAfter) {
		t.Fatalf("APNSCertificateNotAfter = %v, %v; want %v", got, err, notAfter)
	}
	expired := newClientCert(t, time.Now().Add(-time.Minute))
	if _, err := APNSCertificateNotAfter(expired.p12(t, pkcs12.Modern, "pw"), "pw"); err == nil {
		t.Fatal("an expired certificate gave an expiry date, not an error")
	}
	wantPart(t, "wrong password", func() error { _, err := APNSCertificateNotAfter(cert.p12(t, pkcs12.Modern, "pw"), "x"); return err }(),
		PartAPNSCertificatePassword, "does not open")
}
