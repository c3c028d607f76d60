package cache

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
	bolt "go.etcd.io/bbolt"
)

// APNSCertificateExpiries implements Tenants with one read transaction over
// the tenants bucket: bbolt serves it from the memory map, and a read
// transaction blocks no writer.
func (e *Embedded) APNSCertificateExpiries(ctx context.Context, each func(tenant string, notAfter int64)) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEach(func(k, v []byte) error {
			t, err := decodeTenantRecord(string(k), v)
			if err != nil {
				// One unreadable record must not hide every other
				// tenant's expiry; Tenant reports it when it is used.
				return nil
			}
			if t.APNSCertificateNotAfter != 0 {
				each(t.ID, t.APNSCertificateNotAfter)
			}
			return nil
		})
	})
	if err != nil {
		return dbError("list tenants' certificate expiries", err)
	}
	return nil
}

// APNSCertificateExpiries implements Tenants: it SCANs every node for
// tenant keys, deleteBatch at a time, and reads their ae field in one
// pipeline per batch, each round trip within the store's timeout. Keys
// seen on more than one node (a replica answers SCAN too) are reported
// once.
func (r *Redis) APNSCertificateExpiries(ctx context.Context, each func(tenant string, notAfter int64)) error {
	if r.closed() {
		return unavailable("list tenants", errStoreClosed)
	}
	seen := map[string]struct{}{}
	return r.scanNodes(ctx, r.tenantPattern(), "list tenants", func(ctx context.Context, batch []string) error {
		keys := batch[:0]
		for _, k := range batch {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return nil
		}
		if err := r.reportExpiries(ctx, keys, each); err != nil {
			return unavailable("read tenants' certificate expiries", err)
		}
		return nil
	})
}

// reportExpiries reads the ae field of tenant keys and reports those set.
func (r *Redis) reportExpiries(ctx context.Context, keys []string, each func(string, int64)) error {
	cmds := make(rueidis.Commands, 0, len(keys))
	for _, k := range keys {
		cmds = append(cmds, r.c.B().Hget().Key(k).Field("ae").Build())
	}
	for i, res := range r.c.DoMulti(ctx, cmds...) {
		v, err := res.ToString()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return err
		}
		na, err := strconv.ParseInt(v, 10, 64)
		id, ok := r.tenantOfKey(keys[i])
		if err != nil || na == 0 || !ok {
			continue // as Embedded: a bad record is Tenant's to report
		}
		each(id, na)
	}
	return nil
}

// tenantPattern is a SCAN MATCH pattern for every tenant record:
// "P tenant:{*}", the prefix escaped as in tenantDataPattern.
func (r *Redis) tenantPattern() string {
	b := appendGlobEscaped(make([]byte, 0, 2*len(r.prefix)+10), r.prefix)
	return string(append(b, "tenant:{*}"...))
}

// tenantOfKey is tenantKey's inverse: the tenant id a record key names.
func (r *Redis) tenantOfKey(key string) (string, bool) {
	spelled, ok := strings.CutPrefix(key, r.prefix+"tenant:{")
	if !ok {
		return "", false
	}
	if spelled, ok = strings.CutSuffix(spelled, "}"); !ok {
		return "", false
	}
	if hexed, ok := strings.CutPrefix(spelled, "~"); ok {
		b, err := hex.DecodeString(hexed)
		return string(b), err == nil
	}
	return spelled, true
}

// notAfterArg spells an APNs certificate expiry for updateTenantScript:
// "" for none.
func notAfterArg(notAfter int64) string {
	if notAfter <= 0 {
		return ""
	}
	return strconv.FormatInt(notAfter, 10)
}
