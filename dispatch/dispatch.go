// Package dispatch turns a provider-neutral Notification into a push: APNs
// (sideshow/apns2), FCM HTTP v1 (firebase.google.com/go/v4 messaging), Web
// Push (RFC 8030/8291/8292, webpush*.go) or noop.
// It owns payload building, size limits, retries and the classification of
// provider errors into the sentinels below; the router decides what the
// caller sees. dispatch imports none of router, verify or cache: a dead token
// is reported as ErrTokenDead and the router removes the client.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Kind says how a notification is shown on the device.
type Kind uint8

const (
	// KindVisible is a cleartext alert with Title and Body (and optionally
	// ImageURL and URL), plus Data as custom data.
	KindVisible Kind = iota + 1
	// KindEncrypted is an encrypted message the wallet's notification
	// extension decrypts: Data carries "topic" and "blob". APNs gets
	// mutable-content with a placeholder alert, FCM a high-priority data
	// message.
	KindEncrypted
	// KindRaw carries Data ("topic", "tag", "message") and nothing visible.
	KindRaw
)

// Field is one custom-data entry. Values are strings because FCM's data map
// only holds strings.
type Field struct {
	Key, Value string
}

// Notification is what the router asks a provider to push. It is built in one
// place (router's message selection) and translated per provider here.
type Notification struct {
	Kind Kind
	// MessageID is the dedup id (legacy id or SHA-256 hex of the message).
	MessageID string
	// Title and Body are shown for KindVisible.
	Title, Body string
	// ImageURL and URL are optional extras of KindVisible.
	ImageURL, URL string
	// Data is custom data, in a stable order.
	Data []Field
}

// Provider type names, as clients register them.
const (
	TypeAPNS        = "apns"
	TypeAPNSSandbox = "apns-sandbox"
	TypeFCM         = "fcm"
	TypeWebPush     = "webpush"
	TypeNoop        = "noop"
)

// MaxPayloadSize is the largest push payload APNs and FCM accept, in bytes,
// and the largest Web Push record (RFC 8291's 4096 bytes, encryption
// overhead included).
const MaxPayloadSize = 4096

// Errors a Sender returns; wrapped errors match them with errors.Is.
var (
	// ErrTokenDead means the provider says the device token will never work
	// again (APNs BadDeviceToken / Unregistered / DeviceTokenNotForTopic, FCM
	// UNREGISTERED or an invalid registration). The client should be removed.
	ErrTokenDead = errors.New("dispatch: device token is no longer valid")
	// ErrPayloadTooLarge means the built payload exceeds MaxPayloadSize;
	// nothing was sent.
	ErrPayloadTooLarge = errors.New("dispatch: payload too large")
	// ErrUnavailable means the provider could not be reached, or answered 429
	// or 5xx, after the bounded retries. The message was not delivered.
	ErrUnavailable = errors.New("dispatch: provider unavailable")
	// ErrMisconfigured means the provider rejects something of our own
	// setup (credentials, topic, trust roots): every push to it fails the
	// same way until an operator acts. ErrCredentialsRejected is the part
	// of it that suspends a tenant's provider.
	ErrMisconfigured = errors.New("dispatch: provider rejected our credentials")
	// ErrCredentialsRejected means the provider host that answered refused
	// the credentials themselves (APNs InvalidProviderToken, BadCertificate
	// and the like, FCM UNAUTHENTICATED or PERMISSION_DENIED, a token
	// endpoint refusing the service account): docs/tenants.md has the
	// table. It is an ErrMisconfigured too (errors.Is matches both), so
	// callers that do not tell them apart answer the same; the router
	// suspends the tenant's provider for that host on this one alone, never
	// on an answer that one device token can cause.
	ErrCredentialsRejected = fmt.Errorf("dispatch: provider host refused our credentials: %w", ErrMisconfigured)
	// ErrProviderNotAvailable means no provider of that type is configured.
	ErrProviderNotAvailable = errors.New("dispatch: provider not configured")
)

// ProviderError carries what a provider answered. It unwraps to one of the
// sentinels above, so callers switch with errors.Is and show Error() to
// humans.
type ProviderError struct {
	Provider string // "apns", "apns-sandbox", "fcm", "webpush"
	Status   int    // HTTP status of the last answer, 0 when none came
	Reason   string // the provider's reason string, e.g. "BadDeviceToken"
	Attempts int    // how many times the push was tried
	Err      error  // one of the sentinels
	// Cause is the transport error of the last try when no answer came
	// (Status 0), e.g. a refused connection or a TLS rejection; nil
	// otherwise. It is shown by Error but not unwrapped: callers switch on
	// Err only.
	Cause error
}

func (e *ProviderError) Error() string {
	switch {
	case e.Status == 0 && e.Cause != nil:
		return fmt.Sprintf("%s: no answer after %d attempt(s): %v (%v)", e.Provider, e.Attempts, e.Err, e.Cause)
	case e.Status == 0:
		return fmt.Sprintf("%s: no answer after %d attempt(s): %v", e.Provider, e.Attempts, e.Err)
	case e.Reason != "":
		return fmt.Sprintf("%s answered %d %s after %d attempt(s)", e.Provider, e.Status, e.Reason, e.Attempts)
	default:
		return fmt.Sprintf("%s answered %d after %d attempt(s)", e.Provider, e.Status, e.Attempts)
	}
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Sender pushes one notification to one device token. Implementations are
// safe for concurrent use and return nil only when the provider accepted
// the push.
type Sender interface {
	Send(ctx context.Context, token string, n *Notification) error
}

// Noop is the provider that sends nothing and succeeds. It counts its sends
// so tests and load tests can see what went through.
type Noop struct {
	sent atomic.Uint64
}

// Send counts the notification and returns nil.
func (p *Noop) Send(ctx context.Context, token string, n *Notification) error {
	p.sent.Add(1)
	return nil
}

// Sent returns how many notifications Send has accepted.
func (p *Noop) Sent() uint64 { return p.sent.Load() }
