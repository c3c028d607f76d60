package router

import (
	"context"
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
