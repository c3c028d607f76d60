package dispatch

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when HTTP connections outlive the tests: every
// Dispatcher is closed and every mock stopped in Cleanup, so a connection
// goroutine still alive after a grace period is a leak (a transport built
// per push, say, instead of once).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForConnGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
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

func waitForConnGoroutines(grace time.Duration) string {
	deadline := time.Now().Add(grace)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, m := range connMarkers {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
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
