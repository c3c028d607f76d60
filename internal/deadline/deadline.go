// Package deadline bounds calls by a timeout without a runtime timer per
// call: the store's Redis calls and the router's provider hand-offs.
package deadline

import (
	"context"
	"sync/atomic"
	"time"
)

// Shared bounds calls by a timeout without a timer per call.
//
// Every send makes three store calls and a provider hand-off; a
// context.WithTimeout for each costs allocations, a runtime timer and its
// cancellation, about 5 % of a send's CPU in a profile of the server on one
// core. Calls that start within the same tick of length granularity share
// one context instead, made by the first of them with a deadline of
// timeout + granularity from its start: a call therefore gets at least
// timeout and at most timeout + granularity, and the process makes one
// timer per tick rather than one per call.
type Shared struct {
	timeout     time.Duration
	granularity time.Duration
	current     atomic.Pointer[sharedDeadline]
}

// sharedDeadline is the context handed out until handOutUntil. That is a
// time.Time with its monotonic reading, compared with Before: a wall clock
// stepped back (NTP, a resumed VM) must not keep an expired context in use.
type sharedDeadline struct {
	ctx          context.Context
	cancel       context.CancelFunc // kept so that vet sees it is not lost; the deadline ends it
	handOutUntil time.Time
}

// New bounds calls by timeout, sharing a context per tick of a tenth of it
// (at least a millisecond).
func New(timeout time.Duration) *Shared {
	return NewTick(timeout, max(timeout/10, time.Millisecond))
}

// NewTick is New with the tick given: a call may then run up to
// granularity longer than timeout, which a caller whose timeout is nested
// in another one (a send inside its dedup lease) keeps small.
func NewTick(timeout, granularity time.Duration) *Shared {
	return &Shared{timeout: timeout, granularity: max(granularity, time.Millisecond)}
}

// Within returns ctx bounded by the timeout. A caller's own context that can
// end (a deadline or a cancel) gets a timer of its own as usual; the shared
// one is only for parents that cannot end (context.Background, what the
// send path passes), and it carries none of their values: the store and
// the providers read none. The shared context is never cancelled before
// its deadline, so the returned CancelFunc does nothing then.
func (d *Shared) Within(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() != nil {
		return context.WithTimeout(ctx, d.timeout)
	}
	now := time.Now()
	if cur := d.current.Load(); cur != nil && now.Before(cur.handOutUntil) && cur.ctx.Err() == nil {
		return cur.ctx, noCancel
	}
	// Two calls may both get here at a tick's start: each makes a context,
	// the later store wins, and both contexts are correct for their caller.
	shared, cancel := context.WithDeadline(context.Background(), now.Add(d.timeout+d.granularity))
	d.current.Store(&sharedDeadline{ctx: shared, cancel: cancel, handOutUntil: now.Add(d.granularity)})
	return shared, noCancel
}

func noCancel() {}
