package router

import (
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"push-server/dispatch"
)

// The router's metrics, in Prometheus text format on /metrics. Labels are
// bounded: routes are the fixed route names, statuses the HTTP codes the
// server answers, providers the five types, outcomes the contract names.
// Client ids and tokens never become labels.
var (
	signatureFailures = metrics.NewCounter(`push_signature_failures_total`)
	dedupHits         = metrics.NewCounter(`push_dedup_hits_total`)
	deadTokensRemoved = metrics.NewCounter(`push_dead_tokens_removed_total`)
	storeErrors       = metrics.NewCounter(`push_store_errors_total`)
	sendsShed         = metrics.NewCounter(`push_sends_shed_total`)
	rateLimited       = metrics.NewCounter(`push_rate_limited_total`)
	dedupDegraded     = metrics.NewCounter(`push_dedup_degraded_total`)
	connsRefusedTotal = metrics.NewCounter(`push_connections_refused_total{cap="max_conns"}`)
	connsRefusedPerIP = metrics.NewCounter(`push_connections_refused_total{cap="max_conns_per_ip"}`)
)

// credentialsRejected counts the pushes whose provider host refused our
// credentials (dispatch.ErrCredentialsRejected), per host, for the
// operator's providers and tenants' alike: the alert that matters when a
// key is revoked. Other misconfigurations show in push_sends_total's
// provider_misconfigured outcome.
var credentialsRejected = hostCounters{
	apns:        metrics.NewCounter(`push_provider_credentials_rejected_total{provider="apns"}`),
	apnsSandbox: metrics.NewCounter(`push_provider_credentials_rejected_total{provider="apns-sandbox"}`),
	fcm:         metrics.NewCounter(`push_provider_credentials_rejected_total{provider="fcm"}`),
	webpush:     metrics.NewCounter(`push_provider_credentials_rejected_total{provider="webpush"}`),
}

// hostCounters is one counter per provider host.
type hostCounters struct{ apns, apnsSandbox, fcm, webpush *metrics.Counter }

func (h *hostCounters) inc(typ string) {
	switch typ {
	case dispatch.TypeAPNS:
		h.apns.Inc()
	case dispatch.TypeAPNSSandbox:
		h.apnsSandbox.Inc()
	case dispatch.TypeFCM:
		h.fcm.Inc()
	case dispatch.TypeWebPush:
		h.webpush.Inc()
	}
}

// routeMetrics counts one route's requests by status and times them.
type routeMetrics struct {
	name     string
	duration *metrics.PrometheusHistogram

	mu       sync.RWMutex
	byStatus map[int]*metrics.Counter
}

func newRouteMetrics(name string) *routeMetrics {
	return &routeMetrics{
		name:     name,
		duration: metrics.GetOrCreatePrometheusHistogram(`push_request_duration_seconds{route="` + name + `"}`),
		byStatus: map[int]*metrics.Counter{},
	}
}

// observe records one answered request.
func (m *routeMetrics) observe(status int, start time.Time) {
	m.duration.UpdateDuration(start)
	getOrCreate(&m.mu, m.byStatus, status, func(status int) *metrics.Counter {
		return metrics.GetOrCreateCounter(`push_requests_total{route="` + m.name + `",status="` + strconv.Itoa(status) + `"}`)
	}).Inc()
}

// instrument wraps h so that every answer is counted and timed under name.
func instrument(name string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	m := newRouteMetrics(name)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		h(ctx)
		m.observe(ctx.Response.StatusCode(), start)
	}
}

// sendMetrics counts sends per provider by outcome and times the provider;
// with METRICS_TENANT_LABELS on, tenants' sends are counted per tenant
// label too (see tenantLabels).
type sendMetrics struct {
	mu sync.RWMutex
	// outcomes: (provider, outcome) → series.
	outcomes map[[2]string]*sendSeries
	// byTenant: (provider, outcome, tenant label) → series.
	byTenant map[[3]string]*sendSeries
}

// sendSeries is what one send updates: its counter, and its provider's
// latency histogram, which every key of that provider shares. Keeping both
// in one entry lets a send find them with one look-up under one read lock.
type sendSeries struct {
	count   *metrics.Counter
	latency *metrics.PrometheusHistogram
}

func newSendMetrics() *sendMetrics {
	return &sendMetrics{outcomes: map[[2]string]*sendSeries{}, byTenant: map[[3]string]*sendSeries{}}
}

var sends = newSendMetrics()

// sent records one provider hand-off that started at start: the send
// counters and latency, and the event log's line. It is the send path's
// one hook into metrics; with METRICS_TENANT_LABELS and EVENT_LOG off it
// allocates nothing.
func (s *Server) sent(tenant, provider string, err error, start time.Time, messageID string) {
	now := time.Now()
	took := now.Sub(start)
	outcome := outcomeOf(err)
	if s.labels != nil && tenant != "" {
		// The operator's own routes (tenant "") keep the unlabelled series:
		// tenant="" would be the same series to Prometheus.
		sends.observeTenant(provider, outcome, s.labels.label(tenant, now), took)
	} else {
		sends.observe(provider, outcome, took)
	}
	s.events.record(now, tenant, provider, outcome, took, messageID)
}

// observe records one provider hand-off: outcome is "delivered" or the
// contract name of the failure.
func (m *sendMetrics) observe(provider, outcome string, took time.Duration) {
	getOrCreate(&m.mu, m.outcomes, [2]string{provider, outcome}, newOutcomeSeries).update(took)
}

// observeTenant is observe with a tenant label ("other" or a tenant id,
// which the tenants API restricts to [A-Za-z0-9_-]).
func (m *sendMetrics) observeTenant(provider, outcome, tenant string, took time.Duration) {
	getOrCreate(&m.mu, m.byTenant, [3]string{provider, outcome, tenant}, newTenantSeries).update(took)
}

func (s *sendSeries) update(took time.Duration) {
	s.count.Inc()
	s.latency.Update(took.Seconds())
}

func newOutcomeSeries(key [2]string) *sendSeries {
	return &sendSeries{
		count:   metrics.GetOrCreateCounter(`push_sends_total{provider="` + key[0] + `",outcome="` + key[1] + `"}`),
		latency: providerLatency(key[0]),
	}
}

func newTenantSeries(key [3]string) *sendSeries {
	return &sendSeries{count: metrics.GetOrCreateCounter(tenantSeries(key)), latency: providerLatency(key[0])}
}

// providerLatency returns provider's latency histogram; the metrics set
// hands every caller the same one.
func providerLatency(provider string) *metrics.PrometheusHistogram {
	return metrics.GetOrCreatePrometheusHistogram(`push_provider_duration_seconds{provider="` + provider + `"}`)
}

// getOrCreate returns series[key], making it with create under mu's write
// lock the first time. mu guards series. A series is made once and then
// only read, so the request and send paths take one read lock and
// allocate nothing (TestSentDoesNotAllocate).
func getOrCreate[K comparable, V any](mu *sync.RWMutex, series map[K]*V, key K, create func(K) *V) *V {
	mu.RLock()
	v := series[key]
	mu.RUnlock()
	if v != nil {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	// Another caller may have made it between the two locks.
	if v = series[key]; v == nil {
		v = create(key)
		series[key] = v
	}
	return v
}

// forgetTenants removes tenant labels' series from /metrics: tenantLabels
// calls it for tenants no longer among the busiest, in one pass over the
// labelled series however many tenants go.
func (m *sendMetrics) forgetTenants(tenants map[string]struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key := range m.byTenant {
		if _, gone := tenants[key[2]]; gone {
			metrics.UnregisterMetric(tenantSeries(key))
			delete(m.byTenant, key)
		}
	}
}

func tenantSeries(key [3]string) string {
	return `push_sends_total{provider="` + key[0] + `",outcome="` + key[1] + `",tenant="` + key[2] + `"}`
}

// setBuildInfo publishes the version as a constant gauge, the Prometheus
// convention for build metadata.
func setBuildInfo(version string) {
	metrics.GetOrCreateGauge(`push_build_info{version="`+version+`"}`, func() float64 { return 1 })
}

// MetricsHandler serves every registered metric, plus Go and process
// metrics, in Prometheus text format.
func MetricsHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4")
	metrics.WritePrometheus(ctx, true)
}

// RetryCounter is what PublishRetries reads: a dispatch.Dispatcher (the
// operator's providers) or a dispatch.Pool (every tenant's).
type RetryCounter interface {
	Retries() uint64
	RetriesRefused() uint64
}

// PublishRetries exports the provider retries the counters made together,
// and those their retry budgets refused (a flapping provider hitting
// PROVIDER_MAX_RETRIES_PER_SECOND). Call it once per process, with every
// source: the gauges are registered by the first call.
func PublishRetries(counters ...RetryCounter) {
	sum := func(f func(RetryCounter) uint64) func() float64 {
		return func() float64 {
			var n uint64
			for _, c := range counters {
				n += f(c)
			}
			return float64(n)
		}
	}
	metrics.GetOrCreateGauge(`push_provider_retries_total`, sum(RetryCounter.Retries))
	metrics.GetOrCreateGauge(`push_provider_retries_refused_total`, sum(RetryCounter.RetriesRefused))
}

// MetricsServer serves GET /metrics alone, for a port of its own
// (TELEMETRY_PROMETHEUS_PORT), under the API's header, write and idle
// timeouts and a small connection bound: that port is private, but
// whatever can reach it must not be able to hold connections open forever.
func (s *Server) MetricsServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:      MetricsHandler,
		Name:         "push-server-metrics",
		ReadTimeout:  s.cfg.HeaderTimeout, // a GET: its headers are all of it
		WriteTimeout: s.cfg.WriteTimeout,
		IdleTimeout:  s.cfg.IdleTimeout,
		Concurrency:  metricsMaxConns,
		// Its errors are logged like the API's: no request bytes, at
		// most once a second.
		SecureErrorLogMessage: true,
		Logger:                newFasthttpLog(s.log),
	}
}

// metricsMaxConns bounds the metrics port's connections: a scraper or two
// keep one each.
const metricsMaxConns = 64
