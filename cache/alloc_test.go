//go:build !race

package cache_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
)

// The race detector allocates on its own, so this only runs without -race
// (make test runs the *DoesNotAllocate tests in a second, plain pass).

// TestRedisCachedLookupDoesNotAllocate: the look-up every send makes, of a
// client read before (so answered from rueidis' client-side cache), with the
// context the send path passes.
func TestRedisCachedLookupDoesNotAllocate(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	// With CLIENT_TTL too: a look-up with no refresh due only compares.
	for _, ttl := range []time.Duration{0, 720 * time.Hour} {
		lookupDoesNotAllocate(t, newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix(), ClientTTL: ttl}))
	}
}

func lookupDoesNotAllocate(t *testing.T, s *cache.Redis) {
	ctx := context.Background()
	c := cache.Client{ID: "z6MkAllocationTest", Type: cache.TypeAPNS, Token: "0123456789abcdef0123456789abcdef"}
	for _, tenant := range []string{"", "wallet-a"} {
		if err := s.Register(ctx, tenant, c); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Lookup(ctx, tenant, c.ID); err != nil || got != c {
			t.Fatalf("Lookup = %+v, %v; want %+v", got, err, c)
		}
		var got cache.Client
		n := testing.AllocsPerRun(200, func() {
			var err error
			if got, err = s.Lookup(ctx, tenant, c.ID); err != nil {
				t.Fatal(err)
			}
		})
		if got != c {
			t.Fatalf("tenant %q: cached Lookup = %+v; want %+v", tenant, got, c)
		}
		if n != 0 {
			t.Errorf("tenant %q: cached Lookup allocates %.1f times per call; want 0", tenant, n)
		}
	}
}

// TestRedisDedupAllocatesOnce: a send's Reserve and Commit allocate one
// block between them, its dedup key and claim: rueidis may hold a command
// after Do returns, so that memory cannot come from a reused buffer.
func TestRedisDedupAllocatesOnce(t *testing.T) {
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + cachetest.StartRedis(t), KeyPrefix: randomPrefix()})
	if n := dedupAllocs(t, s, s.Commit); n > 1 {
		t.Errorf("Reserve + Commit allocate %.1f times per message; want 1", n)
	}
}

// TestRedisCommitBehindAllocatesOnlyPerBatch: with the mark written behind,
// a send's Reserve and CommitBehind allocate the dedup key and claim (one
// block) per message, and rueidis' DoMulti results (three: it takes them
// from a pool that its public API never gives them back to) per write that
// carries queued marks. Here every Reserve carries exactly one mark, so the
// batch's three show per message; under load a write carries the marks of
// every send finished since the last one. The queue's own slice is reused.
func TestRedisCommitBehindAllocatesOnlyPerBatch(t *testing.T) {
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + cachetest.StartRedis(t), KeyPrefix: randomPrefix()})
	if n := dedupAllocs(t, s, s.CommitBehind); n > 1+3 {
		t.Errorf("Reserve + CommitBehind, one mark a batch, allocate %.1f times per message; want 1 + rueidis' 3", n)
	}
}

// dedupAllocs is the allocations per message of a send's dedup on s:
// Reserve, then commit. Each message is then checked to be recorded.
func dedupAllocs(t *testing.T, s *cache.Redis, commit func(context.Context, cache.Reservation, time.Duration) error) float64 {
	t.Helper()
	ctx := context.Background()
	const runs = 300
	ids := make([]string, runs+1) // AllocsPerRun runs the function once more to warm up
	for i := range ids {
		ids[i] = "1700000000000" + strconv.Itoa(1000+i)
	}
	i := 0
	n := testing.AllocsPerRun(runs, func() {
		res, err := s.Reserve(ctx, "wallet-a", "z6MkAllocationTest", ids[i], time.Minute)
		i++
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(ctx, res, time.Hour); err != nil {
			t.Fatal(err)
		}
	})
	// Each was recorded: a second claim of any is refused.
	for _, id := range []string{ids[0], ids[runs/2], ids[runs]} {
		if _, err := s.Reserve(ctx, "wallet-a", "z6MkAllocationTest", id, time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
			t.Fatalf("Reserve of a committed message: %v; want ErrAlreadyDelivered", err)
		}
	}
	return n
}
