package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdSendBody is the send body's shape for encoding/json, the reference the
// scanner is held to. Pointers tell absent (or null) from empty.
type stdSendBody struct {
	Topic   *string `json:"topic"`
	Tag     *uint64 `json:"tag"`
	Message *string `json:"message"`
	ID      *string `json:"id"`
	Payload *struct {
		Topic *string `json:"topic"`
		Flags *uint64 `json:"flags"`
		Blob  *string `json:"blob"`
	} `json:"payload"`
}

// checkSendParseAgrees holds sendRequest.parse to encoding/json on body:
// malformed exactly when encoding/json finds a syntax error, and when the
// parser accepts, encoding/json accepts too with the same value for every
// member the parser reads. The parser may refuse more than encoding/json
// (duplicate members, members differing from ours only in case, invalid
// UTF-8 that encoding/json would replace with U+FFFD, nesting beyond
// maxDepth), never less, and never read a value differently.
func checkSendParseAgrees(t *testing.T, body []byte) {
	t.Helper()
	r := acquireSendRequest()
	defer releaseSendRequest(r)
	rerr := r.parse(body)
	var ref stdSendBody
	stdErr := json.Unmarshal(body, &ref)
	var syntax *json.SyntaxError
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	// The deliberate differences from encoding/json's syntax check: invalid
	// UTF-8 is refused (RFC 8259 §8.1), and so is anything but an object.
	stdMalformed := errors.As(stdErr, &syntax) || !utf8.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{'
	malformed := rerr != nil && len(rerr.fields) == 1 && rerr.fields[0].Field == "body"
	if rerr != nil && len(rerr.fields) == 0 {
		t.Fatalf("parse(%q) failed without saying which field", body)
	}
	switch {
	case malformed && !stdMalformed && !strings.Contains(rerr.fields[0].Description, "nested too deeply"):
		t.Fatalf("parse(%q) = %v; encoding/json finds it well-formed (%v)", body, rerr, stdErr)
	case !malformed && stdMalformed:
		t.Fatalf("parse(%q) = %v; want malformed, as encoding/json says: %v", body, rerr, stdErr)
	case rerr != nil:
		return // refusing is always allowed
	case stdErr != nil:
		t.Fatalf("parse(%q) accepted it; encoding/json refuses it: %v", body, stdErr)
	}
	str := func(name string, got []byte, has bool, want *string) {
		t.Helper()
		if has != (want != nil) || want != nil && *want != string(got) {
			t.Fatalf("parse(%q).%s = %q (present %v); encoding/json reads %s", body, name, got, has, show(want))
		}
	}
	num := func(name string, got uint64, has bool, want *uint64) {
		t.Helper()
		if has != (want != nil) || want != nil && *want != got {
			t.Fatalf("parse(%q).%s = %d (present %v); encoding/json reads %s", body, name, got, has, show(want))
		}
	}
	str("topic", r.topic, r.hasTopic, ref.Topic)
	str("message", r.message, r.hasMessage, ref.Message)
	str("id", r.id, r.hasID, ref.ID)
	num("tag", r.tag, r.hasTag, ref.Tag)
	if r.hasPayload != (ref.Payload != nil) {
		t.Fatalf("parse(%q) payload present %v; encoding/json says %v", body, r.hasPayload, ref.Payload != nil)
	}
	if p := ref.Payload; p != nil {
		str("payload.topic", r.payloadTopic, r.hasPayloadTopic, p.Topic)
		str("payload.blob", r.blob, r.hasBlob, p.Blob)
		num("payload.flags", r.flags, p.Flags != nil, p.Flags) // flags: absent and 0 mean the same
	}
}

func show[T any](p *T) string {
	if p == nil {
		return "nothing"
	}
	return fmt.Sprintf("%q", fmt.Sprint(*p))
}

// sendParseSeeds are bodies the differential check starts from: the unit
// test runs them all, and they seed FuzzSendParse.
var sendParseSeeds = []string{
	`{"topic":"t","tag":1100,"message":"m"}`,
	` { "topic" : "t" , "tag" : 0 , "message" : "" } `,
	`{"topic":"a\"b\\c\/d\b\f\n\r\tx","message":"\u00e9\u4e2d\ud83d\ude00"}`,
	`{"message":"\ud800"}`,             // unpaired surrogate: U+FFFD, as encoding/json
	`{"message":"\ud800\u0041"}`,       // found by review: the A after an unpaired surrogate was swallowed
	`{"message":"\udc00\ud83d\ude00"}`, // a lone low surrogate, then a pair
	`{"message":"\ud83d\ud83d\ude00"}`, // a high surrogate, then a pair
	`{"message":"x\ud800\"}`,
	`{"message":"\ud800\u00"}`,
	`{"message":"é中😀"}`,
	`{"topic":"t","extra":{"a":[1,2,{"b":null}],"c":true,"d":false,"e":-1.5e+10},"message":"m"}`,
	`{"id":"x","payload":{"topic":"t","flags":1,"blob":"b","more":[]}}`,
	`{"id":"x","payload":{"topic":"t","flags":1,"blob":"Yg=="}}`,
	`{"topic":null,"message":null,"tag":null,"payload":null}`,
	`{"payload":{"topic":null,"flags":null,"blob":null}}`,
	`{"t\u006fpic":"escaped key"}`,
	`{"TOPIC":"upper"}`, `{"Message":"m"}`, `{"payload":{"Blob":"b"}}`,
	"{\"me\u017f\u017fage\":\"long s\"}", "{\"payload\":{\"flag\u017f\":1}}", // encoding/json folds ſ to s
	`{"topic":"first","topic":"second"}`,
	`{"payload":{"topic":"a"},"payload":{"blob":"b"}}`,
	`{"payload":{"flags":1,"flags":0}}`,
	`{"tag":1100,"Tag":1}`,
	`{}`,
	`{"a":[{"b":[null,true,false,-0.5e-3]}]}`,
	``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `{"topic"}`, `{"topic":}`, `{"topic":"t",}`, `{"topic":"t"}x`,
	`{"topic":"t" "message":"m"}`, `{"topic":'t'}`, `{"topic":"t\x"}`, `{"topic":"\u12"}`, "{\"topic\":\"a\x01\"}",
	`{"tag":01}`, `{"tag":1.}`, `{"tag":.5}`, `{"tag":1e}`, `{"tag":-}`, `{"tag":1e2}`, `{"tag":-0}`, `{"tag":18446744073709551616}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":[1,]}`,
	`{"a":[1 2]}`, "{\"topic\":\"\xff\"}", "{\"x\":\"\xff\"}", `{"topic":"t"`,
	"{}\x00", // found by FuzzSendParse: a NUL after the object was taken for the end
	`{"a":"` + strings.Repeat("{", 40) + `"}`,
}

func TestSendParseAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range sendParseSeeds {
		checkSendParseAgrees(t, []byte(body))
	}
}

// TestSendParseUnpairedSurrogateKeepsNextChar: an unpaired surrogate
// escape becomes U+FFFD and the escape after it is read on its own, so two
// different messages never share one dedup id.
func TestSendParseUnpairedSurrogateKeepsNextChar(t *testing.T) {
	ids := map[string]string{}
	for _, body := range []string{`{"message":"\ud800\u0041"}`, `{"message":"\ud800\u0042"}`, `{"message":"\ud800"}`} {
		r := acquireSendRequest()
		if rerr := r.parse([]byte(body)); rerr != nil {
			t.Fatalf("parse(%s) = %v", body, rerr)
		}
		id, _ := r.messageID()
		if other, dup := ids[id]; dup {
			t.Fatalf("%s and %s share the dedup id %s (message %q)", body, other, id, r.message)
		}
		ids[id] = body
		releaseSendRequest(r)
	}
}

// TestSendParseRefusesDuplicates: a member the parser reads may appear
// once; a second one (in any case: encoding/json would take "TOPIC" for
// topic) is a 400 naming it, never a silent last-wins or merge.
func TestSendParseRefusesDuplicates(t *testing.T) {
	for body, field := range map[string]string{
		`{"topic":"first","message":"m","topic":"second"}`: "topic",
		`{"id":"a","id":"b","payload":{"topic":"t"}}`:      "id",
		`{"message":"a","message":"b"}`:                    "message",
		`{"tag":1,"tag":1108,"topic":"t","message":"m"}`:   "tag",
		`{"payload":{"topic":"a"},"payload":{"blob":"b"}}`: "payload",
		`{"payload":{"topic":"a","topic":"b","blob":"b"}}`: "payload.topic",
		`{"payload":{"blob":"a","blob":"b"}}`:              "payload.blob",
		`{"payload":{"flags":1,"flags":0,"blob":"b"}}`:     "payload.flags",
		`{"payload":null,"payload":{"blob":"b"}}`:          "payload",
		`{"topic":"t","Topic":"u","message":"m"}`:          "topic",
		`{"TOPIC":"t","message":"m"}`:                      "topic",
		`{"payload":{"BLOB":"b","flags":1}}`:               "payload.blob",
		"{\"me\u017f\u017fage\":\"m\",\"topic\":\"t\"}":    "message",
		`{"t\u006fpic":"a","topic":"b"}`:                   "topic",
		`{"topic":"t","message":"m","extra":1,"extra":2}`:  "extra",
		`{"topic":"t","message":"m","x":{"a":1,"a":2}}`:    "x.a",
	} {
		r := acquireSendRequest()
		rerr := r.parse([]byte(body))
		if rerr == nil || len(rerr.fields) != 1 || rerr.fields[0].Field != field || rerr.status() != 400 {
			t.Errorf("parse(%s) = %v; want 400 naming %s", body, rerr, field)
		}
		releaseSendRequest(r)
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

// FuzzSendParse is the differential check of checkSendParseAgrees on
// arbitrary bodies: the parser never panics and never reads a body
// differently from encoding/json (make fuzz; make test runs the seeds).
func FuzzSendParse(f *testing.F) {
	for _, seed := range sendParseSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkSendParseAgrees(t, body) })
}

// BenchmarkSendParse is the send body parse alone, on the relay's usual
// body: the duplicate-member check must stay cheap here.
func BenchmarkSendParse(b *testing.B) {
	body := []byte(`{"topic":"0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a","tag":1108,"message":"Y2lwaGVydGV4dA==","ttl":300,"prompt":true}`)
	b.ReportAllocs()
	for b.Loop() {
		r := acquireSendRequest()
		if rerr := r.parse(body); rerr != nil {
			b.Fatal(rerr)
		}
		releaseSendRequest(r)
	}
}
