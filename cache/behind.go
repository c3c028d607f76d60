package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// CommitBehindDelay is the longest a delivered mark written by
// Redis.CommitBehind waits for a Reserve to carry it before it is written
// on its own.
const CommitBehindDelay = 2 * time.Millisecond

// errStoreClosed is why a mark queued after Close is refused.
var errStoreClosed = errors.New("the store is closed")

// maxCommitsBehind bounds the marks waiting to be written; past it
// CommitBehind writes the queue itself and waits, so a store that stopped
// answering slows senders down instead of growing the queue. It stays below
// rueidis' BlockingPipeline (2000): a larger DoMulti would go to a pooled
// connection of its own, outside the one-connection order tuneOption keeps.
const maxCommitsBehind = 1024

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
type behindQueue struct {
	mu        sync.Mutex
	cmds      rueidis.Commands
	keys      []string         // cmds[i]'s key
	spare     rueidis.Commands // a written queue's slices, for reuse
	spareKeys []string
	unwritten map[string]int
	closed    bool          // Close wrote the last queue
	wake      chan struct{} // the queue became non-empty; capacity 1
}

// CommitBehind implements Store: it queues the SET that Commit would send
// and returns. The mark leaves with this store's next Reserve or within
// CommitBehindDelay, and Close writes what is queued. Marks that cannot be
// written are reported to RedisConfig.OnLostCommits.
func (r *Redis) CommitBehind(ctx context.Context, res Reservation, ttl time.Duration) error {
	key := r.reservedKey(res)
	cmd := r.commitCommand(key, ttl)
	q := &r.behind
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return unavailable(fmt.Sprintf("commit message %q for client %q", res.MessageID, res.ClientID), errStoreClosed)
	}
	if q.cmds == nil {
		q.cmds, q.spare = q.spare, nil
		q.keys, q.spareKeys = q.spareKeys, nil
	}
	q.cmds = append(q.cmds, cmd)
	q.keys = append(q.keys, key)
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
func (r *Redis) takeBehind(final bool) (rueidis.Commands, []string) {
	q := &r.behind
	q.mu.Lock()
	cmds, keys := q.cmds, q.keys
	q.cmds, q.keys = nil, nil
	q.closed = q.closed || final
	q.mu.Unlock()
	return cmds, keys
}

// reserveWithBehind sends Reserve's command for key, after the queued marks
// and in the same write unless the store is a cluster, and returns its
// result; delivered means a mark of key is still unwritten, and then
// nothing is sent. On a cluster the marks are left to the flusher: rueidis
// waits for every node a DoMulti touches, so a slow shard would hold up
// Reserves of keys on healthy ones.
func (r *Redis) reserveWithBehind(ctx context.Context, key string, cmd rueidis.Completed) (result rueidis.RedisResult, delivered bool) {
	q := &r.behind
	q.mu.Lock()
	if q.unwritten[key] > 0 {
		q.mu.Unlock()
		return rueidis.RedisResult{}, true
	}
	var cmds rueidis.Commands
	var keys []string
	if r.carryMarks {
		cmds, keys = q.cmds, q.keys
		q.cmds, q.keys = nil, nil
	}
	q.mu.Unlock()
	if len(cmds) == 0 {
		return r.c.Do(ctx, cmd), false
	}
	marks := len(cmds)
	cmds = append(cmds, cmd)
	resps := r.c.DoMulti(ctx, cmds...)
	_ = r.settleBehind(cmds, keys, resps, marks)
	return resps[marks], false
}

// writeBehind writes the queued marks now; final closes the queue (Close).
func (r *Redis) writeBehind(ctx context.Context, final bool) error {
	cmds, keys := r.takeBehind(final)
	if len(cmds) == 0 {
		return nil
	}
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()
	return r.settleBehind(cmds, keys, r.c.DoMulti(ctx, cmds...), len(cmds))
}

// settleBehind ends the first marks commands of a write (the delivered
// marks, keys[i] each): it takes them off unwritten, reports those that
// failed, and keeps the slices for reuse when every command was answered:
// only then has rueidis surely let go of them (a deadline can end the wait
// before a command is written).
func (r *Redis) settleBehind(cmds rueidis.Commands, keys []string, resps []rueidis.RedisResult, marks int) error {
	lost, answered := 0, true
	var first error
	for i, resp := range resps {
		if resp.NonRedisError() != nil {
			answered = false
		}
		if err := resp.Error(); i < marks && err != nil {
			if lost++; first == nil {
				first = err
			}
		}
	}
	q := &r.behind
	q.mu.Lock()
	for _, k := range keys {
		if q.unwritten[k]--; q.unwritten[k] <= 0 {
			delete(q.unwritten, k)
		}
	}
	if answered && cap(q.spare) < cap(cmds) {
		clear(cmds)
		clear(keys)
		q.spare, q.spareKeys = cmds[:0], keys[:0]
	}
	q.mu.Unlock()
	if lost == 0 {
		return nil
	}
	err := unavailable(fmt.Sprintf("record %d delivered messages", lost), first)
	if r.onLostCommits != nil {
		r.onLostCommits(lost, err)
	}
	return err
}

// flushBehind writes queued marks that no Reserve carried within
// CommitBehindDelay, until Close, which it answers by writing the last
// queue.
func (r *Redis) flushBehind() {
	timer := time.NewTimer(CommitBehindDelay)
	timer.Stop()
	for {
		select {
		case <-r.stop:
			_ = r.writeBehind(context.Background(), true)
			return
		case <-r.behind.wake:
		}
		timer.Reset(CommitBehindDelay)
		select {
		case <-r.stop:
			timer.Stop()
			_ = r.writeBehind(context.Background(), true)
			return
		case <-timer.C:
		}
		_ = r.writeBehind(context.Background(), false)
	}
}
