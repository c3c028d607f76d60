package dispatchtest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestAPNsAcceptsValidPush(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    bool
		scheme string
	}{
		{"h2c", false, "http://127.0.0.1:"},
		{"tls", true, "https://127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := dispatchtest.StartAPNs(t, tc.tls)
			if !strings.HasPrefix(m.URL(), tc.scheme) {
				t.Fatalf("URL() = %q, want prefix %q", m.URL(), tc.scheme)
			}
			if (m.RootCAs() != nil) != tc.tls {
				t.Fatalf("RootCAs() = %v with TLS %v", m.RootCAs(), tc.tls)
			}
			c := h2cClient(t)
			if tc.tls {
				c = tlsClient(t, m.RootCAs())
			}

			p := newPush(testToken)
			p.header["apns-id"] = "123e4567-e89b-12d3-a456-426614174000"
			r := send(t, c, m.URL(), p)
			if r.status != 200 || r.reason != "" {
				t.Fatalf("valid push: %d %q, want 200", r.status, r.reason)
			}
			if r.proto != 2 {
				t.Fatalf("answered over HTTP/%d, want 2", r.proto)
			}
			if got := r.header.Get("apns-id"); got != p.header["apns-id"] {
				t.Fatalf("apns-id = %q, want the request's echoed", got)
			}

			delete(p.header, "apns-id")
			r = send(t, c, m.URL(), p)
			if got := r.header.Get("apns-id"); !uuidRE.MatchString(got) {
				t.Fatalf("generated apns-id = %q, want a lowercase UUID", got)
			}
			if got := send(t, c, m.URL(), p).header.Get("apns-id"); got == r.header.Get("apns-id") {
				t.Fatalf("two pushes got the same generated apns-id %q", got)
			}

			if m.Count() != 3 {
				t.Fatalf("Count() = %d, want 3", m.Count())
			}
			reqs := m.Requests()
			if len(reqs) != 3 {
				t.Fatalf("recorded %d requests, want 3", len(reqs))
			}
			got := reqs[0]
			if got.Path != "/3/device/"+testToken || got.Token != testToken || got.Status != 200 || got.Reason != "" ||
				string(got.Body) != p.body || got.Header.Get("apns-topic") != testTopic {
				t.Fatalf("recorded %+v", got)
			}
		})
	}
}

func TestAPNsRejectsLikeApple(t *testing.T) {
	m := dispatchtest.StartAPNs(t, false)
	c := h2cClient(t)
	f := func(name string, mutate func(p *apnsPush), status int, reason string) {
		t.Helper()
		p := newPush(testToken)
		mutate(&p)
		r := send(t, c, m.URL(), p)
		if r.status != status || r.reason != reason {
			t.Errorf("%s: got %d %q, want %d %q", name, r.status, r.reason, status, reason)
		}
		if !uuidRE.MatchString(r.header.Get("apns-id")) {
			t.Errorf("%s: error answer has apns-id %q, want a UUID", name, r.header.Get("apns-id"))
		}
	}
	f("GET", func(p *apnsPush) { p.method = http.MethodGet; p.body = "" }, 405, "MethodNotAllowed")
	f("wrong path", func(p *apnsPush) { p.path = "/3/devices/" + testToken }, 404, "BadPath")
	f("no token", func(p *apnsPush) { p.path = "/3/device/" }, 400, "MissingDeviceToken")
	f("non-hex token", func(p *apnsPush) { p.path = "/3/device/xyz123" }, 400, "BadDeviceToken")
	f("no topic", func(p *apnsPush) { delete(p.header, "apns-topic") }, 400, "MissingTopic")
	f("unknown push type", func(p *apnsPush) { p.header["apns-push-type"] = "loud" }, 400, "InvalidPushType")
	f("priority 7", func(p *apnsPush) { p.header["apns-priority"] = "7" }, 400, "BadPriority")
	f("expiration not a number", func(p *apnsPush) { p.header["apns-expiration"] = "tomorrow" }, 400, "BadExpirationDate")
	f("apns-id not a UUID", func(p *apnsPush) { p.header["apns-id"] = "42" }, 400, "BadMessageId")
	f("collapse id over 64 bytes", func(p *apnsPush) { p.header["apns-collapse-id"] = strings.Repeat("c", 65) }, 400, "BadCollapseId")
	f("empty body", func(p *apnsPush) { p.body = "" }, 400, "PayloadEmpty")
	f("not JSON", func(p *apnsPush) { p.body = `{"aps":` }, 400, "BadPayload")
	f("no aps", func(p *apnsPush) { p.body = `{"topic":"t"}` }, 400, "BadPayload")
	f("aps not a dictionary", func(p *apnsPush) { p.body = `{"aps":"alert"}` }, 400, "BadPayload")
	f("array body", func(p *apnsPush) { p.body = `[{"aps":{}}]` }, 400, "BadPayload")

	pad := func(n int) string { // a valid payload of exactly n bytes
		s := `{"aps":{},"x":""}`
		return s[:len(s)-2] + strings.Repeat("a", n-len(s)) + `"}`
	}
	f("4097 bytes", func(p *apnsPush) { p.body = pad(4097) }, 413, "PayloadTooLarge")
	f("voip 5121 bytes", func(p *apnsPush) { p.header["apns-push-type"] = "voip"; p.body = pad(5121) }, 413, "PayloadTooLarge")
	if m.Count() != 0 {
		t.Fatalf("Count() = %d after only invalid pushes, want 0", m.Count())
	}

	// The limits are inclusive, and a missing push type is accepted, as by
	// Apple (it is required on watchOS only).
	f("4096 bytes", func(p *apnsPush) { p.body = pad(4096) }, 200, "")
	f("voip 5120 bytes", func(p *apnsPush) { p.header["apns-push-type"] = "voip"; p.body = pad(5120) }, 200, "")
	f("no push type", func(p *apnsPush) { delete(p.header, "apns-push-type") }, 200, "")
	f("priority 5, background", func(p *apnsPush) {
		p.header["apns-priority"] = "5"
		p.header["apns-push-type"] = "background"
		p.body = `{"aps":{"content-available":1}}`
	}, 200, "")
}

func TestAPNsSpeaksOnlyHTTP2(t *testing.T) {
	m := dispatchtest.StartAPNs(t, false)
	req, err := http.NewRequest(http.MethodPost, m.URL()+"/3/device/"+testToken, strings.NewReader(`{"aps":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("apns-topic", testTopic)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("an HTTP/1.1 push was accepted; Apple speaks only HTTP/2")
		}
	}
	if m.Count() != 0 {
		t.Fatalf("Count() = %d after an HTTP/1.1 push, want 0", m.Count())
	}
}

func TestAPNsTokenAuth(t *testing.T) {
	const keyID, teamID = "ABC123DEFG", "TEAM123456"
	m := dispatchtest.StartAPNs(t, false)
	key := newECKey(t)
	m.TrustKey(keyID, teamID, &key.PublicKey)
	c := h2cClient(t)

	now := time.Now().Unix()
	token := func(mutate func(h, c map[string]any)) string {
		h := map[string]any{"alg": "ES256", "kid": keyID}
		cl := map[string]any{"iss": teamID, "iat": now}
		if mutate != nil {
			mutate(h, cl)
		}
		return signJWT(t, key, h, cl)
	}
	f := func(name, auth string, status int, reason string) {
		t.Helper()
		p := newPush(testToken)
		if auth != "" {
			p.header["authorization"] = auth
		}
		r := send(t, c, m.URL(), p)
		if r.status != status || r.reason != reason {
			t.Errorf("%s: got %d %q, want %d %q", name, r.status, r.reason, status, reason)
		}
	}
	valid := "bearer " + token(nil)
	f("valid", valid, 200, "")
	f("valid again (cached)", valid, 200, "")
	f("Bearer scheme in capitals", "Bearer "+token(nil), 200, "")
	f("missing", "", 403, "MissingProviderToken")
	f("not a JWT", "bearer nonsense", 403, "InvalidProviderToken")
	f("no scheme", token(nil), 403, "InvalidProviderToken")
	f("unknown kid", "bearer "+token(func(h, _ map[string]any) { h["kid"] = "OTHERKEY00" }), 403, "InvalidProviderToken")
	f("wrong team", "bearer "+token(func(_, c map[string]any) { c["iss"] = "OTHERTEAM0" }), 403, "InvalidProviderToken")
	f("no iat", "bearer "+token(func(_, c map[string]any) { delete(c, "iat") }), 403, "InvalidProviderToken")
	f("alg none", "bearer "+token(func(h, _ map[string]any) { h["alg"] = "none" }), 403, "InvalidProviderToken")
	f("iat 2 h ago", "bearer "+token(func(_, c map[string]any) { c["iat"] = now - 7200 }), 403, "ExpiredProviderToken")

	other := newECKey(t)
	forged := signJWT(t, other, map[string]any{"alg": "ES256", "kid": keyID}, map[string]any{"iss": teamID, "iat": now})
	f("signed by another key", "bearer "+forged, 403, "InvalidProviderToken")
	// A token differing from a cached one in its signature alone must be
	// verified, not served from the cache.
	i := strings.LastIndexByte(valid, '.')
	tampered := valid[:i+1] + forged[strings.LastIndexByte(forged, '.')+1:]
	f("cached token with another signature", tampered, 403, "InvalidProviderToken")

	if m.Count() != 3 {
		t.Fatalf("Count() = %d, want the 3 valid pushes", m.Count())
	}
}

func TestAPNsClientCertAuth(t *testing.T) {
	pool, cert := newCA(t)
	_, strangerCert := newCA(t)

	t.Run("trusted pool", func(t *testing.T) {
		m := dispatchtest.StartAPNs(t, true)
		m.TrustClientCerts(pool)
		f := func(name string, certs []tls.Certificate, status int, reason string) {
			t.Helper()
			r := send(t, tlsClient(t, m.RootCAs(), certs...), m.URL(), newPush(testToken))
			if r.status != status || r.reason != reason {
				t.Errorf("%s: got %d %q, want %d %q", name, r.status, r.reason, status, reason)
			}
		}
		f("trusted cert", []tls.Certificate{cert}, 200, "")
		f("no cert", nil, 403, "MissingProviderToken")
		f("cert of another CA", []tls.Certificate{strangerCert}, 403, "BadCertificate")
		if m.Count() != 1 {
			t.Fatalf("Count() = %d, want 1", m.Count())
		}
	})
	t.Run("any cert", func(t *testing.T) {
		m := dispatchtest.StartAPNs(t, true)
		m.AcceptAnyClientCert()
		if r := send(t, tlsClient(t, m.RootCAs(), strangerCert), m.URL(), newPush(testToken)); r.status != 200 {
			t.Fatalf("any cert: got %d %q, want 200", r.status, r.reason)
		}
		if r := send(t, tlsClient(t, m.RootCAs()), m.URL(), newPush(testToken)); r.status != 403 || r.reason != "MissingProviderToken" {
			t.Fatalf("no cert: got %d %q, want 403 MissingProviderToken", r.status, r.reason)
		}
	})
}

func TestAPNsScript(t *testing.T) {
	m := dispatchtest.StartAPNs(t, false)
	c := h2cClient(t)
	const dead = "deadbeef"
	m.Script(dead,
		dispatchtest.Answer{Status: 503, Reason: "ServiceUnavailable", RetryAfter: "2"},
		dispatchtest.Answer{},
		dispatchtest.Answer{Reason: "Unregistered"}, // status from the reason: 410
	)
	want := []struct {
		status int
		reason string
	}{{503, "ServiceUnavailable"}, {200, ""}, {410, "Unregistered"}, {410, "Unregistered"}}
	for i, w := range want {
		before := time.Now().UnixMilli()
		r := send(t, c, m.URL(), newPush(dead))
		if r.status != w.status || r.reason != w.reason {
			t.Fatalf("push %d: got %d %q, want %d %q", i, r.status, r.reason, w.status, w.reason)
		}
		if ra := r.header.Get("Retry-After"); (i == 0) != (ra == "2") {
			t.Fatalf("push %d: Retry-After %q", i, ra)
		}
		if w.status == 410 && (r.timestamp == nil || *r.timestamp < before || *r.timestamp > time.Now().UnixMilli()) {
			t.Fatalf("push %d: 410 timestamp %v, want milliseconds of now", i, r.timestamp)
		}
	}
	if r := send(t, c, m.URL(), newPush(testToken)); r.status != 200 {
		t.Fatalf("unscripted token: got %d %q, want 200", r.status, r.reason)
	}

	// Validation comes first, and does not use up a scripted answer.
	m.Script(dead, dispatchtest.Answer{Status: 429})
	p := newPush(dead)
	delete(p.header, "apns-topic")
	if r := send(t, c, m.URL(), p); r.status != 400 || r.reason != "MissingTopic" {
		t.Fatalf("invalid push to scripted token: got %d %q, want 400 MissingTopic", r.status, r.reason)
	}
	if r := send(t, c, m.URL(), newPush(dead)); r.status != 429 || r.reason != "TooManyRequests" {
		t.Fatalf("status-only answer: got %d %q, want 429 TooManyRequests", r.status, r.reason)
	}

	// The default script covers every token without its own.
	m.Script("", dispatchtest.Answer{Reason: "InternalServerError"})
	if r := send(t, c, m.URL(), newPush("abcd")); r.status != 500 {
		t.Fatalf("default script: got %d %q, want 500", r.status, r.reason)
	}

	if m.Count() != 2 {
		t.Fatalf("Count() = %d, want the 2 pushes answered 200", m.Count())
	}
	m.Reset()
	if m.Count() != 0 || len(m.Requests()) != 0 {
		t.Fatalf("after Reset: Count %d, %d requests", m.Count(), len(m.Requests()))
	}
	if r := send(t, c, m.URL(), newPush(dead)); r.status != 200 {
		t.Fatalf("after Reset the script is gone: got %d %q, want 200", r.status, r.reason)
	}
}

func TestAPNsDelayEndsWithClient(t *testing.T) {
	m := dispatchtest.StartAPNs(t, false)
	m.Script(testToken, dispatchtest.Answer{Delay: time.Minute})
	c := h2cClient(t)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p := newPush(testToken)
	req, err := http.NewRequestWithContext(ctx, p.method, m.URL()+p.path, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a push scripted to hang was answered %d", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	// The mock notices the reset stream and records a push without answer.
	for len(m.Requests()) == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the hanging handler did not return after the client gave up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := m.Requests()[0]; r.Status != 0 || m.Count() != 0 {
		t.Fatalf("abandoned push recorded with status %d, Count %d; want 0, 0", r.Status, m.Count())
	}
}

func TestAPNsWithoutRecord(t *testing.T) {
	m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := h2cClient(t)
	for range 3 {
		if r := send(t, c, m.URL(), newPush(testToken)); r.status != 200 {
			t.Fatalf("got %d %q", r.status, r.reason)
		}
	}
	if m.Count() != 3 || len(m.Requests()) != 0 {
		t.Fatalf("Record off: Count %d, %d requests; want 3, 0", m.Count(), len(m.Requests()))
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
