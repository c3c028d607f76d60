package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EmbeddedFile is the name of the embedded store's file inside its directory.
const EmbeddedFile = "push-server.db"

// embeddedSweepEvery is how often expired dedup records and abandoned
// reservations are purged; until then they are only ignored.
const embeddedSweepEvery = time.Minute

// Buckets of the embedded store. Keys start with tenantPrefix, so the same id
// or token in two tenants are two keys.
var (
	bucketClients = []byte("clients") // tenantPrefix + id → record (record.go)
	bucketTokens  = []byte("tokens")  // tenantPrefix + sha256(token) → id
	bucketDedup   = []byte("dedup")   // tenantPrefix + uvarint(len(id)) + id + message id → expiry, unix ns, 8 bytes big endian
)

// Embedded is a Store in one bbolt file, for a single server without Redis.
// Every write is one bbolt transaction, durable (fsynced) when the method
// returns, so a restart keeps clients and delivered-message records.
// Reservations that are neither committed nor released live only in memory:
// bbolt's file lock makes this process the only user of the file, and a
// restart ends every delivery that was in progress anyway.
//
// Expired dedup records are treated as absent and purged by a sweeper every
// minute; Close stops it. All methods are safe for concurrent use.
type Embedded struct {
	db     *bolt.DB
	closed atomic.Bool
	nonces *nonceSource
	// clientTTL is EmbeddedConfig.ClientTTL.
	clientTTL time.Duration

	// mu guards pending, and is held across Reserve's read of the delivered
	// record so that a check and a claim are one step.
	mu      sync.Mutex
	pending map[string]claim

	// limMu guards the rate-limit windows (embedded_tenant.go); sweepAt is
	// the map size that triggers the next purge of expired windows.
	limMu   sync.Mutex
	windows map[string]window
	sweepAt int

	stop      chan struct{}
	swept     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// claim is a live reservation held in memory.
type claim struct {
	nonce   uint64
	expires time.Time
}

var _ Store = (*Embedded)(nil)

// EmbeddedConfig configures OpenEmbeddedWith.
type EmbeddedConfig struct {
	// ClientTTL, when positive, makes a registration expire ClientTTL
	// after it was last registered or looked up (CLIENT_TTL); a look-up
	// refreshes it once a tenth of the TTL has passed (refreshDue), so a
	// client expires between 0.9 and 1 ClientTTL after its last send.
	// Expired clients look up as not found and are purged by the sweeper.
	ClientTTL time.Duration
}

// OpenEmbedded opens (creating it if needed) the store in dir/push-server.db;
// dir is created with mode 0700. When another process holds the file, it
// fails after a second rather than waiting.
func OpenEmbedded(dir string) (*Embedded, error) {
	return OpenEmbeddedWith(dir, EmbeddedConfig{})
}

// OpenEmbeddedWith is OpenEmbedded with a configuration.
func OpenEmbeddedWith(dir string, cfg EmbeddedConfig) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	path := filepath.Join(dir, EmbeddedFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("cannot open %s: another process holds its lock (is a second push-server using this DATA_DIR?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	// Commits of concurrent sends share one fsync; a short delay keeps a
	// lone send's latency close to one fsync (bbolt's default is 10ms).
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketClients, bucketTokens, bucketDedup, bucketTenants} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cannot create buckets in %s: %w", path, err)
	}
	e := &Embedded{
		db:        db,
		nonces:    newNonceSource(),
		clientTTL: max(cfg.ClientTTL, 0),
		pending:   make(map[string]claim),
		stop:      make(chan struct{}),
	}
	e.swept.Add(1)
	go e.sweep()
	return e, nil
}

// dbError wraps a bbolt error as ErrUnavailable: a closed database or a disk
// that fails both mean the store cannot serve.
func dbError(what string, err error) error {
	return fmt.Errorf("cannot %s: %v: %w", what, err, ErrUnavailable)
}

func (e *Embedded) check(ctx context.Context) error {
	if e.closed.Load() {
		return fmt.Errorf("embedded store is closed: %w", ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%v: %w", err, ErrUnavailable)
	}
	return nil
}

// appendTenantPrefix appends a length-prefixed tenant, so that no tenant's
// keys are a prefix of another's.
func appendTenantPrefix(dst []byte, tenant string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tenant)))
	return append(dst, tenant...)
}

func embeddedClientKey(tenant, id string) []byte {
	return append(appendTenantPrefix(make([]byte, 0, len(tenant)+len(id)+2), tenant), id...)
}

func embeddedTokenKey(tenant string, hash *[sha256.Size]byte) []byte {
	return append(appendTenantPrefix(make([]byte, 0, len(tenant)+sha256.Size+2), tenant), hash[:]...)
}

func embeddedDedupKey(tenant, id, messageID string) []byte {
	k := appendTenantPrefix(make([]byte, 0, len(tenant)+len(id)+len(messageID)+4), tenant)
	k = binary.AppendUvarint(k, uint64(len(id)))
	k = append(k, id...)
	return append(k, messageID...)
}

// Register implements Store. One transaction moves the token, drops the
// token's previous owner and this id's previous token, and writes the record.
func (e *Embedded) Register(ctx context.Context, tenant string, c Client) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	hash := sha256.Sum256([]byte(c.Token))
	now := e.stamp()
	rec, err := appendRecord(nil, c, 0, &hash, now)
	if err != nil {
		return err
	}
	ck, tk := embeddedClientKey(tenant, c.ID), embeddedTokenKey(tenant, &hash)
	err = e.db.Update(func(tx *bolt.Tx) error {
		clients, tokens := tx.Bucket(bucketClients), tx.Bucket(bucketTokens)
		if !c.Bound && e.boundRecord(clients.Get(ck), now) {
			return ErrClientBound
		}
		if prev := tokens.Get(tk); prev != nil && string(prev) != c.ID {
			pk := embeddedClientKey(tenant, string(prev))
			// A bound client's token moves only with a proof.
			if !c.Bound && e.boundRecord(clients.Get(pk), now) {
				return errTokenBound
			}
			if err := clients.Delete(pk); err != nil {
				return err
			}
		}
		if prev := clients.Get(ck); prev != nil {
			if pr, err := decodeRecord(prev); err == nil && pr.hash != hash {
				ok := embeddedTokenKey(tenant, &pr.hash)
				if bytes.Equal(tokens.Get(ok), []byte(c.ID)) {
					if err := tokens.Delete(ok); err != nil {
						return err
					}
				}
			}
		}
		if err := tokens.Put(tk, []byte(c.ID)); err != nil {
			return err
		}
		return clients.Put(ck, rec)
	})
	if errors.Is(err, errTokenBound) {
		return fmt.Errorf("cannot register client %q with the token of a bound client without proving its key: %w", c.ID, ErrClientBound)
	}
	if errors.Is(err, ErrClientBound) {
		return fmt.Errorf("cannot register client %q without proving its key: %w", c.ID, err)
	}
	if err != nil {
		return dbError(fmt.Sprintf("register client %q", c.ID), err)
	}
	return nil
}

// errTokenBound ends a registration's transaction that would take a bound
// client's token without a proof; Register answers ErrClientBound.
var errTokenBound = errors.New("token held by a bound client")

// boundRecord reports whether v is a record of a bound client that has not
// expired at now (unix ms).
func (e *Embedded) boundRecord(v []byte, now int64) bool {
	if !flaggedBound(v) {
		return false
	}
	r, err := decodeRecord(v)
	return err != nil || !recordExpired(r.stamp, now, e.clientTTL)
}

// stamp is the time a registration written now is stamped with: unix ms
// with a client TTL, 0 (no stamp) without.
func (e *Embedded) stamp() int64 {
	if e.clientTTL <= 0 {
		return 0
	}
	return time.Now().UnixMilli()
}

// Unregister implements Store.
func (e *Embedded) Unregister(ctx context.Context, tenant, id string, proved bool) error {
	_, err := e.unregister(ctx, tenant, id, nil, proved)
	return err
}

// UnregisterIfToken implements Store: the comparison and the deletion are
// one transaction.
func (e *Embedded) UnregisterIfToken(ctx context.Context, tenant, id, token string) (bool, error) {
	hash := sha256.Sum256([]byte(token))
	return e.unregister(ctx, tenant, id, &hash, true)
}

// unregister removes client id, only while its token hashes to onlyHash
// when that is not nil, and reports whether it removed it. A bound client
// is removed only when proved.
func (e *Embedded) unregister(ctx context.Context, tenant, id string, onlyHash *[sha256.Size]byte, proved bool) (bool, error) {
	if err := e.check(ctx); err != nil {
		return false, err
	}
	ck := embeddedClientKey(tenant, id)
	removed := false
	err := e.db.Update(func(tx *bolt.Tx) error {
		clients, tokens := tx.Bucket(bucketClients), tx.Bucket(bucketTokens)
		prev := clients.Get(ck)
		if prev == nil {
			return nil
		}
		if !proved && e.boundRecord(prev, time.Now().UnixMilli()) {
			return ErrClientBound
		}
		pr, decErr := decodeRecord(prev)
		if onlyHash != nil && (decErr != nil || pr.hash != *onlyHash) {
			return nil
		}
		if decErr == nil {
			tk := embeddedTokenKey(tenant, &pr.hash)
			if bytes.Equal(tokens.Get(tk), []byte(id)) {
				if err := tokens.Delete(tk); err != nil {
					return err
				}
			}
		}
		removed = true
		return clients.Delete(ck)
	})
	if errors.Is(err, ErrClientBound) {
		return false, fmt.Errorf("cannot unregister client %q without proving its key: %w", id, err)
	}
	if err != nil {
		return false, dbError(fmt.Sprintf("unregister client %q", id), err)
	}
	return removed, nil
}

// Lookup implements Store.
func (e *Embedded) Lookup(ctx context.Context, tenant, id string) (Client, error) {
	if err := e.check(ctx); err != nil {
		return Client{}, err
	}
	var (
		rec    record
		found  bool
		decErr error
	)
	ck := embeddedClientKey(tenant, id)
	err := e.db.View(func(tx *bolt.Tx) error {
		// The value is valid only inside the transaction; decodeRecord copies.
		if v := tx.Bucket(bucketClients).Get(ck); v != nil {
			found = true
			rec, decErr = decodeRecord(v)
		}
		return nil
	})
	switch {
	case err != nil:
		return Client{}, dbError(fmt.Sprintf("read client %q", id), err)
	case !found:
		return Client{}, ErrClientNotFound
	case decErr != nil:
		return Client{}, fmt.Errorf("cannot read client %q: %w", id, decErr)
	}
	if e.clientTTL > 0 {
		now := time.Now().UnixMilli()
		if recordExpired(rec.stamp, now, e.clientTTL) {
			return Client{}, ErrClientNotFound
		}
		if refreshDue(rec.stamp, now, e.clientTTL) {
			// The send goes on with what it read; a failed refresh only
			// leaves the registration to expire sooner.
			_ = e.refresh(ck, now)
		}
	}
	return Client{ID: id, Type: rec.typ, Token: rec.token, AlwaysRaw: rec.alwaysRaw, Bound: rec.bound}, nil
}

// refresh stamps the record at ck with now, unless it is gone, expired or
// was refreshed meanwhile. Batch shares the fsync with concurrent commits;
// its function may run twice, which the re-check makes harmless.
func (e *Embedded) refresh(ck []byte, now int64) error {
	return e.db.Batch(func(tx *bolt.Tx) error {
		clients := tx.Bucket(bucketClients)
		v := clients.Get(ck)
		if v == nil {
			return nil
		}
		r, err := decodeRecord(v)
		if err != nil || recordExpired(r.stamp, now, e.clientTTL) || !refreshDue(r.stamp, now, e.clientTTL) {
			return nil
		}
		c := Client{Type: r.typ, Token: r.token, AlwaysRaw: r.alwaysRaw, Bound: r.bound}
		rec, err := appendRecord(nil, c, r.nonce, &r.hash, now)
		if err != nil {
			return nil
		}
		return clients.Put(ck, rec)
	})
}

// purgeExpiredClients deletes the clients expired at now, and their token
// entries, in chunks so that the write lock is not held for long.
func (e *Embedded) purgeExpiredClients(now time.Time) error {
	if e.clientTTL <= 0 {
		return nil
	}
	ms := now.UnixMilli()
	var expired [][]byte
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			if r, err := decodeRecord(v); err == nil && recordExpired(r.stamp, ms, e.clientTTL) {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
	})
	for len(expired) > 0 && err == nil {
		chunk := expired[:min(len(expired), 1000)]
		expired = expired[len(chunk):]
		err = e.db.Update(func(tx *bolt.Tx) error {
			clients, tokens := tx.Bucket(bucketClients), tx.Bucket(bucketTokens)
			for _, ck := range chunk {
				r, err := decodeRecord(clients.Get(ck))
				if err != nil || !recordExpired(r.stamp, ms, e.clientTTL) {
					continue // gone, or registered again since
				}
				// The key is the tenant prefix, then the id.
				n, w := binary.Uvarint(ck)
				if w <= 0 || uint64(len(ck)-w) < n {
					continue // not a key this store wrote
				}
				prefix := ck[:w+int(n)]
				tk := append(bytes.Clone(prefix), r.hash[:]...)
				if bytes.Equal(tokens.Get(tk), ck[len(prefix):]) {
					if err := tokens.Delete(tk); err != nil {
						return err
					}
				}
				if err := clients.Delete(ck); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return err
}

// Reserve implements Store.
func (e *Embedded) Reserve(ctx context.Context, tenant, clientID, messageID string, lease time.Duration) (Reservation, error) {
	if err := e.check(ctx); err != nil {
		return Reservation{}, err
	}
	k := embeddedDedupKey(tenant, clientID, messageID)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if c, ok := e.pending[string(k)]; ok && now.Before(c.expires) {
		return Reservation{}, ErrDeliveryInProgress
	}
	var delivered bool
	err := e.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDedup).Get(k)
		delivered = len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano()
		return nil
	})
	if err != nil {
		return Reservation{}, dbError(fmt.Sprintf("reserve message %q for client %q", messageID, clientID), err)
	}
	if delivered {
		return Reservation{}, ErrAlreadyDelivered
	}
	nonce := e.nonces.next()
	e.pending[string(k)] = claim{nonce: nonce, expires: now.Add(lease)}
	return Reservation{Tenant: tenant, ClientID: clientID, MessageID: messageID, Nonce: nonce}, nil
}

// Commit implements Store. Like Redis.Commit it records the delivery whoever
// holds the claim now, and drops that claim: "delivered" supersedes it. The
// record is written before the claim goes, so a Reserve in between sees one
// or the other.
func (e *Embedded) Commit(ctx context.Context, r Reservation, ttl time.Duration) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	k := embeddedDedupKey(r.Tenant, r.ClientID, r.MessageID)
	expires := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(ttl).UnixNano()))
	// Batch: concurrent commits share one fsync. Its function may run twice,
	// which a Put tolerates.
	err := e.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDedup).Put(k, expires)
	})
	if err != nil {
		return dbError(fmt.Sprintf("commit message %q for client %q", r.MessageID, r.ClientID), err)
	}
	e.mu.Lock()
	delete(e.pending, string(k))
	e.mu.Unlock()
	return nil
}

// CommitBehind implements Store with Commit: the embedded store's commits
// already share one fsync (bbolt's Batch), and a commit waited for here
// costs no network round trip.
func (e *Embedded) CommitBehind(ctx context.Context, r Reservation, ttl time.Duration) error {
	return e.Commit(ctx, r, ttl)
}

// Release implements Store.
func (e *Embedded) Release(ctx context.Context, r Reservation) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	k := string(embeddedDedupKey(r.Tenant, r.ClientID, r.MessageID))
	e.mu.Lock()
	if c, ok := e.pending[k]; ok && c.nonce == r.Nonce {
		delete(e.pending, k)
	}
	e.mu.Unlock()
	return nil
}

// Ping implements Store: it answers unless the store is closed.
func (e *Embedded) Ping(ctx context.Context) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	if err := e.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return dbError("read embedded store", err)
	}
	return nil
}

// Close implements Store: it stops the sweeper and closes the file. It may be
// called more than once; later calls to other methods give ErrUnavailable.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		e.swept.Wait()
		if err := e.db.Close(); err != nil {
			e.closeErr = fmt.Errorf("cannot close embedded store: %w", err)
		}
	})
	return e.closeErr
}

func (e *Embedded) sweep() {
	defer e.swept.Done()
	t := time.NewTicker(embeddedSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			// An error here means the store is closing or the disk fails;
			// the next Commit reports the latter, so it is not logged.
			_ = e.purgeExpired(time.Now())
			_ = e.purgeExpiredClients(time.Now())
		}
	}
}

// purgeExpired deletes dedup records and claims that expired before now.
// Records go in chunks, so a large backlog does not hold the write lock (and
// the Commits waiting on it) for long.
func (e *Embedded) purgeExpired(now time.Time) error {
	e.mu.Lock()
	for k, c := range e.pending {
		if !now.Before(c.expires) {
			delete(e.pending, k)
		}
	}
	e.mu.Unlock()

	const chunk = 1000
	var from []byte
	for {
		var next []byte
		err := e.db.Update(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bucketDedup).Cursor()
			k, v := cur.First()
			if from != nil {
				k, v = cur.Seek(from)
			}
			for n := 0; k != nil; n++ {
				if n == chunk {
					next = bytes.Clone(k)
					return nil
				}
				if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
					// Cursor.Next after Delete skips a key, so seek past the
					// deleted one instead (k is copied: Delete may reuse it).
					kc := bytes.Clone(k)
					if err := cur.Delete(); err != nil {
						return err
					}
					k, v = cur.Seek(kc)
					continue
				}
				k, v = cur.Next()
			}
			return nil
		})
		if err != nil || next == nil {
			return err
		}
		from = next
	}
}
