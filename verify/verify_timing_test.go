package verify

import (
	"crypto/ed25519"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
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
//     what a lone request costs;
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

// BenchmarkRelayVerifyParallel measures Relay.Verify from 32 concurrent
// callers per GOMAXPROCS (b.RunParallel), so that every processor has full
// batches to check. Run it with -cpu 1,2: ns/op is wall time per request with
// all callers together, so the ratio of the two is how verification scales
// with processors (issue 18 asks ≥ 1.8 at 2). cpu-ns/op is the process's CPU
// time per request: on a machine shared with other work, wall time shows
// what the benchmark was given, and cpu-ns/op staying flat from 1 to 2
// processors is what lets ns/op halve on an idle one. The Relay is made
// inside each sub-benchmark, where -cpu has set GOMAXPROCS, because NewRelay
// sizes the batcher by it.
func BenchmarkRelayVerifyParallel(b *testing.B) {
	for _, share := range []int{0, 20} {
		b.Run("forged="+strconv.Itoa(share)+"%", func(b *testing.B) {
			// Here, not above: -cpu sets GOMAXPROCS for each sub-benchmark.
			r, ts, sigHex, body := newSignedSend(b)
			forged := []byte(flipHex(string(sigHex), 70)) // a well-formed S: it reaches the equations
			if !errors.Is(r.Verify(ts, forged, body), ErrBadSignature) {
				b.Fatal("the forged signature verifies")
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(32)
			var next atomic.Int64
			r.batch.mu.Lock()
			batches0, served0 := r.batch.batches, r.batch.served
			r.batch.mu.Unlock()
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sig := sigHex
					if share > 0 && next.Add(1)%(100/int64(share)) == 0 {
						sig = forged
					}
					if err := r.Verify(ts, sig, body); (err != nil) != (&sig[0] == &forged[0]) {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			r.batch.mu.Lock()
			defer r.batch.mu.Unlock()
			b.ReportMetric(float64(r.batch.served-served0)/float64(r.batch.batches-batches0), "reqs/batch")
		})
	}
}

// BenchmarkVerifyBatchPoisoned measures what a batch of 64 with bad
// signatures (signed by another key, spread over the batch) costs to check,
// against the same batch all good: x-clean is the ratio of the two, each in
// the calling thread's CPU time and measured alternately in the same loop,
// so that a shared machine's load moves both alike. ns/op is the poisoned
// batch alone. Issue 18 asks x-clean ≤ 2 for bad=1; checking each signature
// again after a failed batch, as earlier versions did, gave about 3.7. The
// search-first runs are what the batcher does once most batches fail; their
// clean batch is searched first too, so x-clean there is against that.
func BenchmarkVerifyBatchPoisoned(b *testing.B) {
	f := newBatchFixture(b, maxBatch)
	s := new(batchScratch)
	clean := f.batch(make([]bool, maxBatch))
	for _, searchFirst := range []bool{false, true} {
		for _, bad := range []int{0, 1, 4, 13, 16, maxBatch} {
			isBad := make([]bool, maxBatch)
			for i := range bad {
				isBad[(i*maxBatch+maxBatch/3)/bad] = true
			}
			items := f.batch(isBad)
			name := "bad=" + strconv.Itoa(bad)
			if searchFirst {
				name += "/search-first"
			}
			b.Run(name, func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var poisoned, plain time.Duration
				for b.Loop() {
					t0 := threadCPU()
					f.r.check(items, s, searchFirst)
					poisoned += threadCPU() - t0
					b.StopTimer() // it reads memory statistics: not in either figure
					t1 := threadCPU()
					f.r.check(clean, s, searchFirst)
					plain += threadCPU() - t1
					b.StartTimer()
				}
				for i, p := range items {
					if p.ok == isBad[i] {
						b.Fatalf("signature %d: ok=%v", i, p.ok)
					}
				}
				b.ReportMetric(float64(poisoned)/float64(plain), "x-clean")
			})
		}
	}
}
