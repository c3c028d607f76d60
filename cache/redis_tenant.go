package cache

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Tenants on Redis (P is the key prefix, T the tenant spelled by
// appendTenant):
//
//	P tenant:{T}   HASH: v (Version), i (Incarnation, decimal), at, aty, a
//	               (APNs topic, type, sealed credentials), f (sealed FCM),
//	               as, ass, fs (suspension reasons: APNs production, APNs
//	               sandbox, FCM), ae (the APNs certificate's notAfter, unix
//	               seconds; absent for token auth), w, wk, ws (sealed Web
//	               Push VAPID key, its public key, suspension reason)
//	P rl:{<key>}   rate-limit counter of the current window, expiring with it
//
// A tenant exists while its hash exists; the field v is always present.
// Absent a, f and w mean the provider is not set up; an absent i is a tenant
// created before incarnations existed (incarnation 0).

var (
	_ Tenants = (*Redis)(nil)
	_ Limiter = (*Redis)(nil)
)

var (
	// updateTenantScript applies a TenantChange to KEYS[1] and returns the
	// new version, false when the tenant does not exist, or -1 when the
	// change's condition does not hold (then it changes nothing). ARGV:
	// clear APNs, clear FCM, set APNs, topic, type, sealed APNs, set FCM,
	// sealed FCM, APNs suspension, FCM suspension, APNs sandbox suspension,
	// conditional, incarnation, sealed APNs and sealed FCM of the
	// condition, then Web Push's: clear, set, sealed key, public key,
	// suspension, sealed key of the condition; last the APNs certificate's
	// notAfter ("" for none); flags are "1" or "0". The
	// condition is TenantChange.holds (an absent i is incarnation 0, an
	// absent a, f or w never matches); the rest goes in the order of
	// TenantChange.apply: clears, sets (lifting suspensions), suspensions.
	updateTenantScript = rueidis.NewLuaScript(`if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[12] == '1' then
  if (redis.call('HGET', KEYS[1], 'i') or '0') ~= ARGV[13] then return -1 end
  if (ARGV[9] ~= '' or ARGV[11] ~= '') and redis.call('HGET', KEYS[1], 'a') ~= ARGV[14] then return -1 end
  if ARGV[10] ~= '' and redis.call('HGET', KEYS[1], 'f') ~= ARGV[15] then return -1 end
  if ARGV[20] ~= '' and redis.call('HGET', KEYS[1], 'w') ~= ARGV[21] then return -1 end
end
if ARGV[1] == '1' then redis.call('HDEL', KEYS[1], 'at', 'aty', 'a', 'as', 'ass', 'ae') end
if ARGV[2] == '1' then redis.call('HDEL', KEYS[1], 'f', 'fs') end
if ARGV[16] == '1' then redis.call('HDEL', KEYS[1], 'w', 'wk', 'ws') end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'at', ARGV[4], 'aty', ARGV[5], 'a', ARGV[6])
  redis.call('HDEL', KEYS[1], 'as', 'ass')
  if ARGV[22] ~= '' then redis.call('HSET', KEYS[1], 'ae', ARGV[22]) else redis.call('HDEL', KEYS[1], 'ae') end
end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'f', ARGV[8])
  redis.call('HDEL', KEYS[1], 'fs')
end
if ARGV[17] == '1' then
  redis.call('HSET', KEYS[1], 'w', ARGV[18], 'wk', ARGV[19])
  redis.call('HDEL', KEYS[1], 'ws')
end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'as', ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'fs', ARGV[10]) end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'ass', ARGV[11]) end
if ARGV[20] ~= '' then redis.call('HSET', KEYS[1], 'ws', ARGV[20]) end
return redis.call('HINCRBY', KEYS[1], 'v', 1)`)

	// createTenantScript creates KEYS[1] with version 0 and incarnation
	// ARGV[1] unless it exists, and returns 1 when it created it: both
	// fields in one step, so no reader sees a tenant without its
	// incarnation.
	createTenantScript = rueidis.NewLuaScript(`if redis.call('HSETNX', KEYS[1], 'v', '0') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'i', ARGV[1])
return 1`)

	// allowScript counts one event in KEYS[1]'s window of ARGV[1] ms and
	// returns {count, ms left in the window}. A key left without an expiry
	// (which the script itself never does) gets one, so it cannot block
	// forever.
	allowScript = rueidis.NewLuaScript(`local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`)
)

func (r *Redis) tenantKey(tenant string) string {
	b := make([]byte, 0, len(r.prefix)+len(tenant)+9)
	b = append(b, r.prefix...)
	b = append(b, "tenant:{"...)
	b = appendTenant(b, tenant)
	b = append(b, '}')
	return rueidis.BinaryString(b)
}

func (r *Redis) limitKey(key string) string {
	b := make([]byte, 0, len(r.prefix)+len(key)+5)
	b = append(b, r.prefix...)
	b = append(b, "rl:{"...)
	b = append(b, key...)
	b = append(b, '}')
	return rueidis.BinaryString(b)
}

// tenantDataPattern is a SCAN MATCH pattern for every client record, token
// index entry and dedup record of tenant: "P[ctd]:{T/*". The prefix is
// escaped, since it may hold glob characters; appendTenant's spelling holds
// none.
func (r *Redis) tenantDataPattern(tenant string) string {
	b := appendGlobEscaped(make([]byte, 0, 2*len(r.prefix)+len(tenant)+12), r.prefix)
	b = append(b, "[ctd]:{"...)
	b = appendTenant(b, tenant)
	b = append(b, "/*"...)
	return rueidis.BinaryString(b)
}

// appendGlobEscaped appends s with every SCAN MATCH glob character
// escaped, so that a key prefix holding one matches only itself.
func appendGlobEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// CreateTenant implements Tenants with HSETNX on the version field (the
// field exists exactly when the tenant does) and the incarnation beside it.
func (r *Redis) CreateTenant(ctx context.Context, id string) (bool, error) {
	if r.closed() {
		return false, unavailable(fmt.Sprintf("create tenant %q", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	k := r.tenantKey(id)
	created, err := createTenantScript.Exec(ctx, r.c, []string{k}, []string{strconv.FormatUint(newIncarnation(), 10)}).AsBool()
	if err != nil {
		return false, unavailable(fmt.Sprintf("create tenant %q", id), err)
	}
	if created {
		r.settle(ctx, []string{k})
	}
	return created, nil
}

// Tenant implements Tenants. It reads the primary through the client-side
// cache (not the replica, so a change is never hidden by replication lag);
// another instance's change arrives by invalidation.
func (r *Redis) Tenant(ctx context.Context, id string) (Tenant, error) {
	if r.closed() {
		return Tenant{}, unavailable(fmt.Sprintf("read tenant %q", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	m, err := r.c.DoCache(ctx, r.c.B().Hgetall().Key(r.tenantKey(id)).Cache(), r.cacheTTL).AsStrMap()
	if err != nil {
		return Tenant{}, unavailable(fmt.Sprintf("read tenant %q", id), err)
	}
	if len(m) == 0 {
		return Tenant{}, ErrTenantNotFound
	}
	v, err := strconv.ParseUint(m["v"], 10, 64)
	if err != nil {
		return Tenant{}, fmt.Errorf("cannot read tenant %q: version %q: %w", id, m["v"], errCorruptTenant)
	}
	var inc uint64
	if i, ok := m["i"]; ok {
		if inc, err = strconv.ParseUint(i, 10, 64); err != nil {
			return Tenant{}, fmt.Errorf("cannot read tenant %q: incarnation %q: %w", id, i, errCorruptTenant)
		}
	}
	t := Tenant{
		ID:                   id,
		Version:              v,
		Incarnation:          inc,
		APNSTopic:            m["at"],
		APNSType:             m["aty"],
		APNSSuspended:        m["as"],
		APNSSandboxSuspended: m["ass"],
		FCMSuspended:         m["fs"],
		WebPushPublicKey:     m["wk"],
		WebPushSuspended:     m["ws"],
	}
	if ae, ok := m["ae"]; ok {
		if t.APNSCertificateNotAfter, err = strconv.ParseInt(ae, 10, 64); err != nil {
			return Tenant{}, fmt.Errorf("cannot read tenant %q: APNs certificate expiry %q: %w", id, ae, errCorruptTenant)
		}
	}
	if a, ok := m["a"]; ok {
		t.APNS = []byte(a)
	}
	if f, ok := m["f"]; ok {
		t.FCM = []byte(f)
	}
	if w, ok := m["w"]; ok {
		t.WebPush = []byte(w)
	}
	return t, nil
}

// UpdateTenant implements Tenants with one script on the tenant's key,
// which also checks change.If.
func (r *Redis) UpdateTenant(ctx context.Context, id string, change TenantChange) error {
	if r.closed() {
		return unavailable(fmt.Sprintf("update tenant %q", id), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	var cond TenantCondition
	if change.If != nil {
		cond = *change.If
	}
	k := r.tenantKey(id)
	v, err := updateTenantScript.Exec(ctx, r.c, []string{k}, []string{
		flag(change.ClearAPNS), flag(change.ClearFCM),
		flag(change.SetAPNS), change.APNSTopic, change.APNSType, rueidis.BinaryString(change.APNS),
		flag(change.SetFCM), rueidis.BinaryString(change.FCM),
		change.SuspendAPNS, change.SuspendFCM, change.SuspendAPNSSandbox,
		flag(change.If != nil), strconv.FormatUint(cond.Incarnation, 10), rueidis.BinaryString(cond.APNS), rueidis.BinaryString(cond.FCM),
		flag(change.ClearWebPush), flag(change.SetWebPush), rueidis.BinaryString(change.WebPush), change.WebPushPublicKey,
		change.SuspendWebPush, rueidis.BinaryString(cond.WebPush),
		notAfterArg(change.APNSCertificateNotAfter),
	}).AsInt64()
	if rueidis.IsRedisNil(err) {
		return ErrTenantNotFound
	}
	if err != nil {
		return unavailable(fmt.Sprintf("update tenant %q", id), err)
	}
	if v < 0 {
		return ErrTenantChanged
	}
	r.settle(ctx, []string{k})
	return nil
}

// deleteBatch is how many keys one SCAN step asks for and one round of
// DELs removes.
const deleteBatch = 500

// DeleteTenant implements Tenants. It deletes the record first, so the
// tenant stops existing at once, then SCANs every node for the tenant's
// client, token and dedup keys and deletes them one key per DEL (cluster
// safe). Each round trip gets the store's timeout, not the whole call, since
// a large tenant takes many. If it fails midway, calling it again finishes
// the job; until then the leftovers are unreachable only in the sense that
// a re-created tenant would see them, so the error must be heeded.
func (r *Redis) DeleteTenant(ctx context.Context, id string) error {
	if r.closed() {
		return unavailable(fmt.Sprintf("delete tenant %q", id), errStoreClosed)
	}
	k := r.tenantKey(id)
	if err := r.withTimeout(ctx, func(ctx context.Context) error {
		return r.c.Do(ctx, r.c.B().Del().Key(k).Build()).Error()
	}); err != nil {
		return unavailable(fmt.Sprintf("delete tenant %q", id), err)
	}
	if err := r.scanNodes(ctx, r.tenantDataPattern(id), fmt.Sprintf("list the keys of tenant %q", id), func(ctx context.Context, keys []string) error {
		if err := r.deleteKeys(ctx, keys); err != nil {
			return unavailable(fmt.Sprintf("delete the keys of tenant %q", id), err)
		}
		return nil
	}); err != nil {
		return err
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	r.settle(ctx, []string{k})
	return nil
}

// scanNodes SCANs every node for keys matching pattern, deleteBatch at a
// time, and hands each non-empty batch to batch, each round trip within the
// store's timeout. A replica answers SCAN too, so batch may see a key more
// than once. A failed SCAN is ErrUnavailable naming list and the node;
// batch's error is returned as it is.
func (r *Redis) scanNodes(ctx context.Context, pattern, list string, batch func(ctx context.Context, keys []string) error) error {
	for addr, node := range r.c.Nodes() {
		var cursor uint64
		for {
			var e rueidis.ScanEntry
			err := r.withTimeout(ctx, func(ctx context.Context) (err error) {
				e, err = node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(deleteBatch).Build()).AsScanEntry()
				return err
			})
			if err != nil {
				return unavailable(fmt.Sprintf("%s on %s", list, addr), err)
			}
			if len(e.Elements) > 0 {
				if err := r.withTimeout(ctx, func(ctx context.Context) error { return batch(ctx, e.Elements) }); err != nil {
					return err
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// deleteKeys deletes keys with one DEL each, routed by the cluster client,
// then reads each back on the same connection so that this store's cache has
// dropped them (see settle) before it returns.
func (r *Redis) deleteKeys(ctx context.Context, keys []string) error {
	cmds := make(rueidis.Commands, 0, 2*len(keys))
	for _, k := range keys {
		cmds = append(cmds, r.c.B().Del().Key(k).Build())
	}
	for _, k := range keys {
		cmds = append(cmds, r.c.B().Exists().Key(k).Build())
	}
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) withTimeout(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	return f(ctx)
}

// Allow implements Limiter with a fixed-window counter on the primary,
// shared by every instance.
func (r *Redis) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if r.closed() {
		return false, 0, unavailable(fmt.Sprintf("count rate limit %q", key), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()
	vals, err := allowScript.Exec(ctx, r.c, []string{r.limitKey(key)}, []string{strconv.FormatInt(durationMs(window), 10)}).AsIntSlice()
	if err == nil && len(vals) != 2 {
		err = fmt.Errorf("unexpected reply of %d values", len(vals))
	}
	if err != nil {
		return false, 0, unavailable(fmt.Sprintf("count rate limit %q", key), err)
	}
	if vals[0] <= int64(limit) {
		return true, 0, nil
	}
	return false, time.Duration(vals[1]) * time.Millisecond, nil
}
