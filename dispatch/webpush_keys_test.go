package dispatch

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseWebPushOrigins(t *testing.T) {
	o, err := ParseWebPushOrigins(" push.example.com , https://Push2.example.com:8443/, http://127.0.0.1:9000,http://localhost:80,, ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:9000", "http://localhost", "https://push.example.com", "https://push2.example.com:8443"}
	if got := o.Origins(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Origins = %v, want %v", got, want)
	}
	for _, bad := range []string{
		"http://push.example.com",       // http off loopback
		"https://push.example.com/path", // a path
		"https://u:p@push.example.com",  // user info
		"https://push.example.com?q=1",  // query
		"ftp://push.example.com",
		"https://",
	} {
		if _, err := ParseWebPushOrigins(bad); err == nil {
			t.Errorf("ParseWebPushOrigins(%q) accepted it", bad)
		}
	}
}

func TestWebPushOriginsCheck(t *testing.T) {
	o, err := ParseWebPushOrigins("push.example.com,http://127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{
		"https://fcm.googleapis.com/fcm/send/abc:def",
		"https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
		"https://web.push.apple.com/QGuQ",
		"https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
		"https://FCM.googleapis.com:443/fcm/send/x",
		"https://push.example.com/p/1",
		"http://127.0.0.1:9000/push/1",
	} {
		if err := o.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
		if err := (*WebPushOrigins)(nil).Check(ok); err != nil && !strings.Contains(ok, "example") && !strings.Contains(ok, "127.0.0.1") {
			t.Errorf("nil list: Check(%q) = %v; the browsers' services are always allowed", ok, err)
		}
	}
	for _, bad := range []string{
		"http://fcm.googleapis.com/fcm/send/secretpath", // not https
		"https://fcm.googleapis.com:8443/fcm/send/secretpath",
		"https://notify.windows.com/secretpath",          // the domain itself is not a push host
		"https://evilnotify.windows.com/secretpath",      // not under the domain
		"https://fcm.googleapis.com.evil.com/secretpath", // look-alike
		"https://user@fcm.googleapis.com/secretpath",     // user info
		"https://fcm.googleapis.com/secretpath#frag",     // fragment
		"https://push.example.com:8443/secretpath",       // listed host, other port
		"http://127.0.0.1:9001/secretpath",               // other loopback port
		"https://169.254.169.254/secretpath",             // metadata service
		"/relative/secretpath",
	} {
		err := o.Check(bad)
		if !errors.Is(err, ErrEndpointNotAllowed) {
			t.Errorf("Check(%q) = %v, want ErrEndpointNotAllowed", bad, err)
		} else if strings.Contains(err.Error(), "secretpath") {
			t.Errorf("Check(%q) quotes the path: %v", bad, err)
		}
	}
}

// testSubscription returns a valid subscription's JSON for endpoint, with
// edit applied to its keys first.
func testSubscription(t *testing.T, endpoint string, edit func(p256dh, auth *string)) string {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	authb := make([]byte, 16)
	_, _ = rand.Read(authb)
	p, a := base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(authb)
	if edit != nil {
		edit(&p, &a)
	}
	js, _ := json.Marshal(map[string]any{"endpoint": endpoint, "expirationTime": nil, "keys": map[string]string{"p256dh": p, "auth": a}})
	return string(js)
}

func TestCheckWebPushSubscription(t *testing.T) {
	const ep = "https://fcm.googleapis.com/fcm/send/secretpath"
	if err := CheckWebPushSubscription(testSubscription(t, ep, nil), nil); err != nil {
		t.Fatalf("a browser's subscription: %v", err)
	}
	padded := testSubscription(t, ep, func(p, a *string) { *p += "="; *a += "==" })
	if err := CheckWebPushSubscription(padded, nil); err != nil {
		t.Fatalf("padded base64url keys: %v", err)
	}
	// A point off the curve: a valid encoding of (1, 1).
	off := make([]byte, 65)
	off[0], off[32], off[64] = 4, 1, 1
	for name, token := range map[string]string{
		"not JSON":        "fcm-token",
		"no endpoint":     `{"keys":{"p256dh":"x","auth":"y"}}`,
		"endpoint denied": testSubscription(t, "https://evil.example.com/secretpath", nil),
		"p256dh short":    testSubscription(t, ep, func(p, a *string) { *p = (*p)[:20] }),
		"p256dh off curve": testSubscription(t, ep, func(p, a *string) {
			*p = base64.RawURLEncoding.EncodeToString(off)
		}),
		"p256dh compressed": testSubscription(t, ep, func(p, a *string) {
			*p = base64.RawURLEncoding.EncodeToString(append([]byte{2}, make([]byte, 32)...))
		}),
		"auth 15 bytes": testSubscription(t, ep, func(p, a *string) { *a = base64.RawURLEncoding.EncodeToString(make([]byte, 15)) }),
		"auth not b64":  testSubscription(t, ep, func(p, a *string) { *a = "!!!!" }),
		"too long":      testSubscription(t, ep+strings.Repeat("a", maxSubscriptionSize), nil),
	} {
		err := CheckWebPushSubscription(token, nil)
		if !errors.Is(err, ErrBadSubscription) {
			t.Errorf("%s: %v, want ErrBadSubscription", name, err)
			continue
		}
		if strings.Contains(err.Error(), "secretpath") {
			t.Errorf("%s: the error quotes the endpoint's path: %v", name, err)
		}
		if (name == "endpoint denied") != errors.Is(err, ErrEndpointNotAllowed) {
			t.Errorf("%s: ErrEndpointNotAllowed is %v", name, errors.Is(err, ErrEndpointNotAllowed))
		}
	}
}

func TestCheckVAPID(t *testing.T) {
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CheckVAPID(priv, "mailto:ops@example.com"); err != nil || got != pub {
		t.Fatalf("CheckVAPID = %q, %v; want the generated public key %q", got, err, pub)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(priv)
	if got, err := CheckVAPID(base64.URLEncoding.EncodeToString(raw), "https://example.com/contact"); err != nil || got != pub {
		t.Fatalf("padded key, https subject: %q, %v", got, err)
	}
	order := "_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE" // the group order n: not a valid scalar
	for _, tc := range []struct{ key, subject, part string }{
		{"", "mailto:a@b", PartVAPIDPrivateKey},
		{priv[:20], "mailto:a@b", PartVAPIDPrivateKey},
		{base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "mailto:a@b", PartVAPIDPrivateKey}, // zero
		{order, "mailto:a@b", PartVAPIDPrivateKey},
		{priv, "", PartVAPIDSubject},
		{priv, "ops@example.com", PartVAPIDSubject},
		{priv, "mailto:nobody", PartVAPIDSubject},
		{priv, "http://example.com", PartVAPIDSubject},
		{priv, "mailto:a b@example.com", PartVAPIDSubject},
		{priv, "https://" + strings.Repeat("a", maxVAPIDSubject), PartVAPIDSubject},
	} {
		_, err := CheckVAPID(tc.key, tc.subject)
		var ce *CredentialError
		if !errors.As(err, &ce) || ce.Part != tc.part {
			t.Errorf("CheckVAPID(%q, %q) = %v, want a CredentialError for %s", tc.key, tc.subject, err, tc.part)
			continue
		}
		if len(tc.key) > 8 && strings.Contains(err.Error(), tc.key) {
			t.Errorf("the error quotes the private key: %v", err)
		}
	}
}

func TestConfigValidateVAPID(t *testing.T) {
	priv, _, _ := GenerateVAPIDKeys()
	for _, tc := range []struct {
		cfg  Config
		part string
	}{
		{Config{Credentials: Credentials{VAPIDPrivateKey: "short", VAPIDSubject: "mailto:a@b"}}, "VAPID_PRIVATE_KEY"},
		{Config{Credentials: Credentials{VAPIDPrivateKey: priv}}, "VAPID_SUBJECT"},
	} {
		var ce *CredentialError
		if _, err := tc.cfg.Parse(); !errors.As(err, &ce) || ce.Part != tc.part {
			t.Errorf("Parse = %v, want a CredentialError for %s", err, tc.part)
		}
	}
	if _, err := (&Config{WebPushTTL: -1}).Parse(); err == nil || !strings.HasPrefix(err.Error(), "WEBPUSH_TTL") {
		t.Errorf("negative WEBPUSH_TTL: %v", err)
	}
	ok := Config{Credentials: Credentials{VAPIDPrivateKey: priv, VAPIDSubject: "mailto:a@b"}}
	if _, err := ok.Parse(); err != nil {
		t.Errorf("valid VAPID settings: %v", err)
	}
}
