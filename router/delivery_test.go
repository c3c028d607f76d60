package router

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

const (
	apnsTopic  = "com.example.wallet"
	apnsKeyID  = "KEY1234567"
	apnsTeamID = "TEAM123456"
	fcmProject = "wallet-project"
	// APNs device tokens are hex.
	tokProd    = "aaaa000000000000000000000000000000000000000000000000000000000001"
	tokSandbox = "bbbb000000000000000000000000000000000000000000000000000000000002"
	tokFCM     = "fcm-token:APA91b-device-3"
)

// providerHarness is a harness whose APNs (production and sandbox) and FCM
// providers are the mock servers, reached over the network by the real
// clients.
type providerHarness struct {
	*harness
	prod, sandbox *dispatchtest.APNs
	fcm           *dispatchtest.FCM
}

func newProviderHarness(t *testing.T, edit func(*dispatch.Config)) *providerHarness {
	t.Helper()
	key, p8 := testkit.NewP8(t)
	prod, sandbox := dispatchtest.StartAPNs(t, true), dispatchtest.StartAPNs(t, true)
	for _, m := range []*dispatchtest.APNs{prod, sandbox} {
		m.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	}
	fcm := dispatchtest.StartFCM(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(prod.CertPEM())
	roots.AppendCertsFromPEM(sandbox.CertPEM())
	cfg := dispatch.Config{
		Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID,
			APNSPKCS8PEM: p8, FCMCredentials: fcm.ServiceAccountJSON(fcmProject)},
		APNSURL: prod.URL(), APNSSandboxURL: sandbox.URL(), RootCAs: roots,
		FCMURL:      fcm.URL(),
		MaxAttempts: 3, RetryDelay: func(int, time.Duration) time.Duration { return 0 },
	}
	if edit != nil {
		edit(&cfg)
	}
	h := newHarness(t, options{dispatch: cfg, store: redisStore})
	h.register("prod", "apns", tokProd, false)
	h.register("sandbox", "APNS-SANDBOX", tokSandbox, false)
	h.register("fcm", "fcm", tokFCM, false)
	h.register("raw", "apns", "cccc0000000000000000000000000000000000000000000000000000000000ff", true)
	return &providerHarness{h, prod, sandbox, fcm}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestEveryBodyKindReachesAPNs(t *testing.T) {
	p := newProviderHarness(t, nil)
	blob := base64.StdEncoding.EncodeToString([]byte(`{"title":"Hi","body":"there"}`))
	cases := []struct {
		name, client, body string
		pushType, priority string
		collapseID         string
		payload            string
	}{
		{"raw", "raw", `{"topic":"tp","tag":4000,"message":"ciphertext"}`, "background", "5", "",
			`{"aps":{"content-available":1},"topic":"tp","tag":"4000","message":"ciphertext"}`},
		{"tag 1100", "prod", `{"topic":"tp","tag":1100,"message":"m1100"}`, "alert", "10", sha256Hex("m1100"),
			`{"aps":{"alert":{"title":"Signature required","body":"You have a message to sign"},"sound":"default"},"topic":"tp","blob":"m1100","tag":"1100"}`},
		{"tag 1108", "prod", `{"topic":"tp","tag":1108,"message":"m1108"}`, "alert", "10", sha256Hex("m1108"),
			`{"aps":{"alert":{"title":"Signature required","body":"You have a message to sign"},"sound":"default"},"topic":"tp","blob":"m1108","tag":"1108"}`},
		{"legacy encrypted", "prod", `{"id":"legacy-1","payload":{"topic":"tp","flags":1,"blob":"ZW5j"}}`, "alert", "10", "",
			`{"aps":{"alert":{"title":"New message","body":"You have a new message"},"mutable-content":1},"topic":"tp","blob":"ZW5j"}`},
		{"legacy cleartext", "prod", `{"id":"legacy-2","payload":{"topic":"tp","flags":0,"blob":"` + blob + `"}}`, "alert", "10", "legacy-2",
			`{"aps":{"alert":{"title":"Hi","body":"there"},"sound":"default"},"topic":"tp"}`},
		{"encrypted without payload", "prod", `{"topic":"tp","tag":4000,"message":"enc"}`, "alert", "10", "",
			`{"aps":{"alert":{"title":"New message","body":"You have a new message"},"mutable-content":1},"topic":"tp","blob":"enc"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.prod.Reset()
			p.send(c.client, c.body).expectOK(t, 202)
			reqs := p.prod.Requests()
			if len(reqs) != 1 {
				t.Fatalf("mock APNs got %d requests; want 1", len(reqs))
			}
			r := reqs[0]
			if !strings.HasPrefix(r.Path, "/3/device/") || r.Status != 200 {
				t.Fatalf("path %q status %d", r.Path, r.Status)
			}
			for name, want := range map[string]string{
				"apns-topic": apnsTopic, "apns-push-type": c.pushType, "apns-priority": c.priority, "apns-collapse-id": c.collapseID,
			} {
				if got := r.Header.Get(name); got != want {
					t.Errorf("%s = %q; want %q", name, got, want)
				}
			}
			if r.Header.Get("apns-expiration") == "" || len(r.Header.Get("apns-id")) != 36 {
				t.Errorf("apns-expiration %q, apns-id %q", r.Header.Get("apns-expiration"), r.Header.Get("apns-id"))
			}
			if string(r.Body) != c.payload {
				t.Errorf("payload\n%s\nwant\n%s", r.Body, c.payload)
			}
		})
	}
	if n := p.sandbox.Count(); n != 0 {
		t.Fatalf("production sends reached the sandbox host %d times", n)
	}
}

func TestSandboxAndFCMClients(t *testing.T) {
	p := newProviderHarness(t, nil)
	p.send("sandbox", `{"topic":"tp","tag":1108,"message":"m"}`).expectOK(t, 202)
	if reqs := p.sandbox.Requests(); len(reqs) != 1 || reqs[0].Path != "/3/device/"+tokSandbox || p.prod.Count() != 0 {
		t.Fatalf("sandbox mock got %+v, production %d; want one push on the sandbox host", reqs, p.prod.Count())
	}

	p.send("fcm", `{"topic":"tp","tag":1100,"message":"m"}`).expectOK(t, 202)
	p.send("fcm", `{"id":"x","payload":{"topic":"tp","flags":1,"blob":"ZW5j"}}`).expectOK(t, 202)
	reqs := p.fcm.Requests()
	if len(reqs) != 2 || p.fcm.TokenFetches() != 1 {
		t.Fatalf("FCM mock got %d sends and %d token fetches; want 2 and 1", len(reqs), p.fcm.TokenFetches())
	}
	if reqs[0].Path != "/v1/projects/"+fcmProject+"/messages:send" {
		t.Fatalf("FCM path %q", reqs[0].Path)
	}
	visible, encrypted := reqs[0].Message, reqs[1].Message
	if visible["token"] != tokFCM ||
		!reflect.DeepEqual(visible["notification"], map[string]any{"title": "Signature required", "body": "You have a message to sign"}) ||
		!reflect.DeepEqual(visible["data"], map[string]any{"topic": "tp", "blob": "m", "tag": "1100"}) ||
		visible["android"].(map[string]any)["priority"] != "high" {
		js, _ := json.Marshal(visible)
		t.Fatalf("visible FCM message %s", js)
	}
	if _, ok := encrypted["notification"]; ok || !reflect.DeepEqual(encrypted["data"], map[string]any{"topic": "tp", "blob": "ZW5j"}) {
		js, _ := json.Marshal(encrypted)
		t.Fatalf("encrypted FCM message %s: want data only", js)
	}
}

func TestProviderErrorRows(t *testing.T) {
	p := newProviderHarness(t, nil)
	body := func(msg string) string { return `{"topic":"tp","tag":4000,"message":"` + msg + `"}` }

	t.Run("dead token removes the client", func(t *testing.T) {
		p.prod.Script(tokProd, dispatchtest.Answer{Status: 410, Reason: "Unregistered"})
		p.send("prod", body("dead")).expectError(t, 410, "client_deleted")
		p.send("prod", body("after")).expectError(t, 404, "client_not_found")
		p.prod.Script(tokProd)
		p.register("prod", "apns", tokProd, false)
	})
	t.Run("503 then 200 is delivered once", func(t *testing.T) {
		p.prod.Reset()
		p.prod.Script(tokProd, dispatchtest.Answer{Status: 503}, dispatchtest.Answer{})
		retries := p.providers.Retries()
		p.send("prod", body("flaky")).expectOK(t, 202)
		if got := p.providers.Retries() - retries; got != 1 {
			t.Fatalf("retries counted %d; want 1", got)
		}
		if p.prod.Count() != 1 || len(p.prod.Requests()) != 2 {
			t.Fatalf("accepted %d of %d attempts; want 1 of 2", p.prod.Count(), len(p.prod.Requests()))
		}
		p.send("prod", body("flaky")).expectOK(t, 200)
		if p.prod.Count() != 1 {
			t.Fatal("the duplicate was pushed again")
		}
		p.prod.Script(tokProd)
	})
	t.Run("503 always is 502 and the retry is delivered", func(t *testing.T) {
		p.prod.Reset()
		p.prod.Script(tokProd, dispatchtest.Answer{Status: 503})
		r := p.send("prod", body("down"))
		r.expectError(t, 502, "provider_unavailable")
		if !strings.Contains(r.env.Errors[0].Description, "503") {
			t.Errorf("description %q does not say what APNs answered", r.env.Errors[0].Description)
		}
		p.prod.Script(tokProd)
		p.send("prod", body("down")).expectOK(t, 202)
	})
	t.Run("oversize is 413 and nothing is sent", func(t *testing.T) {
		p.prod.Reset()
		p.send("prod", body(strings.Repeat("x", 5000))).expectError(t, 413, "payload_too_large")
		if n := len(p.prod.Requests()); n != 0 {
			t.Fatalf("mock got %d requests; want none", n)
		}
	})
	t.Run("in-flight duplicate is 409, not a false success", func(t *testing.T) {
		p.prod.Reset()
		gate := dispatchtest.NewGate()
		defer gate.Release()
		p.prod.Script(tokProd, dispatchtest.Answer{Status: 503, Hold: gate.Hold})
		var first reply
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); first = p.send("prod", body("slow")) }()
		gate.WaitArrived(t, 10*time.Second) // the first send holds the claim
		p.send("prod", body("slow")).expectError(t, 409, "delivery_in_progress")
		gate.Release()
		wg.Wait()
		first.expectError(t, 502, "provider_unavailable")
		p.prod.Script(tokProd)
		p.send("prod", body("slow")).expectOK(t, 202)
	})
}

func TestBadCredentialsAreMisconfigured(t *testing.T) {
	other, otherP8 := testkit.NewP8(t)
	p := newProviderHarness(t, func(c *dispatch.Config) {
		// A key the mock does not trust: Apple answers 403 InvalidProviderToken.
		c.APNSPKCS8PEM = otherP8
	})
	p.send("prod", `{"topic":"tp","tag":4000,"message":"m"}`).expectError(t, 502, "provider_misconfigured")
	// Not remembered as delivered: once the credentials are fixed, the same
	// message goes through (here: the mock starts trusting the key).
	p.prod.TrustKey(apnsKeyID, apnsTeamID, &other.PublicKey)
	p.send("prod", `{"topic":"tp","tag":4000,"message":"m"}`).expectOK(t, 202)
}

// A wallet that re-registers a fresh token while a push to its old token is
// being refused keeps the fresh registration.
func TestDeadTokenDoesNotRemoveAFreshRegistration(t *testing.T) {
	p := newProviderHarness(t, nil)
	gate := dispatchtest.NewGate()
	defer gate.Release()
	p.prod.Script(tokProd, dispatchtest.Answer{Status: 410, Reason: "Unregistered", Hold: gate.Hold})
	done := make(chan reply, 1)
	go func() { done <- p.send("prod", `{"topic":"tp","tag":4000,"message":"old"}`) }()
	gate.WaitArrived(t, 10*time.Second) // the push to the old token is in flight
	fresh := "dddd000000000000000000000000000000000000000000000000000000000004"
	p.register("prod", "apns", fresh, false)
	gate.Release()
	(<-done).expectError(t, 410, "client_deleted")
	p.send("prod", `{"topic":"tp","tag":4000,"message":"new"}`).expectOK(t, 202)
	if reqs := p.prod.Requests(); reqs[len(reqs)-1].Token != fresh {
		t.Fatalf("the last push went to %s; want the fresh token", reqs[len(reqs)-1].Token)
	}
}
