// Package testkit holds helpers shared by the tests of every package. It is
// imported only from tests and from the test-helper packages (cachetest,
// dispatchtest).
package testkit

import (
	"os"
	"testing"
)

// FullTestsEnv names the environment variable that `make test` (and so CI)
// sets to 1. With it set, a test whose tools are missing fails instead of
// skipping: a CI run must never go green by skipping what it was meant to
// run.
const FullTestsEnv = "PUSH_SERVER_FULL_TESTS"

// SkipShort skips t under `go test -short`, saying what the test needs that
// the fast inner loop does without (a redis-server, node, a built binary).
func SkipShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s (run without -short, or make test)", needs)
	}
}

// Missing reports that something t needs is not installed. On a plain
// `go test` (FullTestsEnv unset) t is skipped with the message, which should
// say how to install it; under `make test` t fails with it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(FullTestsEnv) != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
