package router

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"push-server/cache"
	"push-server/internal/testkit"
)

// panickingStore panics on Lookup, as a bug in a handler would.
type panickingStore struct{ cache.Store }

func (panickingStore) Lookup(context.Context, string, string) (cache.Client, error) {
	panic("lookup exploded")
}

// TestPanicLogsRouteAndStackNotPath: a panic while handling a request is
// answered 500 internal_error in the envelope, and its log line names the
// route's pattern and carries the stack, never the request's path (which
// holds the client id: here an encoded "/" put part of it where a path
// prefix would be).
func TestPanicLogsRouteAndStackNotPath(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	h := newHarness(t, options{
		configure: func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) },
		deps:      func(d *Deps) { d.Store = panickingStore{d.Store} },
	})
	r := h.send("leaky%2Fsecret", `{"id":"m1","title":"t","body":"b"}`)
	if r.status != 500 || r.header.Get("Content-Type") != "application/json" ||
		string(r.body) != `{"status":"FAILED","errors":[{"name":"internal_error","description":"the server failed to handle the request"}]}` {
		t.Fatalf("got %d %q; want 500 internal_error", r.status, r.body)
	}
	out := logs.String()
	if !strings.Contains(out, "panic while handling a request") || !strings.Contains(out, "lookup exploded") {
		t.Fatalf("no panic logged:\n%s", out)
	}
	if !strings.Contains(out, `route="POST /clients/{client_id}"`) {
		t.Errorf("the panic's log does not name the route's pattern:\n%s", out)
	}
	if !strings.Contains(out, "stack=") || !strings.Contains(out, "runtime/debug.Stack") {
		t.Errorf("the panic's log has no stack:\n%s", out)
	}
	if strings.Contains(out, "leaky") || strings.Contains(out, "secret") {
		t.Errorf("the panic's log holds the request's path:\n%s", out)
	}
}
