package router

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"push-server/cache"
)

// TestLocalDedupAnswersAsTheStoreDoes: the in-process fallback walks the
// same states as a store's dedup record (claimed, then delivered or
// released) and answers with the store's sentinels, so the send sequence
// and the error table treat both alike.
func TestLocalDedupAnswersAsTheStoreDoes(t *testing.T) {
	d := newLocalDedup(100)
	if err := d.reserve("k", time.Minute); err != nil {
		t.Fatalf("first reserve = %v; want the claim", err)
	}
	if err := d.reserve("k", time.Minute); !errors.Is(err, cache.ErrDeliveryInProgress) {
		t.Fatalf("reserve of a claimed key = %v; want ErrDeliveryInProgress", err)
	}
	if err := d.reserve("other", time.Minute); err != nil {
		t.Fatalf("reserve of another key = %v; want the claim", err)
	}
	d.release("k")
	if err := d.reserve("k", time.Minute); err != nil {
		t.Fatalf("reserve after release = %v; want a fresh claim", err)
	}
	d.commit("k", time.Minute)
	for range 2 {
		if err := d.reserve("k", time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
			t.Fatalf("reserve of a delivered key = %v; want ErrAlreadyDelivered", err)
		}
	}
}

// TestLocalDedupExpires: a claim frees itself after its lease (an instance
// that lost a send's end must not block the message forever), and a
// delivered mark after its TTL.
func TestLocalDedupExpires(t *testing.T) {
	d := newLocalDedup(100)
	if err := d.reserve("claim", time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if err := d.reserve("mark", time.Minute); err != nil {
		t.Fatal(err)
	}
	d.commit("mark", time.Nanosecond)
	time.Sleep(time.Millisecond) // past both expiries, which are wall-clock times
	for _, k := range []string{"claim", "mark"} {
		if err := d.reserve(k, time.Minute); err != nil {
			t.Errorf("reserve of %q after its expiry = %v; want a fresh claim", k, err)
		}
	}
}

// TestLocalDedupIsBounded: a long outage cannot grow the fallback without
// limit; it sheds entries, the expired first, and keeps taking claims.
func TestLocalDedupIsBounded(t *testing.T) {
	const max = 8
	d := newLocalDedup(max)
	for i := range 10 * max {
		if err := d.reserve(strconv.Itoa(i), time.Minute); err != nil {
			t.Fatalf("reserve %d = %v; want a claim", i, err)
		}
		if n := len(d.entries); n > max {
			t.Fatalf("after %d reserves the fallback holds %d entries; want at most %d", i+1, n, max)
		}
	}
	last := strconv.Itoa(10*max - 1)
	if err := d.reserve(last, time.Minute); !errors.Is(err, cache.ErrDeliveryInProgress) {
		t.Fatalf("the newest claim after shedding = %v; want it kept (ErrDeliveryInProgress)", err)
	}
}
