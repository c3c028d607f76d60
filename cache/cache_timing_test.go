package cache_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
	// With CLIENT_TTL: 720h never refreshes within the run (the check's
	// cost); 1s refreshes every 100ms (the refresh's cost, amortised).
	for _, ttl := range []time.Duration{720 * time.Hour, time.Second} {
		b.Run("embedded-ttl="+ttl.String(), func(b *testing.B) {
			s, err := cache.OpenEmbeddedWith(b.TempDir(), cache.EmbeddedConfig{ClientTTL: ttl})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			run(b, s)
		})
		b.Run("redis-cached-ttl="+ttl.String(), func(b *testing.B) {
			url := "redis://" + cachetest.StartRedis(b)
			run(b, newRedis(b, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix(), ClientTTL: ttl}))
		})
	}
}

// BenchmarkDedup measures a send's dedup on Redis, its claim and its
// delivered mark, from 64 concurrent senders (a relay fleet's load on one
// instance): the mark waited for (Commit) vs written behind (CommitBehind,
// which rides on the next Reserve's write). The time per op includes the
// Redis round trips the sender waits for.
func BenchmarkDedup(b *testing.B) {
	url := "redis://" + cachetest.StartRedis(b)
	modes := []struct {
		name   string
		commit func(*cache.Redis, context.Context, cache.Reservation, time.Duration) error
	}{
		{"commit", (*cache.Redis).Commit},
		{"commit-behind", (*cache.Redis).CommitBehind},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			s := newRedis(b, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix(), MaxFlushDelay: 50 * time.Microsecond})
			ctx := context.Background()
			var next atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(32) // 64 senders on this 2-core machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var buf [20]byte
				for pb.Next() {
					msg := string(strconv.AppendUint(buf[:0], next.Add(1), 10))
					res, err := s.Reserve(ctx, "", "z6MkBenchmark", msg, time.Minute)
					if err != nil {
						b.Error(err)
						return
					}
					if err := mode.commit(s, ctx, res, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
