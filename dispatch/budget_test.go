package dispatch

import (
	"errors"
	"sync"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
)

// fakeClockBudget is a budget of perSecond whose clock the test moves.
func fakeClockBudget(perSecond int) (*retryBudget, *int64) {
	b := newRetryBudget(perSecond, nil)
	var now int64
	b.now = func() int64 { return now }
	return b, &now
}

func TestRetryBudgetBurstThenRate(t *testing.T) {
	b, now := fakeClockBudget(5)
	for i := range 5 {
		if !b.take() {
			t.Fatalf("take %d of a full bucket of 5 refused", i+1)
		}
	}
	if b.take() {
		t.Fatal("6th take within the same instant granted; want refused")
	}
	*now += int64(199 * time.Millisecond)
	if b.take() {
		t.Fatal("take 199 ms later granted; one token takes 200 ms at 5/s")
	}
	*now += int64(time.Millisecond)
	if !b.take() {
		t.Fatal("take 200 ms later refused; want one new token")
	}
	if b.take() {
		t.Fatal("second take 200 ms later granted; want only one new token")
	}
	// A long idle spell refills only up to the burst, not beyond.
	*now += int64(time.Hour)
	granted := 0
	for range 20 {
		if b.take() {
			granted++
		}
	}
	if granted != 5 {
		t.Fatalf("after an idle hour %d of 20 takes granted; want the burst of 5", granted)
	}
	if got := b.counts.refused.Load(); got != 3+15 {
		t.Fatalf("refused = %d; want 18", got)
	}
}

func TestRetryBudgetNilIsUnlimited(t *testing.T) {
	var b *retryBudget
	for range 1000 {
		if !b.take() {
			t.Fatal("nil budget refused a retry")
		}
	}
}

func TestRetryBudgetTakeDoesNotAllocate(t *testing.T) {
	b := newRetryBudget(1<<20, nil)
	if n := testing.AllocsPerRun(1000, func() { b.take() }); n != 0 {
		t.Fatalf("take allocates %v times; want 0", n)
	}
}

// A flapping provider (503 to everything) sees every first attempt but only
// as many retries as the budget allows; every push still fails with
// ErrUnavailable.
func TestAPNsRetryBudgetCapsRetryStorm(t *testing.T) {
	const pushes, perSecond = 40, 5
	a := newTokenAPNs(t, false, func(c *Config) { c.MaxRetriesPerSecond = perSecond })
	a.mock.Script(testToken, dispatchtest.Answer{Status: 503})

	start := time.Now()
	errs := make([]error, pushes)
	var wg sync.WaitGroup
	for i := range pushes {
		wg.Go(func() { errs[i] = a.s.Send(t.Context(), testToken, visible()) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("push %d: Send = %v; want ErrUnavailable", i, err)
		}
	}
	// The burst of one second's worth, plus what refilled while the test
	// ran (one token per 200 ms), plus one for rounding.
	maxRetries := perSecond + int(elapsed*perSecond/time.Second) + 1
	got := len(a.mock.Requests())
	if got < pushes || got > pushes+maxRetries {
		t.Fatalf("mock saw %d requests in %v; want %d first attempts + at most %d retries", got, elapsed, pushes, maxRetries)
	}
	if got == pushes {
		t.Fatal("mock saw no retry at all; want the budget's burst to be used")
	}
	// Each push stops at its first refused retry, so every push that did
	// not get both its retries counts once.
	retries := got - pushes
	if r := a.d.RetriesRefused(); r < uint64(pushes-retries/2) || r > pushes {
		t.Fatalf("RetriesRefused = %d with %d retries granted; want between %d and %d", r, retries, pushes-retries/2, pushes)
	}
}

// With the default budget a single flap still heals with one retry.
func TestAPNsDefaultRetryBudgetRetries(t *testing.T) {
	a := newTokenAPNs(t, false, nil)
	a.mock.Script(testToken, dispatchtest.Answer{Status: 503}, dispatchtest.Answer{})
	if err := a.s.Send(t.Context(), testToken, visible()); err != nil {
		t.Fatalf("Send = %v; want delivered after one retry", err)
	}
	if got := len(a.mock.Requests()); got != 2 {
		t.Fatalf("mock saw %d requests; want 2", got)
	}
	if r := a.d.RetriesRefused(); r != 0 {
		t.Fatalf("RetriesRefused = %d; want 0", r)
	}
}
