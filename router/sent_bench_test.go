package router

import (
	"bufio"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSent measures the send path's metrics hook per send, from
// parallel goroutines as sends run: off (the default: the counters and
// latency histogram only), with METRICS_TENANT_LABELS=20 over 100 tenants,
// with EVENT_LOG to io.Discard (formatting here, hashing and writing in
// the writer goroutine, which competes for the same CPUs), and both. The
// difference to "off" is what each option costs a send; lines the writer
// could not keep up with are dropped and reported as dropped/op.
func BenchmarkSent(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tenants := make([]string, 100)
	for i := range tenants {
		tenants[i] = "bench-tenant-" + strconv.Itoa(i)
	}
	const msgID = "0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a"
	for _, tc := range []struct {
		name           string
		labels, events bool
	}{{"off", false, false}, {"tenant-labels", true, false}, {"event-log", false, true}, {"both", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Server{}
			if tc.labels {
				s.labels = newTenantLabels(20, time.Minute, sends.forgetTenants)
			}
			if tc.events {
				s.events = newEventLog(io.Discard, DefaultEventLogBuffer, quiet)
				defer s.events.close(b.Context())
			}
			dropped := eventLogDropped.Get()
			start := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					s.sent(tenants[i%len(tenants)], "noop", nil, start, msgID)
					i++
				}
			})
			b.ReportMetric(float64(eventLogDropped.Get()-dropped)/float64(b.N), "dropped/op")
		})
	}
}

// BenchmarkEventLogLine measures one event line's whole cost in one
// goroutine: formatting (on the send), then SHA-256 and the buffered write
// (in the writer): the CPU an instance spends per send with EVENT_LOG on,
// wherever it runs.
func BenchmarkEventLogLine(b *testing.B) {
	l := &eventLog{queue: make(chan *eventLine, 1), free: make(chan *eventLine, 1), w: bufio.NewWriterSize(io.Discard, 64<<10), out: io.Discard}
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.record(at, "bench-tenant-1", "apns", "delivered", 1234*time.Microsecond, "0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a")
		l.write(<-l.queue)
	}
}
