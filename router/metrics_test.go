package router

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// scrape reads /metrics into series → value.
func scrape(t *testing.T, h *harness) map[string]float64 {
	t.Helper()
	r := h.do("GET", "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics = %d", r.status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

func TestMetricsMove(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.ServeMetrics = true }})
	before := scrape(t, h)
	h.register("m", "noop", "tok", false)
	body := `{"topic":"t","tag":1,"message":"metrics"}`
	h.send("m", body).expectOK(t, 202)
	h.send("m", body).expectOK(t, 200)
	h.do("POST", "/clients/m", body, nil).expectError(t, 401, "missing_signature", "X-Ed25519-Timestamp", "X-Ed25519-Signature")
	after := scrape(t, h)

	for series, want := range map[string]float64{
		`push_requests_total{route="register",status="200"}`:    1,
		`push_requests_total{route="send",status="202"}`:        1,
		`push_requests_total{route="send",status="200"}`:        1,
		`push_requests_total{route="send",status="401"}`:        1,
		`push_sends_total{provider="noop",outcome="delivered"}`: 1,
		`push_dedup_hits_total`:                                 1,
		`push_signature_failures_total`:                         1,
		`push_request_duration_seconds_count{route="send"}`:     3,
		`push_provider_duration_seconds_count{provider="noop"}`: 1,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v; want %v", series, got, want)
		}
	}
	if after[`push_build_info{version="0.1.0"}`] != 1 {
		t.Errorf("push_build_info is missing")
	}
	if _, ok := after["process_resident_memory_bytes"]; !ok {
		t.Errorf("process metrics are missing")
	}
}
