package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/internal/testkit"
)

// TestRedisCommitBehindOtherInstance: a mark written behind its send is,
// to another instance on the same Redis, the claim ("in progress") until
// it lands — never a fresh claim, which would deliver the message twice —
// and "delivered" within a few milliseconds, with no Reserve on the first
// instance to carry it.
func TestRedisCommitBehindOtherInstance(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	prefix := randomPrefix()
	a := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	ctx := context.Background()
	for i := range 50 {
		msg := "m" + strconv.Itoa(i)
		res, err := a.Reserve(ctx, "", "id", msg, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CommitBehind(ctx, res, time.Hour); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			_, err := b.Reserve(ctx, "", "id", msg, time.Minute)
			if errors.Is(err, cache.ErrAlreadyDelivered) {
				break
			}
			if !errors.Is(err, cache.ErrDeliveryInProgress) {
				t.Fatalf("message %d: other instance's Reserve = %v; want in progress, then delivered", i, err)
			}
			// CommitBehindDelay plus a round trip; the slack is for -race
			// on a busy machine.
			if time.Since(start) > time.Second {
				t.Fatalf("message %d: not delivered to the other instance after %v", i, time.Since(start))
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestRedisCloseWritesCommitsBehind: Close writes the marks still queued,
// so an instance that shuts down right after its last 202s leaves them
// recorded, and a mark offered after Close is refused, not silently lost.
func TestRedisCloseWritesCommitsBehind(t *testing.T) {
	url := "redis://" + cachetest.StartRedis(t)
	prefix := randomPrefix()
	a, err := cache.NewRedis(cache.RedisConfig{URL: url, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	ctx := context.Background()
	const n = 100
	var last cache.Reservation
	for i := range n {
		res, err := a.Reserve(ctx, "", "id", "m"+strconv.Itoa(i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CommitBehind(ctx, res, time.Hour); err != nil {
			t.Fatal(err)
		}
		last = res
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := b.Reserve(ctx, "", "id", "m"+strconv.Itoa(i), time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
			t.Fatalf("message %d after the first instance closed: Reserve = %v; want ErrAlreadyDelivered", i, err)
		}
	}
	if err := a.CommitBehind(ctx, last, time.Hour); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("CommitBehind after Close = %v; want ErrUnavailable", err)
	}
}

// TestRedisMarksSurviveACrash: delivered marks that Redis could not take
// (it was SIGKILLed with them queued behind their sends, and one was made
// for a message never claimed on Redis, as the router's fallback does) are
// kept: this store answers "delivered" for them meanwhile, and once Redis is
// back they land with what is left of their TTL, so that another instance's
// retry after the claims' lease hears "delivered", not "in progress" and
// then a fresh claim. Nothing is reported lost.
func TestRedisMarksSurviveACrash(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	url, prefix := "redis://"+srv.Addr, randomPrefix()
	var mu sync.Mutex
	lost := 0
	a := newRedis(t, cache.RedisConfig{
		URL: url, KeyPrefix: prefix, Timeout: 300 * time.Millisecond,
		OnLostCommits: func(n int, err error) { mu.Lock(); lost += n; mu.Unlock() },
	})
	ctx := context.Background()
	const ttl = time.Hour
	var held []cache.Reservation
	for i := range 3 {
		res, err := a.Reserve(ctx, "", "id", fmt.Sprint("m", i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, res)
	}
	// The fallback's shape: delivered while Redis was away, never claimed.
	held = append(held, cache.Reservation{ClientID: "id", MessageID: "fallback"})
	srv.Stop()
	for _, res := range held {
		if err := a.CommitBehind(ctx, res, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// Across the failed write and after it: delivered, here.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, res := range held {
			if _, err := a.Reserve(ctx, "", "id", res.MessageID, time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
				t.Fatalf("%s while Redis is down: Reserve = %v; want ErrAlreadyDelivered", res.MessageID, err)
			}
		}
	}
	const outage = time.Second
	time.Sleep(outage)
	srv.Restart()
	b := newRedis(t, cache.RedisConfig{URL: url, KeyPrefix: prefix})
	for _, res := range held {
		var err error
		if !testkit.Poll(3*time.Second, func() bool {
			_, err = b.Reserve(ctx, "", "id", res.MessageID, time.Minute)
			return err == nil || errors.Is(err, cache.ErrAlreadyDelivered)
		}) || err == nil {
			t.Fatalf("%s on another instance after the restart: Reserve = %v; want ErrAlreadyDelivered within 3s", res.MessageID, err)
		}
		_, key, _ := b.KeysForTest("", "id", res.MessageID, "")
		out, err := cachetest.Command(srv.Addr, "PTTL", key)
		if err != nil {
			t.Fatal(err)
		}
		left, _ := strconv.ParseInt(out, 10, 64)
		if d := time.Duration(left) * time.Millisecond; d > ttl-outage || d < ttl-30*time.Second {
			t.Errorf("%s written with %v left; want what was left of %v after the outage (less than %v)", res.MessageID, d, ttl, ttl-outage)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if lost != 0 {
		t.Errorf("OnLostCommits heard of %d lost marks; want none, all were written after the restart", lost)
	}
}

// TestRedisKeptMarkIsNotOverwritingNewer: a kept mark is written over a
// claim (the send's own, which survived the crash) or nothing, but never
// over a delivered mark, which is as new or newer.
func TestRedisKeptMarkIsNotOverwritingNewer(t *testing.T) {
	addr := cachetest.StartRedis(t)
	for _, tc := range []struct {
		name, before string // "" = absent
		wantLong     bool   // the key keeps its own, longer expiry
	}{
		{"absent", "", false},
		{"claim", "p:12345", false},
		{"delivered", "d", true},
	} {
		key := randomPrefix() + tc.name
		if tc.before != "" {
			if _, err := cachetest.Command(addr, "SET", key, tc.before, "PX", "36000000"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cachetest.Command(addr, "EVAL", cache.KeptScript, "1", key, "60000"); err != nil {
			t.Fatal(err)
		}
		v, _ := cachetest.Command(addr, "GET", key)
		out, _ := cachetest.Command(addr, "PTTL", key)
		left, _ := strconv.ParseInt(out, 10, 64)
		if v != "d" || (left > 60000) != tc.wantLong {
			t.Errorf("%s: after the kept mark %q with %d ms left; want \"d\", the longer expiry kept: %v", tc.name, v, left, tc.wantLong)
		}
	}
}

// TestRedisKeptMarksAreBounded: past the bound, marks Redis did not take
// are dropped and reported to OnLostCommits; so are those still kept when
// the store closes with Redis away (an instance that stops during an
// outage). The kept ones answer "delivered" meanwhile.
func TestRedisKeptMarksAreBounded(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	var mu sync.Mutex
	lost := 0
	var lostErr error
	s, err := cache.NewRedis(cache.RedisConfig{
		URL: "redis://" + srv.Addr, KeyPrefix: randomPrefix(), Timeout: 300 * time.Millisecond,
		OnLostCommits: func(n int, err error) { mu.Lock(); lost += n; lostErr = err; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetKeptMaxForTest(2)
	heard := func() (int, error) { mu.Lock(); defer mu.Unlock(); return lost, lostErr }
	ctx := context.Background()
	srv.Stop()
	for i := range 5 {
		if err := s.CommitBehind(ctx, cache.Reservation{ClientID: "id", MessageID: fmt.Sprint("m", i)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if !testkit.Poll(3*time.Second, func() bool { n, _ = heard(); return n >= 3 }) || n > 3 {
		t.Fatalf("OnLostCommits heard of %d lost marks; want 3 (5 past a bound of 2)", n)
	}
	delivered := 0
	for i := range 5 {
		if _, err := s.Reserve(ctx, "", "id", fmt.Sprint("m", i), time.Minute); errors.Is(err, cache.ErrAlreadyDelivered) {
			delivered++
		}
	}
	if delivered != 2 {
		t.Errorf("%d marks answer delivered while Redis is down; want the 2 kept", delivered)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := heard(); n != 5 || !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("after Close with Redis down, OnLostCommits heard of %d lost marks (%v); want 5, matching ErrUnavailable", n, err)
	}
}

// TestRedisCommitBehindQueueIsBounded: while Redis hangs, marks queue up to
// MaxCommitsBehind; the one that fills the queue writes it itself, so the
// sender waits (at most the timeout) and hears ErrUnavailable, rather than
// the queue growing without end.
func TestRedisCommitBehindQueueIsBounded(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	const timeout = 300 * time.Millisecond
	s := newRedis(t, cache.RedisConfig{
		URL: "redis://" + srv.Addr, KeyPrefix: randomPrefix(), Timeout: timeout,
		OnLostCommits: func(int, error) {},
	})
	ctx := context.Background()
	res, err := s.Reserve(ctx, "", "id", "m", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	defer srv.Thaw()
	for i := range cache.MaxCommitsBehind - 1 {
		start := time.Now()
		if err := s.CommitBehind(ctx, res, time.Hour); err != nil {
			t.Fatalf("mark %d of a queue that is not full: %v", i, err)
		}
		if took := time.Since(start); took > timeout/2 {
			t.Fatalf("mark %d of a queue that is not full waited %v", i, took)
		}
	}
	// The flusher took some of them meanwhile and hangs on its write; fill
	// the queue again until a mark has to write it.
	for i := 0; ; i++ {
		start := time.Now()
		err := s.CommitBehind(ctx, res, time.Hour)
		took := time.Since(start)
		if err == nil {
			if i > cache.MaxCommitsBehind {
				t.Fatalf("%d more marks queued on a hung server; want the queue bounded by %d", i, cache.MaxCommitsBehind)
			}
			continue
		}
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("the mark that filled the queue: %v; want ErrUnavailable", err)
		}
		if took < timeout/2 || took > timeout+time.Second {
			t.Errorf("the mark that filled the queue waited %v; want about the timeout, %v", took, timeout)
		}
		return
	}
}
