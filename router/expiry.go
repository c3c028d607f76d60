package router

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"push-server/cache"
)

// DefaultCredentialSweep is how often APNs certificate expiries are looked
// at (Config.CredentialSweep): often enough that a day's warning is never
// late by more than this, rarely enough that reading every tenant record is
// negligible.
const DefaultCredentialSweep = time.Hour

// Expiry windows: the tenant gauges count certificates expiring within
// 7 and 30 days, and the warning lines start 30 days out.
const (
	day        = 24 * time.Hour
	warnWithin = 30 * day
	warnEvery  = day // a credential is warned about at most once per this
)

// expiryWatch watches APNs certificates' expiry, the outage an operator
// can see coming: the operator's own (Config.APNSCertificateNotAfter) and,
// in multi-tenant mode, every tenant's, from the expiry kept in its record
// (cache.Tenant.APNSCertificateNotAfter). It exports
//
//	push_credential_expiry_timestamp_seconds{provider="apns"}  the operator's notAfter
//	push_tenant_credentials_expiring{within="7d"|"30d"}        tenants' certificates expiring that soon (expired included)
//	push_tenant_credentials_expired                            tenants' certificates already expired
//	push_credential_expiry_sweep_errors_total                  sweeps that could not read the store
//
// and logs a warning for each certificate within 30 days of its expiry,
// once per day per credential, its "within" attribute naming the nearest
// threshold passed: 30d, 7d, 1d, or expired. The gauges are aggregates, so their
// cardinality is fixed whatever the number of tenants.
//
// One goroutine sweeps every Config.CredentialSweep, and soon after an
// upload or removal on this instance (changed), but never twice within
// minGap, so that uploads cannot make it read the store back to back. A
// sweep reads every tenant record once (cache.Tenants.APNSCertificateExpiries):
// its work is bounded by the tenant count per period.
type expiryWatch struct {
	log      *slog.Logger
	tenants  cache.Tenants // nil in single-tenant mode
	operator time.Time     // zero when the operator has no APNs certificate
	every    time.Duration
	minGap   time.Duration

	set                *metrics.Set
	sweepErrors        *metrics.Counter
	in7, in30, expired atomic.Int64

	kick   chan struct{} // capacity 1: kicks coalesce
	ctx    context.Context
	cancel context.CancelFunc // ends a sweep in progress on close
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	// mu serializes sweeps (the goroutine's and tests'); warned is the last
	// warning per credential ("operator" or "tenant:<id>"), pruned to those
	// still within warnWithin, so it holds at most one entry per tenant.
	mu     sync.Mutex
	warned map[string]time.Time
}

// newExpiryWatch makes the watch (start runs it), or returns nil when
// there is nothing to watch (no operator certificate, single-tenant mode).
func newExpiryWatch(log *slog.Logger, tenants cache.Tenants, operator time.Time, every time.Duration) *expiryWatch {
	if tenants == nil && operator.IsZero() {
		return nil
	}
	w := &expiryWatch{
		log: log, tenants: tenants, operator: operator, every: every, minGap: min(every, 10*time.Second),
		set:  metrics.NewSet(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		warned: map[string]time.Time{},
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	if !operator.IsZero() {
		notAfter := float64(operator.Unix())
		w.set.NewGauge(`push_credential_expiry_timestamp_seconds{provider="apns"}`, func() float64 { return notAfter })
	}
	if tenants != nil {
		w.set.NewGauge(`push_tenant_credentials_expiring{within="7d"}`, func() float64 { return float64(w.in7.Load()) })
		w.set.NewGauge(`push_tenant_credentials_expiring{within="30d"}`, func() float64 { return float64(w.in30.Load()) })
		w.set.NewGauge(`push_tenant_credentials_expired`, func() float64 { return float64(w.expired.Load()) })
	}
	w.sweepErrors = w.set.NewCounter(`push_credential_expiry_sweep_errors_total`)
	return w
}

// start exports the metrics and starts sweeping.
func (w *expiryWatch) start() *expiryWatch {
	if w == nil {
		return nil
	}
	// A Set of this Server's own: a second Server in the process (tests)
	// exports its own values, and Shutdown takes them away.
	metrics.RegisterSet(w.set)
	go w.run()
	return w
}

func (w *expiryWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		w.sweep(w.ctx, time.Now())
		select {
		case <-w.stop:
			return
		case <-tick.C:
		case <-w.kick:
			// Let a burst of uploads settle into one sweep.
			select {
			case <-w.stop:
				return
			case <-time.After(w.minGap):
			}
		}
	}
}

// changed asks for a sweep soon: a certificate was uploaded or removed.
func (w *expiryWatch) changed() {
	if w == nil {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// close stops the goroutine start ran, cutting a sweep in progress short,
// and removes the metrics.
func (w *expiryWatch) close() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		w.cancel()
		close(w.stop)
		<-w.done
		metrics.UnregisterSet(w.set, true)
	})
}

// sweep recomputes the tenant gauges and logs the warnings due at now. When
// the store cannot be read, the gauges keep their last values and the error
// is counted: an outage must not look like "nothing expires".
func (w *expiryWatch) sweep(ctx context.Context, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := map[string]bool{}
	if !w.operator.IsZero() && w.operator.Sub(now) <= warnWithin {
		w.warn("operator", "", w.operator, now)
		keep["operator"] = true
	}
	if w.tenants != nil {
		var in7, in30, expired int64
		err := w.tenants.APNSCertificateExpiries(ctx, func(id string, notAfter int64) {
			at := time.Unix(notAfter, 0)
			left := at.Sub(now)
			if left <= 0 {
				expired++
			}
			if left <= 7*day {
				in7++
			}
			if left <= 30*day {
				in30++
				key := "tenant:" + id
				w.warn(key, id, at, now)
				keep[key] = true
			}
		})
		if err != nil {
			w.sweepErrors.Inc()
			w.log.Warn("cannot read tenants' APNs certificate expiries; the expiry gauges keep their last values", "error", err.Error())
			return
		}
		w.in7.Store(in7)
		w.in30.Store(in30)
		w.expired.Store(expired)
	}
	for k := range w.warned {
		if !keep[k] {
			delete(w.warned, k)
		}
	}
}

// warn logs that the credential key (tenant "" for the operator's) expires
// at, unless it was warned about less than a day before now.
func (w *expiryWatch) warn(key, tenant string, at, now time.Time) {
	if last, ok := w.warned[key]; ok && now.Sub(last) < warnEvery {
		return
	}
	w.warned[key] = now
	left := at.Sub(now)
	within := "30d"
	switch {
	case left <= 0:
		within = "expired"
	case left <= day:
		within = "1d"
	case left <= 7*day:
		within = "7d"
	}
	attrs := []any{"provider", "apns", "expires_at", at.UTC().Format(time.RFC3339), "within", within,
		"days_left", strconv.FormatFloat(left.Hours()/24, 'f', 1, 64)}
	if tenant == "" {
		attrs = append(attrs, "credential", "operator")
	} else {
		attrs = append(attrs, "credential", "tenant", "tenant", tenant)
	}
	if left <= 0 {
		w.log.Warn("APNs certificate has expired: pushes through it fail until a new one is installed", attrs...)
		return
	}
	w.log.Warn("APNs certificate expires soon: install a new one before it does", attrs...)
}
