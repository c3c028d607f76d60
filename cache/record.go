package cache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A client record is one value, so that it is written and read atomically:
//
//	[0]      recordVersion (1), or recordStamped (2)
//	[1]      flags (bit 0: always_raw, bit 1: bound)
//	[2:10]   registration nonce, big endian
//	[10:42]  sha256(token)
//	[42:50]  only in version 2: when the registration was last refreshed
//	         (registered, or sent to), unix milliseconds, big endian
//	then     len(type), type, then the token up to the end
//
// The nonce and the token hash sit at fixed offsets so that the Redis Lua
// scripts can compare them with string.sub without parsing the record.
// Version 2 is written only with a client TTL, so that a server without one
// stores what it always did.
const (
	recordVersion   = 1
	recordStamped   = 2
	recordFlagsOff  = 1
	recordNonceOff  = recordFlagsOff + 1
	recordHashOff   = recordNonceOff + 8
	recordTypeOff   = recordHashOff + sha256.Size
	recordHeaderLen = recordTypeOff + 1
	recordStampLen  = 8

	flagAlwaysRaw = 1
	flagBound     = 2
)

// recordLua spells the layout above for the Redis scripts (recordScript),
// in Lua's terms: string.sub(v, i, j) is Go's v[i-1:j], string.byte(v, i)
// is v[i-1]. The scripts name the parts, so the offsets are written once.
var recordLua = strings.NewReplacer(
	"$VERSION", luaIndex(0),
	"$FLAGS", luaIndex(recordFlagsOff),
	"$BOUND", strconv.Itoa(flagBound),
	"$STAMPEDTAIL", luaIndex(recordTypeOff+recordStampLen), // after a version 2 header
	"$STAMPED", strconv.Itoa(recordStamped),
	"$NONCE", luaRange(recordNonceOff, recordHashOff),
	"$HASH", luaRange(recordHashOff, recordTypeOff),
	"$HEAD", luaRange(recordFlagsOff, recordTypeOff), // flags, nonce and hash
	"$TAIL", luaIndex(recordTypeOff), // after a version 1 header
)

// luaIndex is the Lua position of Go's index i.
func luaIndex(i int) string { return strconv.Itoa(i + 1) }

// luaRange is the string.sub bounds of Go's [from:to].
func luaRange(from, to int) string { return luaIndex(from) + ", " + strconv.Itoa(to) }

// flaggedBound reports whether the stored record v has its bound flag set,
// read from the flags byte alone so that it holds for a record that does
// not decode too (as the Redis scripts read it).
func flaggedBound(v []byte) bool {
	return len(v) > recordFlagsOff && v[recordFlagsOff]&flagBound != 0
}

// errCorruptRecord means a stored record does not decode; it is our bug or a
// foreign writer, not an outage, so it does not wrap ErrUnavailable.
var errCorruptRecord = errors.New("cache: corrupt client record")

type record struct {
	nonce     uint64
	hash      [sha256.Size]byte
	typ       string
	token     string
	alwaysRaw bool
	bound     bool
	// stamp is when the registration was last refreshed, unix ms; 0 in
	// a version 1 record.
	stamp int64
}

// appendRecord appends the encoding of c registered with nonce to dst and
// returns the extended slice. A stamp (unix ms) other than 0 makes it a
// version 2 record.
func appendRecord(dst []byte, c Client, nonce uint64, hash *[sha256.Size]byte, stamp int64) ([]byte, error) {
	if len(c.Type) > 255 {
		return dst, fmt.Errorf("cannot encode client %q: type is %d bytes, at most 255 fit", c.ID, len(c.Type))
	}
	var flags byte
	if c.AlwaysRaw {
		flags |= flagAlwaysRaw
	}
	if c.Bound {
		flags |= flagBound
	}
	version := byte(recordVersion)
	if stamp != 0 {
		version = recordStamped
	}
	dst = append(dst, version, flags)
	dst = binary.BigEndian.AppendUint64(dst, nonce)
	dst = append(dst, hash[:]...)
	if stamp != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(stamp))
	}
	dst = append(dst, byte(len(c.Type)))
	dst = append(dst, c.Type...)
	return append(dst, c.Token...), nil
}

// decodeRecord parses b into strings of its own, so b may be reused (one
// copy for the type and token together).
func decodeRecord(b []byte) (record, error) {
	return decodeRecordString(string(b))
}

// decodeRecordString parses s; the type and token share s's memory, so a
// record read from rueidis' client-side cache decodes without allocating.
func decodeRecordString(s string) (record, error) {
	var r record
	if len(s) < recordHeaderLen || s[0] != recordVersion && s[0] != recordStamped {
		return r, errCorruptRecord
	}
	typeOff := recordTypeOff
	if s[0] == recordStamped {
		if len(s) < recordHeaderLen+recordStampLen {
			return r, errCorruptRecord
		}
		r.stamp = int64(binary.BigEndian.Uint64([]byte(s[recordTypeOff : recordTypeOff+recordStampLen])))
		typeOff += recordStampLen
	}
	r.alwaysRaw = s[recordFlagsOff]&flagAlwaysRaw != 0
	r.bound = s[recordFlagsOff]&flagBound != 0
	r.nonce = binary.BigEndian.Uint64([]byte(s[recordNonceOff:recordHashOff]))
	copy(r.hash[:], s[recordHashOff:recordTypeOff])
	n := int(s[typeOff])
	if len(s) < typeOff+1+n {
		return r, errCorruptRecord
	}
	r.typ = s[typeOff+1 : typeOff+1+n]
	r.token = s[typeOff+1+n:]
	return r, nil
}

// nonceSource hands out numbers that are unique within the process and, with
// a random 64-bit base, unique across processes with overwhelming
// probability. They tell one registration or reservation from a later one on
// the same key.
type nonceSource struct {
	n atomic.Uint64
}

func newNonceSource() *nonceSource {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ crashes instead).
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	s := &nonceSource{}
	s.n.Store(binary.BigEndian.Uint64(b[:]))
	return s
}

func (s *nonceSource) next() uint64 {
	for {
		if n := s.n.Add(1); n != 0 { // 0 is never handed out, so it can mean "none"
			return n
		}
	}
}

// appendTenant appends an unambiguous spelling of tenant to dst. Tenant ids
// allowed by the API ([A-Za-z0-9_-]) are kept as they are, so keys stay
// readable; anything else is hex-encoded behind a '~', which the allowed
// alphabet cannot produce, so no two tenants share a spelling and a tenant can
// never contain the '/' that ends it in a key.
func appendTenant(dst []byte, tenant string) []byte {
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			const hexDigits = "0123456789abcdef"
			dst = append(dst, '~')
			for j := 0; j < len(tenant); j++ {
				dst = append(dst, hexDigits[tenant[j]>>4], hexDigits[tenant[j]&15])
			}
			return dst
		}
	}
	return append(dst, tenant...)
}

// refreshDue reports whether a record stamped at stamp (unix ms; 0 for
// none) should be refreshed at now (unix ms) under a client TTL: once a
// tenth of the TTL has passed, so a registration is written at most ten
// times per TTL however often it is sent to, and expires between 0.9 and 1
// TTL after its last registration or send.
func refreshDue(stamp, now int64, ttl time.Duration) bool {
	return now-stamp >= ttl.Milliseconds()/clientRefreshDivisor
}

// clientRefreshDivisor: see refreshDue.
const clientRefreshDivisor = 10

// recordExpired reports whether a record stamped at stamp has outlived ttl
// at now (unix ms). A record without a stamp (written without a TTL) never
// expires by its stamp; its first send refreshes it.
func recordExpired(stamp, now int64, ttl time.Duration) bool {
	return ttl > 0 && stamp != 0 && now-stamp >= ttl.Milliseconds()
}
