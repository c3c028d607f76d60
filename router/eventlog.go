package router

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"push-server/internal/jsonstr"
)

// DefaultEventLogBuffer is how many event lines wait for the writer
// (Config.EventLogBuffer) before new ones are dropped: a few seconds of a
// busy instance's sends, about 2 MB.
const DefaultEventLogBuffer = 8192

// eventLogDropped counts the event lines lost: dropped because the buffer
// was full (the writer could not keep up or is blocked), or not written
// because the writer failed.
var eventLogDropped = metrics.NewCounter(`push_event_log_dropped_total`)

// eventLog writes one JSON line per provider hand-off (EVENT_LOG), the
// reference server's analytics without personal data:
//
//	{"time":"2026-01-02T15:04:05.123456789Z","tenant":"acme","provider":"apns",
//	 "outcome":"delivered","latency_ms":12.345,"message_id_hash":"9f86d081884c7d659a2feaa0c55ad015"}
//
// time is when the provider answered (UTC), tenant "" for the operator's
// own routes, outcome "delivered" or the contract name of the failure (as
// push_sends_total), latency_ms the provider hand-off, retries included.
// No token, no client id. message_id_hash is the first 128 bits of the
// SHA-256 of the message id, in hex: unkeyed, so that an operator holding
// a message id (the relay's, or the hex SHA-256 of the message) can find
// its line, while the line itself names no message. A keyed hash would
// hide that correlation behind a secret to manage and protect nothing
// that needs it: message ids are relay-chosen or digests of ciphertext,
// not personal data. 128 bits leave collisions out of reach.
//
// A send only formats its line into a pooled buffer and queues it; when
// every buffer is queued or being written the line is dropped and counted
// (push_event_log_dropped_total), so a slow or blocked writer never slows
// or blocks a send. The hashing (but of an id over maxQueuedMessageID
// bytes) and the writing happen in the one writer goroutine, which flushes
// whenever the queue runs empty and, on close, writes what is queued.
type eventLog struct {
	queue chan *eventLine
	// free holds the line buffers not in use; made counts those made, at
	// most cap(queue): the lines in flight never exceed the queue, so a
	// full queue and an empty free list mean the same thing (drop), and
	// once warm no send allocates.
	free chan *eventLine
	made atomic.Int64
	w    *bufio.Writer
	out  io.Writer
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// pending counts the lines buffered since the last flush that
	// succeeded: what a failure loses. failing is set after a failure until
	// a flush succeeds, so that a broken output is logged once, not once
	// per line.
	pending int
	failing bool
}

// eventLine is one line in the making: JSON up to latency_ms, then the raw
// message id from idx on, which the writer replaces with its hash; or,
// when hashed, the whole line already.
type eventLine struct {
	b      []byte
	idx    int
	hashed bool
}

// maxQueuedMessageID is the longest message id a queued line carries raw
// for the writer to hash. A relay chooses its ids and only the body size
// bounds them; a longer one is hashed by the send itself (rare: relay ids
// are a few dozen bytes), so that the queue holds at most about
// DefaultEventLogBuffer × 300 bytes and no line buffer keeps a body-sized
// capacity.
const maxQueuedMessageID = 128

// newEventLog starts the writer; nil out means no event log (nil *eventLog,
// whose methods do nothing).
func newEventLog(out io.Writer, buffer int, log *slog.Logger) *eventLog {
	if out == nil {
		return nil
	}
	l := &eventLog{
		queue: make(chan *eventLine, buffer),
		free:  make(chan *eventLine, buffer),
		w:     bufio.NewWriterSize(out, 64<<10),
		out:   out,
		log:   log,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go l.run()
	return l
}

// record queues the line of one hand-off, or drops and counts it. It
// allocates nothing once the pool is warm, and never waits.
func (l *eventLog) record(at time.Time, tenant, provider, outcome string, took time.Duration, messageID string) {
	if l == nil {
		return
	}
	e := l.line()
	if e == nil {
		eventLogDropped.Inc()
		return
	}
	b := append(e.b[:0], `{"time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","tenant":`...)
	b = jsonstr.Append(b, tenant)
	b = append(b, `,"provider":`...)
	b = jsonstr.Append(b, provider)
	b = append(b, `,"outcome":`...)
	b = jsonstr.Append(b, outcome)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, float64(took.Microseconds())/1000, 'f', -1, 64)
	e.idx = len(b)
	if e.hashed = len(messageID) > maxQueuedMessageID; e.hashed {
		e.b = endLine(b, sha256.Sum256([]byte(messageID)))
	} else {
		e.b = append(b, messageID...)
	}
	l.queue <- e // never waits: no more lines exist than it holds
}

// line takes a free line buffer, making one while fewer than the queue
// holds exist; nil when every one is in flight.
func (l *eventLog) line() *eventLine {
	select {
	case e := <-l.free:
		return e
	default:
	}
	if l.made.Add(1) > int64(cap(l.queue)) {
		l.made.Add(-1)
		return nil
	}
	return &eventLine{b: make([]byte, 0, 256)}
}

func (l *eventLog) run() {
	defer close(l.done)
	for {
		select {
		case e := <-l.queue:
			l.write(e)
			if len(l.queue) == 0 {
				l.flush()
			}
		case <-l.stop:
			// Write what was queued before close; lines queued later (a
			// send outliving Shutdown's deadline) are left unwritten.
			for n := len(l.queue); n > 0; n-- {
				l.write(<-l.queue)
			}
			l.flush()
			return
		}
	}
}

// write finishes e's line with the message id's hash and buffers it.
func (l *eventLog) write(e *eventLine) {
	b := e.b
	if !e.hashed {
		b = endLine(e.b[:e.idx], sha256.Sum256(e.b[e.idx:]))
	}
	l.pending++
	if _, err := l.w.Write(b); err != nil {
		l.failed(err)
	}
	e.b = b
	l.free <- e // never waits: it holds every line made
}

// endLine appends the message id's hash (the first 128 bits of sum) and
// the line's end.
func endLine(b []byte, sum [sha256.Size]byte) []byte {
	b = append(b, `,"message_id_hash":"`...)
	b = hex.AppendEncode(b, sum[:16])
	return append(b, "\"}\n"...)
}

func (l *eventLog) flush() {
	if err := l.w.Flush(); err != nil {
		l.failed(err)
		return
	}
	l.pending, l.failing = 0, false
}

// failed counts the lines a failed write lost (those buffered since the
// last good flush; a bufio.Writer keeps its first error forever) and starts
// over with an empty buffer.
func (l *eventLog) failed(err error) {
	eventLogDropped.Add(l.pending)
	l.pending = 0
	l.w.Reset(l.out)
	if !l.failing {
		l.failing = true
		l.log.Error("cannot write the event log; its lines are counted in push_event_log_dropped_total until it works again", "error", err.Error())
	}
}

// close writes what is queued and stops the writer, waiting until ctx
// ends at most: a blocked output must not hold shutdown.
func (l *eventLog) close(ctx context.Context) {
	if l == nil {
		return
	}
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
	}
}
