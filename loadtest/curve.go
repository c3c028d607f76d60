package loadtest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// SweepRates are the open-loop rates of a throughput/latency curve: steps
// rates evenly spaced from lo to hi (fractions, e.g. 0.1 and 1) of peak,
// each rounded to whole requests per second and at least 1. One step gives
// hi alone. The curve starts low so that its first points show the latency
// of an idle server, and ends at the closed-loop maximum, where the queue
// the open loop builds shows.
func SweepRates(peak float64, steps int, lo, hi float64) ([]float64, error) {
	if steps < 1 || !(peak > 0) || !(lo > 0) || !(hi >= lo) || math.IsInf(peak, 0) {
		return nil, fmt.Errorf("loadtest: sweep of %d steps from %v to %v of %v: want steps ≥ 1, peak > 0, 0 < lo ≤ hi", steps, lo, hi, peak)
	}
	out := make([]float64, steps)
	for k := range out {
		f := hi
		if steps > 1 {
			f = lo + (hi-lo)*float64(k)/float64(steps-1)
		}
		out[k] = math.Max(1, math.Round(f*peak))
	}
	return out, nil
}

// SweepRequests is how many requests a sweep at rates, each step lasting d,
// sends at most: what must be signed before it starts.
func SweepRequests(rates []float64, d time.Duration) int {
	n := 0
	for _, r := range rates {
		n += int(math.Ceil(r * d.Seconds()))
	}
	return n
}

// ResultValue returns key's value from the last "RESULT …" or "VERIFY …"
// line of out that has it (the key=value lines cmd/loadgen and
// cmd/verifyrate print for scripts), as run.sh's result() reads them.
func ResultValue(out, key string) (string, bool) {
	var val string
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || (fields[0] != "RESULT" && fields[0] != "VERIFY") {
			continue
		}
		for _, f := range fields[1:] {
			if k, v, ok := strings.Cut(f, "="); ok && k == key {
				val, found = v, true
			}
		}
	}
	return val, found
}

// CurvePoint is one open-loop step of a throughput/latency curve.
type CurvePoint struct {
	Series     string  // what was measured, e.g. "noop" or "apns"
	Fraction   float64 // TargetRate as a fraction of ClosedRate
	TargetRate float64 // requests per second the pacer released
	// Throughput is answers per second, from the step's start to its last
	// answer: below TargetRate once the server falls behind.
	Throughput float64
	// Latencies from the pacer's release to the answer.
	P50, P90, P99, P999 time.Duration
	// DueP99 counts from the due time instead; PacerLateP99 is the
	// pacer's own lateness (see Generator.OpenLoop).
	DueP99, PacerLateP99 time.Duration
	ServerCPU            float64 // the server's share of one core in the step; 0 if unknown
	ClosedRate           float64 // the same run's closed-loop maximum
	VerifiesPerS         float64 // stdlib verifies/s measured right before the run
	// MarkRate is a rate the plot marks, e.g. a quarter of the run's bound
	// (issue 18 goal 3); 0 for none.
	MarkRate float64
	Answered int64        // answers of any status
	Statuses StatusCounts // answers by status
}

var curveHeader = []string{
	"series", "fraction", "target_rps", "throughput_rps",
	"p50_us", "p90_us", "p99_us", "p999_us", "due_p99_us", "pacer_late_p99_us",
	"server_cpu", "closed_rps", "verifies_per_s", "mark_rps", "answered", "statuses",
}

// WriteCurveCSV writes pts as CSV rows, preceded by the header row when
// header is true (a file's first writer), so that several runs can append
// their series to one file.
func WriteCurveCSV(w io.Writer, header bool, pts []CurvePoint) error {
	cw := csv.NewWriter(w)
	if header {
		if err := cw.Write(curveHeader); err != nil {
			return err
		}
	}
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	num := func(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }
	for _, p := range pts {
		if err := cw.Write([]string{
			p.Series, num(p.Fraction, 3), num(p.TargetRate, 0), num(p.Throughput, 0),
			us(p.P50), us(p.P90), us(p.P99), us(p.P999), us(p.DueP99), us(p.PacerLateP99),
			num(p.ServerCPU, 3), num(p.ClosedRate, 0), num(p.VerifiesPerS, 0), num(p.MarkRate, 0),
			strconv.FormatInt(p.Answered, 10), p.Statuses.String(),
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadCurveCSV reads what WriteCurveCSV wrote: a header row, then points.
// Columns are found by name, so a file with more columns still reads.
// Statuses are not read back (the String form names transport errors).
func ReadCurveCSV(r io.Reader) ([]CurvePoint, error) {
	cr := csv.NewReader(r)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("loadtest: curve CSV: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("loadtest: curve CSV is empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range curveHeader {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("loadtest: curve CSV has no column %q", name)
		}
	}
	pts := make([]CurvePoint, 0, len(rows)-1)
	for n, row := range rows[1:] {
		var p CurvePoint
		var bad error
		f := func(name string) float64 {
			v, err := strconv.ParseFloat(row[col[name]], 64)
			if err != nil && bad == nil {
				bad = fmt.Errorf("loadtest: curve CSV row %d, column %s: %w", n+2, name, err)
			}
			return v
		}
		us := func(name string) time.Duration { return time.Duration(f(name) * float64(time.Microsecond)) }
		p.Series = row[col["series"]]
		p.Fraction, p.TargetRate, p.Throughput = f("fraction"), f("target_rps"), f("throughput_rps")
		p.P50, p.P90, p.P99, p.P999 = us("p50_us"), us("p90_us"), us("p99_us"), us("p999_us")
		p.DueP99, p.PacerLateP99 = us("due_p99_us"), us("pacer_late_p99_us")
		p.ServerCPU, p.ClosedRate, p.VerifiesPerS, p.MarkRate = f("server_cpu"), f("closed_rps"), f("verifies_per_s"), f("mark_rps")
		p.Answered = int64(f("answered"))
		if bad != nil {
			return nil, bad
		}
		if p.Series == "" {
			return nil, fmt.Errorf("loadtest: curve CSV row %d has no series", n+2)
		}
		pts = append(pts, p)
	}
	return pts, nil
}
