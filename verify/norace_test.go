//go:build !race

package verify

// raceEnabled: see race_test.go.
const raceEnabled = false
