package dispatchtest_test

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"push-server/dispatch/dispatchtest"
)

// capture is a webpush-go HTTPClient that keeps the request instead of
// sending it, so a test can replay it with one thing changed.
type capture struct {
	req  *http.Request
	body []byte
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	c.req = r
	c.body, _ = io.ReadAll(r.Body)
	return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader(""))}, nil
}

type vapidPair struct {
	key    *ecdsa.PrivateKey
	public string // base64url uncompressed point
	secret string // base64url scalar, as webpush-go takes it
}

func newVAPID(t *testing.T) vapidPair {
	k := newECKey(t)
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return vapidPair{k, base64.RawURLEncoding.EncodeToString(pub), base64.RawURLEncoding.EncodeToString(priv)}
}

// encryptFor has webpush-go build a push to sub and returns its request
// body and headers.
func encryptFor(t *testing.T, sub string, v vapidPair, payload []byte) ([]byte, http.Header) {
	t.Helper()
	var s webpush.Subscription
	if err := json.Unmarshal([]byte(sub), &s); err != nil {
		t.Fatal(err)
	}
	var c capture
	if _, err := webpush.SendNotification(payload, &s, &webpush.Options{
		HTTPClient: &c, Subscriber: "ops@example.com", TTL: 30, VAPIDPublicKey: v.public, VAPIDPrivateKey: v.secret,
	}); err != nil {
		t.Fatal(err)
	}
	return c.body, c.req.Header
}

func endpointOf(t *testing.T, sub string) string {
	t.Helper()
	var s struct{ Endpoint string }
	if err := json.Unmarshal([]byte(sub), &s); err != nil {
		t.Fatal(err)
	}
	return s.Endpoint
}

func post(t *testing.T, url string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestWebPushServiceChecksPushes replays one valid push with one thing
// wrong at a time and expects the push service's answer for it.
func TestWebPushServiceChecksPushes(t *testing.T) {
	m := dispatchtest.StartWebPushService(t, false)
	v := newVAPID(t)
	sub := m.Subscribe(v.public)
	url := endpointOf(t, sub)
	body, hdr := encryptFor(t, sub, v, []byte("hello"))

	if status, reason := post(t, url, hdr.Clone(), body); status != 201 {
		t.Fatalf("a valid push: %d %s", status, reason)
	}
	if got := m.Received(); len(got) != 1 || string(got[0].Plaintext) != "hello" || got[0].TTL != 30 {
		t.Fatalf("Received = %+v", got)
	}

	vapid := func(key *ecdsa.PrivateKey, k string, claims map[string]any) string {
		return "vapid t=" + signJWT(t, key, map[string]any{"typ": "JWT", "alg": "ES256"}, claims) + ", k=" + k
	}
	good := func() map[string]any {
		return map[string]any{"aud": m.Origin(), "exp": time.Now().Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"}
	}
	with := func(k string, val any) map[string]any { c := good(); c[k] = val; return c }
	other := newVAPID(t)
	tamper := append([]byte(nil), body...)
	tamper[len(tamper)-1] ^= 1
	for _, tc := range []struct {
		name   string
		edit   func(h http.Header)
		body   []byte
		status int
	}{
		{"no authorization", func(h http.Header) { h.Del("Authorization") }, body, 401},
		{"bearer scheme", func(h http.Header) { h.Set("Authorization", "Bearer x") }, body, 401},
		{"aud of another origin", func(h http.Header) {
			h.Set("Authorization", vapid(v.key, v.public, with("aud", "https://example.com")))
		}, body, 401},
		{"exp past", func(h http.Header) {
			h.Set("Authorization", vapid(v.key, v.public, with("exp", time.Now().Add(-time.Minute).Unix())))
		}, body, 401},
		{"exp over 24 h", func(h http.Header) {
			h.Set("Authorization", vapid(v.key, v.public, with("exp", time.Now().Add(25*time.Hour).Unix())))
		}, body, 401},
		{"no sub", func(h http.Header) { c := good(); delete(c, "sub"); h.Set("Authorization", vapid(v.key, v.public, c)) }, body, 401},
		{"signed by another key", func(h http.Header) { h.Set("Authorization", vapid(other.key, v.public, good())) }, body, 401},
		{"another server's key", func(h http.Header) { h.Set("Authorization", vapid(other.key, other.public, good())) }, body, 403},
		{"valid hand-made JWT", func(h http.Header) { h.Set("Authorization", vapid(v.key, v.public, good())) }, body, 201},
		{"no TTL", func(h http.Header) { h.Del("TTL") }, body, 400},
		{"aesgcm encoding", func(h http.Header) { h.Set("Content-Encoding", "aesgcm") }, body, 400},
		{"bad urgency", func(h http.Header) { h.Set("Urgency", "now") }, body, 400},
		{"tampered record", func(http.Header) {}, tamper, 400},
		{"over 4096 bytes", func(http.Header) {}, append(append([]byte(nil), body...), make([]byte, 4097-len(body))...), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr.Clone()
			tc.edit(h)
			if status, reason := post(t, url, h, tc.body); status != tc.status {
				t.Fatalf("answered %d %q, want %d", status, reason, tc.status)
			}
		})
	}

	if status, _ := post(t, url+"x", hdr.Clone(), body); status != 404 {
		t.Errorf("unknown endpoint: %d, want 404", status)
	}
	m.Unsubscribe(sub)
	if status, _ := post(t, url, hdr.Clone(), body); status != 410 {
		t.Errorf("after Unsubscribe: %d, want 410", status)
	}
}

// TestWebPushServiceHostNamesItsOrigin: with WebPushOptions.Host the
// origin, the endpoints and the aud a push must carry all name that host;
// the check stays exact, so a JWT for the listener's 127.0.0.1 origin is
// refused like any other audience.
func TestWebPushServiceHostNamesItsOrigin(t *testing.T) {
	m, err := dispatchtest.NewWebPushService(dispatchtest.WebPushOptions{Host: "webpush.push-server.test", Record: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if !strings.HasPrefix(m.Origin(), "http://webpush.push-server.test:") {
		t.Fatalf("Origin() = %q, want http://webpush.push-server.test:<port>", m.Origin())
	}
	v := newVAPID(t)
	sub := m.Subscribe(v.public)
	endpoint := endpointOf(t, sub)
	if !strings.HasPrefix(endpoint, m.Origin()+"/push/") {
		t.Fatalf("endpoint %q is not under %s", endpoint, m.Origin())
	}
	body, hdr := encryptFor(t, sub, v, []byte("named")) // aud: the endpoint's origin
	_, port, _ := strings.Cut(strings.TrimPrefix(m.Origin(), "http://"), ":")
	loopback := "http://127.0.0.1:" + port
	direct := strings.Replace(endpoint, m.Origin(), loopback, 1) // the name resolves nowhere

	if status, reason := post(t, direct, hdr.Clone(), body); status != 201 {
		t.Fatalf("a push with aud %s: %d %s", m.Origin(), status, reason)
	}
	if got := m.Received(); len(got) != 1 || string(got[0].Plaintext) != "named" || got[0].Audience != m.Origin() {
		t.Fatalf("Received = %+v", got)
	}
	h := hdr.Clone()
	h.Set("Authorization", "vapid t="+signJWT(t, v.key, map[string]any{"typ": "JWT", "alg": "ES256"},
		map[string]any{"aud": loopback, "exp": time.Now().Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"})+", k="+v.public)
	if status, reason := post(t, direct, h, body); status != 401 {
		t.Fatalf("a push with aud %s (the listener's address): %d %q, want 401", loopback, status, reason)
	}
}

func TestWebPushServiceScriptsAndRedirects(t *testing.T) {
	m := dispatchtest.StartWebPushService(t, false)
	v := newVAPID(t)
	sub := m.Subscribe(v.public)
	body, hdr := encryptFor(t, sub, v, []byte("x"))
	m.Script(sub, dispatchtest.Answer{Status: 429, RetryAfter: "3"}, dispatchtest.Answer{Status: 307}, dispatchtest.Answer{})

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, endpointOf(t, sub), bytes.NewReader(body))
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("first answer %d Retry-After %q, want 429 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A client that follows redirects reaches the target, and it counts.
	if status, _ := post(t, endpointOf(t, sub), hdr.Clone(), body); status != 201 || m.Redirected() != 1 {
		t.Fatalf("following the 307: %d, Redirected = %d; want the target's 201 and 1", status, m.Redirected())
	}
	if status, _ := post(t, endpointOf(t, sub), hdr.Clone(), body); status != 201 {
		t.Fatalf("after the script: %d", status)
	}
	if got := len(m.Received()); got != 1 {
		t.Fatalf("%d pushes delivered, want the last one only", got)
	}
}

// TestWebPushServiceByHand is the mock-providers walk-through: subscribe
// over HTTP, push, read the messages back; without Record only the last
// 100 are kept.
func TestWebPushServiceByHand(t *testing.T) {
	m, err := dispatchtest.NewWebPushService(dispatchtest.WebPushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	v := newVAPID(t)
	status, sub := post(t, m.Origin()+"/subscribe", http.Header{}, []byte(`{"applicationServerKey":"`+v.public+`"}`))
	if status != 201 {
		t.Fatalf("POST /subscribe: %d %s", status, sub)
	}
	url := endpointOf(t, sub)
	for i := range 101 {
		body, hdr := encryptFor(t, sub, v, []byte(`{"n":"`+strconv.Itoa(i)+`"}`))
		if status, reason := post(t, url, hdr, body); status != 201 {
			t.Fatalf("push %d: %d %s", i, status, reason)
		}
	}
	resp, err := http.Get(m.Origin() + "/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msgs []struct {
		Subscription string            `json:"subscription"`
		Payload      map[string]string `json:"payload"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 100 || msgs[0].Payload["n"] != "1" || msgs[99].Payload["n"] != "100" || msgs[0].Subscription != sub {
		t.Fatalf("GET /messages: %d messages, first %+v", len(msgs), msgs[0])
	}
	if len(m.Requests()) != 0 {
		t.Fatal("a mock without Record recorded requests")
	}
}
