// Command fillredis registers many clients straight into Redis through the
// server's own store code (cache.NewRedis, Register), so the records have
// exactly the layout the server reads, without a million HTTP requests.
// Ids are PREFIX0 … PREFIX(N-1) with loadtest.Token tokens, as loadgen
// expects with -register=false.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"push-server/cache"
	"push-server/loadtest"
)

func main() {
	url := flag.String("redis", "", "redis:// URL of the server's Redis")
	n := flag.Int("n", 1000000, "clients to register")
	prefix := flag.String("client-prefix", "rss-", "client id prefix")
	typ := flag.String("type", cache.TypeNoop, "provider type")
	workers := flag.Int("workers", 256, "concurrent registrations (rueidis pipelines them)")
	flag.Parse()
	if err := run(*url, *n, *prefix, *typ, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "fillredis:", err)
		os.Exit(1)
	}
}

func run(url string, n int, prefix, typ string, workers int) error {
	store, err := cache.NewRedis(cache.RedisConfig{URL: url, Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := prefix + strconv.Itoa(i)
				c := cache.Client{ID: id, Type: typ, Token: loadtest.Token(id)}
				if err := store.Register(context.Background(), "", c); err != nil {
					failed.Store(fmt.Errorf("cannot register %q: %w", id, err))
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Printf("registered %d clients in %v (%.0f/s)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	return nil
}
