package router

import (
	"context"
	"crypto/x509"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// tracedHarness is a harness whose sends are traced into an in-memory
// recorder, with APNs (token auth, the TLS mock) and noop providers.
func tracedHarness(t *testing.T) (*harness, *dispatchtest.APNs, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	key, p8 := testkit.NewP8(t)
	apns := dispatchtest.StartAPNs(t, true)
	apns.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(apns.CertPEM())
	h := newHarness(t, options{
		dispatch: dispatch.Config{
			Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID,
				APNSTeamID: apnsTeamID, APNSPKCS8PEM: p8},
			APNSURL: apns.URL(), RootCAs: roots,
			MaxAttempts: 1, RetryDelay: func(int, time.Duration) time.Duration { return 0 },
		},
		configure: func(c *Config) { c.TracerProvider = tp },
	})
	return h, apns, rec
}

// traceOf returns the spans of the one send trace that ended last, by
// name; it fails on a span whose parent is not that trace's send span.
func traceOf(t *testing.T, rec *tracetest.SpanRecorder) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	var root sdktrace.ReadOnlySpan
	ended := rec.Ended()
	for _, s := range ended {
		if s.Name() == spanSend {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no %q span among %d", spanSend, len(ended))
	}
	spans := map[string]sdktrace.ReadOnlySpan{spanSend: root}
	for _, s := range ended {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() || s == root {
			continue
		}
		if s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Fatalf("span %q is not a child of the send span", s.Name())
		}
		spans[s.Name()] = s
	}
	return spans
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// names returns the span names present, sorted as the send runs them.
func names(spans map[string]sdktrace.ReadOnlySpan) string {
	var got []string
	for _, n := range []string{spanSend, spanVerify, spanLookup, spanClaim, spanPush} {
		if spans[n] != nil {
			got = append(got, n)
		}
	}
	return strings.Join(got, ",")
}

func TestSendIsTraced(t *testing.T) {
	h, apns, rec := tracedHarness(t)
	const clientID, token = "did:key:z6MkTracedClient", "aaaa0000000000000000000000000000000000000000000000000000000000aa"
	const deadID, deadToken = "did:key:z6MkTracedDead", "dddd0000000000000000000000000000000000000000000000000000000000dd"
	h.register(clientID, "apns", token, false)
	h.register(deadID, "apns", deadToken, false)
	apns.Script(deadToken, dispatchtest.Answer{Reason: "Unregistered"})
	sendBody := `{"id":"traced-1","payload":{"topic":"tp","flags":1,"blob":"ZW5j"}}`

	t.Run("delivered", func(t *testing.T) {
		rec.Reset()
		h.send(clientID, sendBody).expectOK(t, 202)
		spans := traceOf(t, rec)
		if got := names(spans); got != "send,verify,lookup,claim,push" {
			t.Fatalf("spans %s; want send,verify,lookup,claim,push", got)
		}
		if got := attr(spans[spanSend], attrOutcome); got != "delivered" {
			t.Errorf("send outcome %q; want delivered", got)
		}
		if got := attr(spans[spanSend], attrStatus); got != "202" {
			t.Errorf("send status %q; want 202", got)
		}
		if got := attr(spans[spanSend], attrRoute); got != "/clients/{client_id}" {
			t.Errorf("send route %q; want the pattern", got)
		}
		push := spans[spanPush]
		if attr(push, attrProvider) != "apns" || attr(push, attrOutcome) != "delivered" {
			t.Errorf("push span attributes %v; want provider apns, outcome delivered", push.Attributes())
		}
		if push.StartTime().Before(spans[spanClaim].EndTime()) {
			t.Error("the push span starts before the claim ended")
		}
	})
	t.Run("already delivered", func(t *testing.T) {
		rec.Reset()
		h.send(clientID, sendBody).expectOK(t, 200)
		spans := traceOf(t, rec)
		if got := names(spans); got != "send,verify,lookup,claim" {
			t.Fatalf("spans %s; want send,verify,lookup,claim (nothing pushed)", got)
		}
		for _, n := range []string{spanSend, spanClaim} {
			if got := attr(spans[n], attrOutcome); got != "already_delivered" {
				t.Errorf("%s outcome %q; want already_delivered", n, got)
			}
		}
	})
	t.Run("token dead", func(t *testing.T) {
		rec.Reset()
		r := h.send(deadID, `{"topic":"tp","tag":4000,"message":"m"}`)
		if len(r.env.Errors) != 1 {
			t.Fatalf("got %d %s; want an error", r.status, r.body)
		}
		spans := traceOf(t, rec)
		name := r.env.Errors[0].Name
		for _, n := range []string{spanSend, spanPush} {
			if got := attr(spans[n], attrOutcome); got != name {
				t.Errorf("%s outcome %q; want the answer's %q", n, got, name)
			}
			if got := spans[n].Status().Description; got != name {
				t.Errorf("%s status %q; want %q", n, got, name)
			}
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		rec.Reset()
		r := h.send("did:key:z6MkNobody", `{"topic":"tp","tag":4000,"message":"m"}`)
		r.expectError(t, 404, "client_not_found")
		spans := traceOf(t, rec)
		if got := names(spans); got != "send,verify,lookup" {
			t.Fatalf("spans %s; want send,verify,lookup", got)
		}
		if got := attr(spans[spanLookup], attrOutcome); got != "client_not_found" {
			t.Errorf("lookup outcome %q; want client_not_found", got)
		}
	})
	t.Run("bad field", func(t *testing.T) {
		rec.Reset()
		r := h.send(clientID, `{"topic":"tp","tag":"x","message":"m"}`)
		if r.status != 400 || len(r.env.Fields) == 0 {
			t.Fatalf("got %d %s; want 400 with fields", r.status, r.body)
		}
		spans := traceOf(t, rec)
		if attr(spans[spanSend], attrOutcome) != "bad_request" || attr(spans[spanSend], attrField) != r.env.Fields[0].Field {
			t.Errorf("send span attributes %v; want bad_request and field %q", spans[spanSend].Attributes(), r.env.Fields[0].Field)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		rec.Reset()
		body := `{"topic":"tp","tag":4000,"message":"m"}`
		hdr := h.signed(body, time.Now().Unix())
		hdr["X-Ed25519-Signature"] = strings.Repeat("0", 128)
		r := h.do("POST", "/clients/"+clientID, body, hdr)
		spans := traceOf(t, rec)
		if got := names(spans); got != "send,verify" {
			t.Fatalf("spans %s; want send,verify", got)
		}
		if len(r.env.Errors) != 1 || attr(spans[spanVerify], attrOutcome) != r.env.Errors[0].Name {
			t.Errorf("verify span %v; want the answer's name (%s)", spans[spanVerify].Attributes(), r.body)
		}
	})

	// Nothing a span carries may name the device or the wallet: collectors
	// are shared more widely than the store.
	t.Run("no token or client id", func(t *testing.T) {
		rec.Reset()
		h.send(clientID, `{"topic":"tp","tag":4000,"message":"m2"}`).expectOK(t, 202)
		h.send(deadID, `{"topic":"tp","tag":4000,"message":"m3"}`)
		ended := rec.Ended()
		if len(ended) < 8 {
			t.Fatalf("%d spans; want two traced sends", len(ended))
		}
		secrets := []string{token, deadToken, clientID, deadID, "z6MkTraced"}
		for _, s := range ended {
			texts := []string{s.Name(), s.Status().Description}
			for _, kv := range s.Attributes() {
				texts = append(texts, string(kv.Key), kv.Value.Emit())
			}
			for _, kv := range s.Resource().Attributes() {
				texts = append(texts, kv.Value.Emit())
			}
			for _, e := range s.Events() {
				texts = append(texts, e.Name)
				for _, kv := range e.Attributes {
					texts = append(texts, kv.Value.Emit())
				}
			}
			for _, text := range texts {
				for _, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("span %q carries %q: %q", s.Name(), secret, text)
					}
				}
			}
		}
	})
}

// TestTracingOffAddsNothing: without a TracerProvider the send route runs
// the untraced handler itself and every step hook is an empty value, so the
// send path builds no span and no context.
func TestTracingOffAddsNothing(t *testing.T) {
	h := newHarness(t, options{})
	h.register("did:key:z6MkUntraced", "noop", "t", false)
	h.send("did:key:z6MkUntraced", `{"topic":"tp","tag":4000,"message":"m"}`).expectOK(t, 202)
	if h.srv.tracer != nil {
		t.Fatal("tracing is on without a TracerProvider")
	}
	send := h.srv.send
	if got := h.srv.traced("/clients/{client_id}", send); reflect.ValueOf(got).Pointer() != reflect.ValueOf(send).Pointer() {
		t.Error("with tracing off, traced wraps the send handler")
	}
	var ctx fasthttp.RequestCtx
	if st := h.srv.stepOf(&ctx, spanPush); st.span != nil {
		t.Error("with tracing off, a step has a span")
	}
	if ctx.UserValue(traceKey) != nil {
		t.Error("with tracing off, the request holds a trace context")
	}
}
