package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"time"

	"push-server/loadtest"
)

// sweepOptions are the flags of the throughput/latency curve (issue 18
// goal 7): after the closed loop, steps open loops at rates from from to to
// of the closed-loop maximum, each -open long, one CSV row each.
type sweepOptions struct {
	steps    int
	from, to float64
	pause    time.Duration
	csv      string
	series   string
}

func (s *sweepOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.steps, "sweep", 0, "run this many open loops, from -sweep-from to -sweep-to of the closed-loop maximum, instead of one (0: one open loop)")
	fs.Float64Var(&s.from, "sweep-from", 0.1, "first sweep rate, as a fraction of the closed-loop maximum")
	fs.Float64Var(&s.to, "sweep-to", 1, "last sweep rate, as a fraction of the closed-loop maximum")
	fs.DurationVar(&s.pause, "sweep-pause", time.Second, "idle time between sweep steps, so that one step's leftovers (pushes still in flight) do not load the next")
	fs.StringVar(&s.csv, "curve-csv", "", "append each sweep step as a CSV row to this file (header written when the file is new or empty)")
	fs.StringVar(&s.series, "series", "", "the sweep's series name in the CSV (default: -type)")
}

func (s *sweepOptions) check(o *options) error {
	if s.steps == 0 {
		return nil
	}
	if o.skipOpenLoop {
		return errors.New("-sweep needs an -open window per step")
	}
	if s.series == "" {
		s.series = o.typ
	}
	_, err := loadtest.SweepRates(1, s.steps, s.from, s.to)
	return err
}

// run sweeps the open-loop rates over the closed-loop maximum closedRate
// and writes a line per step to w, and a row per step to the CSV. verifies
// (stdlib verifies/s before the window; 0 if unknown) goes in every row, and
// with -rate-verifies so does the rate it gives, for the plot to mark.
//
// Each step signs its own requests (sign, tagged so that no body repeats an
// earlier step's) and sends them through gen's Generator. Signed all before
// the closed loop, the last steps' timestamps would pass the server's
// 300 s freshness window on a slow machine: a run of 2026-12-03 on a
// loaded machine got 401 for every request of its last step. The server
// idles while a step signs, so the signing is no part of any window.
func (s *sweepOptions) run(w io.Writer, o *options, sign func(n int, tag string) (*loadtest.Batch, error),
	gen func(*loadtest.Batch) *loadtest.Generator, closedRate, verifies float64) error {
	rates, err := loadtest.SweepRates(closedRate, s.steps, s.from, s.to)
	if err != nil {
		return err
	}
	server := -1
	for i, p := range o.watch {
		if p.name == "server" {
			server = i
		}
	}
	mark := math.Floor(o.rateVerifies * verifies)
	pts := make([]loadtest.CurvePoint, 0, len(rates))
	for k, rate := range rates {
		if k > 0 {
			// Let the server settle after the last step.
			time.Sleep(s.pause)
		}
		n := loadtest.SweepRequests([]float64{rate}, o.open)
		t0 := time.Now()
		batch, err := sign(n, "-s"+strconv.Itoa(k+1))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "sweep %d/%d: signed %d requests in %v\n", k+1, len(rates), n, time.Since(t0).Round(time.Millisecond))
		g := gen(batch)
		procs0 := snapshot(o.watch)
		ph := g.OpenLoop(o.openConns, rate, o.open)
		procs1 := snapshot(o.watch)
		pt := point(s.series, rate, closedRate, ph)
		pt.VerifiesPerS, pt.MarkRate = verifies, mark
		if server >= 0 {
			pt.ServerCPU = (procs1[server] - procs0[server]).Seconds() / ph.Elapsed.Seconds()
		}
		pts = append(pts, pt)
		fmt.Fprintf(w, "sweep %d/%d: %.2f of the closed-loop maximum, %.0f/s released for %v, %.0f/s answered\n",
			k+1, len(rates), pt.Fraction, rate, o.open, pt.Throughput)
		fmt.Fprintf(w, "  latency from release: p50 %v p90 %v p99 %v p999 %v\n", fmtDurations([]time.Duration{pt.P50, pt.P90, pt.P99, pt.P999})...)
		fmt.Fprintf(w, "  CPU, share of one core: %s; statuses %s%s\n", usage(o.watch, procs0, procs1, ph.Elapsed), ph.Statuses, exhausted(ph))
		// Collect the step's batch and samples here, outside the windows
		// (run turned the collector off for them); nothing refers to them
		// past this point.
		runtime.GC()
	}
	if s.csv == "" {
		return nil
	}
	return appendCurveCSV(s.csv, pts)
}

// point summarizes one open-loop step.
func point(series string, rate, closedRate float64, ph loadtest.Phase) loadtest.CurvePoint {
	p := loadtest.Percentiles(ph.Latencies, 0.5, 0.9, 0.99, 0.999)
	pd := loadtest.Percentiles(ph.FromDue, 0.99)
	pl := loadtest.Percentiles(ph.Lateness, 0.99)
	pt := loadtest.CurvePoint{
		Series: series, TargetRate: rate, ClosedRate: closedRate,
		P50: p[0], P90: p[1], P99: p[2], P999: p[3], DueP99: pd[0], PacerLateP99: pl[0],
		Answered: ph.Done, Statuses: ph.Statuses,
	}
	if closedRate > 0 {
		pt.Fraction = rate / closedRate
	}
	if ph.Elapsed > 0 {
		pt.Throughput = float64(ph.Done) / ph.Elapsed.Seconds()
	}
	return pt
}

// appendCurveCSV appends pts to the file at path, with the header row when
// the file is new or empty, so that the noop and APNs runs share one file.
func appendCurveCSV(path string, pts []loadtest.CurvePoint) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("-curve-csv: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("-curve-csv: %w", cerr)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("-curve-csv: %w", err)
	}
	if err := loadtest.WriteCurveCSV(f, st.Size() == 0, pts); err != nil {
		return fmt.Errorf("-curve-csv %s: %w", path, err)
	}
	return nil
}
