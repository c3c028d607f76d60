package router

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// fasthttpLogEvery is the least time between two lines of fasthttp's log.
const fasthttpLogEvery = time.Second

// fasthttpLog is fasthttp's Logger, writing through slog. Nearly all its
// lines are about a stranger's connection (a malformed request, a
// connection over a limit), so two rules apply:
//
//   - At most one line per fasthttpLogEvery: 20,000 malformed requests
//     would otherwise be 20,000 lines. A line carries "withheld", the
//     number of lines dropped since the one before it.
//   - An error argument is written only up to its first quote. fasthttp
//     quotes what the request held (%q): a header value it refused, the
//     request line, a snippet of the header buffer. SecureErrorLogMessage
//     drops the snippet but not the other two, and a refused value may be
//     an Authorization header or a relay signature.
//
// A withheld count is written with the next line, or, when none comes, by a
// timer at the end of the second (a line of its own), so a burst followed
// by silence still says how big it was. It is safe for concurrent use.
type fasthttpLog struct {
	log *slog.Logger

	mu       sync.Mutex
	now      func() time.Time // time.Now; tests step it (setClock)
	next     time.Time        // when the next line may be written
	withheld int              // lines dropped since the last one written
	calls    int              // Printf calls, written or not (tests)
	// afterFunc is time.AfterFunc; tests hold the timer's function.
	afterFunc func(time.Duration, func()) *time.Timer
	timer     bool // a flush of the withheld count is due
}

func newFasthttpLog(log *slog.Logger) *fasthttpLog {
	return &fasthttpLog{log: log, now: time.Now, afterFunc: time.AfterFunc}
}

// Printf writes one line, or counts it as withheld.
func (l *fasthttpLog) Printf(format string, args ...any) {
	l.mu.Lock()
	l.calls++
	now := l.now()
	if now.Before(l.next) {
		l.withheld++
		if !l.timer {
			l.timer = true
			l.afterFunc(l.next.Sub(now), l.flushWithheld)
		}
		l.mu.Unlock()
		return
	}
	withheld := l.withheld
	l.withheld, l.next = 0, now.Add(fasthttpLogEvery)
	l.mu.Unlock()

	safe := make([]any, len(args))
	for i, a := range args {
		if err, ok := a.(error); ok {
			a = unquoted(err.Error())
		}
		safe[i] = a
	}
	l.log.Warn(fmt.Sprintf(format, safe...), "component", "fasthttp", "withheld", withheld)
}

// flushWithheld writes the count of lines withheld since the last line, when
// no line came to carry it.
func (l *fasthttpLog) flushWithheld() {
	l.mu.Lock()
	withheld := l.withheld
	l.timer = false
	if withheld == 0 {
		l.mu.Unlock()
		return
	}
	l.withheld, l.next = 0, l.now().Add(fasthttpLogEvery)
	l.mu.Unlock()
	l.log.Warn("fasthttp lines withheld: at most one a second is written", "component", "fasthttp", "withheld", withheld)
}

// unquoted cuts s before its first double quote, where fasthttp's error
// texts start quoting request bytes.
func unquoted(s string) string {
	if i := strings.IndexByte(s, '"'); i >= 0 {
		return strings.TrimRight(s[:i], " :") + " (request bytes not logged)"
	}
	return s
}
