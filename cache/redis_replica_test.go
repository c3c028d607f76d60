package cache_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/internal/testkit"
)

// TestRedisReplica runs the contract suite on stores that read from a
// replica: every Lookup right after a write must reflect it, so Register's
// wait for the replica and the replica's invalidations are both exercised.
func TestRedisReplica(t *testing.T) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplica(t, primary.Addr)
	cachetest.Run(t, func(t *testing.T) cache.Store {
		return newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: "redis://" + replica, KeyPrefix: randomPrefix()})
	})
}

// eventually polls s until Lookup(id) answers want (a client, or
// ErrClientNotFound), for at most within.
func eventually(t *testing.T, s cache.Store, id string, want cache.Client, wantErr error, within time.Duration) {
	t.Helper()
	var got cache.Client
	var err error
	if !testkit.Poll(within, func() bool {
		got, err = s.Lookup(t.Context(), "", id)
		return errors.Is(err, wantErr) && got == want
	}) {
		t.Fatalf("Lookup(%q) = %+v, %v after %v; want %+v, %v", id, got, err, within, want, wantErr)
	}
}

// TestRedisReplicaSeesPrimaryWrites: store A writes on the primary; store B
// reads through the replica and caches what it read. Each change made
// through A must reach B's cache by the replica's invalidation as the
// replica applies it (the cache would otherwise answer the old client for
// the hour of CacheTTL).
func TestRedisReplicaSeesPrimaryWrites(t *testing.T) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplica(t, primary.Addr)
	prefix := randomPrefix()
	a := newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: "redis://" + replica, KeyPrefix: prefix, CacheTTL: time.Hour})
	ctx := t.Context()

	for i := range 20 {
		// Upserts that keep the client registered: B's answer changes from
		// one client to another without ever missing, so only an
		// invalidation from the replica can refresh it.
		c := cache.Client{ID: "shared", Type: cache.TypeAPNS, Token: "tok-1"}
		if i%2 == 1 {
			c.Token, c.Type, c.AlwaysRaw = "tok-2", cache.TypeFCM, true
		}
		if err := a.Register(ctx, "", c); err != nil {
			t.Fatalf("Register: %v", err)
		}
		eventually(t, b, "shared", c, nil, 2*time.Second)
		thief := cache.Client{ID: "thief", Type: cache.TypeNoop, Token: c.Token}
		if err := a.Register(ctx, "", thief); err != nil {
			t.Fatalf("Register: %v", err)
		}
		eventually(t, b, "shared", cache.Client{}, cache.ErrClientNotFound, 2*time.Second)
		eventually(t, b, "thief", thief, nil, 2*time.Second)
		if err := a.Unregister(ctx, "", "thief", false); err != nil {
			t.Fatalf("Unregister: %v", err)
		}
		eventually(t, b, "thief", cache.Client{}, cache.ErrClientNotFound, 2*time.Second)
	}
	// The found answers above came from the replica, not from the primary.
	stats, err := cachetest.Command(replica, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stats, "cmdstat_get:calls=") {
		t.Fatalf("the replica served no GET; B did not read from it:\n%s", stats)
	}
}

// within runs op and fails the test unless it returns within d.
func within(t *testing.T, d time.Duration, name string, op func() error) error {
	t.Helper()
	start := time.Now()
	err := op()
	if took := time.Since(start); took > d {
		t.Errorf("%s took %v; want at most %v", name, took, d)
	}
	return err
}

// TestRedisReplicaOutages: the primary crashes and comes back, then the
// replica does. A store reading from the replica keeps answering look-ups
// of known clients while the primary is down, refuses writes quickly, and
// recovers by itself, with nothing lost.
func TestRedisReplicaOutages(t *testing.T) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplicaServer(t, primary.Addr)
	prefix := randomPrefix()
	const timeout = 300 * time.Millisecond
	// bound is what any call may take: the timeout plus scheduling slack
	// under -race on a small machine.
	const bound = 2 * time.Second
	a := newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, KeyPrefix: prefix, Timeout: timeout})
	b := newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: "redis://" + replica.Addr, KeyPrefix: prefix, Timeout: timeout, CacheTTL: time.Hour})
	ctx := t.Context()
	mustRegister := func(s cache.Store, c cache.Client) {
		t.Helper()
		if err := s.Register(ctx, "", c); err != nil {
			t.Fatalf("Register(%+v): %v", c, err)
		}
	}
	wantClient := func(s cache.Store, c cache.Client) {
		t.Helper()
		var got cache.Client
		err := within(t, bound, "Lookup", func() (err error) {
			got, err = s.Lookup(ctx, "", c.ID)
			return err
		})
		if err != nil || got != c {
			t.Fatalf("Lookup(%q) = %+v, %v; want %+v", c.ID, got, err, c)
		}
	}
	wantUnavailable := func(name string, op func() error) {
		t.Helper()
		if err := within(t, bound, name, op); !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("%s with the primary down: %v; want ErrUnavailable", name, err)
		}
	}

	cached := cache.Client{ID: "cached", Type: cache.TypeAPNS, Token: "tok-cached"}
	uncached := cache.Client{ID: "uncached", Type: cache.TypeFCM, Token: "tok-uncached", AlwaysRaw: true}
	mustRegister(b, cached) // B waits for the replica, so it has both after this
	mustRegister(b, uncached)
	wantClient(b, cached) // now in B's cache; "uncached" never is

	// Primary down.
	primary.Stop()
	wantClient(b, cached)
	wantClient(b, uncached) // answered by the replica server itself
	err := within(t, bound, "Lookup of an unknown client", func() error {
		_, err := b.Lookup(ctx, "", "never-registered")
		return err
	})
	if !errors.Is(err, cache.ErrClientNotFound) {
		t.Errorf("Lookup of an unknown client with the primary down: %v; want ErrClientNotFound", err)
	}
	wantUnavailable("Register", func() error { return b.Register(ctx, "", cache.Client{ID: "new", Type: cache.TypeNoop, Token: "t"}) })
	wantUnavailable("Unregister", func() error { return b.Unregister(ctx, "", cached.ID, false) })
	wantUnavailable("Reserve", func() error {
		_, err := b.Reserve(ctx, "", cached.ID, "m", time.Minute)
		return err
	})
	wantUnavailable("Ping", func() error { return b.Ping(ctx) })
	wantClient(b, cached) // the failed Unregister changed nothing

	// Primary back: writes work again without any action, nothing was lost.
	primary.Restart()
	revived := cache.Client{ID: "revived", Type: cache.TypeNoop, Token: "tok-revived"}
	if !testkit.Poll(5*time.Second, func() bool { err = b.Register(ctx, "", revived); return err == nil }) {
		t.Fatalf("Register 5s after the primary came back: %v", err)
	}
	wantClient(a, cached) // a reads the restarted primary itself
	wantClient(a, uncached)
	eventually(t, b, revived.ID, revived, nil, 5*time.Second)
	r, err := b.Reserve(ctx, "", revived.ID, "m", time.Minute)
	if err != nil {
		t.Fatalf("Reserve after the primary came back: %v", err)
	}
	if err := b.Commit(ctx, r, time.Minute); err != nil {
		t.Fatalf("Commit after the primary came back: %v", err)
	}

	// Replica down: B reads the primary, including clients registered since.
	cachetest.WaitReplicaSynced(t, replica.Addr)
	replica.Stop()
	wantClient(b, cached)
	wantClient(b, revived)
	late := cache.Client{ID: "late", Type: cache.TypeAPNSSandbox, Token: "tok-late"}
	mustRegister(a, late)
	wantClient(b, late)

	// Replica back, primary down again: B finds the replica by itself, and
	// the replica has resynced what was written while it was away.
	replica.Restart()
	cachetest.WaitReplicaSynced(t, replica.Addr)
	primary.Stop()
	// The replica is tried again a second after it failed; until then
	// look-ups ask the dead primary (or answer from a cache entry its
	// broken connection has not dropped yet).
	eventually(t, b, late.ID, late, nil, 5*time.Second)
	// Never read since the replica restarted, so no cache has it: only the
	// replica server can answer.
	eventually(t, b, uncached.ID, uncached, nil, 5*time.Second)
}

// TestRedisReplicaDownAtStart: a replica that cannot be reached does not
// keep the store from starting; look-ups read the primary until the
// replica appears, which the store then finds by itself.
func TestRedisReplicaDownAtStart(t *testing.T) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplicaServer(t, primary.Addr)
	replica.Stop()
	b := newRedis(t, cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: "redis://" + replica.Addr, KeyPrefix: randomPrefix(), Timeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := cache.Client{ID: "id", Type: cache.TypeFCM, Token: "tok"}
	if err := b.Register(ctx, "", c); err != nil {
		t.Fatalf("Register without the replica: %v", err)
	}
	eventually(t, b, c.ID, c, nil, time.Second)

	replica.Restart()
	cachetest.WaitReplicaSynced(t, replica.Addr)
	primary.Stop()
	// Only the replica can answer now.
	eventually(t, b, c.ID, c, nil, 5*time.Second)
}
