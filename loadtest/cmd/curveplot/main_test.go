package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"push-server/loadtest"
)

// TestPlotsAKnownCurve draws testdata/curve.csv (three steps each of noop
// and apns, as loadgen -sweep writes them) and reads the SVG back as a
// reader of BENCHMARKS.md would look at it: the title and note, both axis
// labels, a legend entry per series and percentile, the marked rates and
// the goal lines, and a drawn line per curve and reference.
func TestPlotsAKnownCurve(t *testing.T) {
	out := filepath.Join(t.TempDir(), "curve.svg")
	err := run([]string{"-in", "testdata/curve.csv", "-out", out, "-note", "2 cores, test note", "-goals", "noop=2ms,apns=4ms"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	if !strings.HasPrefix(strings.TrimSpace(svg), "<?xml") || !strings.Contains(svg, "<svg") {
		t.Fatalf("not an SVG document:\n%.300s", svg)
	}
	texts := map[string]bool{}
	for _, m := range regexp.MustCompile(`<text[^>]*>([^<]*)</text>`).FindAllStringSubmatch(svg, -1) {
		texts[m[1]] = true
	}
	for _, want := range []string{
		"push-server: open-loop latency against throughput", "2 cores, test note",
		"throughput (answered sends/s); steps from 10 % to 100 % of the closed-loop maximum",
		"latency from release (ms)",
		"noop p99", "noop p50", "apns p99", "apns p50",
		"noop: ¼ of the bound, 12258/s", "apns: ¼ of the bound, 12229/s",
		"noop goal: p99 ≤ 2ms there", "apns goal: p99 ≤ 4ms there",
		"0.2", "1", "10", "100", // y ticks from 0.18 ms to 90 ms
		"10000", "20000", // x ticks as whole sends/s
	} {
		if !texts[want] {
			t.Errorf("SVG has no text %q", want)
		}
	}
	// 4 curves, 2 marked rates, 2 goals, each drawn once in the plot and
	// once as its legend thumbnail, plus the grid: at least 16 paths.
	if n := strings.Count(svg, "<path"); n < 16 {
		t.Errorf("SVG has %d paths; want at least 16 (8 lines and their legend thumbnails)", n)
	}
}

// TestMarkFarBeyondTheCurveIsNamedNotDrawn: a quarter of the bound far
// right of the measured curve (a bound taken on a busy machine) would squeeze
// the curves into a corner; the legend names it and the axis stays on the
// curve.
func TestMarkFarBeyondTheCurveIsNamedNotDrawn(t *testing.T) {
	pts := []loadtest.CurvePoint{
		{Series: "noop", TargetRate: 100, Throughput: 100, P50: time.Millisecond, P99: 2 * time.Millisecond, MarkRate: 5000},
		{Series: "noop", TargetRate: 1000, Throughput: 990, P50: time.Millisecond, P99: 9 * time.Millisecond, MarkRate: 5000},
	}
	p, legend, err := render(pts, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Max > 1500 {
		t.Fatalf("x axis reaches %v; want it to end near the curve's 990/s", p.X.Max)
	}
	wt, err := picture(p, legend, "svg")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := wt.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "noop: ¼ of the bound, 5000/s, off the right edge") {
		t.Fatal("the legend does not name the marked rate beyond the curve")
	}
}

func TestRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.csv")
	header := filepath.Join(dir, "header.csv")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := os.ReadFile("testdata/curve.csv")
	if err := os.WriteFile(header, []byte(strings.SplitN(string(h), "\n", 2)[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.svg")
	for _, args := range [][]string{
		{"-in", empty, "-out", out},
		{"-in", header, "-out", out}, // no points
		{"-in", "testdata/curve.csv"},
		{"-in", "testdata/curve.csv", "-out", out, "-goals", "noop=fast"},
		{"-in", "testdata/curve.csv", "-out", filepath.Join(dir, "out.bmp")},
	} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded; want an error", args)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left a picture behind")
	}
}

func TestLogTicksLabelOneTwoFive(t *testing.T) {
	var labels []string
	minor := 0
	for _, tk := range logTicks(0.15, 60) {
		if tk.Label == "" {
			minor++
			continue
		}
		labels = append(labels, tk.Label)
	}
	if want := []string{"0.2", "0.5", "1", "2", "5", "10", "20", "50"}; !reflect.DeepEqual(labels, want) {
		t.Fatalf("labels %v; want %v", labels, want)
	}
	if minor == 0 {
		t.Fatal("no minor ticks")
	}
}

func TestWrapBreaksTheNoteAtSeparators(t *testing.T) {
	note := "2 cores, AMD EPYC, go1.26.8; 2026-12-03 23:17 UTC; 90d2902-dirty; load average at the end 11.63 7.95 10.59"
	want := "2 cores, AMD EPYC, go1.26.8; 2026-12-03 23:17 UTC; 90d2902-dirty;\nload average at the end 11.63 7.95 10.59"
	if got := wrap(note, 80); got != want {
		t.Fatalf("wrap = %q; want %q", got, want)
	}
	if got := wrap("short; note", 80); got != "short; note" {
		t.Fatalf("wrap of a short note = %q", got)
	}
}
