package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"time"

	bolt "go.etcd.io/bbolt"
)

// KeysForTest exposes the key layout to the cluster tests, which check where
// the keys land: the client record, the dedup record of messageID, and the
// owner index of token.
func (r *Redis) KeysForTest(tenant, id, messageID, token string) (client, dedup, owner string) {
	hash := sha256.Sum256([]byte(token))
	return r.clientKey(tenant, id), r.dedupKey(tenant, id, messageID), r.tokenKey(tenant, &hash)
}

// RawTenantForTest returns every stored field value of the tenant's record,
// read past the cache, so tests can check the sealed bytes are stored as
// given.
func (r *Redis) RawTenantForTest(ctx context.Context, id string) ([]byte, error) {
	m, err := r.c.Do(ctx, r.c.B().Hgetall().Key(r.tenantKey(id)).Build()).AsStrMap()
	var b []byte
	for _, v := range m {
		b = append(b, v...)
	}
	return b, err
}

// RawTenantForTest returns the tenant's stored record.
func (e *Embedded) RawTenantForTest(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := e.db.View(func(tx *bolt.Tx) error {
		b = bytes.Clone(tx.Bucket(bucketTenants).Get([]byte(id)))
		return nil
	})
	return b, err
}

// MaxCommitsBehind is how many delivered marks CommitBehind queues before
// it writes them itself.
const MaxCommitsBehind = maxCommitsBehind

// KeptScript is the script that writes a kept delivered mark: KEYS[1],
// ARGV[1] = the ms left of its TTL.
const KeptScript = keptScript

// SetKeptMaxForTest changes how many marks the store keeps after a failed
// write (maxKeptMarks), so a test can reach the bound.
func (r *Redis) SetKeptMaxForTest(n int) {
	r.behind.mu.Lock()
	r.behind.keptMax = n
	r.behind.mu.Unlock()
}

// RefreshForTest runs a look-up's refresh of client id as if it were now
// (unix ms), on the record the primary holds.
func (r *Redis) RefreshForTest(ctx context.Context, tenant, id string, now int64) error {
	b, err := r.c.Do(ctx, r.c.B().Get().Key(r.clientKey(tenant, id)).Build()).AsBytes()
	if err != nil {
		return err
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return err
	}
	r.refresh(ctx, tenant, id, &rec, now)
	return nil
}

// FrontCachedForTest reports whether a look-up of client id would be
// answered from the front cache (see frontCache).
func (r *Redis) FrontCachedForTest(tenant, id string) bool {
	e, _ := r.front.get(r.clientKey(tenant, id), time.Now().UnixNano())
	return e != nil
}
