package dispatchtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// APNs payload limits, from Apple's "Sending notification requests to APNs".
// The load-test mock APNs (loadtest/cmd/mockapns) applies the same.
const (
	APNsMaxPayload     = 4096 // bytes of an alert or background push's payload
	APNsMaxVoIPPayload = 5120 // bytes of a VoIP push's payload
	apnsMaxCollapseID  = 64
	// apnsTokenMaxAge is how old a provider token's iat may be before APNs
	// answers ExpiredProviderToken.
	apnsTokenMaxAge = time.Hour
	// jwtCacheMax bounds the verified-JWT cache; a sender refreshes its token
	// every 20–60 minutes, so only tests that mint many tokens ever reach it.
	jwtCacheMax = 4096
)

// apnsPushTypes are the apns-push-type values Apple documents.
var apnsPushTypes = map[string]bool{
	"alert": true, "background": true, "location": true, "voip": true,
	"complication": true, "fileprovider": true, "mdm": true, "liveactivity": true,
	"pushtotalk": true, "widgets": true, "controls": true,
}

// apnsReasonStatus is the HTTP status Apple uses with each reason.
var apnsReasonStatus = map[string]int{
	"BadCollapseId": 400, "BadDeviceToken": 400, "BadExpirationDate": 400, "BadMessageId": 400,
	"BadPriority": 400, "BadTopic": 400, "DeviceTokenNotForTopic": 400, "DuplicateHeaders": 400,
	"IdleTimeout": 400, "InvalidPushType": 400, "MissingDeviceToken": 400, "MissingTopic": 400,
	"PayloadEmpty": 400, "TopicDisallowed": 400, "BadPayload": 400,
	"BadCertificate": 403, "BadCertificateEnvironment": 403, "ExpiredProviderToken": 403,
	"Forbidden": 403, "InvalidProviderToken": 403, "MissingProviderToken": 403,
	"UnrelatedKeyIdInToken": 403, "BadEnvironmentKeyIdInToken": 403,
	"BadPath":          404,
	"MethodNotAllowed": 405,
	"ExpiredToken":     410, "Unregistered": 410,
	"PayloadTooLarge":             413,
	"TooManyProviderTokenUpdates": 429, "TooManyRequests": 429,
	"InternalServerError": 500,
	"ServiceUnavailable":  503, "Shutdown": 503,
}

// apnsStatusReason is the reason a scripted Answer gets when it names only a
// status.
var apnsStatusReason = map[int]string{
	400: "BadDeviceToken", 403: "Forbidden", 404: "BadPath", 405: "MethodNotAllowed",
	410: "Unregistered", 413: "PayloadTooLarge", 429: "TooManyRequests",
	500: "InternalServerError", 503: "ServiceUnavailable",
}

// APNsOptions configures NewAPNs.
type APNsOptions struct {
	// Addr is the listen address; "" = 127.0.0.1:0.
	Addr string
	// TLS serves HTTP/2 over TLS with a fresh self-signed certificate for
	// 127.0.0.1 and localhost (see RootCAs); false serves HTTP/2 without TLS
	// (h2c, prior knowledge), which is what an http:// APNS_URL speaks. Either
	// way the mock speaks only HTTP/2, like Apple.
	TLS bool
	// Record keeps every request for Requests. Off, the mock only counts,
	// which is what a load test wants.
	Record bool
}

// APNsRequest is one request the APNs mock received.
type APNsRequest struct {
	Path   string      // URL path, e.g. /3/device/<token>
	Token  string      // the device token from the path
	Header http.Header // the request headers (a copy)
	Body   []byte      // the request body (a copy)
	Status int         // the HTTP status answered; 0 when the client gave up during a Delay
	Reason string      // the APNs reason answered; "" on success
}

// APNs is a mock of Apple's HTTP/2 provider API (POST /3/device/{token}).
//
// Authentication: until TrustKey, TrustClientCerts or AcceptAnyClientCert is
// called, the mock accepts any push (open mode, for load tests and the
// mock-providers command). After, a push needs a valid provider token or a
// trusted client certificate, as with Apple.
//
// All methods are safe for concurrent use.
type APNs struct {
	srv     *server
	url     string
	record  bool
	cert    mockCert // the server certificate, when TLS
	ids     *idGen
	count   atomic.Int64
	answers script

	authMu     sync.RWMutex
	keys       map[string]apnsKey         // by key id; guarded by authMu
	clientPool *x509.CertPool             // guarded by authMu
	anyCert    bool                       // guarded by authMu
	jwts       map[string]apnsJWT         // verified "bearer …" values; guarded by authMu
	certs      map[*x509.Certificate]bool // verified client leaf certs; guarded by authMu

	recMu sync.Mutex
	reqs  []APNsRequest // guarded by recMu
}

type apnsKey struct {
	teamID string
	pub    *ecdsa.PublicKey
}

// apnsJWT is what a verified provider token said; the signature is not
// checked again while the token is cached.
type apnsJWT struct {
	iat time.Time
}

// NewAPNs starts an APNs mock. Close it when done.
func NewAPNs(opts APNsOptions) (*APNs, error) {
	m := &APNs{
		record: opts.Record,
		ids:    newIDGen(),
		keys:   make(map[string]apnsKey),
		jwts:   make(map[string]apnsJWT),
		certs:  make(map[*x509.Certificate]bool),
	}
	var cfg *tls.Config
	if opts.TLS {
		cert, mc, err := newMockCert("push-server APNs mock")
		if err != nil {
			return nil, err
		}
		m.cert = mc
		cfg = &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
			// Request, not require or verify: whether a certificate is
			// trusted is decided per push, so TrustClientCerts works after
			// start and an untrusted one gets Apple's 403 instead of a failed
			// handshake.
			ClientAuth: tls.RequestClientCert,
		}
	}
	srv, base, err := listenMock(opts.Addr, m, http.Protocols{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot start APNs mock: %w", err)
	}
	m.srv, m.url = srv, base
	return m, nil
}

// StartAPNs starts an APNs mock that records requests (TLS or h2c) and closes
// it when the test ends.
func StartAPNs(t testing.TB, tls bool) *APNs {
	t.Helper()
	m, err := NewAPNs(APNsOptions{TLS: tls, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// URL returns the base URL for APNS_URL: "https://127.0.0.1:port" with TLS,
// "http://127.0.0.1:port" for h2c.
func (m *APNs) URL() string { return m.url }

// RootCAs returns a pool that trusts the mock's self-signed certificate; nil
// for h2c.
func (m *APNs) RootCAs() *x509.CertPool { return m.cert.roots }

// CertPEM returns the mock's TLS certificate in PEM form (nil for h2c), for
// processes that cannot be handed RootCAs.
func (m *APNs) CertPEM() []byte {
	return m.cert.pem()
}

// TrustKey makes the mock accept ES256 provider tokens whose header kid is
// keyID, whose iss is teamID and that pub verifies. Token auth is then
// required of every push that has no trusted client certificate.
func (m *APNs) TrustKey(keyID, teamID string, pub *ecdsa.PublicKey) {
	m.authMu.Lock()
	defer m.authMu.Unlock()
	m.keys[keyID] = apnsKey{teamID: teamID, pub: pub}
	clear(m.jwts) // a replaced key must not keep its tokens valid
}

// TrustClientCerts makes the mock accept pushes over connections whose client
// certificate chains to pool (TLS only). Certificate auth is then required of
// every push that has no valid provider token.
func (m *APNs) TrustClientCerts(pool *x509.CertPool) {
	m.authMu.Lock()
	defer m.authMu.Unlock()
	m.clientPool = pool
	clear(m.certs)
}

// AcceptAnyClientCert makes the mock accept pushes over any connection that
// presents a client certificate (TLS only), whoever issued it. A push without
// certificate or provider token is still refused.
func (m *APNs) AcceptAnyClientCert() {
	m.authMu.Lock()
	defer m.authMu.Unlock()
	m.anyCert = true
}

// Script sets the answers for pushes to token that pass validation, in order;
// the last one repeats. No answers removes the script. Token "" sets the
// default script, for tokens without one of their own.
func (m *APNs) Script(token string, answers ...Answer) { m.answers.set(token, answers) }

// Requests returns every request received since the start or the last Reset,
// in order. It is a copy; empty when Record is off.
func (m *APNs) Requests() []APNsRequest {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	return append([]APNsRequest(nil), m.reqs...)
}

// Count returns how many pushes the mock accepted (answered 200) since the
// start or the last Reset.
func (m *APNs) Count() int64 { return m.count.Load() }

// Reset forgets the recorded requests, the scripts and the count. Trusted
// keys and certificates stay.
func (m *APNs) Reset() {
	m.answers.reset()
	m.recMu.Lock()
	m.reqs = nil
	m.count.Store(0)
	m.recMu.Unlock()
}

// Close stops the mock and closes its connections.
func (m *APNs) Close() error { return m.srv.close() }

// ServeHTTP answers one request as APNs would.
func (m *APNs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.URL.Path, "/3/device/")
	limit := APNsMaxPayload
	if r.Header.Get("apns-push-type") == "voip" {
		limit = APNsMaxVoIPPayload
	}
	bp, err := readBody(r, limit)
	defer bufPool.Put(bp)
	body := *bp

	var status int
	var reason string
	if err != nil {
		status, reason = 400, "BadPayload"
	} else {
		status, reason = m.check(r, token, body, limit)
	}
	var retryAfter string
	if status == http.StatusOK {
		if a, ok := m.answers.next(token); ok {
			if !a.wait(r.Context(), token) {
				m.save(r, token, body, 0, "")
				return
			}
			status, reason, retryAfter = apnsAnswer(a)
		}
	}

	h := w.Header()
	id := r.Header.Get("apns-id")
	if !IsAPNsID(id) {
		id = m.ids.uuid()
	}
	h.Set("apns-id", id)
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	if status == http.StatusOK {
		m.count.Add(1)
		w.WriteHeader(status)
	} else {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(apnsError(reason, status))
	}
	m.save(r, token, body, status, reason)
}

// apnsAnswer resolves a scripted answer into status, reason and Retry-After.
func apnsAnswer(a Answer) (int, string, string) {
	status, reason := a.Status, a.Reason
	if status == 0 {
		status = http.StatusOK
		if reason != "" {
			if status = apnsReasonStatus[reason]; status == 0 {
				status = http.StatusBadRequest
			}
		}
	}
	if status != http.StatusOK && reason == "" {
		reason = apnsStatusReason[status]
	}
	return status, reason, a.RetryAfter
}

// apnsError is Apple's error body; 410 also carries the time (milliseconds)
// at which the token stopped being valid, which apns2 parses as an integer.
func apnsError(reason string, status int) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"reason":`...)
	b = strconv.AppendQuote(b, reason)
	if status == http.StatusGone {
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	}
	return append(b, '}')
}

func (m *APNs) save(r *http.Request, token string, body []byte, status int, reason string) {
	if !m.record {
		return
	}
	req := APNsRequest{
		Path:   r.URL.Path,
		Token:  token,
		Header: r.Header.Clone(),
		Body:   append([]byte(nil), body...),
		Status: status,
		Reason: reason,
	}
	m.recMu.Lock()
	m.reqs = append(m.reqs, req)
	m.recMu.Unlock()
}

// check validates a push the way APNs does and returns 200 or Apple's status
// and reason for the first problem. body is at most limit+1 bytes.
func (m *APNs) check(r *http.Request, token string, body []byte, limit int) (int, string) {
	if r.Method != http.MethodPost {
		return 405, "MethodNotAllowed"
	}
	if !strings.HasPrefix(r.URL.Path, "/3/device/") {
		return 404, "BadPath"
	}
	if status, reason := CheckAPNsDeviceToken(token); status != http.StatusOK {
		return status, reason
	}
	if status, reason := m.authorize(r); status != http.StatusOK {
		return status, reason
	}
	h := r.Header
	for _, name := range [...]string{"Apns-Topic", "Apns-Push-Type", "Apns-Priority", "Apns-Expiration", "Apns-Id", "Apns-Collapse-Id", "Authorization"} {
		if len(h[name]) > 1 {
			return 400, "DuplicateHeaders"
		}
	}
	if h.Get("apns-topic") == "" {
		return 400, "MissingTopic"
	}
	// Apple accepts a missing apns-push-type (it is required for watchOS
	// only), but not an unknown one.
	if pt := h.Get("apns-push-type"); pt != "" && !apnsPushTypes[pt] {
		return 400, "InvalidPushType"
	}
	switch h.Get("apns-priority") {
	case "", "1", "5", "10":
	default:
		return 400, "BadPriority"
	}
	if exp := h.Get("apns-expiration"); exp != "" {
		if _, err := strconv.ParseInt(exp, 10, 64); err != nil {
			return 400, "BadExpirationDate"
		}
	}
	if id := h.Get("apns-id"); id != "" && !IsAPNsID(id) {
		return 400, "BadMessageId"
	}
	if len(h.Get("apns-collapse-id")) > apnsMaxCollapseID {
		return 400, "BadCollapseId"
	}
	if len(body) == 0 {
		return 400, "PayloadEmpty"
	}
	if len(body) > limit {
		return 413, "PayloadTooLarge"
	}
	if !hasAPSDict(body) {
		return 400, "BadPayload"
	}
	return http.StatusOK, ""
}

// hasAPSDict reports whether body is a valid JSON object whose "aps" member is
// an object. It walks the bytes instead of unmarshalling, which was most of
// the mock's own cost in BenchmarkAPNsPush.
func hasAPSDict(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	found := false
	for i < len(body) && body[i] == '"' {
		end := skipString(body, i)
		key := body[i:end]
		i = skipSpace(body, end)
		i = skipSpace(body, i+1) // the ':'
		if isKey(key, "aps") {
			found = body[i] == '{' // a repeated member wins, as in encoding/json
		}
		i = skipSpace(body, skipValue(body, i))
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return found
}

// isKey reports whether quoted, a JSON string with its quotes, is name.
func isKey(quoted []byte, name string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1:len(quoted)-1]) == name
	}
	var s string // escaped spellings such as "\u0061ps" are rare; decode them properly
	return json.Unmarshal(quoted, &s) == nil && s == name
}

// The skip helpers assume valid JSON (json.Valid said so) and return the
// index just past what they skip.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// authorize applies Apple's provider authentication: a provider token when
// one is sent, else a client certificate; nothing is required until the
// test trusts a key or certificates.
func (m *APNs) authorize(r *http.Request) (int, string) {
	m.authMu.RLock()
	required := len(m.keys) > 0 || m.clientPool != nil || m.anyCert
	m.authMu.RUnlock()
	if !required {
		return http.StatusOK, ""
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		return m.checkJWT(auth)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if m.checkClientCert(r.TLS.PeerCertificates) {
			return http.StatusOK, ""
		}
		return 403, "BadCertificate"
	}
	return 403, "MissingProviderToken"
}

// checkClientCert reports whether the client's chain is trusted, caching the
// answer per leaf (one per connection).
func (m *APNs) checkClientCert(chain []*x509.Certificate) bool {
	leaf := chain[0]
	m.authMu.RLock()
	ok, cached := m.certs[leaf]
	pool, anyCert := m.clientPool, m.anyCert
	m.authMu.RUnlock()
	if cached {
		return ok
	}
	ok = anyCert
	if !ok && pool != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		ok = err == nil
	}
	m.authMu.Lock()
	if len(m.certs) >= jwtCacheMax {
		clear(m.certs)
	}
	m.certs[leaf] = ok
	m.authMu.Unlock()
	return ok
}

// checkJWT validates an "authorization: bearer <JWT>" value. A verified token
// is cached by its exact text, so a load test pays for one ECDSA verification
// per token rather than per push; only its age is checked again.
func (m *APNs) checkJWT(auth string) (int, string) {
	now := time.Now()
	m.authMu.RLock()
	c, ok := m.jwts[auth]
	m.authMu.RUnlock()
	if !ok {
		var status int
		var reason string
		c, status, reason = m.verifyJWT(auth)
		if status != http.StatusOK {
			return status, reason
		}
		m.authMu.Lock()
		if len(m.jwts) >= jwtCacheMax {
			clear(m.jwts)
		}
		m.jwts[auth] = c
		m.authMu.Unlock()
	}
	if now.Sub(c.iat) > apnsTokenMaxAge {
		return 403, "ExpiredProviderToken"
	}
	return http.StatusOK, ""
}

// verifyJWT checks the token's form, key id, issuer and ES256 signature.
func (m *APNs) verifyJWT(auth string) (apnsJWT, int, string) {
	iat, ok := VerifyAPNsProviderToken(auth, func(kid string) (*ecdsa.PublicKey, string, bool) {
		m.authMu.RLock()
		key, ok := m.keys[kid]
		m.authMu.RUnlock()
		return key.pub, key.teamID, ok
	})
	if !ok {
		return apnsJWT{}, 403, "InvalidProviderToken"
	}
	return apnsJWT{iat: iat}, http.StatusOK, ""
}

// VerifyAPNsProviderToken checks an APNs provider token as APNs does: auth is
// the authorization header's value ("bearer <JWT>", the scheme in any case),
// the JWT must be ES256 with an iat, signed by the key keyFor returns for its
// kid and issued (iss) by that key's team. It returns the token's iat; its age
// is the caller's to judge (APNs refuses tokens older than an hour).
func VerifyAPNsProviderToken(auth string, keyFor func(kid string) (pub *ecdsa.PublicKey, teamID string, ok bool)) (iat time.Time, ok bool) {
	tok, ok := bearer(auth)
	if !ok {
		return time.Time{}, false
	}
	hdrB64, rest, ok1 := strings.Cut(tok, ".")
	claimsB64, sigB64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Iat *int64 `json:"iat"`
	}
	if decodeJSONSegment(hdrB64, &hdr) != nil || decodeJSONSegment(claimsB64, &claims) != nil {
		return time.Time{}, false
	}
	if hdr.Alg != "ES256" || claims.Iat == nil {
		return time.Time{}, false
	}
	pub, teamID, ok := keyFor(hdr.Kid)
	if !ok || claims.Iss != teamID {
		return time.Time{}, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != 64 {
		return time.Time{}, false
	}
	digest := sha256.Sum256([]byte(tok[:len(hdrB64)+1+len(claimsB64)]))
	rr, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], rr, ss) {
		return time.Time{}, false
	}
	return time.Unix(*claims.Iat, 0), true
}

// decodeJSONSegment decodes one base64url (unpadded) JWT segment into v.
func decodeJSONSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("cannot decode JWT segment: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cannot parse JWT segment: %w", err)
	}
	return nil
}

// SelfSignedCert makes a fresh P-256 certificate for 127.0.0.1, ::1,
// localhost and *.push-server.test, named commonName, that is its own CA, so that a client can
// trust it directly (in RootCAs, or as SSL_CERT_FILE). The mocks here and
// the load-test mock APNs serve TLS with it.
func SelfSignedCert(commonName string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot generate a TLS key for %s: %w", commonName, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		// *.push-server.test: names a test proxy resolves to 127.0.0.1
		// (testkit.Proxy), for traffic that must go through the proxy.
		DNSNames:    []string{"localhost", "*.push-server.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot create a certificate for %s: %w", commonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot parse the certificate for %s: %w", commonName, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// CheckAPNsDeviceToken returns the status and reason APNs answers for the
// device token of a request path (what follows /3/device/): 200 and "" for
// a hex token.
func CheckAPNsDeviceToken(token string) (int, string) {
	if token == "" {
		return 400, "MissingDeviceToken"
	}
	for i := 0; i < len(token); i++ {
		if !isHex(token[i]) {
			return 400, "BadDeviceToken"
		}
	}
	return http.StatusOK, ""
}
