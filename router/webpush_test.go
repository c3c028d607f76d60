package router

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/dispatch"
)

// newVAPID returns a fresh VAPID key pair (base64url scalar, public key).
func newVAPID(t *testing.T) (priv, pub string) {
	t.Helper()
	priv, pub, err := dispatch.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// subscriptionJSON is a browser's PushSubscription.toJSON() for endpoint
// with the given keys, as a web wallet registers it.
func subscriptionJSON(endpoint string, p256dh, auth []byte) string {
	b, _ := json.Marshal(map[string]any{
		"endpoint":       endpoint,
		"expirationTime": nil,
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(p256dh),
			"auth":   base64.RawURLEncoding.EncodeToString(auth),
		},
	})
	return string(b)
}

// newSubscription is a valid subscription to endpoint with fresh keys.
func newSubscription(t *testing.T, endpoint string) string {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return subscriptionJSON(endpoint, k.PublicKey().Bytes(), auth)
}

func registration(id, typ, token string) string {
	b, _ := json.Marshal(map[string]any{"client_id": id, "type": typ, "token": token})
	return string(b)
}

// webpushOperator is a single-tenant harness with Web Push configured from
// the environment's settings (VAPID_PRIVATE_KEY, VAPID_SUBJECT,
// WEBPUSH_ALLOWED_ORIGINS).
func webpushOperator(t *testing.T, open func(t *testing.T) cache.Store, priv string, origins string, base dispatch.Config) *harness {
	t.Helper()
	allowed, err := dispatch.ParseWebPushOrigins(origins)
	if err != nil {
		t.Fatal(err)
	}
	base.VAPIDPrivateKey, base.VAPIDSubject, base.WebPushAllowedOrigins = priv, "mailto:ops@example.com", allowed
	return newHarness(t, options{store: open, dispatch: base, configure: func(c *Config) { c.WebPushAllowedOrigins = allowed }})
}

// TestWebPushRegistration: a webpush subscription registers like any
// token when Web Push is configured, and every way it can be unusable is
// 400 naming the token, before anything is stored.
func TestWebPushRegistration(t *testing.T) {
	// Not configured: the key route and the type both say so.
	plain := newHarness(t, options{})
	plain.do("GET", "/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
	plain.do("POST", "/clients", registration("w", "webpush", newSubscription(t, "https://fcm.googleapis.com/fcm/send/abc")), nil).
		expectError(t, 400, "provider_not_available", "type")
	r := plain.do("POST", "/clients", registration("w", "carrier-pigeon", "t"), nil)
	r.expectError(t, 400, "", "type")
	if !strings.Contains(r.env.Fields[0].Description, "webpush") {
		t.Errorf("an unknown type's field does not list webpush: %s", r.body)
	}

	priv, pub := newVAPID(t)
	h := webpushOperator(t, embeddedStore, priv, "https://push.example.com, http://127.0.0.1:9000", dispatch.Config{})
	r = h.do("GET", "/webpush/vapid-public-key", "", nil)
	if r.status != 200 || string(r.body) != `{"vapid_public_key":"`+pub+`"}` || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /webpush/vapid-public-key = %d %s (%s); want 200 with %s", r.status, r.body, r.header.Get("Content-Type"), pub)
	}

	for _, endpoint := range []string{
		"https://fcm.googleapis.com/fcm/send/abc:def",
		"https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
		"https://web.push.apple.com/QGuQyavXutnMH",
		"https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
		"https://push.example.com/sub/1",
		"http://127.0.0.1:9000/sub/1",
	} {
		h.do("POST", "/clients", registration("w-"+endpoint[8:14], "WebPush", newSubscription(t, endpoint)), nil).expectOK(t, 200)
	}
	c, err := h.store.Lookup(t.Context(), "", "w-fcm.go")
	if err != nil || c.Type != cache.TypeWebPush || !strings.Contains(c.Token, `"endpoint":"https://fcm.googleapis.com/fcm/send/abc:def"`) {
		t.Fatalf("stored webpush client = %+v, %v; want type webpush and the subscription as its token", c, err)
	}

	k, _ := ecdh.P256().GenerateKey(rand.Reader)
	point, auth := k.PublicKey().Bytes(), make([]byte, 16)
	offCurve := append([]byte{4}, make([]byte, 64)...)
	for name, token := range map[string]string{
		"not JSON":              "BPk3…",
		"no endpoint":           `{"keys":{"p256dh":"` + base64.RawURLEncoding.EncodeToString(point) + `","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}`,
		"endpoint off the list": subscriptionJSON("https://push.example.org/sub/1", point, auth),
		"http endpoint":         subscriptionJSON("http://fcm.googleapis.com/fcm/send/abc", point, auth),
		"http not loopback":     subscriptionJSON("http://push.example.com/sub/1", point, auth),
		"loopback other port":   subscriptionJSON("http://127.0.0.1:9001/sub/1", point, auth),
		"look-alike host":       subscriptionJSON("https://fcm.googleapis.com.evil.example/x", point, auth),
		"user info":             subscriptionJSON("https://fcm.googleapis.com@evil.example/x", point, auth),
		"p256dh compressed":     subscriptionJSON("https://fcm.googleapis.com/fcm/send/x", point[:33], auth),
		"p256dh off the curve":  subscriptionJSON("https://fcm.googleapis.com/fcm/send/x", offCurve, auth),
		"auth 15 bytes":         subscriptionJSON("https://fcm.googleapis.com/fcm/send/x", point, auth[:15]),
		"auth 17 bytes":         subscriptionJSON("https://fcm.googleapis.com/fcm/send/x", point, append(auth, 0)),
	} {
		r := h.do("POST", "/clients", registration("bad", "webpush", token), nil)
		if r.status != 400 || len(r.env.Fields) != 1 || r.env.Fields[0].Field != "token" || len(r.env.Errors) != 0 {
			t.Errorf("%s: register = %d %s; want 400 with field token alone", name, r.status, r.body)
		}
	}
	if _, err := h.store.Lookup(t.Context(), "", "bad"); err == nil {
		t.Fatal("a refused subscription was stored")
	}
	// The description never quotes the subscription's path (a capability)
	// nor its keys.
	secretPath := "/wpush/v2/capability-secret"
	r = h.do("POST", "/clients", registration("bad", "webpush", subscriptionJSON("https://push.example.org"+secretPath, point, auth)), nil)
	if bytes.Contains(r.body, []byte(secretPath)) || bytes.Contains(r.body, []byte(base64.RawURLEncoding.EncodeToString(point))) {
		t.Errorf("the refusal quotes the endpoint's path or the keys: %s", r.body)
	}
	if d := r.env.Fields[0].Description; d != "not a usable PushSubscription: endpoint https://push.example.org: endpoint is not an allowed push service" {
		t.Errorf("the refusal of an endpoint off the list reads %q", d)
	}
}

// TestWebPushTenantCredentials: a tenant's VAPID key is uploaded (JSON or
// multipart), checked, sealed, never returned; its public key is served to
// wallets; DELETE takes it away again.
func TestWebPushTenantCredentials(t *testing.T) {
	for _, st := range rawStores() {
		t.Run(st.name, func(t *testing.T) {
			h := newTenantHarness(t, st.open)
			h.createTenant("web")
			hdr := bearer("web", time.Hour)
			h.do("GET", "/web/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
			h.do("GET", "/nobody/webpush/vapid-public-key", "", nil).expectError(t, 404, "tenant_not_found", "tenant_id")
			sub := newSubscription(t, "https://fcm.googleapis.com/fcm/send/abc")
			h.do("POST", "/web/clients", registration("w", "webpush", sub), nil).expectError(t, 400, "provider_not_available", "type")

			priv, pub := newVAPID(t)
			jsonBody := func(key, subject string) string {
				b, _ := json.Marshal(map[string]string{"vapid_private_key": key, "vapid_subject": subject})
				return string(b)
			}
			// Authentication first.
			h.do("POST", "/tenants/web/webpush", jsonBody(priv, "mailto:a@example.com"), bearer("other", time.Hour)).
				expectError(t, 401, "authentication", "authorization")
			// Bad credentials name the part; nothing is stored.
			h.do("POST", "/tenants/web/webpush", jsonBody("not-a-key", "mailto:a@example.com"), hdr).
				expectError(t, 400, "bad_webpush_credentials", "vapid_private_key")
			h.do("POST", "/tenants/web/webpush", jsonBody(priv, "a@example.com"), hdr).
				expectError(t, 400, "bad_webpush_credentials", "vapid_subject")
			h.do("POST", "/tenants/web/webpush", `{"vapid_subject":"mailto:a@example.com"}`, hdr).
				expectError(t, 400, "bad_webpush_credentials", "vapid_private_key")
			h.do("POST", "/tenants/web/webpush", `{"vapid_private_key":1,"vapid_subject":"mailto:a@example.com"}`, hdr).
				expectError(t, 400, "", "vapid_private_key")
			h.do("POST", "/tenants/web/webpush", `not json`, hdr).expectError(t, 400, "", "body")
			h.upload("web", "/webpush", map[string]string{"vapid_subject": "mailto:a@example.com"}).
				expectError(t, 400, "bad_webpush_credentials", "vapid_private_key")
			h.do("GET", "/web/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")

			r := h.do("POST", "/tenants/web/webpush", jsonBody(priv, "mailto:a@example.com"), hdr)
			if r.status != 200 || string(r.body) != `{"success":true}` {
				t.Fatalf("JSON upload: %d %s", r.status, r.body)
			}
			r = h.do("GET", "/web/webpush/vapid-public-key", "", nil)
			if r.status != 200 || string(r.body) != `{"vapid_public_key":"`+pub+`"}` {
				t.Fatalf("tenant key route = %d %s; want %s", r.status, r.body, pub)
			}
			// The operator's route is the operator's: not configured here.
			h.do("GET", "/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
			var v map[string]any
			r = h.do("GET", "/tenants/web", "", hdr)
			json.Unmarshal(r.body, &v)
			if fmt.Sprint(v["enabled_providers"]) != "[webpush noop]" || bytes.Contains(r.body, []byte(priv)) {
				t.Fatalf("GET tenant with Web Push: %s", r.body)
			}
			if raw := st.raw(t); bytes.Contains(raw, []byte(priv)) {
				t.Fatal("the VAPID private key is stored in clear")
			}
			h.do("POST", "/web/clients", registration("w", "webpush", sub), nil).expectOK(t, 200)

			// Multipart works too, and replaces the key.
			priv2, pub2 := newVAPID(t)
			if r := h.upload("web", "/webpush", map[string]string{"vapid_private_key": "@" + priv2, "vapid_subject": "https://wallet.example.com"}); r.status != 200 {
				t.Fatalf("multipart upload: %d %s", r.status, r.body)
			}
			if r := h.do("GET", "/web/webpush/vapid-public-key", "", nil); !bytes.Contains(r.body, []byte(pub2)) {
				t.Fatalf("after a new key the route serves %s; want %s", r.body, pub2)
			}

			if r := h.do("DELETE", "/tenants/web/webpush", "", hdr); r.status != 204 {
				t.Fatalf("DELETE webpush: %d %s", r.status, r.body)
			}
			h.do("GET", "/web/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
			r = h.do("GET", "/tenants/web", "", hdr)
			json.Unmarshal(r.body, &v)
			if fmt.Sprint(v["enabled_providers"]) != "[noop]" {
				t.Fatalf("after DELETE webpush: %s", r.body)
			}
			h.do("POST", "/web/clients", registration("w2", "webpush", sub), nil).expectError(t, 400, "provider_not_available", "type")
		})
	}
}

// A tenant may be called "webpush": the operator's key route beside the
// tenant routes must not shadow its client routes.
func TestTenantNamedWebPush(t *testing.T) {
	h := newTenantHarness(t, embeddedStore)
	h.createTenant("webpush")
	h.registerIn("webpush", "c", "noop", "t")
	b := `{"topic":"t","tag":1,"message":"m"}`
	h.do("POST", "/webpush/clients/c", b, h.signed(b, time.Now().Unix())).expectOK(t, 202)
	h.do("GET", "/webpush/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
	h.do("GET", "/webpush/vapid-public-key", "", nil).expectError(t, 404, "provider_not_available")
}
