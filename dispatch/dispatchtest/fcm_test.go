package dispatchtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"push-server/dispatch/dispatchtest"
)

const (
	testProject  = "wallet-project"
	testFCMToken = "fcm-token:APA91bH_test-1"
)

// googleErr is Google's error JSON.
type googleErr struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
			Reason    string `json:"reason"`
		} `json:"details"`
	} `json:"error"`
}

// fcmErrorCode is what the Firebase Admin SDK reads: the errorCode of the
// FcmError detail.
func (e googleErr) fcmErrorCode() string {
	for _, d := range e.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" {
			return d.ErrorCode
		}
	}
	return ""
}

type fcmReply struct {
	status int
	name   string
	err    googleErr
	header http.Header
}

// fcmSend posts body to project's messages:send with accessToken ("" sends
// no Authorization).
func fcmSend(t *testing.T, m *dispatchtest.FCM, project, accessToken, body string) fcmReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.URL()+"/v1/projects/"+project+"/messages:send", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := fcmReply{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == 200 {
		var ok struct{ Name string }
		if err := json.Unmarshal(b, &ok); err != nil {
			t.Fatalf("success body %q: %v", b, err)
		}
		r.name = ok.Name
		return r
	}
	if err := json.Unmarshal(b, &r.err); err != nil || r.err.Error.Code != resp.StatusCode || r.err.Error.Status == "" {
		t.Fatalf("error body %q is not Google's error JSON for status %d", b, resp.StatusCode)
	}
	return r
}

// accessToken makes a service account for project and fetches a token for it.
func accessToken(t *testing.T, m *dispatchtest.FCM, project string) string {
	t.Helper()
	sa := parseServiceAccount(t, m.ServiceAccountJSON(project))
	status, out := fetchToken(t, m.TokenURL(), jwtBearer, sa.assertion(t, nil))
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" {
		t.Fatalf("token endpoint: %d %v", status, out)
	}
	return tok
}

func message(token string) string {
	return `{"message":{"token":"` + token + `","data":{"topic":"t","blob":"b"},"android":{"priority":"high","ttl":"3600s"}}}`
}

func TestFCMTokenEndpoint(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	if m.TokenURL() != m.URL()+"/token" {
		t.Fatalf("TokenURL() = %q, want URL()+/token", m.TokenURL())
	}
	saJSON := m.ServiceAccountJSON(testProject)
	sa := parseServiceAccount(t, saJSON)
	if sa.Type != "service_account" || sa.ProjectID != testProject || sa.TokenURI != m.TokenURL() ||
		!strings.HasSuffix(sa.ClientEmail, "@"+testProject+".iam.gserviceaccount.com") || sa.PrivateKeyID == "" {
		t.Fatalf("service account JSON: %s", saJSON)
	}

	status, out := fetchToken(t, m.TokenURL(), jwtBearer, sa.assertion(t, nil))
	if status != 200 || out["token_type"] != "Bearer" || out["expires_in"] != 3600.0 || out["access_token"] == "" {
		t.Fatalf("good assertion: %d %v", status, out)
	}

	f := func(name, grant, assertion, wantErr string) {
		t.Helper()
		status, out := fetchToken(t, m.TokenURL(), grant, assertion)
		if status != 400 || out["error"] != wantErr {
			t.Errorf("%s: %d %v, want 400 %s", name, status, out, wantErr)
		}
	}
	mut := func(fn func(h, c map[string]any)) string { return sa.assertion(t, fn) }
	f("wrong grant type", "client_credentials", sa.assertion(t, nil), "unsupported_grant_type")
	f("garbage", jwtBearer, "a.b.c", "invalid_grant")
	f("wrong audience", jwtBearer, mut(func(_, c map[string]any) { c["aud"] = "https://oauth2.googleapis.com/token" }), "invalid_grant")
	f("unknown issuer", jwtBearer, mut(func(_, c map[string]any) { c["iss"] = "someone@else.iam.gserviceaccount.com" }), "invalid_grant")
	f("expired", jwtBearer, mut(func(_, c map[string]any) { c["iat"] = c["iat"].(int64) - 7200; c["exp"] = c["iat"].(int64) + 3600 }), "invalid_grant")
	f("no scope", jwtBearer, mut(func(_, c map[string]any) { delete(c, "scope") }), "invalid_grant")
	f("HS256", jwtBearer, mut(func(h, _ map[string]any) { h["alg"] = "HS256" }), "invalid_grant")
	other := parseServiceAccount(t, m.ServiceAccountJSON(testProject))
	other.ClientEmail = sa.ClientEmail // signed by a key the account does not own
	other.PrivateKeyID = sa.PrivateKeyID
	f("wrong key", jwtBearer, other.assertion(t, nil), "invalid_grant")

	if n := m.TokenFetches(); n != 1 {
		t.Fatalf("TokenFetches() = %d, want 1 (failures are not fetches)", n)
	}
}

func TestFCMSend(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	tok := accessToken(t, m, testProject)

	r := fcmSend(t, m, testProject, tok, message(testFCMToken))
	if r.status != 200 || !regexp.MustCompile(`^projects/`+testProject+`/messages/\S+$`).MatchString(r.name) {
		t.Fatalf("send: %d name %q", r.status, r.name)
	}
	dry := `{"validate_only":true,` + message(testFCMToken)[1:]
	if r := fcmSend(t, m, testProject, tok, dry); r.status != 200 {
		t.Fatalf("validate_only send: %d %+v", r.status, r.err)
	}
	if m.Count() != 1 {
		t.Fatalf("Count() = %d, want 1 (a dry run is not a delivery)", m.Count())
	}

	reqs := m.Requests()
	if len(reqs) != 2 {
		t.Fatalf("recorded %d requests, want 2", len(reqs))
	}
	got := reqs[0]
	data, _ := got.Message["data"].(map[string]any)
	if got.Path != "/v1/projects/"+testProject+"/messages:send" || got.ProjectID != testProject ||
		got.Token != testFCMToken || got.Status != 200 || got.ValidateOnly || data["blob"] != "b" ||
		!bytes.Equal(got.Body, []byte(message(testFCMToken))) || got.Header.Get("Authorization") != "Bearer "+tok {
		t.Fatalf("recorded %+v", got)
	}
	if !reqs[1].ValidateOnly {
		t.Fatal("the dry run was not recorded as ValidateOnly")
	}
}

func TestFCMRejectsLikeGoogle(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	tok := accessToken(t, m, testProject)

	f := func(name, project, accessToken, body string, status int, canonical, errorCode string) {
		t.Helper()
		r := fcmSend(t, m, project, accessToken, body)
		if r.status != status || r.err.Error.Status != canonical || r.err.fcmErrorCode() != errorCode {
			t.Errorf("%s: got %d %s/%q (%s), want %d %s/%q", name, r.status, r.err.Error.Status,
				r.err.fcmErrorCode(), r.err.Error.Message, status, canonical, errorCode)
		}
	}
	f("no access token", testProject, "", message(testFCMToken), 401, "UNAUTHENTICATED", "")
	f("unknown access token", testProject, "ya29.forged", message(testFCMToken), 401, "UNAUTHENTICATED", "")
	f("other project", "other-project", tok, message(testFCMToken), 403, "PERMISSION_DENIED", "")

	invalid := func(name, body string) {
		t.Helper()
		f(name, testProject, tok, body, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
	}
	invalid("not JSON", `{"message":`)
	invalid("no message", `{}`)
	invalid("unknown top-level field", `{"msg":{"token":"a"}}`)
	invalid("unknown message field", `{"message":{"token":"a","priority":"high"}}`)
	invalid("no target", `{"message":{"data":{"a":"b"}}}`)
	invalid("two targets", `{"message":{"token":"a","topic":"news"}}`)
	invalid("empty token", `{"message":{"token":""}}`)
	invalid("token with spaces", `{"message":{"token":"a b"}}`)
	invalid("number in data", `{"message":{"token":"a","data":{"tag":1100}}}`)
	invalid("bool in android.data", `{"message":{"token":"a","android":{"data":{"x":true}}}}`)
	invalid("bad android priority", `{"message":{"token":"a","android":{"priority":"urgent"}}}`)
	invalid("bad ttl", `{"message":{"token":"a","android":{"ttl":3600}}}`)

	big := func(n int) string { // data whose keys and values are n bytes
		return `{"message":{"token":"a","data":{"k":"` + strings.Repeat("x", n-1) + `"}}}`
	}
	invalid("4097 bytes of data", big(4097))
	f("4096 bytes of data", testProject, tok, big(4096), 200, "", "")

	if m.Count() != 1 {
		t.Fatalf("Count() = %d, want 1", m.Count())
	}
}

func TestFCMScript(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	tok := accessToken(t, m, testProject)
	m.Script(testFCMToken,
		dispatchtest.Answer{Reason: "UNAVAILABLE", RetryAfter: "1"},
		dispatchtest.Answer{Status: 429, Reason: "QUOTA_EXCEEDED"},
		dispatchtest.Answer{Reason: "UNREGISTERED"},
	)
	want := []struct {
		status             int
		canonical, errCode string
	}{
		{503, "UNAVAILABLE", "UNAVAILABLE"},
		{429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"},
		{404, "NOT_FOUND", "UNREGISTERED"},
		{404, "NOT_FOUND", "UNREGISTERED"},
	}
	for i, w := range want {
		r := fcmSend(t, m, testProject, tok, message(testFCMToken))
		if r.status != w.status || r.err.Error.Status != w.canonical || r.err.fcmErrorCode() != w.errCode {
			t.Fatalf("send %d: got %d %s/%s, want %d %s/%s", i, r.status, r.err.Error.Status, r.err.fcmErrorCode(),
				w.status, w.canonical, w.errCode)
		}
		if ra := r.header.Get("Retry-After"); (i == 0) != (ra == "1") {
			t.Fatalf("send %d: Retry-After %q", i, ra)
		}
	}
	if r := fcmSend(t, m, testProject, tok, message("other-token")); r.status != 200 {
		t.Fatalf("unscripted token: %d", r.status)
	}
	// Authentication comes before the script.
	if r := fcmSend(t, m, testProject, "", message(testFCMToken)); r.status != 401 {
		t.Fatalf("scripted token without access token: %d, want 401", r.status)
	}
	m.Script(testFCMToken, dispatchtest.Answer{Reason: "SENDER_ID_MISMATCH"})
	if r := fcmSend(t, m, testProject, tok, message(testFCMToken)); r.status != 403 || r.err.fcmErrorCode() != "SENDER_ID_MISMATCH" {
		t.Fatalf("SENDER_ID_MISMATCH: got %d %+v", r.status, r.err)
	}

	if m.Count() != 1 {
		t.Fatalf("Count() = %d, want 1", m.Count())
	}
	m.Reset()
	if m.Count() != 0 || len(m.Requests()) != 0 || m.TokenFetches() != 0 {
		t.Fatalf("after Reset: Count %d, %d requests, %d fetches", m.Count(), len(m.Requests()), m.TokenFetches())
	}
	if r := fcmSend(t, m, testProject, tok, message(testFCMToken)); r.status != 200 {
		t.Fatalf("after Reset: the script is gone and the access token still valid; got %d", r.status)
	}
}
