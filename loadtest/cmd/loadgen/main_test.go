package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"push-server/loadtest"
)

// TestOpenLoopSendsEachRequestOnceOnSchedule runs the open loop against an
// in-memory server that records what it got: every request of the schedule
// arrives once, signed headers and body intact, and the run lasts as long as
// the schedule says.
func TestOpenLoopSendsEachRequestOnceOnSchedule(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	batch, err := loadtest.SignBatch(priv, []string{"a", "b"}, 1000, 2, time.Now().Unix(), "t")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Peek("X-Ed25519-Signature")) != 128 || len(ctx.Request.Header.Peek("X-Ed25519-Timestamp")) == 0 {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		mu.Lock()
		got[string(ctx.Path())+" "+string(ctx.PostBody())]++
		mu.Unlock()
		ctx.SetStatusCode(fasthttp.StatusAccepted)
	})
	hc := &fasthttp.HostClient{Addr: "x", MaxConns: 8, Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	g := &generator{hc: hc, host: "x", batch: batch}

	const rate, window = 2000.0, 250 * time.Millisecond
	p := g.openLoop(8, rate, window)
	if p.done != 500 || p.statuses[202] != 500 || len(p.statuses) != 1 {
		t.Fatalf("open loop: done %d, statuses %v; want 500 answered 202", p.done, p.statuses)
	}
	if p.elapsed < Due(499) || p.elapsed > 5*window {
		t.Fatalf("open loop took %v; want about %v", p.elapsed, window)
	}
	if len(got) != 500 {
		t.Fatalf("server saw %d distinct requests; want 500", len(got))
	}
	for k, n := range got {
		if n != 1 || !strings.HasPrefix(k, "/clients/") {
			t.Fatalf("request %q arrived %d times; want once, on /clients/", k, n)
		}
	}
	// The closed loop continues with the next unsent requests.
	c := g.closedLoop(4, 50*time.Millisecond)
	if c.done == 0 || c.statuses[202] != c.done || len(got) != 500+int(c.done) {
		t.Fatalf("closed loop: done %d, statuses %v, server saw %d; want every request new and 202", c.done, c.statuses, len(got))
	}
}

// Due is the schedule at the test's rate.
func Due(i int) time.Duration { return loadtest.Due(i, 2000) }

func TestStatusCountsString(t *testing.T) {
	s := statusCounts{202: 10, 200: 1, -1: 2}
	if got, want := s.String(), "timeout:2,200:1,202:10"; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
	if got := (statusCounts{}).String(); got != "none" {
		t.Fatalf("empty String() = %q; want none", got)
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU so the count is not zero
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("procCPU(self) = %v, %v; want > 0", cpu, err)
	}
	cur, peak, err := rss(os.Getpid())
	if err != nil || cur <= 0 || peak < cur {
		t.Fatalf("rss(self) = %d, %d, %v; want 0 < rss ≤ peak", cur, peak, err)
	}
	if _, err := parseWatch("server=x"); err == nil {
		t.Fatal(`parseWatch("server=x") succeeded; want an error`)
	}
	if w, err := parseWatch("server=12,mock=34"); err != nil || len(w) != 2 || w[1] != (watched{"mock", 34}) {
		t.Fatalf("parseWatch = %v, %v", w, err)
	}
}
