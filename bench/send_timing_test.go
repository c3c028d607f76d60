package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
	"push-server/loadtest"
	"push-server/router"
	"push-server/verify"
)

// sink keeps the compiler from optimising benchmarked calls away.
var sink bool

// benchClients is how many clients the sends are spread over: enough that
// the look-ups are not all one cache entry, few enough to register quickly.
const benchClients = 1000

// parallelism is the number of client goroutines per GOMAXPROCS, each with
// one request in flight; the pipelining client packs them onto a few
// connections, so the server sees batches, as from a busy relay.
const parallelism = 32

// BenchmarkSend measures POST /clients/{id} end to end in one process: a
// fasthttp pipelining client sends signed, unique sends (so none is
// answered from the dedup record) over an in-memory listener to the router,
// which verifies, looks up, reserves, pushes and commits.
//
// The first two sub-benchmarks are the baselines, measured in the same run
// through the same harness:
//
//   - baseline/ed25519-verify: crypto/ed25519.Verify of one send's message,
//     from as many goroutines as the sends (b.RunParallel);
//   - baseline/fasthttp-noop: a bare fasthttp handler answering 202 to the
//     same requests: the client, the listener and HTTP parsing, nothing else.
//
// Every send sub-benchmark reports sends/verify (its throughput over the
// verify baseline's; the verification alone would cap it near 1 without a
// faster verifier) and sends/fasthttp-noop. Run the whole BenchmarkSend to
// get the ratios: a sub-benchmark run alone has no baseline to divide by.
// ns/op is wall time per send with all goroutines together, so it is
// throughput over the whole machine, client included.
func BenchmarkSend(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	var verifyNs, noopNs float64

	b.Run("baseline/ed25519-verify", func(b *testing.B) {
		batch := sign(b, priv, []string{"z6MkBaseline"}, 1)
		body := batch.AppendBody(nil, 0)
		msg := verify.AppendMessage(nil, batch.Timestamp, body)
		sig := ed25519.Sign(priv, msg)
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ok := true
			for pb.Next() {
				ok = ed25519.Verify(pub, msg, sig) && ok
			}
			sink = ok
		})
		verifyNs = nsPerOp(b)
	})
	b.Run("baseline/fasthttp-noop", func(b *testing.B) {
		ok := []byte(`{"status":"OK"}`)
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBody(ok)
		}}
		runSends(b, srv.Serve, sign(b, priv, clientIDs(), b.N), fasthttp.StatusAccepted)
		noopNs = nsPerOp(b)
	})

	for _, provider := range []string{"noop", "apns-mock"} {
		for _, store := range []string{"embedded", "redis"} {
			b.Run(provider+"/"+store, func(b *testing.B) {
				srv := newServer(b, pub, store, provider)
				runSends(b, srv.Serve, sign(b, priv, clientIDs(), b.N), fasthttp.StatusAccepted)
				ns := nsPerOp(b)
				if verifyNs > 0 {
					b.ReportMetric(verifyNs/ns, "sends/verify")
				}
				if noopNs > 0 {
					b.ReportMetric(noopNs/ns, "sends/fasthttp-noop")
				}
			})
		}
	}
}

// nsPerOp is the wall time per operation of the run that just finished.
func nsPerOp(b *testing.B) float64 {
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

func clientIDs() []string {
	ids := make([]string, benchClients)
	for i := range ids {
		ids[i] = "z6MkBench" + strconv.Itoa(i)
	}
	return ids
}

// runs numbers the batches so that every body of the process is unique,
// also across the calls the testing package makes with growing b.N on one
// store.
var runs atomic.Int64

// sign signs n sends before the timer starts: the relay's cost, not the
// server's.
func sign(b *testing.B, priv ed25519.PrivateKey, ids []string, n int) *loadtest.Batch {
	b.Helper()
	batch, err := loadtest.SignBatch(priv, ids, n, 0, time.Now().Unix(), "r"+strconv.FormatInt(runs.Add(1), 10))
	if err != nil {
		b.Fatal(err)
	}
	return batch
}

// runSends serves on an in-memory listener with serve, then sends the whole
// batch from b.RunParallel goroutines through one pipelining client and
// checks that every answer has status want.
func runSends(b *testing.B, serve func(net.Listener) error, batch *loadtest.Batch, want int) {
	b.Helper()
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- serve(ln) }()
	defer func() {
		ln.Close()
		<-served
	}()
	c := &fasthttp.PipelineClient{
		Addr:               "push-server.bench",
		Dial:               func(string) (net.Conn, error) { return ln.Dial() },
		MaxConns:           4,
		MaxPendingRequests: 4096,
	}
	var next, wrong atomic.Int64
	var lastWrong atomic.Value
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		var buf []byte
		for pb.Next() {
			i := int(next.Add(1) - 1)
			req.Reset()
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetHost("push-server.bench")
			buf = batch.AppendPath(buf[:0], i)
			req.Header.SetRequestURIBytes(buf)
			req.Header.SetContentType("application/json")
			req.Header.SetBytesV("X-Ed25519-Timestamp", batch.Timestamp)
			buf = batch.AppendSignature(buf[:0], i)
			req.Header.SetBytesV("X-Ed25519-Signature", buf)
			buf = batch.AppendBody(buf[:0], i)
			req.SetBodyRaw(buf)
			if err := c.Do(req, resp); err != nil {
				wrong.Add(1)
				lastWrong.Store(err.Error())
				continue
			}
			if resp.StatusCode() != want {
				wrong.Add(1)
				lastWrong.Store(fmt.Sprintf("status %d: %s", resp.StatusCode(), resp.Body()))
			}
		}
	})
	b.StopTimer()
	if n := wrong.Load(); n > 0 {
		b.Fatalf("%d of %d sends did not answer %d; last: %v", n, b.N, want, lastWrong.Load())
	}
}

// newServer builds the router as main does, on the given store ("embedded"
// or "redis", a private redis-server) and provider ("noop", or "apns-mock":
// APNs token auth over TLS to a mock that checks the provider tokens), with
// benchClients clients registered for it.
func newServer(b *testing.B, pub ed25519.PublicKey, store, provider string) *router.Server {
	b.Helper()
	var st cache.Store
	var err error
	switch store {
	case "embedded":
		st, err = cache.OpenEmbedded(b.TempDir())
	case "redis":
		st, err = cache.NewRedis(cache.RedisConfig{URL: "redis://" + cachetest.StartRedis(b)})
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })

	cfg, typ := dispatch.Config{}, cache.TypeNoop
	if provider == "apns-mock" {
		cfg, typ = apnsMock(b), cache.TypeAPNS
	}
	providers, err := dispatch.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { providers.Close() })

	ctx := context.Background()
	for _, id := range clientIDs() {
		if err := st.Register(ctx, "", cache.Client{ID: id, Type: typ, Token: loadtest.Token(id)}); err != nil {
			b.Fatal(err)
		}
	}
	relay, err := verify.NewRelay(pub, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := router.New(router.Config{ValidateSignatures: true, Logger: quiet}, router.Deps{Store: st, Relay: relay,
		ClientAuth: &verify.ClientAuth{Audience: "http://push-server.bench"}, Providers: providers})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// apnsMock starts a TLS mock APNs that requires provider tokens signed by a
// fresh key, and returns the dispatch settings that use it.
func apnsMock(b *testing.B) dispatch.Config {
	b.Helper()
	m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{TLS: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	key, p8 := testkit.NewP8(b)
	m.TrustKey("BENCHKEY01", "BENCHTEAM1", &key.PublicKey)
	return dispatch.Config{
		Credentials: dispatch.Credentials{
			APNSType:     dispatch.APNSTypeToken,
			APNSTopic:    "com.example.wallet",
			APNSPKCS8PEM: p8,
			APNSKeyID:    "BENCHKEY01",
			APNSTeamID:   "BENCHTEAM1",
		},
		APNSURL: m.URL(), APNSSandboxURL: m.URL(),
		RootCAs: m.RootCAs(),
	}
}
