package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

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
	if r.closed() {
		return Reservation{}, unavailable(fmt.Sprintf("reserve message %q for client %q", messageID, clientID), errStoreClosed)
	}
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
	ctx, cancel := r.deadlines.Within(ctx)
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
	if r.closed() {
		return unavailable(fmt.Sprintf("commit message %q for client %q", res.MessageID, res.ClientID), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
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
	if r.closed() {
		return unavailable(fmt.Sprintf("release message %q for client %q", res.MessageID, res.ClientID), errStoreClosed)
	}
	ctx, cancel := r.deadlines.Within(ctx)
	defer cancel()

	if err := compareAndDeleteScript.Exec(ctx, r.c, []string{r.reservedKey(res)}, []string{pendingValue(res.Nonce)}).Error(); err != nil {
		return unavailable(fmt.Sprintf("release message %q for client %q", res.MessageID, res.ClientID), err)
	}
	return nil
}
