package router

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// eventLines parses the event log's lines.
func eventLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("event line is not JSON: %q", sc.Text())
		}
		lines = append(lines, l)
	}
	return lines
}

// Every provider hand-off writes one line with time, tenant, provider,
// outcome, latency and the message id's hash, and nothing else: never the
// token or the client id.
func TestEventLogLines(t *testing.T) {
	out := &testkit.SyncBuffer{}
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	h := newTenantHarnessHosts(t, embeddedStore, apns, apns, fcm, nil, func(c *Config) { c.EventLog = out })
	h.apnsKey("SOMEOTHER1", true) // the mock now checks provider tokens
	h.createTenant("acme")
	h.createTenant("bad")
	h.setAPNS("bad", "com.example.bad", "KEYUNKNOWN", false)
	const (
		clientID = "did:key:z6MkEventLogClient"
		token    = "device-token-that-must-stay-private"
		apnsTok  = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	)
	h.registerIn("acme", clientID, "noop", token)
	h.registerIn("bad", clientID, "apns", apnsTok)
	h.register(clientID, "noop", token, false) // the operator's own route

	body := `{"topic":"tp","tag":1,"message":"event-log-message"}`
	h.do("POST", "/acme/clients/"+clientID, body, h.signed(body, time.Now().Unix())).expectOK(t, 202)
	h.do("POST", "/bad/clients/"+clientID, body, h.signed(body, time.Now().Unix())).expectError(t, 502, "provider_misconfigured")
	legacy := `{"id":"legacy-42","payload":{"topic":"t","flags":1,"blob":"ZW5j"}}`
	h.send(clientID, legacy).expectOK(t, 202)
	h.send(clientID, legacy).expectOK(t, 200) // a dedup hit: no hand-off, no line

	testkit.Eventually(t, 5*time.Second, "three event lines", func() bool { return strings.Count(out.String(), "\n") >= 3 })
	time.Sleep(50 * time.Millisecond) // a fourth line would be a bug
	text := out.String()
	for _, secret := range []string{clientID, token, apnsTok, "z6Mk", "event-log-message", "legacy-42"} {
		if strings.Contains(text, secret) {
			t.Fatalf("the event log holds %q:\n%s", secret, text)
		}
	}
	hash := func(id string) string { sum := sha256.Sum256([]byte(id)); return hex.EncodeToString(sum[:16]) }
	msgSum := sha256.Sum256([]byte("event-log-message"))
	want := []struct{ tenant, provider, outcome, hash string }{
		{"acme", "noop", "delivered", hash(hex.EncodeToString(msgSum[:]))},
		{"bad", "apns", "provider_misconfigured", hash(hex.EncodeToString(msgSum[:]))},
		{"", "noop", "delivered", hash("legacy-42")},
	}
	lines := eventLines(t, text)
	if len(lines) != len(want) {
		t.Fatalf("%d event lines; want %d:\n%s", len(lines), len(want), text)
	}
	for i, l := range lines {
		var keys []string
		for k := range l {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, ",") != "latency_ms,message_id_hash,outcome,provider,tenant,time" {
			t.Errorf("line %d has fields %v", i, keys)
		}
		w := want[i]
		if l["tenant"] != w.tenant || l["provider"] != w.provider || l["outcome"] != w.outcome || l["message_id_hash"] != w.hash {
			t.Errorf("line %d = %v; want tenant %q provider %q outcome %q hash %s", i, l, w.tenant, w.provider, w.outcome, w.hash)
		}
		at, err := time.Parse(time.RFC3339Nano, l["time"].(string))
		if err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
			t.Errorf("line %d time %v (%v)", i, l["time"], err)
		}
		if ms, ok := l["latency_ms"].(float64); !ok || ms < 0 {
			t.Errorf("line %d latency_ms %v", i, l["latency_ms"])
		}
	}
}

// gate is an output that blocks every write until opened.
type gate struct {
	entered chan struct{} // gets a value when a write starts waiting
	open    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	got     strings.Builder
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.Write(p)
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.String()
}

// A blocked output costs lines, counted, never a send's time: record
// returns at once with the queue full, and close gives up when its
// context ends.
func TestEventLogBlockedWriterDropsAndCounts(t *testing.T) {
	out := newGate()
	defer out.release()
	l := newEventLog(out, 4, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.record(time.Now(), "t", "noop", "delivered", time.Millisecond, "first")
	<-out.entered // the writer holds the first line, blocked in the output
	before := eventLogDropped.Get()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			l.record(time.Now(), "t", "noop", "delivered", time.Millisecond, "m")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("record blocked behind a blocked output")
	}
	// The first line is in the writer's output buffer, its line buffer
	// free again: the 4 line buffers queue 4 lines, the other 96 are
	// dropped.
	if got := eventLogDropped.Get() - before; got != 96 {
		t.Fatalf("push_event_log_dropped_total moved by %d; want 96", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l.close(ctx) // returns although the output is still blocked
	out.release()
	<-l.done
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Fatalf("after release, %d lines written; want the 5 held", n)
	}
}

// Through the server: sends are answered while the output is blocked, and
// the lines they could not queue are counted.
func TestEventLogBlockedWriterNeverBlocksSends(t *testing.T) {
	out := newGate()
	h := newHarness(t, options{configure: func(c *Config) { c.EventLog, c.EventLogBuffer, c.ServeMetrics = out, 1, true }})
	t.Cleanup(out.release) // runs before the harness's Shutdown
	h.register("blocked", "noop", "tok", false)
	before := eventLogDropped.Get()
	for i := range 5 {
		body := `{"topic":"t","tag":1,"message":"blocked-` + string(rune('a'+i)) + `"}`
		h.send("blocked", body).expectOK(t, 202)
		if i == 0 {
			<-out.entered // the writer is stuck with the first line
		}
	}
	// The first line waits in the blocked output, the second in the one
	// line buffer; the other 3 are dropped.
	if got := eventLogDropped.Get() - before; got != 3 {
		t.Fatalf("push_event_log_dropped_total moved by %d; want 3", got)
	}
	if _, ok := scrape(t, h)["push_event_log_dropped_total"]; !ok {
		t.Fatal("push_event_log_dropped_total is not exported")
	}
}

// Shutdown writes the lines still queued.
func TestEventLogFlushedOnClose(t *testing.T) {
	out := newGate()
	l := newEventLog(out, 16, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.record(time.Now(), "t", "noop", "delivered", 0, "first")
	<-out.entered
	for range 10 {
		l.record(time.Now(), "t", "noop", "delivered", 0, "queued")
	}
	go func() { time.Sleep(20 * time.Millisecond); out.release() }()
	l.close(context.Background())
	if n := strings.Count(out.String(), "\n"); n != 11 {
		t.Fatalf("after close, %d lines written; want 11", n)
	}
}

// A relay-chosen message id as long as a body allows is hashed like any
// other, and neither the queue nor the pooled line buffers keep its size:
// 16 such lines queued behind a blocked writer hold a few KB, not 16 ids.
func TestEventLogLongMessageIDsStaySmall(t *testing.T) {
	out := newGate()
	l := newEventLog(out, 16, slog.New(slog.NewTextHandler(io.Discard, nil)))
	long := strings.Repeat("i", 60<<10)
	l.record(time.Now(), "t", "noop", "delivered", 0, "first")
	<-out.entered
	for range 15 {
		l.record(time.Now(), "t", "noop", "delivered", 0, long)
	}
	queued := 0
	for range len(l.queue) {
		e := <-l.queue
		queued += cap(e.b)
		l.queue <- e
	}
	if queued > 16<<10 {
		t.Errorf("15 queued lines hold %d bytes of buffers; want a few KB", queued)
	}
	out.release()
	l.close(context.Background())
	lines := eventLines(t, out.String())
	sum := sha256.Sum256([]byte(long))
	if len(lines) != 16 || lines[1]["message_id_hash"] != hex.EncodeToString(sum[:16]) {
		t.Fatalf("%d lines, the second's hash %v; want 16, %s", len(lines), lines[1]["message_id_hash"], hex.EncodeToString(sum[:16]))
	}
	for range len(l.free) {
		if e := <-l.free; cap(e.b) > 4<<10 {
			t.Fatalf("a pooled line buffer keeps %d bytes", cap(e.b))
		}
	}
}
