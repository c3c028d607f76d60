//go:build !race

package verify

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

// The race detector allocates on its own, so these only run without -race.

func TestVerifyDoesNotAllocate(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	if err := r.Verify(ts, sig, body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = r.Verify(ts, sig, body) }); n != 0 {
		t.Fatalf("Verify of a good signature allocates %.1f times per call; want 0", n)
	}
}

// TestVerifyBadSignatureAddsNoAllocation matters because a misconfigured
// relay (wrong key) makes the 401 path as hot as the success path.
//
// Verify itself must add nothing on this path. crypto/ed25519.Verify,
// however, allocates once per invalid signature as of Go 1.26: its internal
// verifier returns a fresh errors.New("ed25519: invalid signature") that
// escapes to the heap. So this test pins "no more than the bare stdlib call";
// when the faster verifier replaces ed25519.Verify (or Go stops allocating),
// baseline becomes 0 and so must Verify.
func TestVerifyBadSignatureAddsNoAllocation(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	forged := []byte(flipHex(string(sig), 10))
	if err := r.Verify(ts, forged, body); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v; want ErrBadSignature", err)
	}
	msg, rawForged := AppendMessage(nil, ts, body), mustHex(t, forged)
	baseline := testing.AllocsPerRun(100, func() { _ = ed25519.Verify(r.key, msg, rawForged) })
	if baseline > 1 {
		t.Fatalf("bare ed25519.Verify of a bad signature allocates %.1f times; this test assumed at most 1", baseline)
	}
	if n := testing.AllocsPerRun(100, func() { _ = r.Verify(ts, forged, body) }); n > baseline {
		t.Fatalf("Verify of a bad signature allocates %.1f times per call; bare ed25519.Verify %.1f; want no more", n, baseline)
	}
}

// TestVerifyRejectionsDoNotAllocate covers the cheap rejections: they return
// bare sentinels, so they must not allocate either.
func TestVerifyRejectionsDoNotAllocate(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	cases := []struct {
		name          string
		ts, sig, body []byte
	}{
		{"both missing", nil, nil, body},
		{"malformed timestamp", []byte("x"), sig, body},
		{"non-hex signature", ts, append([]byte("zz"), sig[2:]...), body},
		{"short signature", ts, sig[:10], body},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(100, func() { _ = r.Verify(c.ts, c.sig, c.body) }); n != 0 {
			t.Errorf("%s: Verify allocates %.1f times per call; want 0", c.name, n)
		}
	}
}
