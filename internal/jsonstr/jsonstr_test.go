package jsonstr

import (
	"encoding/json"
	"testing"
)

// The inputs where a hand-written escaper most easily parts from
// encoding/json, each pinned byte for byte (FuzzAppend compares the rest).
func TestAppend(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		if got := Append([]byte("x"), s); string(got) != "x"+want {
			t.Errorf("Append(%q) = %s; want x%s", s, got, want)
		}
	}
	f("", `""`)
	f("acme_1-b", `"acme_1-b"`)
	f(`say "hi" \o/`, `"say \"hi\" \\o/"`)
	f("nl\n cr\r tab\t bs\b ff\f", `"nl\n cr\r tab\t bs\b ff\f"`)
	f("nul\x00 us\x1f del\x7f", `"nul\u0000 us\u001f del`+"\x7f\"")
	f("<b>&amp;</b>", `"\u003cb\u003e\u0026amp;\u003c/b\u003e"`)
	f("line\u2028para\u2029", `"line\u2028para\u2029"`)
	f("é ✓ 😀", `"é ✓ 😀"`)
	// Invalid UTF-8: a stray byte, a cut sequence, an encoded surrogate.
	f("bad \xff utf8 \xc3", `"bad \ufffd utf8 \ufffd"`)
	f("\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`)
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{
		"", "plain", `quote " backslash \`, "<b>&amp;</b>", "nl\n cr\r tab\t bs\b ff\f nul\x00 us\x1f del\x7f",
		"é ✓ 😀", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s); string(got) != string(want) {
			t.Fatalf("Append(%q) = %s; want %s as encoding/json", s, got, want)
		}
	})
}
