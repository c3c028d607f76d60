package loadtest

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"push-server/verify"
)

// Generator sends the batch's requests in order, each exactly once, over
// the phases run on it: a phase continues with the requests the last one
// left unsent. Run one phase at a time.
type Generator struct {
	hc    *fasthttp.HostClient
	host  string
	batch *Batch
	next  atomic.Int64 // index of the next unsent request of batch
}

// NewGenerator returns a Generator that sends batch's requests through hc,
// with host as their Host header.
func NewGenerator(hc *fasthttp.HostClient, host string, batch *Batch) *Generator {
	return &Generator{hc: hc, host: host, batch: batch}
}

// Phase is what one phase (a closed or an open loop) measured.
type Phase struct {
	Done     int64         // requests answered or failed
	Elapsed  time.Duration // from the phase's start until its last answer
	Statuses StatusCounts  // answers by status, transport errors included
	// Latencies has one entry per answered request: from send to answer in
	// the closed loop, from the pacer's release to answer in the open loop.
	Latencies []time.Duration
	RanOut    bool // the batch was used up before the window ended
	// Open loop only: latencies counted from the due time instead (an
	// upper bound, the generator's lateness included), and that lateness.
	FromDue, Lateness []time.Duration
}

// StatusCounts counts answers by HTTP status; transport errors count under
// negative keys (see errorCodes).
type StatusCounts map[int]int64

var errorCodes = []struct {
	code int
	err  error
	name string
}{
	{-1, fasthttp.ErrTimeout, "timeout"},
	{-2, fasthttp.ErrNoFreeConns, "no_free_conns"},
	{-3, fasthttp.ErrConnectionClosed, "conn_closed"},
	{-9, nil, "other_error"},
}

func (s StatusCounts) add(o StatusCounts) {
	for k, v := range o {
		s[k] += v
	}
}

// String is "202:1000,other_error:2", by status.
func (s StatusCounts) String() string {
	keys := make([]int, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := strconv.Itoa(k)
		for _, e := range errorCodes {
			if e.code == k {
				name = e.name
			}
		}
		parts = append(parts, fmt.Sprintf("%s:%d", name, s[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func codeOf(err error) int {
	for _, e := range errorCodes {
		if e.err != nil && errors.Is(err, e.err) {
			return e.code
		}
	}
	return -9
}

// worker owns one request and response, reused for every send.
type worker struct {
	g         *Generator
	req       *fasthttp.Request
	resp      *fasthttp.Response
	buf       []byte
	statuses  StatusCounts
	latencies []time.Duration
	fromDue   []time.Duration // open loop only
}

func (g *Generator) newWorker() *worker {
	return &worker{g: g, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(), statuses: StatusCounts{}}
}

func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

// send sends request i of the batch and counts its outcome.
func (w *worker) send(i int) {
	b, req := w.g.batch, w.req
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetHost(w.g.host)
	w.buf = b.AppendPath(w.buf[:0], i)
	req.Header.SetRequestURIBytes(w.buf)
	req.Header.SetContentType("application/json")
	req.Header.SetBytesV("X-Ed25519-Timestamp", b.Timestamp)
	w.buf = b.AppendSignature(w.buf[:0], i)
	req.Header.SetBytesV("X-Ed25519-Signature", w.buf)
	w.buf = b.AppendBody(w.buf[:0], i)
	req.SetBodyRaw(w.buf)
	if err := w.g.hc.Do(req, w.resp); err != nil {
		w.statuses[codeOf(err)]++
		return
	}
	w.statuses[w.resp.StatusCode()]++
}

// collect adds what worker w counted and measured to p.
func (p *Phase) collect(w *worker) {
	p.Statuses.add(w.statuses)
	p.Latencies = append(p.Latencies, w.latencies...)
	p.FromDue = append(p.FromDue, w.fromDue...)
}

// take returns the index of the next unsent request, or false when the
// batch is used up.
func (g *Generator) take() (int, bool) {
	i := int(g.next.Add(1) - 1)
	return i, i < g.batch.Len()
}

// ClosedLoop runs conns workers that each send back to back until d has
// passed or the batch is used up.
func (g *Generator) ClosedLoop(conns int, d time.Duration) Phase {
	var mu sync.Mutex
	res := Phase{Statuses: StatusCounts{}}
	var ranOut atomic.Bool
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := g.newWorker()
			defer w.release()
			for time.Now().Before(deadline) {
				i, ok := g.take()
				if !ok {
					ranOut.Store(true)
					break
				}
				t0 := time.Now()
				w.send(i)
				w.latencies = append(w.latencies, time.Since(t0))
			}
			mu.Lock()
			res.collect(w)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Done = int64(len(res.Latencies))
	res.RanOut = ranOut.Load()
	return res
}

// OpenLoop sends rate requests per second for d, on the schedule of
// Due, through conns workers. A request waits in the queue when all
// workers are busy; its latency still counts from when the pacer released
// it, so a slow server is not hidden (coordinated omission). The pacer's
// own lateness (release − due) is kept apart, in Phase.Lateness: Go rounds
// an idle process's sub-millisecond sleeps up to a millisecond, so a pacer
// can release up to ~1 ms late, and counting that against the server would
// put a ~0.6 ms p50 and ~2.5 ms p99 floor under any server (measured
// against loadtest/cmd/barehttp at 2,000/s).
func (g *Generator) OpenLoop(conns int, rate float64, d time.Duration) Phase {
	total := int(rate * d.Seconds())
	queue := make(chan job, total)
	res := Phase{Statuses: StatusCounts{}, Lateness: make([]time.Duration, 0, total)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := g.newWorker()
			defer w.release()
			for j := range queue {
				w.send(j.i)
				w.latencies = append(w.latencies, time.Since(j.released))
				w.fromDue = append(w.fromDue, time.Since(j.due))
			}
			mu.Lock()
			res.collect(w)
			mu.Unlock()
		}()
	}
	start := time.Now()
	// Release every request that is due, then sleep until the next one:
	// sleeping once per request would cost more than the send at 30k/s.
	for k := 0; k < total; {
		now := time.Since(start)
		for ; k < total && Due(k, rate) <= now; k++ {
			i, ok := g.take()
			if !ok {
				res.RanOut = true
				total = k
				break
			}
			due, released := start.Add(Due(k, rate)), time.Now()
			res.Lateness = append(res.Lateness, released.Sub(due))
			queue <- job{i: i, due: due, released: released}
		}
		if k < total {
			time.Sleep(max(Due(k, rate)-time.Since(start), 20*time.Microsecond))
		}
	}
	close(queue)
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Done = int64(len(res.Latencies))
	return res
}

type job struct {
	i        int
	due      time.Time // on the schedule
	released time.Time // put in the queue by the pacer
}

// Forged reports whether Forge forges request i at share (0 ≤ share ≤ 1).
// The forged requests are spread evenly, so that every stretch of the batch,
// and so every verification batch the server forms, holds about its share.
func Forged(i int, share float64) bool {
	return math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share)
}

// Forge re-signs the requests that Forged selects with key instead of the
// key the batch was signed with, on workers goroutines (0 = GOMAXPROCS), and
// returns how many it re-signed. With a key the server does not trust, each
// is a well-formed forgery: it decodes, reaches the server's batch equation
// as a send from a relay with the wrong key would, and is answered 401. It
// is for the forged-send load test (run.sh forged); call it before the
// batch is shared.
func (b *Batch) Forge(key ed25519.PrivateKey, share float64, workers int) int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var forged atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var body, msg []byte
			for i := w; i < b.Len(); i += workers {
				if !Forged(i, share) {
					continue
				}
				body = b.AppendBody(body[:0], i)
				msg = verify.AppendMessage(msg[:0], b.Timestamp, body)
				copy(b.sigs[i][:], ed25519.Sign(key, msg))
				forged.Add(1)
			}
		})
	}
	wg.Wait()
	return int(forged.Load())
}
