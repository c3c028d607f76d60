package cache_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
)

// TestRedisCluster runs everything the cluster must hold on one three-master
// cluster: the contract suite (through one seed node, so rueidis finds the
// other nodes itself), keys spread over slots and nodes (through several
// comma-separated URLs), and the refusal of a replica URL.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	addrs := cachetest.StartCluster(t)
	t.Logf("cluster up in %v", time.Since(start))

	t.Run("Contract", func(t *testing.T) {
		url := "redis://" + addrs[1]
		cachetest.Run(t, func(t *testing.T) cache.Store {
			return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
		})
	})
	t.Run("Tenants", func(t *testing.T) {
		url := "redis://" + addrs[1]
		cachetest.RunTenants(t, func(t *testing.T) cachetest.TenantStore {
			return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
		})
		cachetest.RunLimiter(t, func(t *testing.T) cache.Limiter {
			return newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: randomPrefix()})
		})
	})
	t.Run("KeysSpreadOverSlotsAndNodes", func(t *testing.T) {
		testClusterKeysSpread(t, addrs)
	})
	t.Run("RidesOutSlotMigration", func(t *testing.T) {
		testClusterSlotMigration(t, addrs)
	})
	t.Run("ReplicaURLIsRefused", func(t *testing.T) {
		s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addrs[0], ReplicaURL: "redis://" + addrs[1]})
		if err == nil {
			s.Close()
			t.Fatal("NewRedis with a cluster URL and a replica URL succeeded; want an error")
		}
		if !strings.Contains(err.Error(), "cluster") {
			t.Fatalf("NewRedis with a cluster URL and a replica URL: %v; want an error naming the cluster", err)
		}
	})
}

// testClusterKeysSpread: a client's record and its dedup records share a
// slot (so scripts and settle steps never cross slots), while different
// clients land on different slots, and every master holds some of them.
func testClusterKeysSpread(t *testing.T, addrs []string) {
	urls := make([]string, len(addrs))
	for i, a := range addrs {
		urls[i] = "redis://" + a
	}
	s := newRedis(t, cache.RedisConfig{URL: strings.Join(urls, ","), KeyPrefix: randomPrefix()})
	ctx := t.Context()

	const clients = 60
	slots := make(map[string]bool)
	perNode := make(map[string]int)
	for i := range clients {
		c := cache.Client{ID: fmt.Sprintf("z6Mk-%d", i), Type: cache.TypeFCM, Token: fmt.Sprintf("tok-%d", i)}
		if err := s.Register(ctx, "tenant", c); err != nil {
			t.Fatalf("Register(%+v): %v", c, err)
		}
		r, err := s.Reserve(ctx, "tenant", c.ID, "msg", time.Minute)
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		if err := s.Commit(ctx, r, time.Minute); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if got, err := s.Lookup(ctx, "tenant", c.ID); err != nil || got != c {
			t.Fatalf("Lookup(%q) = %+v, %v; want %+v", c.ID, got, err, c)
		}

		ck, dk, tk := s.KeysForTest("tenant", c.ID, "msg", c.Token)
		cs := keySlot(t, addrs[0], ck)
		if ds := keySlot(t, addrs[0], dk); ds != cs {
			t.Fatalf("client key %q in slot %s, its dedup key %q in slot %s; want one slot", ck, cs, dk, ds)
		}
		slots[cs] = true
		// The key lives on exactly one master; the others redirect.
		for _, key := range []string{ck, dk, tk} {
			holders := 0
			for _, a := range addrs {
				if n, err := cachetest.Command(a, "EXISTS", key); err == nil && n == "1" {
					holders++
					perNode[a]++
				}
			}
			if holders != 1 {
				t.Fatalf("key %q is held by %d masters; want 1", key, holders)
			}
		}
	}
	// 60 keys in 16384 slots collide rarely; a fixed tag would put all in one.
	if len(slots) < clients-5 {
		t.Errorf("%d clients' records use only %d slots; want them spread", clients, len(slots))
	}
	for _, a := range addrs {
		if perNode[a] == 0 {
			t.Errorf("master %s holds none of the %d keys; want keys on every master (per node: %v)", a, 3*clients, perNode)
		}
	}
}

func keySlot(t *testing.T, addr, key string) string {
	t.Helper()
	slot, err := cachetest.Command(addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
	}
	return slot
}

// testClusterSlotMigration moves the slot of one client's record and dedup
// keys to another master by hand (CLUSTER SETSLOT + MIGRATE, what
// redis-cli --cluster reshard does) while the store uses it: reads and
// writes during the migration follow ASK, after it MOVED, and the cached
// answer is not kept past the keys' move.
func testClusterSlotMigration(t *testing.T, addrs []string) {
	s := newRedis(t, cache.RedisConfig{URL: "redis://" + addrs[0], KeyPrefix: randomPrefix()})
	ctx := t.Context()
	c := cache.Client{ID: "z6MkMigrating", Type: cache.TypeAPNS, Token: "tok-migrating"}
	if err := s.Register(ctx, "", c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	r, err := s.Reserve(ctx, "", c.ID, "delivered", time.Minute)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := s.Commit(ctx, r, time.Minute); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wantLookup := func(want cache.Client) {
		t.Helper()
		if got, err := s.Lookup(ctx, "", want.ID); err != nil || got != want {
			t.Fatalf("Lookup(%q) = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	wantLookup(c) // cached from here on

	ck, dk, _ := s.KeysForTest("", c.ID, "delivered", c.Token)
	slot := keySlot(t, addrs[0], ck)
	cmd := func(addr string, args ...string) string {
		t.Helper()
		out, err := cachetest.Command(addr, args...)
		if err != nil {
			t.Fatalf("%s on %s: %v", strings.Join(args, " "), addr, err)
		}
		return out
	}
	var src, dst string
	for _, a := range addrs {
		if n, err := cachetest.Command(a, "EXISTS", ck); err == nil && n == "1" {
			src = a
		} else if dst == "" {
			dst = a
		}
	}
	if src == "" {
		t.Fatalf("no master holds %q", ck)
	}
	srcID, dstID := cmd(src, "CLUSTER", "MYID"), cmd(dst, "CLUSTER", "MYID")
	cmd(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)

	// Migration under way, keys still on the source.
	wantLookup(c)
	host, port, _ := strings.Cut(dst, ":")
	cmd(src, "MIGRATE", host, port, "", "0", "5000", "KEYS", ck, dk)
	// Keys on the target, slot still the source's: the source answers ASK.
	c.Type, c.AlwaysRaw = cache.TypeFCM, true
	if err := s.Register(ctx, "", c); err != nil {
		t.Fatalf("Register during the migration: %v", err)
	}
	wantLookup(c)
	for _, a := range addrs {
		cmd(a, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	}

	// Migration done: the source answers MOVED.
	wantLookup(c)
	if _, err := s.Reserve(ctx, "", c.ID, "delivered", time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
		t.Fatalf("Reserve of a delivered message after its slot moved: %v; want ErrAlreadyDelivered", err)
	}
	c.Token = "tok-after-move"
	if err := s.Register(ctx, "", c); err != nil {
		t.Fatalf("Register after the migration: %v", err)
	}
	wantLookup(c)
	if n := cmd(dst, "EXISTS", ck); n != "1" {
		t.Fatalf("the client record is not on the slot's new master %s", dst)
	}
}
