// Command verifyrate measures how many crypto/ed25519.Verify calls per
// second one goroutine does: the baseline every send rate is divided by.
// run.sh pins it like the server (taskset -c 0, GOMAXPROCS=1) and runs it
// right before the load, so both figures come from the same machine state.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"time"

	"push-server/loadtest"
	"push-server/verify"
)

var sink bool

func main() {
	d := flag.Duration("d", 3*time.Second, "how long to measure")
	flag.Parse()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyrate:", err)
		os.Exit(1)
	}
	// The message a real send signs, so the hashed length matches.
	b, err := loadtest.SignBatch(priv, []string{"z6MkVerifyRate"}, 1, 1, time.Now().Unix(), "verifyrate")
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyrate:", err)
		os.Exit(1)
	}
	body := b.AppendBody(nil, 0)
	msg := verify.AppendMessage(nil, b.Timestamp, body)
	sig := ed25519.Sign(priv, msg)
	n := 0
	start := time.Now()
	for time.Since(start) < *d {
		for range 100 {
			sink = ed25519.Verify(pub, msg, sig)
		}
		n += 100
	}
	if !sink {
		fmt.Fprintln(os.Stderr, "verifyrate: the signature does not verify")
		os.Exit(1)
	}
	el := time.Since(start)
	fmt.Printf("VERIFY verifies_per_s=%.0f ns_per_verify=%.0f\n", float64(n)/el.Seconds(), float64(el.Nanoseconds())/float64(n))
}
