package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"push-server/internal/deadline"
)

// RedisConfig configures NewRedis. Zero fields take the defaults below.
type RedisConfig struct {
	// URL is the primary (REDIS_URL): a redis:// or rediss:// URL, as
	// parsed by rueidis.ParseURL, or several separated by commas. Every
	// write and every dedup record goes to it. A single address that is not
	// a cluster node is used as one server; a cluster node (any one serves
	// as the seed) makes the store a cluster client. With several URLs,
	// credentials and options come from the first; the others only add
	// seed addresses, and they must be nodes of one cluster.
	URL string
	// ReplicaURL, when set, is a read replica of URL's server
	// (REDIS_REPLICA_URL), typically one in this process's region. Look-ups
	// are served from it, with client-side caching; see Redis for the
	// consistency this gives. It is not supported with a cluster URL.
	ReplicaURL string
	// KeyPrefix starts every key; default "ps:". It must not contain '{' or
	// '}', which would change the keys' hash slots. Tests use a random one.
	KeyPrefix string
	// CacheTTL bounds how long a look-up answer may be served from the
	// client-side cache; default 1m. Invalidation normally drops an entry
	// much sooner (see Redis).
	CacheTTL time.Duration
	// Timeout bounds each Store method call, connecting, and every wait for
	// a reply on a connection; default 2s. A store that does not answer
	// within it gives ErrUnavailable rather than hanging a request. With a
	// replica, a look-up gives the replica half of it before asking the
	// primary.
	Timeout time.Duration
	// CacheSize bounds the client-side cache of each connection, in bytes
	// (REDIS_CACHE_SIZE); default 16 MiB. rueidis' own default, 128 MiB a
	// connection, let a million cached clients push the server past
	// 290 MB RSS, and 32 MiB still to 168 MB (16 MiB: 114 MB; BENCHMARKS.md;
	// rueidis counts about a third of what its entries really hold); past
	// the bound the least recently used entries go and are read from Redis
	// again.
	CacheSize int
	// MaxFlushDelay lets each connection's writer wait up to this long for
	// the commands of concurrent requests before it writes them in one
	// system call (REDIS_MAX_FLUSH_DELAY; rueidis' MaxFlushDelay). Zero
	// writes as soon as a command is queued.
	MaxFlushDelay time.Duration
	// OnLostCommits, when set, hears of delivered marks written behind
	// their sends (CommitBehind) that will never be written: n marks and
	// why. A mark Redis does not take is kept and written again once Redis
	// answers; it is lost only past the bound of kept marks (100,000), or
	// when Close finds Redis still away. A lost mark's claim expires after
	// the lease, and a relay's retry is then delivered again. It is called
	// from the store's flusher and from sends (a Reserve that carried the
	// marks), so it must return quickly.
	OnLostCommits func(n int, err error)
	// ClientTTL, when positive, makes a registration expire ClientTTL
	// after it was last registered or looked up (CLIENT_TTL): the record
	// and its token entry are written with that expiry, and a look-up
	// extends both once a tenth of the TTL has passed since the record's
	// stamp (refreshDue), so a client expires between 0.9 and 1 ClientTTL
	// after its last send, and sends cost a write at most ten times per
	// TTL per client. Zero: registrations never expire.
	ClientTTL time.Duration
}

// Defaults for RedisConfig's zero fields.
const (
	DefaultCacheSize = 16 << 20
	DefaultKeyPrefix = "ps:"
	DefaultCacheTTL  = time.Minute
	DefaultTimeout   = 2 * time.Second
)

// Redis is a Store on Redis (≥ 7.0), standalone or cluster, through rueidis
// with client-side caching for look-ups.
//
// Key layout (P is the key prefix, T the tenant, spelled by appendTenant):
//
//	P c:{T/<id>}               client record: one value, see record.go
//	P t:{T/<hex sha256(token)>} token owner index: 8-byte nonce + client id
//	P d:{T/<id>}:<message id>  dedup: "p:<nonce>" while reserved, "d" once delivered
//	P tenant:{T}               tenant record (HASH), see redis_tenant.go
//	P rl:{<key>}               rate-limit counter of the current window
//
// Every multi-key step touches one key, or keys of one hash tag, so the
// layout works unchanged on Redis Cluster. The token index is the authority:
// a client exists only while the owner entry of its record's token names it,
// so a token move needs no cross-slot transaction. Register takes the token
// (SET … GET), writes the record (SET … GET), then, with compare-and-delete
// scripts, retires the token's previous owner's record if it is still the
// registration that owned the token, and releases this id's previous token
// if the index still names this registration. The registration nonce in both
// values is what "still" compares, so an old cleanup never deletes a newer
// registration's key. A record whose token was taken before the record was
// written stays behind unreachable until its id registers or unregisters
// again; it never looks up. A caller that proved no key must not move a
// bound client's token nor rewrite a bound id: it reads its own record and
// the token's owner's first, refuses writing nothing when either is bound,
// and takes the token only while its entry is still the one it read
// (takeTokenUnproved). The record write is a script that refuses too, when
// the stored record is bound (Client.Bound) and the caller did not prove
// the key; that refusal, reached only when the id was bound after the
// first read, gives the token just taken back to its previous owner if
// nobody took it since. Unregister checks the same flag in the script that
// deletes the record.
//
// Cache coherence: every connection tracks the keys it read (RESP3 CLIENT
// TRACKING, OPTIN) and Redis pushes invalidations on change. After a write,
// Register and Unregister wait for one more reply on the connections they
// wrote on, which Redis sends after the write's invalidation, so a Lookup on
// the same Redis value right after they return is never stale. Another Redis
// value on the same server gets the invalidation pushed asynchronously: it is
// normally applied within a round trip, and the tests bound it by 1s; if a
// connection breaks, its whole cache is dropped with it. CacheTTL bounds
// staleness should an invalidation ever be lost.
//
// Replica (RedisConfig.ReplicaURL): look-ups read the replica through its
// own client-side cache; the replica pushes invalidations as it applies the
// replication stream. A client the replica does not know is looked up again
// on the primary, so a new registration is visible at once; a change to a
// known client (token move, unregister, new token) is visible after the
// replication lag. Register and Unregister wait, within the timeout, until
// the replica has applied their writes, so this store reads its own writes.
// Dedup records live on the primary only: Reserve, Commit and Release are
// never answered by a replica, so a relay retrying through another region
// finds the first region's mark. When the replica fails, look-ups fall back
// to the primary and the replica is tried again after a second; when the
// primary fails, look-ups of known clients keep answering from the replica
// (a miss then answers ErrClientNotFound unconfirmed) while every write,
// Reserve included, answers ErrUnavailable within the timeout. The replica
// may be down when NewRedis runs: it is connected in the background.
// docs/redis.md has the whole model.
//
// All methods are safe for concurrent use.
type Redis struct {
	c        rueidis.Client // the primary
	prefix   string
	cacheTTL time.Duration
	nonces   *nonceSource
	// deadlines bounds each call by timeout (see deadline.Shared);
	// replicaDeadlines by the half of it a look-up gives the replica.
	deadlines, replicaDeadlines *deadline.Shared
	// clientKeys and tokenKeys make a look-up's keys without allocating.
	clientKeys, tokenKeys *keyInterner
	// millis spells the dedup records' expiries.
	millis millisArgs
	// clientTTL is RedisConfig.ClientTTL; clientTTLArg spells it in ms for
	// the scripts ("0": none).
	clientTTL    time.Duration
	clientTTLArg string

	// replica is the replica's client, nil until connected or without
	// ReplicaURL. replicaDownUntil and primaryDownUntil (unix ns) skip a
	// server that just failed, so an outage costs one timeout a second
	// rather than one per look-up.
	replica          atomic.Pointer[replicaClient]
	replicaDownUntil atomic.Int64
	primaryDownUntil atomic.Int64

	// behind queues the delivered marks of CommitBehind; onLostCommits is
	// RedisConfig.OnLostCommits.
	behind        behindQueue
	onLostCommits func(n int, err error)
	// carryMarks sends queued marks with each Reserve (not on a cluster;
	// see reserveWithBehind).
	carryMarks bool
	// front answers repeated look-ups on the primary without asking
	// rueidis (see frontCache); its invalidations come from the primary's
	// connections.
	front *frontCache

	stop      chan struct{} // closed by Close; ends the replica connector and flushBehind
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// replicaClient boxes the interface for atomic.Pointer.
type replicaClient struct{ c rueidis.Client }

// retryDownAfter is how long a server that failed a look-up is skipped.
const retryDownAfter = time.Second

var _ Store = (*Redis)(nil)

// compareAndDeleteScript deletes KEYS[1] if its value is ARGV[1]. It serves
// both the token index and the dedup records.
var compareAndDeleteScript = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// NewRedis connects to cfg.URL. The connection is made before it returns; a
// server that cannot be reached gives an error wrapping ErrUnavailable. A
// replica (cfg.ReplicaURL) that cannot be reached yet is connected in the
// background; until then look-ups read the primary.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return nil, fmt.Errorf("redis key prefix %q: must not contain '{' or '}', which select hash slots", cfg.KeyPrefix)
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	opt, err := parseRedisURLs(cfg.URL)
	if err != nil {
		return nil, err
	}
	var replicaOpt rueidis.ClientOption
	if cfg.ReplicaURL != "" {
		if replicaOpt, err = rueidis.ParseURL(cfg.ReplicaURL); err != nil {
			// The URL may hold a password, so it is not repeated here.
			return nil, fmt.Errorf("cannot parse redis replica URL: %v", err)
		}
		// A replica is one server: skip the CLUSTER SLOTS probe.
		replicaOpt.ForceSingleClient = true
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	opt.CacheSizeEachConn = cfg.CacheSize
	replicaOpt.CacheSizeEachConn = cfg.CacheSize
	opt.MaxFlushDelay = cfg.MaxFlushDelay
	replicaOpt.MaxFlushDelay = cfg.MaxFlushDelay
	front := newFrontCache(maxInternedKeys)
	opt = tuneOption(opt, cfg.Timeout)
	opt.OnInvalidations = front.onInvalidations
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to redis: %v: %w", err, ErrUnavailable)
	}
	if cfg.ReplicaURL != "" && c.Mode() == rueidis.ClientModeCluster {
		c.Close()
		// A cluster's shards each have their own replicas; reading from the
		// local ones would need a per-shard choice (rueidis SendToReplicas
		// with ReadNodeSelector), which is not built.
		return nil, errors.New("redis replica URL is set but the redis URL is a cluster: a replica URL is supported with a single primary only")
	}
	r := &Redis{
		c:                c,
		prefix:           cfg.KeyPrefix,
		cacheTTL:         cfg.CacheTTL,
		deadlines:        deadline.New(cfg.Timeout),
		replicaDeadlines: deadline.New(cfg.Timeout / 2),
		clientKeys:       newKeyInterner(maxInternedKeys),
		tokenKeys:        newKeyInterner(maxInternedKeys),
		nonces:           newNonceSource(),
		onLostCommits:    cfg.OnLostCommits,
		clientTTL:        max(cfg.ClientTTL, 0),
		clientTTLArg:     strconv.FormatInt(max(cfg.ClientTTL, 0).Milliseconds(), 10),
		behind:           newBehindQueue(),
		carryMarks:       c.Mode() != rueidis.ClientModeCluster,
		front:            front,
		stop:             make(chan struct{}),
	}
	r.bg.Go(r.flushBehind)
	if cfg.ReplicaURL != "" {
		// The replica gets half the timeout, so that a silent replica leaves
		// a look-up time to ask the primary.
		replicaOpt = tuneOption(replicaOpt, cfg.Timeout/2)
		if rc, err := rueidis.NewClient(replicaOpt); err == nil {
			r.replica.Store(&replicaClient{rc})
		} else {
			r.bg.Go(func() { r.connectReplica(replicaOpt) })
		}
	}
	return r, nil
}

// parseRedisURLs parses one URL or several separated by commas into one
// option: the first URL's, with the others' addresses added as seeds.
func parseRedisURLs(urls string) (rueidis.ClientOption, error) {
	parts := strings.Split(urls, ",")
	opt, err := rueidis.ParseURL(strings.TrimSpace(parts[0]))
	if err != nil {
		// The URL may hold a password, so it is not repeated here.
		return opt, fmt.Errorf("cannot parse redis URL: %v", err)
	}
	for i, p := range parts[1:] {
		o, err := rueidis.ParseURL(strings.TrimSpace(p))
		if err != nil {
			return opt, fmt.Errorf("cannot parse redis URL number %d of %d: %v", i+2, len(parts), err)
		}
		opt.InitAddress = append(opt.InitAddress, o.InitAddress...)
	}
	return opt, nil
}

// tuneOption sets what every connection of the store needs.
func tuneOption(opt rueidis.ClientOption, timeout time.Duration) rueidis.ClientOption {
	opt.Dialer.Timeout = timeout
	// Also the deadline of the connection handshake and of waiting for a
	// pipelined reply, so a server that accepts but never answers cannot
	// hang start-up or a request.
	opt.ConnWriteTimeout = timeout
	// A set OnInvalidations makes rueidis start each connection's reading
	// goroutine at once, so invalidations pushed by Redis are applied while
	// this process only serves cache hits (otherwise they would wait in the
	// socket until the next command on that connection).
	opt.OnInvalidations = func([]rueidis.RedisMessage) {}
	// One connection per server. rueidis sends a cached read to the
	// connection picked by the key's slot but a plain command to a random
	// one, so with several connections a write's invalidation could reach
	// the reading connection after Register returned (seen in
	// LookupAfterWriteIsFresh). On one connection, settle's replies come
	// after the invalidations. Auto-pipelining keeps one connection busy.
	opt.PipelineMultiplex = -1
	return opt
}

// connectReplica retries connecting to the replica every retryDownAfter
// until it succeeds or the store is closed.
func (r *Redis) connectReplica(opt rueidis.ClientOption) {
	t := time.NewTicker(retryDownAfter)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		rc, err := rueidis.NewClient(opt)
		if err != nil {
			continue
		}
		select {
		case <-r.stop:
			rc.Close()
		default:
			r.replica.Store(&replicaClient{rc})
		}
		return
	}
}

// readReplica returns the replica's client, or nil when there is none or
// it failed within the last retryDownAfter.
func (r *Redis) readReplica() rueidis.Client {
	rc := r.replica.Load()
	if rc == nil || time.Now().UnixNano() < r.replicaDownUntil.Load() {
		return nil
	}
	return rc.c
}

// unavailable wraps ErrUnavailable with what failed and the cause's text; the
// cause itself is not wrapped, so no rueidis type leaves the package.
func unavailable(what string, err error) error {
	return fmt.Errorf("cannot %s: %v: %w", what, err, ErrUnavailable)
}

// maxInternedKeys bounds each key interner: 16k client and 16k token keys,
// about 2 MB together for ids of usual length, 10–12 MB at worst (255-byte
// ids in 64-byte tenants).
const maxInternedKeys = 1 << 14

// keyBufLen fits the keys of usual ids in a stack buffer; longer ones
// allocate as they grow.
const keyBufLen = 160

func (r *Redis) clientKey(tenant, id string) string {
	var buf [keyBufLen]byte
	b := append(buf[:0], r.prefix...)
	b = append(b, "c:{"...)
	b = appendTenant(b, tenant)
	b = append(b, '/')
	b = append(b, id...)
	b = append(b, '}')
	return r.clientKeys.intern(b)
}

func (r *Redis) tokenKey(tenant string, hash *[sha256.Size]byte) string {
	var buf [keyBufLen]byte
	b := append(buf[:0], r.prefix...)
	b = append(b, "t:{"...)
	b = appendTenant(b, tenant)
	b = append(b, '/')
	b = hex.AppendEncode(b, hash[:])
	b = append(b, '}')
	return r.tokenKeys.intern(b)
}

// dedupKey shares the client key's hash tag: both start "{T/<id>", and the
// tag ends at the first '}', which is the same byte in both even when the id
// contains one.
func (r *Redis) dedupKey(tenant, id, messageID string) string {
	b := make([]byte, 0, len(r.prefix)+len(tenant)+len(id)+len(messageID)+6)
	return rueidis.BinaryString(r.appendDedupKey(b, tenant, id, messageID))
}

func (r *Redis) appendDedupKey(b []byte, tenant, id, messageID string) []byte {
	b = append(b, r.prefix...)
	b = append(b, "d:{"...)
	b = appendTenant(b, tenant)
	b = append(b, '/')
	b = append(b, id...)
	b = append(b, "}:"...)
	return append(b, messageID...)
}

// settle waits for one reply per written key on the connection that wrote
// it. Redis sends a write's invalidation right after the write's reply, so
// once these replies arrive the invalidations have been applied to this
// process's cache and a following Lookup cannot see the old value. Its error
// is ignored: the writes are done, and a broken connection drops its cache.
func (r *Redis) settle(ctx context.Context, keys []string) {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = r.c.B().Exists().Key(k).Build()
	}
	r.c.DoMulti(ctx, cmds...)
	// The primary just answered: a look-up miss may ask it again.
	r.primaryDownUntil.Store(0)
	if rc := r.readReplica(); rc != nil {
		r.awaitReplica(ctx, rc)
	}
}

// awaitReplica waits until the replica has applied everything the primary
// had written when asked, so that the invalidations of this store's writes
// have reached the replica connection's cache (they precede the replica's
// reply on that one connection) and this store's next Lookup, answered by
// the replica, is not stale. It gives up, silently, when the replica's link
// to the primary is down (it will not catch up soon), on any error, or when
// ctx ends: the writes are done either way.
func (r *Redis) awaitReplica(ctx context.Context, rc rueidis.Client) {
	info, err := r.c.Do(ctx, r.c.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		return
	}
	target, ok := infoInt(info, "master_repl_offset")
	if !ok {
		return
	}
	wait := time.Millisecond
	for {
		info, err := rc.Do(ctx, rc.B().Info().Section("replication").Build()).ToString()
		if err != nil || infoField(info, "master_link_status") != "up" {
			return
		}
		if applied, ok := infoInt(info, "slave_repl_offset"); !ok || applied >= target {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// infoField returns the value of "name:value" in an INFO reply, or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func infoInt(info, name string) (int64, bool) {
	n, err := strconv.ParseInt(infoField(info, name), 10, 64)
	return n, err == nil
}

// durationMs rounds d up to whole milliseconds, at least 1, since PX 0 is an
// error.
func durationMs(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return max(ms, 1)
}

// closed reports whether Close has begun. Every Store, Tenants and Limiter
// method asks it first, because rueidis alone does not make a closed store
// refuse: a cluster client closes its connections in goroutines after Close
// returns, so a command right after Close can still be answered (Ping was,
// once in five runs of the Cluster contract suite; CreateTenant created
// its tenant in 10 runs of 10), and the front cache and rueidis'
// client-side cache are dropped only when a connection's reader ends, so a
// cached Lookup was answered after Close even on one server.
func (r *Redis) closed() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if r.closed() {
		return unavailable("ping redis", errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	if err := r.c.Do(ctx, r.c.B().Ping().Build()).Error(); err != nil {
		return unavailable("ping redis", err)
	}
	return nil
}

// Close implements Store. It may be called more than once; later calls to
// other methods give ErrUnavailable.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.bg.Wait()
		if rc := r.replica.Load(); rc != nil {
			rc.c.Close()
		}
		r.c.Close()
	})
	return nil
}
