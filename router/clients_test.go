package router

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/verify"
)

// A token that would change the provider request it is put into is refused
// at registration, field by field, before the provider is even looked at.
func TestRegisterRefusesTokensOutsideTheProviderAlphabet(t *testing.T) {
	h := newHarness(t, options{})
	register := func(typ, token string) reply {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"client_id": "a", "type": typ, "token": token})
		return h.do("POST", "/clients", string(b), nil)
	}
	for _, typ := range []string{"apns", "apns-sandbox"} {
		for _, tok := range []string{"aa/bb", "aa?b=1", "aa#b", "aa%2Fb", "aa bb", "aa\u00a0bb", "aa\u2028bb", "aa\u0085bb", "../../x"} {
			register(typ, tok).expectError(t, 400, "", "token")
		}
		// A hex token passes the check; this server has no APNs.
		register(typ, "aaaa00000000000000000000000000000000000000000000000000000000000f").
			expectError(t, 400, "provider_not_available", "type")
	}
	for _, tok := range []string{"a/b", "a+b", "a=b", "a b", "a%3A", "a?b", "a#b", "é", "a\u00a0b", "a,b"} {
		register("fcm", tok).expectError(t, 400, "", "token")
	}
	for _, tok := range []string{"fXy0_-Ab:APA91bHrZ-09_x", "APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-hQMRKRrZuJAEcl7B338qju59zJMjw2DELjzEvxwYv7hH5Ynpc1ODQ0aT4U4OFEeco8ohsN5PjL1iC2dNtk2BAokeMCg2ZXKqpc8FXKmhX94kIxQ", "a.b"} {
		register("fcm", tok).expectError(t, 400, "provider_not_available", "type")
	}
	// noop tokens are never put into a request.
	h.register("a", "noop", "any/token?at#all%", false)
}

// A token stored before registration checked the alphabet still cannot
// change the APNs request: it travels as one escaped path segment.
func TestStoredTokenReachesAPNsEscaped(t *testing.T) {
	p := newProviderHarness(t, nil)
	const tok = "dead/beef?x=1#frag%2F ../y"
	if err := p.store.Register(t.Context(), "", cache.Client{ID: "legacy", Type: cache.TypeAPNS, Token: tok}); err != nil {
		t.Fatal(err)
	}
	p.prod.Reset()
	r := p.send("legacy", `{"id":"m1","payload":{"topic":"tp","flags":1,"blob":"ZW5j"}}`)
	reqs := p.prod.Requests()
	if len(reqs) == 0 {
		t.Fatalf("APNs mock got no request; the send answered %d %s", r.status, r.body)
	}
	for _, r := range reqs {
		if r.Token != tok || r.Path != "/3/device/"+tok {
			t.Fatalf("APNs mock got path %q, token %q; want the token %q as one segment", r.Path, r.Token, tok)
		}
	}
}

// A client that registered with a valid JWT is bound to its key: without a
// valid JWT for it, nobody who merely knows the id can take its pushes or
// remove it. Clients registered without a JWT behave as before.
func TestBoundClientKeepsItsKey(t *testing.T) {
	const aud = "https://push.example.com"
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, options{audience: aud, store: st.open})
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			did := verify.DIDKey(pub)
			now := time.Now()
			auth := map[string]string{"Authorization": clientJWT(t, priv, aud, now, now.Add(time.Hour))}
			body := func(token string) string {
				return `{"client_id":"` + did + `","type":"noop","token":"` + token + `"}`
			}

			// Unbound: anybody may re-register or remove it.
			h.do("POST", "/clients", body("t0"), nil).expectOK(t, 200)
			h.do("POST", "/clients", body("t1"), nil).expectOK(t, 200)
			h.do("DELETE", "/clients/"+did, "", nil).expectOK(t, 200)

			h.do("POST", "/clients", body("wallet"), auth).expectOK(t, 200)
			h.do("POST", "/clients", body("thief"), nil).expectError(t, 401, "authentication", "authorization")
			h.do("DELETE", "/clients/"+did, "", nil).expectError(t, 401, "authentication", "authorization")
			// A JWT of another key proves nothing for this id.
			wrong := map[string]string{"Authorization": clientJWT(t, other, aud, now, now.Add(time.Hour))}
			h.do("DELETE", "/clients/"+did, "", wrong).expectError(t, 401, "authentication", "authorization")
			if c, err := h.store.Lookup(t.Context(), "", did[len("did:key:"):]); err != nil || c.Token != "wallet" {
				t.Fatalf("after refused attempts the client is %+v, %v; want the wallet's registration", c, err)
			}
			// Knowing its token is no proof either: another id cannot take it.
			h.do("POST", "/clients", `{"client_id":"squatter","type":"noop","token":"wallet"}`, nil).
				expectError(t, 401, "authentication", "authorization")
			if c, err := h.store.Lookup(t.Context(), "", did[len("did:key:"):]); err != nil || c.Token != "wallet" {
				t.Fatalf("after a squatter's registration with its token the client is %+v, %v; want the wallet's registration", c, err)
			}
			// The key's holder re-registers and unregisters as before.
			h.do("POST", "/clients", body("wallet-2"), auth).expectOK(t, 200)
			h.do("POST", "/clients", body("thief"), nil).expectError(t, 401, "authentication", "authorization")
			h.do("DELETE", "/clients/"+did, "", auth).expectOK(t, 200)
			// Once removed, the id starts over unbound.
			h.do("POST", "/clients", body("t2"), nil).expectOK(t, 200)
			h.do("DELETE", "/clients/"+did, "", nil).expectOK(t, 200)
		})
	}
}

// With CLIENT_TTL, a client nobody sends to or re-registers is gone after
// the TTL, and every send keeps the client it reaches alive.
func TestClientTTLExpiresIdleClientsAndSendsRefresh(t *testing.T) {
	const ttl = 800 * time.Millisecond
	open := map[string]func(t *testing.T) cache.Store{
		"embedded": func(t *testing.T) cache.Store {
			s, err := cache.OpenEmbeddedWith(t.TempDir(), cache.EmbeddedConfig{ClientTTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"redis": func(t *testing.T) cache.Store {
			addr := cachetest.StartRedis(t)
			s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, ClientTTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{store: open})
			start := time.Now()
			at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
			h.register("busy", "noop", "tok-busy", false)
			h.register("idle", "noop", "tok-idle", false)
			msg := 0
			send := func(id string) reply {
				msg++
				return h.send(id, fmt.Sprintf(`{"topic":"t","tag":4000,"message":"m%d"}`, msg))
			}
			at(ttl / 2)
			send("busy").expectOK(t, 202)
			at(ttl + ttl/5)
			send("busy").expectOK(t, 202)
			send("idle").expectError(t, 404, "client_not_found")
			at(ttl + ttl/5 + ttl + ttl/10)
			send("busy").expectError(t, 404, "client_not_found")
		})
	}
}
