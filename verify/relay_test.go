package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed clock of every relay test: 2023-11-14T22:13:20Z.
var testNow = time.Unix(1_700_000_000, 0)

// testKey derives a deterministic key pair from name, so that failures
// reproduce and different names give unrelated keys.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("push-server verify test key: " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// newSignedSend returns a Relay (max age 300 s, clock testNow) and a correctly
// signed send: timestamp header, signature header and body.
func newSignedSend(tb testing.TB) (r *Relay, ts, sigHex, body []byte) {
	tb.Helper()
	priv := testKey("relay")
	r, err := NewRelay(priv.Public().(ed25519.PublicKey), 300*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	r.SetClock(func() time.Time { return testNow })
	ts = []byte(strconv.FormatInt(testNow.Unix(), 10))
	body = []byte(`{"topic":"t","tag":1100,"message":"hello"}`)
	sigHex = []byte(Sign(priv, ts, body))
	return r, ts, sigHex, body
}

func mustHex(tb testing.TB, s []byte) []byte {
	tb.Helper()
	b, err := hex.DecodeString(string(s))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseTimestamp(t *testing.T) {
	f := func(in string, want int64, wantErr bool) {
		t.Helper()
		got, err := ParseTimestamp([]byte(in))
		if (err != nil) != wantErr || got != want {
			t.Fatalf("ParseTimestamp(%q) = %d, %v; want %d, error %v", in, got, err, want, wantErr)
		}
		if err != nil && !errors.Is(err, ErrMalformedTimestamp) {
			t.Fatalf("ParseTimestamp(%q) error %v; want ErrMalformedTimestamp", in, err)
		}
	}
	f("1700000000", 1700000000, false)
	f("0", 0, false)
	f("0001700000000", 1700000000, false)             // leading zeros are still decimal
	f("1000000000000", 1000000000000, false)          // exactly 10^12: seconds (API.md: ms only when > 10^12)
	f("1000000000001", 1000000000, false)             // just above: milliseconds
	f("1700000000000", 1700000000, false)             // milliseconds, per API.md
	f("1700000000999", 1700000000, false)             // milliseconds round down
	f("9223372036854775807", 9223372036854775, false) // MaxInt64, as ms
	f("9223372036854775808", 0, true)                 // MaxInt64+1 overflows
	f("99999999999999999999999", 0, true)
	f("", 0, true)
	f("-1700000000", 0, true)
	f("+1700000000", 0, true)
	f(" 1700000000", 0, true)
	f("1700000000 ", 0, true)
	f("17e8", 0, true)
	f("1700000000.5", 0, true)
	f("0x10", 0, true)
	f("１７", 0, true) // full-width digits are not ASCII decimal
}

func TestNewRelay(t *testing.T) {
	pub := testKey("relay").Public().(ed25519.PublicKey)
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := NewRelay(make(ed25519.PublicKey, n), time.Minute); err == nil {
			t.Errorf("NewRelay accepted a %d-byte key", n)
		}
	}
	if _, err := NewRelay(pub, -time.Second); err == nil {
		t.Error("NewRelay accepted a negative max age")
	}
	// The key is copied: changing the caller's slice later must not change
	// which signatures verify.
	key := append(ed25519.PublicKey(nil), pub...)
	r, err := NewRelay(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts, body := []byte("1"), []byte("b")
	sig := []byte(Sign(testKey("relay"), ts, body))
	key[0] ^= 0xff
	if err := r.Verify(ts, sig, body); err != nil {
		t.Fatalf("Verify after the caller mutated its key slice: %v", err)
	}
}

func TestRelayVerify(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	priv := testKey("relay")
	signAt := func(ts string) (string, string) { return ts, Sign(priv, []byte(ts), body) }

	f := func(name string, r *Relay, ts, sig, body string, want ...error) {
		t.Helper()
		err := r.Verify(bytesOrNil(ts), bytesOrNil(sig), []byte(body))
		if len(want) == 0 {
			if err != nil {
				t.Fatalf("%s: Verify = %v; want nil", name, err)
			}
			return
		}
		for _, w := range want {
			if !errors.Is(err, w) {
				t.Fatalf("%s: Verify = %v; want an error matching %v", name, err, w)
			}
		}
	}
	good, goodSig, goodBody := string(ts), string(sig), string(body)

	f("valid", r, good, goodSig, goodBody)
	f("valid uppercase hex", r, good, strings.ToUpper(goodSig), goodBody)
	f("missing timestamp", r, "", goodSig, goodBody, ErrMissingTimestamp)
	f("missing signature", r, good, "", goodBody, ErrMissingSignature)
	f("both missing", r, "", "", goodBody, ErrMissingTimestamp, ErrMissingSignature)
	f("malformed timestamp", r, "now", goodSig, goodBody, ErrMalformedTimestamp)
	f("non-hex signature", r, good, "zz"+goodSig[2:], goodBody, ErrMalformedSignature)
	f("short signature", r, good, goodSig[:126], goodBody, ErrMalformedSignature)
	f("long signature", r, good, goodSig+"00", goodBody, ErrMalformedSignature)
	f("odd-length signature", r, good, goodSig[:127], goodBody, ErrMalformedSignature)
	f("tampered body", r, good, goodSig, strings.Replace(goodBody, "hello", "hellO", 1), ErrBadSignature)
	f("body with a byte appended", r, good, goodSig, goodBody+" ", ErrBadSignature)
	f("empty body", r, good, goodSig, "", ErrBadSignature)
	f("tampered timestamp", r, "1700000001", goodSig, goodBody, ErrBadSignature)
	f("same instant as milliseconds", r, good+"000", goodSig, goodBody, ErrBadSignature) // signed bytes are the header as sent
	f("tampered signature", r, good, flipHex(goodSig, 10), goodBody, ErrBadSignature)

	ts0, sig0 := signAt("1700000000000") // milliseconds
	f("ms timestamp", r, ts0, sig0, goodBody)
	tsA, sigA := signAt("1699999700") // exactly 300 s old
	f("300 s in the past", r, tsA, sigA, goodBody)
	tsB, sigB := signAt("1700000300") // exactly 300 s ahead
	f("300 s in the future", r, tsB, sigB, goodBody)
	tsC, sigC := signAt("1699999699")
	f("stale past", r, tsC, sigC, goodBody, ErrStaleTimestamp)
	tsD, sigD := signAt("1700000301")
	f("stale future", r, tsD, sigD, goodBody, ErrStaleTimestamp)
	tsE, sigE := signAt("1699999699000")
	f("stale past in ms", r, tsE, sigE, goodBody, ErrStaleTimestamp)
	tsF, sigF := signAt("1700000301000")
	f("stale future in ms", r, tsF, sigF, goodBody, ErrStaleTimestamp)
	tsG, sigG := signAt("0")
	f("epoch", r, tsG, sigG, goodBody, ErrStaleTimestamp)
	tsH, sigH := signAt("9223372036854775807")
	f("far future", r, tsH, sigH, goodBody, ErrStaleTimestamp)

	// Forged and stale: the signature is reported, not the age (see Verify).
	f("stale and forged", r, tsC, goodSig, goodBody, ErrBadSignature)

	off, err := NewRelay(priv.Public().(ed25519.PublicKey), 0)
	if err != nil {
		t.Fatal(err)
	}
	off.SetClock(func() time.Time { return testNow })
	f("max age 0: epoch accepted", off, tsG, sigG, goodBody)
	f("max age 0: far future accepted", off, tsH, sigH, goodBody)
	f("max age 0: forgery still rejected", off, tsG, goodSig, goodBody, ErrBadSignature)

	other, err := NewRelay(testKey("another relay").Public().(ed25519.PublicKey), 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	other.SetClock(func() time.Time { return testNow })
	f("wrong key", other, good, goodSig, goodBody, ErrBadSignature)
}

// TestRelayVerifyExactlyOneSentinel pins that single failures do not match
// unrelated sentinels, so the router's table picks the right name.
func TestRelayVerifyExactlyOneSentinel(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	all := []error{ErrMissingTimestamp, ErrMissingSignature, ErrMalformedTimestamp, ErrStaleTimestamp, ErrMalformedSignature, ErrBadSignature}
	f := func(err, want error) {
		t.Helper()
		for _, e := range all {
			if errors.Is(err, e) != (e == want) {
				t.Fatalf("errors.Is(%v, %v) = %v", err, e, errors.Is(err, e))
			}
		}
	}
	f(r.Verify(nil, sig, body), ErrMissingTimestamp)
	f(r.Verify(ts, nil, body), ErrMissingSignature)
	f(r.Verify([]byte("x"), sig, body), ErrMalformedTimestamp)
	f(r.Verify(ts, sig[1:], body), ErrMalformedSignature)
	f(r.Verify(ts, sig, body[1:]), ErrBadSignature)
}

// TestRelayVerifyDoesNotRetain checks that Verify keeps nothing of its
// arguments: fasthttp reuses header and body buffers for the next request.
func TestRelayVerifyDoesNotRetain(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	if err := r.Verify(ts, sig, body); err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(body)
	for i := range body {
		body[i] = 'x'
	}
	for i := range ts {
		ts[i] = '9'
	}
	// Reusing the now-garbage buffers fails, and then the original bytes
	// verify again: nothing of the first call leaked into the second.
	if err := r.Verify(ts, sig, body); err == nil {
		t.Fatal("Verify accepted overwritten buffers")
	}
	if err := r.Verify([]byte(strconv.FormatInt(testNow.Unix(), 10)), sig, keep); err != nil {
		t.Fatalf("Verify of the original bytes: %v", err)
	}
}

// TestRelayVerifyLargeBody covers bodies bigger than the pooled buffer limit,
// which are built in a fresh buffer that is not returned to the pool.
func TestRelayVerifyLargeBody(t *testing.T) {
	r, ts, _, _ := newSignedSend(t)
	body := bytes.Repeat([]byte("a"), 3*maxPooledMessage)
	sig := []byte(Sign(testKey("relay"), ts, body))
	for range 3 {
		if err := r.Verify(ts, sig, body); err != nil {
			t.Fatal(err)
		}
	}
	body[len(body)-1] = 'b'
	if err := r.Verify(ts, sig, body); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of a tampered large body = %v; want ErrBadSignature", err)
	}
}

func TestAppendMessage(t *testing.T) {
	f := func(dst, ts, body, want string) {
		t.Helper()
		got := AppendMessage([]byte(dst), []byte(ts), []byte(body))
		if string(got) != want {
			t.Fatalf("AppendMessage(%q, %q, %q) = %q; want %q", dst, ts, body, got, want)
		}
	}
	f("", "1700000000", "", "1700000000.0.")
	f("", "1700000000", "{}", "1700000000.2.{}")
	f("prefix:", "1", "a.b", "prefix:1.3.a.b")
	f("", "1", "héllo", "1.6.héllo") // len is bytes, not runes
	f("", "1", strings.Repeat("x", 1234), "1.1234."+strings.Repeat("x", 1234))
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// flipHex changes the hex digit at i to a different valid one.
func flipHex(s string, i int) string {
	b := []byte(s)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}
