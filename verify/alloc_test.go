//go:build !race

package verify

import (
	"bytes"
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

// TestVerifyBadSignatureDoesNotAllocate matters because a misconfigured
// relay (wrong key) makes the 401 path as hot as the success path. Both kinds
// of bad signature are covered: one whose R is not a point (rejected while
// decoding) and a well-formed one over another body (rejected by the
// equation).
func TestVerifyBadSignatureDoesNotAllocate(t *testing.T) {
	r, ts, sig, body := newSignedSend(t)
	forged := []byte(flipHex(string(sig), 10))
	otherBody := append(bytes.Clone(body), '!')
	for _, c := range []struct {
		name      string
		sig, body []byte
	}{{"undecodable R", forged, body}, {"other body", sig, otherBody}} {
		if err := r.Verify(ts, c.sig, c.body); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: Verify = %v; want ErrBadSignature", c.name, err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = r.Verify(ts, c.sig, c.body) }); n != 0 {
			t.Errorf("%s: Verify of a bad signature allocates %.1f times per call; want 0", c.name, n)
		}
	}
}

// TestBatchAllocatesOnlyVoisTables covers what one caller alone never
// reaches: the batch equation, and the search after a batch with a bad
// signature in it. voi's multi-scalar multiplication allocates its tables, 3
// times a call (batch.go says why it is used anyway); nothing else may, so a
// batch allocates 3 times whatever its size, and a failing one 6: its own
// equation and the one that confirms what the search accepted (3 when the
// batch is searched first, with the confirmation its only random equation).
func TestBatchAllocatesOnlyVoisTables(t *testing.T) {
	const voiAllocs = 3
	r, ts, sig, body := newSignedSend(t)
	var raw [64]byte
	copy(raw[:], mustHex(t, sig))
	items := make([]*pending, maxBatch)
	for i := range items {
		items[i] = new(pending)
		if !r.prepare(items[i], &raw, ts, body) {
			t.Fatal("prepare rejected a good signature")
		}
	}
	scratch := new(batchScratch)
	bad := new(pending)
	if !r.prepare(bad, &raw, ts, append(bytes.Clone(body), '!')) {
		t.Fatal("prepare rejected a well-formed signature")
	}
	mixed := append(items[:15:15], bad)
	// Searching first, the only random equation is the confirmation.
	for _, c := range []struct {
		searchFirst bool
		failing     float64
	}{{false, 2 * voiAllocs}, {true, voiAllocs}} {
		for _, n := range []int{minBatch, 16, maxBatch} {
			if a := testing.AllocsPerRun(10, func() { r.check(items[:n], scratch, c.searchFirst) }); a != voiAllocs {
				t.Errorf("search first %v: a batch of %d good signatures allocates %.1f times; want %d (voi's tables)", c.searchFirst, n, a, voiAllocs)
			}
		}
		if n := testing.AllocsPerRun(10, func() { r.check(mixed, scratch, c.searchFirst) }); n != c.failing {
			t.Errorf("search first %v: a failing batch and its search allocate %.1f times; want %.0f (voi's tables, once per random equation)", c.searchFirst, n, c.failing)
		}
		if bad.ok || !mixed[0].ok {
			t.Errorf("search first %v: mixed batch: bad.ok = %v, good.ok = %v; want false, true", c.searchFirst, bad.ok, mixed[0].ok)
		}
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
