package dispatch

import (
	"testing"
	"time"

	"push-server/internal/testkit"
)

// TestMain fails the run when HTTP connections outlive the tests: every
// Dispatcher is closed and every mock stopped in Cleanup, so a connection
// goroutine still alive after a grace period is a leak (a transport built
// per push, say, instead of once).
func TestMain(m *testing.M) {
	testkit.RunCheckingGoroutines(m, 5*time.Second, func(stack string) bool {
		return testkit.ContainsAny(stack, connMarkers)
	})
}

// connMarkers identify goroutines of HTTP/1 and HTTP/2 connections, client
// or server side.
var connMarkers = []string{
	"net/http.(*persistConn)",
	"golang.org/x/net/http2.(*ClientConn)",
	"golang.org/x/net/http2.(*clientConnReadLoop)",
	"net/http.(*conn).serve",
	"net/http.(*http2serverConn)",
}
