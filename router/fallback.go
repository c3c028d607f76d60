package router

import (
	"sync"
	"time"

	"push-server/cache"
)

// localDedup stands in for the store's dedup marks while the store's
// primary cannot be reached (an edge region whose replica still serves
// look-ups): sends keep being delivered, deduplicated within this instance
// only. A relay that retries through another region in that window may
// deliver twice; docs/redis.md explains the trade. It is bounded, so a long
// outage cannot grow memory without limit. Its delivered marks are also
// handed to the store (Store.CommitBehind), which keeps them until the
// primary is back and writes them there, so a retry after the outage hears
// 200 through any instance.
type localDedup struct {
	mu      sync.Mutex
	entries map[string]localMark
	max     int
}

type localMark struct {
	expires   time.Time
	delivered bool
}

func newLocalDedup(max int) *localDedup {
	return &localDedup{entries: make(map[string]localMark), max: max}
}

// reserve claims key for lease, as Store.Reserve does: nil when claimed,
// else cache.ErrAlreadyDelivered or cache.ErrDeliveryInProgress, so a send
// answers the same whichever of the two holds its marks.
func (d *localDedup) reserve(key string, lease time.Duration) error {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.entries[key]; ok && now.Before(m.expires) {
		if m.delivered {
			return cache.ErrAlreadyDelivered
		}
		return cache.ErrDeliveryInProgress
	}
	if len(d.entries) >= d.max {
		for k, m := range d.entries { // drop the expired, else an arbitrary half
			if now.After(m.expires) || len(d.entries) >= d.max/2 {
				delete(d.entries, k)
			}
			if len(d.entries) < d.max/2 {
				break
			}
		}
	}
	d.entries[key] = localMark{expires: now.Add(lease)}
	return nil
}

// commit marks key delivered for ttl, whatever claim it holds.
func (d *localDedup) commit(key string, ttl time.Duration) {
	d.mu.Lock()
	d.entries[key] = localMark{expires: time.Now().Add(ttl), delivered: true}
	d.mu.Unlock()
}

// release drops key's claim so that a retry can deliver.
func (d *localDedup) release(key string) {
	d.mu.Lock()
	delete(d.entries, key)
	d.mu.Unlock()
}
