package dispatchtest

import (
	"errors"
	"strconv"
	"testing"
)

// TestWebPushServiceBoundsSubscriptions: a long-running mock-providers
// takes POST /subscribe from anyone, so it holds a bounded number.
func TestWebPushServiceBoundsSubscriptions(t *testing.T) {
	m, err := NewWebPushService(WebPushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	m.subMu.Lock()
	for i := range webpushMaxSubscriptions - 1 {
		m.subs[strconv.Itoa(i)] = &webpushSub{}
	}
	m.subMu.Unlock()
	if _, err := m.subscribe(""); err != nil {
		t.Fatalf("the last subscription under the bound: %v", err)
	}
	if _, err := m.subscribe(""); !errors.Is(err, errTooManySubscriptions) {
		t.Fatalf("one past the bound: %v, want errTooManySubscriptions", err)
	}
}
