package router

import (
	"encoding/json"
	"testing"

	"push-server/cache"
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
