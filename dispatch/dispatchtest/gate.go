package dispatchtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Gate is an arrival hook for Answer.Hold: it holds every push that plays
// the answer until the test calls Release, and reports each push's device
// token on Arrived as it arrives. A test that must act while a push is in flight (a duplicate
// send, a re-registration, a credential change) waits for the arrival
// instead of sleeping for a guessed delay, and lets the answer go when it
// is done. The zero value is not usable; call NewGate.
type Gate struct {
	arrived chan string
	release chan struct{}
	once    sync.Once
}

// gateArrivals is how many arrivals a Gate remembers for a test that has
// not read them yet; later ones are dropped rather than blocking the mock.
const gateArrivals = 64

// NewGate returns a closed gate: pushes are held until Release.
func NewGate() *Gate {
	return &Gate{arrived: make(chan string, gateArrivals), release: make(chan struct{})}
}

// Hold is the Answer.Hold hook: it reports the arrival, then waits for
// Release (true: answer) or for the client to give up (false: no answer).
// Pushes arriving after Release pass at once, and are still reported.
func (g *Gate) Hold(ctx context.Context) bool {
	select {
	case g.arrived <- HeldToken(ctx):
	default:
	}
	select {
	case <-g.release:
		return true
	case <-ctx.Done():
		return false
	}
}

// Arrived receives the device token of each push that reached Hold.
func (g *Gate) Arrived() <-chan string { return g.arrived }

// WaitArrived waits for the next arrival and returns its device token,
// failing t if none comes within timeout (the push never reached the
// provider).
func (g *Gate) WaitArrived(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case token := <-g.arrived:
		return token
	case <-time.After(timeout):
		t.Fatalf("no push reached the mock within %v", timeout)
		return ""
	}
}

// Release lets every held push, and every later one, be answered. It may
// be called more than once.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }
