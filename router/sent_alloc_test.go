//go:build !race

package router

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// The send path's one metrics hook allocates nothing with tenant labels
// and the event log off (the default), nor once warm with them on.
func TestSentDoesNotAllocate(t *testing.T) {
	start := time.Now()
	failed := errors.New("x")
	off := &Server{}
	if n := testing.AllocsPerRun(500, func() {
		off.sent("acme", "noop", nil, start, "0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a")
		off.sent("", "noop", failed, start, "m")
	}); n != 0 {
		t.Errorf("sent with labels and event log off allocates %.1f times per call; want 0", n)
	}

	on := &Server{labels: newTenantLabels(2, time.Hour, sends.forgetTenants),
		events: newEventLog(io.Discard, 16, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	defer on.events.close(t.Context())
	// Label acme, make its counter, and make the event log's 16 line
	// buffers: after that lines reuse them, or are dropped when all are
	// in flight.
	for range 1000 {
		on.sent("acme", "noop", nil, start, "warm")
	}
	if n := testing.AllocsPerRun(500, func() {
		on.sent("acme", "noop", nil, start, "0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a")
	}); n != 0 {
		t.Errorf("sent with labels and event log on allocates %.1f times per call; want 0", n)
	}
}
