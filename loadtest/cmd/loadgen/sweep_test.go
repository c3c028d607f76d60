package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"push-server/loadtest"
)

// TestSweepWritesOneRowPerStep sweeps an in-memory server from 20 % to 100 %
// of a closed-loop maximum of 1,000/s in three steps, twice (two series
// into one file, as make loadtest-curve does): every step's requests are
// answered, and the CSV has one header and a row per step with its rate,
// its count and the marked rate (-rate-verifies × the verify rate).
func TestSweepWritesOneRowPerStep(t *testing.T) {
	if testing.Short() {
		t.Skip("sweeps for 5 s (1.1 s pauses, to stale a batch signed up front)")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	// The server answers 202 to a request signed at most a second ago and
	// to a body it has not seen, as push-server would (freshness, dedup).
	var mu sync.Mutex
	seen := map[string]bool{}
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		ts, _ := strconv.ParseInt(string(ctx.Request.Header.Peek("X-Ed25519-Timestamp")), 10, 64)
		mu.Lock()
		dup := seen[string(ctx.PostBody())]
		seen[string(ctx.PostBody())] = true
		mu.Unlock()
		switch {
		case time.Since(time.Unix(ts, 0)) > 2*time.Second:
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		case dup:
			ctx.SetStatusCode(fasthttp.StatusOK)
		default:
			ctx.SetStatusCode(fasthttp.StatusAccepted)
		}
	})
	hc := &fasthttp.HostClient{Addr: "x", MaxConns: 8, Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	signed := 0
	gen := func(b *loadtest.Batch) *loadtest.Generator { return loadtest.NewGenerator(hc, "x", b) }

	path := filepath.Join(t.TempDir(), "curve.csv")
	for _, series := range []string{"noop", "apns"} {
		// A run id per series, as each loadgen process draws its own.
		sign := func(n int, tag string) (*loadtest.Batch, error) {
			signed += n
			return loadtest.SignBatch(priv, []string{"a", "b"}, n, 0, time.Now().Unix(), series+tag)
		}
		o := &options{openConns: 8, open: 100 * time.Millisecond, rateVerifies: 0.25}
		o.sweep = sweepOptions{steps: 3, from: 0.2, to: 1, pause: 1100 * time.Millisecond, csv: path, series: series}
		if err := o.sweep.run(io.Discard, o, sign, gen, 1000, 2000); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "series,"); n != 1 {
		t.Fatalf("%d header rows; want 1:\n%s", n, b)
	}
	// Every answer 202: each step's requests were signed just before it
	// (a batch signed up front would be older than the server's 2 s after
	// the 1.1 s pauses), and no
	// body repeats another step's.
	for _, row := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		if !regexp.MustCompile(`,202:\d+$`).MatchString(row) {
			t.Fatalf("row %q: want every answer 202", row)
		}
	}
	pts, err := loadtest.ReadCurveCSV(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	var rates, fractions []float64
	var answered []int64
	for _, p := range pts {
		series = append(series, p.Series)
		rates, fractions, answered = append(rates, p.TargetRate), append(fractions, p.Fraction), append(answered, p.Answered)
		if p.MarkRate != 500 || p.VerifiesPerS != 2000 || p.ClosedRate != 1000 || p.Throughput <= 0 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Fatalf("row %+v: want mark 500/s (0.25 × 2000), verifies 2000, closed 1000, a throughput and p50 ≤ p99", p)
		}
	}
	if want := []string{"noop", "noop", "noop", "apns", "apns", "apns"}; !reflect.DeepEqual(series, want) {
		t.Fatalf("series %v; want %v", series, want)
	}
	if want := []float64{200, 600, 1000, 200, 600, 1000}; !reflect.DeepEqual(rates, want) {
		t.Fatalf("rates %v; want %v", rates, want)
	}
	if want := []float64{0.2, 0.6, 1, 0.2, 0.6, 1}; !reflect.DeepEqual(fractions, want) {
		t.Fatalf("fractions %v; want %v", fractions, want)
	}
	// 100 ms at each rate: 20, 60 and 100 requests, each answered once.
	if want := []int64{20, 60, 100, 20, 60, 100}; !reflect.DeepEqual(answered, want) {
		t.Fatalf("answered %v; want %v", answered, want)
	}
	if signed != 360 {
		t.Fatalf("signed %d requests; want each step's own, 360", signed)
	}
}

func TestOpenRateOf(t *testing.T) {
	// make loadtest: a quarter of a bound of 1.990 (run.sh passes 0.4975)
	// times the 24,640 verifies/s measured before the window.
	if got := openRateOf(&options{rateVerifies: 0.25 * 1.990, rate: 5000}, 27846, 24640); got != 12258 {
		t.Fatalf("openRateOf(-rate-verifies 0.4975, 24640 verifies/s) = %v; want 12258", got)
	}
	if got := openRateOf(&options{rate: 5000}, 27846, 24640); got != 5000 {
		t.Fatalf("openRateOf(-rate 5000) = %v; want 5000", got)
	}
	if got := openRateOf(&options{}, 27845, 24640); got != 13922 {
		t.Fatalf("openRateOf() = %v; want half the closed-loop maximum, 13922", got)
	}
}

func TestSweepAndRateFlags(t *testing.T) {
	key := strings.Repeat("11", 32)
	ok := func(args ...string) *options {
		t.Helper()
		o, err := parseFlags(append([]string{"-key", key}, args...))
		if err != nil {
			t.Fatalf("parseFlags(%q): %v", args, err)
		}
		return o
	}
	if o := ok("-sweep", "10", "-type", "apns"); o.sweep.series != "apns" || o.sweep.from != 0.1 || o.sweep.to != 1 {
		t.Fatalf("-sweep 10: %+v; want series apns (from -type), 0.1 to 1", o.sweep)
	}
	if o := ok("-rate-verifies", "0.5", "-before-window", "verifyrate"); o.rateVerifies != 0.5 {
		t.Fatalf("-rate-verifies 0.5: %v", o.rateVerifies)
	}
	for _, args := range [][]string{
		{"-rate-verifies", "0.5"}, // nothing measures the verify rate
		{"-rate-verifies", "-1", "-before-window", "verifyrate"},
		{"-sweep", "10", "-open", "0"},
		{"-sweep", "10", "-sweep-from", "0"},
		{"-sweep", "10", "-sweep-from", "0.8", "-sweep-to", "0.5"},
	} {
		if _, err := parseFlags(append([]string{"-key", key}, args...)); err == nil {
			t.Errorf("parseFlags(%q) succeeded; want an error", args)
		}
	}
}
