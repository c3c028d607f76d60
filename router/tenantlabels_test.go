package router

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"push-server/dispatch/dispatchtest"
)

// The busiest N tenants by sends over recent windows hold labels; the rest
// are "other". While fewer than N hold labels, a tenant gets one at once.
func TestTenantLabelsFollowTheBusiest(t *testing.T) {
	var forgotten []string
	l := newTenantLabels(2, time.Minute, func(names map[string]struct{}) { forgotten = append(forgotten, slices.Sorted(maps.Keys(names))...) })
	at := time.Unix(1_800_000_000, 0)
	if got := l.label("quiet", at); got != "quiet" {
		t.Fatalf("first tenant labelled %q; want its own label (room for 2)", got)
	}
	for range 100 {
		l.label("big", at)
	}
	if got := l.label("medium", at); got != "other" {
		t.Fatalf("third tenant labelled %q; want other (2 labels taken)", got)
	}
	for range 50 {
		l.label("medium", at)
	}
	// The window closes: big and medium are the busiest.
	at = at.Add(61 * time.Second)
	if got := l.label("medium", at); got != "medium" {
		t.Fatalf("after the window, medium labelled %q", got)
	}
	if got := l.label("quiet", at); got != "other" {
		t.Fatalf("after the window, quiet labelled %q; want other", got)
	}
	if len(forgotten) != 0 {
		t.Fatalf("series of %v removed at once; want them kept one window", forgotten)
	}
	// Another window (big and medium still busiest): quiet's series go.
	for range 20 {
		l.label("big", at)
		l.label("medium", at)
	}
	at = at.Add(61 * time.Second)
	l.label("big", at)
	if fmt.Sprint(forgotten) != "[quiet]" {
		t.Fatalf("forgotten %v; want [quiet]", forgotten)
	}
	// Traffic moves: a tenant far busier than the labelled ones takes a
	// label at the next window, as halving forgets the old counts.
	for range 2000 {
		l.label("newcomer", at)
	}
	at = at.Add(61 * time.Second)
	if got := l.label("newcomer", at); got != "newcomer" {
		t.Fatalf("a tenant with most of the traffic labelled %q", got)
	}
}

// Whatever the number of tenants and however the busiest move, at most 2N
// tenant labels (N labelled, N keeping their series one more window) plus
// "other" have series in /metrics.
func TestTenantLabelsStayBounded(t *testing.T) {
	const n = 3
	m := newSendMetrics()
	l := newTenantLabels(n, time.Minute, m.forgetTenants)
	t.Cleanup(func() {
		for key := range m.byTenant {
			metrics.UnregisterMetric(tenantSeries(key))
		}
		metrics.UnregisterMetric(`push_provider_duration_seconds{provider="bounded"}`)
	})
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Unix(1_800_000_000, 0)
	for window := range 30 {
		// Each window has its own busy tenants, and a long tail of 5000.
		for i := range 3000 {
			tenant := fmt.Sprintf("tail-%d", rng.IntN(5000))
			if i%2 == 0 {
				tenant = fmt.Sprintf("busy-%d-%d", window, rng.IntN(4))
			}
			outcome := "delivered"
			if i%7 == 0 {
				outcome = "provider_unavailable"
			}
			m.observeTenant("bounded", outcome, l.label(tenant, at), 0)
			at = at.Add(25 * time.Millisecond)
		}
		var b bytes.Buffer
		metrics.WritePrometheus(&b, false)
		tenants := map[string]bool{}
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(line, `push_sends_total{provider="bounded"`) {
				_, rest, _ := strings.Cut(line, `tenant="`)
				name, _, _ := strings.Cut(rest, `"`)
				tenants[name] = true
			}
		}
		if len(tenants) > 2*n+1 {
			t.Fatalf("window %d: %d tenant labels exported; want at most %d: %v", window, len(tenants), 2*n+1, tenants)
		}
		if window > 0 && !tenants["other"] {
			t.Fatalf("window %d: no other series: %v", window, tenants)
		}
	}
}

// Through the server: with METRICS_TENANT_LABELS=1 the first tenant's sends
// carry its id, the next tenant's "other", and the operator's own route
// keeps the unlabelled series.
func TestTenantLabelsOnSendCounters(t *testing.T) {
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	h := newTenantHarnessHosts(t, embeddedStore, apns, apns, fcm, nil, func(c *Config) {
		c.TenantLabels, c.TenantLabelWindow, c.ServeMetrics = 1, time.Hour, true
	})
	for _, id := range []string{"labelbig", "labelsmall"} {
		h.createTenant(id)
		h.registerIn(id, "c", "noop", "tok")
	}
	h.register("c", "noop", "tok", false)
	before := scrape(t, h.harness)
	for i, path := range []string{"/labelbig/clients/c", "/labelbig/clients/c", "/labelsmall/clients/c", "/clients/c"} {
		body := fmt.Sprintf(`{"topic":"t","tag":1,"message":"label-%d"}`, i)
		h.do("POST", path, body, h.signed(body, time.Now().Unix())).expectOK(t, 202)
	}
	after := scrape(t, h.harness)
	for series, want := range map[string]float64{
		`push_sends_total{provider="noop",outcome="delivered",tenant="labelbig"}`: 2,
		`push_sends_total{provider="noop",outcome="delivered",tenant="other"}`:    1,
		`push_sends_total{provider="noop",outcome="delivered"}`:                   1,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v; want %v", series, got, want)
		}
	}
	if _, ok := after[`push_sends_total{provider="noop",outcome="delivered",tenant="labelsmall"}`]; ok {
		t.Error("the tenant past the cap has a series of its own")
	}
}
