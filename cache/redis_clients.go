package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

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
)

// ownerValue is a token index value: the registration nonce, then the id.
func ownerValue(nonce uint64, id string) string {
	b := make([]byte, 0, 8+len(id))
	b = binary.BigEndian.AppendUint64(b, nonce)
	return rueidis.BinaryString(append(b, id...))
}

// Register implements Store; see Redis for the steps and why they are safe.
func (r *Redis) Register(ctx context.Context, tenant string, c Client) error {
	if r.closed() {
		return unavailable(fmt.Sprintf("register client %q", c.ID), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
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
	if !flaggedBound(v) {
		return false, nil
	}
	if hash == nil {
		return true, nil
	}
	rec, err := decodeRecord(v)
	return err == nil && rec.hash == *hash, nil
}

// Unregister implements Store: one script checks whether the client is
// bound and deletes its record.
func (r *Redis) Unregister(ctx context.Context, tenant, id string, proved bool) error {
	if r.closed() {
		return unavailable(fmt.Sprintf("delete client %q", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
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
	if r.closed() {
		return false, unavailable(fmt.Sprintf("delete client %q if its token is unchanged", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
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
	if r.closed() {
		// Before the caches: they may still hold the answer (see closed).
		return Client{}, unavailable(fmt.Sprintf("read client %q", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(parent)
	defer cancel()

	rc := r.readReplica()
	if rc == nil {
		return r.lookupOn(ctx, r.c, tenant, id)
	}
	// The replica's half of the timeout, shared per tick like the whole (a
	// child of the shared context would make every look-up take its lock).
	rctx, rcancel := r.replicaDeadlines.Within(parent)
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

// lookupOn is Lookup on one server's client. On the primary, a client
// looked up recently is answered from the front cache (see frontCache).
func (r *Redis) lookupOn(ctx context.Context, rc rueidis.Client, tenant, id string) (Client, error) {
	ck := r.clientKey(tenant, id)
	var gen uint64
	front := rc == r.c && r.front != nil
	if front {
		now := time.Now()
		var e *frontEntry
		if e, gen = r.front.get(ck, now.UnixNano()); e != nil {
			if r.clientTTL <= 0 || !refreshDue(e.stamp, now.UnixMilli(), r.clientTTL) {
				return e.client, nil
			}
		}
	}
	recReply := rc.DoCache(ctx, rc.B().Get().Key(ck).Cache(), r.cacheTTL)
	b, err := recReply.ToString()
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
	tk := r.tokenKey(tenant, &rec.hash)
	ownerReply := rc.DoCache(ctx, rc.B().Get().Key(tk).Cache(), r.cacheTTL)
	owner, err := ownerReply.ToString()
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
			// The refresh rewrites the record: its invalidation would drop
			// a front entry stored now at once.
			r.refresh(ctx, tenant, id, &rec, now)
			front = false
		}
	}
	c := Client{ID: id, Type: rec.typ, Token: rec.token, AlwaysRaw: rec.alwaysRaw, Bound: rec.bound}
	if front {
		r.front.put(ck, &frontEntry{client: c, tokenKey: tk, stamp: rec.stamp,
			expires: frontExpiry(time.Now().UnixNano(), r.cacheTTL, recReply.CachePXAT(), ownerReply.CachePXAT())}, gen)
	}
	return c, nil
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
