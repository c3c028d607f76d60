package verify

// This file is the relay signature check: the cofactored Ed25519 equation,
// for one signature and for a batch, and the batcher that lets concurrent
// callers of Relay.Verify share one batch.
//
// It uses github.com/oasisprotocol/curve25519-voi, the package's one
// dependency outside the standard library, because crypto/ed25519 exposes no
// curve arithmetic: it has neither precomputation for a fixed public key nor
// batch verification, and crypto/internal/edwards25519 cannot be imported.
// voi provides point decoding, fixed-base tables and precomputed ("expanded")
// points for any point, scalar arithmetic mod the group order, and a
// variable-time multi-scalar multiplication that runs on AVX2 where the CPU
// has it. What is built here from those primitives is small: the two
// equations below and the batcher.
//
// The batch equation is one call to voi's ExpandedMultiscalarMulVartime,
// which allocates its per-call tables (3 allocations, about 1.5 KiB per
// signature in the batch). An allocation-free Straus written here on voi's
// public point API was measured against it: at 16 signatures the multi-scalar
// part cost 7.3 µs per signature against voi's 4.2, and the whole send path
// ran 10 % faster with voi's (BENCHMARKS.md, session 3). So Verify allocates
// nothing per request, and a batch of 4 or more allocates 3 times, whatever
// its size (with Go 1.25+, which keeps voi's small fixed-size slice of the
// two static tables on the stack).

import (
	"crypto/rand"
	"crypto/sha512"
	"runtime"
	"sync"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// maxBatch bounds a batch: the batch's leader verifies for everyone in it, so
// this bounds the leader's wait, the scratch memory (about 15 KiB per Relay)
// and voi's tables (about 1.5 KiB a signature, per batch). Past 64 the
// per-signature saving has mostly been had.
const maxBatch = 64

// minBatch is the smallest batch for which the batch equation is cheaper than
// checking each signature alone. Measured with voi's multi-scalar
// multiplication (GOMAXPROCS=1): a batch costs about 36 µs plus 4.7 µs a
// signature (256 doublings and the two full-length static scalars are paid
// whatever the size), a single check about 14 µs; 3 signatures cost 48 µs
// batched against 42 µs alone, 4 cost 53 against 57.
const minBatch = 4

// pending is one request's signature, decoded and hashed, on its way through
// the batcher. It comes from pendingPool and holds nothing of the request's
// buffers.
type pending struct {
	R    curve.EdwardsPoint // the signature's R, decoded
	S    scalar.Scalar      // the signature's S, known to be < L
	k    scalar.Scalar      // SHA-512(R || A || message) mod L
	ok   bool               // the result, written by the batch's leader
	lead bool               // set when this request must lead the next batch
	// done wakes the waiting caller, once with its result or once to make it
	// the leader. It is buffered so that the leader never blocks on it.
	done chan struct{}
}

// pendingPool recycles pending values and their channels, so that Verify does
// not allocate a channel per call.
var pendingPool = sync.Pool{New: func() any {
	return &pending{done: make(chan struct{}, 1)}
}}

// prepare decodes sig into p and computes its challenge k. It returns false
// for a signature that no equation can accept: S not below the group order
// (RFC 8032's malleability check), or R not a canonical encoding of a curve
// point. These checks, like the hash, depend on nothing but the request, so
// they run in the caller's goroutine, in parallel with other callers.
func (r *Relay) prepare(p *pending, sig *[64]byte, timestamp, body []byte) bool {
	if !scalar.ScMinimalVartime(sig[32:]) {
		return false
	}
	if _, err := p.S.SetBytesModOrder(sig[32:]); err != nil {
		return false
	}
	var enc curve.CompressedEdwardsY
	copy(enc[:], sig[:32])
	if !enc.IsCanonicalVartime() {
		return false
	}
	if _, err := p.R.SetCompressedY(&enc); err != nil {
		return false
	}

	bp := msgPool.Get().(*[]byte)
	buf := append((*bp)[:0], sig[:32]...)
	buf = append(buf, r.key...)
	buf = AppendMessage(buf, timestamp, body)
	h := sha512.Sum512(buf)
	if cap(buf) <= maxPooledMessage {
		*bp = buf[:0]
		msgPool.Put(bp)
	}
	_, err := p.k.SetBytesModOrderWide(h[:])
	return err == nil
}

// verifyOne checks one prepared signature with the cofactored equation
// [8]([S]B - [k]A - R) = 0, using the fixed-base tables of B and of -A.
func (r *Relay) verifyOne(p *pending) bool {
	var sB, kNegA curve.EdwardsPoint
	sB.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &p.S)
	kNegA.MulBasepoint(r.negA, &p.k)
	sB.Add(&sB, &kNegA)
	sB.Sub(&sB, &p.R)
	return sB.IsSmallOrder() // multiplies by 8 and compares with the identity
}

// batcher groups the Verify calls that wait at the same moment into batches.
//
// There is no collector goroutine. A caller that finds no batch in progress
// becomes the leader: it yields the processor once (runtime.Gosched), so that
// callers that are already runnable, on this or any core, can queue behind it,
// then takes up to maxBatch queued requests, its own first, verifies them and
// wakes their callers. A caller that finds a leader queues and sleeps. When a
// leader finishes while requests are still queued, it wakes the oldest of
// them to lead the next batch. So a lone request is verified at once, by its
// own goroutine, after one Gosched that returns immediately when nothing else
// is runnable; and under load the batch fills by itself.
//
// The yield matters with GOMAXPROCS=1: without it the leader would run before
// the other handlers that the network poller has just made runnable, and
// every batch would hold one request.
type batcher struct {
	mu      sync.Mutex
	leading bool       // a leader exists; then queue[0] is its request or queue is being served
	queue   []*pending // requests waiting, oldest first
	batches uint64     // batches served, for tests of the batching itself
	served  uint64     // requests served in them

	// The rest is the leader's scratch; only the current leader touches it.
	// Leadership passes under mu and through a channel, which orders one
	// leader's use before the next one's.
	scratch *batchScratch
}

// batchScratch is preallocated so that a batch allocates nothing of its own.
type batchScratch struct {
	items  [maxBatch]*pending
	random [maxBatch * 16]byte // 128 random bits per z
	z      [maxBatch]scalar.Scalar
	negR   [maxBatch]curve.EdwardsPoint
	// The slices voi's multi-scalar multiplication takes, pointing into z
	// and negR.
	zs    [maxBatch]*scalar.Scalar
	negRs [maxBatch]*curve.EdwardsPoint
}

func newBatcher() batcher {
	return batcher{queue: make([]*pending, 0, maxBatch), scratch: new(batchScratch)}
}

// verify returns whether p's signature verifies, blocking until it is known.
func (b *batcher) verify(r *Relay, p *pending) bool {
	p.ok, p.lead = false, false
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.leading {
		b.mu.Unlock()
		<-p.done
		if !p.lead {
			return p.ok
		}
	} else {
		b.leading = true
		b.mu.Unlock()
	}
	runtime.Gosched()
	b.lead(r, p)
	return p.ok
}

// lead serves one batch, which starts with self (the leader's own request),
// and then passes leadership on or gives it up.
func (b *batcher) lead(r *Relay, self *pending) {
	s := b.scratch
	b.mu.Lock()
	n := copy(s.items[:], b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:]) // keep no pointers to pooled values
	b.queue = b.queue[:rest]
	b.mu.Unlock()

	items := s.items[:n]
	r.check(items, s)
	// Results first: after its done fires a caller may return its pending to
	// the pool, so nothing here touches an item after waking it.
	for i, p := range items {
		items[i] = nil
		if p != self {
			p.done <- struct{}{}
		}
	}

	b.mu.Lock()
	b.batches++
	b.served += uint64(n)
	var next *pending
	if len(b.queue) > 0 {
		next = b.queue[0] // it waits, so it cannot go back to the pool before this wakes it
		next.lead = true
	} else {
		b.leading = false
	}
	b.mu.Unlock()
	if next != nil {
		next.done <- struct{}{}
	}
}

// check sets ok on every item. A batch that verifies means every signature in
// it does; one that does not is checked again one signature at a time with the
// same cofactored equation, so a signature's result never depends on its
// batch-mates.
func (r *Relay) check(items []*pending, s *batchScratch) {
	if len(items) >= minBatch && r.verifyBatch(items, s) {
		for _, p := range items {
			p.ok = true
		}
		return
	}
	for _, p := range items {
		p.ok = r.verifyOne(p)
	}
}

// verifyBatch checks the cofactored batch equation for signatures under the
// relay key A:
//
//	[8]([sum z_i S_i]B + [sum z_i k_i](-A) + sum [z_i](-R_i)) = 0
//
// with fresh random 128-bit z_i. If every signature satisfies its own
// equation [8]([S_i]B - [k_i]A - R_i) = 0 this holds; if any does not, it
// fails except with probability about 2^-128. Because A is the same for all,
// B and -A are two static points with precomputed tables and two full-length
// scalars for the whole batch; the R_i are negated (cheap) rather than their
// z_i, so that their scalars stay half-length.
func (r *Relay) verifyBatch(items []*pending, s *batchScratch) bool {
	n := len(items)
	_, _ = rand.Read(s.random[:16*n]) // crypto/rand.Read never fails (Go 1.24+)
	var sumS, sumK, t scalar.Scalar
	sumS.Zero()
	sumK.Zero()
	for i, p := range items {
		var zb [32]byte
		copy(zb[:16], s.random[16*i:16*i+16])
		z := &s.z[i]
		if _, err := z.SetBytesModOrder(zb[:]); err != nil {
			return false
		}
		sumS.Add(&sumS, t.Mul(z, &p.S))
		sumK.Add(&sumK, t.Mul(z, &p.k))
		s.negR[i].Neg(&p.R)
		s.zs[i], s.negRs[i] = z, &s.negR[i]
	}
	static := [2]*scalar.Scalar{&sumS, &sumK}
	var sum curve.EdwardsPoint
	sum.ExpandedMultiscalarMulVartime(static[:], r.staticPoints[:], s.zs[:n], s.negRs[:n])
	clear(s.zs[:n]) // keep no pointers into a finished batch
	clear(s.negRs[:n])
	return sum.IsSmallOrder() // multiplies by 8 and compares with the identity
}
