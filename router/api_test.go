package router

import (
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
)

func TestHealthIsCheapText(t *testing.T) {
	h := newHarness(t, options{})
	r := h.do("GET", "/health", "", nil)
	if r.status != 200 || string(r.body) != "OK, push-server v0.1.0" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /health = %d %q (%s)", r.status, r.body, r.header.Get("Content-Type"))
	}
	h.do("GET", "/health/ready", "", nil).expectOK(t, 200)
}

func TestEveryRouteErrorIsAnEnvelope(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.MaxBodySize = 1024 }})
	h.do("GET", "/nope", "", nil).expectError(t, 404, "not_found")
	h.do("GET", "/clients/", "", nil).expectError(t, 404, "not_found")    // no redirect to /clients
	h.do("POST", "/clients/", "{}", nil).expectError(t, 404, "not_found") // no 308
	h.do("PUT", "/clients", "{}", nil).expectError(t, 405, "method_not_allowed")
	h.do("GET", "/clients/abc", "", nil).expectError(t, 405, "method_not_allowed")
	h.do("POST", "/health", "", nil).expectError(t, 405, "method_not_allowed")
	big := `{"client_id":"a","type":"noop","token":"` + strings.Repeat("x", 2048) + `"}`
	h.do("POST", "/clients", big, nil).expectError(t, 413, "request_too_large", "body")
}

func TestRegisterRejectsBadBodiesFieldByField(t *testing.T) {
	h := newHarness(t, options{})
	f := func(body string, fields ...string) {
		t.Helper()
		h.do("POST", "/clients", body, nil).expectError(t, 400, "", fields...)
	}
	f(``, "body")
	f(`not json`, "body")
	f(`[1,2]`, "body")
	f(`{"client_id":"a",`, "body")
	f(`{}`, "client_id", "type", "token")
	f(`{"client_id":null,"type":null,"token":null}`, "client_id", "type", "token")
	f(`{"client_id":1,"type":true,"token":[],"always_raw":"yes"}`, "client_id", "type", "token", "always_raw")
	f(`{"client_id":"a","type":"noop","token":""}`, "token")
	f(`{"client_id":"a","type":"noop","token":"`+strings.Repeat("t", 4097)+`"}`, "token")
	f(`{"client_id":"`+strings.Repeat("i", 256)+`","type":"noop","token":"t"}`, "client_id")
	f(`{"client_id":"did:key:","type":"noop","token":"t"}`, "client_id")
	f(`{"client_id":"a\u0000b","type":"noop","token":"t"}`, "client_id")
	f(`{"client_id":"a","type":"noop","token":"t\nx"}`, "token")
	f(`{"client_id":"a","type":"carrier-pigeon","token":"t"}`, "type")

	// 255 bytes after the did:key: prefix is the most that is accepted.
	h.register("did:key:"+strings.Repeat("i", 255), "NOOP", "t", false)

	// A known type whose provider is not configured here.
	for _, typ := range []string{"apns", "apns-sandbox", "fcm"} {
		h.do("POST", "/clients", `{"client_id":"a","type":"`+typ+`","token":"t"}`, nil).
			expectError(t, 400, "provider_not_available", "type")
	}
}

func TestRegisterSendUnregister(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, options{store: st.open})
			noop := h.providers.Noop()
			h.register("did:key:z6MkClient", "noop", "tok-1", false)

			body := `{"topic":"t1","tag":4000,"message":"ciphertext"}`
			// The id names the same client with or without did:key:.
			h.send("z6MkClient", body).expectOK(t, 202)
			if noop.Sent() != 1 {
				t.Fatalf("noop sent %d; want 1", noop.Sent())
			}
			// Same message again: remembered, not sent again.
			h.send("did:key:z6MkClient", body).expectOK(t, 200)
			if noop.Sent() != 1 {
				t.Fatalf("duplicate was sent again: %d", noop.Sent())
			}
			// Another message is delivered.
			h.send("z6MkClient", `{"topic":"t1","tag":4000,"message":"other"}`).expectOK(t, 202)
			// Legacy id drives deduplication when present.
			legacy := `{"id":"m-1","payload":{"topic":"t1","flags":1,"blob":"b1"}}`
			h.send("z6MkClient", legacy).expectOK(t, 202)
			h.send("z6MkClient", `{"id":"m-1","payload":{"topic":"t1","flags":1,"blob":"b2"}}`).expectOK(t, 200)
			if noop.Sent() != 3 {
				t.Fatalf("noop sent %d; want 3", noop.Sent())
			}

			h.send("unknown-client", body).expectError(t, 404, "client_not_found")

			h.do("DELETE", "/clients/did:key:z6MkClient", "", nil).expectOK(t, 200)
			h.do("DELETE", "/clients/z6MkClient", "", nil).expectOK(t, 200) // idempotent
			h.send("z6MkClient", `{"topic":"t1","tag":4000,"message":"after"}`).expectError(t, 404, "client_not_found")
		})
	}
}

func TestTokenMovesToTheNewClient(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, options{store: st.open})
			h.register("old", "noop", "shared-token", false)
			h.register("new", "noop", "shared-token", false)
			h.send("old", `{"topic":"t","tag":1,"message":"m"}`).expectError(t, 404, "client_not_found")
			h.send("new", `{"topic":"t","tag":1,"message":"m"}`).expectOK(t, 202)
		})
	}
}

func TestSendBodyShapes(t *testing.T) {
	h := newHarness(t, options{})
	h.register("raw", "noop", "tok-raw", true)
	h.register("plain", "noop", "tok-plain", false)
	f := func(id, body string, fields ...string) {
		t.Helper()
		h.send(id, body).expectError(t, 400, "", fields...)
	}
	f("raw", `{"topic":"t"}`, "tag", "message")
	f("raw", `{}`, "topic", "tag", "message")
	f("plain", `{"tag":"1100"}`, "tag")
	f("plain", `{"tag":-1,"message":"m","topic":"t"}`, "tag")
	f("plain", `{"topic":5,"message":true}`, "topic", "message")
	f("plain", `{"payload":"x","id":"1"}`, "payload")
	f("plain", `{"id":"1","payload":{"topic":"t","flags":0,"blob":"%%%"}}`, "payload.blob")
	f("plain", `{"id":"1","payload":{"topic":"t","flags":0,"blob":"`+base64.StdEncoding.EncodeToString([]byte(`[1]`))+`"}}`, "payload.blob")
	f("plain", `{"id":"1","payload":{"topic":"t","flags":1}}`, "payload.blob")
	f("plain", `{"topic":"t"}`, "message")
	f("plain", `{"payload":{"topic":"t","flags":1,"blob":"b"}}`, "id")
	f("plain", `{"message":"m"}`, "topic")
	f("plain", `{"topic":"t","message":"m"`, "body")

	good := base64.StdEncoding.EncodeToString([]byte(`{"title":"Hi","body":"there"}`))
	for _, body := range []string{
		`{"topic":"t","tag":1100,"message":"m"}`,
		`{"topic":"t","tag":1108,"message":"m2"}`,
		`{"id":"x","payload":{"topic":"t","flags":0,"blob":"` + good + `"}}`,
		`{"id":"y","payload":{"topic":"t","flags":1,"blob":"enc"}}`,
		`{"topic":"t","tag":7,"message":"enc"}`,
	} {
		h.send("plain", body).expectOK(t, 202)
	}
	h.send("raw", `{"topic":"t","tag":7,"message":"enc"}`).expectOK(t, 202)
}

func TestRelaySignature(t *testing.T) {
	h := newHarness(t, options{})
	h.register("c", "noop", "tok", false)
	body := `{"topic":"t","tag":1,"message":"m"}`
	now := time.Now().Unix()
	path := "/clients/c"
	good := h.signed(body, now)

	h.do("POST", path, body, nil).expectError(t, 401, "missing_signature", "X-Ed25519-Timestamp", "X-Ed25519-Signature")
	h.do("POST", path, body, map[string]string{"X-Ed25519-Signature": good["X-Ed25519-Signature"]}).
		expectError(t, 401, "missing_signature", "X-Ed25519-Timestamp")
	h.do("POST", path, body, map[string]string{"X-Ed25519-Timestamp": good["X-Ed25519-Timestamp"]}).
		expectError(t, 401, "missing_signature", "X-Ed25519-Signature")
	with := func(ts, sig string) map[string]string {
		return map[string]string{"X-Ed25519-Timestamp": ts, "X-Ed25519-Signature": sig}
	}
	h.do("POST", path, body, with(good["X-Ed25519-Timestamp"], "zz"+good["X-Ed25519-Signature"][2:])).
		expectError(t, 401, "invalid_signature", "X-Ed25519-Signature")
	h.do("POST", path, body, with(good["X-Ed25519-Timestamp"], good["X-Ed25519-Signature"][:126])).
		expectError(t, 401, "invalid_signature", "X-Ed25519-Signature")
	h.do("POST", path, body+" ", good).expectError(t, 401, "invalid_signature", "X-Ed25519-Signature")
	h.do("POST", path, body, with("12x", good["X-Ed25519-Signature"])).
		expectError(t, 401, "invalid_signature", "X-Ed25519-Timestamp")
	h.do("POST", path, body, h.signed(body, now-301)).expectError(t, 401, "invalid_signature", "X-Ed25519-Timestamp")
	h.do("POST", path, body, h.signed(body, now+301)).expectError(t, 401, "invalid_signature", "X-Ed25519-Timestamp")
	// Milliseconds are accepted.
	h.do("POST", path, body, h.signed(body, time.Now().UnixMilli())).expectOK(t, 202)

	off := newHarness(t, options{configure: func(c *Config) { c.ValidateSignatures = false }})
	off.register("c", "noop", "tok", false)
	off.do("POST", path, body, nil).expectOK(t, 202)
}

func TestConcurrentIdenticalSendsDeliverOnce(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, options{store: st.open})
			h.register("c", "noop", "tok", false)
			body := `{"topic":"t","tag":1,"message":"same"}`
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			for range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := h.send("c", body)
					mu.Lock()
					counts[r.status]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if counts[202] != 1 || counts[200]+counts[409]+counts[202] != 24 {
				t.Fatalf("statuses %v; want exactly one 202, the rest 200 or 409", counts)
			}
			if got := h.providers.Noop().Sent(); got != 1 {
				t.Fatalf("delivered %d times; want 1", got)
			}
		})
	}
}

func TestRestartKeepsClients(t *testing.T) {
	dir := t.TempDir()
	open := func(t *testing.T) cache.Store {
		s, err := cache.OpenEmbedded(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := newHarness(t, options{store: open})
	h.register("kept", "noop", "tok", false)
	h.srv.Shutdown(t.Context())
	h.store.Close()

	h2 := newHarness(t, options{store: open})
	h2.send("kept", `{"topic":"t","tag":1,"message":"m"}`).expectOK(t, 202)
}

func TestStoreUnavailable(t *testing.T) {
	var addr string
	h := newHarness(t, options{store: func(t *testing.T) cache.Store {
		addr = cachetest.StartRedis(t)
		s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, Timeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
	h.register("c", "noop", "tok", false)
	cachetest.ShutdownRedis(t, addr)

	h.do("POST", "/clients", `{"client_id":"d","type":"noop","token":"t2"}`, nil).expectError(t, 503, "store_unavailable")
	h.do("DELETE", "/clients/c", "", nil).expectError(t, 503, "store_unavailable")
	h.send("c", `{"topic":"t","tag":1,"message":"m"}`).expectError(t, 503, "store_unavailable")
	h.do("GET", "/health/ready", "", nil).expectError(t, 503, "store_unavailable")
	if got := h.providers.Noop().Sent(); got != 0 {
		t.Fatalf("sent %d with the store down; want 0", got)
	}
}

func TestSendsBeyondTheConcurrencyLimitAreShed(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.MaxInFlightSends = 1 }})
	h.register("c", "noop", "tok", false)
	// Hold the one slot, as a send stuck on a slow provider would.
	h.srv.inFlight.Add(1)
	r := h.send("c", `{"topic":"t","tag":1,"message":"m"}`)
	r.expectError(t, 503, "overloaded")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q; want 1", r.header.Get("Retry-After"))
	}
	if h.providers.Noop().Sent() != 0 {
		t.Fatal("a shed send was delivered")
	}
	h.srv.inFlight.Add(-1)
	h.send("c", `{"topic":"t","tag":1,"message":"m"}`).expectOK(t, 202)
}
