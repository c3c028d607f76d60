package loadtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"push-server/verify"
)

// TestOpenLoopSendsEachRequestOnceOnSchedule runs the open loop against an
// in-memory server that records what it got: every request of the schedule
// arrives once, signed headers and body intact, and the run lasts as long as
// the schedule says.
func TestOpenLoopSendsEachRequestOnceOnSchedule(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	batch, err := SignBatch(priv, []string{"a", "b"}, 1000, 2, time.Now().Unix(), "t")
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
	g := NewGenerator(hc, "x", batch)

	const rate, window = 2000.0, 250 * time.Millisecond
	p := g.OpenLoop(8, rate, window)
	if p.Done != 500 || p.Statuses[202] != 500 || len(p.Statuses) != 1 {
		t.Fatalf("open loop: done %d, statuses %v; want 500 answered 202", p.Done, p.Statuses)
	}
	if p.Elapsed < Due(499, rate) || p.Elapsed > 5*window {
		t.Fatalf("open loop took %v; want about %v", p.Elapsed, window)
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
	c := g.ClosedLoop(4, 50*time.Millisecond)
	if c.Done == 0 || c.Statuses[202] != c.Done || len(got) != 500+int(c.Done) {
		t.Fatalf("closed loop: done %d, statuses %v, server saw %d; want every request new and 202", c.Done, c.Statuses, len(got))
	}
}

func TestStatusCountsString(t *testing.T) {
	s := StatusCounts{202: 10, 200: 1, -1: 2}
	if got, want := s.String(), "timeout:2,200:1,202:10"; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
	if got := (StatusCounts{}).String(); got != "none" {
		t.Fatalf("empty String() = %q; want none", got)
	}
}

// TestForgeSignsItsShareWithTheOtherKey: Forge re-signs exactly its share of
// the requests, spread evenly, with the other key, and leaves the rest as
// they were: the server's relay check rejects the forged ones and accepts
// the others.
func TestForgeSignsItsShareWithTheOtherKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	relay, err := verify.NewRelay(pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n, share = 1000, 0.2
	batch, err := SignBatch(priv, []string{"a"}, n, 2, time.Now().Unix(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := batch.Forge(wrong, share, 3); got != n*share {
		t.Fatalf("Forge re-signed %d of %d; want %d", got, n, int(n*share))
	}
	forged := 0
	for i := range n {
		if Forged(i, share) {
			forged++
		}
		if i%10 == 9 && forged != (i+1)/5 {
			t.Fatalf("%d forged among the first %d; want an even spread (%d)", forged, i+1, (i+1)/5)
		}
		err := relay.Verify(batch.Timestamp, batch.AppendSignature(nil, i), batch.AppendBody(nil, i))
		if Forged(i, share) != errors.Is(err, verify.ErrBadSignature) || (!Forged(i, share) && err != nil) {
			t.Fatalf("request %d (forged %v): Verify = %v", i, Forged(i, share), err)
		}
	}
	if Forged(0, 0) || !Forged(0, 1) {
		t.Fatal("share 0 must forge nothing and share 1 everything")
	}
}
