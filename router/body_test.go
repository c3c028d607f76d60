package router

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestRegisterRefusesInvalidUTF8: an id, a token or a type that is not
// valid UTF-8, as raw bytes or as an unpaired surrogate escape, is refused
// naming the field; before, each read as U+FFFD, so "a\ud800" and
// "a\udbff" were one token and one client retired the other.
func TestRegisterRefusesInvalidUTF8(t *testing.T) {
	for body, field := range map[string]string{
		`{"client_id":"c1","type":"noop","token":"a\ud800"}`:           "token",
		`{"client_id":"c1","type":"noop","token":"a\udbff"}`:           "token",
		`{"client_id":"c1","type":"noop","token":"a\udc00b"}`:          "token",
		`{"client_id":"c1","type":"noop","token":"\ud800\u0041"}`:      "token",
		"{\"client_id\":\"c1\",\"type\":\"noop\",\"token\":\"a\xff\"}": "token",
		`{"client_id":"c\ud800","type":"noop","token":"t"}`:            "client_id",
		"{\"client_id\":\"c\xc3\",\"type\":\"noop\",\"token\":\"t\"}":  "client_id",
		`{"client_id":"c1","type":"noop\udfff","token":"t"}`:           "type",
	} {
		_, err := parseRegister([]byte(body), nil)
		rerr, ok := err.(*requestError)
		if !ok || rerr.status() != 400 || len(rerr.fields) != 1 || rerr.fields[0].Field != field {
			t.Errorf("parseRegister(%q) = %v; want 400 naming %s", body, err, field)
		}
	}
	// A valid pair and other escapes still read as the characters they are.
	c, err := parseRegister([]byte(`{"client_id":"c\u00e9","type":"noop","token":"t\ud83d\ude00\/x"}`), nil)
	if err != nil || c.ID != "cé" || c.Token != "t😀/x" {
		t.Fatalf("parseRegister(escapes) = %+v, %v", c, err)
	}
}

// TestRegisterRefusesDuplicateMembers: which of two tokens (or ids) a
// registration means must not depend on the JSON reader.
func TestRegisterRefusesDuplicateMembers(t *testing.T) {
	for body, field := range map[string]string{
		`{"client_id":"c1","type":"noop","token":"a","token":"b"}`:               "token",
		`{"client_id":"c1","client_id":"c2","type":"noop","token":"a"}`:          "client_id",
		`{"client_id":"c1","type":"noop","token":"a","TOKEN":"b"}`:               "TOKEN",
		`{"client_id":"c1","type":"noop","type":"apns","token":"a"}`:             "type",
		`{"client_id":"c1","type":"noop","token":"a","x":{"y":1,"y":2}}`:         "x.y",
		`{"client_id":"c1","type":"noop","token":"t\u006fken","t\u006fken":"b"}`: "token",
	} {
		_, err := parseRegister([]byte(body), nil)
		rerr, ok := err.(*requestError)
		if !ok || rerr.status() != 400 || len(rerr.fields) != 1 || rerr.fields[0].Field != field ||
			!strings.Contains(rerr.fields[0].Description, "more than once") {
			t.Errorf("parseRegister(%s) = %v; want 400 naming %s", body, err, field)
		}
	}
}

// TestRegisterInvalidUTF8OverHTTP: the same refusal as a wallet sees it,
// and the first client keeps its registration.
func TestRegisterInvalidUTF8OverHTTP(t *testing.T) {
	h := newHarness(t, options{})
	h.do("POST", "/clients", `{"client_id":"c1","type":"noop","token":"a\ud800"}`, nil).expectError(t, 400, "", "token")
	h.do("POST", "/clients", `{"client_id":"c1","type":"noop","token":"a","token":"b"}`, nil).expectError(t, 400, "", "token")
	h.register("c1", "noop", "tok", false)
	h.send("c1", `{"topic":"t","tag":4000,"message":"m"}`).expectOK(t, 202)
}

// FuzzRegisterAgrees holds parseRegister to encoding/json as FuzzSendParse
// holds the send parser: a registration it accepts reads the same id, type
// and token with encoding/json, so the client stored is the one the wallet
// sent (make fuzz; make test runs the seeds).
func FuzzRegisterAgrees(f *testing.F) {
	for _, seed := range []string{
		`{"client_id":"did:key:z6Mk","type":"APNS","token":"abcd","always_raw":true}`,
		`{"client_id":"c\u00e9","type":"noop","token":"t\ud83d\ude00"}`,
		`{"client_id":"c","type":"noop","token":"a\ud800"}`,
		`{"client_id":"c","type":"noop","token":"a","token":"b"}`,
		`{"client_id":"c","type":"noop","TOKEN":"b"}`,
		"{\"client_id\":\"c\",\"type\":\"noop\",\"to\u212aen\":\"kelvin\"}",
		"{\"client_id\":\"c\",\"type\":\"noop\",\"token\":\"t\",\"x\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseRegister(body, nil)
		if err != nil {
			return
		}
		var ref struct {
			ClientID  *string `json:"client_id"`
			Type      *string `json:"type"`
			Token     *string `json:"token"`
			AlwaysRaw *bool   `json:"always_raw"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("parseRegister(%q) accepted %+v; encoding/json refuses it: %v", body, c, err)
		}
		if ref.ClientID == nil || ref.Type == nil || ref.Token == nil ||
			strings.TrimPrefix(*ref.ClientID, didKeyPrefix) != c.ID || strings.ToLower(*ref.Type) != c.Type ||
			*ref.Token != c.Token || (ref.AlwaysRaw != nil && *ref.AlwaysRaw) != c.AlwaysRaw {
			t.Fatalf("parseRegister(%q) = %+v; encoding/json reads %s %s %s %v", body, c, show(ref.ClientID), show(ref.Type), show(ref.Token), show(ref.AlwaysRaw))
		}
	})
}

// TestLegacyBlobRefusesDuplicateMembers: the title shown on the device is
// the one the relay signed, not the last of two.
func TestLegacyBlobRefusesDuplicateMembers(t *testing.T) {
	blob := base64.StdEncoding.EncodeToString([]byte(`{"title":"Pay 1 USD","body":"ok","title":"Pay 1000 USD"}`))
	v, why := decodeBlob([]byte(blob))
	if why == "" || !strings.Contains(why, `"title"`) || !strings.Contains(why, "more than once") {
		t.Fatalf("decodeBlob(duplicate title) = %+v, %q; want refused naming title", v, why)
	}
}
