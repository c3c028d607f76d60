package dispatch

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// fakeClock is a settable clock for the Pool's LRU and idle decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startPool returns a Pool over base, closed when the test ends.
func startPool(t *testing.T, base Config, maxTenants int, idle time.Duration, clock *fakeClock) *Pool {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	p := newPool(base, maxTenants, idle, now)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// apnsTenant is one tenant's token-auth credentials.
type apnsTenant struct {
	key   apnsKey
	creds Config
}

func newAPNsTenant(t *testing.T, topic, keyID, teamID string) apnsTenant {
	key := newAPNsKey(t)
	return apnsTenant{key, Config{Credentials: Credentials{
		APNSType: APNSTypeToken, APNSTopic: topic, APNSPKCS8PEM: key.pem, APNSKeyID: keyID, APNSTeamID: teamID,
	}}}
}

// credsOf is a Get loader that returns creds.
func credsOf(creds Config) func() (Config, error) {
	return func() (Config, error) { return creds, nil }
}

func mustGet(t *testing.T, p *Pool, tenant string, version uint64, creds Config) *Dispatcher {
	t.Helper()
	d, err := p.Get(tenant, 0, version, credsOf(creds))
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", tenant, version, err)
	}
	return d
}

func TestPoolReusesDispatcher(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 0, nil)
	a := newAPNsTenant(t, testTopic, testKeyID, testTeamID)
	d1 := mustGet(t, p, "tenant-a", 1, a.creds)
	if d2 := mustGet(t, p, "tenant-a", 1, a.creds); d2 != d1 {
		t.Fatal("a second Get of the same tenant and version built a new Dispatcher")
	}
	if d, ok := p.Lookup("tenant-a", 0, 1); !ok || d != d1 {
		t.Fatalf("Lookup = %p, %v; want the built Dispatcher %p", d, ok, d1)
	}
	if _, ok := p.Lookup("tenant-a", 0, 2); ok {
		t.Fatal("Lookup of another version found a Dispatcher")
	}
	if _, ok := p.Lookup("tenant-b", 0, 1); ok {
		t.Fatal("Lookup of an unknown tenant found a Dispatcher")
	}
	if db := mustGet(t, p, "tenant-b", 1, a.creds); db == d1 {
		t.Fatal("two tenants share a Dispatcher")
	}
	if d1.closes.Load() != 0 {
		t.Fatal("a Dispatcher in use was closed")
	}
}

func TestPoolAvailability(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 0, nil)
	apnsOnly := mustGet(t, p, "apns-only", 1, newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds)
	for typ, want := range map[string]bool{TypeAPNS: true, TypeAPNSSandbox: true, TypeFCM: false, TypeNoop: true} {
		if got := apnsOnly.Available(typ); got != want {
			t.Errorf("tenant with APNs only: Available(%q) = %v; want %v", typ, got, want)
		}
	}
	fcmOnly := mustGet(t, p, "fcm-only", 1, Config{Credentials: Credentials{FCMCredentials: dispatchtest.StartFCM(t).ServiceAccountJSON(testProject)}})
	for typ, want := range map[string]bool{TypeAPNS: false, TypeAPNSSandbox: false, TypeFCM: true, TypeNoop: true} {
		if got := fcmOnly.Available(typ); got != want {
			t.Errorf("tenant with FCM only: Available(%q) = %v; want %v", typ, got, want)
		}
	}
	none := mustGet(t, p, "nothing", 1, Config{})
	if !none.Available(TypeNoop) || none.Available(TypeAPNS) || none.Available(TypeFCM) {
		t.Error("tenant without credentials: want noop only")
	}
}

func TestPoolIgnoresBaseCredentials(t *testing.T) {
	base := baseConfig()
	key := newAPNsKey(t)
	base.APNSType, base.APNSTopic, base.APNSPKCS8PEM, base.APNSKeyID, base.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	p := startPool(t, base, 10, 0, nil)
	if d := mustGet(t, p, "t", 1, Config{}); d.Available(TypeAPNS) {
		t.Fatal("a tenant without credentials got the base Config's APNs")
	}
}

// A tenant's Dispatcher is built from every credential field the tenant
// has and from none of the base's, whatever fields Credentials grows.
func TestPoolTakesEveryCredentialFromTheTenant(t *testing.T) {
	base := baseConfig()
	base.Credentials = everyCredential(t, "base-")
	base.RetryDelay = nil // DeepEqual never equates funcs
	tenant := Config{Credentials: everyCredential(t, "tenant-"), Timeout: time.Hour, MaxAttempts: 99}
	got := withCredentials(base, &tenant)
	if !reflect.DeepEqual(got.Credentials, tenant.Credentials) {
		t.Fatalf("built from %+v; want the tenant's %+v", got.Credentials, tenant.Credentials)
	}
	got.Credentials = base.Credentials
	if !reflect.DeepEqual(got, base) {
		t.Fatal("a tenant's Config changed more than the base's credentials")
	}
}

func TestPoolCachesBuildError(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 0, nil)
	bad := Config{Credentials: Credentials{APNSType: APNSTypeToken, APNSTopic: testTopic, APNSPKCS8PEM: []byte("garbage"), APNSKeyID: testKeyID, APNSTeamID: testTeamID}}
	_, err1 := p.Get("t", 0, 1, credsOf(bad))
	_, err2 := p.Get("t", 0, 1, credsOf(bad))
	if err1 == nil || !strings.Contains(err1.Error(), "APNS_PKCS8_PEM") {
		t.Fatalf("Get with a bad key = %v; want New's error", err1)
	}
	if err1 != err2 {
		t.Fatalf("the second Get built again (%p, %p); want the kept error", err1, err2)
	}
	if _, ok := p.Lookup("t", 0, 1); ok {
		t.Fatal("Lookup reported a failed build as found")
	}
	// A new version (fixed credentials) builds.
	mustGet(t, p, "t", 2, newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds)
}

func TestPoolRetriesFailedLoad(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 0, nil)
	sealed := errors.New("cannot open the sealed credentials")
	loads := 0
	_, err := p.Get("t", 0, 1, func() (Config, error) { loads++; return Config{}, sealed })
	if !errors.Is(err, sealed) || !strings.Contains(err.Error(), "tenant t") {
		t.Fatalf("Get with a failing load = %v; want the load error, naming the tenant", err)
	}
	d, err := p.Get("t", 0, 1, func() (Config, error) { loads++; return Config{}, nil })
	if err != nil || d == nil || loads != 2 {
		t.Fatalf("Get after a failed load = %v, %v after %d loads; want a Dispatcher after 2 loads", d, err, loads)
	}
	if _, err := p.Get("t", 0, 1, func() (Config, error) { t.Error("load called for a built version"); return Config{}, nil }); err != nil {
		t.Fatal(err)
	}
}

// connCounter serves h over h2c and counts its connections.
type connCounter struct {
	url            string
	opened, closed atomic.Int32
}

func serveCounted(t *testing.T, h http.Handler) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{url: "http://" + ln.Addr().String()}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protos, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			c.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.closed.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

func TestPoolVersionChangeClosesOld(t *testing.T) {
	mock, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mock.Close() })
	old := newAPNsTenant(t, testTopic, "OLDKEY0001", testTeamID)
	next := newAPNsTenant(t, testTopic, "NEWKEY0002", testTeamID)
	mock.TrustKey("OLDKEY0001", testTeamID, &old.key.key.PublicKey)
	mock.TrustKey("NEWKEY0002", testTeamID, &next.key.key.PublicKey)
	srv := serveCounted(t, mock)

	base := baseConfig()
	base.APNSURL, base.APNSSandboxURL = srv.url, srv.url
	p := startPool(t, base, 10, 0, nil)
	p.grace = 50 * time.Millisecond

	d1 := mustGet(t, p, "t", 1, old.creds)
	if err := mustSender(t, d1, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
		t.Fatalf("push with v1: %v", err)
	}
	if srv.opened.Load() != 1 || srv.closed.Load() != 0 {
		t.Fatalf("after one push: %d connections opened, %d closed; want 1, 0", srv.opened.Load(), srv.closed.Load())
	}

	d2 := mustGet(t, p, "t", 2, next.creds)
	if d2 == d1 {
		t.Fatal("a new version got the old Dispatcher")
	}
	testkit.Eventually(t, 3*time.Second, "the v1 connection to close", func() bool { return srv.closed.Load() == 1 })
	if err := mustSender(t, d2, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
		t.Fatalf("push with v2: %v", err)
	}
	if _, ok := p.Lookup("t", 0, 1); ok {
		t.Fatal("v1 is still in the pool")
	}
	if d := mustGet(t, p, "t", 2, next.creds); d != d2 {
		t.Fatal("v2 was rebuilt")
	}
	// The second, delayed Close catches a push that was in flight.
	testkit.Eventually(t, 3*time.Second, "the delayed second Close of v1", func() bool { return d1.closes.Load() == 2 })
	if d2.closes.Load() != 0 {
		t.Fatal("the current Dispatcher was closed")
	}
}

func TestPoolLRU(t *testing.T) {
	clock := newFakeClock()
	p := startPool(t, baseConfig(), 2, 0, clock)
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds
	a := mustGet(t, p, "a", 1, creds)
	clock.Advance(time.Second)
	b := mustGet(t, p, "b", 1, creds)
	clock.Advance(time.Second)
	mustGet(t, p, "a", 1, creds) // a is now the most recent
	clock.Advance(time.Second)
	mustGet(t, p, "c", 1, creds)
	clock.Advance(time.Second) // the Lookups below mark use too

	if n := p.Len(); n != 2 {
		t.Fatalf("Len() = %d; want the bound, 2", n)
	}
	if _, ok := p.Lookup("b", 0, 1); ok {
		t.Fatal("b, the least recently used, is still in the pool")
	}
	if b.closes.Load() == 0 {
		t.Fatal("the evicted Dispatcher was not closed")
	}
	if d, ok := p.Lookup("a", 0, 1); !ok || d != a || a.closes.Load() != 0 {
		t.Fatal("a, recently used, was evicted or closed")
	}
	clock.Advance(time.Second)
	if d := mustGet(t, p, "b", 1, creds); d == b {
		t.Fatal("an evicted tenant got its closed Dispatcher back")
	}
	if _, ok := p.Lookup("c", 0, 1); ok {
		t.Fatal("c was not evicted when b came back (a was looked up later)")
	}
}

func TestPoolIdleEviction(t *testing.T) {
	clock := newFakeClock()
	p := startPool(t, baseConfig(), 10, time.Hour, clock) // the janitor never ticks here
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds
	idle := mustGet(t, p, "idle", 1, creds)
	busy := mustGet(t, p, "busy", 1, creds)
	clock.Advance(40 * time.Minute)
	mustGet(t, p, "busy", 1, creds)
	clock.Advance(40 * time.Minute)
	p.evictIdle()
	if _, ok := p.Lookup("idle", 0, 1); ok || idle.closes.Load() == 0 {
		t.Fatal("a tenant unused for 80 minutes (idle 1h) was kept or not closed")
	}
	if _, ok := p.Lookup("busy", 0, 1); !ok || busy.closes.Load() != 0 {
		t.Fatal("a tenant used 40 minutes ago (idle 1h) was evicted")
	}
}

func TestPoolJanitor(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 50*time.Millisecond, nil)
	d := mustGet(t, p, "t", 1, newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds)
	testkit.Eventually(t, 3*time.Second, "idle eviction by the janitor", func() bool { return p.Len() == 0 && d.closes.Load() > 0 })
}

// A tenant deleted and created again starts its versions over: the same
// version of a new incarnation must not get the old tenant's Dispatcher.
func TestPoolNewIncarnationAtSameVersionRebuilds(t *testing.T) {
	p := newPool(baseConfig(), 10, time.Minute, time.Now)
	t.Cleanup(func() { p.Close() })
	old := newAPNsTenant(t, testTopic, "OLDKEY0001", testTeamID).creds
	next := newAPNsTenant(t, testTopic, "NEWKEY0002", testTeamID).creds
	d1, err := p.Get("t", 7, 1, credsOf(old))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := p.Get("t", 8, 1, credsOf(next))
	if err != nil {
		t.Fatal(err)
	}
	if d2 == d1 || d1.closes.Load() == 0 {
		t.Fatal("a new incarnation at the same version got the old tenant's Dispatcher, or the old one stayed open")
	}
	if _, ok := p.Lookup("t", 7, 1); ok {
		t.Fatal("the old incarnation is still found")
	}
	if d, ok := p.Lookup("t", 8, 1); !ok || d != d2 || p.Len() != 1 {
		t.Fatal("the new incarnation is not the one held")
	}
}

// WatchStale closes what the callback calls stale, and only the entry it
// was asked about: a newer incarnation built meanwhile stays.
func TestPoolWatchStale(t *testing.T) {
	p := newPool(baseConfig(), 10, time.Minute, time.Now)
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds
	gone, kept := mustGet(t, p, "gone", 1, creds), mustGet(t, p, "kept", 1, creds)
	asked := make(chan string, 100)
	p.WatchStale(5*time.Millisecond, func(id string, incarnation uint64) bool {
		select {
		case asked <- id:
		default:
		}
		return id == "gone" && incarnation == 0
	})
	testkit.Eventually(t, 3*time.Second, "the stale tenant to be closed", func() bool { return p.Len() == 1 && gone.closes.Load() > 0 })
	if d, ok := p.Lookup("kept", 0, 1); !ok || d != kept || kept.closes.Load() != 0 {
		t.Fatal("a tenant the callback did not call stale was touched")
	}
	// A new incarnation of the removed tenant is not stale: it stays.
	again, err := p.Get("gone", 9, 1, credsOf(creds))
	if err != nil {
		t.Fatal(err)
	}
	for len(asked) > 0 { // what was asked before the Get
		<-asked
	}
	for range 4 { // at least two more rounds over the two tenants
		<-asked
	}
	if d, ok := p.Lookup("gone", 9, 1); !ok || d != again {
		t.Fatal("the new incarnation was removed")
	}
	if err := p.Close(); err != nil { // stops the watcher: -race sees it end
		t.Fatal(err)
	}
}

func TestPoolRemoveAndClose(t *testing.T) {
	p := newPool(baseConfig(), 10, time.Minute, time.Now)
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds
	a, b := mustGet(t, p, "a", 1, creds), mustGet(t, p, "b", 1, creds)
	p.Remove("a")
	if _, ok := p.Lookup("a", 0, 1); ok || a.closes.Load() == 0 {
		t.Fatal("Remove kept the tenant or did not close it")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// a's pending second Close runs at Close; b is closed once.
	if a.closes.Load() != 2 || b.closes.Load() != 1 {
		t.Fatalf("after Close: a closed %d times, b %d; want 2, 1", a.closes.Load(), b.closes.Load())
	}
	if _, err := p.Get("a", 0, 1, credsOf(creds)); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Get after Close = %v; want ErrPoolClosed", err)
	}
	_ = p.Close() // idempotent
}

// jwtHeader decodes the header of the provider token in an authorization
// header value.
func jwtHeader(t *testing.T, auth string) (kid string) {
	t.Helper()
	_, jwt, ok := strings.Cut(auth, " ")
	seg, _, ok2 := strings.Cut(jwt, ".")
	if !ok || !ok2 {
		t.Fatalf("authorization %q is not a bearer JWT", auth)
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func TestPoolTenantsUseTheirOwnCredentials(t *testing.T) {
	apns := dispatchtest.StartAPNs(t, true)
	fcm := dispatchtest.StartFCM(t)
	base := baseConfig()
	base.APNSURL, base.APNSSandboxURL, base.FCMURL, base.RootCAs = apns.URL(), apns.URL(), fcm.URL(), apns.RootCAs()
	base.FCMTokenURIs = mustTokenURIs(t, fcm.TokenURL())
	p := startPool(t, base, 10, 0, nil)

	type tenant struct {
		id, topic, keyID, teamID, project string
	}
	tenants := []tenant{
		{"wallet-a", "com.a.wallet", "AAAAAAAAA1", "TEAMAAAAA1", "project-a"},
		{"wallet-b", "com.b.wallet", "BBBBBBBBB2", "TEAMBBBBB2", "project-b"},
	}
	for _, tn := range tenants {
		at := newAPNsTenant(t, tn.topic, tn.keyID, tn.teamID)
		apns.TrustKey(tn.keyID, tn.teamID, &at.key.key.PublicKey)
		creds := at.creds
		creds.FCMCredentials = fcm.ServiceAccountJSON(tn.project)
		d := mustGet(t, p, tn.id, 1, creds)
		for _, typ := range []string{TypeAPNS, TypeAPNSSandbox} {
			if err := mustSender(t, d, typ).Send(t.Context(), testToken, visible()); err != nil {
				t.Fatalf("%s %s push: %v", tn.id, typ, err)
			}
		}
		if err := mustSender(t, d, TypeFCM).Send(t.Context(), fcmToken, visible()); err != nil {
			t.Fatalf("%s fcm push: %v", tn.id, err)
		}
	}

	reqs := apns.Requests()
	if len(reqs) != 4 {
		t.Fatalf("APNs mock got %d requests; want 4", len(reqs))
	}
	for i, r := range reqs {
		tn := tenants[i/2]
		if r.Status != 200 {
			t.Errorf("%s push %d answered %d %s", tn.id, i, r.Status, r.Reason)
		}
		if got := r.Header.Get("apns-topic"); got != tn.topic {
			t.Errorf("%s push has apns-topic %q; want %q", tn.id, got, tn.topic)
		}
		if kid := jwtHeader(t, r.Header.Get("authorization")); kid != tn.keyID {
			t.Errorf("%s push signed with key %q; want %q", tn.id, kid, tn.keyID)
		}
	}
	freqs := fcm.Requests()
	if len(freqs) != 2 {
		t.Fatalf("FCM mock got %d sends; want 2", len(freqs))
	}
	for i, r := range freqs {
		want := fmt.Sprintf("/v1/projects/%s/messages:send", tenants[i].project)
		if r.Path != want || r.Status != 200 {
			t.Errorf("%s FCM send: %s answered %d; want %s answered 200", tenants[i].id, r.Path, r.Status, want)
		}
	}
}

func TestPoolConcurrentGet(t *testing.T) {
	p := startPool(t, baseConfig(), 3, 0, nil)
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds

	// Many first Gets of one tenant at once build one Dispatcher.
	const n = 32
	got := make([]*Dispatcher, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			d, err := p.Get("same", 0, 1, credsOf(creds))
			if err != nil {
				t.Error(err)
			}
			got[i] = d
		})
	}
	close(start)
	wg.Wait()
	for i, d := range got {
		if d == nil || d != got[0] {
			t.Fatalf("goroutine %d got Dispatcher %p, goroutine 0 %p; want one build", i, d, got[0])
		}
	}

	// Churn: more tenants than the bound, and version changes, all at once.
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				tenant := fmt.Sprintf("t%d", (g+i)%5)
				version := uint64(i / 50)
				d, err := p.Get(tenant, 0, version, credsOf(creds))
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Available(TypeAPNS) {
					t.Error("a pooled Dispatcher lost its APNs")
					return
				}
				if i%10 == 0 {
					p.Lookup(tenant, 0, version)
				}
			}
		})
	}
	wg.Wait()
	if l := p.Len(); l > 3 {
		t.Fatalf("Len() = %d after churn; want at most the bound, 3", l)
	}
}

// TestPoolCountsTenantRetries: the retries of every tenant's Dispatcher add
// up in the Pool (what /metrics exports), and a Dispatcher retired by a
// credential change takes none of its count with it.
func TestPoolCountsTenantRetries(t *testing.T) {
	apns := dispatchtest.StartAPNs(t, true)
	base := baseConfig()
	base.APNSURL, base.APNSSandboxURL, base.RootCAs = apns.URL(), apns.URL(), apns.RootCAs()
	p := startPool(t, base, 10, 0, nil)
	at := newAPNsTenant(t, testTopic, testKeyID, testTeamID)
	apns.TrustKey(testKeyID, testTeamID, &at.key.key.PublicKey)

	pushOnceAfter503 := func(d *Dispatcher) {
		t.Helper()
		apns.Script(testToken, dispatchtest.Answer{Status: 503}, dispatchtest.Answer{})
		if err := mustSender(t, d, TypeAPNS).Send(t.Context(), testToken, visible()); err != nil {
			t.Fatalf("push after one 503: %v", err)
		}
	}
	pushOnceAfter503(mustGet(t, p, "wallet-a", 1, at.creds))
	pushOnceAfter503(mustGet(t, p, "wallet-b", 1, at.creds))
	if got := p.Retries(); got != 2 {
		t.Fatalf("Pool.Retries = %d after one retry in each of two tenants; want 2", got)
	}
	pushOnceAfter503(mustGet(t, p, "wallet-a", 2, at.creds)) // version 1 is retired
	if got := p.Retries(); got != 3 {
		t.Fatalf("Pool.Retries = %d after a credential change; want 3 (the retired Dispatcher's retry kept)", got)
	}
	if got := p.RetriesRefused(); got != 0 {
		t.Fatalf("Pool.RetriesRefused = %d; want 0", got)
	}
}
