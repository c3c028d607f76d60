// Command loadgen drives a running push-server with signed sends and reports
// what it sustained.
//
// It registers -clients clients (or, with -register=false, sends to clients
// registered by someone else, e.g. cmd/fillredis), signs every request of the
// run before the first one goes out (each body unique, so none is answered
// from the dedup record), then runs three phases over -conns keep-alive
// connections:
//
//  1. warm-up, closed loop, not counted;
//  2. closed loop for -closed: every connection sends its next request as
//     soon as the last is answered; completions per second is the maximum
//     throughput;
//  3. open loop for -open at -rate per second (default: half the closed-loop
//     maximum; with -rate-verifies, a multiple of the stdlib verifies/s that
//     -before-window measured): requests leave on a fixed schedule whatever
//     the server does, and each latency is measured from when the request was
//     due, so queueing behind a slow server counts (no coordinated omission).
//     With -sweep N, N open loops instead, from -sweep-from to -sweep-to of
//     the closed-loop maximum: the throughput/latency curve (sweep.go).
//
// It prints a human summary and one "RESULT key=value …" line for scripts.
// Every HTTP status (and transport error) is counted per phase.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"push-server/loadtest"
)

type options struct {
	url          string
	key          ed25519.PrivateKey
	clients      int
	prefix       string
	register     bool
	typ          string
	sample       int
	conns        int
	openConns    int
	warmup       time.Duration
	closed       time.Duration
	open         time.Duration
	rate         float64
	maxRate      float64
	signWorkers  int
	timeout      time.Duration
	skipOpenLoop bool
	pinCPU       int
	beforeWindow string
	watch        []watched
	// rateVerifies, when positive, sets the open loop's rate to this many
	// times the verifies/s the -before-window command printed.
	rateVerifies float64
	sweep        sweepOptions
	forged       float64
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	keyHex := fs.String("key", os.Getenv("RELAY_PRIVATE_KEY"), "relay private key, hex seed (32 bytes) or key (64); default $RELAY_PRIVATE_KEY")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:3000", "server base URL (http only)")
	fs.IntVar(&o.clients, "clients", 1000, "clients to send to, ids PREFIX0 … PREFIX(N-1)")
	fs.StringVar(&o.prefix, "client-prefix", "", "client id prefix (default: load-<random>- for a fresh run)")
	fs.BoolVar(&o.register, "register", true, "register the clients first (POST /clients)")
	fs.StringVar(&o.typ, "type", "noop", "provider type the clients are registered with")
	fs.IntVar(&o.sample, "sample", 0, "send to this many clients picked at random among -clients (0 = all)")
	fs.IntVar(&o.conns, "conns", 64, "connections of the closed loop")
	fs.IntVar(&o.openConns, "open-conns", 256, "connections (and workers) of the open loop")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "closed-loop warm-up, not counted")
	fs.DurationVar(&o.closed, "closed", 5*time.Second, "closed-loop window")
	fs.DurationVar(&o.open, "open", 10*time.Second, "open-loop window (0 skips it)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop rate per second (0 = half the closed-loop maximum)")
	fs.Float64Var(&o.maxRate, "max-rate", 60000, "highest rate the pre-signed requests must cover, per second")
	fs.IntVar(&o.signWorkers, "sign-workers", 0, "goroutines signing (0 = GOMAXPROCS)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.IntVar(&o.pinCPU, "pin-cpu", -1, "after signing, move to this CPU with GOMAXPROCS=1 (-1 = stay)")
	fs.StringVar(&o.beforeWindow, "before-window", "", "shell command run after signing, right before the warm-up (e.g. the verify baseline)")
	watch := fs.String("watch", "", "processes whose CPU share and RSS to report: name=pid[,name=pid…]")
	fs.Float64Var(&o.rateVerifies, "rate-verifies", 0, "open-loop rate as a multiple of the stdlib verifies/s that -before-window printed (VERIFY verifies_per_s=…); with -sweep, only marked in the CSV")
	o.sweep.flags(fs)
	fs.Float64Var(&o.forged, "forged", 0, "share of the sends (0 to 1) signed with a random key instead of -key: forgeries the server must answer 401")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.watch, err = parseWatch(*watch); err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimPrefix(*keyHex, "0x"))
	switch {
	case err == nil && len(seed) == ed25519.SeedSize:
		o.key = ed25519.NewKeyFromSeed(seed)
	case err == nil && len(seed) == ed25519.PrivateKeySize:
		o.key = seed
	default:
		return nil, errors.New("-key: want the relay private key as 64 or 128 hex digits (push-server keygen)")
	}
	if u, err := url.Parse(o.url); err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port", o.url)
	}
	if o.clients <= 0 || o.conns <= 0 || o.openConns <= 0 || o.maxRate <= 0 || o.closed <= 0 {
		return nil, errors.New("-clients, -conns, -open-conns, -max-rate and -closed must be positive")
	}
	if !(o.forged >= 0 && o.forged <= 1) {
		return nil, errors.New("-forged: want a share from 0 to 1")
	}
	if o.prefix == "" {
		var r [4]byte
		_, _ = rand.Read(r[:])
		o.prefix = "load-" + hex.EncodeToString(r[:]) + "-"
	}
	o.skipOpenLoop = o.open <= 0
	if o.rateVerifies < 0 || (o.rateVerifies > 0 && o.beforeWindow == "") {
		return nil, errors.New("-rate-verifies needs a positive factor and a -before-window command that prints the verify rate")
	}
	if err := o.sweep.check(&o); err != nil {
		return nil, err
	}
	return &o, nil
}

func run(args []string, w io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	u, _ := url.Parse(o.url)
	hc := &fasthttp.HostClient{
		Addr:                          u.Host,
		MaxConns:                      max(o.conns, o.openConns),
		ReadTimeout:                   o.timeout,
		WriteTimeout:                  o.timeout,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	defer hc.CloseIdleConnections()

	ids := clientIDs(o)
	if o.register {
		start := time.Now()
		if err := registerAll(hc, u.Host, ids, o.typ, o.conns); err != nil {
			return err
		}
		fmt.Fprintf(w, "registered %d %s clients in %v\n", len(ids), o.typ, time.Since(start).Round(time.Millisecond))
	}

	// Enough requests for every phase at -max-rate (the open loop runs at
	// most at -rate, or half the maximum).
	openRate := o.rate
	if openRate <= 0 {
		openRate = o.maxRate / 2
	}
	n := int(math.Ceil(o.maxRate*(o.warmup+o.closed).Seconds() + openRate*o.open.Seconds()))
	if o.sweep.steps > 0 {
		// Each sweep step signs its own requests right before it (sweep.go).
		n = int(math.Ceil(o.maxRate * (o.warmup + o.closed).Seconds()))
	}
	var runID [4]byte
	_, _ = rand.Read(runID[:])
	start := time.Now()
	batch, err := loadtest.SignBatch(o.key, ids, n, o.signWorkers, time.Now().Unix(), hex.EncodeToString(runID[:]))
	if err != nil {
		return err
	}
	signTime := time.Since(start)
	fmt.Fprintf(w, "signed %d unique requests in %v on %d goroutines (%.0f/s), before the window\n",
		n, signTime.Round(time.Millisecond), workersOr(o.signWorkers), float64(n)/signTime.Seconds())
	if o.forged > 0 {
		_, wrong, _ := ed25519.GenerateKey(rand.Reader)
		fmt.Fprintf(w, "forged %d of them (share %g) with a random key\n", batch.Forge(wrong, o.forged, o.signWorkers), o.forged)
	}

	if o.pinCPU >= 0 {
		if err := pinToCPU(o.pinCPU); err != nil {
			return err
		}
	}
	var verifies float64 // stdlib verifies/s, when -before-window printed it
	if o.beforeWindow != "" {
		var out strings.Builder
		cmd := exec.Command("/bin/sh", "-c", o.beforeWindow)
		cmd.Stdout, cmd.Stderr = io.MultiWriter(w, &out), os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("-before-window: %w", err)
		}
		if v, ok := loadtest.ResultValue(out.String(), "verifies_per_s"); ok {
			verifies, _ = strconv.ParseFloat(v, 64)
		}
		if o.rateVerifies > 0 && !(verifies > 0) {
			return errors.New("-rate-verifies: the -before-window command printed no VERIFY verifies_per_s=…")
		}
	}

	// No collections during the windows: on its one core, a mark phase over
	// the pre-signed requests would stall the workers and show up as the
	// server's latency. What the windows allocate (latency samples, a few
	// MB) is bounded by the pre-signed count.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	g := loadtest.NewGenerator(hc, u.Host, batch)
	if o.warmup > 0 {
		g.ClosedLoop(o.conns, o.warmup)
	}
	cpu0, procs0 := cpuTime(), snapshot(o.watch)
	closed := g.ClosedLoop(o.conns, o.closed)
	cpuClosed, procs1 := cpuTime()-cpu0, snapshot(o.watch)
	closedRate := float64(closed.Done) / closed.Elapsed.Seconds()
	fmt.Fprintf(w, "closed loop: %d conns, %d requests in %v = %.0f/s; statuses %s%s\n",
		o.conns, closed.Done, closed.Elapsed.Round(time.Millisecond), closedRate, closed.Statuses, exhausted(closed))
	fmt.Fprintf(w, "  closed-loop latency p50 %v p90 %v p99 %v p999 %v\n", fmtPercentiles(closed.Latencies)...)
	fmt.Fprintf(w, "  CPU, share of one core: loadgen %.0f%%; %s\n",
		100*cpuClosed.Seconds()/closed.Elapsed.Seconds(), usage(o.watch, procs0, procs1, closed.Elapsed))

	result := []string{
		fmt.Sprintf("signed=%d", n), fmt.Sprintf("sign_s=%.2f", signTime.Seconds()),
		fmt.Sprintf("closed_rps=%.0f", closedRate), fmt.Sprintf("closed_statuses=%s", closed.Statuses),
		// Sends answered 200 or 202 per second: with -forged, the good ones.
		fmt.Sprintf("closed_ok_rps=%.0f", float64(closed.Statuses[200]+closed.Statuses[202])/closed.Elapsed.Seconds()),
	}
	// Each watched process's share of one core in the closed loop, so that
	// scripts can put rates per CPU-second of the server.
	for i, p := range o.watch {
		result = append(result, fmt.Sprintf("closed_cpu_%s=%.3f", p.name, (procs1[i]-procs0[i]).Seconds()/closed.Elapsed.Seconds()))
	}
	if o.sweep.steps > 0 {
		sign := func(n int, tag string) (*loadtest.Batch, error) {
			return loadtest.SignBatch(o.key, ids, n, o.signWorkers, time.Now().Unix(), hex.EncodeToString(runID[:])+tag)
		}
		gen := func(b *loadtest.Batch) *loadtest.Generator { return loadtest.NewGenerator(hc, u.Host, b) }
		if err := o.sweep.run(w, o, sign, gen, closedRate, verifies); err != nil {
			return err
		}
	} else if !o.skipOpenLoop {
		openRate = openRateOf(o, closedRate, verifies)
		if o.rateVerifies > 0 {
			fmt.Fprintf(w, "open-loop rate: %.4f × %.0f verifies/s = %.0f/s (%.3f of the closed-loop maximum)\n",
				o.rateVerifies, verifies, openRate, openRate/closedRate)
		}
		cpu1, procs2 := cpuTime(), snapshot(o.watch)
		open := g.OpenLoop(o.openConns, openRate, o.open)
		cpuOpen, procs3 := cpuTime()-cpu1, snapshot(o.watch)
		p := loadtest.Percentiles(open.Latencies, 0.5, 0.9, 0.99, 0.999)
		fmt.Fprintf(w, "open loop: %.0f/s for %v over %d conns: %d answered (%.0f/s); statuses %s%s\n",
			openRate, o.open, o.openConns, open.Done, float64(open.Done)/open.Elapsed.Seconds(), open.Statuses, exhausted(open))
		fmt.Fprintf(w, "  latency from release: p50 %v p90 %v p99 %v p999 %v\n", fmtDurations(p)...)
		pd := loadtest.Percentiles(open.FromDue, 0.5, 0.99)
		pl := loadtest.Percentiles(open.Lateness, 0.5, 0.99)
		fmt.Fprintf(w, "  from due time instead: p50 %v p99 %v (the pacer released requests late by p50 %v, p99 %v)\n",
			append(fmtDurations(pd), fmtDurations(pl)...)...)
		fmt.Fprintf(w, "  CPU, share of one core: loadgen %.0f%%; %s\n",
			100*cpuOpen.Seconds()/open.Elapsed.Seconds(), usage(o.watch, procs2, procs3, open.Elapsed))
		result = append(result,
			fmt.Sprintf("open_rate=%.0f", openRate), fmt.Sprintf("open_done=%d", open.Done),
			fmt.Sprintf("open_rps=%.0f", float64(open.Done)/open.Elapsed.Seconds()),
			fmt.Sprintf("open_statuses=%s", open.Statuses),
			fmt.Sprintf("p50_us=%d", p[0].Microseconds()), fmt.Sprintf("p90_us=%d", p[1].Microseconds()),
			fmt.Sprintf("p99_us=%d", p[2].Microseconds()), fmt.Sprintf("p999_us=%d", p[3].Microseconds()),
			fmt.Sprintf("due_p99_us=%d", pd[1].Microseconds()), fmt.Sprintf("pacer_late_p99_us=%d", pl[1].Microseconds()))
		if o.rateVerifies > 0 {
			result = append(result, fmt.Sprintf("open_rate_verifies=%.4f", o.rateVerifies))
		}
		// As in the closed loop: a send's server CPU at a fixed rate is the
		// figure that shows what a send costs when nothing is batched.
		for i, p := range o.watch {
			result = append(result, fmt.Sprintf("open_cpu_%s=%.3f", p.name, (procs3[i]-procs2[i]).Seconds()/open.Elapsed.Seconds()))
		}
	}
	for _, p := range o.watch {
		if cur, peak, err := rss(p.pid); err == nil {
			fmt.Fprintf(w, "%s RSS %.1f MB (peak %.1f MB)\n", p.name, float64(cur)/1024, float64(peak)/1024)
			result = append(result, fmt.Sprintf("%s_rss_kb=%d", p.name, cur), fmt.Sprintf("%s_hwm_kb=%d", p.name, peak))
		}
	}
	fmt.Fprintln(w, "RESULT", strings.Join(result, " "))
	return nil
}

// openRateOf is the open loop's rate: -rate-verifies × the verifies/s
// measured before the window (run.sh passes a quarter of the bound, issue
// 18 goal 3), else -rate, else half the closed-loop maximum.
func openRateOf(o *options, closedRate, verifies float64) float64 {
	switch {
	case o.rateVerifies > 0:
		return math.Floor(o.rateVerifies * verifies)
	case o.rate > 0:
		return o.rate
	default:
		return math.Floor(closedRate / 2)
	}
}

func workersOr(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// clientIDs are the ids sent to: all of PREFIX0 … PREFIX(N-1), or a random
// sample of them.
func clientIDs(o *options) []string {
	idx := make([]int, o.clients)
	for i := range idx {
		idx[i] = i
	}
	if o.sample > 0 && o.sample < o.clients {
		mrand.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		idx = idx[:o.sample]
	}
	ids := make([]string, len(idx))
	for k, i := range idx {
		ids[k] = o.prefix + strconv.Itoa(i)
	}
	return ids
}

func registerAll(hc *fasthttp.HostClient, host string, ids []string, typ string, workers int) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("http://" + host + "/clients")
				req.Header.SetContentType("application/json")
				req.SetBodyString(`{"client_id":"` + ids[i] + `","type":"` + typ + `","token":"` + loadtest.Token(ids[i]) + `"}`)
				err := hc.Do(req, resp)
				if err == nil && resp.StatusCode() != fasthttp.StatusOK {
					err = fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("cannot register client %q: %w", ids[i], err) })
					next.Store(int64(len(ids)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func exhausted(p loadtest.Phase) string {
	if p.RanOut {
		return " (ran out of pre-signed requests before the window ended: raise -max-rate)"
	}
	return ""
}

func fmtPercentiles(l []time.Duration) []any {
	return fmtDurations(loadtest.Percentiles(l, 0.5, 0.9, 0.99, 0.999))
}

func fmtDurations(ds []time.Duration) []any {
	out := make([]any, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Microsecond)
	}
	return out
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
