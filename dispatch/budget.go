package dispatch

import (
	"sync/atomic"
	"time"
)

// retryBudget is a token bucket of retries, shared by every provider of one
// Dispatcher: a flapping provider answering 503 to every push would
// otherwise see each push up to MaxAttempts times, a retry storm that grows
// with traffic. With the budget it sees every first attempt plus at most
// rate retries a second (after a burst of one second's worth); a push whose
// retry is refused fails at once with its last error.
//
// It is GCRA, the token bucket kept as one number: tat, the time at which
// the bucket would be full again. Taking a token pushes tat one interval
// later; a take that would push it more than one second past now is
// refused. One CAS per retry, no lock, no allocation; the success path
// (a push accepted on its first try) never touches it.
type retryBudget struct {
	interval int64 // ns between tokens: 1 s / rate
	limit    int64 // ns of credit the bucket holds: the burst, one second's worth
	tat      atomic.Int64
	counts   *retryCounts // what it granted and refused; may be shared
	epoch    time.Time    // origin of the monotonic clock below
	now      func() int64 // ns since epoch; tests replace it
}

// retryCounts counts retries granted and refused. A Pool's tenant
// Dispatchers share one, so its totals outlive the Dispatchers it retires.
type retryCounts struct {
	granted, refused atomic.Uint64
}

// newRetryBudget returns a budget of perSecond retries a second that counts
// into counts, or into counts of its own when counts is nil.
func newRetryBudget(perSecond int, counts *retryCounts) *retryBudget {
	if counts == nil {
		counts = new(retryCounts)
	}
	interval := max(int64(time.Second)/int64(perSecond), 1)
	b := &retryBudget{interval: interval, limit: interval * int64(perSecond), counts: counts, epoch: time.Now()}
	b.now = func() int64 { return int64(time.Since(b.epoch)) }
	return b
}

// take spends one retry token and reports whether there was one. A nil
// budget is unlimited.
func (b *retryBudget) take() bool {
	if b == nil {
		return true
	}
	now := b.now()
	for {
		old := b.tat.Load()
		next := max(old, now) + b.interval
		if next-now > b.limit {
			b.counts.refused.Add(1)
			return false
		}
		if b.tat.CompareAndSwap(old, next) {
			b.counts.granted.Add(1)
			return true
		}
	}
}
