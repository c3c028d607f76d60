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

// TestRedisLostCommitsAreReported: marks that Redis does not take (here it
// crashed) reach OnLostCommits, so the operator hears that some messages
// may be delivered twice.
func TestRedisLostCommitsAreReported(t *testing.T) {
	srv := cachetest.StartRedisServer(t)
	var mu sync.Mutex
	lost := 0
	var lostErr error
	s := newRedis(t, cache.RedisConfig{
		URL: "redis://" + srv.Addr, KeyPrefix: randomPrefix(), Timeout: 300 * time.Millisecond,
		OnLostCommits: func(n int, err error) {
			mu.Lock()
			lost += n
			lostErr = err
			mu.Unlock()
		},
	})
	ctx := context.Background()
	var held []cache.Reservation
	for i := range 3 {
		res, err := s.Reserve(ctx, "", "id", fmt.Sprint("m", i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, res)
	}
	srv.Stop()
	for _, res := range held {
		if err := s.CommitBehind(ctx, res, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n, err := lost, lostErr
		mu.Unlock()
		if n == len(held) {
			if !errors.Is(err, cache.ErrUnavailable) {
				t.Errorf("reported error %v; want one matching ErrUnavailable", err)
			}
			return
		}
		if n > len(held) || time.Now().After(deadline) {
			t.Fatalf("OnLostCommits heard of %d lost marks; want %d", n, len(held))
		}
		time.Sleep(10 * time.Millisecond)
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
