// Package cachetest is the contract suite for cache.Store implementations,
// in the manner of testing/fstest: Run checks the promises written in
// cache.Store's documentation, and spells out the fine print. It also starts
// private Redis servers for tests: StartRedis (throwaway), StartRedisServer
// (persistent, to crash and restart), StartReplica and StartCluster.
package cachetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"push-server/cache"
)

// Run checks that stores made by newStore keep every promise of cache.Store.
// Each subtest makes its own store; newStore must close it in t.Cleanup
// (Close is called more than once by the ClosedStoreIsUnavailable subtest).
// Stores made by one Run may share backing data only if they cannot see each
// other's keys (e.g. a random Redis key prefix each).
//
// Fine print checked here, beyond the interface docs:
//   - a Lookup right after Register or Unregister returned, on the same
//     store, sees the change (no stale cached answer);
//   - ids, tokens, tenants and message ids are arbitrary bytes: NUL,
//     non-UTF-8, '{', '}', '/' and 4096-byte tokens round-trip exactly;
//   - a delivery committed after its lease ran out still counts, and a
//     Release after Commit does not undo it;
//   - after Close every method returns an error matching ErrUnavailable.
func Run(t *testing.T, newStore func(t *testing.T) cache.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s cache.Store)
	}{
		{"RegisterThenLookup", testRegisterThenLookup},
		{"RegisterIsUpsert", testRegisterIsUpsert},
		{"TypesAndAlwaysRawRoundTrip", testTypesAndAlwaysRawRoundTrip},
		{"UnregisterIsIdempotent", testUnregisterIsIdempotent},
		{"UnregisterIfTokenSparesAFreshToken", testUnregisterIfToken},
		{"BoundClientKeepsItsKey", testBoundClientKeepsItsKey},
		{"BoundClientKeepsItsToken", testBoundClientKeepsItsToken},
		{"TokenMovesToNewClient", testTokenMovesToNewClient},
		{"ReRegisterWithNewTokenFreesOldToken", testReRegisterFreesOldToken},
		{"TenantsAreIsolated", testTenantsAreIsolated},
		{"LookupAfterWriteIsFresh", testLookupAfterWriteIsFresh},
		{"ConcurrentRegistrationsOfOneToken", testConcurrentRegistrationsOfOneToken},
		{"ConcurrentUpsertsOfOneID", testConcurrentUpsertsOfOneID},
		{"DedupReserveCommit", testDedupReserveCommit},
		{"DedupCommitBehind", testDedupCommitBehind},
		{"DedupReleaseAllowsRetry", testDedupReleaseAllowsRetry},
		{"DedupIsPerTenantClientAndMessage", testDedupScope},
		{"DedupRaceDeliversOnce", testDedupRaceDeliversOnce},
		{"LeaseExpires", testLeaseExpires},
		{"CommitTTLExpires", testCommitTTLExpires},
		{"LateReleaseDoesNotDropNewClaim", testLateReleaseDoesNotDropNewClaim},
		{"LateCommitCounts", testLateCommitCounts},
		{"OddBytes", testOddBytes},
		{"ClosedStoreIsUnavailable", testClosedStoreIsUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// The dedup TTL and lease used where expiry is not under test: long enough
// never to run out during a test.
const (
	longTTL   = time.Hour
	longLease = time.Minute
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustRegister(t *testing.T, s cache.Store, tenant string, c cache.Client) {
	t.Helper()
	if err := s.Register(ctx(t), tenant, c); err != nil {
		t.Fatalf("Register(%q, %+v): %v", tenant, c, err)
	}
}

func mustUnregister(t *testing.T, s cache.Store, tenant, id string) {
	t.Helper()
	if err := s.Unregister(ctx(t), tenant, id, false); err != nil {
		t.Fatalf("Unregister(%q, %q): %v", tenant, id, err)
	}
}

// wantClient checks that id looks up as want.
func wantClient(t *testing.T, s cache.Store, tenant string, want cache.Client) {
	t.Helper()
	got, err := s.Lookup(ctx(t), tenant, want.ID)
	if err != nil {
		t.Fatalf("Lookup(%q, %q): %v; want %+v", tenant, want.ID, err, want)
	}
	if got != want {
		t.Fatalf("Lookup(%q, %q) = %+v; want %+v", tenant, want.ID, got, want)
	}
}

// wantNotFound checks that id does not look up.
func wantNotFound(t *testing.T, s cache.Store, tenant, id string) {
	t.Helper()
	got, err := s.Lookup(ctx(t), tenant, id)
	if !errors.Is(err, cache.ErrClientNotFound) {
		t.Fatalf("Lookup(%q, %q) = %+v, %v; want ErrClientNotFound", tenant, id, got, err)
	}
}

// wantUnavailable checks that op, called on a closed store, returned an
// error matching ErrUnavailable.
func wantUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("%s on a closed store = %v; want ErrUnavailable", op, err)
	}
}

func testRegisterThenLookup(t *testing.T, s cache.Store) {
	wantNotFound(t, s, "", "z6MkA")
	c := cache.Client{ID: "z6MkA", Type: cache.TypeAPNS, Token: "tok-a"}
	mustRegister(t, s, "", c)
	wantClient(t, s, "", c)
	wantNotFound(t, s, "", "z6MkB")
}

func testRegisterIsUpsert(t *testing.T, s cache.Store) {
	mustRegister(t, s, "", cache.Client{ID: "id", Type: cache.TypeAPNS, Token: "tok-1"})
	c := cache.Client{ID: "id", Type: cache.TypeFCM, Token: "tok-2", AlwaysRaw: true}
	mustRegister(t, s, "", c)
	wantClient(t, s, "", c)
	// Same token, new type: still one client, with the new fields.
	c.Type, c.AlwaysRaw = cache.TypeNoop, false
	mustRegister(t, s, "", c)
	wantClient(t, s, "", c)
}

func testTypesAndAlwaysRawRoundTrip(t *testing.T, s cache.Store) {
	for i, typ := range []string{cache.TypeAPNS, cache.TypeAPNSSandbox, cache.TypeFCM, cache.TypeNoop} {
		for _, raw := range []bool{false, true} {
			c := cache.Client{ID: fmt.Sprintf("id-%d-%v", i, raw), Type: typ, Token: fmt.Sprintf("tok-%d-%v", i, raw), AlwaysRaw: raw}
			mustRegister(t, s, "", c)
			wantClient(t, s, "", c)
		}
	}
}

func testUnregisterIsIdempotent(t *testing.T, s cache.Store) {
	mustUnregister(t, s, "", "never-registered")
	c := cache.Client{ID: "id", Type: cache.TypeFCM, Token: "tok"}
	mustRegister(t, s, "", c)
	mustUnregister(t, s, "", "id")
	wantNotFound(t, s, "", "id")
	mustUnregister(t, s, "", "id")
	wantNotFound(t, s, "", "id")
	// The token was released with the client: the id can come back with it.
	mustRegister(t, s, "", c)
	wantClient(t, s, "", c)
}

func testBoundClientKeepsItsKey(t *testing.T, s cache.Store) {
	// Unbound: anybody may replace or remove it, as before.
	open := cache.Client{ID: "open", Type: cache.TypeAPNS, Token: "tok-open"}
	mustRegister(t, s, "", open)
	open.Token = "tok-open-2"
	mustRegister(t, s, "", open)
	wantClient(t, s, "", open)

	// Proving the key binds the id; an unproved registration or
	// unregistration then changes nothing, the token index included.
	bound := cache.Client{ID: "bound", Type: cache.TypeAPNS, Token: "tok-bound", Bound: true}
	mustRegister(t, s, "", bound)
	wantClient(t, s, "", bound)
	thief := cache.Client{ID: "bound", Type: cache.TypeFCM, Token: "tok-thief"}
	if err := s.Register(ctx(t), "", thief); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Register of a bound id: %v; want ErrClientBound", err)
	}
	// Even with the token of another client, that client keeps it.
	thief.Token = open.Token
	if err := s.Register(ctx(t), "", thief); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Register of a bound id: %v; want ErrClientBound", err)
	}
	wantClient(t, s, "", open)
	wantClient(t, s, "", bound)
	if err := s.Unregister(ctx(t), "", "bound", false); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Unregister of a bound id: %v; want ErrClientBound", err)
	}
	wantClient(t, s, "", bound)
	// Another tenant's id of the same spelling is another client.
	mustRegister(t, s, "other", cache.Client{ID: "bound", Type: cache.TypeNoop, Token: "x"})

	// Proved again: it may change, and stays bound.
	bound.Token = "tok-bound-2"
	mustRegister(t, s, "", bound)
	wantClient(t, s, "", bound)
	if err := s.Unregister(ctx(t), "", "bound", true); err != nil {
		t.Fatalf("proved Unregister: %v", err)
	}
	wantNotFound(t, s, "", "bound")
	// Removed, the id is free: an unproved registration starts unbound.
	thief.Token = "tok-thief"
	mustRegister(t, s, "", thief)
	wantClient(t, s, "", thief)

	// A token the provider declared dead removes a bound client too.
	mustRegister(t, s, "", cache.Client{ID: "dead", Type: cache.TypeAPNS, Token: "tok-dead", Bound: true})
	if ok, err := s.UnregisterIfToken(ctx(t), "", "dead", "tok-dead"); !ok || err != nil {
		t.Fatalf("UnregisterIfToken of a bound client = %v, %v; want true, nil", ok, err)
	}
	wantNotFound(t, s, "", "dead")
}

// Knowing a bound client's device token is no proof either: an unproved
// registration of another id with it is refused and changes nothing, while
// a proved one (the wallet re-installed under a new key) takes it.
func testBoundClientKeepsItsToken(t *testing.T, s cache.Store) {
	bound := cache.Client{ID: "bound", Type: cache.TypeAPNS, Token: "tok-bound", Bound: true}
	mustRegister(t, s, "", bound)
	squatter := cache.Client{ID: "squatter", Type: cache.TypeAPNS, Token: bound.Token}
	if err := s.Register(ctx(t), "", squatter); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Register with a bound client's token: %v; want ErrClientBound", err)
	}
	wantClient(t, s, "", bound)
	wantNotFound(t, s, "", "squatter")
	// Nor does an id that is itself bound get it without a proof.
	other := cache.Client{ID: "other-bound", Type: cache.TypeFCM, Token: "tok-other", Bound: true}
	mustRegister(t, s, "", other)
	other.Token, other.Bound = bound.Token, false
	if err := s.Register(ctx(t), "", other); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Register of a bound id with a bound client's token: %v; want ErrClientBound", err)
	}
	wantClient(t, s, "", bound)

	moved := cache.Client{ID: "reinstalled", Type: cache.TypeAPNS, Token: bound.Token, Bound: true}
	mustRegister(t, s, "", moved)
	wantClient(t, s, "", moved)
	wantNotFound(t, s, "", "bound")
	// The proof bound the new owner: the token stays with it.
	if err := s.Register(ctx(t), "", squatter); !errors.Is(err, cache.ErrClientBound) {
		t.Fatalf("unproved Register with a re-installed client's token: %v; want ErrClientBound", err)
	}
	wantClient(t, s, "", moved)
	// Once the bound client is unregistered, its token is free.
	if err := s.Unregister(ctx(t), "", "reinstalled", true); err != nil {
		t.Fatalf("proved Unregister: %v", err)
	}
	mustRegister(t, s, "", squatter)
	wantClient(t, s, "", squatter)
}

func testTokenMovesToNewClient(t *testing.T, s cache.Store) {
	old := cache.Client{ID: "old", Type: cache.TypeAPNS, Token: "shared"}
	mustRegister(t, s, "", old)
	moved := cache.Client{ID: "new", Type: cache.TypeFCM, Token: "shared"}
	mustRegister(t, s, "", moved)
	wantNotFound(t, s, "", "old")
	wantClient(t, s, "", moved)
	// Unregistering the old id must not take the token from the new one.
	mustUnregister(t, s, "", "old")
	wantClient(t, s, "", moved)
}

// testUnregisterIfToken: dropping a dead token removes the client only while
// it still holds that token; a re-registration with a fresh one survives,
// and the dead token is free for anyone afterwards.
func testUnregisterIfToken(t *testing.T, s cache.Store) {
	ctx := ctx(t)
	unregisterIf := func(tenant, id, token string, want bool) {
		t.Helper()
		removed, err := s.UnregisterIfToken(ctx, tenant, id, token)
		if err != nil || removed != want {
			t.Fatalf("UnregisterIfToken(%q, %q, %q) = %v, %v; want %v, nil", tenant, id, token, removed, err, want)
		}
	}
	unregisterIf("", "never-registered", "tok", false)

	a := cache.Client{ID: "a", Type: cache.TypeAPNS, Token: "dead"}
	mustRegister(t, s, "", a)
	unregisterIf("other-tenant", "a", "dead", false)
	wantClient(t, s, "", a)
	unregisterIf("", "a", "dead", true)
	wantNotFound(t, s, "", "a")
	// The dead token went with it: another client may take it.
	b := cache.Client{ID: "b", Type: cache.TypeFCM, Token: "dead"}
	mustRegister(t, s, "", b)
	wantClient(t, s, "", b)

	// The wallet re-registered with a fresh token after the send that
	// found the old one dead looked it up: the fresh registration stays.
	c := cache.Client{ID: "c", Type: cache.TypeAPNS, Token: "old"}
	mustRegister(t, s, "", c)
	c.Token = "fresh"
	mustRegister(t, s, "", c)
	unregisterIf("", "c", "old", false)
	wantClient(t, s, "", c)
	unregisterIf("", "c", "fresh", true)
	wantNotFound(t, s, "", "c")
}

func testReRegisterFreesOldToken(t *testing.T, s cache.Store) {
	a := cache.Client{ID: "a", Type: cache.TypeAPNS, Token: "first"}
	mustRegister(t, s, "", a)
	a.Token = "second"
	mustRegister(t, s, "", a)
	// "first" is free now: b takes it without retiring a.
	b := cache.Client{ID: "b", Type: cache.TypeFCM, Token: "first"}
	mustRegister(t, s, "", b)
	wantClient(t, s, "", a)
	wantClient(t, s, "", b)
	// And a's old token leaving b does not disturb a either.
	mustUnregister(t, s, "", "b")
	wantClient(t, s, "", a)
}

func testTenantsAreIsolated(t *testing.T, s cache.Store) {
	// Same id, same token, two tenants: two unrelated clients.
	c0 := cache.Client{ID: "id", Type: cache.TypeAPNS, Token: "tok"}
	ca := cache.Client{ID: "id", Type: cache.TypeFCM, Token: "tok", AlwaysRaw: true}
	mustRegister(t, s, "", c0)
	mustRegister(t, s, "a", ca)
	wantClient(t, s, "", c0)
	wantClient(t, s, "a", ca)
	wantNotFound(t, s, "b", "id")

	// A token move in one tenant does not reach the other.
	other := cache.Client{ID: "other", Type: cache.TypeNoop, Token: "tok"}
	mustRegister(t, s, "a", other)
	wantNotFound(t, s, "a", "id")
	wantClient(t, s, "", c0)

	mustUnregister(t, s, "", "id")
	wantNotFound(t, s, "", "id")
	wantClient(t, s, "a", other)

	// Tenant and id must not blur into each other when spelled as one key.
	x := cache.Client{ID: "c", Type: cache.TypeAPNS, Token: "x"}
	y := cache.Client{ID: "b/c", Type: cache.TypeFCM, Token: "y"}
	mustRegister(t, s, "a/b", x)
	mustRegister(t, s, "a", y)
	wantClient(t, s, "a/b", x)
	wantClient(t, s, "a", y)

	// Dedup records are per tenant too.
	c := ctx(t)
	r, err := s.Reserve(c, "", "id", "m", longLease)
	if err != nil {
		t.Fatalf("Reserve in tenant \"\": %v", err)
	}
	if err := s.Commit(c, r, longTTL); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := s.Reserve(c, "a", "id", "m", longLease); err != nil {
		t.Fatalf("Reserve of the same ids in tenant \"a\" = %v; want a fresh reservation", err)
	}
}

// testLookupAfterWriteIsFresh catches a cache that answers from before the
// write: each Lookup follows the write it must reflect immediately.
func testLookupAfterWriteIsFresh(t *testing.T, s cache.Store) {
	const rounds = 200
	for i := range rounds {
		c := cache.Client{ID: "fresh", Type: cache.TypeAPNS, Token: fmt.Sprintf("tok-%d-a", i)}
		mustRegister(t, s, "", c)
		wantClient(t, s, "", c)
		c.Token, c.Type, c.AlwaysRaw = fmt.Sprintf("tok-%d-b", i), cache.TypeFCM, true
		mustRegister(t, s, "", c)
		wantClient(t, s, "", c)
		mustUnregister(t, s, "", "fresh")
		wantNotFound(t, s, "", "fresh")
	}
}

func testConcurrentRegistrationsOfOneToken(t *testing.T, s cache.Store) {
	const n = 32
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			c := cache.Client{ID: fmt.Sprintf("racer-%d", i), Type: cache.TypeFCM, Token: "contested"}
			if err := s.Register(ctx(t), "", c); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Register: %v", err)
	}
	var owners []string
	for i := range n {
		id := fmt.Sprintf("racer-%d", i)
		got, err := s.Lookup(ctx(t), "", id)
		switch {
		case err == nil:
			if got.Token != "contested" || got.ID != id {
				t.Errorf("Lookup(%q) = %+v; want token \"contested\"", id, got)
			}
			owners = append(owners, id)
		case !errors.Is(err, cache.ErrClientNotFound):
			t.Fatalf("Lookup(%q): %v", id, err)
		}
	}
	if len(owners) != 1 {
		t.Fatalf("%d clients look up with one token: %v; want exactly 1", len(owners), owners)
	}
}

func testConcurrentUpsertsOfOneID(t *testing.T, s cache.Store) {
	const writers, rounds = 8, 12
	types := []string{cache.TypeAPNS, cache.TypeAPNSSandbox, cache.TypeFCM, cache.TypeNoop}
	// Every written client's fields follow from its token, so a client mixed
	// from two registrations is recognised.
	clientFor := func(w, r int) cache.Client {
		return cache.Client{ID: "upserted", Type: types[(w+r)%4], Token: fmt.Sprintf("tok-%d-%d", w, r), AlwaysRaw: (w+r)%3 == 0}
	}
	written := make(map[string]cache.Client)
	for w := range writers {
		for r := range rounds {
			c := clientFor(w, r)
			written[c.Token] = c
		}
	}
	check := func(got cache.Client) error {
		if want, ok := written[got.Token]; !ok || got != want {
			return fmt.Errorf("lookup = %+v; not one of the written clients", got)
		}
		return nil
	}
	mustRegister(t, s, "", clientFor(0, 0))

	var stop atomic.Bool
	var readerErr error
	var readers sync.WaitGroup
	readers.Go(func() {
		for !stop.Load() {
			got, err := s.Lookup(ctx(t), "", "upserted")
			if errors.Is(err, cache.ErrClientNotFound) {
				// Allowed while upserts with different tokens race.
				continue
			}
			if err == nil {
				err = check(got)
			}
			if err != nil {
				readerErr = err
				return
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				if err := s.Register(ctx(t), "", clientFor(w, r)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Register: %v", err)
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	final, err := s.Lookup(ctx(t), "", "upserted")
	if err != nil {
		t.Fatalf("Lookup after the upserts: %v; want one of the written clients", err)
	}
	if err := check(final); err != nil {
		t.Fatal(err)
	}
	// Every other token was let go: other ids take them without retiring
	// the survivor.
	i := 0
	for tok := range written {
		if tok == final.Token {
			continue
		}
		if i++; i > 16 {
			break
		}
		other := cache.Client{ID: "taker-" + tok, Type: cache.TypeNoop, Token: tok}
		mustRegister(t, s, "", other)
		wantClient(t, s, "", other)
	}
	wantClient(t, s, "", final)
}

func mustReserve(t *testing.T, s cache.Store, tenant, id, msg string, lease time.Duration) cache.Reservation {
	t.Helper()
	r, err := s.Reserve(ctx(t), tenant, id, msg, lease)
	if err != nil {
		t.Fatalf("Reserve(%q, %q, %q): %v", tenant, id, msg, err)
	}
	if r.Tenant != tenant || r.ClientID != id || r.MessageID != msg {
		t.Fatalf("Reserve(%q, %q, %q) = %+v; want the same names back", tenant, id, msg, r)
	}
	return r
}

func wantReserveErr(t *testing.T, s cache.Store, tenant, id, msg string, want error) {
	t.Helper()
	r, err := s.Reserve(ctx(t), tenant, id, msg, longLease)
	if !errors.Is(err, want) {
		t.Fatalf("Reserve(%q, %q, %q) = %+v, %v; want %v", tenant, id, msg, r, err, want)
	}
}

func mustCommit(t *testing.T, s cache.Store, r cache.Reservation, ttl time.Duration) {
	t.Helper()
	if err := s.Commit(ctx(t), r, ttl); err != nil {
		t.Fatalf("Commit(%+v): %v", r, err)
	}
}

func mustRelease(t *testing.T, s cache.Store, r cache.Reservation) {
	t.Helper()
	if err := s.Release(ctx(t), r); err != nil {
		t.Fatalf("Release(%+v): %v", r, err)
	}
}

func testDedupReserveCommit(t *testing.T, s cache.Store) {
	r := mustReserve(t, s, "", "id", "m1", longLease)
	wantReserveErr(t, s, "", "id", "m1", cache.ErrDeliveryInProgress)
	mustCommit(t, s, r, longTTL)
	wantReserveErr(t, s, "", "id", "m1", cache.ErrAlreadyDelivered)
	// A Release after Commit (a confused caller) does not undo the delivery.
	mustRelease(t, s, r)
	wantReserveErr(t, s, "", "id", "m1", cache.ErrAlreadyDelivered)
}

// testDedupCommitBehind: a delivery recorded without waiting is, to a
// Reserve on the same store, as delivered as a committed one, at once —
// also while the store is writing it, from several senders at a time, and
// with pauses that let a store's own flusher (if it has one) take the
// record between the two calls.
func testDedupCommitBehind(t *testing.T, s cache.Store) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				m := fmt.Sprintf("behind-%d-%d", g, i)
				r, err := s.Reserve(ctx(t), "", "id", m, longLease)
				if err != nil {
					t.Errorf("Reserve(%q): %v", m, err)
					return
				}
				if err := s.CommitBehind(ctx(t), r, longTTL); err != nil {
					t.Errorf("CommitBehind(%+v): %v", r, err)
					return
				}
				time.Sleep(time.Duration(i%4) * time.Millisecond)
				if _, err := s.Reserve(ctx(t), "", "id", m, longLease); !errors.Is(err, cache.ErrAlreadyDelivered) {
					t.Errorf("Reserve(%q) after CommitBehind = %v; want ErrAlreadyDelivered", m, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func testDedupReleaseAllowsRetry(t *testing.T, s cache.Store) {
	r := mustReserve(t, s, "", "id", "m1", longLease)
	mustRelease(t, s, r)
	r2 := mustReserve(t, s, "", "id", "m1", longLease)
	if r2.Nonce == r.Nonce {
		t.Fatalf("two reservations share nonce %d", r.Nonce)
	}
	mustCommit(t, s, r2, longTTL)
	wantReserveErr(t, s, "", "id", "m1", cache.ErrAlreadyDelivered)
}

func testDedupScope(t *testing.T, s cache.Store) {
	r := mustReserve(t, s, "", "id", "m", longLease)
	mustCommit(t, s, r, longTTL)
	mustReserve(t, s, "", "id", "m2", longLease)    // another message
	mustReserve(t, s, "", "id2", "m", longLease)    // another client
	mustReserve(t, s, "t", "id", "m", longLease)    // another tenant
	mustReserve(t, s, "", "id}", "m", longLease)    // an id that extends this one
	mustReserve(t, s, "", "i", "dm", longLease)     // id and message split elsewhere
	mustReserve(t, s, "", "id", "m\x00", longLease) // a message id that extends this one
}

func testDedupRaceDeliversOnce(t *testing.T, s cache.Store) {
	const n = 64
	var won, inProgress, delivered atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			r, err := s.Reserve(ctx(t), "", "id", "raced", longLease)
			switch {
			case err == nil:
				won.Add(1)
				if err := s.Commit(ctx(t), r, longTTL); err != nil {
					errs <- err
				}
			case errors.Is(err, cache.ErrDeliveryInProgress):
				inProgress.Add(1)
			case errors.Is(err, cache.ErrAlreadyDelivered):
				delivered.Add(1)
			default:
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d of %d racing Reserves won (%d in progress, %d delivered); want exactly 1", won.Load(), n, inProgress.Load(), delivered.Load())
	}
	wantReserveErr(t, s, "", "id", "raced", cache.ErrAlreadyDelivered)
}

func testLeaseExpires(t *testing.T, s cache.Store) {
	mustReserve(t, s, "", "id", "m", 200*time.Millisecond)
	wantReserveErr(t, s, "", "id", "m", cache.ErrDeliveryInProgress)
	time.Sleep(300 * time.Millisecond)
	r := mustReserve(t, s, "", "id", "m", longLease)
	mustCommit(t, s, r, longTTL)
	wantReserveErr(t, s, "", "id", "m", cache.ErrAlreadyDelivered)
}

func testCommitTTLExpires(t *testing.T, s cache.Store) {
	r := mustReserve(t, s, "", "id", "m", longLease)
	mustCommit(t, s, r, 200*time.Millisecond)
	wantReserveErr(t, s, "", "id", "m", cache.ErrAlreadyDelivered)
	time.Sleep(300 * time.Millisecond)
	mustReserve(t, s, "", "id", "m", longLease)
}

func testLateReleaseDoesNotDropNewClaim(t *testing.T, s cache.Store) {
	stale := mustReserve(t, s, "", "id", "m", 100*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	fresh := mustReserve(t, s, "", "id", "m", longLease)
	mustRelease(t, s, stale) // too late: the claim is fresh's now
	wantReserveErr(t, s, "", "id", "m", cache.ErrDeliveryInProgress)
	mustCommit(t, s, fresh, longTTL)
	wantReserveErr(t, s, "", "id", "m", cache.ErrAlreadyDelivered)
}

// testLateCommitCounts: the message was delivered even though the lease ran
// out before Commit, so later Reserves must see it as delivered.
func testLateCommitCounts(t *testing.T, s cache.Store) {
	r := mustReserve(t, s, "", "id", "m", 100*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	mustCommit(t, s, r, longTTL)
	wantReserveErr(t, s, "", "id", "m", cache.ErrAlreadyDelivered)
}

func testOddBytes(t *testing.T, s cache.Store) {
	var all strings.Builder
	for all.Len() < 4096 {
		all.WriteByte(byte(all.Len() % 256))
	}
	long := all.String()
	odd := []struct {
		tenant string
		c      cache.Client
	}{
		{"", cache.Client{ID: "a\x00b", Type: cache.TypeAPNS, Token: "t\x00"}},
		{"", cache.Client{ID: "\xff\xfe}{", Type: cache.TypeFCM, Token: "\xc3\x28", AlwaysRaw: true}},
		{"", cache.Client{ID: "{x}", Type: cache.TypeNoop, Token: "{x}"}},
		{"", cache.Client{ID: "}", Type: cache.TypeNoop, Token: "}"}},
		{"", cache.Client{ID: strings.Repeat("é", 127), Type: cache.TypeAPNSSandbox, Token: long}},
		{"t\x00{}/\xff", cache.Client{ID: "a\x00b", Type: cache.TypeFCM, Token: "t\x00"}},
	}
	for _, o := range odd {
		mustRegister(t, s, o.tenant, o.c)
	}
	for _, o := range odd {
		wantClient(t, s, o.tenant, o.c)
	}
	// "a" is a prefix of "a\x00b": it is not that client.
	wantNotFound(t, s, "", "a")
	for _, o := range odd {
		r := mustReserve(t, s, o.tenant, o.c.ID, "\x00\xff{}"+long[:300], longLease)
		mustCommit(t, s, r, longTTL)
		wantReserveErr(t, s, o.tenant, o.c.ID, "\x00\xff{}"+long[:300], cache.ErrAlreadyDelivered)
	}
	for _, o := range odd {
		mustUnregister(t, s, o.tenant, o.c.ID)
		wantNotFound(t, s, o.tenant, o.c.ID)
	}
}

func testClosedStoreIsUnavailable(t *testing.T, s cache.Store) {
	c := cache.Client{ID: "id", Type: cache.TypeAPNS, Token: "tok"}
	mustRegister(t, s, "", c)
	// Looked up before Close, so that a store with a cache holds the
	// answer: a closed store must not serve it from there.
	wantClient(t, s, "", c)
	r := mustReserve(t, s, "", "id", "m", longLease)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	x := ctx(t)
	wantUnavailable(t, "Register", s.Register(x, "", c))
	wantUnavailable(t, "Unregister", s.Unregister(x, "", "id", false))
	_, err := s.Lookup(x, "", "id")
	wantUnavailable(t, "Lookup", err)
	_, err = s.Reserve(x, "", "id", "m2", longLease)
	wantUnavailable(t, "Reserve", err)
	wantUnavailable(t, "Commit", s.Commit(x, r, longTTL))
	wantUnavailable(t, "CommitBehind", s.CommitBehind(x, r, longTTL))
	wantUnavailable(t, "Release", s.Release(x, r))
	wantUnavailable(t, "Ping", s.Ping(x))
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// RunClientTTL checks the client TTL (CLIENT_TTL) of stores made by
// newStore with ttl: a registration expires ttl after it was registered or
// last looked up, a look-up extends it (once a tenth of ttl has passed, so
// at least 0.9 ttl from that look-up), a registration starts it afresh,
// and an expired client's token is free for another. It sleeps: about
// 2.2 ttl in all.
func RunClientTTL(t *testing.T, newStore func(t *testing.T, ttl time.Duration) cache.Store) {
	const ttl = 800 * time.Millisecond
	s := newStore(t, ttl)
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }

	sent := cache.Client{ID: "sent", Type: cache.TypeAPNS, Token: "tok-sent", Bound: true}
	idle := cache.Client{ID: "idle", Type: cache.TypeAPNS, Token: "tok-idle"}
	again := cache.Client{ID: "again", Type: cache.TypeFCM, Token: "tok-again"}
	for _, c := range []cache.Client{sent, idle, again} {
		mustRegister(t, s, "", c)
	}
	at(ttl / 2)
	wantClient(t, s, "", sent) // refreshes: now expires at 1.5 ttl
	mustRegister(t, s, "", again)
	at(ttl + ttl/5)
	if time.Since(start) < ttl+ttl/10 {
		t.Skip("the host is too slow for this timing")
	}
	wantNotFound(t, s, "", idle.ID)
	wantClient(t, s, "", sent)
	wantClient(t, s, "", again)
	// An expired client's token belongs to nobody: another id takes it,
	// and an unproved registration of an expired bound id is a new one.
	heir := cache.Client{ID: "heir", Type: cache.TypeAPNS, Token: idle.Token}
	mustRegister(t, s, "", heir)
	wantClient(t, s, "", heir)

	// Left alone, the refreshed clients expire in turn.
	at(ttl/2 + ttl + ttl/5 + ttl)
	wantNotFound(t, s, "", sent.ID)
	wantNotFound(t, s, "", again.ID)
	thief := cache.Client{ID: sent.ID, Type: cache.TypeNoop, Token: "tok-thief"}
	mustRegister(t, s, "", thief)
	wantClient(t, s, "", thief)
}
