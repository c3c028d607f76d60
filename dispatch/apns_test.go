package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// apnsSetup is an APNs mock and a Dispatcher whose "apns" sends to it.
type apnsSetup struct {
	mock *dispatchtest.APNs
	d    *Dispatcher
	s    Sender
}

// newTokenAPNs starts a mock (TLS or h2c) that trusts a fresh .p8 key and a
// Dispatcher using that key; edit adjusts the Config first.
func newTokenAPNs(t *testing.T, tls bool, edit func(*Config)) apnsSetup {
	t.Helper()
	key := newAPNsKey(t)
	m := dispatchtest.StartAPNs(t, tls)
	m.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = m.URL(), m.URL(), m.RootCAs()
	if edit != nil {
		edit(&cfg)
	}
	d := mustNew(t, cfg)
	return apnsSetup{m, d, mustSender(t, d, TypeAPNS)}
}

func visible() *Notification {
	return &Notification{
		Kind: KindVisible, MessageID: "0f3c1d5e9a", Title: "Signature required", Body: "You have a message to sign",
		Data: []Field{{"topic", "t1"}, {"tag", "1108"}},
	}
}

// checkAPNsRequest checks what the mock got: path, headers and the exact
// JSON payload.
func checkAPNsRequest(t *testing.T, r dispatchtest.APNsRequest, pushType, priority, collapseID, messageID, wantBody string) {
	t.Helper()
	if r.Path != "/3/device/"+testToken {
		t.Errorf("path = %q; want /3/device/%s", r.Path, testToken)
	}
	h := r.Header
	for name, want := range map[string]string{
		"apns-topic": testTopic, "apns-push-type": pushType, "apns-priority": priority,
		"apns-collapse-id": collapseID, "apns-id": apnsID(messageID),
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	exp, err := strconv.ParseInt(h.Get("apns-expiration"), 10, 64)
	if d := time.Until(time.Unix(exp, 0)); err != nil || d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("apns-expiration = %q; want about now + 24 h", h.Get("apns-expiration"))
	}
	if string(r.Body) != wantBody {
		t.Errorf("payload =\n%s\nwant\n%s", r.Body, wantBody)
	}
	if !json.Valid(r.Body) {
		t.Errorf("payload is not valid JSON: %s", r.Body)
	}
}

func TestAPNsAuthModes(t *testing.T) {
	const wantBody = `{"aps":{"alert":{"title":"Signature required","body":"You have a message to sign"},"sound":"default"},"topic":"t1","tag":"1108"}`
	t.Run("token/tls", func(t *testing.T) {
		a := newTokenAPNs(t, true, nil)
		if err := a.s.Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		reqs := a.mock.Requests()
		if len(reqs) != 1 || reqs[0].Status != 200 {
			t.Fatalf("mock got %+v; want one accepted push", reqs)
		}
		if !strings.HasPrefix(reqs[0].Header.Get("authorization"), "bearer ") {
			t.Errorf("authorization = %q; want a bearer provider token", reqs[0].Header.Get("authorization"))
		}
		checkAPNsRequest(t, reqs[0], "alert", "10", "0f3c1d5e9a", "0f3c1d5e9a", wantBody)

		// The provider token is reused, not signed per push.
		if err := a.s.Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("second Send: %v", err)
		}
		if r := a.mock.Requests(); r[1].Header.Get("authorization") != reqs[0].Header.Get("authorization") {
			t.Error("the second push carried a new provider token; want the first one reused")
		}
	})
	t.Run("token/h2c", func(t *testing.T) {
		a := newTokenAPNs(t, false, nil)
		if !strings.HasPrefix(a.mock.URL(), "http://") {
			t.Fatalf("mock URL %q is not h2c", a.mock.URL())
		}
		if err := a.s.Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("Send over h2c: %v", err)
		}
		checkAPNsRequest(t, a.mock.Requests()[0], "alert", "10", "0f3c1d5e9a", "0f3c1d5e9a", wantBody)
	})
	for _, enc := range []struct {
		name string
		enc  *pkcs12.Encoder
	}{{"modern", pkcs12.Modern}, {"legacy", pkcs12.LegacyDES}} {
		t.Run("certificate/tls/"+enc.name, func(t *testing.T) {
			cert := newClientCert(t, time.Now().Add(time.Hour))
			m := dispatchtest.StartAPNs(t, true)
			m.TrustClientCerts(cert.pool)
			cfg := baseConfig()
			cfg.APNSType, cfg.APNSTopic, cfg.APNSCertificate, cfg.APNSCertificatePassword = APNSTypeCertificate, testTopic, cert.p12(t, enc.enc, "pw"), "pw"
			cfg.APNSURL, cfg.RootCAs = m.URL(), m.RootCAs()
			d := mustNew(t, cfg)
			if err := mustSender(t, d, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			r := m.Requests()[0]
			if r.Header.Get("authorization") != "" {
				t.Errorf("certificate auth sent authorization %q", r.Header.Get("authorization"))
			}
			checkAPNsRequest(t, r, "alert", "10", "0f3c1d5e9a", "0f3c1d5e9a", wantBody)
		})
	}
}

func TestAPNsUntrustedCertificate(t *testing.T) {
	trusted, ours := newClientCert(t, time.Now().Add(time.Hour)), newClientCert(t, time.Now().Add(time.Hour))
	m := dispatchtest.StartAPNs(t, true)
	m.TrustClientCerts(trusted.pool)
	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSCertificate = APNSTypeCertificate, testTopic, ours.p12(t, pkcs12.Modern, "")
	cfg.APNSURL, cfg.RootCAs = m.URL(), m.RootCAs()
	err := mustSender(t, mustNew(t, cfg), TypeAPNS).Send(t.Context(), testToken, visible())
	var pe *ProviderError
	if !errors.Is(err, ErrMisconfigured) || !errors.As(err, &pe) || pe.Attempts != 1 {
		t.Fatalf("Send with an untrusted certificate = %v; want ErrMisconfigured after 1 attempt", err)
	}
}

func TestAPNsHosts(t *testing.T) {
	key := newAPNsKey(t)
	prod, sandbox := dispatchtest.StartAPNs(t, true), dispatchtest.StartAPNs(t, false)
	prod.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	sandbox.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	// A trailing slash is tolerated: the path is ours to append.
	cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = prod.URL(), sandbox.URL()+"/", prod.RootCAs()
	d := mustNew(t, cfg)

	for _, typ := range []string{TypeAPNS, TypeAPNS, TypeAPNSSandbox} {
		if err := mustSender(t, d, typ).Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("%s Send: %v", typ, err)
		}
	}
	if prod.Count() != 2 || sandbox.Count() != 1 {
		t.Fatalf("production got %d, sandbox %d pushes; want 2 and 1", prod.Count(), sandbox.Count())
	}
	if p := sandbox.Requests()[0].Path; p != "/3/device/"+testToken {
		t.Fatalf("sandbox path = %q", p)
	}

	// Without overrides the hosts are Apple's.
	d2 := mustNew(t, Config{Credentials: Credentials{APNSType: APNSTypeToken, APNSTopic: testTopic, APNSPKCS8PEM: key.pem, APNSKeyID: testKeyID, APNSTeamID: testTeamID}})
	if d2.apns.client.Host != "https://api.push.apple.com" || d2.apnsSandbox.client.Host != "https://api.sandbox.push.apple.com" {
		t.Fatalf("default hosts = %q, %q", d2.apns.client.Host, d2.apnsSandbox.client.Host)
	}
}

func TestAPNsKinds(t *testing.T) {
	a := newTokenAPNs(t, false, nil)
	long := strings.Repeat("x", 65)
	for _, c := range []struct {
		name                           string
		n                              Notification
		pushType, priority, collapseID string
		body                           string
	}{
		{
			"visible/image", Notification{Kind: KindVisible, MessageID: "id1", Title: `Say "hi" <b>`, Body: "line\nnext ✓", ImageURL: "https://img.example/a.png", URL: "https://example.com/x?a=1&b=2"},
			"alert", "10", "id1",
			`{"aps":{"alert":{"title":"Say \"hi\" \u003cb\u003e","body":"line\nnext ✓"},"sound":"default","mutable-content":1},"image":"https://img.example/a.png","url":"https://example.com/x?a=1\u0026b=2"}`,
		},
		{
			// A message id over 64 bytes is no collapse id (Apple's limit).
			"visible/long-id", Notification{Kind: KindVisible, MessageID: long, Title: "T", Body: "B"},
			"alert", "10", "",
			`{"aps":{"alert":{"title":"T","body":"B"},"sound":"default"}}`,
		},
		{
			"encrypted", Notification{Kind: KindEncrypted, MessageID: "id2", Data: []Field{{"topic", "abc"}, {"blob", "ZW5j"}}},
			"alert", "10", "",
			`{"aps":{"alert":{"title":"New message","body":"You have a new message"},"mutable-content":1},"topic":"abc","blob":"ZW5j"}`,
		},
		{
			"raw", Notification{Kind: KindRaw, MessageID: "id3", Data: []Field{{"topic", "abc"}, {"tag", "4000"}, {"message", "bXNn"}, {"aps", "ignored"}}},
			"background", "5", "",
			`{"aps":{"content-available":1},"topic":"abc","tag":"4000","message":"bXNn"}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a.mock.Reset()
			if err := a.s.Send(t.Context(), testToken, &c.n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			checkAPNsRequest(t, a.mock.Requests()[0], c.pushType, c.priority, c.collapseID, c.n.MessageID, c.body)
		})
	}
}

func TestAPNsErrors(t *testing.T) {
	a := newTokenAPNs(t, true, nil)
	for _, c := range []struct {
		name     string
		answers  []dispatchtest.Answer
		want     error // nil = delivered
		requests int   // pushes the mock saw
		status   int
		reason   string
	}{
		{"BadDeviceToken", []dispatchtest.Answer{{Reason: "BadDeviceToken"}}, ErrTokenDead, 1, 400, "BadDeviceToken"},
		{"Unregistered", []dispatchtest.Answer{{Reason: "Unregistered"}}, ErrTokenDead, 1, 410, "Unregistered"},
		{"DeviceTokenNotForTopic", []dispatchtest.Answer{{Reason: "DeviceTokenNotForTopic"}}, ErrTokenDead, 1, 400, "DeviceTokenNotForTopic"},
		{"PayloadTooLarge", []dispatchtest.Answer{{Reason: "PayloadTooLarge"}}, ErrPayloadTooLarge, 1, 413, "PayloadTooLarge"},
		{"InvalidProviderToken", []dispatchtest.Answer{{Reason: "InvalidProviderToken"}}, ErrCredentialsRejected, 1, 403, "InvalidProviderToken"},
		{"BadCertificateEnvironment", []dispatchtest.Answer{{Reason: "BadCertificateEnvironment"}}, ErrCredentialsRejected, 1, 403, "BadCertificateEnvironment"},
		{"TopicDisallowed", []dispatchtest.Answer{{Reason: "TopicDisallowed"}}, ErrMisconfigured, 1, 400, "TopicDisallowed"},
		{"TooManyProviderTokenUpdates", []dispatchtest.Answer{{Reason: "TooManyProviderTokenUpdates"}}, ErrUnavailable, 1, 429, "TooManyProviderTokenUpdates"},
		// Another 4xx is not retried and never means a dead token.
		{"BadExpirationDate", []dispatchtest.Answer{{Reason: "BadExpirationDate"}}, ErrUnavailable, 1, 400, "BadExpirationDate"},
		{"503-then-200", []dispatchtest.Answer{{Status: 503}, {}}, nil, 2, 0, ""},
		{"429-then-200", []dispatchtest.Answer{{Reason: "TooManyRequests"}, {}}, nil, 2, 0, ""},
		{"503-always", []dispatchtest.Answer{{Status: 503}}, ErrUnavailable, 3, 503, "ServiceUnavailable"},
		{"500-always", []dispatchtest.Answer{{Status: 500}}, ErrUnavailable, 3, 500, "InternalServerError"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a.mock.Reset()
			a.mock.Script(testToken, c.answers...)
			err := a.s.Send(t.Context(), testToken, visible())
			if got := len(a.mock.Requests()); got != c.requests {
				t.Errorf("mock saw %d pushes; want %d", got, c.requests)
			}
			if c.want == nil {
				if err != nil || a.mock.Count() != 1 {
					t.Fatalf("Send = %v, mock accepted %d; want delivered once", err, a.mock.Count())
				}
				return
			}
			var pe *ProviderError
			if !errors.Is(err, c.want) || !errors.As(err, &pe) {
				t.Fatalf("Send = %v; want a *ProviderError matching %v", err, c.want)
			}
			if pe.Provider != TypeAPNS || pe.Status != c.status || pe.Reason != c.reason || pe.Attempts != c.requests {
				t.Fatalf("ProviderError = %+v; want apns, %d %s, %d attempts", pe, c.status, c.reason, c.requests)
			}
			if c.want != ErrTokenDead && errors.Is(err, ErrTokenDead) {
				t.Fatal("a non-token error matches ErrTokenDead")
			}
		})
	}
}

func TestAPNsRetryAfter(t *testing.T) {
	var rec delays
	a := newTokenAPNs(t, true, func(c *Config) { c.RetryDelay = rec.fn })
	a.mock.Script(testToken, dispatchtest.Answer{Status: 503, RetryAfter: "7"}, dispatchtest.Answer{Status: 503}, dispatchtest.Answer{})
	if err := a.s.Send(t.Context(), testToken, visible()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := []delayCall{{1, 7 * time.Second}, {2, 0}}
	if got := rec.get(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("RetryDelay calls = %v; want %v", got, want)
	}
}

func TestAPNsOversize(t *testing.T) {
	a := newTokenAPNs(t, false, nil)
	n := visible()
	n.Body = strings.Repeat("é", MaxPayloadSize/2) // 4096 bytes of body alone
	err := a.s.Send(t.Context(), testToken, n)
	if !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("Send of an oversize payload = %v; want ErrPayloadTooLarge", err)
	}
	if len(a.mock.Requests()) != 0 || a.mock.Count() != 0 {
		t.Fatalf("the mock saw %d requests; want none", len(a.mock.Requests()))
	}
	// Just under the limit goes through: the check counts the bytes sent.
	n.Body = ""
	n.Body = strings.Repeat("a", MaxPayloadSize-len(appendAPNSPayload(nil, n)))
	if err := a.s.Send(t.Context(), testToken, n); err != nil {
		t.Fatalf("Send of a %d-byte payload: %v", len(appendAPNSPayload(nil, n)), err)
	}
	if got := len(a.mock.Requests()[0].Body); got != MaxPayloadSize {
		t.Fatalf("mock got %d bytes; want %d", got, MaxPayloadSize)
	}
}

func TestAPNsUntrustedKeyIsLoggedOncePerMinute(t *testing.T) {
	var logs testkit.SyncBuffer
	a := newTokenAPNs(t, true, func(c *Config) {
		// The mock trusts another key under our key id.
		other := newAPNsKey(t)
		c.APNSPKCS8PEM = other.pem
		c.Logger = slogTo(&logs)
	})
	for range 3 {
		err := a.s.Send(t.Context(), testToken, visible())
		var pe *ProviderError
		if !errors.Is(err, ErrMisconfigured) || !errors.As(err, &pe) || pe.Reason != "InvalidProviderToken" || pe.Attempts != 1 {
			t.Fatalf("Send with an untrusted key = %v; want ErrMisconfigured (InvalidProviderToken) after 1 attempt", err)
		}
	}
	if n := strings.Count(logs.String(), "reason=InvalidProviderToken"); n != 1 {
		t.Fatalf("3 rejected pushes logged %d lines; want 1:\n%s", n, logs.String())
	}
}

func TestAPNsUntrustedServer(t *testing.T) {
	// Our roots do not hold the mock's self-signed certificate: that is our
	// configuration, not an outage.
	a := newTokenAPNs(t, true, func(c *Config) { c.RootCAs = nil })
	err := a.s.Send(t.Context(), testToken, visible())
	var pe *ProviderError
	if !errors.Is(err, ErrMisconfigured) || !errors.As(err, &pe) || pe.Attempts != 1 || pe.Cause == nil {
		t.Fatalf("Send to an untrusted server = %v; want ErrMisconfigured after 1 attempt, with the TLS cause", err)
	}
}

func TestAPNsHangingProvider(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a := newTokenAPNs(t, false, func(c *Config) { c.Timeout = timeout })
	a.mock.Script(testToken, dispatchtest.Answer{Delay: 10 * time.Second})
	start := time.Now()
	err := a.s.Send(t.Context(), testToken, visible())
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Send to a hanging provider = %v; want ErrUnavailable", err)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Fatalf("Send took %v; want about the timeout %v", elapsed, timeout)
	}
}

func TestAPNsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	a := newTokenAPNs(t, false, func(c *Config) { c.APNSURL = "http://" + addr })
	err = a.s.Send(t.Context(), testToken, visible())
	var pe *ProviderError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Attempts != 3 || pe.Status != 0 || pe.Cause == nil {
		t.Fatalf("Send to a closed port = %v; want ErrUnavailable after 3 attempts with no status", err)
	}
}

func TestAPNsCallerCancel(t *testing.T) {
	a := newTokenAPNs(t, false, nil)
	a.mock.Script(testToken, dispatchtest.Answer{Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := a.s.Send(ctx, testToken, visible()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Send with a cancelled context = %v; want ErrUnavailable", err)
	}
}
