// Package cache stores registered clients (device tokens) and delivery
// deduplication records. It has two implementations of one Store interface:
// Redis through rueidis (with client-side caching for look-ups) and an
// embedded durable store (bbolt) used when REDIS_URL is unset. The promises in
// Store's documentation are checked for both by the shared suite in
// cache/cachetest.
//
// cache imports none of router, verify or dispatch.
package cache

import (
	"context"
	"errors"
	"time"
)

// Provider types a client may be registered with. They are stored lowercase.
const (
	TypeAPNS        = "apns"
	TypeAPNSSandbox = "apns-sandbox"
	TypeFCM         = "fcm"
	TypeNoop        = "noop"
	// TypeWebPush is a browser's Web Push subscription (RFC 8030): the
	// token is the PushSubscription's JSON.
	TypeWebPush = "webpush"
)

// Client is one registered device.
type Client struct {
	// ID is the client id without a leading "did:key:".
	ID string
	// Type is one of the Type constants.
	Type string
	// Token is the provider's device token.
	Token string
	// AlwaysRaw asks for the message to be pushed as custom data only.
	AlwaysRaw bool
	// Bound means the client proved its key (the id is a did:key and a
	// registration carried a valid client JWT for it). Register with Bound
	// set binds the id; once bound, it stays bound until it is removed, and
	// only a caller that proves the key again may register or unregister it.
	Bound bool
}

// Errors returned by a Store. Wrapped errors match them with errors.Is.
var (
	// ErrClientNotFound means no client is registered under the id (or its
	// token has since moved to another client id).
	ErrClientNotFound = errors.New("cache: client not found")
	// ErrAlreadyDelivered means the message id was already delivered to the
	// client within the dedup TTL.
	ErrAlreadyDelivered = errors.New("cache: message already delivered")
	// ErrDeliveryInProgress means another request holds the reservation for
	// the same (client, message id) and has not committed or released it.
	ErrDeliveryInProgress = errors.New("cache: delivery in progress")
	// ErrClientBound means the client id, or the client holding the token
	// being registered, is bound to its key (Client.Bound) and the caller
	// did not prove it: nothing was written.
	ErrClientBound = errors.New("cache: client is bound to its key")
	// ErrUnavailable means the store could not be reached or did not answer
	// in time. Nothing is known to have been written.
	ErrUnavailable = errors.New("cache: store unavailable")
)

// Reservation is a claim on one (tenant, client, message id) taken by
// Store.Reserve. Exactly one of Commit or Release must be called on it.
type Reservation struct {
	// Tenant, ClientID and MessageID name the claimed record.
	Tenant, ClientID, MessageID string
	// Nonce distinguishes this claim from a later one on the same record, so
	// that a late Release cannot drop somebody else's claim.
	Nonce uint64

	// key is the record's key in a store that has one (Redis), kept so
	// that Commit does not build it again.
	key string
}

// Store keeps clients and dedup records. All methods are safe for concurrent
// use. tenant scopes every id: "" is the single-tenant namespace, and the same
// client id or token in two tenants are two unrelated records.
//
// See cache/cachetest for the exact behaviour every implementation must show.
type Store interface {
	// Register stores c under its ID, replacing any previous registration of
	// that id (upsert). A token belongs to one client: when c.Token is held by
	// another client id in the same tenant, that other id stops existing.
	// Concurrent registrations never leave two look-up-able clients on one
	// token, nor a half-written client. When Register returns nil the
	// registration is durable. When c.Bound is not set and the id is
	// registered bound, or c.Token is held by another id registered bound,
	// Register writes nothing and returns ErrClientBound; the check and the
	// write are one atomic step. With c.Bound set the token moves from a
	// bound client as from any other (a wallet re-installed under a new
	// key keeps its device token).
	Register(ctx context.Context, tenant string, c Client) error
	// Unregister removes the client. Removing an unknown id is not an error.
	// proved says the caller proved the client's key; without it a bound
	// client is not removed and Unregister returns ErrClientBound, in one
	// atomic step with the removal.
	Unregister(ctx context.Context, tenant, id string, proved bool) error
	// UnregisterIfToken removes the client only while it is registered
	// with token, in one atomic step, and reports whether it did. It is how
	// a token the provider declared dead is dropped: a wallet that
	// re-registered with a fresh token in the meantime keeps its
	// registration, however the two calls interleave. It removes bound
	// clients too: the provider, not a caller, declared the token dead.
	UnregisterIfToken(ctx context.Context, tenant, id, token string) (bool, error)
	// Lookup returns the client registered under id, or ErrClientNotFound.
	// After Register or Unregister returned, Lookup on any Store of the same
	// backing data sees the change (no stale cached answer). With a client
	// TTL (RedisConfig.ClientTTL, EmbeddedConfig.ClientTTL) a client not
	// registered or looked up for that long is not found, and a Lookup that
	// finds it extends its registration (see cachetest.RunClientTTL).
	Lookup(ctx context.Context, tenant, id string) (Client, error)

	// Reserve claims (tenant, clientID, messageID) before a delivery. It
	// returns ErrAlreadyDelivered when a delivery was committed within the
	// dedup TTL, ErrDeliveryInProgress when another claim is live. A claim
	// that is neither committed nor released expires after lease. A store
	// whose delivered marks can still be on their way from another
	// instance (Redis, CommitBehind) looks at a live claim again for a few
	// milliseconds before it answers ErrDeliveryInProgress, and keeps that
	// answer if it cannot reach its backend meanwhile; the caller never
	// retries on it.
	Reserve(ctx context.Context, tenant, clientID, messageID string, lease time.Duration) (Reservation, error)
	// Commit records the reserved message as delivered for ttl. It counts
	// even when r's lease has run out, and then supersedes any newer claim:
	// the message was delivered either way.
	//
	// The send path calls CommitBehind, not Commit. Commit stays in the
	// interface as the primitive CommitBehind is defined by: it returns
	// only once the record is written (nil) or surely not (an error), which
	// is what the contract suite (cache/cachetest), the crash and hang tests
	// and any caller that must know the mark landed need, without polling;
	// the embedded store's CommitBehind is its Commit.
	Commit(ctx context.Context, r Reservation, ttl time.Duration) error
	// CommitBehind is Commit for a caller that does not wait for the
	// record: it may return before the record is written. Until it is, a
	// Reserve of the same message on this Store answers ErrAlreadyDelivered
	// and one elsewhere ErrDeliveryInProgress (the claim), never a fresh
	// claim; the record is written within a few milliseconds, and by Close.
	// r may be made by hand (no Reserve on this Store: a delivery made
	// while the store was unavailable). A record the store cannot write
	// now is kept, within a bound, and written when the store answers
	// again; only a record past the bound, or still unwritten when the
	// process stops or crashes, is lost like a failed Commit's: the claim
	// expires after its lease, and a retry after it can deliver again. An
	// error means the record is not written yet.
	CommitBehind(ctx context.Context, r Reservation, ttl time.Duration) error
	// Release drops the claim so that a retry can deliver the message. It
	// does nothing when the claim is no longer r's.
	Release(ctx context.Context, r Reservation) error

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
