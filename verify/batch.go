package verify

// This file is the relay signature check: the cofactored Ed25519 equation,
// for one signature and for a batch, what happens when a batch fails, and
// the batcher that lets concurrent callers of Relay.Verify share batches.
//
// It uses github.com/oasisprotocol/curve25519-voi, the package's one
// dependency outside the standard library, because crypto/ed25519 exposes no
// curve arithmetic: it has neither precomputation for a fixed public key nor
// batch verification, and crypto/internal/edwards25519 cannot be imported.
// voi provides point decoding, fixed-base tables and precomputed ("expanded")
// points for any point, scalar arithmetic mod the group order, and a
// variable-time multi-scalar multiplication that runs on AVX2 where the CPU
// has it. What is built here from those primitives is small: the equations
// below, the search for the bad signatures of a failed batch, and the
// batcher.
//
// The batch equation is one call to voi's ExpandedMultiscalarMulVartime,
// which allocates its per-call tables (3 allocations, about 1.5 KiB per
// signature in the batch). An allocation-free Straus written here on voi's
// public point API was measured against it: at 16 signatures the multi-scalar
// part cost 7.3 µs per signature against voi's 4.2, and the whole send path
// ran 10 % faster with voi's (BENCHMARKS.md, session 3). So Verify allocates
// nothing per request, and a batch of 4 or more allocates 3 times per
// multi-scalar call, whatever its size (with Go 1.25+, which keeps voi's
// small fixed-size slice of the two static tables on the stack): once for a
// batch that verifies, twice for one that fails and is resolved by the
// search below.

import (
	"crypto/rand"
	"crypto/sha512"
	"runtime"
	"sync"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// maxBatch bounds a batch: the batch's leader verifies for everyone in it, so
// this bounds the leader's wait, the scratch memory (about 15 KiB per leader)
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

// maxLeaders bounds the batches checked at once, whatever GOMAXPROCS says: each
// leader holds a batchScratch (about 15 KiB), so 64 of them are about 1 MiB.
const maxLeaders = 64

// pending is one request's signature, decoded and hashed, on its way through
// the batcher. It comes from pendingPool and holds nothing of the request's
// buffers.
type pending struct {
	R    curve.EdwardsPoint // the signature's R, decoded
	S    scalar.Scalar      // the signature's S, known to be < L
	k    scalar.Scalar      // SHA-512(R || A || message) mod L
	ok   bool               // the result, written by the batch's leader
	lead bool               // set when this request must lead the next batch
	// scratch is the leader's scratch, handed over with lead.
	scratch *batchScratch
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
	r.counted(singleEquation, 1)
	var e curve.EdwardsPoint
	r.errorPoint(&e, &p.S, &p.k, &p.R)
	return e.IsSmallOrder() // multiplies by 8 and compares with the identity
}

// errorPoint sets out to [s]B + [k](-A) - R. For one signature this is the
// signature's error: a small-order point exactly when the signature
// verifies. For sums of S, k and R over a group of signatures it is the sum
// of their errors, which is what groupError uses.
func (r *Relay) errorPoint(out *curve.EdwardsPoint, s, k *scalar.Scalar, R *curve.EdwardsPoint) {
	var kNegA curve.EdwardsPoint
	out.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, s)
	kNegA.MulBasepoint(r.negA, k)
	out.Add(out, &kNegA)
	out.Sub(out, R)
}

// equationKind names the equations check evaluates, for the tests that
// count them (Relay.onEquation).
type equationKind int

const (
	singleEquation equationKind = iota // one signature, verifyOne
	batchEquation                      // random coefficients, voi's multi-scalar multiplication
	groupEquation                      // the plain sum of a group's errors, groupError
)

// counted reports an equation over n signatures to the test hook, if any.
func (r *Relay) counted(kind equationKind, n int) {
	if r.onEquation != nil {
		r.onEquation(kind, n)
	}
}

// batcher groups the Verify calls that wait at the same moment into batches,
// and lets up to one batch per processor be checked at once.
//
// There is no collector goroutine. A caller that finds a free leader's
// scratch becomes a leader: it yields the processor once (runtime.Gosched),
// so that callers that are already runnable, on this or any core, can queue
// behind it, then takes up to maxBatch-1 queued requests besides its own,
// verifies them and wakes their callers. A caller that finds every scratch
// taken queues and sleeps. So a lone request is verified at once, by its
// own goroutine, after one Gosched that returns immediately when nothing
// else is runnable; under load the batch fills by itself; and while one
// leader checks its batch, callers on another processor start and check
// theirs. That is what makes verification scale with GOMAXPROCS: with one
// leader at a time, as before, it stopped at about one core.
//
// A caller leads even while another leader is still forming its batch
// (yielding, not yet having taken it). Earlier versions queued such a
// caller behind the forming leader: on 2 processors that left one of them
// idle whenever the callers it had just woken all queued behind a leader
// forming on the other, about 12 % of the wall time of
// BenchmarkRelayVerifyParallel at -cpu 2; letting both form cut that to
// about 4 %, for batches of 21 instead of 26 (BENCHMARKS.md, session 7).
// With one processor there is one scratch, so nothing changes there.
//
// A leader that finds a free scratch and at least 2·minBatch requests
// waiting takes only half of them, so that another processor can check the
// other half at the same time; one that finds fewer than minBatch in all
// while another leader is busy puts them back at the head of the queue, to
// be batched with what comes next, rather than check them alone at three
// times the cost (a lone request, with no leader busy, is still checked at
// once). When a leader finishes, or takes its batch
// and leaves requests queued, and no batch is forming, it makes the oldest
// queued request a leader and hands it a scratch. So a queued request always
// has a leader coming: one forming, or one of the busy ones, which all pass
// leadership on when they finish.
//
// The yield matters with GOMAXPROCS=1: without it the leader would run before
// the other handlers that the network poller has just made runnable, and
// every batch would hold one request. The number of leaders is GOMAXPROCS
// when the Relay is made (at most maxLeaders); with one, this is exactly the
// single-leader batcher of earlier versions.
//
// All callers share one mutex, held for a few appends per request. At 2 cores
// that is far from a limit (about 10 µs of verification per request against
// tens of nanoseconds under the lock); docs/scaling.md says where it would be.
type batcher struct {
	mu      sync.Mutex
	queue   []*pending      // requests waiting for a leader, oldest first
	forming int             // leaders that have not yet taken their batch
	idle    []*batchScratch // the scratch of every leader that may still start
	batches uint64          // batches served, for tests of the batching itself
	served  uint64          // requests served in them
	// failScore is the share of recent batches that held a bad signature,
	// out of 256 (an average that moves by an eighth per batch); above
	// searchFirstScore, leaders search before the batch equation.
	failScore int

	// onLead, when set by a test, is called by every leader once it has
	// taken its batch and before it checks it; onForm by every leader as it
	// starts forming its batch, before it yields.
	onLead, onForm func()
}

// searchFirstScore is the failScore above which a batch is searched for bad
// signatures before any batch equation (see check): about one batch in eight
// failing. Searching first costs a clean batch of 64 one group error (about
// 25 µs against its 300 µs equation) and saves a poisoned one its failing
// equation, so it pays once about one batch in twelve fails.
const searchFirstScore = 32

// record adds a batch's outcome to failScore; mu must be held.
func (b *batcher) record(failed bool) {
	if failed {
		b.failScore += (256 - b.failScore) / 8
	} else {
		b.failScore -= (b.failScore + 7) / 8 // rounded up, so that it reaches 0
	}
}

// batchScratch is preallocated so that a batch allocates nothing of its own.
// Only the leader holding it touches it. Leadership passes under mu and
// through a channel, which orders one leader's use before the next one's.
type batchScratch struct {
	items  [maxBatch]*pending
	random [maxBatch * 16]byte // 128 random bits per z
	z      [maxBatch]scalar.Scalar
	negR   [maxBatch]curve.EdwardsPoint
	// The slices voi's multi-scalar multiplication takes, pointing into z
	// and negR.
	zs    [maxBatch]*scalar.Scalar
	negRs [maxBatch]*curve.EdwardsPoint
	// sum is the last batch equation's value before the multiplication by 8:
	// sum over the batch of [z_i](S_i B - k_i A - R_i).
	sum curve.EdwardsPoint
	// rest holds the requests that the fallback bisects.
	rest [maxBatch]*pending
}

func newBatcher(leaders int) batcher {
	idle := make([]*batchScratch, min(max(leaders, 1), maxLeaders))
	for i := range idle {
		idle[i] = new(batchScratch)
	}
	return batcher{queue: make([]*pending, 0, maxBatch), idle: idle}
}

// verify returns whether p's signature verifies, blocking until it is known.
func (b *batcher) verify(r *Relay, p *pending) bool {
	p.ok, p.lead = false, false
	var s *batchScratch
	b.mu.Lock()
	if len(b.idle) > 0 {
		s = b.takeScratch()
		b.forming++
		b.mu.Unlock()
	} else {
		b.queue = append(b.queue, p)
		b.mu.Unlock()
		if s = b.wait(p); s == nil {
			return p.ok
		}
	}
	for {
		if b.onForm != nil {
			b.onForm()
		}
		runtime.Gosched()
		if b.lead(r, p, s) {
			return p.ok
		}
		// It went back to the queue: wait for a result or for leadership.
		if s = b.wait(p); s == nil {
			return p.ok
		}
	}
}

// wait blocks until p has its result (nil) or must lead (its scratch).
func (b *batcher) wait(p *pending) *batchScratch {
	<-p.done
	if !p.lead {
		return nil
	}
	s := p.scratch
	p.lead, p.scratch = false, nil
	return s
}

// takeScratch pops a free scratch; mu must be held and idle non-empty.
func (b *batcher) takeScratch() *batchScratch {
	last := len(b.idle) - 1
	s := b.idle[last]
	b.idle[last] = nil
	b.idle = b.idle[:last]
	return s
}

// promote makes the oldest queued request a leader, if one is needed and
// may start: requests wait, no batch is forming (a forming leader will take
// them) and a scratch is free. mu must be held. The caller wakes the
// returned request, if any, after releasing mu.
func (b *batcher) promote() *pending {
	if len(b.queue) == 0 || b.forming > 0 || len(b.idle) == 0 {
		return nil
	}
	next := b.queue[0] // it waits, so it cannot go back to the pool before we wake it
	n := copy(b.queue, b.queue[1:])
	b.queue[n] = nil // keep no pointers to pooled values
	b.queue = b.queue[:n]
	next.lead, next.scratch = true, b.takeScratch()
	b.forming++
	return next
}

// lead serves one batch, which starts with self (the leader's own request),
// with the scratch s, and then passes leadership on or gives it up. It
// returns false, having served nothing, when self went back to the queue
// instead (see below).
func (b *batcher) lead(r *Relay, self *pending, s *batchScratch) bool {
	b.mu.Lock()
	b.forming--
	busy := cap(b.idle) - len(b.idle) - 1 - b.forming // other leaders checking a batch
	if busy > 0 && len(b.queue)+1 < minBatch {
		// Too few to batch, and another leader will pass leadership on when
		// it is done: rather than check these alone, at three times the
		// cost of their share of a batch, let them wait for that at the
		// head of the queue. A lone request still goes at once: no leader
		// is busy then.
		//
		// Nobody is promoted here (it would be self again, at once): the
		// busy leader promotes the head of the queue when it finishes, and
		// until then each new caller leads, takes the queue and, while it
		// is still short of minBatch, puts it back the same way.
		b.queue = append(b.queue, nil)
		copy(b.queue[1:], b.queue)
		b.queue[0] = self
		b.idle = append(b.idle, s)
		b.mu.Unlock()
		return false
	}
	searchFirst := b.failScore > searchFirstScore
	s.items[0] = self
	take := len(b.queue)
	if len(b.idle) > 0 && take+1 >= 2*minBatch {
		// Another processor could check half of these at the same time.
		take = (take + 1) / 2
	}
	n := 1 + copy(s.items[1:1+min(take, maxBatch-1)], b.queue)
	rest := copy(b.queue, b.queue[n-1:])
	clear(b.queue[rest:]) // keep no pointers to pooled values
	b.queue = b.queue[:rest]
	next := b.promote() // for what this leader left: more than a batch, or the other half
	b.mu.Unlock()
	if next != nil {
		next.done <- struct{}{}
	}
	if b.onLead != nil {
		b.onLead()
	}

	failed := r.check(s.items[:n], s, searchFirst)
	// The scratch goes back before the callers wake, so that when they come
	// back with their next requests another processor may already lead
	// them; the items are copied out of it first.
	var wake [maxBatch]*pending
	copy(wake[:n], s.items[:n])
	clear(s.items[:n])

	b.mu.Lock()
	b.batches++
	b.served += uint64(n)
	b.record(failed)
	b.idle = append(b.idle, s)
	next = b.promote()
	b.mu.Unlock()
	// Results first: after its done fires a caller may return its pending to
	// the pool, so nothing here touches an item after waking it.
	for _, p := range wake[:n] {
		if p != self {
			p.done <- struct{}{}
		}
	}
	if next != nil {
		next.done <- struct{}{}
	}
	return true
}

// check sets ok on every item to whether its signature satisfies its own
// cofactored equation, and reports whether any does not. A signature's
// result never depends on its batch-mates (except with the probability,
// about 2^-128, that a random batch equation accepts a bad signature, which
// every batch verifier has).
//
// A batch whose random equation holds is all good. One whose equation fails
// is searched (findBad) rather than re-checked one signature at a time: one
// bad signature in 64 used to cost 65 equations (3.7 clean batches) and
// costs 9 now, about 1.6 (BENCHMARKS.md). When most recent batches failed
// (searchFirst, from the batcher), the equation would most likely fail
// again and be wasted, so the search runs first and the random equation
// only confirms what it accepted.
func (r *Relay) check(items []*pending, s *batchScratch, searchFirst bool) (failed bool) {
	if len(items) < minBatch {
		return !r.verifyEach(items)
	}
	if searchFirst {
		return r.findBad(items, s, false)
	}
	if r.verifyBatch(items, s) {
		for _, p := range items {
			p.ok = true
		}
		return false
	}
	r.findBad(items, s, true)
	return true
}

// findBad sets ok on every item and reports whether any is bad. With failed
// set, the batch's random equation has just failed, and its z_i and sum are
// in s.
//
// It works on the batch's error, the point
//
//	E = [sum S_i]B + [sum k_i](-A) - sum R_i
//
// which is the sum of the signatures' own errors, so that E minus the error
// of any part of the batch is the error of the rest. Computing a group's
// error costs two fixed-base multiplications and one point addition per
// signature (groupError, about 25 µs for a whole batch of 64): a twelfth of
// a random batch equation over 64 signatures, and less than two single
// checks.
//
// The search bisects: a group whose error is not of small order holds a bad
// signature, and is split in halves; the left half's error is computed, the
// right half's is the group's minus the left's. A group of one is a single
// signature, and its error is exactly the one its own equation tests, so a
// rejection is never inferred from batch-mates. k bad signatures in n cost
// at most k·log2(n) group errors; one bad in 64 costs 7.
//
// A plain sum of errors can be fooled where a random combination cannot: bad
// signatures can be made whose errors cancel (with the relay's key, or
// without it by finding hash values whose sum is 0 mod L), and a group
// holding them all looks clean. So what the search accepts is then confirmed
// by a random batch equation over it, with z_i that nothing the search saw
// depends on: after a failed equation, its own z_i, restricted to the
// smaller of the accepted and the rejected sets (the rejected ones'
// contribution is subtracted from the failed sum); otherwise fresh ones. If
// the confirmation fails, the accepted ones are bisected again with random
// equations (bisectRandom), which nothing can fool.
func (r *Relay) findBad(items []*pending, s *batchScratch, failed bool) bool {
	var e curve.EdwardsPoint
	r.groupError(&e, items)
	r.bisect(items, &e)

	bad := 0
	for _, p := range items {
		if !p.ok {
			bad++
		}
	}
	if bad == len(items) {
		return true // nothing accepted, nothing to confirm
	}
	var sum curve.EdwardsPoint
	switch {
	case !failed:
		r.drawZ(items, s)
		r.randomSum(&sum, items, s, pickAccepted)
	case bad == 0:
		// The equation failed and the search saw nothing: cancelling errors.
		sum.Set(&s.sum)
	case bad <= len(items)-bad:
		r.randomSum(&sum, items, s, pickRejected)
		sum.Sub(&s.sum, &sum)
	default:
		r.randomSum(&sum, items, s, pickAccepted)
	}
	if sum.IsSmallOrder() {
		return bad > 0
	}
	// The search accepted a bad signature: start again on what it accepted,
	// with random equations, knowing that one of them is bad.
	rest := s.rest[:0]
	for _, p := range items {
		if p.ok {
			rest = append(rest, p)
		}
	}
	r.bisectRandom(rest, s, true)
	clear(s.rest[:])
	return true
}

// groupError sets e to the sum of the errors of items (see findBad).
func (r *Relay) groupError(e *curve.EdwardsPoint, items []*pending) {
	r.counted(groupEquation, len(items))
	var sumS, sumK scalar.Scalar
	var sumR curve.EdwardsPoint
	sumS.Zero()
	sumK.Zero()
	sumR.Identity()
	for _, p := range items {
		sumS.Add(&sumS, &p.S)
		sumK.Add(&sumK, &p.k)
		sumR.Add(&sumR, &p.R)
	}
	r.errorPoint(e, &sumS, &sumK, &sumR)
}

// bisect sets ok on items, given e, the sum of their errors: false for a
// signature whose own error is not of small order, true for the others,
// which findBad then confirms.
func (r *Relay) bisect(items []*pending, e *curve.EdwardsPoint) {
	if e.IsSmallOrder() {
		for _, p := range items {
			p.ok = true
		}
		return
	}
	if len(items) == 1 {
		items[0].ok = false // e is its own [S]B - [k]A - R
		return
	}
	mid := len(items) / 2
	var left, right curve.EdwardsPoint
	r.groupError(&left, items[:mid])
	right.Sub(e, &left)
	r.bisect(items[:mid], &left)
	r.bisect(items[mid:], &right)
}

// bisectRandom sets ok on items with random batch equations, splitting a
// batch that fails in halves, and reports whether all of them verified.
// knownBad says that items are known to hold a bad signature, so that their
// own batch equation need not be evaluated: the caller saw their parent
// fail and their sibling pass. Below minBatch signatures are checked alone.
func (r *Relay) bisectRandom(items []*pending, s *batchScratch, knownBad bool) bool {
	if len(items) < minBatch {
		return r.verifyEach(items)
	}
	if !knownBad && r.verifyBatch(items, s) {
		for _, p := range items {
			p.ok = true
		}
		return true
	}
	mid := len(items) / 2
	leftOK := r.bisectRandom(items[:mid], s, false)
	r.bisectRandom(items[mid:], s, leftOK)
	return false
}

// verifyEach sets ok on items with their own equations, for groups too
// small to batch, and reports whether all of them verified.
func (r *Relay) verifyEach(items []*pending) bool {
	all := true
	for _, p := range items {
		p.ok = r.verifyOne(p)
		all = all && p.ok
	}
	return all
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
// z_i, so that their scalars stay half-length. The z_i, the -R_i and the sum
// stay in s for findBad.
func (r *Relay) verifyBatch(items []*pending, s *batchScratch) bool {
	r.drawZ(items, s)
	r.randomSum(&s.sum, items, s, pickAll)
	return s.sum.IsSmallOrder() // multiplies by 8 and compares with the identity
}

// drawZ draws fresh random 128-bit z_i for items into s, and their -R_i.
func (r *Relay) drawZ(items []*pending, s *batchScratch) {
	n := len(items)
	_, _ = rand.Read(s.random[:16*n]) // crypto/rand.Read never fails (Go 1.24+)
	for i, p := range items {
		var zb [32]byte
		copy(zb[:16], s.random[16*i:16*i+16])
		// 16 bytes are always below the group order: no error to handle.
		_, _ = s.z[i].SetBytesModOrder(zb[:])
		s.negR[i].Neg(&p.R)
	}
}

// pick selects the items randomSum adds up.
type pick int

const (
	pickAll      pick = iota
	pickAccepted      // ok set
	pickRejected      // ok clear
)

func (k pick) takes(p *pending) bool { return k == pickAll || p.ok == (k == pickAccepted) }

// randomSum sets out to the batch equation's sum, before the multiplication
// by 8, over the items that k picks, with the z_i and -R_i that verifyBatch
// left in s for the same items.
func (r *Relay) randomSum(out *curve.EdwardsPoint, items []*pending, s *batchScratch, k pick) {
	var sumS, sumK, t scalar.Scalar
	sumS.Zero()
	sumK.Zero()
	m := 0
	for i, p := range items {
		if !k.takes(p) {
			continue
		}
		z := &s.z[i]
		sumS.Add(&sumS, t.Mul(z, &p.S))
		sumK.Add(&sumK, t.Mul(z, &p.k))
		s.zs[m], s.negRs[m] = z, &s.negR[i]
		m++
	}
	r.counted(batchEquation, m)
	static := [2]*scalar.Scalar{&sumS, &sumK}
	out.ExpandedMultiscalarMulVartime(static[:], r.staticPoints[:], s.zs[:m], s.negRs[:m])
	clear(s.zs[:m]) // keep no pointers into a finished batch
	clear(s.negRs[:m])
}
