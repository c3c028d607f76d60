package main

import (
	"crypto/ecdsa"
	"strconv"
	"strings"
	"sync"
	"time"

	"push-server/dispatch/dispatchtest"
)

// APNs limits beyond the payload sizes (dispatchtest.APNsMaxPayload and
// APNsMaxVoIPPayload), from Apple's "Sending notification requests to APNs".
const (
	// apnsTokenMaxAge is how old a provider token's iat may be before APNs
	// answers ExpiredProviderToken.
	apnsTokenMaxAge = time.Hour
	// tokenCacheMax bounds the verified-token cache; a sender refreshes its
	// token every 20–60 minutes, so only a client minting tokens per push
	// would reach it.
	tokenCacheMax = 4096
)

// stream is one request being received: what the mock needs of its headers,
// and how much body has arrived. The body itself is not kept: the mock only
// checks its size.
type stream struct {
	id       uint32
	method   string
	path     string
	auth     string
	topic    string
	apnsID   string
	pushType string
	bodyLen  int
	// unacked is the body bytes (with padding) received since the last
	// stream-level WINDOW_UPDATE.
	unacked int
	// endStream is set when the client's last frame so far ended the stream.
	endStream bool
	// trailers is set while a trailer block is decoded; its fields are
	// ignored.
	trailers bool
	// refused marks a stream over maxStreams: its header block is decoded
	// (HPACK state is per connection) and then it is reset.
	refused bool
}

// check validates a complete request as APNs does, in dispatchtest's order,
// and returns 200 or Apple's status and reason for the first problem.
// dispatchtest also checks duplicate headers, push type, priority,
// expiration, collapse id and the payload's JSON; push-server's sender is
// tested against those there, and a load test only needs the mock to notice
// what would make Apple refuse a whole run (wrong credentials, topic or
// sizes).
func (c *conn) check(s *stream) (int, string) {
	if s.method != "POST" {
		return 405, "MethodNotAllowed"
	}
	token, ok := strings.CutPrefix(s.path, "/3/device/")
	if !ok {
		return 404, "BadPath"
	}
	if status, reason := dispatchtest.CheckAPNsDeviceToken(token); status != 200 {
		return status, reason
	}
	if status, reason := c.authorize(s.auth); status != 200 {
		return status, reason
	}
	if s.topic == "" {
		return 400, "MissingTopic"
	}
	if s.apnsID != "" && !dispatchtest.IsAPNsID(s.apnsID) {
		return 400, "BadMessageId"
	}
	limit := dispatchtest.APNsMaxPayload
	if s.pushType == "voip" {
		limit = dispatchtest.APNsMaxVoIPPayload
	}
	if s.bodyLen == 0 {
		return 400, "PayloadEmpty"
	}
	if s.bodyLen > limit {
		return 413, "PayloadTooLarge"
	}
	return 200, ""
}

// authorize checks an authorization header value. The connection remembers
// the last token it verified, so the hot path is one string comparison (the
// same string, even: HPACK hands out the dynamic table's copy) and a clock
// read; other tokens go through the server-wide cache.
func (c *conn) authorize(auth string) (int, string) {
	if auth == "" {
		return 403, "MissingProviderToken"
	}
	if auth != c.lastAuth {
		expires, ok := c.srv.tokens.check(auth)
		if !ok {
			return 403, "InvalidProviderToken"
		}
		c.lastAuth, c.lastExpires = auth, expires
	}
	if time.Now().After(c.lastExpires) {
		return 403, "ExpiredProviderToken"
	}
	return 200, ""
}

// tokenCache verifies provider tokens and remembers the good ones by their
// exact text: a sender signs one token per ~50 minutes and sends it with
// every push, so a load test pays for one ECDSA verification per token
// rather than per push. It is safe for concurrent use.
type tokenCache struct {
	keyID, teamID string
	key           *ecdsa.PublicKey

	mu sync.RWMutex
	ok map[string]time.Time // verified "bearer …" values → when they expire; guarded by mu
}

// check reports whether auth is a valid provider token and when it expires
// (iat + one hour). Expiry is the caller's to check: a cached token ages.
func (tc *tokenCache) check(auth string) (time.Time, bool) {
	tc.mu.RLock()
	exp, ok := tc.ok[auth]
	tc.mu.RUnlock()
	if ok {
		return exp, true
	}
	iat, ok := tc.verify(auth)
	if !ok {
		return time.Time{}, false
	}
	exp = iat.Add(apnsTokenMaxAge)
	tc.mu.Lock()
	if len(tc.ok) >= tokenCacheMax {
		clear(tc.ok)
	}
	tc.ok[auth] = exp
	tc.mu.Unlock()
	return exp, true
}

// verify checks a "bearer <JWT>" value against the one trusted key, as
// dispatchtest's mock does, and returns its iat.
func (tc *tokenCache) verify(auth string) (time.Time, bool) {
	return dispatchtest.VerifyAPNsProviderToken(auth, func(kid string) (*ecdsa.PublicKey, string, bool) {
		return tc.key, tc.teamID, kid == tc.keyID
	})
}

// errorBody is Apple's error answer, {"reason":"…"}.
func errorBody(reason string) []byte {
	b := make([]byte, 0, 16+len(reason))
	b = append(b, `{"reason":`...)
	b = strconv.AppendQuote(b, reason)
	return append(b, '}')
}
