package dispatch

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff bounds of the default RetryDelay.
const (
	retryBase = 100 * time.Millisecond
	retryCap  = 2 * time.Second
	// retryAfterCap bounds how long a provider's Retry-After can hold one
	// push: past it, the push fails with ErrUnavailable and the relay, which
	// retries anyway, decides when to come back.
	retryAfterCap = 5 * time.Second
)

// defaultRetryDelay is capped exponential backoff with equal jitter: half of
// the step is fixed and half random, so retries of many pushes spread out
// without ever dropping to an immediate retry (full jitter can draw 0, which
// hammers a provider that just said 503). A Retry-After wins, capped at
// retryAfterCap.
func defaultRetryDelay(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, retryAfterCap)
	}
	d := retryCap
	if attempt >= 1 && attempt < 16 {
		d = min(retryBase<<(attempt-1), retryCap)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryPolicy decides how often and when a push is tried again.
type retryPolicy struct {
	maxAttempts int
	delay       func(attempt int, retryAfter time.Duration) time.Duration
	budget      *retryBudget // caps retries per second; nil = no cap
}

// wait sleeps before the try after attempt. It returns false, at once, when
// ctx ends first or when ctx's deadline comes before the delay would end:
// sleeping into a deadline only to give up is wasted time for the caller.
func (p *retryPolicy) wait(ctx context.Context, attempt int, retryAfter time.Duration) bool {
	d := p.delay(attempt, retryAfter)
	if d <= 0 {
		return ctx.Err() == nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// answer is what one try of a push got back.
type answer struct {
	status     int           // HTTP status; 0 when no answer came
	reason     string        // provider's reason: APNs reason, FCM error code
	message    string        // provider's human message (FCM), for classification
	retryAfter time.Duration // parsed Retry-After, 0 when absent
	err        error         // transport error when no answer came
}

// run tries a push until it is accepted, fails for good, runs out of
// attempts, finds the retry budget empty or ctx ends. It returns nil or a
// *ProviderError; classify is the provider's row of errors.go.
//
// The budget is asked before the backoff sleep, not after: a push refused a
// retry fails at once instead of sleeping only to give up. A token taken for
// a wait that then ends early (ctx done) is lost, which errs on the side of
// fewer retries.
func (p *retryPolicy) run(ctx context.Context, provider string, classify func(answer) (error, bool), try func(context.Context) answer) error {
	var last answer // the last try that got an answer, for the report
	for attempt := 1; ; attempt++ {
		a := try(ctx)
		if a.err == nil && a.status >= 200 && a.status < 300 {
			return nil
		}
		if a.status != 0 {
			last = a
		}
		sentinel, retry := classify(a)
		if !retry || attempt >= p.maxAttempts || !p.budget.take() || !p.wait(ctx, attempt, a.retryAfter) {
			pe := &ProviderError{Provider: provider, Status: last.status, Reason: last.reason, Attempts: attempt, Err: sentinel}
			if a.status == 0 && a.err != nil {
				pe.Cause = a.err
				if !retry {
					// A permanent transport failure (a TLS rejection):
					// the status of an earlier try would mislead.
					pe.Status, pe.Reason = 0, ""
				}
			}
			return pe
		}
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// Anything else, and a date in the past, is 0.
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
