package verify

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// Errors returned by [Relay.Verify] and [ParseTimestamp]. They are returned
// bare (never wrapped with per-request detail) so that the 401 path, which a
// misconfigured relay makes hot, does not allocate. Compare with errors.Is.
var (
	// ErrMissingTimestamp means the X-Ed25519-Timestamp header is absent or empty.
	ErrMissingTimestamp = errors.New("verify: missing timestamp")
	// ErrMissingSignature means the X-Ed25519-Signature header is absent or empty.
	ErrMissingSignature = errors.New("verify: missing signature")
	// ErrMalformedTimestamp means the timestamp is not an unsigned decimal integer
	// that fits in an int64.
	ErrMalformedTimestamp = errors.New("verify: timestamp is not a decimal integer")
	// ErrStaleTimestamp means the timestamp is further than the Relay's maxAge
	// from the server's clock, in the past or in the future.
	ErrStaleTimestamp = errors.New("verify: timestamp outside the allowed age")
	// ErrMalformedSignature means the signature is not hex, or does not decode to
	// exactly 64 bytes.
	ErrMalformedSignature = errors.New("verify: signature is not 128 hex digits")
	// ErrBadSignature means the signature is well formed but does not verify
	// under the relay's key for this timestamp and body.
	ErrBadSignature = errors.New("verify: signature does not match")
)

// errMissingBoth is built once so that a request without either header costs
// no allocation; errors.Is matches both sentinels, so the router can name both
// headers in its reply.
var errMissingBoth = errors.Join(ErrMissingTimestamp, ErrMissingSignature)

// msTimestampThreshold separates second from millisecond timestamps, per
// API.md: 10^12 seconds is the year 33658, while 10^12 milliseconds is 2001,
// so no real value is ambiguous.
const msTimestampThreshold = 1_000_000_000_000

// maxPooledMessage bounds the message buffers kept in msgPool: a rare huge
// body must not pin its buffer in memory for the life of the process.
const maxPooledMessage = 64 << 10

// msgPool holds *[]byte buffers for Relay.Verify, in which it builds
// R || A || message, the input of the SHA-512 that gives the challenge k. A pointer is pooled,
// not a slice, so that Put does not allocate to box the slice header.
var msgPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// Relay checks the relay's Ed25519 signature on a send request, with the
// semantics written down in the package documentation: cofactored
// verification, the same for every request whether it is checked alone or in
// a batch.
//
// A Relay is safe for concurrent use by many goroutines, except SetClock,
// which must be called before the Relay is shared. It starts no goroutine and
// holds nothing that needs closing: concurrent callers of Verify check each
// other's signatures in batches, up to one batch per processor at once (see
// batcher). The number of processors is read once, by NewRelay, from
// runtime.GOMAXPROCS.
type Relay struct {
	key    ed25519.PublicKey // our own copy; never the caller's slice
	maxAge time.Duration     // 0 turns the freshness check off
	now    func() time.Time

	// negA is a fixed-base table of multiples of -A, the negated relay key,
	// built once by NewRelay: with it [k](-A) costs what [s]B costs with
	// voi's built-in base-point table, about a quarter of a general scalar
	// multiplication.
	negA *curve.EdwardsBasepointTable
	// staticPoints are B and -A with voi's precomputed tables for variable-
	// time multi-scalar multiplication, the fixed part of the batch equation.
	staticPoints [2]*curve.ExpandedEdwardsPoint

	batch batcher

	// onEquation, when set by a test, is told of every equation check
	// evaluates (see equationKind).
	onEquation func(kind equationKind, signatures int)
}

// DefaultMaxAge is how far a signed timestamp may be from the clock
// (SIGNATURE_MAX_AGE), as echo-server allows.
const DefaultMaxAge = 300 * time.Second

// NewRelay returns a Relay that accepts signatures made by the private half of
// key over timestamps at most maxAge away from the clock. maxAge 0 turns the
// freshness check off (SIGNATURE_MAX_AGE=0). key is copied.
//
// The key must be a canonical encoding of a point in Ed25519's prime-order
// subgroup, which every key made by Ed25519 key generation is. NewRelay
// refuses the rest: bytes that are not a point, a non-canonical encoding, a
// small-order point (for which crypto/ed25519 accepts signatures that anyone
// can make) and a mixed-order point (one with a small-order component, which
// no key generation produces). NewRelay builds the key's precomputed table,
// which takes about 0.1 ms, so call it once at start-up.
func NewRelay(key ed25519.PublicKey, maxAge time.Duration) (*Relay, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify: relay public key is %d bytes; want %d", len(key), ed25519.PublicKeySize)
	}
	if maxAge < 0 {
		return nil, fmt.Errorf("verify: negative signature max age %s", maxAge)
	}
	negA, err := relayKeyPoint(key)
	if err != nil {
		return nil, fmt.Errorf("verify: relay public key %x: %w", []byte(key), err)
	}
	return &Relay{
		key:    append(ed25519.PublicKey(nil), key...),
		maxAge: maxAge,
		now:    time.Now,
		negA:   curve.NewEdwardsBasepointTable(negA),
		staticPoints: [2]*curve.ExpandedEdwardsPoint{
			curve.NewExpandedEdwardsPoint(curve.ED25519_BASEPOINT_POINT),
			curve.NewExpandedEdwardsPoint(negA),
		},
		batch: newBatcher(runtime.GOMAXPROCS(0)),
	}, nil
}

// relayKeyPoint checks that key is a canonical encoding of a prime-order
// point A and returns -A.
func relayKeyPoint(key ed25519.PublicKey) (*curve.EdwardsPoint, error) {
	var enc curve.CompressedEdwardsY
	copy(enc[:], key)
	if !enc.IsCanonicalVartime() {
		return nil, errors.New("not a canonical point encoding")
	}
	var a curve.EdwardsPoint
	if _, err := a.SetCompressedY(&enc); err != nil {
		return nil, fmt.Errorf("not a curve point: %w", err)
	}
	if a.IsSmallOrder() {
		return nil, errors.New("a small-order point, which would accept signatures anyone can make")
	}
	if !a.IsTorsionFree() {
		return nil, errors.New("a mixed-order point (it has a small-order component), which Ed25519 key generation never produces")
	}
	return a.Neg(&a), nil
}

// SetClock replaces the clock used by the freshness check; nil restores
// time.Now. It exists for tests and must be called before the Relay is shared
// between goroutines.
func (r *Relay) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	r.now = now
}

// Verify checks a send request. timestamp and signatureHex are the raw
// X-Ed25519-Timestamp and X-Ed25519-Signature header values (nil or empty
// means the header is missing) and body is the request body. Verify keeps no
// reference to any of them after it returns, so fasthttp's Peek and PostBody
// slices can be passed directly.
//
// It returns nil or exactly one of the package's sentinel errors, except when
// both headers are missing: then the error matches both ErrMissingTimestamp and
// ErrMissingSignature. The checks run in this order:
//
//  1. missing headers;
//  2. malformed timestamp, then malformed signature (cheap syntax checks);
//  3. the signature, by the rules in the package documentation;
//  4. freshness.
//
// The signature is checked before freshness on purpose. Checking freshness
// first would save no work against an attacker, who simply sends the current
// time, and it would tell an unauthenticated caller "stale" about a request
// that is really forged, which sends an operator chasing clock skew instead of
// a wrong key. With this order ErrStaleTimestamp always means "the relay really
// signed this, but too long ago (or its clock is off)", a replay or a skew.
//
// Many goroutines may call Verify at once; each blocks until its own result is
// known. Requests that wait at the same moment are checked together as one
// batch (see batch.go), which costs a fraction of checking them one by one;
// a lone request is checked at once, and several batches are checked at once
// on several processors. A signature's result never depends on the other
// requests in its batch.
//
// Verify does not allocate for its caller, on success or on any failure. A
// batch of 4 or more allocates 3 times inside voi (see batch.go), for all
// the requests in it; a batch holding a bad signature, 6 times.
func (r *Relay) Verify(timestamp, signatureHex, body []byte) error {
	switch {
	case len(timestamp) == 0 && len(signatureHex) == 0:
		return errMissingBoth
	case len(timestamp) == 0:
		return ErrMissingTimestamp
	case len(signatureHex) == 0:
		return ErrMissingSignature
	}
	ts, err := ParseTimestamp(timestamp)
	if err != nil {
		return err
	}
	// Fixed size, so it lives on the stack; the length check comes first
	// because hex.Decode would happily decode a shorter string.
	var sig [ed25519.SignatureSize]byte
	if len(signatureHex) != 2*ed25519.SignatureSize {
		return ErrMalformedSignature
	}
	if _, err := hex.Decode(sig[:], signatureHex); err != nil {
		return ErrMalformedSignature
	}

	p := pendingPool.Get().(*pending)
	ok := r.prepare(p, &sig, timestamp, body) && r.batch.verify(r, p)
	pendingPool.Put(p)
	if !ok {
		return ErrBadSignature
	}

	if r.maxAge > 0 && !r.fresh(ts) {
		return ErrStaleTimestamp
	}
	return nil
}

// fresh reports whether ts (unix seconds) is within maxAge of the clock, in
// either direction. Both sides are whole seconds, so a maxAge below one
// second accepts only the current second.
func (r *Relay) fresh(ts int64) bool {
	now := r.now().Unix()
	diff := now - ts // ts <= MaxInt64/1000 or < 10^12, so this cannot overflow for any real clock
	if diff < 0 {
		diff = -diff
	}
	// Compare in seconds: converting a huge diff to a Duration would overflow.
	if diff > int64(math.MaxInt64/time.Second) {
		return false
	}
	return time.Duration(diff)*time.Second <= r.maxAge
}

// AppendMessage appends the bytes a relay signs, "{timestamp}.{len(body)}.{body}",
// to dst and returns the extended slice. timestamp is used exactly as sent in
// the header; the signer (relay, CLI, load test, tests) and the verifier share
// this builder so they cannot drift apart.
func AppendMessage(dst, timestamp, body []byte) []byte {
	dst = append(dst, timestamp...)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, '.')
	return append(dst, body...)
}

// Sign returns the hex X-Ed25519-Signature value for timestamp and body, as
// the relay computes it. It is for the CLI, the load generator and tests; the
// server never signs.
func Sign(priv ed25519.PrivateKey, timestamp, body []byte) string {
	return hex.EncodeToString(ed25519.Sign(priv, AppendMessage(nil, timestamp, body)))
}

// ParseTimestamp parses an X-Ed25519-Timestamp value: an unsigned decimal
// integer of unix seconds, or of unix milliseconds when it is greater than
// 10^12 (then it is divided by 1000, rounding down). Signs, spaces, and values
// that overflow int64 are ErrMalformedTimestamp. It does not allocate.
func ParseTimestamp(b []byte) (unixSeconds int64, err error) {
	if len(b) == 0 {
		return 0, ErrMalformedTimestamp
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrMalformedTimestamp
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, ErrMalformedTimestamp
		}
		n = n*10 + d
	}
	if n > msTimestampThreshold {
		n /= 1000
	}
	return n, nil
}
