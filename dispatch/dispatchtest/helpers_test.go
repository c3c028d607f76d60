package dispatchtest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP, as a sender
// does for an http:// APNS_URL.
func h2cClient(t *testing.T) *http.Client {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tlsClient speaks HTTP/2 over TLS trusting roots, presenting certs.
func tlsClient(t *testing.T, roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// apnsPush is one APNs request; newPush returns a valid one.
type apnsPush struct {
	method string
	path   string
	header map[string]string
	body   string
}

const (
	testToken = "0a1b2c3d4e5f6789"
	testTopic = "com.example.wallet"
)

func newPush(token string) apnsPush {
	return apnsPush{
		method: http.MethodPost,
		path:   "/3/device/" + token,
		header: map[string]string{
			"apns-topic":      testTopic,
			"apns-push-type":  "alert",
			"apns-priority":   "10",
			"apns-expiration": "0",
		},
		body: `{"aps":{"alert":{"title":"Signature required","body":"You have a message to sign"}},"topic":"t"}`,
	}
}

// apnsReply is what the mock answered.
type apnsReply struct {
	status    int
	reason    string
	timestamp *int64
	header    http.Header
	proto     int
}

func send(t *testing.T, c *http.Client, base string, p apnsPush) apnsReply {
	t.Helper()
	req, err := http.NewRequest(p.method, base+p.path, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.method, p.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := apnsReply{status: resp.StatusCode, header: resp.Header, proto: resp.ProtoMajor}
	if len(body) > 0 {
		var e struct {
			Reason    string `json:"reason"`
			Timestamp *int64 `json:"timestamp"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("APNs error body %q is not JSON: %v", body, err)
		}
		r.reason, r.timestamp = e.Reason, e.Timestamp
	}
	return r
}

// signJWT signs header and claims with key: ES256 for an ECDSA key (the
// 64-byte r||s form JWS requires), RS256 for an RSA key.
func signJWT(t testing.TB, key crypto.Signer, header, claims map[string]any) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := seg(header) + "." + seg(claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unsupported key %T", key)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA returns a CA certificate pool and a client certificate it issued.
func newCA(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey := newECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "Apple Push Services: " + testTopic},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serviceAccount is the part of a service-account JSON a token request uses.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
	key          *rsa.PrivateKey
}

func parseServiceAccount(t *testing.T, b []byte) serviceAccount {
	t.Helper()
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil {
		t.Fatalf("service account JSON: %v", err)
	}
	blk, _ := pem.Decode([]byte(sa.PrivateKey))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatalf("private_key is not a PKCS#8 PEM block: %q", sa.PrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != 2048 {
		t.Fatalf("private_key is %T, want RSA-2048", k)
	}
	sa.key = rk
	return sa
}

// assertion is the JWT a Google client library signs for the token endpoint.
func (sa serviceAccount) assertion(t *testing.T, mutate func(h, c map[string]any)) string {
	now := time.Now().Unix()
	h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": sa.PrivateKeyID}
	c := map[string]any{
		"iss":   sa.ClientEmail,
		"scope": "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/firebase.messaging",
		"aud":   sa.TokenURI,
		"iat":   now,
		"exp":   now + 3600,
	}
	if mutate != nil {
		mutate(h, c)
	}
	return signJWT(t, sa.key, h, c)
}

// fetchToken posts an assertion to the token endpoint and returns the status
// and decoded JSON answer.
func fetchToken(t *testing.T, tokenURL, grantType, assertion string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(tokenURL, url.Values{"grant_type": {grantType}, "assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token endpoint answered non-JSON: %v", err)
	}
	return resp.StatusCode, out
}

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
