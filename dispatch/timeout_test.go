package dispatch

import (
	"context"
	"testing"
	"time"
)

// A push under the router's deadline, which ends within PROVIDER_TIMEOUT,
// gets no timer context of its own (APNs, FCM and Web Push alike); one
// without a deadline, or with a later one, is still bounded by the timeout.
func TestWithTimeoutKeepsAnEarlierDeadline(t *testing.T) {
	const timeout = time.Second
	early, cancel := context.WithTimeout(context.Background(), timeout/2)
	defer cancel()
	if got, stop := withTimeout(early, timeout); got != early {
		stop()
		t.Fatal("a context ending within the timeout was wrapped; want it as it is")
	}
	if n := testing.AllocsPerRun(100, func() {
		_, stop := withTimeout(early, timeout)
		stop()
	}); n != 0 {
		t.Errorf("withTimeout under an earlier deadline allocates %.0f times; want 0", n)
	}

	late, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for name, parent := range map[string]context.Context{"no deadline": context.Background(), "a later deadline": late} {
		ctx, stop := withTimeout(parent, timeout)
		dl, ok := ctx.Deadline()
		stop()
		if !ok || time.Until(dl) > timeout {
			t.Errorf("under %s: deadline %v (set %v); want within %v", name, time.Until(dl), ok, timeout)
		}
		if ctx.Err() == nil {
			t.Errorf("under %s: the context is not cancelled by its CancelFunc", name)
		}
	}
}
