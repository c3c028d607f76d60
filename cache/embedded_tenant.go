package cache

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketTenants holds tenant id → tenant record (tenant_record.go).
var bucketTenants = []byte("tenants")

var (
	_ Tenants = (*Embedded)(nil)
	_ Limiter = (*Embedded)(nil)
)

// CreateTenant implements Tenants.
func (e *Embedded) CreateTenant(ctx context.Context, id string) (bool, error) {
	if err := e.check(ctx); err != nil {
		return false, err
	}
	var created bool
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		if b.Get([]byte(id)) != nil {
			return nil
		}
		created = true
		return b.Put([]byte(id), appendTenantRecord(nil, &Tenant{ID: id, Incarnation: newIncarnation()}))
	})
	if err != nil {
		return false, dbError(fmt.Sprintf("create tenant %q", id), err)
	}
	return created, nil
}

// Tenant implements Tenants. bbolt reads are served from the memory map, so
// no cache is needed in front of them.
func (e *Embedded) Tenant(ctx context.Context, id string) (Tenant, error) {
	if err := e.check(ctx); err != nil {
		return Tenant{}, err
	}
	var (
		t      Tenant
		found  bool
		decErr error
	)
	err := e.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketTenants).Get([]byte(id)); v != nil {
			found = true
			t, decErr = decodeTenantRecord(id, v)
		}
		return nil
	})
	switch {
	case err != nil:
		return Tenant{}, dbError(fmt.Sprintf("read tenant %q", id), err)
	case !found:
		return Tenant{}, ErrTenantNotFound
	case decErr != nil:
		return Tenant{}, fmt.Errorf("cannot read tenant %q: %w", id, decErr)
	}
	return t, nil
}

// UpdateTenant implements Tenants in one transaction, which also checks
// change.If.
func (e *Embedded) UpdateTenant(ctx context.Context, id string, change TenantChange) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	var refused, decErr error
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		v := b.Get([]byte(id))
		if v == nil {
			refused = ErrTenantNotFound
			return nil
		}
		t, err := decodeTenantRecord(id, v)
		if err != nil {
			decErr = err
			return nil
		}
		if !change.holds(&t) {
			refused = ErrTenantChanged
			return nil
		}
		change.apply(&t)
		return b.Put([]byte(id), appendTenantRecord(nil, &t))
	})
	switch {
	case err != nil:
		return dbError(fmt.Sprintf("update tenant %q", id), err)
	case refused != nil:
		return refused
	case decErr != nil:
		return fmt.Errorf("cannot update tenant %q: %w", id, decErr)
	}
	return nil
}

// DeleteTenant implements Tenants: one transaction removes the record and
// every client, token and dedup key under the tenant's key prefix, and the
// tenant's in-memory reservations go with it.
func (e *Embedded) DeleteTenant(ctx context.Context, id string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	prefix := appendTenantPrefix(nil, id)
	err := e.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTenants).Delete([]byte(id)); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketClients, bucketTokens, bucketDedup} {
			cur := tx.Bucket(name).Cursor()
			for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
				// Cursor.Next after Delete skips a key; seek to the
				// successor of the deleted one instead.
				kc := bytes.Clone(k)
				if err := cur.Delete(); err != nil {
					return err
				}
				k, _ = cur.Seek(kc)
			}
		}
		return nil
	})
	if err != nil {
		return dbError(fmt.Sprintf("delete tenant %q", id), err)
	}
	e.mu.Lock()
	for k := range e.pending {
		if strings.HasPrefix(k, string(prefix)) {
			delete(e.pending, k)
		}
	}
	e.mu.Unlock()
	return nil
}

// window is one key's fixed rate-limit window.
type window struct {
	count int
	ends  time.Time
}

// Allow implements Limiter in memory: one process owns the file, so it owns
// the counts too. A restart resets them, which only forgives a window.
func (e *Embedded) Allow(ctx context.Context, key string, limit int, win time.Duration) (bool, time.Duration, error) {
	if err := e.check(ctx); err != nil {
		return false, 0, err
	}
	now := time.Now()
	e.limMu.Lock()
	defer e.limMu.Unlock()
	if e.windows == nil {
		e.windows = make(map[string]window)
	}
	// Expired windows are dropped when the map has doubled since the last
	// sweep, so memory stays proportional to the keys active in a window at
	// an amortised constant cost per call.
	if len(e.windows) >= e.sweepAt {
		for k, w := range e.windows {
			if !now.Before(w.ends) {
				delete(e.windows, k)
			}
		}
		e.sweepAt = max(1024, 2*len(e.windows))
	}
	w, ok := e.windows[key]
	if !ok || !now.Before(w.ends) {
		w = window{ends: now.Add(win)}
	}
	w.count++
	e.windows[key] = w
	if w.count <= limit {
		return true, 0, nil
	}
	return false, w.ends.Sub(now), nil
}
