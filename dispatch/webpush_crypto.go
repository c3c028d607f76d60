package dispatch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"time"

	"push-server/internal/jsonstr"
)

// Why this file exists rather than webpush-go's SendNotificationWithContext:
// that function is the library's only entry point, and it signs a fresh
// VAPID JWT for every push (deriving the public key from the private one
// each time, then an ECDSA signature): a CPU profile of its send put that
// at half of the library's CPU, and BenchmarkWebPushSend measures 280-305
// µs of CPU per push through the library against 150-160 µs through this
// file, loopback server included (BENCHMARKS.md, shared machine). Its
// VapidExpiration option does not help: v1.4.0 ignores it and always writes
// exp = now + 12 h. A push service accepts the same JWT until its exp (RFC
// 8292 section 2 only caps exp at 24 h), so the header is signed once per
// push service origin and reused for most of its life (vapidCache). Since
// the library cannot be told to skip its own signing, the encryption it
// wraps (RFC 8291, a page of crypto/ecdh, HKDF and AES-GCM) is here too;
// webpush-go remains in the tests as a second implementation that the mock
// push service must agree with, and node's http_ece checks this one.

// webpushRecordSize is the rs field of the aes128gcm header: one record of
// at most 4096 bytes, the size every push service must accept (RFC 8291
// section 4).
const webpushRecordSize = MaxPayloadSize

// encryptWebPush appends to dst the aes128gcm body (RFC 8188 with RFC
// 8291's keys) carrying plaintext to the browser that holds the private
// half of ua and the authentication secret auth: the header (salt, record
// size, the sender's ephemeral public key) and one record, the plaintext
// followed by the last-record delimiter 2, sealed with AES-128-GCM. No
// padding is added: the push service learns the length, as it would with
// webpush-go's peers in other languages (web-push for node pads nothing).
func encryptWebPush(dst, plaintext []byte, ua *ecdh.PublicKey, auth []byte) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate the ephemeral key: %w", err)
	}
	shared, err := as.ECDH(ua)
	if err != nil {
		return nil, fmt.Errorf("ECDH with the subscription's key: %w", err)
	}
	asPub, uaPub := as.PublicKey().Bytes(), ua.Bytes()
	// RFC 8291 section 3.4: the input keying material binds the ECDH
	// secret to the auth secret and both public keys.
	prkKey, err := hkdf.Extract(sha256.New, shared, auth)
	if err != nil {
		return nil, err
	}
	ikm, err := hkdf.Expand(sha256.New, prkKey, "WebPush: info\x00"+string(uaPub)+string(asPub), 32)
	if err != nil {
		return nil, err
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("cannot draw a salt: %w", err)
	}
	// RFC 8188 sections 2.2 and 2.3.
	prk, err := hkdf.Extract(sha256.New, ikm, salt[:])
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	dst = append(dst, salt[:]...)
	dst = binary.BigEndian.AppendUint32(dst, webpushRecordSize)
	dst = append(dst, byte(len(asPub)))
	dst = append(dst, asPub...)
	// Seal in place after the header: the record is the plaintext and its
	// delimiter, and the sequence number 0 leaves the nonce as derived.
	start := len(dst)
	dst = append(dst, plaintext...)
	dst = append(dst, 2)
	return gcm.Seal(dst[:start], nonce, dst[start:], nil), nil
}

// VAPID JWT lifetimes. A push service refuses exp more than 24 h ahead;
// 12 h (webpush-go's and web-push's choice) leaves room for a clock that
// runs ahead, and renewing an hour before exp for one that runs behind.
const (
	vapidJWTLife  = 12 * time.Hour
	vapidJWTRenew = vapidJWTLife - time.Hour
	// maxVAPIDOrigins bounds the cache: there are a handful of push
	// services, but Edge's are many hosts under notify.windows.com.
	maxVAPIDOrigins = 1024
)

// vapidCache holds the Authorization header of one VAPID key per push
// service origin (the JWT's aud), signed once and reused until
// vapidJWTRenew has passed. It is safe for concurrent use.
type vapidCache struct {
	key     *ecdsa.PrivateKey
	public  string // base64url of the uncompressed public key, the k=
	subject string
	now     func() time.Time // time.Now; tests move it

	mu      sync.RWMutex
	headers map[string]vapidHeader // by origin; guarded by mu
}

type vapidHeader struct {
	value   string    // "vapid t=<JWT>, k=<key>"
	renewAt time.Time // when to sign a new one
}

func newVAPIDCache(k *vapidKey) (*vapidCache, error) {
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), k.private.Bytes())
	if err != nil {
		return nil, fmt.Errorf("VAPID key: %w", err)
	}
	return &vapidCache{key: key, public: k.public, subject: k.subject, now: time.Now, headers: make(map[string]vapidHeader)}, nil
}

// header returns the Authorization header for pushes to origin
// ("https://host[:port]").
func (c *vapidCache) header(origin string) (string, error) {
	now := c.now()
	c.mu.RLock()
	h, ok := c.headers[origin]
	c.mu.RUnlock()
	if ok && now.Before(h.renewAt) {
		return h.value, nil
	}
	// Two pushes may sign at once for a new origin; both headers are
	// valid, and the later store wins. A lock held across the signature
	// would make every push to other origins wait.
	value, err := c.sign(origin, now)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.headers) >= maxVAPIDOrigins {
		clear(c.headers) // rare: re-signing is cheap next to an unbounded map
	}
	c.headers[origin] = vapidHeader{value: value, renewAt: now.Add(vapidJWTRenew)}
	c.mu.Unlock()
	return value, nil
}

// vapidJWTHeader is the JOSE header of every VAPID JWT, base64url-encoded.
var vapidJWTHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"ES256"}`))

// sign makes the header of RFC 8292 section 3: an ES256 JWT with aud, exp
// and sub, and the public key it verifies under.
func (c *vapidCache) sign(origin string, now time.Time) (string, error) {
	claims := make([]byte, 0, 128)
	claims = append(claims, `{"aud":`...)
	claims = jsonstr.Append(claims, origin)
	claims = append(claims, `,"exp":`...)
	claims = strconv.AppendInt(claims, now.Add(vapidJWTLife).Unix(), 10)
	claims = append(claims, `,"sub":`...)
	claims = jsonstr.Append(claims, c.subject)
	claims = append(claims, '}')
	signing := vapidJWTHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, c.key, digest[:])
	if err != nil {
		return "", fmt.Errorf("cannot sign the VAPID JWT: %w", err)
	}
	var sig [64]byte // JWS ES256: r and s, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return "vapid t=" + signing + "." + base64.RawURLEncoding.EncodeToString(sig[:]) + ", k=" + c.public, nil
}
