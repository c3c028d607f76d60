package dispatch

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPoolSize is the tenant bound NewPool uses when given max < 1.
const DefaultPoolSize = 1000

// ErrPoolClosed is returned by Pool.Get after Pool.Close.
var ErrPoolClosed = errors.New("dispatch: tenant pool closed")

// Pool holds one Dispatcher per tenant, built once per credential version
// and reused by every push of that tenant: one HTTP/2 connection pool per
// provider host, one APNs provider token re-signed every 50 minutes, one
// OAuth access token per hour. Building per push would dial and sign each
// time, which APNs answers with TooManyProviderTokenUpdates.
//
// It holds at most max tenants, evicting the least recently used, and
// evicts tenants unused for longer than idle. A Dispatcher leaving the pool
// (evicted, replaced by a new version, removed, or at Close) has its
// connections closed. A push still running on it finishes; its connection,
// idle afterwards, is closed by a second Close twice the push timeout
// later, so a caller that fetched the Dispatcher just before it left does
// not leak a connection.
//
// Pool is safe for concurrent use. Get of a built Dispatcher takes a read
// lock and allocates nothing.
type Pool struct {
	base  Config
	max   int
	idle  time.Duration
	grace time.Duration    // between the two Closes of a retired Dispatcher
	now   func() time.Time // time.Now; tests move it

	mu      sync.RWMutex
	tenants map[string]*poolEntry // by tenant id; guarded by mu
	closed  bool                  // guarded by mu

	retMu     sync.Mutex
	retiring  map[*Dispatcher]*time.Timer // second Close pending; guarded by retMu
	retClosed bool                        // Close ran: no more timers; guarded by retMu

	stop chan struct{} // closed by Close to end the janitor and the watcher
	done chan struct{} // closed when the janitor returned; nil without one

	watching bool           // WatchStale ran; guarded by mu
	watchers sync.WaitGroup // the WatchStale goroutine, waited for by Close

	// retries counts every tenant Dispatcher's retries, including those
	// of Dispatchers already retired (each keeps its own budget).
	retries retryCounts
}

// poolEntry is one tenant's Dispatcher for one incarnation and credential
// version. d and err are written once, before ready is closed, and only
// read after.
type poolEntry struct {
	incarnation uint64
	version     uint64
	ready       chan struct{}
	d           *Dispatcher
	err         error
	lastUsed    atomic.Int64 // Pool.now in unix nanoseconds; for LRU and idle
	retired     atomic.Bool  // its Dispatcher was closed for leaving the pool
}

// NewPool returns an empty Pool. base carries the settings every tenant
// shares (APNSURL, APNSSandboxURL, FCMURL, FCMTokenURIs,
// WebPushAllowedOrigins, WebPushTTL, Timeout,
// MaxAttempts, MaxRetriesPerSecond, RetryDelay, RootCAs, Logger); its
// Credentials are ignored. Tenants' credentials are untrusted, so a
// nil FCMTokenURIs means GoogleTokenURIs, never "any". Each tenant's
// Dispatcher gets its own retry budget.
// maxTenants < 1
// means DefaultPoolSize; idle <= 0 turns idle eviction off. Close the Pool
// when done.
func NewPool(base Config, maxTenants int, idle time.Duration) *Pool {
	return newPool(base, maxTenants, idle, time.Now)
}

// newPool is NewPool with a clock, for tests.
func newPool(base Config, maxTenants int, idle time.Duration, now func() time.Time) *Pool {
	if maxTenants < 1 {
		maxTenants = DefaultPoolSize
	}
	timeout := base.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if base.FCMTokenURIs == nil {
		base.FCMTokenURIs = googleOnly
	}
	if base.Proxy == nil {
		// Read once: every tenant's providers use the same egress.
		base.Proxy = ProxyFromEnvironment()
	}
	p := &Pool{
		base:     withCredentials(base, &Config{}),
		max:      maxTenants,
		idle:     idle,
		grace:    2 * timeout,
		now:      now,
		tenants:  make(map[string]*poolEntry),
		retiring: make(map[*Dispatcher]*time.Timer),
		stop:     make(chan struct{}),
	}
	if idle > 0 {
		p.done = make(chan struct{})
		go p.janitor(min(max(idle/2, 10*time.Millisecond), time.Minute))
	}
	return p
}

// Retries returns how many retries the tenants' retry budgets granted, over
// the Pool's life, for metrics (see Dispatcher.Retries).
func (p *Pool) Retries() uint64 { return p.retries.granted.Load() }

// RetriesRefused returns how many retries the tenants' retry budgets
// refused, over the Pool's life (see Dispatcher.RetriesRefused).
func (p *Pool) RetriesRefused() uint64 { return p.retries.refused.Load() }

// TokenURIs returns the token endpoints tenants' service accounts may
// name, for checking an upload against the list its pushes will use.
func (p *Pool) TokenURIs() *TokenURIs { return p.base.FCMTokenURIs }

// Get returns the tenant's Dispatcher for this incarnation and credential
// version. The
// first Get of a version calls load for the tenant's credentials (the
// caller decrypts them there, so a push to a built tenant decrypts
// nothing) and builds the Dispatcher from them: only the Config's
// Credentials are used, over the Pool's base. Concurrent Gets of a version not built yet wait for one
// load and build. When incarnation or version differs from the one held,
// the held Dispatcher is replaced and closed: pass the tenant's current
// ones, as they are compared for equality only (callers alternating
// between two versions would rebuild each time). The incarnation tells a
// tenant deleted and created again under the same id, whose versions start
// over, from the one the held Dispatcher was built for.
//
// New's error (stored credentials that no longer build) is kept for that
// version, so a broken tenant costs one parse, not one per push. load's
// error is not kept: the next Get calls load again.
func (p *Pool) Get(tenantID string, incarnation, version uint64, load func() (Config, error)) (*Dispatcher, error) {
	if e := p.entry(tenantID, incarnation, version); e != nil {
		<-e.ready
		return e.d, e.err
	}
	return p.build(tenantID, incarnation, version, load)
}

// Lookup returns the tenant's Dispatcher for incarnation and version when
// it is built and working, without building anything, so the caller
// decrypts the tenant's credentials for Get only on a miss.
func (p *Pool) Lookup(tenantID string, incarnation, version uint64) (*Dispatcher, bool) {
	e := p.entry(tenantID, incarnation, version)
	if e == nil {
		return nil, false
	}
	select {
	case <-e.ready:
		return e.d, e.d != nil
	default:
		return nil, false
	}
}

// entry returns the tenant's entry when it is for incarnation and version,
// marking it used. This is the hot path: a read lock, no allocation.
func (p *Pool) entry(tenantID string, incarnation, version uint64) *poolEntry {
	p.mu.RLock()
	e := p.tenants[tenantID]
	p.mu.RUnlock()
	if e == nil || e.incarnation != incarnation || e.version != version {
		return nil
	}
	e.lastUsed.Store(p.now().UnixNano())
	return e
}

// build makes the tenant's entry for incarnation and version, unless
// another Get did first, and builds its Dispatcher without holding the
// lock.
func (p *Pool) build(tenantID string, incarnation, version uint64, load func() (Config, error)) (*Dispatcher, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	now := p.now().UnixNano()
	old := p.tenants[tenantID]
	if old != nil && old.incarnation == incarnation && old.version == version {
		p.mu.Unlock()
		old.lastUsed.Store(now)
		<-old.ready
		return old.d, old.err
	}
	e := &poolEntry{incarnation: incarnation, version: version, ready: make(chan struct{})}
	e.lastUsed.Store(now)
	p.tenants[tenantID] = e
	var evicted *poolEntry
	if old == nil && len(p.tenants) > p.max {
		evicted = p.evictLRULocked(tenantID)
	}
	p.mu.Unlock()
	p.retire(old)
	p.retire(evicted)

	loaded := p.fill(e, tenantID, load)
	// The entry may have left the pool while it was built (replaced,
	// evicted, removed, Close): its Dispatcher then has no owner to close
	// it. retire knows not to close it twice.
	p.mu.Lock()
	current := !p.closed && p.tenants[tenantID] == e
	if current && !loaded {
		delete(p.tenants, tenantID) // the next Get loads again
	}
	p.mu.Unlock()
	if !current {
		p.retire(e)
	}
	return e.d, e.err
}

// errBuildPanicked is what waiters see if New panicked, instead of hanging.
var errBuildPanicked = errors.New("dispatch: building the tenant's providers panicked")

// fill loads the credentials and builds e's Dispatcher, then releases e's
// waiters, even when load or New panics. It reports whether load
// succeeded.
func (p *Pool) fill(e *poolEntry, tenantID string, load func() (Config, error)) bool {
	e.err = errBuildPanicked
	defer close(e.ready)
	creds, err := load()
	if err != nil {
		e.err = fmt.Errorf("cannot load the credentials of tenant %s: %w", tenantID, err)
		return false
	}
	cfg := withCredentials(p.base, &creds)
	logger := p.base.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// A tenant's misconfiguration line must say which tenant.
	cfg.Logger = logger.With("tenant", tenantID)
	cfg.retryCounts = &p.retries
	e.d, e.err = New(cfg)
	return true
}

// withCredentials returns base with the Credentials of creds.
func withCredentials(base Config, creds *Config) Config {
	base.Credentials = creds.Credentials
	return base
}

// evictLRULocked removes and returns the least recently used entry other
// than keep's. An O(n) scan, but it runs only when a new tenant arrives at
// a full pool, and it lets Get mark use with one atomic store instead of
// reordering a list under the write lock.
func (p *Pool) evictLRULocked(keep string) *poolEntry {
	var (
		oldestID string
		oldest   *poolEntry
	)
	for id, e := range p.tenants {
		if id != keep && (oldest == nil || e.lastUsed.Load() < oldest.lastUsed.Load()) {
			oldestID, oldest = id, e
		}
	}
	if oldest != nil {
		delete(p.tenants, oldestID)
	}
	return oldest
}

// Remove drops the tenant's Dispatcher, if any, and closes it: for a
// deleted tenant, whose connections should not wait for idle eviction. A
// tenant the pool does not hold costs a read lock only, so callers may
// call it for every request that names an unknown tenant.
func (p *Pool) Remove(tenantID string) {
	p.mu.RLock()
	_, held := p.tenants[tenantID]
	p.mu.RUnlock()
	if !held {
		return
	}
	p.mu.Lock()
	e := p.tenants[tenantID]
	delete(p.tenants, tenantID)
	p.mu.Unlock()
	p.retire(e)
}

// WatchStale starts a goroutine that, every period until Close, asks
// stale about each tenant the pool holds (with the incarnation its
// Dispatcher was built for) and removes and closes those it says are
// stale: for a tenant deleted through another instance, whose clients
// this instance would otherwise keep until idle eviction. stale runs
// without the pool's lock, one tenant at a time. Later calls do nothing.
func (p *Pool) WatchStale(period time.Duration, stale func(tenantID string, incarnation uint64) bool) {
	p.mu.Lock()
	if p.closed || p.watching || period <= 0 {
		p.mu.Unlock()
		return
	}
	p.watching = true
	p.watchers.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.watchers.Done()
		p.every(period, func() { p.removeStale(stale) })
	}()
}

// removeStale is one round of WatchStale.
func (p *Pool) removeStale(stale func(tenantID string, incarnation uint64) bool) {
	type held struct {
		id string
		e  *poolEntry
	}
	p.mu.RLock()
	all := make([]held, 0, len(p.tenants))
	for id, e := range p.tenants {
		all = append(all, held{id, e})
	}
	p.mu.RUnlock()
	for _, h := range all {
		if !stale(h.id, h.e.incarnation) {
			continue
		}
		p.mu.Lock()
		// Only the entry that was asked about: a newer one built meanwhile
		// is the current tenant's.
		current := p.tenants[h.id] == h.e
		if current {
			delete(p.tenants, h.id)
		}
		p.mu.Unlock()
		if current {
			p.retire(h.e)
		}
	}
}

// Len returns how many tenants the pool holds.
func (p *Pool) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.tenants)
}

// janitor evicts idle tenants every tick until Close.
func (p *Pool) janitor(every time.Duration) {
	defer close(p.done)
	p.every(every, p.evictIdle)
}

// every runs round once a period until Close.
func (p *Pool) every(period time.Duration, round func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			round()
		}
	}
}

// evictIdle removes and closes the tenants unused for longer than idle. It
// looks under the read lock first, so a tick with nothing to evict does
// not stall Get.
func (p *Pool) evictIdle() {
	cutoff := p.now().Add(-p.idle).UnixNano()
	stale := false
	p.mu.RLock()
	for _, e := range p.tenants {
		if e.lastUsed.Load() < cutoff {
			stale = true
			break
		}
	}
	p.mu.RUnlock()
	if !stale {
		return
	}
	var gone []*poolEntry
	p.mu.Lock()
	for id, e := range p.tenants {
		if e.lastUsed.Load() < cutoff {
			delete(p.tenants, id)
			gone = append(gone, e)
		}
	}
	p.mu.Unlock()
	for _, e := range gone {
		p.retire(e)
	}
}

// retire closes the Dispatcher of an entry that left the pool, once, and
// schedules the second Close (see Pool). An entry still building is left
// to its builder, which retires it when it finds the entry gone.
func (p *Pool) retire(e *poolEntry) {
	if e == nil {
		return
	}
	select {
	case <-e.ready:
	default:
		return
	}
	if e.d == nil || !e.retired.CompareAndSwap(false, true) {
		return
	}
	d := e.d
	_ = d.Close()
	p.retMu.Lock()
	defer p.retMu.Unlock()
	if p.retClosed {
		return // shutting down: nothing is in flight any more
	}
	p.retiring[d] = time.AfterFunc(p.grace, func() {
		p.retMu.Lock()
		delete(p.retiring, d)
		p.retMu.Unlock()
		_ = d.Close()
	})
}

// Close closes every Dispatcher of the pool, including retired ones whose
// second Close is pending, and stops idle eviction. Get fails with
// ErrPoolClosed afterwards. Call it after the pushes have drained. It
// returns nil; the error is there for io.Closer.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	entries := p.tenants
	p.tenants = nil
	p.mu.Unlock()
	close(p.stop)
	if p.done != nil {
		<-p.done
	}
	p.watchers.Wait()

	p.retMu.Lock()
	p.retClosed = true
	pending := p.retiring
	p.retiring = nil
	p.retMu.Unlock()
	for d, t := range pending {
		if t.Stop() {
			_ = d.Close()
		}
	}
	for _, e := range entries {
		p.retire(e)
	}
	return nil
}
