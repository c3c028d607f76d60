package router

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/dispatch"
	"push-server/verify"
)

// BenchmarkSendTracing is one send through the router's handler, in
// process (no client, a private redis-server), with tracing off and on: on is the
// SDK's batching processor (as main builds it) in front of an exporter
// that drops the spans, so the figure is what the send path pays, not the
// export. Signed bodies with unique message ids are made before the timer.
// The off/on difference in ns/op and allocs/op is tracing's cost per send
// (BENCHMARKS.md, "Tracing").
func BenchmarkSendTracing(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			relay, err := verify.NewRelay(pub, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			store, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + cachetest.StartRedis(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			providers, err := dispatch.New(dispatch.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer providers.Close()
			const id = "z6MkBenchTracing"
			if err := store.Register(context.Background(), "", cache.Client{ID: id, Type: cache.TypeNoop, Token: "t"}); err != nil {
				b.Fatal(err)
			}
			cfg := Config{ValidateSignatures: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				defer tp.Shutdown(context.Background())
				cfg.TracerProvider = tp
			}
			srv, err := New(cfg, Deps{Store: store, Relay: relay, ClientAuth: &verify.ClientAuth{Audience: "http://bench"}, Providers: providers})
			if err != nil {
				b.Fatal(err)
			}
			handler := srv.Handler()
			stamp := []byte(strconv.FormatInt(time.Now().Unix(), 10))
			bodies, sigs := make([][]byte, b.N), make([]string, b.N)
			for i := range bodies {
				bodies[i] = []byte(`{"id":"` + name + strconv.Itoa(i) + `","topic":"tp","tag":4000,"message":"m"}`)
				sigs[i] = verify.Sign(priv, stamp, bodies[i])
			}
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod(fasthttp.MethodPost)
				ctx.Request.SetRequestURI("/clients/" + id)
				ctx.Request.Header.Set("X-Ed25519-Timestamp", string(stamp))
				ctx.Request.Header.Set("X-Ed25519-Signature", sigs[i])
				ctx.Request.SetBodyRaw(bodies[i])
				handler(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

// BenchmarkTracingOverhead is tracing's own CPU and memory per send: the
// send span and its four steps around a handler that does nothing else,
// with the same batching processor and dropping exporter. Off it is the
// nil checks alone.
func BenchmarkTracingOverhead(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var s Server
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				defer tp.Shutdown(context.Background())
				s.tracer = tp.Tracer(tracerName)
			}
			h := s.traced("/clients/{client_id}", func(ctx *fasthttp.RequestCtx) error {
				for _, name := range []string{spanVerify, spanLookup, spanClaim} {
					st := s.stepOf(ctx, name)
					st.end(nil)
				}
				st := s.stepOf(ctx, spanPush)
				st.endPush("apns", nil)
				ctx.SetStatusCode(fasthttp.StatusAccepted)
				return nil
			})
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := h(&ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
