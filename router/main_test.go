package router

import (
	"testing"
	"time"

	"push-server/internal/testkit"
)

// TestMain fails the run when goroutines outlive the tests, as dispatch's
// does: every Server is shut down, every store and Dispatcher closed and
// every mock stopped in Cleanup, so a goroutine still alive after a grace
// period is a leak (a server never shut down, a connection never closed, a
// send's goroutine that never returns). Unlike dispatch, which looks for
// HTTP connections only, it counts every goroutine but those of
// libraryGoroutines, because router also owns fasthttp servers, Redis
// clients and its own background loops.
func TestMain(m *testing.M) {
	testkit.RunCheckingGoroutines(m, 5*time.Second, func(stack string) bool {
		return !testkit.ContainsAny(stack, libraryGoroutines)
	})
}

// libraryGoroutines identify goroutines that a library keeps after the
// tests released everything they used, so they are no leak of ours.
var libraryGoroutines = []string{
	// fasthttp keeps the Date header of every server fresh from one
	// goroutine that it starts with the first server and never stops.
	"github.com/valyala/fasthttp.updateServerDate.func1",
	// A fasthttp server's idle-worker cleaner sees the server stopped only
	// when its sleep ends, up to MaxIdleWorkerDuration (10 s by default)
	// later. A server left running is still caught: by its Serve
	// goroutine, blocked in Accept.
	"github.com/valyala/fasthttp.(*workerPool).Start.func2",
	// The runtime's signal loop, which lives from the first signal.Notify
	// on: go test's fuzzing engine calls it (make fuzz).
	"os/signal.loop",
}
