package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"push-server/dispatch/dispatchtest"
)

const testVAPIDSubject = "mailto:ops@example.com"

type webpushSetup struct {
	mock   *dispatchtest.WebPushService
	s      Sender
	d      *Dispatcher
	public string // the VAPID public key
}

// newWebPush starts a mock push service (plain HTTP on loopback, or TLS)
// and a Dispatcher whose VAPID key the mock's subscriptions are made for.
func newWebPush(t *testing.T, useTLS bool, edit func(*Config)) webpushSetup {
	t.Helper()
	m := dispatchtest.StartWebPushService(t, useTLS)
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	origins, err := ParseWebPushOrigins(m.Origin())
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.VAPIDPrivateKey, cfg.VAPIDSubject = priv, testVAPIDSubject
	cfg.WebPushAllowedOrigins = origins
	cfg.RootCAs = m.RootCAs()
	if edit != nil {
		edit(&cfg)
	}
	d := mustNew(t, cfg)
	return webpushSetup{mock: m, s: mustSender(t, d, TypeWebPush), d: d, public: pub}
}

// received decodes the one push the mock accepted.
func (w webpushSetup) received(t *testing.T) (dispatchtest.WebPushMessage, map[string]string) {
	t.Helper()
	got := w.mock.Received()
	if len(got) != 1 {
		t.Fatalf("the push service accepted %d pushes, want 1", len(got))
	}
	var payload map[string]string
	if err := json.Unmarshal(got[0].Plaintext, &payload); err != nil {
		t.Fatalf("the decrypted payload %q is not a JSON object of strings: %v", got[0].Plaintext, err)
	}
	return got[0], payload
}

// TestWebPushDeliversDecryptablePayloads sends each kind of notification the
// router builds and checks what the browser would decrypt, with the VAPID
// JWT the push service checked.
func TestWebPushDeliversDecryptablePayloads(t *testing.T) {
	w := newWebPush(t, false, nil)
	for _, tc := range []struct {
		name    string
		n       Notification
		want    map[string]string
		urgency string
	}{{
		name:    "always_raw",
		n:       Notification{Kind: KindRaw, Data: []Field{{"topic", "t1"}, {"tag", "4000"}, {"message", "m<&>"}}},
		want:    map[string]string{"topic": "t1", "tag": "4000", "message": "m<&>"},
		urgency: "normal",
	}, {
		name:    "encrypted",
		n:       Notification{Kind: KindEncrypted, Data: []Field{{"topic", "t2"}, {"blob", "ZW5jcnlwdGVk"}}},
		want:    map[string]string{"topic": "t2", "blob": "ZW5jcnlwdGVk"},
		urgency: "normal",
	}, {
		name: "cleartext 1100",
		n: Notification{Kind: KindVisible, Title: "Signature required", Body: "You have a message to sign",
			Data: []Field{{"topic", "t3"}, {"blob", "YmxvYg"}, {"tag", "1100"}}},
		want:    map[string]string{"topic": "t3", "blob": "YmxvYg", "tag": "1100", "title": "Signature required", "body": "You have a message to sign"},
		urgency: "high",
	}, {
		name: "cleartext 1108",
		n: Notification{Kind: KindVisible, Title: "Signature required", Body: "You have a message to sign",
			Data: []Field{{"topic", "t4"}, {"blob", "YmxvYg"}, {"tag", "1108"}}},
		want:    map[string]string{"topic": "t4", "blob": "YmxvYg", "tag": "1108", "title": "Signature required", "body": "You have a message to sign"},
		urgency: "high",
	}, {
		name: "cleartext blob",
		n: Notification{Kind: KindVisible, Title: "Hi", Body: "ünïcode ✓", ImageURL: "https://example.com/i.png", URL: "https://example.com/",
			Data: []Field{{"topic", "t5"}}},
		want:    map[string]string{"topic": "t5", "title": "Hi", "body": "ünïcode ✓", "image": "https://example.com/i.png", "url": "https://example.com/"},
		urgency: "normal",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w.mock.Reset()
			sub := w.mock.Subscribe(w.public)
			if err := w.s.Send(t.Context(), sub, &tc.n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msg, payload := w.received(t)
			if !reflect.DeepEqual(payload, tc.want) {
				t.Errorf("decrypted payload = %v, want %v", payload, tc.want)
			}
			if msg.Subscription != sub {
				t.Errorf("delivered to %s, want %s", msg.Subscription, sub)
			}
			if msg.Urgency != tc.urgency {
				t.Errorf("Urgency = %q, want %q", msg.Urgency, tc.urgency)
			}
			if msg.TTL != int(DefaultWebPushTTL/time.Second) {
				t.Errorf("TTL = %d, want %d", msg.TTL, int(DefaultWebPushTTL/time.Second))
			}
			if msg.Subject != testVAPIDSubject || msg.Audience != w.mock.Origin() || msg.PublicKey != w.public {
				t.Errorf("VAPID sub %q aud %q k %q, want %q %q %q", msg.Subject, msg.Audience, msg.PublicKey, testVAPIDSubject, w.mock.Origin(), w.public)
			}
			if life := time.Until(msg.Expires); life <= time.Hour || life > 24*time.Hour {
				t.Errorf("VAPID exp is %v ahead, want within 24 h and not about to lapse", life)
			}
		})
	}
}

// TestWebPushOverTLSUsesHTTP2 checks a push service reached over TLS (as
// every browser's is) is spoken to in HTTP/2, and WebPushTTL is sent.
func TestWebPushOverTLSUsesHTTP2(t *testing.T) {
	w := newWebPush(t, true, func(c *Config) { c.WebPushTTL = 90 * time.Second })
	sub := w.mock.Subscribe(w.public)
	for range 2 {
		if err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}}}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for _, msg := range w.mock.Received() {
		if msg.Proto != "HTTP/2.0" || msg.TTL != 90 {
			t.Errorf("push over %s with TTL %d, want HTTP/2.0 and 90", msg.Proto, msg.TTL)
		}
	}
}

func TestWebPushDeadSubscriptions(t *testing.T) {
	w := newWebPush(t, false, nil)
	n := &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}}}

	gone := w.mock.Subscribe(w.public)
	w.mock.Unsubscribe(gone)
	otherKey := w.mock.Subscribe(strings.Repeat("B", 87)) // made for another server's key: 403
	unknown := strings.Replace(w.mock.Subscribe(w.public), "/push/", "/push/x", 1)
	scripted404 := w.mock.Subscribe(w.public)
	w.mock.Script(scripted404, dispatchtest.Answer{Status: http.StatusNotFound})
	for name, tc := range map[string]struct {
		sub    string
		status int
	}{
		"410 unsubscribed": {gone, 410}, "403 another key": {otherKey, 403},
		"404 unknown endpoint": {unknown, 404}, "404 scripted": {scripted404, 404},
	} {
		t.Run(name, func(t *testing.T) {
			err := w.s.Send(t.Context(), tc.sub, n)
			var pe *ProviderError
			if !errors.Is(err, ErrTokenDead) || !errors.As(err, &pe) || pe.Status != tc.status || pe.Attempts != 1 {
				t.Fatalf("Send = %v, want ErrTokenDead after one %d", err, tc.status)
			}
			if strings.Contains(err.Error(), "/push/") {
				t.Errorf("the error shows the endpoint's path: %v", err)
			}
		})
	}
	if got := len(w.mock.Received()); got != 0 {
		t.Errorf("%d pushes delivered, want none", got)
	}
}

func TestWebPushAuthorizationRefusedIsCredentialsRejected(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	w.mock.Script(sub, dispatchtest.Answer{Status: http.StatusUnauthorized, Reason: "invalid JWT"})
	err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
	var pe *ProviderError
	if !errors.Is(err, ErrCredentialsRejected) || !errors.As(err, &pe) || pe.Provider != TypeWebPush || pe.Status != 401 {
		t.Fatalf("Send = %v, want ErrCredentialsRejected from webpush's 401", err)
	}
	if pe.Reason != "invalid JWT" {
		t.Errorf("Reason = %q, want the push service's text", pe.Reason)
	}
}

// TestWebPushWrongAudienceIsRefused has the mock judge a real JWT: one
// signed for another origin than the endpoint's (a push service behind a
// different name) is refused with 401.
func TestWebPushWrongAudienceIsRefused(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	// localhost is the same listener as 127.0.0.1 but another origin: the
	// JWT's aud is then not the mock's.
	sub = strings.Replace(sub, "127.0.0.1", "localhost", 1)
	origins, _ := ParseWebPushOrigins("http://localhost:" + w.mock.Origin()[strings.LastIndexByte(w.mock.Origin(), ':')+1:])
	cfg := baseConfig()
	priv, _, _ := GenerateVAPIDKeys()
	cfg.VAPIDPrivateKey, cfg.VAPIDSubject, cfg.WebPushAllowedOrigins = priv, testVAPIDSubject, origins
	s := mustSender(t, mustNew(t, cfg), TypeWebPush)
	err := s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
	if !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("Send = %v, want ErrCredentialsRejected (aud is not the mock's origin)", err)
	}
	if reqs := w.mock.Requests(); len(reqs) != 1 || !strings.Contains(reqs[0].Reason, "aud") {
		t.Fatalf("mock saw %+v, want one request refused for its aud", reqs)
	}
}

func TestWebPushBadRequestIsMisconfiguredNotRejected(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	w.mock.Script(sub, dispatchtest.Answer{Status: http.StatusBadRequest})
	err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
	if !errors.Is(err, ErrMisconfigured) || errors.Is(err, ErrCredentialsRejected) || errors.Is(err, ErrTokenDead) {
		t.Fatalf("Send = %v, want ErrMisconfigured but neither ErrCredentialsRejected nor ErrTokenDead", err)
	}
}

func TestWebPushPayloadTooLargeIsNotSent(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	// The JSON around the message is {"topic":"t","message":""}: 26 bytes.
	fits := &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}, {"message", strings.Repeat("a", maxWebPushPlaintext-26)}}}
	if n := len(appendWebPushPayload(nil, fits)); n != maxWebPushPlaintext {
		t.Fatalf("test payload is %d bytes, want exactly the limit %d", n, maxWebPushPlaintext)
	}
	if err := w.s.Send(t.Context(), sub, fits); err != nil {
		t.Fatalf("a %d-byte payload: %v", maxWebPushPlaintext, err)
	}
	if got := w.mock.Requests(); len(got) != 1 || got[0].BodySize != MaxPayloadSize {
		t.Fatalf("the largest payload went out as %+v, want one %d-byte record", got, MaxPayloadSize)
	}
	w.mock.Reset()
	tooBig := &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}, {"message", strings.Repeat("a", maxWebPushPlaintext-25)}}}
	if err := w.s.Send(t.Context(), sub, tooBig); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("one byte more: %v, want ErrPayloadTooLarge", err)
	}
	if n := w.mock.Count(); n != 0 {
		t.Fatalf("the push service saw %d requests for a payload refused before sending", n)
	}
}

func TestWebPushRetriesTooManyRequestsThenDeliversOnce(t *testing.T) {
	var d delays
	w := newWebPush(t, false, func(c *Config) { c.RetryDelay = d.fn })
	sub := w.mock.Subscribe(w.public)
	w.mock.Script(sub, dispatchtest.Answer{Status: http.StatusTooManyRequests, RetryAfter: "7"}, dispatchtest.Answer{})
	if err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := len(w.mock.Received()); got != 1 {
		t.Fatalf("delivered %d times, want once", got)
	}
	if got := d.get(); len(got) != 1 || got[0].retryAfter != 7*time.Second {
		t.Fatalf("retry delays %v, want one honouring Retry-After: 7", got)
	}
	if w.d.Retries() != 1 {
		t.Errorf("Retries = %d, want 1 (the retry budget counted it)", w.d.Retries())
	}
}

func TestWebPushServerErrorsExhaustAttempts(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	w.mock.Script(sub, dispatchtest.Answer{Status: http.StatusServiceUnavailable})
	err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
	var pe *ProviderError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Attempts != 3 || pe.Status != 503 {
		t.Fatalf("Send = %v, want ErrUnavailable after 3 attempts", err)
	}
}

func TestWebPushNeverFollowsRedirects(t *testing.T) {
	w := newWebPush(t, false, nil)
	sub := w.mock.Subscribe(w.public)
	for _, status := range []int{301, 302, 307, 308} {
		w.mock.Script(sub, dispatchtest.Answer{Status: status})
		err := w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
		var pe *ProviderError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Status != status || pe.Reason != "redirect not followed" {
			t.Errorf("%d: Send = %v, want ErrUnavailable with the redirect's status", status, err)
		}
	}
	if n := w.mock.Redirected(); n != 0 {
		t.Fatalf("the redirect target was requested %d times", n)
	}
}

// TestWebPushOutsideAllowListIsNeverContacted registers nothing off the
// list (CheckWebPushSubscription refuses it) and, should one be stored
// anyway (the list narrowed since), sends nothing there.
func TestWebPushOutsideAllowListIsNeverContacted(t *testing.T) {
	var hits atomic.Int64
	stranger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(stranger.Close)
	w := newWebPush(t, false, nil)
	sub := strings.Replace(w.mock.Subscribe(w.public), w.mock.Origin(), stranger.URL, 1)

	err := CheckWebPushSubscription(sub, w.d.webpush.allowed)
	if !errors.Is(err, ErrBadSubscription) || !errors.Is(err, ErrEndpointNotAllowed) {
		t.Fatalf("CheckWebPushSubscription = %v, want ErrBadSubscription and ErrEndpointNotAllowed", err)
	}
	err = w.s.Send(t.Context(), sub, &Notification{Kind: KindRaw})
	if !errors.Is(err, ErrMisconfigured) || errors.Is(err, ErrCredentialsRejected) || errors.Is(err, ErrTokenDead) {
		t.Fatalf("Send = %v, want ErrMisconfigured only: the client is kept, nothing suspended", err)
	}
	if strings.Contains(err.Error(), "/push/") {
		t.Errorf("the error shows the endpoint's path: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the endpoint off the allow-list was contacted %d times", hits.Load())
	}
}

// TestWebPushGuardChecksEveryRequest drives the transport guard alone: the
// sender checks the list before calling webpush-go, so only a request the
// library (or a later version of it) aimed elsewhere reaches the guard.
func TestWebPushGuardChecksEveryRequest(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	g := &webpushGuard{next: http.DefaultTransport}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/push/secret", bytes.NewReader([]byte("x")))
	if _, err := g.RoundTrip(req); !errors.Is(err, ErrEndpointNotAllowed) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("RoundTrip = %v, want ErrEndpointNotAllowed without the path", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the guard let the request through")
	}
}

func TestWebPushUnconfiguredIsNotAvailable(t *testing.T) {
	d := mustNew(t, baseConfig())
	if _, err := d.Sender(TypeWebPush); !errors.Is(err, ErrProviderNotAvailable) {
		t.Fatalf("Sender(webpush) without VAPID = %v, want ErrProviderNotAvailable", err)
	}
	if d.VAPIDPublicKey() != "" {
		t.Fatal("VAPIDPublicKey without VAPID is not empty")
	}
}

func TestWebPushDispatcherPublicKey(t *testing.T) {
	w := newWebPush(t, false, nil)
	if got := w.d.VAPIDPublicKey(); got != w.public {
		t.Fatalf("VAPIDPublicKey = %q, want %q", got, w.public)
	}
}

// TestWebPushVAPIDHeaderIsSignedOncePerOrigin checks the cached VAPID
// header: pushes to one push service share one JWT until it is an hour
// from its exp, then a new one is signed, and each is accepted.
func TestWebPushVAPIDHeaderIsSignedOncePerOrigin(t *testing.T) {
	w := newWebPush(t, false, nil)
	now := time.Now()
	cache := w.d.webpush.headers
	cache.now = func() time.Time { return now }
	a, b := w.mock.Subscribe(w.public), w.mock.Subscribe(w.public)
	n := &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}}}
	send := func(sub string) {
		t.Helper()
		if err := w.s.Send(t.Context(), sub, n); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	send(a)
	send(b)
	now = now.Add(vapidJWTRenew - time.Minute)
	send(a)
	now = now.Add(2 * time.Minute) // past the renewal point
	send(b)
	reqs := w.mock.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	auth := func(i int) string { return reqs[i].Header.Get("Authorization") }
	if auth(0) != auth(1) || auth(1) != auth(2) {
		t.Errorf("pushes within the JWT's life were signed anew:\n%s\n%s\n%s", auth(0), auth(1), auth(2))
	}
	if auth(3) == auth(2) {
		t.Error("the header was reused past its renewal time")
	}
	msgs := w.mock.Received()
	if d := msgs[3].Expires.Sub(msgs[0].Expires); d < vapidJWTRenew {
		t.Errorf("the renewed JWT's exp is %v after the first's, want at least %v", d, vapidJWTRenew)
	}
}

// TestWebPushVAPIDCacheIsBounded fills the cache with more origins than
// it holds (Edge's push service has many hosts).
func TestWebPushVAPIDCacheIsBounded(t *testing.T) {
	k, err := parseVAPID(mustVAPIDKey(t), testVAPIDSubject, uploadNames)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newVAPIDCache(k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxVAPIDOrigins + 10 {
		if _, err := c.header("https://wns2-" + strconv.Itoa(i) + ".notify.windows.com"); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.headers) > maxVAPIDOrigins {
		t.Fatalf("the cache holds %d origins, the bound is %d", len(c.headers), maxVAPIDOrigins)
	}
}

func mustVAPIDKey(t *testing.T) string {
	t.Helper()
	priv, _, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestWebPushMockAgreesWithWebpushGo sends through webpush-go, the Go
// library other gateways use, to the mock push service: the mock's
// decryption and VAPID check, which judge our sender in every test here,
// accept an implementation we did not write. (node's http_ece judges our
// encryption in TestWebPushHTTPECEDecrypts.)
func TestWebPushMockAgreesWithWebpushGo(t *testing.T) {
	m := dispatchtest.StartWebPushService(t, false)
	priv, pub := mustVAPIDKey(t), ""
	k, err := parseVAPID(priv, testVAPIDSubject, uploadNames)
	if err != nil {
		t.Fatal(err)
	}
	pub = k.public
	var js webpush.Subscription
	if err := json.Unmarshal([]byte(m.Subscribe(pub)), &js); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := webpush.SendNotificationWithContext(t.Context(), []byte(`{"topic":"t","message":"from webpush-go"}`), &js, &webpush.Options{
		HTTPClient: client, Subscriber: strings.TrimPrefix(testVAPIDSubject, "mailto:"), TTL: 60,
		Urgency: webpush.UrgencyHigh, VAPIDPublicKey: pub, VAPIDPrivateKey: priv,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the mock answered webpush-go %d: %+v", resp.StatusCode, m.Requests())
	}
	got := m.Received()
	if len(got) != 1 || string(got[0].Plaintext) != `{"topic":"t","message":"from webpush-go"}` || got[0].Subject != testVAPIDSubject {
		t.Fatalf("the mock decrypted %+v", got)
	}
}

// TestWebPushTenantKeys builds a tenant's Dispatcher in a Pool: its own
// VAPID key signs its pushes (the mock binds each subscription to the key
// it was made with), over the base's allow-list, and another tenant's
// subscription made for the first tenant's key is refused with 403.
func TestWebPushTenantKeys(t *testing.T) {
	m := dispatchtest.StartWebPushService(t, false)
	origins, err := ParseWebPushOrigins(m.Origin())
	if err != nil {
		t.Fatal(err)
	}
	base := baseConfig()
	base.WebPushAllowedOrigins = origins
	p := startPool(t, base, 10, 0, nil)
	tenant := func(id string) (*Dispatcher, Sender) {
		priv := mustVAPIDKey(t)
		d := mustGet(t, p, id, 1, Config{Credentials: Credentials{VAPIDPrivateKey: priv, VAPIDSubject: "https://" + id + ".example.com"}})
		return d, mustSender(t, d, TypeWebPush)
	}
	da, sa := tenant("a")
	db, sb := tenant("b")
	if da.VAPIDPublicKey() == db.VAPIDPublicKey() || da.VAPIDPublicKey() == "" {
		t.Fatal("two tenants share a VAPID key")
	}
	subA := m.Subscribe(da.VAPIDPublicKey())
	n := &Notification{Kind: KindRaw, Data: []Field{{"topic", "t"}}}
	if err := sa.Send(t.Context(), subA, n); err != nil {
		t.Fatalf("tenant a to its own subscription: %v", err)
	}
	if got := m.Received(); len(got) != 1 || got[0].PublicKey != da.VAPIDPublicKey() || got[0].Subject != "https://a.example.com" {
		t.Fatalf("received %+v, want one signed by tenant a's key and subject", got)
	}
	if err := sb.Send(t.Context(), subA, n); !errors.Is(err, ErrTokenDead) {
		t.Fatalf("tenant b to a subscription made for a's key: %v, want ErrTokenDead (403)", err)
	}
	if none := mustGet(t, p, "c", 1, Config{}); none.Available(TypeWebPush) {
		t.Fatal("a tenant without a VAPID key has webpush")
	}
}

// TestWebPushUnreachableHidesThePath: a push service that cannot be
// reached is retried, then ErrUnavailable, and the error names its host,
// never the endpoint's path (the capability that identifies the browser).
func TestWebPushUnreachableHidesThePath(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	origin := srv.URL
	srv.Close() // nothing listens there now
	s := webpushTo(t, origin)
	err := s.Send(t.Context(), testSubscription(t, origin+"/push/secretpath", nil), &Notification{Kind: KindRaw})
	var pe *ProviderError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Attempts != 3 {
		t.Fatalf("Send = %v, want ErrUnavailable after 3 attempts", err)
	}
	if strings.Contains(err.Error(), "secretpath") || !strings.Contains(err.Error(), origin) {
		t.Fatalf("the error should name the host and hide the path: %v", err)
	}
}

// TestWebPushErrorHidesTheQuery: an endpoint whose capability is in its
// query (Windows' push service: /w/?token=…) quoted alone in a push
// service's error answer does not reach the error's text, which the
// relay's 502 description and the logs carry.
func TestWebPushErrorHidesTheQuery(t *testing.T) {
	const secret = "BQYAAAsecretcapability"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("bad request for " + r.URL.Query().Get("token")))
	}))
	t.Cleanup(srv.Close)
	err := webpushTo(t, srv.URL).Send(t.Context(), testSubscription(t, srv.URL+"/w/?token="+secret, nil), &Notification{Kind: KindRaw})
	if !errors.Is(err, ErrMisconfigured) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("Send = %v, want the push service's 400 as ErrMisconfigured", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error quotes the endpoint's query: %v", err)
	}
}

// webpushTo is a Web Push sender with a fresh VAPID key whose allow-list is
// origin alone, for tests against a server of their own.
func webpushTo(t *testing.T, origin string) Sender {
	t.Helper()
	origins, err := ParseWebPushOrigins(origin)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.VAPIDPrivateKey, cfg.VAPIDSubject, cfg.WebPushAllowedOrigins = mustVAPIDKey(t), testVAPIDSubject, origins
	return mustSender(t, mustNew(t, cfg), TypeWebPush)
}
