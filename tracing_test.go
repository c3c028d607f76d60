package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

func TestTracingIsOffUnlessConfigured(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, env := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
	} {
		for k, v := range env {
			t.Setenv(k, v)
		}
		tp, stop, err := startTracing(context.Background(), func(k string) string { return env[k] }, quiet)
		if err != nil || tp != nil {
			t.Errorf("env %v: tracer provider %v, error %v; want tracing off", env, tp, err)
		}
		if stop == nil || stop(context.Background()) != nil {
			t.Errorf("env %v: stop must be callable and return nil", env)
		}
		for k := range env {
			os.Unsetenv(k)
		}
	}
}

// TestTracingRefusesAnUnknownExporter: serve and `push-server check` stop
// with exit 2 on an exporter the SDK does not know.
func TestTracingRefusesAnUnknownExporter(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin-over-pigeons")
	_, _, err := startTracing(context.Background(), os.Getenv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("an unknown OTEL_TRACES_EXPORTER was accepted")
	}
	var stdout, stderr bytes.Buffer
	env := map[string]string{"RELAY_PUBLIC_KEY": testKey, "DATA_DIR": t.TempDir(), "OTEL_TRACES_EXPORTER": "zipkin-over-pigeons"}
	if code := run([]string{"check"}, envMap(env), &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "push-server: tracing: OTEL_TRACES_EXPORTER") {
		t.Fatalf("check: exit %d, stderr %q; want 2 naming OTEL_TRACES_EXPORTER", code, stderr.String())
	}
}

// TestTracingExportsToTheOTLPEndpoint: OTEL_EXPORTER_OTLP_ENDPOINT alone
// turns tracing on, and the spans reach that endpoint as OTLP over HTTP.
func TestTracingExportsToTheOTLPEndpoint(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			posts.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "push-server-test")
	tp, stop, err := startTracing(context.Background(), os.Getenv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || tp == nil {
		t.Fatalf("tracer provider %v, error %v; want tracing on", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "send")
	span.End()
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("the collector received no OTLP trace export")
	}
}
