package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"push-server/dispatch/dispatchtest"
)

const (
	testKeyID  = "TESTKEY001"
	testTeamID = "TESTTEAM01"
	testTopic  = "com.example.wallet"
	testDevice = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// fixture is a mock started in-process with a fresh trusted provider key.
type fixture struct {
	srv   *server
	key   *ecdsa.PrivateKey
	roots *x509.CertPool
}

// startMock starts a mock that gathers bursts for up to coalesce (0: reads
// each push as it comes).
func startMock(t *testing.T, coalesce time.Duration) *fixture {
	t.Helper()
	key := newKey(t)
	srv, err := newServer(serverConfig{KeyID: testKeyID, TeamID: testTeamID, Key: &key.PublicKey, Coalesce: coalesce})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(srv.CertPEM()) {
		t.Fatal("mock's CertPEM is not a PEM certificate")
	}
	return &fixture{srv: srv, key: key, roots: roots}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// client returns a real apns2 client in token mode, signing with key (nil:
// no provider token at all), over an HTTP/2 transport that trusts the mock,
// as push-server builds it.
func (f *fixture) client(t *testing.T, key *ecdsa.PrivateKey) *apns2.Client {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &apns2.Client{Host: f.srv.URL(), HTTPClient: &http.Client{Transport: tr}}
	if key != nil {
		c.Token = &token.Token{AuthKey: key, KeyID: testKeyID, TeamID: testTeamID}
	}
	return c
}

func push(t *testing.T, c *apns2.Client, n *apns2.Notification) *apns2.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.PushWithContext(ctx, n)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

// payload returns a valid APNs payload of exactly size bytes (size >= 20).
func payload(size int) []byte {
	const head, tail = `{"aps":{},"pad":"`, `"}`
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

// defaultCoalesce is main's -coalesce default.
const defaultCoalesce = 200 * time.Microsecond

func TestConcurrentPushesAreAllAccepted(t *testing.T) {
	for _, coalesce := range []time.Duration{0, defaultCoalesce} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) { testConcurrentPushes(t, coalesce) })
	}
}

func testConcurrentPushes(t *testing.T, coalesce time.Duration) {
	f := startMock(t, coalesce)
	c := f.client(t, f.key)
	const pushes, workers = 2000, 64
	type result struct {
		sent string // the apns-id sent, "" for none
		res  *apns2.Response
		err  error
	}
	results := make([]result, pushes)
	// One deadline for the lot, so a stalled connection fails the test
	// rather than each push in turn.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < pushes; i += workers {
				n := &apns2.Notification{
					DeviceToken: testDevice,
					Topic:       testTopic,
					// Up to 3 KiB each: 3 MB in all, three times the
					// connection window, so the pushes only all get
					// through if the mock replenishes it.
					Payload: payload(100 + i*3000/pushes),
				}
				if i%2 == 0 {
					n.ApnsID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
				}
				res, err := c.PushWithContext(ctx, n)
				results[i] = result{sent: n.ApnsID, res: res, err: err}
			}
		})
	}
	wg.Wait()

	generated := make(map[string]bool)
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("push %d: %v", i, r.err)
		}
		if r.res.StatusCode != 200 || r.res.Reason != "" {
			t.Fatalf("push %d: answered %d %q, want 200", i, r.res.StatusCode, r.res.Reason)
		}
		switch {
		case r.sent != "" && r.res.ApnsID != r.sent:
			t.Fatalf("push %d: apns-id %q, want the one sent, %q", i, r.res.ApnsID, r.sent)
		case r.sent == "" && !dispatchtest.IsAPNsID(r.res.ApnsID):
			t.Fatalf("push %d: generated apns-id %q is not a UUID", i, r.res.ApnsID)
		case r.sent == "" && generated[r.res.ApnsID]:
			t.Fatalf("push %d: generated apns-id %q twice", i, r.res.ApnsID)
		}
		generated[r.res.ApnsID] = true
	}
	if got := f.srv.Count(); got != pushes {
		t.Errorf("mock counted %d pushes, want %d", got, pushes)
	}
	// The one token apns2 signed was verified once and then cached by its
	// text.
	f.srv.tokens.mu.RLock()
	cached := len(f.srv.tokens.ok)
	f.srv.tokens.mu.RUnlock()
	if cached != 1 {
		t.Errorf("%d provider tokens cached, want 1", cached)
	}
}

func TestRefusedPushes(t *testing.T) {
	f := startMock(t, defaultCoalesce)
	good := f.client(t, f.key)
	const id = "11111111-2222-4333-8444-555555555555"
	note := func(edit func(n *apns2.Notification)) *apns2.Notification {
		n := &apns2.Notification{DeviceToken: testDevice, Topic: testTopic, ApnsID: id, Payload: payload(100)}
		if edit != nil {
			edit(n)
		}
		return n
	}
	tests := []struct {
		name   string
		client *apns2.Client
		n      *apns2.Notification
		status int
		reason string
	}{
		{"token signed by another key", f.client(t, newKey(t)), note(nil), 403, "InvalidProviderToken"},
		{"no provider token", f.client(t, nil), note(nil), 403, "MissingProviderToken"},
		{"missing topic", good, note(func(n *apns2.Notification) { n.Topic = "" }), 400, "MissingTopic"},
		{"payload over 4096 bytes", good, note(func(n *apns2.Notification) { n.Payload = payload(4097) }), 413, "PayloadTooLarge"},
		// Three times the stream window: the mock must top it up to read
		// the body to its end before answering.
		{"payload of 3 MiB", good, note(func(n *apns2.Notification) { n.Payload = payload(3 << 20) }), 413, "PayloadTooLarge"},
		// apns2 cannot send an empty body (json.Marshal rejects it);
		// TestProtocol sends one.
		{"device token not hex", good, note(func(n *apns2.Notification) { n.DeviceToken = "not-a-token" }), 400, "BadDeviceToken"},
		{"apns-id not a UUID", good, note(func(n *apns2.Notification) { n.ApnsID = "42" }), 400, "BadMessageId"},
		{"voip payload over 4096 bytes is allowed", good, note(func(n *apns2.Notification) {
			n.PushType, n.Payload = apns2.PushTypeVOIP, payload(5000)
		}), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := push(t, tt.client, tt.n)
			if res.StatusCode != tt.status || res.Reason != tt.reason {
				t.Errorf("answered %d %q, want %d %q", res.StatusCode, res.Reason, tt.status, tt.reason)
			}
			if tt.n.ApnsID == id && res.ApnsID != id {
				t.Errorf("apns-id %q, want the one sent, %q", res.ApnsID, id)
			}
			if tt.n.ApnsID != id && !dispatchtest.IsAPNsID(res.ApnsID) {
				t.Errorf("apns-id %q is not a UUID", res.ApnsID)
			}
		})
	}
	if got := f.srv.Count(); got != 1 {
		t.Errorf("mock counted %d pushes, want 1 (the voip one)", got)
	}
}

func TestProviderTokenAge(t *testing.T) {
	f := startMock(t, 0)
	c := &conn{srv: f.srv}
	now := time.Now()
	tests := []struct {
		name   string
		auth   string
		status int
		reason string
	}{
		{"fresh", "bearer " + signJWT(t, f.key, testKeyID, testTeamID, now.Add(-time.Minute)), 200, ""},
		{"issued over an hour ago", "bearer " + signJWT(t, f.key, testKeyID, testTeamID, now.Add(-61*time.Minute)), 403, "ExpiredProviderToken"},
		{"unknown key id", "bearer " + signJWT(t, f.key, "OTHERKEY01", testTeamID, now), 403, "InvalidProviderToken"},
		{"other team", "bearer " + signJWT(t, f.key, testKeyID, "OTHERTEAM1", now), 403, "InvalidProviderToken"},
		{"not a JWT", "bearer abc", 403, "InvalidProviderToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: the second answer comes from the connection's cache.
			for range 2 {
				if status, reason := c.authorize(tt.auth); status != tt.status || reason != tt.reason {
					t.Fatalf("authorize: %d %q, want %d %q", status, reason, tt.status, tt.reason)
				}
			}
		})
	}
}

// signJWT makes an APNs provider token (ES256) the way Apple documents it.
func signJWT(t *testing.T, key *ecdsa.PrivateKey, keyID, teamID string, iat time.Time) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(fmt.Appendf(nil, `{"alg":"ES256","kid":%q}`, keyID)) + "." +
		enc.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"iat":%d}`, teamID, iat.Unix()))
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}
