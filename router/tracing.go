package router

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"push-server/cache"
)

// Tracing: with Config.TracerProvider set, every send is a span ("send")
// with a child per step ("verify", "lookup", "claim", "push"). Off, the
// send route is built without the wrapper and every step hook is one nil
// check: no span, no context, no allocation (TestTracingOffAddsNothing).
//
// What a span may carry is fixed here and nowhere else: the route's
// pattern, the provider type, the HTTP status and the outcome's contract
// name. Never a token, a client id or a request path (which holds the
// client id): traces leave the process for a collector the operator may
// share more widely than the store (TestTracesCarryNoTokenOrClientID).

// tracerName is the instrumentation scope of the router's spans.
const tracerName = "push-server/router"

// Span names of the send sequence.
const (
	spanSend   = "send"
	spanVerify = "verify"
	spanLookup = "lookup"
	spanClaim  = "claim"
	spanPush   = "push"
)

// Span attribute keys. push.outcome is "delivered", "already_delivered" or
// the contract name of the error answered.
const (
	attrOutcome  = attribute.Key("push.outcome")
	attrProvider = attribute.Key("push.provider")
	attrField    = attribute.Key("push.field")
	attrDedup    = attribute.Key("push.dedup")
	attrRoute    = attribute.Key("http.route")
	attrStatus   = attribute.Key("http.response.status_code")
)

// traceKey is the RequestCtx user value under which a traced send keeps
// the context of its span, for the steps' children.
const traceKey = "push-server.trace"

// traced wraps the send handler in its span when tracing is on, and
// returns h itself when it is off: an untraced server runs exactly the
// handler it ran before tracing existed.
func (s *Server) traced(route string, h func(ctx *fasthttp.RequestCtx) error) func(ctx *fasthttp.RequestCtx) error {
	if s.tracer == nil {
		return h
	}
	return func(ctx *fasthttp.RequestCtx) error {
		sctx, span := s.tracer.Start(context.Background(), spanSend,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attrRoute.String(route)))
		ctx.SetUserValue(traceKey, sctx)
		var err error
		// A panic still ends the span (as internal_error): recoverAs,
		// further out, answers it.
		defer func() {
			endSend(ctx, span, err, recover())
		}()
		err = h(ctx)
		return err
	}
}

// endSend records a send's outcome on its span and ends it; v is a
// recovered panic, re-raised after.
func endSend(ctx *fasthttp.RequestCtx, span trace.Span, err error, v any) {
	ctx.SetUserValue(traceKey, nil)
	switch {
	case v != nil:
		span.SetAttributes(attrOutcome.String(nameOf(errInternal)))
		span.SetStatus(codes.Error, nameOf(errInternal))
		span.End()
		panic(v)
	case err != nil:
		name := traceName(err)
		attrs := []attribute.KeyValue{attrOutcome.String(name)}
		var re *requestError
		if errors.As(err, &re) && len(re.fields) > 0 {
			attrs = append(attrs, attrField.String(re.fields[0].Field))
		}
		span.SetAttributes(attrs...)
		span.SetStatus(codes.Error, name)
	default:
		status := ctx.Response.StatusCode()
		outcome := "delivered"
		if status == fasthttp.StatusOK {
			outcome = "already_delivered"
		}
		span.SetAttributes(attrOutcome.String(outcome), attrStatus.Int(status))
	}
	span.End()
}

// traceName is the contract name err is answered with. A request refused
// for its fields alone has no name in its envelope (only "fields"); its
// span says bad_request, the contract's name for a 400, with push.field.
func traceName(err error) string {
	var re *requestError
	if errors.As(err, &re) && re.cause == nil {
		return "bad_request"
	}
	return nameOf(err)
}

// step is one traced step of a send; its zero value, what stepOf returns
// when tracing is off, does nothing.
type step struct{ span trace.Span }

// stepOf starts the child span name of ctx's send span. Off (no tracer, or
// a request not wrapped by traced) it returns the zero step without
// touching ctx.
func (s *Server) stepOf(ctx *fasthttp.RequestCtx, name string) step {
	if s.tracer == nil {
		return step{}
	}
	parent, ok := ctx.UserValue(traceKey).(context.Context)
	if !ok {
		return step{}
	}
	kind := trace.SpanKindInternal
	if name == spanPush {
		kind = trace.SpanKindClient
	}
	_, span := s.tracer.Start(parent, name, trace.WithSpanKind(kind))
	return step{span: span}
}

// end ends the step; err, when set, marks it failed with its contract name.
func (st step) end(err error) {
	if st.span == nil {
		return
	}
	if err != nil {
		name := traceName(err)
		st.span.SetAttributes(attrOutcome.String(name))
		st.span.SetStatus(codes.Error, name)
	}
	st.span.End()
}

// endPush ends the push step with the provider's type and the hand-off's
// outcome, as the send metrics count it.
func (st step) endPush(provider string, err error) {
	if st.span == nil {
		return
	}
	st.span.SetAttributes(attrProvider.String(provider))
	if err == nil {
		st.span.SetAttributes(attrOutcome.String("delivered"))
	}
	st.end(err)
}

// endClaim ends the claim step. Two of Reserve's errors are no failure of
// the send: a message already delivered (answered 200) and a store whose
// primary is unreachable (deduplicated in this instance instead).
func (st step) endClaim(err error) {
	if st.span == nil {
		return
	}
	switch {
	case errors.Is(err, cache.ErrAlreadyDelivered):
		st.span.SetAttributes(attrOutcome.String("already_delivered"))
		err = nil
	case errors.Is(err, cache.ErrUnavailable):
		st.span.SetAttributes(attrDedup.String("local"))
		err = nil
	}
	st.end(err)
}
