//go:build !race

package cache_test

import (
	"context"
	"testing"

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
	s := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
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
