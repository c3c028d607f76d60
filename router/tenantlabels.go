package router

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultTenantLabelWindow is how often the busiest tenants are chosen
// again when METRICS_TENANT_LABELS is on (Config.TenantLabelWindow).
const DefaultTenantLabelWindow = time.Minute

// maxTenantLabels bounds METRICS_TENANT_LABELS: each labelled tenant adds
// a series per provider and outcome it sees.
const maxTenantLabels = 1000

// tenantLabels decides the tenant label of push_sends_total when
// METRICS_TENANT_LABELS=N is on: the tenant's id for the N busiest
// tenants, "other" for the rest, so the series stay bounded whatever the
// number of tenants.
//
// "Busiest" is the count of sends over recent windows, estimated by a
// space-saving top-k counter (Metwally et al.) of 4N+16 entries: memory
// fixed whatever the traffic, and any tenant holding more than 1/(4N+16)
// of the sends is sure to be counted. At the end of each window (a send
// after it ends closes it, so no goroutine is needed) the N highest
// counts get labels and every count is halved, so a tenant's rank follows
// its traffic of the last few windows. Between closings, a tenant seen
// while fewer than N hold labels gets one at once, so a gateway with up to
// N tenants labels them all from their first send.
//
// A tenant that drops out keeps its series one more window (a send that
// chose its label just before is still counted), then they are removed
// from /metrics: at any time at most 2N tenants have series. Its later
// sends count under "other", so sums over tenants stay right.
//
// With METRICS_TENANT_LABELS=0 (the default) there is no tenantLabels:
// sends take the unlabelled counters and nothing here runs.
type tenantLabels struct {
	n      int
	window time.Duration
	// forget removes tenants' series (sendMetrics.forgetTenants), all of a
	// window's closing at once: one pass over the series, not one per
	// tenant, while the send that closed the window waits.
	forget func(tenants map[string]struct{})

	mu       sync.Mutex
	sketch   spaceSaving
	top      map[string]struct{} // labelled now
	retiring map[string]struct{} // dropped at the last closing: series removed at the next
	closesAt time.Time
}

func newTenantLabels(n int, window time.Duration, forget func(map[string]struct{})) *tenantLabels {
	if n <= 0 {
		return nil
	}
	return &tenantLabels{
		n: n, window: window, forget: forget,
		sketch:   newSpaceSaving(4*n + 16),
		top:      make(map[string]struct{}, n),
		retiring: map[string]struct{}{},
	}
}

// label counts one send of tenant at now and returns its label: tenant
// itself or "other".
func (t *tenantLabels) label(tenant string, now time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.After(t.closesAt) {
		t.close(now)
	}
	t.sketch.add(tenant)
	if _, ok := t.top[tenant]; ok {
		return tenant
	}
	if len(t.top) < t.n {
		tenant = strings.Clone(tenant) // kept: must not share a request's memory
		t.top[tenant] = struct{}{}
		delete(t.retiring, tenant)
		return tenant
	}
	return "other"
}

// close ends a window: labels go to the n highest counts, the tenants
// retired at the last closing lose their series, and counts decay.
func (t *tenantLabels) close(now time.Time) {
	t.closesAt = now.Add(t.window)
	next := make(map[string]struct{}, t.n)
	for _, name := range t.sketch.highest(t.n) {
		next[name] = struct{}{}
	}
	gone := t.retiring
	for name := range gone {
		if _, back := next[name]; back {
			delete(gone, name)
		}
	}
	if len(gone) > 0 {
		t.forget(gone)
	}
	t.retiring = map[string]struct{}{}
	for name := range t.top {
		if _, kept := next[name]; !kept {
			t.retiring[name] = struct{}{}
		}
	}
	t.top = next
	t.sketch.halve()
}

// spaceSaving is a space-saving top-k counter: at most cap entries in a
// min-heap by count, indexed by name. A name not counted takes the
// smallest entry's place and count plus one, so counts overestimate by at
// most that minimum, and heavy names are never lost.
type spaceSaving struct {
	cap     int
	entries []ssEntry
	index   map[string]int
}

type ssEntry struct {
	name  string
	count uint64
}

func newSpaceSaving(capacity int) spaceSaving {
	return spaceSaving{cap: capacity, entries: make([]ssEntry, 0, capacity), index: make(map[string]int, capacity)}
}

func (s *spaceSaving) add(name string) {
	if i, ok := s.index[name]; ok {
		s.entries[i].count++
		s.down(i)
		return
	}
	name = strings.Clone(name)
	if len(s.entries) < s.cap {
		s.entries = append(s.entries, ssEntry{name, 1})
		s.index[name] = len(s.entries) - 1
		s.up(len(s.entries) - 1)
		return
	}
	delete(s.index, s.entries[0].name)
	s.entries[0] = ssEntry{name, s.entries[0].count + 1}
	s.index[name] = 0
	s.down(0)
}

// highest returns up to k names with the highest non-zero counts.
func (s *spaceSaving) highest(k int) []string {
	sorted := slices.Clone(s.entries)
	slices.SortFunc(sorted, func(a, b ssEntry) int {
		switch {
		case a.count > b.count:
			return -1
		case a.count < b.count:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, e := range sorted {
		if len(out) == k || e.count == 0 {
			break
		}
		out = append(out, e.name)
	}
	return out
}

// halve decays every count; halving keeps the heap's order.
func (s *spaceSaving) halve() {
	for i := range s.entries {
		s.entries[i].count /= 2
	}
}

func (s *spaceSaving) less(i, j int) bool { return s.entries[i].count < s.entries[j].count }

func (s *spaceSaving) swap(i, j int) {
	s.entries[i], s.entries[j] = s.entries[j], s.entries[i]
	s.index[s.entries[i].name] = i
	s.index[s.entries[j].name] = j
}

func (s *spaceSaving) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *spaceSaving) down(i int) {
	for {
		l, small := 2*i+1, i
		if l < len(s.entries) && s.less(l, small) {
			small = l
		}
		if r := l + 1; r < len(s.entries) && s.less(r, small) {
			small = r
		}
		if small == i {
			return
		}
		s.swap(i, small)
		i = small
	}
}
