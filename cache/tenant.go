package cache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"time"
)

// ErrTenantNotFound means no tenant exists under the id.
var ErrTenantNotFound = errors.New("cache: tenant not found")

// Tenant is one wallet project in multi-tenant mode. Its credentials are
// stored sealed (see dispatch.Vault): the store never sees them in clear.
type Tenant struct {
	ID string
	// Version changes with every change to credentials or suspensions, so
	// that every instance rebuilds its provider clients for the tenant.
	Version uint64
	// Incarnation is drawn at random when the tenant is created and never
	// changes after: a tenant deleted and created again under the same id
	// starts its Version over, so only the pair (Incarnation, Version) tells
	// an instance that what it built for the old tenant is not the new one's.
	// 0 for a tenant stored before incarnations existed.
	Incarnation uint64
	// APNSTopic and APNSType ("certificate" or "token") describe the APNs
	// credentials; APNS is their sealed form, nil when APNs is not set up.
	APNSTopic, APNSType string
	APNS                []byte
	// APNSCertificateNotAfter is when the tenant's APNs certificate expires
	// (unix seconds, its notAfter), kept in the clear beside the sealed
	// credentials so that expiry can be watched without opening them; 0 for
	// token auth, no APNs, or a certificate uploaded before it was kept.
	APNSCertificateNotAfter int64
	// FCM is the sealed FCM v1 service account, nil when not set up.
	FCM []byte
	// WebPush is the sealed VAPID key pair and subject, nil when Web Push
	// is not set up; WebPushPublicKey is its public key (base64url), kept
	// in the clear beside it because wallets are handed it to subscribe
	// with, so that serving it opens nothing.
	WebPush          []byte
	WebPushPublicKey string
	// APNSSuspended (Apple's production host), APNSSandboxSuspended (its
	// development host) and FCMSuspended hold why that host refused the
	// tenant's credentials; "" when it is not suspended. The APNs hosts are
	// suspended apart: credentials valid for one are often refused by the
	// other, and any client may register for either.
	APNSSuspended, APNSSandboxSuspended, FCMSuspended string
	// WebPushSuspended holds why a push service refused the tenant's VAPID
	// authorisation (401), "" when Web Push is not suspended.
	WebPushSuspended string
}

// TenantChange is one atomic change to a tenant. Setting a provider's
// credentials lifts its suspensions (for APNs: both hosts').
type TenantChange struct {
	SetAPNS   bool // replace APNSTopic, APNSType, APNS and APNSCertificateNotAfter with the values below
	APNSTopic string
	APNSType  string
	APNS      []byte
	// APNSCertificateNotAfter goes with SetAPNS: the certificate's notAfter
	// (unix seconds), 0 for token auth.
	APNSCertificateNotAfter int64
	ClearAPNS               bool

	SetFCM   bool
	FCM      []byte
	ClearFCM bool

	SetWebPush       bool // replace WebPush and WebPushPublicKey with the values below
	WebPush          []byte
	WebPushPublicKey string
	ClearWebPush     bool

	// SuspendAPNS, SuspendAPNSSandbox, SuspendFCM and SuspendWebPush, when
	// not "", suspend that host with that reason.
	SuspendAPNS, SuspendAPNSSandbox, SuspendFCM, SuspendWebPush string

	// If, when not nil, makes the change conditional on the tenant being
	// the one it was decided from (see TenantCondition); when it is not,
	// nothing changes, Version included, and UpdateTenant returns
	// ErrTenantChanged.
	If *TenantCondition
}

// TenantCondition is what a conditional TenantChange requires of the
// tenant: its Incarnation, and for each provider the change suspends, the
// very sealed credentials given here (APNS for either APNs host, FCM for
// FCM, WebPush for Web Push), set up and equal byte for byte.
//
// A send reads the tenant when it starts and may hear its provider's
// refusal seconds later: the suspension it then writes must not fall on
// credentials uploaded in between, nor on a tenant created again under the
// same id. The sealed bytes serve as the provider's credential generation:
// every upload seals with a fresh nonce, so no two uploads store the same
// bytes, while Version also moves for the other provider's changes and
// for suspensions, which say nothing about these credentials.
type TenantCondition struct {
	Incarnation        uint64
	APNS, FCM, WebPush []byte
}

// ErrTenantChanged means a conditional TenantChange was not applied: the
// tenant is no longer the one the change was decided from. It is an
// outcome, not a failure: the change is moot.
var ErrTenantChanged = errors.New("cache: tenant changed since it was read")

// Tenants stores tenants. Like Store, it is safe for concurrent use, and
// cachetest.RunTenants checks every promise below for each implementation.
type Tenants interface {
	// CreateTenant creates the tenant with a fresh random Incarnation; an
	// existing tenant is kept as it is. It reports whether it was created.
	CreateTenant(ctx context.Context, id string) (created bool, err error)
	// Tenant returns the tenant, or ErrTenantNotFound. It is read through
	// the client-side cache, so it is cheap on the send path, and it sees a
	// change made through any instance within about a second.
	Tenant(ctx context.Context, id string) (Tenant, error)
	// UpdateTenant applies change atomically and bumps Version; it returns
	// ErrTenantNotFound for an unknown tenant, and ErrTenantChanged (having
	// changed nothing) when change.If does not hold.
	UpdateTenant(ctx context.Context, id string, change TenantChange) error
	// DeleteTenant removes the tenant with its clients, token index entries
	// and dedup records. Deleting an unknown tenant is not an error.
	DeleteTenant(ctx context.Context, id string) error
	// APNSCertificateExpiries calls each once for every tenant whose record
	// holds an APNs certificate expiry (APNSCertificateNotAfter != 0), in
	// no particular order. It reads every tenant record, in batches, so
	// its cost grows with the number of tenants: it is for a periodic
	// sweep, never the request path. A tenant changed meanwhile may be
	// seen before or after the change.
	APNSCertificateExpiries(ctx context.Context, each func(tenant string, notAfter int64)) error
}

// Limiter counts events for rate limits. Allow counts one event under key
// in the current fixed window and reports whether the count is within
// limit; when it is not, retryAfter is the time left in the window. With
// Redis the count is shared by the whole fleet.
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
}

// newIncarnation draws a tenant's Incarnation: random, so that instances
// need no shared counter to tell a re-created tenant from its predecessor,
// and never 0, which marks a tenant stored before incarnations existed.
func newIncarnation() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n
		}
	}
}
