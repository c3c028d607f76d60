package testkit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// RunCheckingGoroutines is a TestMain body: it runs the tests and, when they
// passed, fails the run if goroutines that leaked reports as a leak are
// still alive after grace. Tests release what they start in Cleanup, so a
// goroutine that outlives them all is a leak; grace lets closing
// connections and stopping servers finish.
func RunCheckingGoroutines(m *testing.M, grace time.Duration, leaked func(stack string) bool) {
	code := m.Run()
	if code == 0 {
		if stacks := waitForLeaks(grace, leaked); stacks != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

// waitForLeaks polls every goroutine's stack but the caller's until none is
// a leak or grace has passed, and returns the leaks' stacks then.
func waitForLeaks(grace time.Duration, leaked func(stack string) bool) string {
	deadline := time.Now().Add(grace)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		// The first goroutine is this one.
		_, others, _ := strings.Cut(string(buf), "\n\n")
		var leaks []string
		for _, g := range strings.Split(others, "\n\n") {
			if g != "" && leaked(g) {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ContainsAny reports whether stack names any of markers.
func ContainsAny(stack string, markers []string) bool {
	for _, m := range markers {
		if strings.Contains(stack, m) {
			return true
		}
	}
	return false
}
