// Command verifyrate measures how many crypto/ed25519.Verify calls per
// second one goroutine does: the baseline every send rate is divided by.
// run.sh pins it like the server (taskset -c 0, GOMAXPROCS=1) and runs it
// right before the load, so both figures come from the same machine state.
//
// With -relay-callers N (run.sh: 64, its connection count) it then measures
// the gateway's own relay verification, verify.Relay.Verify, from N
// concurrent callers: full batches, the best case of the send path's
// verification. With the bare fasthttp ceiling it bounds the ratio any send
// path can reach on this machine today (run.sh prints that bound).
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"push-server/loadtest"
	"push-server/verify"
)

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
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 100 {
			sink = ed25519.Verify(pub, msg, sig)
		}
		n += 100
	}
	if !sink {
		return fmt.Errorf("the signature does not verify")
	}
	el := time.Since(start)
	line := fmt.Sprintf("VERIFY verifies_per_s=%.0f ns_per_verify=%.0f", float64(n)/el.Seconds(), float64(el.Nanoseconds())/float64(n))
	if callers > 0 {
		rate, err := relayRate(pub, b.Timestamp, b.AppendSignature(nil, 0), body, callers, d)
		if err != nil {
			return err
		}
		line += fmt.Sprintf(" relay_callers=%d relay_verifies_per_s=%.0f", callers, rate)
	}
	fmt.Println(line)
	return nil
}

// relayRate is verify.Relay.Verify's throughput from callers goroutines
// that each verify the same signed send over and over for d.
func relayRate(pub ed25519.PublicKey, ts, sigHex, body []byte, callers int, d time.Duration) (float64, error) {
	r, err := verify.NewRelay(pub, 0)
	if err != nil {
		return 0, err
	}
	if err := r.Verify(ts, sigHex, body); err != nil {
		return 0, fmt.Errorf("relay verification refuses a good signature: %w", err)
	}
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
