package router

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
)

// webpushSetup is a gateway with Web Push configured against a mock push
// service (plain HTTP on loopback, allowed through WEBPUSH_ALLOWED_ORIGINS
// as an operator would for a mock).
type webpushSetup struct {
	*harness
	svc      *dispatchtest.WebPushService
	pub      string // the operator's VAPID public key
	subject  string
	retryMu  sync.Mutex
	retryGot []time.Duration // the Retry-After each retry was given
}

func newWebPushSetup(t *testing.T, open func(t *testing.T) cache.Store) *webpushSetup {
	t.Helper()
	svc := dispatchtest.StartWebPushService(t, false)
	priv, pub := newVAPID(t)
	w := &webpushSetup{svc: svc, pub: pub, subject: "mailto:ops@example.com"}
	w.harness = webpushOperator(t, open, priv, svc.Origin(), dispatch.Config{MaxAttempts: 3, RetryDelay: w.retryDelay})
	return w
}

// retryDelay records the provider's Retry-After and waits nothing.
func (w *webpushSetup) retryDelay(_ int, retryAfter time.Duration) time.Duration {
	w.retryMu.Lock()
	defer w.retryMu.Unlock()
	w.retryGot = append(w.retryGot, retryAfter)
	return 0
}

func (w *webpushSetup) retries() []time.Duration {
	w.retryMu.Lock()
	defer w.retryMu.Unlock()
	return append([]time.Duration(nil), w.retryGot...)
}

// plaintext decodes a received push: a flat JSON object of strings, as
// the contract says (the FCM data message's members).
func plaintext(t *testing.T, m dispatchtest.WebPushMessage) map[string]string {
	t.Helper()
	var v map[string]string
	if err := json.Unmarshal(m.Plaintext, &v); err != nil {
		t.Fatalf("the decrypted push %q is not a JSON object of strings: %v", m.Plaintext, err)
	}
	return v
}

// checkVAPID holds a received push to RFC 8292 as the contract words it:
// signed by key (the mock verified the ES256 signature under k), aud the
// push service's origin, exp at most 24 h ahead, sub the subject.
func checkVAPID(t *testing.T, m dispatchtest.WebPushMessage, origin, key, subject string) {
	t.Helper()
	if m.PublicKey != key || m.Audience != origin || m.Subject != subject ||
		!m.Expires.After(time.Now()) || m.Expires.After(time.Now().Add(24*time.Hour+time.Minute)) {
		t.Fatalf("VAPID: k %s aud %s sub %s exp %s; want k %s, aud %s, sub %s, exp within 24 h",
			m.PublicKey, m.Audience, m.Subject, m.Expires, key, origin, subject)
	}
}

// TestWebPushDeliversTheContractsPayload: a relay-signed send to a webpush
// client arrives at the push service, with a valid VAPID JWT, and
// decrypts (as the browser would) to the object API.md names for each
// kind of message.
func TestWebPushDeliversTheContractsPayload(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			w := newWebPushSetup(t, st.open)
			raw, wallet := w.svc.Subscribe(w.pub), w.svc.Subscribe(w.pub)
			w.register("did:key:z6MkRaw", "webpush", raw, true)
			w.register("did:key:z6MkWallet", "webpush", wallet, false)

			blob := base64.StdEncoding.EncodeToString([]byte(`{"title":"Hello","body":"From the dapp","url":"https://dapp.example/x"}`))
			for _, tc := range []struct {
				name, id, body string
				want           map[string]string
				urgency        string
			}{
				{"always_raw", "z6MkRaw", `{"topic":"t-raw","tag":4000,"message":"m-raw"}`,
					map[string]string{"topic": "t-raw", "tag": "4000", "message": "m-raw"}, "normal"},
				{"encrypted", "z6MkWallet", `{"topic":"t-enc","tag":1110,"message":"ciphertext-enc"}`,
					map[string]string{"topic": "t-enc", "blob": "ciphertext-enc"}, "normal"},
				{"legacy encrypted", "z6MkWallet", `{"id":"leg-1","payload":{"topic":"t-leg","flags":1,"blob":"ciphertext-leg"}}`,
					map[string]string{"topic": "t-leg", "blob": "ciphertext-leg"}, "normal"},
				{"cleartext 1100", "z6MkWallet", `{"topic":"t-1100","tag":1100,"message":"c-1100"}`,
					map[string]string{"topic": "t-1100", "blob": "c-1100", "tag": "1100", "title": "Signature required", "body": "You have a message to sign"}, "high"},
				{"cleartext 1108", "z6MkWallet", `{"topic":"t-1108","tag":1108,"message":"c-1108"}`,
					map[string]string{"topic": "t-1108", "blob": "c-1108", "tag": "1108", "title": "Signature required", "body": "You have a message to sign"}, "high"},
				{"cleartext blob", "z6MkWallet", `{"id":"blob-1","payload":{"topic":"t-blob","flags":0,"blob":"` + blob + `"}}`,
					map[string]string{"topic": "t-blob", "title": "Hello", "body": "From the dapp", "url": "https://dapp.example/x"}, "normal"},
			} {
				before := len(w.svc.Received())
				w.send(tc.id, tc.body).expectOK(t, 202)
				got := w.svc.Received()
				if len(got) != before+1 {
					t.Fatalf("%s: %d pushes arrived; want 1", tc.name, len(got)-before)
				}
				m := got[len(got)-1]
				if p := plaintext(t, m); !maps.Equal(p, tc.want) {
					t.Errorf("%s: the browser decrypts %s; want %v", tc.name, m.Plaintext, tc.want)
				}
				checkVAPID(t, m, w.svc.Origin(), w.pub, w.subject)
				if m.TTL != 86400 || m.Urgency != tc.urgency {
					t.Errorf("%s: TTL %d, Urgency %q; want 86400, %q", tc.name, m.TTL, m.Urgency, tc.urgency)
				}
				// The same message again is not pushed again.
				w.send(tc.id, tc.body).expectOK(t, 200)
				if n := len(w.svc.Received()); n != before+1 {
					t.Fatalf("%s: a repeated send was pushed again (%d pushes)", tc.name, n-before)
				}
			}

			// A notification over the 4096-byte record is refused before
			// anything is sent.
			count := w.svc.Count()
			w.send("z6MkRaw", `{"topic":"t","tag":4000,"message":"`+strings.Repeat("x", 4000)+`"}`).expectError(t, 413, "payload_too_large")
			if w.svc.Count() != count {
				t.Fatal("an oversize push reached the push service")
			}
		})
	}
}

// TestWebPushDeadSubscriptionsAreRemoved: a subscription the push service
// says is gone (404, 410) or bound to another key (403) removes the client:
// 410 client_deleted, then 404 client_not_found.
func TestWebPushDeadSubscriptionsAreRemoved(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			w := newWebPushSetup(t, st.open)
			otherPriv, otherPub := newVAPID(t)
			_ = otherPriv
			for _, tc := range []struct {
				name  string
				sub   func() string
				fixed string
			}{
				{"404", func() string {
					s := w.svc.Subscribe(w.pub)
					w.svc.Script(s, dispatchtest.Answer{Status: 404})
					return s
				}, ""},
				{"410", func() string {
					s := w.svc.Subscribe(w.pub)
					w.svc.Unsubscribe(s)
					return s
				}, ""},
				// Made for another application server: the mock answers
				// 403 itself, as RFC 8292 has it.
				{"403", func() string { return w.svc.Subscribe(otherPub) }, ""},
			} {
				id := "dead-" + tc.name
				w.register(id, "webpush", tc.sub(), false)
				body := `{"topic":"t","tag":1,"message":"m-` + tc.name + `"}`
				w.send(id, body).expectError(t, 410, "client_deleted")
				w.send(id, body).expectError(t, 404, "client_not_found")
				if _, err := w.store.Lookup(t.Context(), "", id); err == nil {
					t.Fatalf("%s: the client is still stored", tc.name)
				}
			}
			if n := len(w.svc.Received()); n != 0 {
				t.Fatalf("%d pushes were accepted; want none", n)
			}
		})
	}
}

// TestWebPushRetriesThenDeliversOnce: 429 with Retry-After, then 201: one
// push delivered, the Retry-After handed to the retry policy; 5xx to the
// end is 502 provider_unavailable and not remembered, so the relay's retry
// is delivered.
func TestWebPushRetriesThenDeliversOnce(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			w := newWebPushSetup(t, st.open)
			sub := w.svc.Subscribe(w.pub)
			w.register("busy", "webpush", sub, false)
			w.svc.Script(sub, dispatchtest.Answer{Status: 429, RetryAfter: "7"}, dispatchtest.Answer{Status: 201})
			w.send("busy", `{"topic":"t","tag":1,"message":"m1"}`).expectOK(t, 202)
			if got := w.svc.Received(); len(got) != 1 || plaintext(t, got[0])["blob"] != "m1" {
				t.Fatalf("pushes delivered: %d; want exactly one", len(got))
			}
			if r := w.retries(); len(r) != 1 || r[0] != 7*time.Second {
				t.Fatalf("retries were given Retry-After %v; want one, of 7s", r)
			}

			w.svc.Script(sub, dispatchtest.Answer{Status: 503})
			w.send("busy", `{"topic":"t","tag":1,"message":"m2"}`).expectError(t, 502, "provider_unavailable")
			if n := w.svc.Count(); n != 2+3 {
				t.Fatalf("the push service saw %d requests; want 2 + 3 (PROVIDER_MAX_ATTEMPTS)", n)
			}
			w.svc.Script(sub)
			w.send("busy", `{"topic":"t","tag":1,"message":"m2"}`).expectOK(t, 202)
			if got := w.svc.Received(); len(got) != 2 {
				t.Fatalf("after the relay's retry %d pushes were delivered; want 2", len(got))
			}
		})
	}
}

// TestWebPushGoesOnlyWhereAllowed: an endpoint outside the allow-list is
// refused at registration and never contacted, even when it is stored by
// other means (a list narrowed since); a redirect is never followed.
func TestWebPushGoesOnlyWhereAllowed(t *testing.T) {
	w := newWebPushSetup(t, embeddedStore)
	elsewhere, hits := hitCounter(t)
	sub := subscriptionJSON(elsewhere+"/push/x", mustPoint(t), make([]byte, 16))
	w.do("POST", "/clients", registration("stray", "webpush", sub), nil).expectError(t, 400, "", "token")

	// Stored without the check (registered while the list allowed it).
	if err := w.store.Register(t.Context(), "", cache.Client{ID: "stray", Type: cache.TypeWebPush, Token: sub}); err != nil {
		t.Fatal(err)
	}
	w.send("stray", `{"topic":"t","tag":1,"message":"m"}`).expectError(t, 502, "provider_misconfigured")
	if n := hits.Load(); n != 0 {
		t.Fatalf("the endpoint off the list got %d requests; want 0", n)
	}
	if _, err := w.store.Lookup(t.Context(), "", "stray"); err != nil {
		t.Fatalf("the client was removed (%v): the list is the operator's choice, not the subscription's death", err)
	}

	redirected := w.svc.Subscribe(w.pub)
	w.register("moved", "webpush", redirected, false)
	w.svc.Script(redirected, dispatchtest.Answer{Status: 307})
	w.send("moved", `{"topic":"t","tag":1,"message":"m"}`).expectError(t, 502, "provider_unavailable")
	if n := w.svc.Redirected(); n != 0 {
		t.Fatalf("the redirect target got %d requests; want 0 (redirects are not followed)", n)
	}
}

func mustPoint(t *testing.T) []byte {
	t.Helper()
	var js struct {
		Keys struct{ P256dh string } `json:"keys"`
	}
	json.Unmarshal([]byte(newSubscription(t, "https://fcm.googleapis.com/x")), &js)
	b, err := base64.RawURLEncoding.DecodeString(js.Keys.P256dh)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webpushTenants is a multi-tenant gateway whose tenants may use the mock
// push service.
func webpushTenants(t *testing.T, open func(t *testing.T) cache.Store, svc *dispatchtest.WebPushService) *tenantHarness {
	t.Helper()
	allowed, err := dispatch.ParseWebPushOrigins(svc.Origin())
	if err != nil {
		t.Fatal(err)
	}
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	tokenURIs, err := dispatch.NewTokenURIs(fcm.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	return newTenantHarnessBase(t, open, apns, apns, fcm, tokenURIs,
		func(c *dispatch.Config) { c.WebPushAllowedOrigins = allowed },
		func(c *Config) { c.WebPushAllowedOrigins, c.ServeMetrics = allowed, true })
}

func (h *tenantHarness) setWebPush(tenant, priv, subject string) {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"vapid_private_key": priv, "vapid_subject": subject})
	if r := h.do("POST", "/tenants/"+tenant+"/webpush", string(b), bearer(tenant, time.Hour)); r.status != 200 {
		h.t.Fatalf("upload Web Push for %s: %d %s", tenant, r.status, r.body)
	}
}

func (h *tenantHarness) sendBodyIn(tenant, id, body string) reply {
	h.t.Helper()
	return h.do("POST", "/"+tenant+"/clients/"+id, body, h.signed(body, time.Now().Unix()))
}

// TestWebPushTenantsUseTheirOwnKeys: each tenant's pushes carry its own
// VAPID key and subject, which the push service checks against the key
// the subscription was made with.
func TestWebPushTenantsUseTheirOwnKeys(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			svc := dispatchtest.StartWebPushService(t, false)
			h := webpushTenants(t, st.open, svc)
			keys := map[string]string{}
			for _, tn := range []string{"alpha", "beta"} {
				h.createTenant(tn)
				priv, pub := newVAPID(t)
				h.setWebPush(tn, priv, "https://"+tn+".example.com/contact")
				keys[tn] = pub
				r := h.do("GET", "/"+tn+"/webpush/vapid-public-key", "", nil)
				if string(r.body) != `{"vapid_public_key":"`+pub+`"}` {
					t.Fatalf("%s's key route: %s", tn, r.body)
				}
				h.registerIn(tn, "did:key:z6MkSame", "webpush", svc.Subscribe(pub))
			}
			for _, tn := range []string{"alpha", "beta"} {
				h.sendBodyIn(tn, "z6MkSame", `{"topic":"t","tag":1108,"message":"`+tn+`"}`).expectOK(t, 202)
			}
			got := svc.Received()
			if len(got) != 2 {
				t.Fatalf("%d pushes arrived; want 2", len(got))
			}
			for i, tn := range []string{"alpha", "beta"} {
				checkVAPID(t, got[i], svc.Origin(), keys[tn], "https://"+tn+".example.com/contact")
				if p := plaintext(t, got[i]); p["blob"] != tn || p["title"] != "Signature required" {
					t.Fatalf("%s's push decrypts to %v", tn, p)
				}
			}
			// A subscription made with alpha's key, registered in beta: the
			// push service refuses beta's key for it (403), one
			// subscription's end.
			h.registerIn("beta", "crossed", "webpush", svc.Subscribe(keys["alpha"]))
			h.sendBodyIn("beta", "crossed", `{"topic":"t","tag":1,"message":"x"}`).expectError(t, 410, "client_deleted")
			h.sendBodyIn("beta", "crossed", `{"topic":"t","tag":1,"message":"x"}`).expectError(t, 404, "client_not_found")
		})
	}
}

// TestWebPushSuspensionPerTenant: a push service refusing a tenant's VAPID
// authorisation (401) suspends that tenant's webpush and nothing else;
// a 400 (one subscription can cause it) suspends nothing; a new key lifts
// the suspension.
func TestWebPushSuspensionPerTenant(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			svc := dispatchtest.StartWebPushService(t, false)
			h := webpushTenants(t, st.open, svc)
			h.createTenant("susp")
			priv, pub := newVAPID(t)
			h.setWebPush("susp", priv, "mailto:ops@susp.example")
			if r := h.upload("susp", "/fcm_v1", map[string]string{"credentials": "@" + string(h.fcm.ServiceAccountJSON("p-susp"))}); r.status != 200 {
				t.Fatalf("FCM upload: %d %s", r.status, r.body)
			}
			before := scrape(t, h.harness)
			odd, sub := svc.Subscribe(pub), svc.Subscribe(pub)
			h.registerIn("susp", "odd", "webpush", odd)
			h.registerIn("susp", "web", "webpush", sub)
			h.registerIn("susp", "droid", "fcm", "fcm-susp")
			tenantView := func() map[string]any {
				var v map[string]any
				json.Unmarshal(h.do("GET", "/tenants/susp", "", bearer("susp", time.Hour)).body, &v)
				return v
			}

			svc.Script(odd, dispatchtest.Answer{Status: 400})
			h.sendBodyIn("susp", "odd", `{"topic":"t","tag":1,"message":"m0"}`).expectError(t, 502, "provider_misconfigured")
			if v := tenantView(); v["suspended"] != false {
				t.Fatalf("a 400 for one subscription suspended the tenant: %v", v)
			}
			h.sendBodyIn("susp", "web", `{"topic":"t","tag":1,"message":"m0"}`).expectOK(t, 202)

			svc.Script(sub, dispatchtest.Answer{Status: 401})
			h.sendBodyIn("susp", "web", `{"topic":"t","tag":1,"message":"m1"}`).expectError(t, 502, "provider_misconfigured")
			v := tenantView()
			if s, _ := v["suspensions"].(map[string]any); v["suspended"] != true || s == nil || s["webpush"] == nil || len(s) != 1 ||
				!strings.Contains(fmt.Sprint(v["suspended_reason"]), "webpush") {
				t.Fatalf("after a 401 want webpush alone suspended: %v", v)
			}
			count := svc.Count()
			h.sendBodyIn("susp", "web", `{"topic":"t","tag":1,"message":"m2"}`).expectError(t, 502, "provider_misconfigured")
			if svc.Count() != count {
				t.Fatal("a suspended tenant's push still reached the push service")
			}
			h.sendBodyIn("susp", "droid", `{"topic":"t","tag":1,"message":"m2"}`).expectOK(t, 202) // FCM is not affected

			// A new key lifts it; the wallet subscribes again with it.
			svc.Script(sub)
			priv2, pub2 := newVAPID(t)
			h.setWebPush("susp", priv2, "mailto:ops@susp.example")
			h.registerIn("susp", "web", "webpush", svc.Subscribe(pub2))
			h.sendBodyIn("susp", "web", `{"topic":"t","tag":1,"message":"m3"}`).expectOK(t, 202)
			if v := tenantView(); v["suspended"] != false {
				t.Fatalf("new credentials did not lift the suspension: %v", v)
			}
			// The operator's alert and the per-provider outcomes count
			// webpush under its own label.
			after := scrape(t, h.harness)
			for series, want := range map[string]float64{
				`push_provider_credentials_rejected_total{provider="webpush"}`:          1,
				`push_sends_total{provider="webpush",outcome="delivered"}`:              2,
				`push_sends_total{provider="webpush",outcome="provider_misconfigured"}`: 2,
			} {
				if got := after[series] - before[series]; got != want {
					t.Errorf("%s moved by %v; want %v", series, got, want)
				}
			}
		})
	}
}
