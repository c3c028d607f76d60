package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestEmbeddedPurgeExpired(t *testing.T) {
	e, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := t.Context()
	// 2500 expired records span several purge chunks; one live record in
	// the middle must survive. They are written in one transaction, since a
	// Commit each would fsync 2500 times.
	now := time.Now()
	err = e.db.Update(func(tx *bolt.Tx) error {
		for i := range 2500 {
			exp := now.Add(-time.Second)
			if i == 1234 {
				exp = now.Add(time.Hour)
			}
			k := embeddedDedupKey("", "id", fmt.Sprintf("m%05d", i))
			if err := tx.Bucket(bucketDedup).Put(k, binary.BigEndian.AppendUint64(nil, uint64(exp.UnixNano()))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reserve(ctx, "", "id", "m01234", time.Hour); !errors.Is(err, ErrAlreadyDelivered) {
		t.Fatalf("Reserve of the live record = %v; want ErrAlreadyDelivered", err)
	}
	if _, err := e.Reserve(ctx, "", "id", "m00001", time.Hour); err != nil {
		t.Fatalf("Reserve of an expired record = %v; want a reservation", err)
	}
	abandoned, err := e.Reserve(ctx, "", "id", "abandoned", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.purgeExpired(now.Add(time.Minute)); err != nil {
		t.Fatalf("purgeExpired: %v", err)
	}
	var n int
	_ = e.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDedup).Stats().KeyN; return nil })
	if n != 1 {
		t.Fatalf("%d dedup records left after purging; want the 1 live one", n)
	}
	e.mu.Lock()
	_, held := e.pending[string(embeddedDedupKey("", "id", abandoned.MessageID))]
	e.mu.Unlock()
	if held {
		t.Fatal("an expired reservation survived purging")
	}
}

// The sweeper's purge of expired clients (CLIENT_TTL) deletes their records
// and token entries, in every tenant, and leaves live ones.
func TestEmbeddedPurgeExpiredClients(t *testing.T) {
	const ttl = time.Hour
	e, err := OpenEmbeddedWith(t.TempDir(), EmbeddedConfig{ClientTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tenant := range []string{"", "wallet-a"} {
		for _, id := range []string{"old", "new"} {
			if err := e.Register(t.Context(), tenant, Client{ID: id, Type: TypeAPNS, Token: "tok-" + id}); err != nil {
				t.Fatal(err)
			}
		}
		// "new" is refreshed an hour later, by its look-up.
		e.refresh(embeddedClientKey(tenant, "new"), time.Now().Add(ttl/2).UnixMilli())
	}
	if err := e.purgeExpiredClients(time.Now().Add(ttl + time.Minute)); err != nil {
		t.Fatal(err)
	}
	count := func(bucket []byte) (n int) {
		_ = e.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil })
		return n
	}
	if c, tk := count(bucketClients), count(bucketTokens); c != 2 || tk != 2 {
		t.Fatalf("after the purge: %d clients and %d token entries; want 2 and 2 (the refreshed ones)", c, tk)
	}
	for _, tenant := range []string{"", "wallet-a"} {
		if _, err := e.Lookup(t.Context(), tenant, "new"); err != nil {
			t.Fatalf("tenant %q: the refreshed client: %v", tenant, err)
		}
	}
}
