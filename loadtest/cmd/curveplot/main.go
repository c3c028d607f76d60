// Command curveplot draws the throughput/latency curve that `make
// loadtest-curve` measures (issue 18 goal 7): the CSV that loadgen -sweep
// writes, one row per open-loop step, becomes a picture of answered sends/s
// against p50 and p99 latency, one colour per series (noop, apns).
//
// It lives in its own command so that the plotting library (gonum.org/v1/plot)
// is linked into this tool only, never into push-server.
//
//	curveplot -in docs/loadtest-curve.csv -out docs/loadtest-curve.svg -note "2 cores, …"
//
// The output format follows -out's extension (svg, png, pdf).
package main

import (
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"push-server/loadtest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "curveplot:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("curveplot", flag.ContinueOnError)
	in := fs.String("in", "", "curve CSV (loadgen -sweep -curve-csv)")
	out := fs.String("out", "", "picture to write; its extension picks the format (svg, png, pdf)")
	note := fs.String("note", "", "second title line: machine, date, commit")
	goals := fs.String("goals", "", "p99 goal per series, drawn as a dotted line: noop=2ms,apns=4ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("want -in FILE.csv and -out FILE.svg")
	}
	g, err := parseGoals(*goals)
	if err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	pts, err := loadtest.ReadCurveCSV(f)
	f.Close()
	if err != nil {
		return err
	}
	p, legend, err := render(pts, *note, g)
	if err != nil {
		return err
	}
	wt, err := picture(p, legend, strings.TrimPrefix(filepath.Ext(*out), "."))
	if err != nil {
		return err
	}
	return writeFile(*out, wt)
}

// The picture's size, and the strip on its right that holds the legend:
// inside the axes it would cover the low-rate points, where the curves start.
const (
	width       = 10 * vg.Inch
	height      = 5 * vg.Inch
	legendWidth = 2.6 * vg.Inch
)

// picture draws p and, to its right, legend, in format (svg, png, pdf…).
func picture(p *plot.Plot, legend plot.Legend, format string) (io.WriterTo, error) {
	c, err := draw.NewFormattedCanvas(width, height, format)
	if err != nil {
		return nil, err
	}
	dc := draw.New(c)
	// White under the legend strip too (the plot fills only its own part),
	// so the picture reads the same on a dark page.
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: width, Y: 0}, {X: width, Y: height}, {X: 0, Y: height}})
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	legend.Draw(draw.Crop(dc, width-legendWidth+vg.Points(8), 0, 0, -vg.Inch/2))
	return c, nil
}

// writeFile writes through a temporary file, so a failed run leaves the
// last good picture in place.
func writeFile(path string, wt io.WriterTo) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := wt.WriteTo(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// parseGoals reads "noop=2ms,apns=4ms".
func parseGoals(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		name, v, ok := strings.Cut(part, "=")
		d, err := time.ParseDuration(v)
		if !ok || name == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("-goals %q: want series=duration[,series=duration…], e.g. noop=2ms", part)
		}
		out[name] = d
	}
	return out, nil
}

// ms is a latency in milliseconds, the y unit; a zero (no answer) becomes a
// microsecond so that the log scale can place it.
func ms(d time.Duration) float64 {
	return math.Max(float64(d)/float64(time.Millisecond), 0.001)
}

// render draws pts: per series (in the order they first appear), p99 as a
// solid line and p50 dashed, against answered sends/s; the rate a series
// marks (a quarter of its run's bound) as a vertical line and its p99 goal,
// if any, as a dotted one.
func render(pts []loadtest.CurvePoint, note string, goals map[string]time.Duration) (*plot.Plot, plot.Legend, error) {
	legend := plot.NewLegend()
	if len(pts) == 0 {
		return nil, legend, errors.New("no points to draw")
	}
	var order []string
	bySeries := map[string][]loadtest.CurvePoint{}
	lo, hi := math.Inf(1), math.Inf(-1)
	xmax := 0.0
	for _, pt := range pts {
		if _, ok := bySeries[pt.Series]; !ok {
			order = append(order, pt.Series)
		}
		bySeries[pt.Series] = append(bySeries[pt.Series], pt)
		lo, hi = math.Min(lo, ms(pt.P50)), math.Max(hi, ms(pt.P99))
		xmax = math.Max(xmax, pt.Throughput)
	}
	// A marked rate up to a fifth beyond the curve widens the axis; one
	// further out (a bound taken while the server's core was shared) would
	// squeeze the curves into a corner, so it is named in the legend only.
	xedge := xmax * 1.2
	for _, pt := range pts {
		if pt.MarkRate <= xedge {
			xmax = math.Max(xmax, pt.MarkRate)
		}
	}
	for _, d := range goals {
		lo, hi = math.Min(lo, ms(d)), math.Max(hi, ms(d))
	}

	p := plot.New()
	p.Title.Text = "push-server: open-loop latency against throughput"
	if note != "" {
		p.Title.Text += "\n" + wrap(note, 80)
	}
	p.X.Label.Text = "throughput (answered sends/s); steps from 10 % to 100 % of the closed-loop maximum"
	p.Y.Label.Text = "latency from release (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.TickerFunc(logTicks)
	p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
	p.X.Min, p.X.Max = 0, xmax*1.05
	p.X.Tick.Marker = plot.TickerFunc(wholeTicks)
	p.Add(plotter.NewGrid())
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth = 0.4 * vg.Inch

	for i, name := range order {
		series := bySeries[name]
		sort.Slice(series, func(a, b int) bool { return series[a].TargetRate < series[b].TargetRate })
		c := plotutil.Color(i)
		for _, q := range []struct {
			label  string
			of     func(loadtest.CurvePoint) time.Duration
			dashes []vg.Length
		}{
			{"p99", func(pt loadtest.CurvePoint) time.Duration { return pt.P99 }, nil},
			{"p50", func(pt loadtest.CurvePoint) time.Duration { return pt.P50 }, []vg.Length{vg.Points(6), vg.Points(3)}},
		} {
			xys := make(plotter.XYs, len(series))
			for k, pt := range series {
				xys[k].X, xys[k].Y = pt.Throughput, ms(q.of(pt))
			}
			line, dots, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, legend, fmt.Errorf("series %s %s: %w", name, q.label, err)
			}
			line.Color, line.Width, line.Dashes = c, vg.Points(1.5), q.dashes
			dots.Color, dots.Shape = c, draw.CircleGlyph{}
			p.Add(line, dots)
			legend.Add(name+" "+q.label, line, dots)
		}
		if mark := series[0].MarkRate; mark > xedge {
			legend.Add(fmt.Sprintf("%s: ¼ of the bound, %.0f/s, off the right edge", name, mark))
		} else if mark > 0 {
			v, err := plotter.NewLine(plotter.XYs{{X: mark, Y: p.Y.Min}, {X: mark, Y: p.Y.Max}})
			if err != nil {
				return nil, legend, err
			}
			v.Color, v.Width, v.Dashes = fade(c), vg.Points(1.2), []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(v)
			legend.Add(fmt.Sprintf("%s: ¼ of the bound, %.0f/s", name, mark), v)
		}
		if goal, ok := goals[name]; ok {
			h, err := plotter.NewLine(plotter.XYs{{X: 0, Y: ms(goal)}, {X: p.X.Max, Y: ms(goal)}})
			if err != nil {
				return nil, legend, err
			}
			h.Color, h.Width, h.Dashes = fade(c), vg.Points(1.2), []vg.Length{vg.Points(1), vg.Points(3)}
			p.Add(h)
			legend.Add(fmt.Sprintf("%s goal: p99 ≤ %v there", name, goal), h)
		}
	}
	return p, legend, nil
}

// fade lightens c for the reference lines, so the measured curves stand out.
func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8)*2/3 + 0x55) }
	return color.RGBA{R: mix(r), G: mix(g), B: mix(b), A: 0xff}
}

// logTicks labels 1, 2 and 5 of every decade between lo and hi (ms), with
// unlabelled minor ticks in between: plot.LogTicks labels decades only,
// which leaves a sub-millisecond curve with one or two labels.
func logTicks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for exp := int(math.Floor(math.Log10(lo))); math.Pow10(exp) <= hi; exp++ {
		for i := 1; i < 10; i++ {
			v := float64(i) * math.Pow10(exp)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || i == 2 || i == 5 {
				t.Label = strconv.FormatFloat(v, 'f', max(0, -exp), 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// wholeTicks are plot.DefaultTicks labelled as whole numbers: the default
// labels of a range like 0..5,000 read "2500.00".
func wholeTicks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', 0, 64)
		}
	}
	return ticks
}

// wrap breaks s after "; " separators so that no line is much longer than
// width characters: the title is centred over the plot, and a longer line is
// cut at both edges.
func wrap(s string, width int) string {
	var b strings.Builder
	line := 0
	for i, part := range strings.Split(s, "; ") {
		if i > 0 {
			if line+2+len([]rune(part)) > width {
				b.WriteString(";\n")
				line = 0
			} else {
				b.WriteString("; ")
				line += 2
			}
		}
		b.WriteString(part)
		line += len([]rune(part))
	}
	return b.String()
}
