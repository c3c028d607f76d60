package verify

import (
	"crypto/ed25519"
	"strconv"
	"testing"
	"time"
)

// sink keeps the compiler from optimising benchmarked calls away.
var sink any

// BenchmarkVerify compares Relay.Verify with the bare crypto/ed25519.Verify
// it replaced:
//
//   - stdlib: crypto/ed25519.Verify of the same message, the baseline;
//   - relay-single: Relay's one-signature cofactored check (fixed-base tables
//     for B and the relay key) plus decoding and hashing, without the batcher:
//     what a lone request and the fallback after a failed batch cost;
//   - relay-batched-N: Relay.Verify as the router calls it, from N concurrent
//     goroutines per GOMAXPROCS (b.SetParallelism), so that batches of up to
//     about N form; with N=1 it measures a lone request, hand-off included;
//   - relay-bad-signature: one caller, a forged signature.
//
// ns/op of the batched runs is wall time per request with all callers
// together, so the ratio to stdlib is the throughput gain on one core
// (GOMAXPROCS=1). Each also includes header parsing, hex decoding and
// building the message, which stdlib does not.
func BenchmarkVerify(b *testing.B) {
	r, ts, sigHex, body := newSignedSend(b)
	msg, sig := AppendMessage(nil, ts, body), mustHex(b, sigHex)
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sink = ed25519.Verify(r.key, msg, sig)
		}
	})
	b.Run("relay-single", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		var raw [64]byte
		copy(raw[:], sig)
		var p pending
		for b.Loop() {
			ok := r.prepare(&p, &raw, ts, body) && r.verifyOne(&p)
			if !ok {
				b.Fatal("relay-single rejected a good signature")
			}
		}
	})
	for _, n := range []int{1, 16, 64} {
		b.Run("relay-batched-"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(n)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := r.Verify(ts, sigHex, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	forged := []byte(flipHex(string(sigHex), 10))
	b.Run("relay-bad-signature", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = r.Verify(ts, forged, body) == nil
		}
	})
}

// BenchmarkClientAuth measures the register path's JWT check.
func BenchmarkClientAuth(b *testing.B) {
	c := newClientFixture()
	tok := []byte("Bearer " + SignClientToken(c.priv, testAudience, time.Hour, testNow))
	b.ReportAllocs()
	for b.Loop() {
		id, err := c.auth.Verify(tok)
		if err != nil {
			b.Fatal(err)
		}
		sink = id
	}
}
