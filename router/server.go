// Package router is push-server's HTTP surface: the routes of API.md on
// fasthttp, the response envelope, the one table that maps errors to
// contract names, and the send sequence (verify → look up → reserve dedup →
// send → commit or release). It is the hub: it imports verify, cache and
// dispatch, which import none of each other.
package router

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	fasthttprouter "github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/internal/deadline"
	"push-server/verify"
)

// Config is what the router needs from the environment.
type Config struct {
	// Version is shown by GET /health.
	Version string
	// MaxBodySize limits request bodies, in bytes (MAX_BODY_SIZE).
	MaxBodySize int
	// ValidateSignatures turns the relay signature check on (VALIDATE_SIGNATURES).
	ValidateSignatures bool
	// RequireClientAuth makes a client JWT mandatory on register and
	// unregister (REQUIRE_CLIENT_AUTH).
	RequireClientAuth bool
	// DedupTTL is how long a delivered message id is remembered (DEDUP_TTL).
	DedupTTL time.Duration
	// SendTimeout bounds one send's provider hand-off, retries included
	// (PROVIDER_TIMEOUT). The dedup claim outlives it by a margin, so a
	// crashed instance's claim frees itself.
	SendTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout bound a connection's phases
	// so that slow clients cannot hold connections forever: ReadTimeout the
	// body once the headers are in, WriteTimeout the answer, IdleTimeout
	// the wait for a kept-alive connection's next request.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// HeaderTimeout bounds a request's headers, counted from the
	// connection's opening (or, on a kept-alive connection, from the
	// request's first byte), so a connection that never sends anything,
	// or trickles its headers a byte at a time (slowloris), is cut off
	// with 408 (HEADER_READ_TIMEOUT). 0 means DefaultHeaderTimeout; never more than
	// ReadTimeout.
	HeaderTimeout time.Duration
	// MaxConns bounds the connections served at once (MAX_CONNS): past it
	// a new connection is answered 503 overloaded and closed, so idle
	// connections cannot grow memory without bound. 0 means
	// DefaultMaxConns.
	MaxConns int
	// MaxConnsPerIP bounds one peer address's connections at once
	// (MAX_CONNS_PER_IP), so that one host cannot take all of MaxConns;
	// past it a new connection is answered 429 rate_limited and closed.
	// 0: no cap. It counts the TCP peer (IPv6 per RateLimits.IPv6Prefix),
	// so behind a proxy it would cap every caller together: main leaves it
	// off there (see docs/deploy.md).
	MaxConnsPerIP int
	// Logger receives the server's logs; nil = slog.Default().
	Logger *slog.Logger
	// MaxInFlightSends bounds the sends being handled at once
	// (MAX_INFLIGHT_SENDS). Past it a send is shed with 503 overloaded and
	// Retry-After before memory grows: the relay retries later, or another
	// instance takes it. 0 means DefaultMaxInFlightSends.
	MaxInFlightSends int
	// RateLimits bound register and unregister (see RateLimits).
	RateLimits RateLimits
	// PublicURL is this gateway's public base URL (PUBLIC_URL), for the
	// tenants API's "url".
	PublicURL string
	// ServeMetrics adds GET /metrics to the API's port; main turns it off
	// when TELEMETRY_PROMETHEUS_PORT gives metrics a port of their own.
	ServeMetrics bool
	// StaleTenantSweep is how often the provider clients of tenants
	// deleted (or created again) through another instance are looked for
	// and closed; 0 means DefaultStaleTenantSweep.
	StaleTenantSweep time.Duration
	// APNSCertificateNotAfter is when the operator's APNs certificate
	// expires (zero for token auth or no APNs): exported and warned about
	// (see expiryWatch).
	APNSCertificateNotAfter time.Time
	// CredentialSweep is how often certificate expiries are looked at; 0
	// means DefaultCredentialSweep.
	CredentialSweep time.Duration
	// TenantLabels gives push_sends_total a tenant label for the busiest
	// TenantLabels tenants, "other" for the rest (METRICS_TENANT_LABELS;
	// 0, the default, is off). TenantLabelWindow is how often the busiest
	// are chosen again; 0 means DefaultTenantLabelWindow.
	TenantLabels      int
	TenantLabelWindow time.Duration
	// EventLog, when set, receives one JSON line per send (EVENT_LOG; see
	// eventLog). EventLogBuffer bounds the lines waiting for it; 0 means
	// DefaultEventLogBuffer.
	EventLog       io.Writer
	EventLogBuffer int
	// WebPushAllowedOrigins are the push services beyond the browsers'
	// own that a webpush registration's endpoint may name
	// (WEBPUSH_ALLOWED_ORIGINS): the same list the senders hold each
	// request to, for the operator's providers and tenants' alike. nil:
	// the browsers' push services only.
	WebPushAllowedOrigins *dispatch.WebPushOrigins
	// TracerProvider, when set, traces every send: a span with a child per
	// step (tracing.go). nil turns tracing off, and then the send path
	// builds no span nor context at all. main sets it from the OTEL_*
	// environment.
	TracerProvider trace.TracerProvider
}

// Deps are the parts a Server sequences. Store, ClientAuth and Providers
// are required; Relay when signatures are validated; the tenant parts only
// in multi-tenant mode.
type Deps struct {
	Store      cache.Store
	Relay      *verify.Relay      // nil when signatures are not validated
	ClientAuth *verify.ClientAuth // checks Authorization on register/unregister
	Providers  *dispatch.Dispatcher

	// Multi-tenant mode is on when Tenants is set; then TenantAuth, Vault
	// and Pool are required.
	Tenants    cache.Tenants
	TenantAuth *verify.TenantAuth
	Vault      *dispatch.Vault
	Pool       *dispatch.Pool
	// Limiter counts register/unregister calls for Config.RateLimits; nil
	// turns rate limiting off.
	Limiter cache.Limiter
	// RootCAs, when set, is trusted for tenants' token_uri checks (tests).
	RootCAs *x509.CertPool
}

// Server serves the API over fasthttp.
type Server struct {
	cfg        Config
	deps       Deps
	store      cache.Store
	relay      *verify.Relay
	clientAuth *verify.ClientAuth
	providers  *dispatch.Dispatcher
	log        *slog.Logger
	http       *fasthttp.Server
	healthBody []byte
	inFlight   atomic.Int64  // sends being handled; see Config.MaxInFlightSends
	draining   atomic.Bool   // set by Drain: readiness fails, connections close
	localDedup *localDedup   // dedup while the store's primary is unreachable
	expiry     *expiryWatch  // nil when no certificate is watched
	labels     *tenantLabels // nil unless METRICS_TENANT_LABELS is on
	events     *eventLog     // nil unless EVENT_LOG is set
	// sendDeadlines bounds each provider hand-off by SendTimeout.
	sendDeadlines *deadline.Shared
	tracer        trace.Tracer // nil: tracing off (see tracing.go)
}

// New builds a Server.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.ValidateSignatures && deps.Relay == nil {
		return nil, errors.New("router: signatures are validated but no relay key was given")
	}
	if deps.Tenants != nil && (deps.TenantAuth == nil || deps.Vault == nil || deps.Pool == nil) {
		return nil, errors.New("router: multi-tenant mode needs TenantAuth, Vault and Pool")
	}
	if cfg.Version == "" {
		cfg.Version = "0.1.0"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:        cfg,
		deps:       deps,
		store:      deps.Store,
		relay:      deps.Relay,
		clientAuth: deps.ClientAuth,
		providers:  deps.Providers,
		log:        cfg.Logger,
		healthBody: []byte("OK, push-server v" + cfg.Version),
		localDedup: newLocalDedup(100000),
	}
	s.sendDeadlines = deadline.NewTick(cfg.SendTimeout, sendDeadlineTick)
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}

	r := fasthttprouter.New()
	// A bare 301/308 is not our envelope: answer the exact path or 404.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = false
	r.NotFound = func(ctx *fasthttp.RequestCtx) { s.writeError(ctx, errNotFound) }
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) { s.writeError(ctx, errMethodNotAllowed) }
	// Only a panic outside a route (in NotFound or MethodNotAllowed) gets
	// here: the routes recover their own (recoverAs).
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) { s.panicked(ctx, "unrouted", v) }

	// Every route is registered through on, so that a panic is logged with
	// the route's pattern (never the request's path: it holds client ids).
	on := func(method, path string, h fasthttp.RequestHandler) {
		r.Handle(method, path, s.recoverAs(method+" "+path, h))
	}
	on(fasthttp.MethodGet, "/health", s.health)
	on(fasthttp.MethodGet, "/health/ready", instrument("ready", s.handle(s.ready)))
	on(fasthttp.MethodPost, "/clients", instrument("register", s.handle(s.register)))
	on(fasthttp.MethodDelete, "/clients/{client_id}", instrument("unregister", s.handle(s.unregister)))
	on(fasthttp.MethodPost, "/clients/{client_id}", instrument("send", s.handle(s.shed(s.traced("/clients/{client_id}", s.send)))))
	on(fasthttp.MethodGet, "/webpush/vapid-public-key", instrument("webpush_key", s.handle(s.vapidPublicKey)))
	if cfg.ServeMetrics {
		on(fasthttp.MethodGet, "/metrics", MetricsHandler)
	}
	if deps.Tenants != nil {
		on(fasthttp.MethodPost, "/{tenant_id}/clients", instrument("register", s.handle(s.register)))
		on(fasthttp.MethodDelete, "/{tenant_id}/clients/{client_id}", instrument("unregister", s.handle(s.unregister)))
		on(fasthttp.MethodPost, "/{tenant_id}/clients/{client_id}", instrument("send", s.handle(s.shed(s.traced("/{tenant_id}/clients/{client_id}", s.send)))))
		on(fasthttp.MethodGet, "/{tenant_id}/webpush/vapid-public-key", instrument("webpush_key", s.handle(s.vapidPublicKey)))

		on(fasthttp.MethodPost, "/tenants", instrument("tenants", s.handle(s.createTenant)))
		on(fasthttp.MethodGet, "/tenants/{tenant_id}", instrument("tenants", s.handle(s.getTenant)))
		on(fasthttp.MethodDelete, "/tenants/{tenant_id}", instrument("tenants", s.handle(s.deleteTenant)))
		on(fasthttp.MethodPost, "/tenants/{tenant_id}/apns", instrument("tenants", s.handle(s.putAPNS)))
		on(fasthttp.MethodDelete, "/tenants/{tenant_id}/apns", instrument("tenants", s.handle(s.clearProvider(cache.TenantChange{ClearAPNS: true}))))
		on(fasthttp.MethodPost, "/tenants/{tenant_id}/fcm_v1", instrument("tenants", s.handle(s.putFCM)))
		on(fasthttp.MethodDelete, "/tenants/{tenant_id}/fcm_v1", instrument("tenants", s.handle(s.clearProvider(cache.TenantChange{ClearFCM: true}))))
		on(fasthttp.MethodPost, "/tenants/{tenant_id}/webpush", instrument("tenants", s.handle(s.putWebPush)))
		on(fasthttp.MethodDelete, "/tenants/{tenant_id}/webpush", instrument("tenants", s.handle(s.clearProvider(cache.TenantChange{ClearWebPush: true}))))
		on(fasthttp.MethodPost, "/tenants/{tenant_id}/fcm", instrument("tenants", s.handle(s.legacyFCM)))
		s.watchStaleTenants()
	}
	setBuildInfo(cfg.Version)
	s.expiry = newExpiryWatch(s.log, deps.Tenants, cfg.APNSCertificateNotAfter, cfg.CredentialSweep).start()
	s.labels = newTenantLabels(cfg.TenantLabels, cfg.TenantLabelWindow, sends.forgetTenants)
	s.events = newEventLog(cfg.EventLog, cfg.EventLogBuffer, s.log)

	s.http = &fasthttp.Server{
		Handler:            s.closeWhileDraining(r.Handler),
		ErrorHandler:       s.transportError,
		Name:               "push-server",
		MaxRequestBodySize: cfg.MaxBodySize,
		// fasthttp's ReadTimeout runs from the connection's opening (or a
		// request's first byte) to the end of the request; once the
		// headers are in, HeaderReceived grants the body ReadTimeout of
		// its own, so HeaderTimeout is the headers' bound alone.
		ReadTimeout: cfg.HeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: cfg.ReadTimeout}
		},
		WriteTimeout: cfg.WriteTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		// The connection caps are connLimitListener's, which answers in
		// the envelope; fasthttp's (plain text) stay out of reach: its
		// Concurrency only as a backstop above MaxConns, since a closed
		// connection's worker is released just after the listener counted
		// it free.
		Concurrency: max(2*cfg.MaxConns, fasthttp.DefaultConcurrency),
		// The header limit: a client JWT and the signature headers fit
		// with room to spare; anything bigger is refused with 431.
		ReadBufferSize:               8 << 10,
		DisablePreParseMultipartForm: true,
		// fasthttp's errors quote the header buffer of a request it
		// cannot parse, Authorization included; fasthttpLog drops what
		// this leaves quoted.
		SecureErrorLogMessage: true,
		Logger:                newFasthttpLog(s.log),
	}
	return s, nil
}

// Handler returns the request handler, for in-process use (tests, benchmarks).
func (s *Server) Handler() fasthttp.RequestHandler { return s.http.Handler }

// Serve accepts connections on ln until Shutdown. Connections past MaxConns
// or MaxConnsPerIP are refused in the envelope (see connLimitListener). A
// connection whose request is refused before it was read to its end is
// closed gently (see lingerListener), so its client reads the envelope
// rather than a reset.
func (s *Server) Serve(ln net.Listener) error {
	return s.http.Serve(lingerListener{newConnLimitListener(ln, &s.cfg, s.log)})
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight to finish. Call Drain first and give load balancers
// time to notice: connections still in the kernel's accept queue when the
// listener closes are reset unread.
//
// It then stops the Server's background work: the credential expiry watch,
// and the event log's writer once it has written the lines queued (until
// ctx ends at most).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.ShutdownWithContext(ctx)
	s.expiry.close()
	s.events.close(ctx)
	return err
}

// Drain starts a graceful exit while the server keeps serving: GET
// /health/ready answers 503 shutting_down, so load balancers stop opening
// connections to this instance, and every response carries Connection:
// close, so keep-alive clients reconnect (to another instance) instead of
// reusing a connection that Shutdown would close under them.
func (s *Server) Drain() { s.draining.Store(true) }

// closeWhileDraining wraps h so that once Drain was called every answer
// closes its connection.
func (s *Server) closeWhileDraining(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		if s.draining.Load() {
			ctx.SetConnectionClose()
		}
	}
}

// handle adapts an error-returning handler: every error reply goes through
// writeError.
func (s *Server) handle(h func(ctx *fasthttp.RequestCtx) error) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		setRequestID(ctx)
		if err := h(ctx); err != nil {
			s.writeError(ctx, err)
		}
	}
}

// recoverAs answers a panic in h with internal_error and logs it with
// route and the stack.
func (s *Server) recoverAs(route string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if v := recover(); v != nil {
				s.panicked(ctx, route, v)
			}
		}()
		h(ctx)
	}
}

// panicked logs a recovered panic and answers internal_error. The log
// names the route's pattern and holds the stack, never the request's path.
func (s *Server) panicked(ctx *fasthttp.RequestCtx, route string, v any) {
	s.log.Error("panic while handling a request", "request_id", requestID(ctx), "route", route,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	s.writeError(ctx, errInternal)
}

// shed admits h's request only while fewer than MaxInFlightSends are being
// handled, so that a burst beyond what providers absorb is refused at once
// (cheaply, with Retry-After) instead of queueing goroutines and memory.
func (s *Server) shed(h func(ctx *fasthttp.RequestCtx) error) func(ctx *fasthttp.RequestCtx) error {
	return func(ctx *fasthttp.RequestCtx) error {
		if s.inFlight.Add(1) > int64(s.cfg.MaxInFlightSends) {
			s.inFlight.Add(-1)
			sendsShed.Inc()
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
			s.writeError(ctx, errSendsOverloaded)
			return nil
		}
		defer s.inFlight.Add(-1)
		return h(ctx)
	}
}

// transportError answers requests fasthttp could not read (oversize body or
// headers, timeouts, garbage) in the envelope instead of plain text.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	// The request was not read to its end: close gently, so that the
	// client reads this answer rather than a reset (see lingerListener).
	if lc, ok := ctx.Conn().(*lingerConn); ok {
		lc.linger.Store(true)
	}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.writeError(ctx, refused(errBodyTooLarge, fmt.Sprintf("the request body exceeds %d bytes", s.cfg.MaxBodySize),
			fieldError{"body", fmt.Sprintf("at most %d bytes", s.cfg.MaxBodySize), inBody}))
	case errors.As(err, &small):
		s.writeError(ctx, errHeadersTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.writeError(ctx, errRequestTimeout)
	default:
		s.writeError(ctx, errBadHTTP)
	}
}

// health is the contract's cheap liveness answer: no store round trip.
func (s *Server) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain")
	ctx.Response.SetBodyRaw(s.healthBody)
}

// ready answers OK when the store answers, for load balancers that should
// stop routing to an instance that cannot reach its store or is draining.
func (s *Server) ready(ctx *fasthttp.RequestCtx) error {
	if s.draining.Load() {
		return errShuttingDown
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(c); err != nil {
		return err
	}
	writeOK(ctx, fasthttp.StatusOK)
	return nil
}

// clientIDFromPath reads {client_id}, percent-decoded, stripping a leading
// "did:key:".
func clientIDFromPath(ctx *fasthttp.RequestCtx) (string, error) {
	raw, rerr := pathParam(ctx, "client_id")
	if rerr != nil {
		return "", rerr
	}
	id := strings.TrimPrefix(raw, didKeyPrefix)
	if why := checkClientID(id); why != "" {
		return "", badFields(fieldError{"client_id", why, inPath})
	}
	return id, nil
}

const didKeyPrefix = "did:key:"

// pathParam returns the route parameter name percent-decoded exactly once
// (RFC 3986 §2.1). fasthttp/router matches on the raw request path, so its
// values are still encoded: a wallet that sends did%3Akey%3Az6Mk… means
// did:key:z6Mk…, and an encoded "/" (%2F) stays inside its segment. A "%"
// not followed by two hex digits is a 400 naming the parameter. A value
// without "%" is returned as it is, without allocating (the send path).
func pathParam(ctx *fasthttp.RequestCtx, name string) (string, *requestError) {
	raw, _ := ctx.UserValue(name).(string)
	if strings.IndexByte(raw, '%') < 0 {
		return raw, nil
	}
	// url.PathUnescape decodes %XX only (a "+" stays a "+", as in a path)
	// and refuses a "%" without two hex digits after it.
	id, err := url.PathUnescape(raw)
	if err != nil {
		return "", badFieldAt(name, "invalid percent-encoding: % must be followed by two hex digits (RFC 3986)", inPath)
	}
	return id, nil
}

// checkClientID says why id (already stripped of did:key:) is unacceptable,
// or "" when it is fine.
func checkClientID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > 255:
		return "must be at most 255 bytes (after a leading did:key: is stripped)"
	}
	return checkText(id)
}

// instanceID tells this process's request ids from another instance's.
var instanceID = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// setRequestID answers with X-Request-Id, "<instance>-<n>": the same id is
// on every log line about the request, so an operator can find them from a
// relay's report.
func setRequestID(ctx *fasthttp.RequestCtx) {
	var buf [32]byte
	id := strconv.AppendUint(append(append(buf[:0], instanceID...), '-'), ctx.ID(), 10)
	ctx.Response.Header.SetBytesV("X-Request-Id", id)
}

// requestID is the id setRequestID gave the request, for log lines.
func requestID(ctx *fasthttp.RequestCtx) string {
	return string(ctx.Response.Header.Peek("X-Request-Id"))
}
