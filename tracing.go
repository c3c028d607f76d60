package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// startTracing builds the tracer provider of the send spans from the
// standard OpenTelemetry environment, read by the SDK itself:
// OTEL_TRACES_EXPORTER (otlp, console or none) and OTEL_EXPORTER_OTLP_*
// through autoexport, OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* through the
// SDK, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES through resource.
//
// Tracing is off, and tp nil, unless OTEL_TRACES_EXPORTER or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set: the SDK's own default would be to export to localhost:4318 and
// log an error every few seconds on a host without a collector. It is off
// too with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true. stop
// flushes the spans still buffered; call it at exit.
//
// getenv decides on or off; the SDK reads the process environment (it has
// no other input), which is the same in production.
func startTracing(ctx context.Context, getenv func(string) string, log *slog.Logger) (tp *sdktrace.TracerProvider, stop func(context.Context) error, err error) {
	noStop := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, noStop, nil
	}
	if getenv("OTEL_TRACES_EXPORTER") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" &&
		getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, noStop, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_*: %w", err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, noStop, nil
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the name and version given here.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", "push-server"),
			attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// Export failures (a collector down) are logged through our logger, not
	// the SDK's default one on stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: cannot export spans", "error", err.Error())
	}))
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// checkTracing is what `push-server check` checks of tracing: that serve
// would accept the OTEL_* settings (an unknown exporter or protocol stops
// it with exit 2). Nothing is exported: the provider is shut down unused.
func checkTracing(getenv func(string) string, stderr io.Writer) int {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, stop, err := startTracing(context.Background(), getenv, quiet)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: tracing:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = stop(ctx)
	return 0
}
