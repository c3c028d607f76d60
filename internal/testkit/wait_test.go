package testkit

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPollReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	if !Poll(time.Second, func() bool { calls++; return calls == 3 }) {
		t.Fatal("Poll = false; want true once cond holds")
	}
	if calls != 3 {
		t.Errorf("cond asked %d times; want 3 (Poll stops once it holds)", calls)
	}
}

func TestPollGivesUpAfterTimeout(t *testing.T) {
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll = true for a cond that never holds")
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
		t.Errorf("Poll gave up after %v; want about 50ms", took)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestEventuallyFailsSayingWhat(t *testing.T) {
	f := &fatalRecorder{TB: t}
	Eventually(f, 20*time.Millisecond, "the queue to drain", func() bool { return false })
	if !strings.Contains(f.msg, "the queue to drain") {
		t.Errorf("failure %q does not say what was awaited", f.msg)
	}
	f.msg = ""
	Eventually(f, time.Second, "true", func() bool { return true })
	if f.msg != "" {
		t.Errorf("Eventually failed for a cond that holds: %q", f.msg)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("len = %d after 800 one-byte writes", n)
	}
}

func TestFreePortIsFree(t *testing.T) {
	port := FreePort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("FreePort gave %d, which cannot be bound: %v", port, err)
	}
	ln.Close()
}
