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
// answering slows senders down instead of growing the queue.
const maxCommitsBehind = 4096

// behindQueue holds the delivered marks that Redis.CommitBehind queued.
//
// Why: a send used to wait for two Redis round trips, its claim (Reserve)
// and its delivered mark (Commit). Nothing a relay hears depends on the mark
// having landed — a duplicate that finds the claim instead answers "in
// progress" (retryable), never a false success — so the mark is written
// behind the answer: it leaves in the same write as the next Reserve of
// this store, or after CommitBehindDelay. A send then waits for one round
// trip, and under load the marks cost no write of their own.
type behindQueue struct {
	mu     sync.Mutex
	cmds   rueidis.Commands
	spare  rueidis.Commands // a written queue's slice, for reuse
	closed bool             // Close wrote the last queue
	wake   chan struct{}    // the queue became non-empty; capacity 1
}

// CommitBehind implements Store: it queues the SET that Commit would send
// and returns. The mark leaves with this store's next Reserve or within
// CommitBehindDelay, and Close writes what is queued. Marks that cannot be
// written are reported to RedisConfig.OnLostCommits.
func (r *Redis) CommitBehind(ctx context.Context, res Reservation, ttl time.Duration) error {
	cmd := r.commitCommand(res, ttl)
	q := &r.behind
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return unavailable(fmt.Sprintf("commit message %q for client %q", res.MessageID, res.ClientID), errStoreClosed)
	}
	if q.cmds == nil {
		q.cmds, q.spare = q.spare, nil
	}
	q.cmds = append(q.cmds, cmd)
	n := len(q.cmds)
	q.mu.Unlock()
	switch {
	case n == 1:
		select {
		case q.wake <- struct{}{}:
		default:
		}
	case n >= maxCommitsBehind:
		return r.writeBehind(ctx)
	}
	return nil
}

// commitCommand is the SET that records res as delivered for ttl.
func (r *Redis) commitCommand(res Reservation, ttl time.Duration) rueidis.Completed {
	return r.c.B().Arbitrary("SET").Keys(r.reservedKey(res)).Args(dedupDelivered, "PX", r.millis.of(ttl)).Build()
}

// takeBehind empties the queue and returns what it held; final marks the
// queue closed, so that later marks are refused rather than lost.
func (r *Redis) takeBehind(final bool) rueidis.Commands {
	q := &r.behind
	q.mu.Lock()
	cmds := q.cmds
	q.cmds = nil
	q.closed = q.closed || final
	q.mu.Unlock()
	return cmds
}

// doWithBehind sends cmd after the queued marks, in one write, and returns
// cmd's result.
func (r *Redis) doWithBehind(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	cmds := r.takeBehind(false)
	if len(cmds) == 0 {
		return r.c.Do(ctx, cmd)
	}
	marks := len(cmds)
	cmds = append(cmds, cmd)
	resps := r.c.DoMulti(ctx, cmds...)
	_ = r.settleBehind(cmds, resps, marks)
	return resps[marks]
}

// writeBehind writes the queued marks now.
func (r *Redis) writeBehind(ctx context.Context) error {
	cmds := r.takeBehind(false)
	if len(cmds) == 0 {
		return nil
	}
	return r.writeCommits(ctx, cmds)
}

func (r *Redis) writeCommits(ctx context.Context, cmds rueidis.Commands) error {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()
	return r.settleBehind(cmds, r.c.DoMulti(ctx, cmds...), len(cmds))
}

// settleBehind reports which of the first marks commands (the delivered
// marks) failed, and keeps the slice for reuse when every command was
// answered: only then has rueidis surely let go of it (a deadline can end
// the wait before a command is written).
func (r *Redis) settleBehind(cmds rueidis.Commands, resps []rueidis.RedisResult, marks int) error {
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
	if answered {
		clear(cmds)
		q := &r.behind
		q.mu.Lock()
		if cap(q.spare) < cap(cmds) {
			q.spare = cmds[:0]
		}
		q.mu.Unlock()
	}
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
			r.writeFinal()
			return
		case <-r.behind.wake:
		}
		timer.Reset(CommitBehindDelay)
		select {
		case <-r.stop:
			timer.Stop()
			r.writeFinal()
			return
		case <-timer.C:
		}
		_ = r.writeBehind(context.Background())
	}
}

// writeFinal writes the queue Close finds and closes it.
func (r *Redis) writeFinal() {
	if cmds := r.takeBehind(true); len(cmds) > 0 {
		_ = r.writeCommits(context.Background(), cmds)
	}
}
