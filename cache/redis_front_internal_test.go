package cache

import (
	"testing"
	"time"
)

// TestFrontCacheForgetsWhatRedisInvalidates: an entry goes when Redis
// invalidates its record or its token's owner entry, and every entry goes
// when rueidis drops a connection's cache (nil).
func TestFrontCacheForgetsWhatRedisInvalidates(t *testing.T) {
	now := time.Now().UnixNano()
	f := newFrontCache(100)
	fill := func() {
		for _, id := range []string{"a", "b"} {
			_, gen := f.get("c:"+id, now)
			f.put("c:"+id, &frontEntry{client: Client{ID: id}, tokenKey: "t:" + id, expires: now + int64(time.Hour)}, gen)
		}
	}
	cached := func(id string) bool { e, _ := f.get("c:"+id, now); return e != nil }
	keys := func(ks ...string) []string { return ks }

	fill()
	if !cached("a") || !cached("b") {
		t.Fatal("a look-up's answer was not kept")
	}
	f.invalidate(keys("c:a"))
	if cached("a") || !cached("b") {
		t.Fatalf("invalidating a's record: a cached %v, b cached %v; want false, true", cached("a"), cached("b"))
	}
	fill()
	f.invalidate(keys("t:b", "unrelated"))
	if !cached("a") || cached("b") {
		t.Fatalf("invalidating b's token entry: a cached %v, b cached %v; want true, false", cached("a"), cached("b"))
	}
	fill()
	f.invalidate(nil)
	if cached("a") || cached("b") {
		t.Fatal("a dropped connection (nil) left entries behind")
	}
}

// TestFrontCacheRefusesWhatWasReadDuringAnInvalidation: a look-up that
// began before an invalidation may have read the old value, so it must not
// be kept; nor may an entry outlive its keys' expiry.
func TestFrontCacheRefusesWhatWasReadDuringAnInvalidation(t *testing.T) {
	now := time.Now().UnixNano()
	f := newFrontCache(100)
	_, gen := f.get("c:a", now)
	f.invalidate([]string{"c:a"})
	f.put("c:a", &frontEntry{client: Client{ID: "a"}, tokenKey: "t:a", expires: now + int64(time.Hour)}, gen)
	if e, _ := f.get("c:a", now); e != nil {
		t.Fatal("an answer read across an invalidation was kept")
	}

	pxat := time.Now().Add(time.Second).UnixMilli()
	exp := frontExpiry(now, time.Hour, -1, pxat)
	if exp != pxat*int64(time.Millisecond) {
		t.Fatalf("frontExpiry = %v from now; want the key's own expiry, %v", time.Duration(exp-now), time.Duration(pxat*int64(time.Millisecond)-now))
	}
	if exp := frontExpiry(now, time.Minute, -1, 0); exp != now+int64(time.Minute) {
		t.Fatalf("frontExpiry without key expiries = %v; want CacheTTL", time.Duration(exp-now))
	}
}

// TestFrontCacheIsBounded: past its bound it starts over.
func TestFrontCacheIsBounded(t *testing.T) {
	now := time.Now().UnixNano()
	f := newFrontCache(10)
	for i := range 1000 {
		k := string(rune('A'+i%50)) + string(rune('a'+i/50))
		_, gen := f.get(k, now)
		f.put(k, &frontEntry{tokenKey: "t" + k, expires: now + int64(time.Hour)}, gen)
		if len(f.byClient) > 10 || len(f.byToken) > 10 {
			t.Fatalf("after %d entries: %d clients, %d tokens held; want at most 10", i+1, len(f.byClient), len(f.byToken))
		}
	}
}
