package deadline

import (
	"context"
	"testing"
	"time"
)

// TestDeadlinesBoundEveryCall: whatever context a call gets, it ends no
// sooner than the timeout after the call started and no later than the
// timeout plus one tick; a caller's cancellable context still ends it.
func TestDeadlinesBoundEveryCall(t *testing.T) {
	const timeout = 200 * time.Millisecond
	d := New(timeout)
	for i := 0; i < 50; i++ {
		start := time.Now()
		ctx, cancel := d.Within(context.Background())
		dl, ok := ctx.Deadline()
		cancel()
		if !ok {
			t.Fatal("a store call's context has no deadline")
		}
		if dl.Before(start.Add(timeout)) {
			t.Fatalf("call %d: deadline %v after its start; want at least %v", i, dl.Sub(start), timeout)
		}
		if late := time.Until(dl); late > timeout+d.granularity {
			t.Fatalf("call %d: deadline %v from now; want at most %v", i, late, timeout+d.granularity)
		}
		time.Sleep(d.granularity / 7) // calls land in different ticks
	}

	// Calls in one tick share a context: that is the point (one timer).
	// A long tick makes "the same tick" certain.
	long := &Shared{timeout: timeout, granularity: time.Hour}
	a, _ := long.Within(context.Background())
	if b, _ := long.Within(context.Background()); a != b {
		t.Error("two calls in the same tick got two contexts")
	}

	// The shared context really ends at its deadline.
	a, _ = d.Within(context.Background())
	select {
	case <-a.Done():
	case <-time.After(timeout + d.granularity + time.Second):
		t.Fatal("the shared context did not end after its deadline")
	}

	// A caller's cancellable context gets its own timer and its cancel.
	parent, cancelParent := context.WithCancel(context.Background())
	own, cancel := d.Within(parent)
	defer cancel()
	if own == d.current.Load().ctx {
		t.Fatal("a cancellable caller got the shared context")
	}
	cancelParent()
	select {
	case <-own.Done():
	case <-time.After(time.Second):
		t.Fatal("cancelling the caller's context did not end the store call's")
	}
}

// TestDeadlinesNeverHandOutAnEndedContext: whatever the hand-out window
// says (a clock that jumped, a bug), a context that has ended is replaced,
// or every store call would fail at once while readiness stayed green.
func TestDeadlinesNeverHandOutAnEndedContext(t *testing.T) {
	d := New(time.Second)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	d.current.Store(&sharedDeadline{ctx: ended, cancel: cancel, handOutUntil: time.Now().Add(time.Hour)})
	ctx, done := d.Within(context.Background())
	defer done()
	if err := ctx.Err(); err != nil {
		t.Fatalf("within handed out an ended context: %v", err)
	}
}
