package jsonstr

import (
	"encoding/json"
	"testing"
)

// The inputs where the two spellings part: each case is pinned byte for
// byte, Append's as encoding/json.Marshal writes it, AppendMinimal's as the
// event log wrote it before the two moved here.
func TestAppend(t *testing.T) {
	f := func(s, marshal, minimal string) {
		t.Helper()
		if got := Append([]byte("x"), s); string(got) != "x"+marshal {
			t.Errorf("Append(%q) = %s; want x%s", s, got, marshal)
		}
		if got := AppendMinimal([]byte("x"), s); string(got) != "x"+minimal {
			t.Errorf("AppendMinimal(%q) = %s; want x%s", s, got, minimal)
		}
	}
	f("", `""`, `""`)
	f("acme_1-b", `"acme_1-b"`, `"acme_1-b"`)
	f(`say "hi" \o/`, `"say \"hi\" \\o/"`, `"say \"hi\" \\o/"`)
	f("nl\n cr\r tab\t bs\b ff\f", `"nl\n cr\r tab\t bs\b ff\f"`, `"nl\u000a cr\u000d tab\u0009 bs\u0008 ff\u000c"`)
	f("nul\x00 us\x1f del\x7f", `"nul\u0000 us\u001f del`+"\x7f\"", `"nul\u0000 us\u001f del`+"\x7f\"")
	f("<b>&amp;</b>", `"\u003cb\u003e\u0026amp;\u003c/b\u003e"`, `"<b>&amp;</b>"`)
	f("line\u2028para\u2029", `"line\u2028para\u2029"`, "\"line\u2028para\u2029\"")
	f("é ✓ 😀", `"é ✓ 😀"`, `"é ✓ 😀"`)
	// Invalid UTF-8: a stray byte, a cut sequence, an encoded surrogate.
	f("bad \xff utf8 \xc3", `"bad \ufffd utf8 \ufffd"`, "\"bad \xff utf8 \xc3\"")
	f("\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`, "\"\xed\xa0\x80\"")
}

// AppendMinimal's output is JSON that reads back as s whenever s is valid
// UTF-8: the event log's lines stay parseable.
func TestAppendMinimalRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `q" b\`, "ctl\x00\x01\n\x1f", "<&>", "\u2028\u2029", "é ✓ 😀"} {
		var got string
		if err := json.Unmarshal(AppendMinimal(nil, s), &got); err != nil || got != s {
			t.Errorf("AppendMinimal(%q) reads back as %q, %v", s, got, err)
		}
	}
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
