//go:build !race

package router

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/verify"
)

// sendHandlerAllocs pins what one relay send costs the heap, whole: the
// route, the request id, signature verification, parse, the client look-up
// (read before, so a client-side cache hit on Redis), the dedup claim, the
// noop push, the delivered mark and the answer, with the allocations of the
// store's own goroutines (rueidis' reader and writer, the mark flusher)
// counted in, since testing.AllocsPerRun counts the whole process.
//
// What is left, per send on Redis (12; 19 before the provider hand-off
// shared its deadline context and the notification moved into the pooled
// request):
//   - 3: fasthttp/router copies the {client_id} parameter out of the
//     reused path buffer into the context's user values;
//   - 5: the notification's strings and fields, which outlive the request
//     buffer (a provider may keep them past the handler): topic, blob, the
//     tag spelled out, the message id, and the one Data slice;
//   - 1: the dedup key and claim, one block (rueidis may hold a command
//     after Do returns, so it cannot come from a reused buffer);
//   - 3: rueidis' DoMulti results when the claim carries queued marks (a
//     pool its public API never gives them back to); one send at a time,
//     every claim carries the previous send's mark, so these show per send;
//     under load a write carries the marks of every send finished since
//     the last one (TestRedisCommitBehindAllocatesOnlyPerBatch).
//
// A change that adds one fails here: move it off the hot path, or raise the
// bound with the reason beside it.
const sendHandlerAllocs = 12

// TestSendHandlerAllocatesOnlyItsFixedFew serves relay sends through the
// server's own handler (the router, its wrappers and the send sequence) on
// the Redis store, each a new message to a registered client, and checks
// the allocations per send against sendHandlerAllocs, and that each send was
// delivered (202) and recorded (the same body again answers 200).
func TestSendHandlerAllocatesOnlyItsFixedFew(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := verify.NewRelay(pub, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	providers, err := dispatch.New(dispatch.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { providers.Close() })
	store := redisStore(t)
	t.Cleanup(func() { store.Close() })
	srv, err := New(Config{ValidateSignatures: true, SendTimeout: 5 * time.Second}, Deps{
		Store: store, Relay: relay, ClientAuth: &verify.ClientAuth{Audience: "http://x", Leeway: time.Minute}, Providers: providers,
	})
	if err != nil {
		t.Fatal(err)
	}
	const id = "z6MkHandlerAllocationTest"
	if err := store.Register(context.Background(), "", cache.Client{ID: id, Type: dispatch.TypeNoop, Token: "noop-token"}); err != nil {
		t.Fatal(err)
	}

	// Every send is signed up front: AllocsPerRun runs the function once
	// more than asked, to warm up.
	const runs = 300
	type signed struct{ body, stamp, sig []byte }
	reqs := make([]signed, runs+2)
	stamp := []byte(strconv.FormatInt(time.Now().Unix(), 10))
	for i := range reqs {
		body := []byte(`{"topic":"0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a","tag":1108,"message":"Y2lwaGVydGV4dA==","id":"17000000000` + strconv.Itoa(100000+i) + `"}`)
		reqs[i] = signed{body, stamp, []byte(verify.Sign(priv, stamp, body))}
	}

	handler := srv.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}, nil)
	serve := func(r signed) int {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/clients/" + id)
		ctx.Request.Header.SetContentTypeBytes([]byte("application/json"))
		ctx.Request.Header.SetBytesV(headerTimestamp, r.stamp)
		ctx.Request.Header.SetBytesV(headerSignature, r.sig)
		ctx.Request.SetBodyRaw(r.body)
		handler(&ctx)
		return ctx.Response.StatusCode()
	}
	// The first send fills the client-side cache and the server's lazily
	// built parts (metrics series, pools).
	if got := serve(reqs[runs+1]); got != fasthttp.StatusAccepted {
		t.Fatalf("first send: %d %s; want 202", got, ctx.Response.Body())
	}
	i := 0
	n := testing.AllocsPerRun(runs, func() {
		if got := serve(reqs[i]); got != fasthttp.StatusAccepted {
			t.Fatalf("send %d: %d %s; want 202", i, got, ctx.Response.Body())
		}
		i++
	})
	if n > sendHandlerAllocs {
		t.Errorf("a send allocates %.1f times through the whole handler; want at most %d (see sendHandlerAllocs)", n, sendHandlerAllocs)
	}
	t.Logf("a send allocates %.2f times through the whole handler (bound %d)", n, sendHandlerAllocs)
	// Each was delivered once and its mark recorded: the same request again
	// is a duplicate.
	for _, j := range []int{0, runs / 2, runs} {
		if got := serve(reqs[j]); got != fasthttp.StatusOK {
			t.Fatalf("send %d again: %d %s; want 200 (a duplicate)", j, got, ctx.Response.Body())
		}
	}
}
