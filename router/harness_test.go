package router

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/dispatch"
	"push-server/verify"
)

// harness is a Server listening on a real loopback port, with its own store,
// providers and relay key. Tests talk to it over real HTTP.
type harness struct {
	t         *testing.T
	url       string
	relayPriv ed25519.PrivateKey
	store     cache.Store
	providers *dispatch.Dispatcher
	srv       *Server
	http      *http.Client
}

// options changes one harness from the defaults.
type options struct {
	store     func(t *testing.T) cache.Store // default: embedded on t.TempDir()
	dispatch  dispatch.Config
	configure func(*Config)
	deps      func(*Deps)
	audience  string
}

func embeddedStore(t *testing.T) cache.Store {
	s, err := cache.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func redisStore(t *testing.T) cache.Store {
	addr := cachetest.StartRedis(t)
	s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, KeyPrefix: fmt.Sprintf("test%d:", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stores are the two Store implementations every end-to-end test runs on.
var stores = []struct {
	name string
	open func(t *testing.T) cache.Store
}{
	{"embedded", embeddedStore},
	{"redis", redisStore},
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	if o.store == nil {
		o.store = embeddedStore
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := verify.NewRelay(pub, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	providers, err := dispatch.New(o.dispatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { providers.Close() })
	store := o.store(t)
	t.Cleanup(func() { store.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	if o.audience == "" {
		o.audience = url
	}
	cfg := Config{ValidateSignatures: true, SendTimeout: 5 * time.Second}
	if o.configure != nil {
		o.configure(&cfg)
	}
	deps := Deps{Store: store, Relay: relay, ClientAuth: &verify.ClientAuth{Audience: o.audience, Leeway: 120 * time.Second}, Providers: providers}
	if o.deps != nil {
		o.deps(&deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &harness{t: t, url: url, relayPriv: priv, store: store, providers: providers, srv: srv,
		http: &http.Client{Timeout: 20 * time.Second}}
}

// reply is one HTTP answer, with the envelope decoded when it is JSON.
type reply struct {
	status int
	header http.Header
	body   []byte
	// closed: the server told the client to close the connection (Go's
	// client strips the Connection header and sets Response.Close).
	closed bool
	env    struct {
		Status string `json:"status"`
		Errors []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"errors"`
		Fields []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
			Location    string `json:"location"`
		} `json:"fields"`
	}
}

func (h *harness) do(method, path, body string, header map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var r reply
	r.status, r.header, r.closed = resp.StatusCode, resp.Header, resp.Close
	if r.body, err = io.ReadAll(resp.Body); err != nil {
		h.t.Fatal(err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(r.body, &r.env); err != nil {
			h.t.Fatalf("%s %s: reply is not JSON: %q", method, path, r.body)
		}
	}
	return r
}

// signed returns the relay headers for body, signed at ts.
func (h *harness) signed(body string, ts int64) map[string]string {
	stamp := strconv.FormatInt(ts, 10)
	return map[string]string{
		"X-Ed25519-Timestamp": stamp,
		"X-Ed25519-Signature": verify.Sign(h.relayPriv, []byte(stamp), []byte(body)),
		"Content-Type":        "application/json",
	}
}

func (h *harness) send(id, body string) reply {
	h.t.Helper()
	return h.do("POST", "/clients/"+id, body, h.signed(body, time.Now().Unix()))
}

func (h *harness) register(id, typ, token string, alwaysRaw bool) {
	h.t.Helper()
	body := fmt.Sprintf(`{"client_id":%q,"type":%q,"token":%q,"always_raw":%v}`, id, typ, token, alwaysRaw)
	if r := h.do("POST", "/clients", body, nil); r.status != 200 || string(r.body) != `{"status":"OK"}` {
		h.t.Fatalf("register %s: %d %s", id, r.status, r.body)
	}
}

// expectOK checks a success reply: status and the exact OK envelope.
func (r reply) expectOK(t *testing.T, status int) {
	t.Helper()
	if r.status != status || string(r.body) != `{"status":"OK"}` || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q (%s); want %d {\"status\":\"OK\"}", r.status, r.body, r.header.Get("Content-Type"), status)
	}
}

// expectError checks a failure reply: status, envelope, error name ("" for
// none) and exactly the named fields, in order.
func (r reply) expectError(t *testing.T, status int, name string, fields ...string) {
	t.Helper()
	if r.status != status || r.env.Status != "FAILED" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q; want %d FAILED envelope", r.status, r.body, status)
	}
	gotName := ""
	if len(r.env.Errors) > 0 {
		gotName = r.env.Errors[0].Name
	}
	if gotName != name || len(r.env.Errors) > 1 {
		t.Fatalf("got errors %q; want name %q: %s", gotName, name, r.body)
	}
	var got []string
	for _, f := range r.env.Fields {
		got = append(got, f.Field)
		if f.Description == "" || f.Location == "" {
			t.Fatalf("field %q lacks description or location: %s", f.Field, r.body)
		}
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Fatalf("got fields %q; want %q: %s", got, fields, r.body)
	}
	if len(r.env.Errors) == 0 && len(r.env.Fields) == 0 {
		t.Fatalf("envelope has neither errors nor fields: %s", r.body)
	}
}
