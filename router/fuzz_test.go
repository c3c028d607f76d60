package router

import (
	"encoding/base64"
	"testing"
)

// FuzzDecodeBlob: a legacy cleartext blob never panics the decoder, and it
// yields either a notification with a title or body, or a reason, never both.
func FuzzDecodeBlob(f *testing.F) {
	for _, seed := range []string{
		base64.StdEncoding.EncodeToString([]byte(`{"title":"Hi","body":"there","image":"https://x/y.png","url":"https://x"}`)),
		base64.StdEncoding.EncodeToString([]byte(`{"title":1}`)),
		base64.StdEncoding.EncodeToString([]byte(`[]`)),
		"%%%", "", "e30=",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		v, why := decodeBlob(blob)
		if (why == "") == (v.Title == "" && v.Body == "") {
			t.Fatalf("decodeBlob(%q) = %+v, %q: want a title/body or a reason, not both or neither", blob, v, why)
		}
	})
}

// FuzzRegisterParse: a registration body never panics the parser, and gives
// either a client or field errors, never both; an accepted client's id and
// token are within the contract's bounds.
func FuzzRegisterParse(f *testing.F) {
	for _, seed := range []string{
		`{"client_id":"did:key:z6Mk","type":"apns","token":"abcd","always_raw":true}`,
		`{"client_id":1,"type":null}`,
		`{"client_id":"a\u0000","type":"NOOP","token":"t"}`,
		`[`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseRegister(body, nil)
		if err != nil {
			if c.ID != "" || c.Token != "" {
				t.Fatalf("parseRegister(%q) returned a client and an error", body)
			}
			return
		}
		if checkClientID(c.ID) != "" || c.Token == "" || len(c.Token) > maxTokenSize || checkText(c.Token) != "" || !knownTypes[c.Type] {
			t.Fatalf("parseRegister(%q) accepted %+v", body, c)
		}
	})
}
