package dispatchtest

import (
	"encoding/json"
	"testing"
)

func TestHasAPSDict(t *testing.T) {
	f := func(body string, want bool) {
		t.Helper()
		if got := hasAPSDict([]byte(body)); got != want {
			t.Fatalf("hasAPSDict(%q) = %v, want %v", body, got, want)
		}
	}
	f(`{"aps":{}}`, true)
	f(` { "x" : [1, {"aps":2}, "}"] , "y":"a\"aps\":{" ,"aps" : {"alert":"hi"} } `, true)
	f(`{"n":-1.5e3,"t":true,"z":null,"aps":{"content-available":1}}`, true)
	f(`{"nested":{"aps":{}}}`, false)
	f(`{"aps":[]}`, false)
	f(`{"aps":null}`, false)
	f(`{"aps":"{"}`, false)
	f(`{}`, false)
	f(`[{"aps":{}}]`, false)
	f(`"aps"`, false)
	f(`{"aps":{}`, false)
	f(``, false)
	f(`{"aps":1,"aps":{}}`, true) // the last member wins, as in encoding/json
	f(`{"aps":{},"aps":1}`, false)
	f(`{"\u0061ps":{}}`, true)
}

// FuzzHasAPSDict checks the hand-written walker against encoding/json.
func FuzzHasAPSDict(f *testing.F) {
	for _, s := range []string{`{"aps":{}}`, `{"a":[{"aps":{}}],"aps":1}`, `{"x":"\\"","aps":{"b":[]}}`, `[]`, `{"aps":{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p map[string]json.RawMessage
		want := json.Unmarshal(body, &p) == nil && p != nil && len(p["aps"]) > 0 && p["aps"][0] == '{'
		if got := hasAPSDict(body); got != want {
			t.Fatalf("hasAPSDict(%q) = %v, encoding/json says %v", body, got, want)
		}
	})
}
