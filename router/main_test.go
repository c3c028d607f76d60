package router

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
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
	code := m.Run()
	if code == 0 {
		if leaked := waitForLeakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
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
}

func waitForLeakedGoroutines(grace time.Duration) string {
	deadline := time.Now().Add(grace)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		// The first goroutine is this one.
		_, others, _ := strings.Cut(string(buf), "\n\n")
		var leaked []string
		for _, g := range strings.Split(others, "\n\n") {
			if g != "" && !isLibraryGoroutine(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isLibraryGoroutine(stack string) bool {
	for _, marker := range libraryGoroutines {
		if strings.Contains(stack, marker) {
			return true
		}
	}
	return false
}
