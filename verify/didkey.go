package verify

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
)

// didKeyPrefix starts every did:key; the client id is what follows it.
const didKeyPrefix = "did:key:"

// ed25519Multicodec is the varint multicodec for "ed25519-pub" (0xed), which
// the did:key method puts in front of the raw 32-byte key before base58btc.
var ed25519Multicodec = [2]byte{0xed, 0x01}

// maxDIDKeyLen bounds what ParseDIDKey will decode: an Ed25519 did:key is
// "did:key:z" + 48 base58 digits, and base58 decoding is quadratic, so a long
// hostile issuer must be rejected before it costs anything.
const maxDIDKeyLen = len(didKeyPrefix) + 1 + 64

// errNotDIDKey is wrapped by every ParseDIDKey failure.
var errNotDIDKey = errors.New("not an Ed25519 did:key")

// DIDKey returns the did:key identifier of an Ed25519 public key:
// "did:key:z" followed by base58btc of 0xed 0x01 and the 32 key bytes, which
// always starts "did:key:z6Mk". It panics if pub is not 32 bytes, which is a
// programming error, never a request's.
func DIDKey(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("BUG: verify.DIDKey: public key is %d bytes; want %d", len(pub), ed25519.PublicKeySize))
	}
	var raw [2 + ed25519.PublicKeySize]byte
	copy(raw[:2], ed25519Multicodec[:])
	copy(raw[2:], pub)
	b := make([]byte, 0, maxDIDKeyLen)
	b = append(b, didKeyPrefix...)
	b = append(b, 'z')
	b = appendBase58(b, raw[:])
	return string(b)
}

// ParseDIDKey returns the Ed25519 public key named by a did:key identifier
// ("did:key:z6Mk…"). The "did:key:" prefix is required; other multibase
// encodings and other key types are rejected.
func ParseDIDKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(s, didKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("verify: %q does not start with %q: %w", truncate(s), didKeyPrefix, errNotDIDKey)
	}
	if len(s) > maxDIDKeyLen {
		return nil, fmt.Errorf("verify: did:key is %d bytes, too long: %w", len(s), errNotDIDKey)
	}
	enc, ok := strings.CutPrefix(rest, "z")
	if !ok {
		return nil, fmt.Errorf("verify: did:key %q is not multibase base58btc ('z'): %w", truncate(s), errNotDIDKey)
	}
	raw, err := decodeBase58(enc)
	if err != nil {
		return nil, fmt.Errorf("verify: did:key %q: %w: %w", truncate(s), err, errNotDIDKey)
	}
	if len(raw) != 2+ed25519.PublicKeySize || raw[0] != ed25519Multicodec[0] || raw[1] != ed25519Multicodec[1] {
		return nil, fmt.Errorf("verify: did:key %q does not hold an Ed25519 key (multicodec 0xed01 + 32 bytes): %w", truncate(s), errNotDIDKey)
	}
	return ed25519.PublicKey(raw[2:]), nil
}

// truncate keeps error messages about hostile input short.
func truncate(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

// base58Alphabet is the Bitcoin alphabet that multibase calls base58btc.
const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// base58Index maps an ASCII byte to its digit value, or 0xff.
var base58Index = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(base58Alphabet) {
		t[base58Alphabet[i]] = byte(i)
	}
	return t
}()

// appendBase58 appends the base58btc encoding of src to dst. Each leading zero
// byte becomes a leading '1'; the rest is the big-endian number in base 58.
// Quadratic, which is fine for the 34-byte inputs it is used on.
func appendBase58(dst, src []byte) []byte {
	zeros := 0
	for zeros < len(src) && src[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37, so this many digits always suffice.
	digits := make([]byte, (len(src)-zeros)*137/100+1)
	n := 0 // digits in use, least significant first
	for _, b := range src[zeros:] {
		carry := int(b)
		for i := 0; i < n; i++ {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits[n] = byte(carry % 58)
			carry /= 58
			n++
		}
	}
	for range zeros {
		dst = append(dst, '1')
	}
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, base58Alphabet[digits[i]])
	}
	return dst
}

// decodeBase58 is the inverse of appendBase58. Every string has exactly one
// decoding and every byte string exactly one encoding, so two different
// client ids can never name the same key.
func decodeBase58(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty base58")
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	// log(58)/log(256) < 0.733.
	out := make([]byte, (len(s)-zeros)*733/1000+1)
	n := 0 // bytes in use, least significant first
	for i := zeros; i < len(s); i++ {
		d := base58Index[s[i]]
		if d == 0xff {
			return nil, fmt.Errorf("invalid base58 character %q at %d", s[i], i)
		}
		carry := int(d)
		for j := 0; j < n; j++ {
			carry += int(out[j]) * 58
			out[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			out[n] = byte(carry)
			carry >>= 8
			n++
		}
	}
	res := make([]byte, zeros+n)
	for i := 0; i < n; i++ {
		res[zeros+i] = out[n-1-i]
	}
	return res, nil
}
