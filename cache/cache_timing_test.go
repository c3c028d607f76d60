package cache_test

import (
	"context"
	"sync/atomic"
	"testing"

	"push-server/cache"
	"push-server/cache/cachetest"
)

// sink keeps benchmark results alive; atomic because RunParallel's
// goroutines all store into it.
var sink atomic.Value

// BenchmarkLookup measures the send path's look-up of a registered client:
// bbolt read transaction vs. a client-side-cache hit on Redis.
func BenchmarkLookup(b *testing.B) {
	c := cache.Client{ID: "z6MkBenchmark", Type: cache.TypeFCM, Token: "bench-token-0123456789abcdef"}
	run := func(b *testing.B, s cache.Store) {
		// What the send path passes: store calls are not tied to the
		// connection.
		ctx := context.Background()
		if err := s.Register(ctx, "", c); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var got cache.Client
			for pb.Next() {
				var err error
				if got, err = s.Lookup(ctx, "", c.ID); err != nil {
					b.Error(err)
					return
				}
			}
			sink.Store(got)
		})
	}
	b.Run("embedded", func(b *testing.B) {
		run(b, newEmbedded(b, b.TempDir()))
	})
	b.Run("redis-cached", func(b *testing.B) {
		url := "redis://" + cachetest.StartRedis(b)
		run(b, newRedis(b, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()}))
	})
}
