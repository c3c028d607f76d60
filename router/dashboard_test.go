package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"push-server/dispatch/dispatchtest"
)

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVariables = regexp.MustCompile(`\$\w+`)
	promIdents    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)
	labelValues   = regexp.MustCompile(`^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
)

// promQLMetrics returns the metric names a PromQL expression selects: its
// identifiers once strings, label matchers, ranges, grouping clauses and
// Grafana variables are taken out, less functions and operators.
func promQLMetrics(expr string) []string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	s = promVariables.ReplaceAllString(s, " ")
	var names []string
	for _, id := range promIdents.FindAllString(s, -1) {
		if strings.HasSuffix(id, "(") {
			continue // a function or aggregation
		}
		switch id = strings.TrimSpace(id); id {
		case "and", "or", "unless", "bool", "offset":
			continue
		}
		names = append(names, id)
	}
	return names
}

// exportedMetrics is every metric name in a Prometheus text exposition.
func exportedMetrics(exposition []byte) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// dashboardQueries is every PromQL query of the Grafana dashboard: panel
// targets (nested rows included) and templating queries.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has a target without expr", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, q.Query)
	}
	return exprs
}

// alertQueries is every expr of a Prometheus rule file, parsed as YAML.
func alertQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, as for Prometheus
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s is not a rule file: %v", path, err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: rule %q in %s lacks alert, expr, severity or summary", path, r.Alert, g.Name)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: rule %s: for %q: %v", path, r.Alert, r.For, err)
				}
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s holds no rules", path)
	}
	return exprs
}

// liveMetrics runs a multi-tenant server with every option that adds
// series on (tenant labels, event log, an operator certificate, retries
// published), sends it some traffic and returns its /metrics names.
func liveMetrics(t *testing.T) map[string]bool {
	t.Helper()
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	h := newTenantHarnessHosts(t, embeddedStore, apns, apns, fcm, nil, func(c *Config) {
		c.ServeMetrics, c.TenantLabels, c.EventLog = true, 5, io.Discard
		c.APNSCertificateNotAfter = time.Now().Add(40 * day)
	})
	PublishRetries(h.providers, h.pool)
	h.createTenant("dash")
	h.registerIn("dash", "c", "noop", "tok")
	h.register("c", "noop", "tok", false)
	body := `{"topic":"t","tag":1,"message":"dashboard"}`
	for range 2 { // the second is a dedup hit
		h.do("POST", "/dash/clients/c", body, h.signed(body, time.Now().Unix()))
		h.send("c", body)
	}
	r := h.do("GET", "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics = %d", r.status)
	}
	return exportedMetrics(r.body)
}

// missingSeries returns the metric names exprs query that names lacks.
func missingSeries(exprs []string, names map[string]bool) []string {
	var missing []string
	for _, e := range exprs {
		for _, m := range promQLMetrics(e) {
			if !names[m] {
				missing = append(missing, fmt.Sprintf("%s (in %s)", m, e))
			}
		}
	}
	return missing
}

// Every series the Grafana dashboard and the alert rules query is one the
// server exports: a renamed metric, or a panel for one that never existed,
// fails here rather than as an empty panel or an alert that never fires.
func TestDashboardAndAlertsQueryExportedSeries(t *testing.T) {
	dash := dashboardQueries(t, "../deploy/grafana/push-server.json")
	alerts := alertQueries(t, "../docs/alerts.yml")
	names := liveMetrics(t)

	var queried []string
	for _, e := range append(slices.Clone(dash), alerts...) {
		queried = append(queried, promQLMetrics(e)...)
	}
	// The list: sends by outcome, provider latency, retries, dedup
	// hits, shed and rate-limited requests, credential expiry.
	for _, want := range []string{"push_sends_total", "push_provider_duration_seconds_bucket", "push_provider_retries_total",
		"push_dedup_hits_total", "push_sends_shed_total", "push_rate_limited_total", "push_credential_expiry_timestamp_seconds",
		"push_tenant_credentials_expiring"} {
		if !slices.Contains(queried, want) {
			t.Errorf("no panel or alert queries %s", want)
		}
	}
	if missing := missingSeries(dash, names); len(missing) > 0 {
		t.Errorf("the dashboard queries series /metrics does not export:\n%s", strings.Join(missing, "\n"))
	}
	if missing := missingSeries(alerts, names); len(missing) > 0 {
		t.Errorf("the alert rules query series /metrics does not export:\n%s", strings.Join(missing, "\n"))
	}
	// The check itself can fail.
	if missing := missingSeries([]string{`sum by (tenant) (rate(push_not_exported_total{job=~"$job"}[$__rate_interval])) / on (job) push_sends_total`}, names); len(missing) != 1 ||
		!strings.HasPrefix(missing[0], "push_not_exported_total ") {
		t.Errorf("a query of an unknown series was reported as %q", missing)
	}
}
