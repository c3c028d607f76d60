//go:build race

package verify

// raceEnabled lets the slowest table tests run a smaller table under the
// race detector, which slows the curve arithmetic about tenfold and finds
// nothing more in the larger one (it has no goroutines).
const raceEnabled = true
