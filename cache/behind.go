package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// CommitBehindDelay is the longest a delivered mark written by
// Redis.CommitBehind waits for a Reserve to carry it before it is written
// on its own.
const CommitBehindDelay = 2 * time.Millisecond

// inProgressRechecks are the pauses before Redis.Reserve looks again at a
// claim it found in progress: its send may be over, with the delivered mark
// still queued on the instance that sent it (written within
// CommitBehindDelay). A relay retrying right after a 202 then hears 200
// rather than 409, and one racing a send that just failed gets it
// delivered. About 14 ms in all; a claim still held after that is a send
// really in progress. Only the Redis store has this window: the embedded
// store writes its mark before the send answers, so it never looks again.
var inProgressRechecks = [...]time.Duration{CommitBehindDelay, 2 * CommitBehindDelay, 4 * CommitBehindDelay}

// lookAgain runs attempt after each of inProgressRechecks while the answer
// (res, err) is ErrDeliveryInProgress, and returns the last answer. An
// attempt that fails otherwise (the store stopped answering) keeps the
// in-progress answer: somebody else holds the claim, and a caller that
// took ErrUnavailable for "nothing claimed" (the router's in-process
// fallback) would deliver the message a second time.
func lookAgain(res Reservation, err error, attempt func() (Reservation, error)) (Reservation, error) {
	for _, pause := range inProgressRechecks {
		if !errors.Is(err, ErrDeliveryInProgress) {
			break
		}
		time.Sleep(pause)
		again, aerr := attempt()
		if aerr != nil && !errors.Is(aerr, ErrAlreadyDelivered) && !errors.Is(aerr, ErrDeliveryInProgress) {
			break
		}
		res, err = again, aerr
	}
	return res, err
}

// errStoreClosed is why a call after Close is refused (see Redis.closed).
var errStoreClosed = errors.New("the store is closed")

// maxCommitsBehind bounds the marks waiting to be written; past it
// CommitBehind writes the queue itself and waits, so a store that stopped
// answering slows senders down instead of growing the queue. It stays below
// rueidis' BlockingPipeline (2000): a larger DoMulti would go to a pooled
// connection of its own, outside the one-connection order tuneOption keeps.
const maxCommitsBehind = 1024

// maxKeptMarks bounds the marks kept after Redis did not take them (see
// behindQueue.kept): about 150 bytes each, 15 MB at most. A mark past it is
// dropped and reported to RedisConfig.OnLostCommits.
const maxKeptMarks = 100_000

// keptRetryEvery is how often the flusher tries to write the kept marks:
// after Redis answers again they land within this (plus one write), so a
// relay's retry through another instance after the lease finds them.
const keptRetryEvery = 100 * time.Millisecond

// keptBatch is how many kept marks one write carries, below rueidis'
// BlockingPipeline like maxCommitsBehind.
const keptBatch = 1000

// keptScript writes a kept delivered mark: KEYS[1] becomes "d" for ARGV[1]
// ms unless it already holds "d". A claim ("p:…") is overwritten — the
// message was delivered whoever claimed it, as Commit reasons — but a mark
// written since (by this message's later delivery, with a longer expiry) is
// newer than the kept one and is left alone: SET NX, for every value but a
// claim. A plain SET NX would leave this send's own claim, which survives a
// crash of a primary that persists what it acknowledges, to expire after
// the lease, and a retry would then deliver again.
const keptScript = `local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #'` + dedupPendingPrefix + `') ~= '` + dedupPendingPrefix + `' then return 0 end
redis.call('SET', KEYS[1], '` + dedupDelivered + `', 'PX', ARGV[1])
return 1`

// behindQueue holds the delivered marks that Redis.CommitBehind queued.
//
// Why: a send used to wait for two Redis round trips, its claim (Reserve)
// and its delivered mark (Commit). Nothing a relay hears depends on the mark
// having landed — a duplicate that finds the claim instead answers "in
// progress" (retryable), never a false success — so the mark is written
// behind the answer: it leaves in the same write as the next Reserve of
// this store, or after CommitBehindDelay. A send then waits for one round
// trip, and under load the marks cost no write of their own.
//
// unwritten counts, by key, the marks queued or being written. A Reserve
// of such a key answers ErrAlreadyDelivered without asking Redis: the flusher
// takes the queue before its write reaches Redis, so a Reserve sent in
// between would otherwise find the claim, and this store would contradict
// its own CommitBehind.
//
// kept holds, by key, the expiry (unix ns) of each mark whose write failed
// (Redis died, or did not answer in time): it is written again every
// keptRetryEvery until Redis takes it, with what is left of its TTL, and
// until then a Reserve of its key here answers ErrAlreadyDelivered. Marks
// used to be dropped there, and the claim's expiry then let a retry after
// the lease deliver again. At most keptMax marks are kept.
type behindQueue struct {
	mu           sync.Mutex
	cmds         rueidis.Commands
	keys         []string         // cmds[i]'s key
	expires      []int64          // cmds[i]'s expiry, unix ns
	spare        rueidis.Commands // a written queue's slices, for reuse
	spareKeys    []string
	spareExpires []int64
	unwritten    map[string]int
	kept         map[string]int64
	keptMax      int
	closed       bool          // Close wrote the last queue
	wake         chan struct{} // the queue became non-empty; capacity 1
}

func newBehindQueue() behindQueue {
	return behindQueue{wake: make(chan struct{}, 1), unwritten: make(map[string]int), kept: make(map[string]int64), keptMax: maxKeptMarks}
}

// CommitBehind implements Store: it queues the SET that Commit would send
// and returns. The mark leaves with this store's next Reserve or within
// CommitBehindDelay, and Close writes what is queued. Marks that cannot be
// written are reported to RedisConfig.OnLostCommits.
func (r *Redis) CommitBehind(ctx context.Context, res Reservation, ttl time.Duration) error {
	key := r.reservedKey(res)
	cmd := r.commitCommand(key, ttl)
	expires := time.Now().Add(ttl).UnixNano()
	q := &r.behind
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return unavailable(fmt.Sprintf("commit message %q for client %q", res.MessageID, res.ClientID), errStoreClosed)
	}
	if q.cmds == nil {
		q.cmds, q.spare = q.spare, nil
		q.keys, q.spareKeys = q.spareKeys, nil
		q.expires, q.spareExpires = q.spareExpires, nil
	}
	q.cmds = append(q.cmds, cmd)
	q.keys = append(q.keys, key)
	q.expires = append(q.expires, expires)
	q.unwritten[key]++
	n := len(q.cmds)
	q.mu.Unlock()
	switch {
	case n == 1:
		select {
		case q.wake <- struct{}{}:
		default:
		}
	case n >= maxCommitsBehind:
		return r.writeBehind(ctx, false)
	}
	return nil
}

// commitCommand is the SET that records the dedup key as delivered for ttl.
func (r *Redis) commitCommand(key string, ttl time.Duration) rueidis.Completed {
	return r.c.B().Arbitrary("SET").Keys(key).Args(dedupDelivered, "PX", r.millis.of(ttl)).Build()
}

// takeBehind empties the queue and returns what it held; final marks the
// queue closed, so that later marks are refused rather than lost.
func (r *Redis) takeBehind(final bool) (rueidis.Commands, []string, []int64) {
	q := &r.behind
	q.mu.Lock()
	cmds, keys, expires := q.cmds, q.keys, q.expires
	q.cmds, q.keys, q.expires = nil, nil, nil
	q.closed = q.closed || final
	q.mu.Unlock()
	return cmds, keys, expires
}

// reserveWithBehind sends Reserve's command for key, after the queued marks
// and in the same write unless the store is a cluster, and returns its
// result; delivered means a mark of key is still unwritten (queued, being
// written, or kept after a failed write), and then nothing is sent. On a
// cluster the marks are left to the flusher: rueidis waits for every node a
// DoMulti touches, so a slow shard would hold up Reserves of keys on
// healthy ones.
func (r *Redis) reserveWithBehind(ctx context.Context, key string, cmd rueidis.Completed) (result rueidis.RedisResult, delivered bool) {
	q := &r.behind
	q.mu.Lock()
	if q.unwritten[key] > 0 || len(q.kept) > 0 && q.keptLive(key) {
		q.mu.Unlock()
		return rueidis.RedisResult{}, true
	}
	var cmds rueidis.Commands
	var keys []string
	var expires []int64
	if r.carryMarks {
		cmds, keys, expires = q.cmds, q.keys, q.expires
		q.cmds, q.keys, q.expires = nil, nil, nil
	}
	q.mu.Unlock()
	if len(cmds) == 0 {
		return r.c.Do(ctx, cmd), false
	}
	marks := len(cmds)
	cmds = append(cmds, cmd)
	resps := r.c.DoMulti(ctx, cmds...)
	_ = r.settleBehind(cmds, keys, expires, resps, marks)
	return resps[marks], false
}

// keptLive reports whether key has a kept mark that has not expired; q.mu
// is held.
func (q *behindQueue) keptLive(key string) bool {
	exp, ok := q.kept[key]
	return ok && time.Now().UnixNano() < exp
}

// writeBehind writes the queued marks now; final closes the queue (Close).
func (r *Redis) writeBehind(ctx context.Context, final bool) error {
	cmds, keys, expires := r.takeBehind(final)
	if len(cmds) == 0 {
		return nil
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	return r.settleBehind(cmds, keys, expires, r.c.DoMulti(ctx, cmds...), len(cmds))
}

// settleBehind ends the first marks commands of a write (the delivered
// marks, keys[i] each, expiring at expires[i]): it takes them off
// unwritten, keeps those that failed for writeKept (in the same critical
// section, so that a Reserve of their keys never finds them in neither),
// reports those past the bound, and keeps the slices for reuse when every
// command was answered: only then has rueidis surely let go of them (a
// deadline can end the wait before a command is written). Its error says
// that some marks are not written yet.
func (r *Redis) settleBehind(cmds rueidis.Commands, keys []string, expires []int64, resps []rueidis.RedisResult, marks int) error {
	failed, answered := 0, true
	var first error
	for i, resp := range resps {
		if resp.NonRedisError() != nil {
			answered = false
		}
		if err := resp.Error(); i < marks && err != nil {
			if failed++; first == nil {
				first = err
			}
		}
	}
	dropped := 0
	q := &r.behind
	q.mu.Lock()
	for i, k := range keys {
		if q.unwritten[k]--; q.unwritten[k] <= 0 {
			delete(q.unwritten, k)
		}
		if failed > 0 && resps[i].Error() != nil && !q.keep(k, expires[i]) {
			dropped++
		}
	}
	if answered && cap(q.spare) < cap(cmds) {
		clear(cmds)
		clear(keys)
		q.spare, q.spareKeys, q.spareExpires = cmds[:0], keys[:0], expires[:0]
	}
	q.mu.Unlock()
	if failed == 0 {
		return nil
	}
	err := unavailable(fmt.Sprintf("record %d delivered messages", failed), first)
	r.reportLost(dropped, err)
	return err
}

// keep adds a mark whose write failed to q.kept, unless it is full; q.mu
// is held. It reports false for a mark it had to drop.
func (q *behindQueue) keep(key string, expires int64) bool {
	if old, ok := q.kept[key]; ok {
		q.kept[key] = max(old, expires)
		return true
	}
	if len(q.kept) >= q.keptMax {
		return false
	}
	q.kept[key] = expires
	return true
}

// reportLost tells OnLostCommits of n marks that will never be written.
func (r *Redis) reportLost(n int, err error) {
	if n > 0 && r.onLostCommits != nil {
		r.onLostCommits(n, err)
	}
}

// writeKept writes the kept marks, keptBatch at a time, each with what is
// left of its TTL (an expired one is forgotten), through keptScript. A mark
// Redis took leaves q.kept unless it was kept again meanwhile with a later
// expiry; the others stay for the next try. It stops at the first batch
// with a failure: Redis is still away.
func (r *Redis) writeKept(ctx context.Context) {
	q := &r.behind
	for {
		now := time.Now().UnixNano()
		keys := make([]string, 0, keptBatch)
		expires := make([]int64, 0, keptBatch)
		q.mu.Lock()
		for k, exp := range q.kept {
			if exp <= now {
				delete(q.kept, k)
				continue
			}
			keys, expires = append(keys, k), append(expires, exp)
			if len(keys) == keptBatch {
				break
			}
		}
		q.mu.Unlock()
		if len(keys) == 0 {
			return
		}
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			ms := strconv.FormatInt(max(time.Duration(expires[i]-now).Milliseconds(), 1), 10)
			cmds[i] = r.c.B().Eval().Script(keptScript).Numkeys(1).Key(k).Arg(ms).Build()
		}
		wctx, cancel := r.deadlines.Within(ctx)
		resps := r.c.DoMulti(wctx, cmds...)
		cancel()
		failed := false
		q.mu.Lock()
		for i, resp := range resps {
			if resp.Error() != nil {
				failed = true
			} else if q.kept[keys[i]] == expires[i] {
				delete(q.kept, keys[i])
			}
		}
		q.mu.Unlock()
		if failed || len(keys) < keptBatch {
			return
		}
	}
}

// dropKept forgets the marks still kept at Close and reports them lost.
func (r *Redis) dropKept() {
	q := &r.behind
	q.mu.Lock()
	now, n := time.Now().UnixNano(), 0
	for k, exp := range q.kept {
		if exp > now {
			n++
		}
		delete(q.kept, k)
	}
	q.mu.Unlock()
	r.reportLost(n, unavailable(fmt.Sprintf("record %d delivered messages before closing", n), errors.New("redis did not take them")))
}

// flushBehind writes queued marks that no Reserve carried within
// CommitBehindDelay, and the kept marks every keptRetryEvery, until Close,
// which it answers by writing the last queue and the kept marks once more.
func (r *Redis) flushBehind() {
	timer := time.NewTimer(CommitBehindDelay)
	timer.Stop()
	retry := time.NewTicker(keptRetryEvery)
	defer retry.Stop()
	last := func() {
		_ = r.writeBehind(context.Background(), true)
		r.writeKept(context.Background())
		r.dropKept()
	}
	for {
		select {
		case <-r.stop:
			last()
			return
		case <-retry.C:
			r.writeKept(context.Background())
			continue
		case <-r.behind.wake:
		}
		timer.Reset(CommitBehindDelay)
		select {
		case <-r.stop:
			timer.Stop()
			last()
			return
		case <-timer.C:
		}
		_ = r.writeBehind(context.Background(), false)
	}
}
