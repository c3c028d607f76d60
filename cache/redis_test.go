package cache_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/internal/testkit"
)

// randomPrefix keeps stores on one server from seeing each other's keys, so
// no test ever needs to flush anything.
func randomPrefix() string {
	return "test-" + rand.Text()[:12] + ":"
}

func newRedis(t testing.TB, cfg cache.RedisConfig) *cache.Redis {
	t.Helper()
	s, err := cache.NewRedis(cfg)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedis(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	cachetest.Run(t, func(t *testing.T) cache.Store {
		return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
	})
}

func TestRedisTenants(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	cachetest.RunTenants(t, func(t *testing.T) cachetest.TenantStore {
		return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
	})
	cachetest.RunLimiter(t, func(t *testing.T) cache.Limiter {
		return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
	})
	t.Run("GlobPrefix", func(t *testing.T) {
		// A prefix with glob characters must not make DeleteTenant's SCAN
		// miss the tenant's keys (or take another prefix's).
		cachetest.RunTenants(t, func(t *testing.T) cachetest.TenantStore {
			return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: "[g]*?\\" + randomPrefix()})
		})
	})
}

// TestRedisOtherStoreSeesTenantChanges: a tenant change made through one
// instance reaches another instance's cached Tenant within a second.
func TestRedisOtherStoreSeesTenantChanges(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	prefix := randomPrefix()
	a := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix, CacheTTL: time.Hour})
	ctx := t.Context()

	eventually := func(want func(cache.Tenant, error) bool, what string) {
		t.Helper()
		var got cache.Tenant
		var err error
		if !testkit.Poll(time.Second, func() bool { got, err = b.Tenant(ctx, "w"); return want(got, err) }) {
			t.Fatalf("other store: Tenant = %+v, %v after 1s; want %s", got, err, what)
		}
	}
	eventually(func(_ cache.Tenant, err error) bool { return errors.Is(err, cache.ErrTenantNotFound) }, "not found")
	if _, err := a.CreateTenant(ctx, "w"); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	eventually(func(_ cache.Tenant, err error) bool { return err == nil }, "the created tenant")
	for i := range 10 {
		if err := a.UpdateTenant(ctx, "w", cache.TenantChange{SuspendFCM: fmt.Sprint("reason ", i)}); err != nil {
			t.Fatalf("UpdateTenant: %v", err)
		}
		want, err := a.Tenant(ctx, "w")
		if err != nil {
			t.Fatalf("Tenant: %v", err)
		}
		eventually(func(got cache.Tenant, err error) bool {
			return err == nil && got.Version == want.Version && got.FCMSuspended == want.FCMSuspended
		}, fmt.Sprintf("%+v", want))
	}
	if err := a.DeleteTenant(ctx, "w"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	eventually(func(_ cache.Tenant, err error) bool { return errors.Is(err, cache.ErrTenantNotFound) }, "not found after delete")
}

// TestRedisOtherStoreSeesChanges: two stores on one server (two gateway
// instances) each cache look-ups; a change made through one reaches the
// other's cache by invalidation within the bound documented on Redis.
func TestRedisOtherStoreSeesChanges(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	prefix := randomPrefix()
	a := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix, CacheTTL: time.Hour})
	ctx := t.Context()

	for i := range 20 {
		c := cache.Client{ID: "shared", Type: cache.TypeAPNS, Token: "tok-1"}
		if i%2 == 1 {
			c.Token, c.Type = "tok-2", cache.TypeFCM
		}
		if err := a.Register(ctx, "", c); err != nil {
			t.Fatalf("Register: %v", err)
		}
		eventually(t, b, "shared", c, nil, time.Second) // also fills b's cache
		// Moving the token away through a must retire "shared" in b's cache.
		thief := cache.Client{ID: "thief", Type: cache.TypeNoop, Token: c.Token}
		if err := a.Register(ctx, "", thief); err != nil {
			t.Fatalf("Register: %v", err)
		}
		eventually(t, b, "shared", cache.Client{}, cache.ErrClientNotFound, time.Second)
		eventually(t, b, "thief", thief, nil, time.Second)
		if err := a.Unregister(ctx, "", "thief", false); err != nil {
			t.Fatalf("Unregister: %v", err)
		}
		eventually(t, b, "thief", cache.Client{}, cache.ErrClientNotFound, time.Second)
	}
}

// TestRedisDeadPortIsUnavailable: nothing listens, so connecting fails fast
// with ErrUnavailable.
func TestRedisDeadPortIsUnavailable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
	start := time.Now()
	s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, Timeout: 500 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("NewRedis on a dead port succeeded")
	}
	if !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("NewRedis on a dead port: %v; want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("NewRedis on a dead port took %v; want about the 500ms timeout at most", took)
	}
}

// TestRedisSilentServerIsUnavailable: a server that accepts connections but
// never answers must not hang NewRedis.
func TestRedisSilentServerIsUnavailable(t *testing.T) {
	addr := testkit.SilentServer(t)
	start := time.Now()
	s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, Timeout: 300 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("NewRedis on a silent server succeeded")
	}
	if !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("NewRedis on a silent server: %v; want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("NewRedis on a silent server took %v; want about the 300ms timeout", took)
	}
}

// TestRedisServerGoneIsUnavailable: the server dies under a connected store;
// every method answers ErrUnavailable within the timeout.
func TestRedisServerGoneIsUnavailable(t *testing.T) {
	addr := cachetest.StartRedis(t)
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + addr, KeyPrefix: randomPrefix(), Timeout: 300 * time.Millisecond})
	ctx := t.Context()
	c := cache.Client{ID: "id", Type: cache.TypeAPNS, Token: "tok"}
	if err := s.Register(ctx, "", c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := s.Lookup(ctx, "", "id"); err != nil { // now cached
		t.Fatalf("Lookup: %v", err)
	}
	shutdown(t, addr)
	// rueidis hears of the closed connection on its reader goroutine; until
	// then its client-side cache may still answer a look-up (a value that
	// was valid a moment ago). A Ping waits for the connection's fate, so
	// every operation after it must see the outage.
	if err := s.Ping(ctx); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("Ping with the server gone: %v; want ErrUnavailable", err)
	}
	ops := map[string]func() error{
		"Ping":     func() error { return s.Ping(ctx) },
		"Register": func() error { return s.Register(ctx, "", c) },
		"Reserve": func() error {
			_, err := s.Reserve(ctx, "", "id", "m", time.Minute)
			return err
		},
		"Lookup": func() error {
			_, err := s.Lookup(ctx, "", "id")
			return err
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("%s with the server gone: %v; want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s with the server gone took %v; want about the 300ms timeout", name, took)
		}
	}
}

// shutdown stops the redis-server at addr, which the test started itself.
func shutdown(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("SHUTDOWN NOSAVE\r\n")); err != nil {
		t.Fatal(err)
	}
	// The server closes the connection as it exits.
	_, _ = c.Read(make([]byte, 64))
	for range 100 {
		if _, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("redis-server at %s still accepts connections after SHUTDOWN", addr)
}

// TestRedisHungServerFailsSendCalls: a server that hangs — its process
// stopped, its sockets open, so no connection error ever comes — fails the
// calls every send makes with ErrUnavailable within Timeout rather than
// holding the request (rueidis retries a read until its context ends), a
// cached look-up keeps answering, and the store recovers by itself once the
// server runs again.
func TestRedisHungServerFailsSendCalls(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	const timeout = 300 * time.Millisecond
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + srv.Addr, KeyPrefix: randomPrefix(), Timeout: timeout})
	ctx := context.Background()
	cached := cache.Client{ID: "cached", Type: "apns", Token: "tok-cached"}
	if err := s.Register(ctx, "", cached); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, "", cached.ID); err != nil {
		t.Fatal(err)
	}
	held, err := s.Reserve(ctx, "", cached.ID, "before-the-hang", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	srv.Freeze()
	// Until the connection is found dead (and its cache dropped with it),
	// a client read before the hang is answered from the cache.
	if got, err := s.Lookup(ctx, "", cached.ID); err != nil || got.Token != cached.Token {
		t.Errorf("cached Lookup on a hung server = %+v, %v; want the cached client", got, err)
	}
	const bound = timeout + time.Second // the slack is for -race on a busy machine
	calls := []struct {
		name string
		call func() error
	}{
		{"Reserve", func() error { _, err := s.Reserve(ctx, "", cached.ID, "during-the-hang", time.Minute); return err }},
		{"Commit", func() error { return s.Commit(ctx, held, time.Hour) }},
		{"Lookup of an uncached client", func() error { _, err := s.Lookup(ctx, "", "never-seen"); return err }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		took := time.Since(start)
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("%s on a hung server: %v; want ErrUnavailable", c.name, err)
		}
		if took > bound {
			t.Errorf("%s on a hung server took %v; want at most %v", c.name, took, bound)
		}
		t.Logf("%s on a hung server failed after %v", c.name, took.Round(time.Millisecond))
	}
	srv.Thaw()

	if !testkit.Poll(5*time.Second, func() bool {
		_, err = s.Reserve(ctx, "", cached.ID, "after-the-hang", time.Minute)
		return err == nil
	}) {
		t.Fatalf("Reserve 5s after the server resumed: %v", err)
	}
	if got, err := s.Lookup(ctx, "", cached.ID); err != nil || got.Token != cached.Token {
		t.Fatalf("Lookup after the hang = %+v, %v; want the registered client", got, err)
	}
}

func TestRedisClientTTL(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	cachetest.RunClientTTL(t, func(t *testing.T, ttl time.Duration) cache.Store {
		return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix(), ClientTTL: ttl})
	})
}

// A refused registration writes nothing on Redis: not the record, and not
// the token entry either, which an unproved registration of a bound id used
// to take and give back, so the token's owner answered 404 in between (for
// good, had Redis failed before the give-back). Redis' own count of writes
// is the witness.
func TestRedisRefusedRegisterWritesNothing(t *testing.T) {
	addr := cachetest.StartRedis(t)
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + addr, KeyPrefix: randomPrefix()})
	ctx := context.Background()
	open := cache.Client{ID: "open", Type: cache.TypeAPNS, Token: "tok-open"}
	bound := cache.Client{ID: "bound", Type: cache.TypeAPNS, Token: "tok-bound", Bound: true}
	for _, c := range []cache.Client{open, bound} {
		if err := s.Register(ctx, "", c); err != nil {
			t.Fatalf("Register %s: %v", c.ID, err)
		}
	}
	writes := func() string {
		t.Helper()
		info, err := cachetest.Command(addr, "INFO", "persistence")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(line, "rdb_changes_since_last_save:"); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no rdb_changes_since_last_save in INFO:\n%s", info)
		return ""
	}
	before := writes()
	for _, c := range []cache.Client{
		{ID: "bound", Type: cache.TypeAPNS, Token: open.Token},     // a bound id, with another client's token
		{ID: "squatter", Type: cache.TypeAPNS, Token: bound.Token}, // another id, with a bound client's token
	} {
		if err := s.Register(ctx, "", c); !errors.Is(err, cache.ErrClientBound) {
			t.Fatalf("unproved Register %s with %s: %v; want ErrClientBound", c.ID, c.Token, err)
		}
	}
	if after := writes(); after != before {
		t.Errorf("refused registrations made %s → %s writes; want none", before, after)
	}
	for _, c := range []cache.Client{open, bound} {
		if got, err := s.Lookup(ctx, "", c.ID); err != nil || got != c {
			t.Errorf("Lookup %s = %+v, %v; want %+v", c.ID, got, err, c)
		}
	}
}

// A refresh whose token entry could not be extended leaves the record as it
// was: a re-stamped record outliving its token entry would answer 404 while
// its stamp said no refresh was due yet.
func TestRedisRefreshNeedsTheTokenEntry(t *testing.T) {
	addr := cachetest.StartRedis(t)
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + addr, KeyPrefix: randomPrefix(), ClientTTL: time.Hour})
	ctx := context.Background()
	c := cache.Client{ID: "wallet", Type: cache.TypeAPNS, Token: "tok"}
	if err := s.Register(ctx, "", c); err != nil {
		t.Fatal(err)
	}
	ck, _, tk := s.KeysForTest("", c.ID, "", c.Token)
	record := func() string {
		t.Helper()
		v, err := cachetest.Command(addr, "GET", ck)
		if err != nil || v == "" {
			t.Fatalf("GET the record: %q, %v", v, err)
		}
		return v
	}
	later := time.Now().Add(30 * time.Minute).UnixMilli()

	// With its entry the refresh re-stamps the record (the check's check).
	before := record()
	if err := s.RefreshForTest(ctx, "", c.ID, later); err != nil {
		t.Fatal(err)
	}
	if record() == before {
		t.Fatal("a refresh with the token entry in place left the record unstamped")
	}
	// Without it (gone, as when its PEXPIRE failed or it expired first),
	// nothing is extended.
	if _, err := cachetest.Command(addr, "DEL", tk); err != nil {
		t.Fatal(err)
	}
	before = record()
	if err := s.RefreshForTest(ctx, "", c.ID, later+60_000); err != nil {
		t.Fatal(err)
	}
	if record() != before {
		t.Error("the record was re-stamped although its token entry was not extended")
	}
}

// TestRedisReserveWaitsForAMarkOnItsWay: a duplicate reaching another
// instance right after the first instance's send ended, while its
// delivered mark is still queued behind the answer (CommitBehind), hears
// "delivered", not "in progress": Reserve looks at the claim again before
// answering. A claim really held still answers in progress.
func TestRedisReserveWaitsForAMarkOnItsWay(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	prefix := randomPrefix()
	a := newRedis(t, cache.RedisConfig{URL: "redis://" + srv.Addr, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: "redis://" + srv.Addr, KeyPrefix: prefix})
	ctx := context.Background()
	for i := range 10 {
		m := fmt.Sprintf("m%d", i)
		res, err := a.Reserve(ctx, "", "id", m, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CommitBehind(ctx, res, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Reserve(ctx, "", "id", m, time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
			t.Fatalf("Reserve on another instance right after CommitBehind = %v; want ErrAlreadyDelivered", err)
		}
	}
	if _, err := a.Reserve(ctx, "", "id", "held", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, "", "id", "held", time.Minute); !errors.Is(err, cache.ErrDeliveryInProgress) {
		t.Fatalf("Reserve of a claim held elsewhere = %v; want ErrDeliveryInProgress", err)
	}
}

// TestRedisFrontCacheForgetsAcrossAReconnect: while a store's connection is
// down, Redis cannot tell it of changes; the look-ups it kept in front of
// rueidis' cache must go with the connection, as rueidis' own cache does,
// or the store would answer a moved token for the whole CacheTTL.
func TestRedisFrontCacheForgetsAcrossAReconnect(t *testing.T) {
	addr := cachetest.StartRedis(t)
	url, prefix := "redis://"+addr, randomPrefix()
	ctx := t.Context()
	a := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix, CacheTTL: time.Hour})
	old := cache.Client{ID: "kept", Type: cache.TypeAPNS, Token: "tok-1"}
	if err := a.Register(ctx, "", old); err != nil {
		t.Fatal(err)
	}
	eventually(t, b, "kept", old, nil, time.Second)
	if !b.FrontCachedForTest("", "kept") {
		t.Fatal("a repeated look-up is not answered from the front cache")
	}

	// Drop every client connection but the killer's, then change the
	// client through a store connected afterwards.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("CLIENT KILL TYPE normal\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || buf[0] != ':' {
		t.Fatalf("CLIENT KILL answered %q, %v", buf[:n], err)
	}
	moved := cache.Client{ID: "kept", Type: cache.TypeFCM, Token: "tok-2"}
	if err := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix}).Register(ctx, "", moved); err != nil {
		t.Fatal(err)
	}
	eventually(t, b, "kept", moved, nil, time.Second)
}
