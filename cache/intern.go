package cache

import (
	"strconv"
	"sync"
	"time"
)

// keyInterner hands out one string per distinct key, so that a look-up of a
// client seen recently builds its Redis keys in a stack buffer without
// allocating (a map index by string(bytes) does not copy). The strings it
// returns are ordinary immutable strings, safe for rueidis to keep in its
// cache and its write queue.
//
// It is bounded: past maxKeys entries it starts over, a cheap way to keep
// memory flat (a million clients sent to at random just allocate their keys
// as before), while the clients a relay sends to often stay interned.
type keyInterner struct {
	mu      sync.RWMutex
	keys    map[string]string
	maxKeys int
}

func newKeyInterner(maxKeys int) *keyInterner {
	return &keyInterner{keys: make(map[string]string), maxKeys: maxKeys}
}

// intern returns the string spelled by b.
func (k *keyInterner) intern(b []byte) string {
	k.mu.RLock()
	s, ok := k.keys[string(b)]
	k.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	// A miss never waits for the lock: with a large client base sent to at
	// random nearly every look-up misses, and they would queue behind each
	// other here. Losing the race only means this key is not interned yet.
	if k.mu.TryLock() {
		if len(k.keys) >= k.maxKeys {
			clear(k.keys)
		}
		k.keys[s] = s
		k.mu.Unlock()
	}
	return s
}

// millisArgs spells durations in whole milliseconds for PX, remembering the
// few a server uses (the dedup lease and TTL come from its configuration),
// so that a command's expiry is not formatted, and allocated, per call. The
// zero value is ready to use.
type millisArgs struct {
	mu      sync.RWMutex
	spelled map[time.Duration]string
}

func (a *millisArgs) of(d time.Duration) string {
	a.mu.RLock()
	s, ok := a.spelled[d]
	a.mu.RUnlock()
	if ok {
		return s
	}
	s = strconv.FormatInt(durationMs(d), 10)
	a.mu.Lock()
	if a.spelled == nil || len(a.spelled) >= 64 {
		a.spelled = make(map[time.Duration]string)
	}
	a.spelled[d] = s
	a.mu.Unlock()
	return s
}
