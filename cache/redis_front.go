package cache

import (
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// frontCache holds the answers of recent look-ups on the primary, decoded,
// in front of rueidis' client-side cache. A look-up answered from rueidis'
// cache still costs two DoCache calls (command builder, slot, the cache's
// lock and maps, per key) and the decoding of the record: 3.7 µs of a
// 48 µs send in a profile of the server under load (BENCHMARKS.md,
// session 6), against one map read here.
//
// It is exactly as fresh as rueidis' cache, because it forgets what
// rueidis forgets: rueidis calls OnInvalidations (invalidate) after it
// dropped the keys from its own cache, with every key Redis invalidated,
// and with nil when a connection closes (its whole cache goes) or Redis
// flushes. An entry goes when either of its two keys (the record and the
// token's owner) is named, and everything goes on nil. A look-up that read
// its keys while an invalidation was being applied must not store what it
// read: gen counts invalidations, and put stores only when none came since
// the look-up began (get's caller reads gen first). An entry also expires
// when rueidis' would: at the earlier of CacheTTL from its read and the
// keys' own expiry (CLIENT_TTL), and it is not used when a CLIENT_TTL
// refresh is due, so that the full look-up refreshes.
//
// It is bounded like the key interners: past maxEntries it starts over.
type frontCache struct {
	mu       sync.RWMutex
	gen      uint64 // invalidations applied; under mu
	byClient map[string]*frontEntry
	byToken  map[string]string // token key → client key of its entry
	max      int
}

type frontEntry struct {
	client   Client
	tokenKey string
	expires  int64 // unix ns
	stamp    int64 // the record's refresh stamp (CLIENT_TTL), unix ms
}

func newFrontCache(maxEntries int) *frontCache {
	return &frontCache{byClient: make(map[string]*frontEntry), byToken: make(map[string]string), max: maxEntries}
}

// get returns the live entry of clientKey, or nil, and the invalidation
// count to hand to put after a full look-up.
func (f *frontCache) get(clientKey string, now int64) (*frontEntry, uint64) {
	f.mu.RLock()
	e, gen := f.byClient[clientKey], f.gen
	f.mu.RUnlock()
	if e != nil && now < e.expires {
		return e, gen
	}
	return nil, gen
}

// put stores e for clientKey unless an invalidation came since gen was read.
func (f *frontCache) put(clientKey string, e *frontEntry, gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return
	}
	if len(f.byClient) >= f.max {
		clear(f.byClient)
		clear(f.byToken)
	}
	if old := f.byClient[clientKey]; old != nil {
		delete(f.byToken, old.tokenKey)
	}
	if other, ok := f.byToken[e.tokenKey]; ok && other != clientKey {
		// A token's entry names one owner: an entry of another id with the
		// same token cannot be current any more.
		delete(f.byClient, other)
	}
	f.byClient[clientKey] = e
	f.byToken[e.tokenKey] = clientKey
}

// onInvalidations is rueidis' OnInvalidations: the keys Redis invalidated
// on one connection, nil when its cache is gone. It runs on rueidis'
// reading goroutine, after rueidis dropped the keys from its own cache.
func (f *frontCache) onInvalidations(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		f.invalidate(nil)
		return
	}
	keys := make([]string, len(msgs))
	for i := range msgs {
		k, err := msgs[i].ToString()
		if err != nil {
			// Not a key name: nothing says what it invalidates.
			f.invalidate(nil)
			return
		}
		keys[i] = k
	}
	f.invalidate(keys)
}

// invalidate forgets the entries that keys name; nil forgets everything.
func (f *frontCache) invalidate(keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	if keys == nil {
		clear(f.byClient)
		clear(f.byToken)
		return
	}
	for _, k := range keys {
		if e := f.byClient[k]; e != nil {
			delete(f.byToken, e.tokenKey)
			delete(f.byClient, k)
		}
		if ck, ok := f.byToken[k]; ok {
			delete(f.byClient, ck)
			delete(f.byToken, k)
		}
	}
}

// frontExpiry is when an entry read at now (unix ns) expires: after
// cacheTTL, or earlier when either reply says its key expires sooner (a
// key's PXAT, unix ms; -1 or 0 for none).
func frontExpiry(now int64, cacheTTL time.Duration, pxats ...int64) int64 {
	exp := now + int64(cacheTTL)
	for _, ms := range pxats {
		if ms > 0 && ms*int64(time.Millisecond) < exp {
			exp = ms * int64(time.Millisecond)
		}
	}
	return exp
}
