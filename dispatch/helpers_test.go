package dispatch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/internal/testkit"
)

// Test identities. Device tokens are hex, as APNs requires.
const (
	testTopic   = "com.example.wallet"
	testKeyID   = "ABC123DEFG"
	testTeamID  = "TEAM123456"
	testToken   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testProject = "wallet-project"
)

// apnsKey is a throwaway P-256 key as a .p8 (PKCS#8 PEM).
type apnsKey struct {
	key *ecdsa.PrivateKey
	pem []byte
}

func newAPNsKey(t testing.TB) apnsKey {
	t.Helper()
	key, p8 := testkit.NewP8(t)
	return apnsKey{key, p8}
}

// clientCert is a throwaway self-signed client certificate and its .p12.
type clientCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // trusts cert
}

func newClientCert(t testing.TB, notAfter time.Time) clientCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "Apple Push Services: " + testTopic},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return clientCert{cert, key, pool}
}

// p12 packs the certificate and key with enc (pkcs12.Modern, Legacy…).
func (c clientCert) p12(t testing.TB, enc *pkcs12.Encoder, password string) []byte {
	t.Helper()
	b, err := enc.Encode(c.key, c.cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delays records the calls of Config.RetryDelay and never sleeps.
type delays struct {
	mu    sync.Mutex
	calls []delayCall
}

type delayCall struct {
	attempt    int
	retryAfter time.Duration
}

func (d *delays) fn(attempt int, retryAfter time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, delayCall{attempt, retryAfter})
	return 0
}

func (d *delays) get() []delayCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delayCall(nil), d.calls...)
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// baseConfig is a Config with test timing: no retry sleeps, a short
// timeout, logs discarded.
func baseConfig() Config {
	return Config{
		Timeout:     5 * time.Second,
		MaxAttempts: 3,
		RetryDelay:  func(int, time.Duration) time.Duration { return 0 },
		Logger:      discardLogger,
	}
}

// mustNew builds a Dispatcher and closes it when the test ends.
func mustNew(t testing.TB, cfg Config) *Dispatcher {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func mustSender(t testing.TB, d *Dispatcher, typ string) Sender {
	t.Helper()
	s, err := d.Sender(typ)
	if err != nil {
		t.Fatalf("Sender(%q): %v", typ, err)
	}
	return s
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
