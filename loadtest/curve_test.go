package loadtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestSweepRates(t *testing.T) {
	// make loadtest-curve: 10 steps, 10 % to 100 % of a closed-loop maximum.
	got, err := SweepRates(27846, 10, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2785, 5569, 8354, 11138, 13923, 16708, 19492, 22277, 25061, 27846}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SweepRates(27846, 10, 0.1, 1) = %v; want %v", got, want)
	}
	if got, _ := SweepRates(1000, 3, 0.5, 1); !reflect.DeepEqual(got, []float64{500, 750, 1000}) {
		t.Fatalf("SweepRates(1000, 3, 0.5, 1) = %v; want [500 750 1000]", got)
	}
	if got, _ := SweepRates(1000, 1, 0.1, 0.8); !reflect.DeepEqual(got, []float64{800}) {
		t.Fatalf("one step = %v; want the last rate alone, [800]", got)
	}
	if got, _ := SweepRates(3, 2, 0.01, 0.1); !reflect.DeepEqual(got, []float64{1, 1}) {
		t.Fatalf("tiny rates = %v; want at least 1/s each", got)
	}
	for _, bad := range [][4]float64{{0, 10, 0.1, 1}, {1000, 0, 0.1, 1}, {1000, 10, 0, 1}, {1000, 10, 0.5, 0.4}, {-1, 10, 0.1, 1}} {
		if _, err := SweepRates(bad[0], int(bad[1]), bad[2], bad[3]); err == nil {
			t.Fatalf("SweepRates%v succeeded; want an error", bad)
		}
	}
}

func TestSweepRequests(t *testing.T) {
	// What must be signed: each step's rate × its window, rounded up.
	if got := SweepRequests([]float64{100, 250.5, 1000}, 2*time.Second); got != 200+501+2000 {
		t.Fatalf("SweepRequests = %d; want 2701", got)
	}
	if got := SweepRequests(nil, time.Second); got != 0 {
		t.Fatalf("SweepRequests(nil) = %d; want 0", got)
	}
}

func TestResultValue(t *testing.T) {
	out := "signed 10 requests\n" +
		"VERIFY verifies_per_s=24640 ns_per_verify=40584 relay_callers=64 relay_verifies_per_s=126121\n" +
		"verifies_per_s=1 on a line that is not a result\n" +
		"RESULT closed_rps=27846 p99_us=3868\n" +
		"VERIFY verifies_per_s=24700\n"
	for key, want := range map[string]string{"verifies_per_s": "24700", "closed_rps": "27846", "relay_verifies_per_s": "126121"} {
		if got, ok := ResultValue(out, key); !ok || got != want {
			t.Fatalf("ResultValue(%q) = %q, %v; want %q (the last RESULT/VERIFY line with it)", key, got, ok, want)
		}
	}
	if _, ok := ResultValue(out, "ns"); ok {
		t.Fatal(`ResultValue("ns") found a value; want only whole keys`)
	}
}

func TestCurveCSVRoundTrip(t *testing.T) {
	a := CurvePoint{
		Series: "noop", Fraction: 0.1, TargetRate: 2785, Throughput: 2781,
		P50: 210 * time.Microsecond, P90: 400 * time.Microsecond, P99: 1900 * time.Microsecond, P999: 9 * time.Millisecond,
		DueP99: 2100 * time.Microsecond, PacerLateP99: 300 * time.Microsecond,
		ServerCPU: 0.125, ClosedRate: 27846, VerifiesPerS: 24640, MarkRate: 12258, Answered: 13905,
	}
	b := a
	b.Series, b.Fraction, b.P99 = "apns", 1, 40*time.Millisecond
	var buf bytes.Buffer
	// Two runs append to one file: the header only once.
	if err := WriteCurveCSV(&buf, true, []CurvePoint{a}); err != nil {
		t.Fatal(err)
	}
	if err := WriteCurveCSV(&buf, false, []CurvePoint{b}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "series,"); n != 1 {
		t.Fatalf("header rows = %d; want 1:\n%s", n, buf.String())
	}
	got, err := ReadCurveCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []CurvePoint{a, b}) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, []CurvePoint{a, b})
	}
	for _, bad := range []string{"", "series,fraction\nnoop,0.1\n", strings.Join(curveHeader, ",") + "\nnoop" + strings.Repeat(",x", len(curveHeader)-1) + "\n"} {
		if _, err := ReadCurveCSV(strings.NewReader(bad)); err == nil {
			t.Fatalf("ReadCurveCSV(%q) succeeded; want an error", bad)
		}
	}
}

// TestOpenLoopKeepsItsRate checks the open loop's pacing against a server
// that notes when each request arrives: the k-th arrival is never before
// request k was due (the pacer never runs ahead of its schedule), every
// request is answered once, and the rate achieved is within a generous
// tolerance of the target (a shared machine may stall the pacer, so the
// lower bound is half the target: only a stall of half a second fails it).
func TestOpenLoopKeepsItsRate(t *testing.T) {
	if testing.Short() {
		t.Skip("paces 1,000 requests over a second")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	// 1,000/s: well below what the in-memory server answers under -race on
	// a loaded 2-core machine (~1,900/s seen), so the rate measured is the
	// pacer's, not the server's.
	const rate, window = 1000.0, time.Second
	total := int(rate * window.Seconds())
	batch, err := SignBatch(priv, []string{"a"}, total, 0, time.Now().Unix(), "rate")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var arrivals []time.Time
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		ctx.SetStatusCode(fasthttp.StatusAccepted)
	})
	hc := &fasthttp.HostClient{Addr: "x", MaxConns: 64, Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	g := NewGenerator(hc, "x", batch)

	start := time.Now()
	p := g.OpenLoop(64, rate, window)
	if p.Done != int64(total) || p.Statuses[202] != int64(total) || p.RanOut {
		t.Fatalf("done %d, statuses %v, ran out %v; want all %d answered 202", p.Done, p.Statuses, p.RanOut, total)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != total {
		t.Fatalf("server saw %d requests; want %d", len(arrivals), total)
	}
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	for k, at := range arrivals {
		if at.Sub(start) < Due(k, rate) {
			t.Fatalf("arrival %d came %v after the start, before it was due (%v): the pacer ran ahead", k, at.Sub(start), Due(k, rate))
		}
	}
	achieved := float64(p.Done) / p.Elapsed.Seconds()
	if achieved > rate*1.01 || achieved < rate/2 {
		t.Fatalf("achieved %.0f/s over %v; want about %.0f/s", achieved, p.Elapsed, rate)
	}
	if len(p.Lateness) != total {
		t.Fatalf("lateness samples = %d; want one per request", len(p.Lateness))
	}
	t.Logf("achieved %.0f/s of %.0f/s; pacer lateness p50/p99 %v", achieved, rate, Percentiles(p.Lateness, 0.5, 0.99))
}
