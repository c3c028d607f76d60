package router

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseWithStdlib is the reference the scanner is held to: what
// encoding/json makes of the same body. One deliberate difference: the
// scanner refuses invalid UTF-8 (RFC 8259 §8.1), which encoding/json
// silently replaces with U+FFFD, changing the message's bytes.
func parseWithStdlib(body []byte) (map[string]any, bool) {
	if !utf8.Valid(body) || bytes.Count(body, []byte("{"))+bytes.Count(body, []byte("[")) > maxDepth {
		return nil, false // the second: possibly deeper than the scanner's bound
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func TestSendParseAgreesWithEncodingJSON(t *testing.T) {
	f := func(body string) {
		t.Helper()
		r := acquireSendRequest()
		defer releaseSendRequest(r)
		rerr := r.parse([]byte(body))
		want, valid := parseWithStdlib([]byte(body))
		malformed := rerr != nil && len(rerr.fields) == 1 && rerr.fields[0].Field == "body"
		if valid == malformed {
			t.Fatalf("parse(%q): malformed=%v (%v); encoding/json valid=%v", body, malformed, rerr, valid)
		}
		if !valid || rerr != nil {
			return
		}
		check := func(name string, got []byte, has bool) {
			t.Helper()
			w, ok := want[name].(string)
			if ok != has || w != string(got) {
				t.Fatalf("parse(%q).%s = %q (%v); encoding/json says %q (%v)", body, name, got, has, w, ok)
			}
		}
		check("topic", r.topic, r.hasTopic)
		check("message", r.message, r.hasMessage)
		check("id", r.id, r.hasID)
		if tag, ok := want["tag"].(float64); ok != r.hasTag || uint64(tag) != r.tag {
			t.Fatalf("parse(%q).tag = %d (%v); encoding/json says %v", body, r.tag, r.hasTag, want["tag"])
		}
	}
	f(`{"topic":"t","tag":1100,"message":"m"}`)
	f(` { "topic" : "t" , "tag" : 0 , "message" : "" } `)
	f(`{"topic":"a\"b\\c\/d\b\f\n\r\tx","message":"\u00e9\u4e2d\ud83d\ude00"}`)
	f(`{"message":"\ud800"}`) // unpaired surrogate: U+FFFD, as encoding/json
	f(`{"message":"é中😀"}`)
	f(`{"topic":"t","extra":{"a":[1,2,{"b":null}],"c":true,"d":false,"e":-1.5e+10},"message":"m"}`)
	f(`{"topic":"first","topic":"second"}`) // the last duplicate wins
	f(`{"id":"x","payload":{"topic":"t","flags":1,"blob":"b","more":[]}}`)
	f(`{"topic":null,"message":null,"tag":null,"payload":null}`)
	f(`{}`)
	for _, bad := range []string{
		``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `{"topic"}`, `{"topic":}`, `{"topic":"t",}`, `{"topic":"t"}x`,
		`{"topic":"t" "message":"m"}`, `{"topic":'t'}`, `{"topic":"t\x"}`, `{"topic":"\u12"}`, "{\"topic\":\"a\x01\"}",
		`{"tag":01}`, `{"tag":1.}`, `{"tag":.5}`, `{"tag":1e}`, `{"tag":-}`, `{"a":tru}`, `{"a":nul}`, `{"a":[1,]}`,
		`{"a":[1 2]}`, "{\"topic\":\"\xff\"}", `{"topic":"t"`,
		"{}\x00", // found by FuzzSendParse: a NUL after the object was taken for the end

	} {
		f(bad)
	}
}

func TestSendParseBoundsNesting(t *testing.T) {
	r := acquireSendRequest()
	defer releaseSendRequest(r)
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	if rerr := r.parse([]byte(deep)); rerr == nil || !strings.Contains(rerr.fields[0].Description, "nested too deeply") {
		t.Fatalf("parse(40 levels) = %v; want nested too deeply", rerr)
	}
}

func TestSendParseReportsEveryBadMember(t *testing.T) {
	r := acquireSendRequest()
	defer releaseSendRequest(r)
	rerr := r.parse([]byte(`{"topic":1,"tag":"1100","message":[],"id":{},"payload":{"topic":true,"flags":-1,"blob":2}}`))
	var got []string
	for _, f := range rerr.fields {
		got = append(got, f.Field)
	}
	want := "topic,tag,message,id,payload.topic,payload.flags,payload.blob"
	if strings.Join(got, ",") != want {
		t.Fatalf("fields %v; want %s", got, want)
	}
}

func TestParseUint(t *testing.T) {
	f := func(in string, want uint64, ok bool) {
		t.Helper()
		got, gotOK := parseUint([]byte(in))
		if got != want || gotOK != ok {
			t.Fatalf("parseUint(%q) = %d, %v; want %d, %v", in, got, gotOK, want, ok)
		}
	}
	f("0", 0, true)
	f("1108", 1108, true)
	f("18446744073709551615", 1<<64-1, true)
	f("18446744073709551616", 0, false)
	f("-1", 0, false)
	f("1.5", 0, false)
	f("1e3", 0, false)
	f("", 0, false)
}

// FuzzSendParse: never panic; either a request or errors, never both; and
// malformed exactly when encoding/json says so.
func FuzzSendParse(f *testing.F) {
	for _, seed := range []string{
		`{"topic":"t","tag":1100,"message":"m"}`,
		`{"id":"x","payload":{"topic":"t","flags":1,"blob":"Yg=="}}`,
		`{"message":"\ud83d\ude00 \u00e9"}`,
		`{"a":[{"b":[null,true,false,-0.5e-3]}]}`,
		`{"topic":"t",}`,
		"{\"topic\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := acquireSendRequest()
		defer releaseSendRequest(r)
		rerr := r.parse(body)
		_, valid := parseWithStdlib(body)
		malformed := rerr != nil && len(rerr.fields) == 1 && rerr.fields[0].Field == "body"
		if valid == malformed {
			t.Fatalf("parse(%q): malformed=%v (%v); encoding/json valid=%v", body, malformed, rerr, valid)
		}
		if rerr != nil && len(rerr.fields) == 0 {
			t.Fatalf("parse(%q) failed without saying which field", body)
		}
	})
}
