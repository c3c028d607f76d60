package testkit

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pollEvery is how often Poll asks again: short against the timeouts tests
// give (seconds), long enough not to spin a shared CPU.
const pollEvery = 10 * time.Millisecond

// Poll asks cond until it holds or within has passed, and reports whether it
// held. It is for a test that wants to say more than Eventually does when
// the wait fails (e.g. the last value it saw).
func Poll(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); !cond(); time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Eventually fails t unless cond holds within the timeout; what says what
// was awaited.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(within, cond) {
		t.Fatalf("%s: not within %v", what, within)
	}
}

// SyncBuffer is an io.Writer whose text can be read while others write to
// it (a log sink, a child process's output). The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p; it never fails.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a 127.0.0.1 port nothing listens on right now. Another
// process may take it before the caller binds it, so callers that start a
// server on it retry on failure.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
