// Command verifyrate measures how many crypto/ed25519.Verify calls per
// second one goroutine does: the baseline every send rate is divided by.
// run.sh pins it like the server (taskset -c 0, GOMAXPROCS=1) and runs it
// right before the load, so both figures come from the same machine state.
//
// With -relay-callers N (run.sh: 64, its connection count) it also measures
// the gateway's own relay verification, verify.Relay.Verify, from N
// concurrent callers: full batches, the best case of the send path's
// verification. With the bare fasthttp ceiling it bounds the ratio any send
// path can reach on this machine today (run.sh prints that bound). The two
// are measured in alternating slices of -d, each figure the median of its
// slices, so that a dip of the machine moves both alike.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"push-server/loadtest"
	"push-server/verify"
)

// sink keeps the compiler from dropping the verifications; run reads it.
var sink bool

func main() {
	d := flag.Duration("d", 3*time.Second, "how long to measure each rate")
	callers := flag.Int("relay-callers", 0, "also measure verify.Relay.Verify from this many concurrent callers (0: skip)")
	flag.Parse()
	if err := run(*d, *callers); err != nil {
		fmt.Fprintln(os.Stderr, "verifyrate:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, callers int) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	// The message a real send signs, so the hashed length matches.
	b, err := loadtest.SignBatch(priv, []string{"z6MkVerifyRate"}, 1, 1, time.Now().Unix(), "verifyrate")
	if err != nil {
		return err
	}
	body := b.AppendBody(nil, 0)
	msg := verify.AppendMessage(nil, b.Timestamp, body)
	sig := ed25519.Sign(priv, msg)
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("the signature does not verify")
	}
	var r *verify.Relay
	sigHex := b.AppendSignature(nil, 0)
	if callers > 0 {
		if r, err = verify.NewRelay(pub, 0); err != nil {
			return err
		}
		if err := r.Verify(b.Timestamp, sigHex, body); err != nil {
			return fmt.Errorf("relay verification refuses a good signature: %w", err)
		}
	}
	// The two rates are measured in alternating slices and each is the
	// median of its slices: on this VM the host sometimes takes the core
	// away for a second or so, and a single window per rate then put the
	// whole dip into one of the two (a stdlib rate of 19,116/s against
	// 23,831/s a minute later, a bound of 2.42 instead of ~1.95).
	stdlib := make([]float64, 0, rounds)
	relay := make([]float64, 0, rounds)
	for range rounds {
		stdlib = append(stdlib, stdlibRate(pub, msg, sig, d/rounds))
		if r != nil {
			rate, err := relayRate(r, b.Timestamp, sigHex, body, callers, d/rounds)
			if err != nil {
				return err
			}
			relay = append(relay, rate)
		}
	}
	if !sink {
		return fmt.Errorf("the signature stopped verifying")
	}
	v := median(stdlib)
	line := fmt.Sprintf("VERIFY verifies_per_s=%.0f ns_per_verify=%.0f", v, 1e9/v)
	if r != nil {
		line += fmt.Sprintf(" relay_callers=%d relay_verifies_per_s=%.0f", callers, median(relay))
	}
	fmt.Println(line)
	return nil
}

// rounds is how many alternating slices the -d of each rate is cut into.
const rounds = 6

// stdlibRate is crypto/ed25519.Verify's calls per second in one goroutine
// over d.
func stdlibRate(pub ed25519.PublicKey, msg, sig []byte, d time.Duration) float64 {
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 100 {
			sink = ed25519.Verify(pub, msg, sig)
		}
		n += 100
	}
	return float64(n) / time.Since(start).Seconds()
}

// relayRate is r.Verify's throughput from callers goroutines that each
// verify the same signed send over and over for d.
func relayRate(r *verify.Relay, ts, sigHex, body []byte, callers int, d time.Duration) (float64, error) {
	var done atomic.Uint64
	var failed atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := r.Verify(ts, sigHex, body); err != nil {
					failed.Store(&err)
					return
				}
				done.Add(1)
			}
		})
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	if errp := failed.Load(); errp != nil {
		return 0, fmt.Errorf("relay verification failed under load: %w", *errp)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// median is the middle of rates (the mean of the two middle ones for an
// even count); rates is sorted in place.
func median(rates []float64) float64 {
	slices.Sort(rates)
	n := len(rates)
	if n%2 == 1 {
		return rates[n/2]
	}
	return (rates[n/2-1] + rates[n/2]) / 2
}
