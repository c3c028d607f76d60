package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"push-server/cache"
)

// claimHeldElsewhere is a store on which another sender holds every claim
// and which stops answering after the first Reserve: what a send sees when
// the primary fails right after it found a claim in progress.
type claimHeldElsewhere struct {
	cache.Store
	reserves atomic.Int32
}

func (s *claimHeldElsewhere) Reserve(context.Context, string, string, string, time.Duration) (cache.Reservation, error) {
	if s.reserves.Add(1) == 1 {
		return cache.Reservation{}, cache.ErrDeliveryInProgress
	}
	return cache.Reservation{}, cache.ErrUnavailable
}

// TestRecheckOfAClaimHeldElsewhereNeverDelivers: a send that found the
// message's claim held by another sender answers 409 and pushes nothing,
// even when the store stops answering right after. Taking the local
// fallback (as for a store that is down from the start) would deliver the
// message a second time. Looking at the claim again is the store's own
// business (cache's lookAgain, next to the write-behind queue that needs
// it; TestLookAgainKeepsInProgressWhenTheStoreStopsAnswering checks the same
// outage there).
func TestRecheckOfAClaimHeldElsewhereNeverDelivers(t *testing.T) {
	var store *claimHeldElsewhere
	h := newHarness(t, options{store: func(t *testing.T) cache.Store {
		store = &claimHeldElsewhere{Store: embeddedStore(t)}
		return store
	}})
	h.register("c", "noop", "tok", false)
	h.send("c", `{"topic":"t","tag":1,"message":"held"}`).expectError(t, 409, "delivery_in_progress")
	if n := store.reserves.Load(); n < 1 {
		t.Fatalf("Reserve called %d times; want the claim looked at", n)
	}
	if got := h.providers.Noop().Sent(); got != 0 {
		t.Fatalf("pushed %d times; want none while another sender holds the claim", got)
	}
}

// TestEmbeddedClaimInProgressAnswersAtOnce: on the embedded store, whose
// delivered mark is written before a send answers, a claim in progress is
// a send really in progress, so the duplicate hears 409 at once rather
// than after the ~14 ms of looking again that only Redis' write-behind
// window needs. The fastest of a few tries is compared, so a slow machine
// does not make it flaky: looking again cannot take less than 14 ms.
func TestEmbeddedClaimInProgressAnswersAtOnce(t *testing.T) {
	h := newHarness(t, options{})
	h.register("c", "noop", "tok", false)
	fastest := time.Hour
	for i := range 5 {
		m := fmt.Sprintf("held-%d", i)
		sum := sha256.Sum256([]byte(m))
		if _, err := h.store.Reserve(context.Background(), "", "c", hex.EncodeToString(sum[:]), time.Minute); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		h.send("c", `{"topic":"t","tag":1,"message":"`+m+`"}`).expectError(t, 409, "delivery_in_progress")
		fastest = min(fastest, time.Since(start))
	}
	if fastest >= 14*time.Millisecond {
		t.Fatalf("the fastest 409 on a held claim took %v; want no waiting (under 14 ms)", fastest)
	}
	if got := h.providers.Noop().Sent(); got != 0 {
		t.Fatalf("pushed %d times; want none while the claims are held", got)
	}
}
