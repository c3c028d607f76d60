package dispatch

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

const fcmToken = "fcm-token_1:APA91bH"

type fcmSetup struct {
	mock *dispatchtest.FCM
	s    Sender
}

func newFCM(t *testing.T, edit func(*Config, *dispatchtest.FCM)) fcmSetup {
	t.Helper()
	m := dispatchtest.StartFCM(t)
	cfg := baseConfig()
	cfg.FCMCredentials, cfg.FCMURL = m.ServiceAccountJSON(testProject), m.URL()
	if edit != nil {
		edit(&cfg, m)
	}
	return fcmSetup{m, mustSender(t, mustNew(t, cfg), TypeFCM)}
}

// jsonOf decodes a JSON literal for comparison with the mock's Message.
func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func TestFCMKinds(t *testing.T) {
	f := newFCM(t, nil)
	for _, c := range []struct {
		name string
		n    Notification
		want string // the message, apns-expiration left out
	}{
		{
			"visible", Notification{Kind: KindVisible, MessageID: "id1", Title: "T <1>", Body: "B", ImageURL: "https://img.example/a.png", URL: "https://x.example", Data: []Field{{"topic", "t1"}}},
			`{"token":"` + fcmToken + `","data":{"topic":"t1","url":"https://x.example"},
			  "notification":{"title":"T <1>","body":"B","image":"https://img.example/a.png"},
			  "android":{"priority":"high","ttl":"86400s"},
			  "apns":{"headers":{"apns-push-type":"alert","apns-priority":"10","apns-collapse-id":"id1"},
			          "payload":{"aps":{"alert":{"title":"T <1>","body":"B"},"sound":"default","mutable-content":1}}}}`,
		},
		{
			"encrypted", Notification{Kind: KindEncrypted, MessageID: "id2", Data: []Field{{"topic", "t1"}, {"blob", "ZW5j"}}},
			`{"token":"` + fcmToken + `","data":{"topic":"t1","blob":"ZW5j"},
			  "android":{"priority":"high","ttl":"86400s"},
			  "apns":{"headers":{"apns-push-type":"alert","apns-priority":"10"},
			          "payload":{"aps":{"alert":{"title":"New message","body":"You have a new message"},"mutable-content":1}}}}`,
		},
		{
			"raw", Notification{Kind: KindRaw, MessageID: "id3", Data: []Field{{"topic", "t1"}, {"tag", "4000"}, {"message", "bXNn"}}},
			`{"token":"` + fcmToken + `","data":{"topic":"t1","tag":"4000","message":"bXNn"},
			  "android":{"priority":"high","ttl":"86400s"},
			  "apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},
			          "payload":{"aps":{"content-available":1}}}}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.mock.Reset()
			if err := f.s.Send(t.Context(), fcmToken, &c.n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := f.mock.Requests()
			if len(reqs) != 1 || reqs[0].Status != 200 {
				t.Fatalf("mock got %+v; want one accepted send", reqs)
			}
			r := reqs[0]
			if r.Path != "/v1/projects/"+testProject+"/messages:send" || r.ProjectID != testProject {
				t.Errorf("path = %q; want /v1/projects/%s/messages:send", r.Path, testProject)
			}
			headers := r.Message["apns"].(map[string]any)["headers"].(map[string]any)
			exp, _ := headers["apns-expiration"].(string)
			delete(headers, "apns-expiration")
			if exp == "" {
				t.Error("apns block has no apns-expiration header")
			}
			if want := jsonOf(t, c.want); !reflect.DeepEqual(r.Message, want) {
				got, _ := json.Marshal(r.Message)
				wantJS, _ := json.Marshal(want)
				t.Errorf("message =\n%s\nwant\n%s", got, wantJS)
			}
		})
	}
}

func TestFCMUsesTokenURI(t *testing.T) {
	f := newFCM(t, nil)
	for range 3 {
		if err := f.s.Send(t.Context(), fcmToken, visible()); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	// The mock accepts only access tokens its own token endpoint issued: the
	// sends prove token_uri was used; one fetch proves the token is reused.
	if f.mock.TokenFetches() != 1 || f.mock.Count() != 3 {
		t.Fatalf("token fetches = %d, sends accepted = %d; want 1 and 3", f.mock.TokenFetches(), f.mock.Count())
	}
	if auth := f.mock.Requests()[0].Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") {
		t.Fatalf("Authorization = %q; want a Bearer access token", auth)
	}
}

func TestFCMErrors(t *testing.T) {
	f := newFCM(t, nil)
	for _, c := range []struct {
		name     string
		token    string
		answers  []dispatchtest.Answer
		want     error
		requests int
		status   int
		reason   string
	}{
		{"UNREGISTERED", fcmToken, []dispatchtest.Answer{{Reason: "UNREGISTERED"}}, ErrTokenDead, 1, 404, "UNREGISTERED"},
		{"SENDER_ID_MISMATCH", fcmToken, []dispatchtest.Answer{{Reason: "SENDER_ID_MISMATCH"}}, ErrTokenDead, 1, 403, "SENDER_ID_MISMATCH"},
		// The mock, like FCM, rejects a malformed token with INVALID_ARGUMENT
		// "The registration token is not a valid FCM registration token".
		{"invalid-token", "not a token!", nil, ErrTokenDead, 1, 400, "INVALID_ARGUMENT"},
		// An INVALID_ARGUMENT that is not about the token is not a dead token.
		{"INVALID_ARGUMENT", fcmToken, []dispatchtest.Answer{{Reason: "INVALID_ARGUMENT"}}, ErrUnavailable, 1, 400, "INVALID_ARGUMENT"},
		{"THIRD_PARTY_AUTH_ERROR", fcmToken, []dispatchtest.Answer{{Reason: "THIRD_PARTY_AUTH_ERROR"}}, ErrMisconfigured, 1, 401, "THIRD_PARTY_AUTH_ERROR"},
		{"PERMISSION_DENIED", fcmToken, []dispatchtest.Answer{{Reason: "PERMISSION_DENIED"}}, ErrCredentialsRejected, 1, 403, "PERMISSION_DENIED"},
		{"UNAUTHENTICATED", fcmToken, []dispatchtest.Answer{{Reason: "UNAUTHENTICATED"}}, ErrCredentialsRejected, 1, 401, "UNAUTHENTICATED"},
		{"503-then-200", fcmToken, []dispatchtest.Answer{{Status: 503}, {}}, nil, 2, 0, ""},
		{"QUOTA_EXCEEDED-then-200", fcmToken, []dispatchtest.Answer{{Reason: "QUOTA_EXCEEDED"}, {}}, nil, 2, 0, ""},
		// The SDK would retry 503 four more times by itself; MaxAttempts wins.
		{"503-always", fcmToken, []dispatchtest.Answer{{Status: 503}}, ErrUnavailable, 3, 503, ""},
		{"INTERNAL-always", fcmToken, []dispatchtest.Answer{{Reason: "INTERNAL"}}, ErrUnavailable, 3, 500, "INTERNAL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.mock.Reset()
			f.mock.Script(c.token, c.answers...)
			start := time.Now()
			err := f.s.Send(t.Context(), c.token, visible())
			if time.Since(start) > time.Second {
				t.Errorf("Send took %v with zero retry delay; the SDK's own retries leaked through", time.Since(start))
			}
			if got := len(f.mock.Requests()); got != c.requests {
				t.Errorf("mock saw %d sends; want %d", got, c.requests)
			}
			if c.want == nil {
				if err != nil || f.mock.Count() != 1 {
					t.Fatalf("Send = %v, mock accepted %d; want delivered once", err, f.mock.Count())
				}
				return
			}
			var pe *ProviderError
			if !errors.Is(err, c.want) || !errors.As(err, &pe) {
				t.Fatalf("Send = %v; want a *ProviderError matching %v", err, c.want)
			}
			if pe.Provider != TypeFCM || pe.Status != c.status || pe.Reason != c.reason || pe.Attempts != c.requests {
				t.Fatalf("ProviderError = %+v; want fcm, %d %q, %d attempts", pe, c.status, c.reason, c.requests)
			}
		})
	}
}

func TestFCMRetryAfter(t *testing.T) {
	var rec delays
	f := newFCM(t, func(c *Config, _ *dispatchtest.FCM) { c.RetryDelay = rec.fn })
	f.mock.Script(fcmToken, dispatchtest.Answer{Reason: "QUOTA_EXCEEDED", RetryAfter: "30"}, dispatchtest.Answer{})
	if err := f.s.Send(t.Context(), fcmToken, visible()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := rec.get(); len(got) != 1 || got[0] != (delayCall{1, 30 * time.Second}) {
		t.Fatalf("RetryDelay calls = %v; want [{1 30s}]", got)
	}
}

func TestFCMOversize(t *testing.T) {
	f := newFCM(t, nil)
	n := &Notification{Kind: KindRaw, Data: []Field{{"message", strings.Repeat("m", MaxPayloadSize)}}}
	if err := f.s.Send(t.Context(), fcmToken, n); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("Send of an oversize payload = %v; want ErrPayloadTooLarge", err)
	}
	if len(f.mock.Requests()) != 0 || f.mock.Count() != 0 {
		t.Fatalf("the mock saw %d sends; want none", len(f.mock.Requests()))
	}
	// At the limit, by FCM's count, it goes through.
	n.Data[0].Value = strings.Repeat("m", MaxPayloadSize-len("message"))
	if err := f.s.Send(t.Context(), fcmToken, n); err != nil {
		t.Fatalf("Send of a payload at the limit: %v", err)
	}
}

func TestFCMUntrustedServiceAccount(t *testing.T) {
	var logs testkit.SyncBuffer
	f := newFCM(t, func(c *Config, m *dispatchtest.FCM) {
		// A key the mock never issued, pointed at the mock's token endpoint.
		other := dispatchtest.StartFCM(t).ServiceAccountJSON(testProject)
		c.FCMCredentials = []byte(strings.Replace(string(other), `"token_uri":"`, `"token_uri":"`+m.TokenURL()+`","x":"`, 1))
		c.Logger = slogTo(&logs)
	})
	err := f.s.Send(t.Context(), fcmToken, visible())
	var pe *ProviderError
	if !errors.Is(err, ErrMisconfigured) || !errors.As(err, &pe) || pe.Attempts != 1 || pe.Cause == nil {
		t.Fatalf("Send with an untrusted service account = %v; want ErrMisconfigured after 1 attempt", err)
	}
	if len(f.mock.Requests()) != 0 {
		t.Fatal("a send reached the mock without an access token")
	}
	if !strings.Contains(logs.String(), "provider=fcm") {
		t.Fatalf("the rejection was not logged: %q", logs.String())
	}
}

func TestFCMHangingProvider(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newFCM(t, func(c *Config, _ *dispatchtest.FCM) { c.Timeout = timeout })
	// Fetch the access token first, so only the send hangs.
	if err := f.s.Send(t.Context(), fcmToken, visible()); err != nil {
		t.Fatal(err)
	}
	f.mock.Script(fcmToken, dispatchtest.Answer{Delay: 10 * time.Second})
	start := time.Now()
	err := f.s.Send(t.Context(), fcmToken, visible())
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Send to a hanging provider = %v; want ErrUnavailable", err)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Fatalf("Send took %v; want about the timeout %v", elapsed, timeout)
	}
}
