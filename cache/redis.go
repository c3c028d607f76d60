package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
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
	// deadlines bounds each call by timeout (see deadlines);
	// replicaDeadlines by the half of it a look-up gives the replica.
	deadlines, replicaDeadlines *deadlines
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

	stop      chan struct{} // closed by Close; ends the replica connector and flushBehind
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// replicaClient boxes the interface for atomic.Pointer.
type replicaClient struct{ c rueidis.Client }

// retryDownAfter is how long a server that failed a look-up is skipped.
const retryDownAfter = time.Second

var _ Store = (*Redis)(nil)

// recordScript is a script over a client record, with the record's parts
// named as recordLua spells them.
func recordScript(src string) *rueidis.Lua {
	return rueidis.NewLuaScript(recordLua.Replace(src))
}

// Scripts run on one key each, so they work in any slot of a cluster.
var (
	// retireScript deletes KEYS[1], a client record, if its registration
	// nonce is ARGV[1].
	retireScript = recordScript(`local v = redis.call('GET', KEYS[1])
if v and string.sub(v, $NONCE) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
	// retireTokenScript deletes KEYS[1], a client record, if its token hash
	// is ARGV[1], and returns the record it deleted.
	retireTokenScript = recordScript(`local v = redis.call('GET', KEYS[1])
if v and string.sub(v, $HASH) == ARGV[1] then redis.call('DEL', KEYS[1]) return v end
return false`)
	// writeRecordScript sets KEYS[1], a client record, to ARGV[1] (to
	// expire after ARGV[3] ms unless that is "0") and returns the record it
	// replaced, unless that record is bound (flagBound) and ARGV[2] is "0"
	// (the caller did not prove the key): then it writes nothing and
	// returns 0.
	writeRecordScript = recordScript(`local v = redis.call('GET', KEYS[1])
if ARGV[2] == '0' and v and string.len(v) >= $FLAGS and math.floor(string.byte(v, $FLAGS) / $BOUND) % 2 == 1 then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
return v`)
	// refreshRecordScript re-stamps KEYS[1], a client record, with ARGV[2]
	// (8 bytes, see record.go; a version 1 record becomes version 2) and
	// sets it to expire after ARGV[3] ms, if its registration nonce is
	// ARGV[1].
	refreshRecordScript = recordScript(`local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, $NONCE) ~= ARGV[1] then return 0 end
local rest
if string.byte(v, $VERSION) == $STAMPED then rest = string.sub(v, $STAMPEDTAIL) else rest = string.sub(v, $TAIL) end
redis.call('SET', KEYS[1], string.char($STAMPED) .. string.sub(v, $HEAD) .. ARGV[2] .. rest, 'PX', ARGV[3])
return 1`)
	// refreshOwnerScript sets KEYS[1], a token's owner entry, to expire
	// after ARGV[2] ms if it is ARGV[1].
	refreshOwnerScript = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	// deleteRecordScript deletes KEYS[1], a client record, and returns it,
	// unless it is bound and ARGV[1] is "0"; then it returns 0.
	deleteRecordScript = recordScript(`local v = redis.call('GET', KEYS[1])
if not v then return false end
if ARGV[1] == '0' and string.len(v) >= $FLAGS and math.floor(string.byte(v, $FLAGS) / $BOUND) % 2 == 1 then return 0 end
redis.call('DEL', KEYS[1])
return v`)
	// restoreOwnerScript sets KEYS[1], a token's owner entry, back to
	// ARGV[2] (deletes it when ARGV[2] is empty) if it still is ARGV[1];
	// with a client TTL (ARGV[3] ms, "0" for none) it expires after it.
	restoreOwnerScript = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)
	// takeOwnerScript sets KEYS[1], a token's owner entry, to ARGV[2] (to
	// expire after ARGV[3] ms unless that is "0") if it still is ARGV[1]
	// ("" for no entry), and returns 1; otherwise 0.
	takeOwnerScript = rueidis.NewLuaScript(`if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)
	// compareAndDeleteScript deletes KEYS[1] if its value is ARGV[1].
	compareAndDeleteScript = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

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
	c, err := rueidis.NewClient(tuneOption(opt, cfg.Timeout))
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
		deadlines:        newDeadlines(cfg.Timeout),
		replicaDeadlines: newDeadlines(cfg.Timeout / 2),
		clientKeys:       newKeyInterner(maxInternedKeys),
		tokenKeys:        newKeyInterner(maxInternedKeys),
		nonces:           newNonceSource(),
		onLostCommits:    cfg.OnLostCommits,
		clientTTL:        max(cfg.ClientTTL, 0),
		clientTTLArg:     strconv.FormatInt(max(cfg.ClientTTL, 0).Milliseconds(), 10),
		behind:           newBehindQueue(),
		carryMarks:       c.Mode() != rueidis.ClientModeCluster,
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

// ownerValue is a token index value: the registration nonce, then the id.
func ownerValue(nonce uint64, id string) string {
	b := make([]byte, 0, 8+len(id))
	b = binary.BigEndian.AppendUint64(b, nonce)
	return rueidis.BinaryString(append(b, id...))
}

// Register implements Store; see Redis for the steps and why they are safe.
func (r *Redis) Register(ctx context.Context, tenant string, c Client) error {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	hash := sha256.Sum256([]byte(c.Token))
	nonce := r.nonces.next()
	var stamp int64
	if r.clientTTL > 0 {
		stamp = time.Now().UnixMilli()
	}
	rec, err := appendRecord(nil, c, nonce, &hash, stamp)
	if err != nil {
		return err
	}
	ck, tk := r.clientKey(tenant, c.ID), r.tokenKey(tenant, &hash)

	var prevOwner []byte
	if c.Bound {
		takeToken := r.c.B().Set().Key(tk).Value(ownerValue(nonce, c.ID)).Get().Build()
		if r.clientTTL > 0 {
			takeToken = r.c.B().Set().Key(tk).Value(ownerValue(nonce, c.ID)).Get().PxMilliseconds(r.clientTTL.Milliseconds()).Build()
		}
		prevOwner, err = r.c.Do(ctx, takeToken).AsBytes()
		if err != nil && !rueidis.IsRedisNil(err) {
			return unavailable(fmt.Sprintf("take token for client %q", c.ID), err)
		}
	} else if prevOwner, err = r.takeTokenUnproved(ctx, tenant, c.ID, ck, tk, &hash, nonce); err != nil {
		return err
	}
	prevRec, refused, err := recordReply(writeRecordScript.Exec(ctx, r.c, []string{ck}, []string{rueidis.BinaryString(rec), provedArg(c.Bound), r.clientTTLArg}))
	if err != nil {
		return unavailable(fmt.Sprintf("write client %q", c.ID), err)
	}
	if refused {
		// The token was taken before the record was refused: give it back
		// to its previous owner, unless another registration took it since.
		owner := ownerValue(nonce, c.ID)
		if err := restoreOwnerScript.Exec(ctx, r.c, []string{tk}, []string{owner, rueidis.BinaryString(prevOwner), r.clientTTLArg}).Error(); err != nil {
			return unavailable(fmt.Sprintf("give back the token client %q was refused", c.ID), err)
		}
		r.settle(ctx, []string{tk})
		return fmt.Errorf("cannot register client %q without proving its key: %w", c.ID, ErrClientBound)
	}
	touched := []string{tk, ck}

	if len(prevOwner) >= 8 && string(prevOwner[8:]) != c.ID {
		// The token was another client's: that client stops existing. Its
		// record is deleted only if it is still the registration that held
		// the token; a newer one has its own token and stays.
		pk := r.clientKey(tenant, string(prevOwner[8:]))
		err := retireScript.Exec(ctx, r.c, []string{pk}, []string{rueidis.BinaryString(prevOwner[:8])}).Error()
		if err != nil {
			return unavailable(fmt.Sprintf("retire the previous owner of client %q's token", c.ID), err)
		}
		touched = append(touched, pk)
	}
	if prevRec != nil {
		// A previous record that does not decode is overwritten now anyway;
		// its token entry, if any, can only be found through it, so it is
		// left behind as unreachable garbage.
		if pr, err := decodeRecord(prevRec); err == nil && pr.hash != hash {
			ok := r.tokenKey(tenant, &pr.hash)
			err := compareAndDeleteScript.Exec(ctx, r.c, []string{ok}, []string{ownerValue(pr.nonce, c.ID)}).Error()
			if err != nil {
				return unavailable(fmt.Sprintf("release client %q's previous token", c.ID), err)
			}
			touched = append(touched, ok)
		}
	}
	r.settle(ctx, touched)
	return nil
}

// maxTokenTakeTries bounds takeTokenUnproved's compare-and-set tries. A try
// fails only when another registration of the same token succeeded since
// the read, so n concurrent registrations of one token need at most n
// tries each; past this many the caller hears ErrUnavailable (retryable).
const maxTokenTakeTries = 64

// takeTokenUnproved is Register's token step for a caller that proved no
// key. It writes nothing when id is bound, or when the token's owner is a
// bound client that holds it: a bound client's token moves only with a
// proof (a wallet re-installed under a new key). The owner is checked
// first and the token is then set only while its entry is still what was
// checked (a compare-and-set, retried when another registration won);
// every registration writes a new nonce into the entry, so an owner that
// became bound since the check has changed it. It returns the entry it
// replaced. The record write still refuses a bound id atomically; the
// check here only keeps such a refusal from touching the token at all.
func (r *Redis) takeTokenUnproved(ctx context.Context, tenant, id, ck, tk string, hash *[sha256.Size]byte, nonce uint64) ([]byte, error) {
	if bound, err := r.boundRecord(ctx, ck, nil); err != nil {
		return nil, unavailable(fmt.Sprintf("read client %q", id), err)
	} else if bound {
		return nil, fmt.Errorf("cannot register client %q without proving its key: %w", id, ErrClientBound)
	}
	owner := ownerValue(nonce, id)
	for range maxTokenTakeTries {
		cur, err := r.c.Do(ctx, r.c.B().Get().Key(tk).Build()).AsBytes()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, unavailable(fmt.Sprintf("read the owner of client %q's token", id), err)
		}
		if len(cur) >= 8 && string(cur[8:]) != id {
			bound, err := r.boundRecord(ctx, r.clientKey(tenant, string(cur[8:])), hash)
			if err != nil {
				return nil, unavailable(fmt.Sprintf("read the owner of client %q's token", id), err)
			}
			if bound {
				return nil, fmt.Errorf("cannot register client %q with the token of a bound client without proving its key: %w", id, ErrClientBound)
			}
		}
		took, err := takeOwnerScript.Exec(ctx, r.c, []string{tk}, []string{rueidis.BinaryString(cur), owner, r.clientTTLArg}).AsInt64()
		if err != nil {
			return nil, unavailable(fmt.Sprintf("take token for client %q", id), err)
		}
		if took == 1 {
			return cur, nil
		}
	}
	return nil, unavailable(fmt.Sprintf("take token for client %q", id),
		fmt.Errorf("its owner changed %d times in a row", maxTokenTakeTries))
}

// boundRecord reads the client record at key past the cache and reports
// whether it is bound and, when hash is not nil, registered with that
// token. A record that does not decode counts as bound when its flag says
// so and hash is nil, as writeRecordScript does; it holds no token.
func (r *Redis) boundRecord(ctx context.Context, key string, hash *[sha256.Size]byte) (bool, error) {
	v, err := r.c.Do(ctx, r.c.B().Get().Key(key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(v) < 2 || v[1]&flagBound == 0 {
		return false, nil
	}
	if hash == nil {
		return true, nil
	}
	rec, err := decodeRecord(v)
	return err == nil && rec.hash == *hash, nil
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

// Unregister implements Store: one script checks whether the client is
// bound and deletes its record.
func (r *Redis) Unregister(ctx context.Context, tenant, id string, proved bool) error {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	ck := r.clientKey(tenant, id)
	prev, refused, err := recordReply(deleteRecordScript.Exec(ctx, r.c, []string{ck}, []string{provedArg(proved)}))
	switch {
	case err != nil:
		return unavailable(fmt.Sprintf("delete client %q", id), err)
	case refused:
		return fmt.Errorf("cannot unregister client %q without proving its key: %w", id, ErrClientBound)
	case prev == nil:
		return nil
	}
	return r.releaseToken(ctx, tenant, id, ck, prev)
}

// provedArg spells whether the caller proved the client's key for the
// record scripts.
func provedArg(proved bool) string {
	if proved {
		return "1"
	}
	return "0"
}

// recordReply reads the reply of writeRecordScript or deleteRecordScript:
// the record it replaced or deleted (nil for none), or refused when the
// record is bound and the caller did not prove the key.
func recordReply(res rueidis.RedisResult) (prev []byte, refused bool, err error) {
	msg, err := res.ToMessage()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if msg.IsInt64() {
		return nil, true, nil
	}
	prev, err = msg.AsBytes()
	return prev, false, err
}

// UnregisterIfToken implements Store: one script compares the record's token
// hash and deletes it, so a registration with another token that lands
// between a look-up and this call survives.
func (r *Redis) UnregisterIfToken(ctx context.Context, tenant, id, token string) (bool, error) {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	ck := r.clientKey(tenant, id)
	hash := sha256.Sum256([]byte(token))
	prev, err := retireTokenScript.Exec(ctx, r.c, []string{ck}, []string{string(hash[:])}).AsBytes()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(fmt.Sprintf("delete client %q if its token is unchanged", id), err)
	}
	return true, r.releaseToken(ctx, tenant, id, ck, prev)
}

// releaseToken finishes removing client id, whose record prev was just
// deleted from ck: its token's owner entry goes too, if it still names this
// registration.
func (r *Redis) releaseToken(ctx context.Context, tenant, id, ck string, prev []byte) error {
	touched := []string{ck}
	if pr, err := decodeRecord(prev); err == nil {
		tk := r.tokenKey(tenant, &pr.hash)
		err := compareAndDeleteScript.Exec(ctx, r.c, []string{tk}, []string{ownerValue(pr.nonce, id)}).Error()
		if err != nil {
			return unavailable(fmt.Sprintf("release client %q's token", id), err)
		}
		touched = append(touched, tk)
	}
	r.settle(ctx, touched)
	return nil
}

// Lookup implements Store. It reads the record, then the owner of its token,
// both through the client-side cache: a hit costs no round trip. With a
// replica, the replica answers first; see Redis for what it may miss.
func (r *Redis) Lookup(parent context.Context, tenant, id string) (Client, error) {
	ctx, cancel := r.deadlines.within(parent)
	defer cancel()

	rc := r.readReplica()
	if rc == nil {
		return r.lookupOn(ctx, r.c, tenant, id)
	}
	// The replica's half of the timeout, shared per tick like the whole (a
	// child of the shared context would make every look-up take its lock).
	rctx, rcancel := r.replicaDeadlines.within(parent)
	c, err := r.lookupOn(rctx, rc, tenant, id)
	rcancel()
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, ErrClientNotFound):
		// The registration may not have reached the replica yet: the
		// primary is asked, unless it just failed. Then the replica's answer
		// is the best there is.
		if time.Now().UnixNano() < r.primaryDownUntil.Load() {
			return Client{}, err
		}
		pc, perr := r.lookupOn(ctx, r.c, tenant, id)
		if errors.Is(perr, ErrUnavailable) {
			r.primaryDownUntil.Store(time.Now().Add(retryDownAfter).UnixNano())
			return Client{}, err
		}
		return pc, perr
	case errors.Is(err, ErrUnavailable):
		r.replicaDownUntil.Store(time.Now().Add(retryDownAfter).UnixNano())
	}
	// Unreachable, or a record that does not decode: the primary decides.
	return r.lookupOn(ctx, r.c, tenant, id)
}

// lookupOn is Lookup on one server's client.
func (r *Redis) lookupOn(ctx context.Context, rc rueidis.Client, tenant, id string) (Client, error) {
	b, err := rc.DoCache(ctx, rc.B().Get().Key(r.clientKey(tenant, id)).Cache(), r.cacheTTL).ToString()
	if rueidis.IsRedisNil(err) {
		return Client{}, ErrClientNotFound
	}
	if err != nil {
		return Client{}, unavailable(fmt.Sprintf("read client %q", id), err)
	}
	// The cached reply's string is immutable: the record decodes in place.
	rec, err := decodeRecordString(b)
	if err != nil {
		return Client{}, fmt.Errorf("cannot read client %q: %w", id, err)
	}
	owner, err := rc.DoCache(ctx, rc.B().Get().Key(r.tokenKey(tenant, &rec.hash)).Cache(), r.cacheTTL).ToString()
	if rueidis.IsRedisNil(err) {
		return Client{}, ErrClientNotFound
	}
	if err != nil {
		return Client{}, unavailable(fmt.Sprintf("read the owner of client %q's token", id), err)
	}
	if len(owner) < 8 || owner[8:] != id {
		// The token moved to another client id.
		return Client{}, ErrClientNotFound
	}
	if r.clientTTL > 0 {
		if now := time.Now().UnixMilli(); refreshDue(rec.stamp, now, r.clientTTL) {
			r.refresh(ctx, tenant, id, &rec, now)
		}
	}
	return Client{ID: id, Type: rec.typ, Token: rec.token, AlwaysRaw: rec.alwaysRaw, Bound: rec.bound}, nil
}

// refresh extends client id's registration by the client TTL from now:
// its record, re-stamped, and its token entry, each only while it is still
// the registration rec was read from. It writes to the primary, also when
// rec came from a replica, and not while the primary is known down (a
// send should not wait a timeout for it). The token entry goes first and
// the record is re-stamped only once the entry was extended: a record
// must never outlive its entry, or, re-stamped, it would not be refreshed
// again before the entry expired. Errors are ignored: the look-up stands,
// and a registration not refreshed only expires sooner.
func (r *Redis) refresh(ctx context.Context, tenant, id string, rec *record, now int64) {
	if time.Now().UnixNano() < r.primaryDownUntil.Load() {
		return
	}
	extended, err := refreshOwnerScript.Exec(ctx, r.c, []string{r.tokenKey(tenant, &rec.hash)},
		[]string{ownerValue(rec.nonce, id), r.clientTTLArg}).AsInt64()
	if err != nil || extended != 1 {
		return
	}
	var nonce, stamp [8]byte
	binary.BigEndian.PutUint64(nonce[:], rec.nonce)
	binary.BigEndian.PutUint64(stamp[:], uint64(now))
	_ = refreshRecordScript.Exec(ctx, r.c, []string{r.clientKey(tenant, id)},
		[]string{string(nonce[:]), string(stamp[:]), r.clientTTLArg}).Error()
}

// Dedup values. A reservation holds "p:<nonce>" with the lease as expiry.
const (
	dedupDelivered     = "d"
	dedupPendingPrefix = "p:"
)

func pendingValue(nonce uint64) string {
	return string(appendPendingValue(nil, nonce))
}

func appendPendingValue(dst []byte, nonce uint64) []byte {
	return strconv.AppendUint(append(dst, dedupPendingPrefix...), nonce, 10)
}

// durationMs rounds d up to whole milliseconds, at least 1, since PX 0 is an
// error.
func durationMs(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return max(ms, 1)
}

// Reserve implements Store with one SET NX GET PX (Redis ≥ 7.0): it claims
// the key and returns what held it, in one atomic step. The key and the
// claim's value share one allocation, the only one a Reserve that finds no
// claim in progress makes: rueidis
// may still hold the command after Do returns (a deadline can end the wait
// before the write), so neither can come from a reused buffer.
//
// A claim found in progress may be a send that is over, its delivered mark
// still queued behind it on another instance (CommitBehind): Reserve looks
// again (lookAgain) before it answers ErrDeliveryInProgress.
func (r *Redis) Reserve(ctx context.Context, tenant, clientID, messageID string, lease time.Duration) (Reservation, error) {
	res, err := r.reserveOnce(ctx, tenant, clientID, messageID, lease)
	if errors.Is(err, ErrDeliveryInProgress) {
		return lookAgain(res, err, func() (Reservation, error) {
			return r.reserveOnce(ctx, tenant, clientID, messageID, lease)
		})
	}
	return res, err
}

// reserveOnce is one attempt of Reserve, within its own deadline.
func (r *Redis) reserveOnce(ctx context.Context, tenant, clientID, messageID string, lease time.Duration) (Reservation, error) {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	nonce := r.nonces.next()
	b := make([]byte, 0, len(r.prefix)+len(tenant)+len(clientID)+len(messageID)+6+len(dedupPendingPrefix)+20)
	b = r.appendDedupKey(b, tenant, clientID, messageID)
	keyLen := len(b)
	b = appendPendingValue(b, nonce)
	kv := rueidis.BinaryString(b)
	k, claim := kv[:keyLen], kv[keyLen:]
	cmd := r.c.B().Arbitrary("SET").Keys(k).Args(claim, "NX", "GET", "PX", r.millis.of(lease)).Build()
	// Marks queued by CommitBehind go first, in the same write.
	result, delivered := r.reserveWithBehind(ctx, k, cmd)
	if delivered {
		return Reservation{}, ErrAlreadyDelivered
	}
	prev, err := result.ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return Reservation{Tenant: tenant, ClientID: clientID, MessageID: messageID, Nonce: nonce, key: k}, nil
	case err != nil:
		return Reservation{}, unavailable(fmt.Sprintf("reserve message %q for client %q", messageID, clientID), err)
	case prev == dedupDelivered:
		return Reservation{}, ErrAlreadyDelivered
	case strings.HasPrefix(prev, dedupPendingPrefix):
		return Reservation{}, ErrDeliveryInProgress
	default:
		return Reservation{}, fmt.Errorf("cannot reserve message %q for client %q: unexpected dedup value %q", messageID, clientID, prev)
	}
}

// Commit implements Store with a plain SET rather than a compare-and-set: the
// message was delivered whoever holds the key now, and "delivered" is the
// strongest state, so overwriting a later claim (possible only after r's
// lease ran out) just turns that claimant's Reserve-time doubt into the
// truth. Its Release then finds the key not its own and leaves it. With the
// key kept from Reserve it allocates nothing.
func (r *Redis) Commit(ctx context.Context, res Reservation, ttl time.Duration) error {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	if err := r.c.Do(ctx, r.commitCommand(r.reservedKey(res), ttl)).Error(); err != nil {
		return unavailable(fmt.Sprintf("commit message %q for client %q", res.MessageID, res.ClientID), err)
	}
	return nil
}

// reservedKey is res's dedup key: the one Reserve built, or, for a
// Reservation made by hand, the one its fields name.
func (r *Redis) reservedKey(res Reservation) string {
	if res.key != "" {
		return res.key
	}
	return r.dedupKey(res.Tenant, res.ClientID, res.MessageID)
}

// Release implements Store: it deletes the key only if it still holds res's
// claim.
func (r *Redis) Release(ctx context.Context, res Reservation) error {
	ctx, cancel := r.deadlines.within(ctx)
	defer cancel()

	if err := compareAndDeleteScript.Exec(ctx, r.c, []string{r.reservedKey(res)}, []string{pendingValue(res.Nonce)}).Error(); err != nil {
		return unavailable(fmt.Sprintf("release message %q for client %q", res.MessageID, res.ClientID), err)
	}
	return nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.deadlines.within(ctx)
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
