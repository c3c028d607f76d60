package dispatchtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// webpushMaxRecord is the largest aes128gcm body a push service
	// accepts: RFC 8291 section 4 (4096 bytes, its header included).
	webpushMaxRecord = 4096
	// webpushMaxJWTLife is how far ahead a VAPID JWT's exp may be: RFC
	// 8292 section 2, "no more than 24 hours from the time of the request".
	webpushMaxJWTLife = 24 * time.Hour
	// webpushMaxSubscriptions bounds the subscriptions one mock holds, so a
	// stranger posting to /subscribe of a long-running mock-providers
	// cannot grow it without end.
	webpushMaxSubscriptions = 10_000
	// webpushKept is how many delivered messages a mock that does not
	// record keeps for GET /messages, the newest last.
	webpushKept = 100
	// webpushAuthLen and webpushSaltLen are RFC 8291's sizes.
	webpushAuthLen = 16
	webpushSaltLen = 16
)

// WebPushOptions configures NewWebPushService.
type WebPushOptions struct {
	// Addr is the listen address; "" = 127.0.0.1:0.
	Addr string
	// TLS serves HTTPS (HTTP/2 and HTTP/1.1) with a self-signed
	// certificate (RootCAs trusts it), as the real push services do; off,
	// plain HTTP/1.1 and h2c on a loopback address, which
	// WEBPUSH_ALLOWED_ORIGINS allows for mocks.
	TLS bool
	// Record keeps every request for Requests and every delivered message
	// for Received. Off, the mock only counts, and keeps the last
	// webpushKept delivered messages for GET /messages.
	Record bool
	// Host, when set, is the host name the mock's origin names instead of
	// its listener's address (the port stays the listener's): the
	// endpoints Subscribe makes carry it, and a VAPID JWT's aud must be
	// that origin, as a real push service checks its own name. It is for
	// names only a test proxy resolves (testkit.Proxy, *.push-server.test,
	// which the TLS certificate covers): Go never sends a loopback address
	// to a proxy, so a push that must go through one needs such a name.
	Host string
}

// WebPushMessage is one push the mock accepted (201), decrypted: what the
// browser's service worker would get in its push event.
type WebPushMessage struct {
	Subscription string // the subscription's JSON, as Subscribe returned it
	Plaintext    []byte // the decrypted payload
	TTL          int    // the TTL header
	Urgency      string // the Urgency header, "" when absent
	Topic        string // the Topic header, "" when absent
	// The VAPID JWT's claims and key, checked before the push was taken.
	Subject   string    // sub
	Audience  string    // aud
	Expires   time.Time // exp
	PublicKey string    // the k= of the Authorization header, base64url
	Proto     string    // the request's protocol, e.g. "HTTP/2.0"
}

// WebPushRequest is one request to a subscription's endpoint, whatever the
// mock answered.
type WebPushRequest struct {
	Subscription string      // "" when the endpoint names no subscription of the mock
	Header       http.Header // the request headers (a copy)
	BodySize     int         // bytes of the request body read (at most webpushMaxRecord+1)
	Status       int         // the HTTP status answered; 0 when the client gave up during a Delay
	Reason       string      // why the mock refused it; "" on success
	Plaintext    []byte      // the decrypted payload, nil when it was not decrypted
}

// WebPushService is a mock of a browser's push service (RFC 8030): the
// endpoints of the subscriptions Subscribe makes take POSTs as Chrome's,
// Firefox's and Safari's push services do, and the mock plays the browser
// too, decrypting each push with the subscription's private key.
//
// A push is answered 201 after these checks, each failing as the real ones
// do: the subscription exists (404; 410 after Unsubscribe); an
// "Authorization: vapid t=<JWT>, k=<key>" header whose JWT is ES256 under k,
// with aud = Origin(), exp in the future and at most 24 hours ahead, and a
// sub (401); k equal to the applicationServerKey the subscription was made
// with (403); Content-Encoding aes128gcm and a TTL header (400); a body of at
// most 4096 bytes (413) that decrypts (RFC 8291, one record; 400). Script
// overrides the answer per subscription: 429 with Retry-After, 5xx, or a
// 3xx redirect whose target (Redirected counts requests to it) accepts
// anything, so a sender that follows redirects shows.
//
// It also serves POST /subscribe (body {"applicationServerKey":"…"} or
// empty; answers the subscription JSON) and GET /messages (the delivered
// messages as JSON), for trying the gateway by hand with mock-providers.
// All methods are safe for concurrent use.
type WebPushService struct {
	srv     *server
	url     string
	cert    mockCert // the server certificate, when TLS
	record  bool
	count   atomic.Int64
	redirs  atomic.Int64
	answers script

	subMu sync.RWMutex
	subs  map[string]*webpushSub // by endpoint id; guarded by subMu

	recMu sync.Mutex
	reqs  []WebPushRequest // guarded by recMu; Record only
	msgs  []WebPushMessage // guarded by recMu; all with Record, else the last webpushKept
}

// webpushSub is one subscription: the browser's side of it.
type webpushSub struct {
	json      string
	key       *ecdh.PrivateKey
	auth      []byte
	serverKey string // applicationServerKey it was made with, base64url; "" = any
	gone      atomic.Bool
}

// NewWebPushService starts a mock push service. Close it when done.
func NewWebPushService(opts WebPushOptions) (*WebPushService, error) {
	m := &WebPushService{record: opts.Record, subs: make(map[string]*webpushSub)}
	var protos http.Protocols
	protos.SetHTTP1(true)
	var cfg *tls.Config
	if opts.TLS {
		cert, mc, err := newMockCert("push-server Web Push mock")
		if err != nil {
			return nil, err
		}
		m.cert = mc
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	srv, base, err := listenMock(opts.Addr, m, protos, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot start Web Push mock: %w", err)
	}
	if opts.Host != "" {
		if base, err = withHost(base, opts.Host); err != nil {
			_ = srv.close()
			return nil, fmt.Errorf("cannot start Web Push mock: %w", err)
		}
	}
	m.srv, m.url = srv, base
	return m, nil
}

// withHost returns base ("scheme://ip:port") with host in place of its
// address, keeping the port.
func withHost(base, host string) (string, error) {
	if strings.ContainsAny(host, ":/[]@?#") {
		return "", fmt.Errorf("host %q: want a bare host name", host)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("cannot parse the listener's URL %q: %w", base, err)
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String(), nil
}

// StartWebPushService starts a mock push service that records requests
// (TLS or plain HTTP) and closes it when the test ends.
func StartWebPushService(t testing.TB, useTLS bool) *WebPushService {
	t.Helper()
	m, err := NewWebPushService(WebPushOptions{TLS: useTLS, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// Origin returns the mock's origin, "http://127.0.0.1:port" (or https with
// TLS; WebPushOptions.Host in place of 127.0.0.1 when set): the value for
// WEBPUSH_ALLOWED_ORIGINS, and the aud a VAPID JWT for its endpoints must
// carry.
func (m *WebPushService) Origin() string { return m.url }

// RootCAs returns a pool that trusts the mock's certificate; nil without TLS.
func (m *WebPushService) RootCAs() *x509.CertPool { return m.cert.roots }

// CertPEM returns the mock's certificate as PEM; nil without TLS.
func (m *WebPushService) CertPEM() []byte {
	return m.cert.pem()
}

// Subscribe makes a subscription, as a browser's pushManager.subscribe does,
// and returns its JSON: {"endpoint":"<Origin()>/push/<id>","keys":{"p256dh":…,"auth":…}},
// the webpush token a wallet registers. applicationServerKey is the VAPID
// public key (base64url) the subscription is bound to: a push signed with
// another key gets 403. "" binds none.
func (m *WebPushService) Subscribe(applicationServerKey string) string {
	s, err := m.subscribe(applicationServerKey)
	if err != nil {
		panic("dispatchtest: " + err.Error())
	}
	return s
}

// errTooManySubscriptions is subscribe's refusal past webpushMaxSubscriptions.
var errTooManySubscriptions = errors.New("the mock holds too many subscriptions")

func (m *WebPushService) subscribe(applicationServerKey string) (string, error) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("cannot generate a P-256 key: %w", err)
	}
	var id [16]byte
	auth := make([]byte, webpushAuthLen)
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails since Go 1.24
	_, _ = rand.Read(auth)
	endpointID := base64.RawURLEncoding.EncodeToString(id[:])
	js, err := json.Marshal(map[string]any{
		"endpoint":       m.url + "/push/" + endpointID,
		"expirationTime": nil,
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
			"auth":   base64.RawURLEncoding.EncodeToString(auth),
		},
	})
	if err != nil {
		return "", fmt.Errorf("cannot marshal a subscription: %w", err)
	}
	sub := &webpushSub{json: string(js), key: key, auth: auth, serverKey: strings.TrimRight(applicationServerKey, "=")}
	m.subMu.Lock()
	defer m.subMu.Unlock()
	if len(m.subs) >= webpushMaxSubscriptions {
		return "", errTooManySubscriptions
	}
	m.subs[endpointID] = sub
	return sub.json, nil
}

// Unsubscribe ends a subscription, as when the user revokes the
// permission: pushes to it get 410 Gone from then on.
func (m *WebPushService) Unsubscribe(subscription string) {
	if s := m.lookup(subscription); s != nil {
		s.gone.Store(true)
	}
}

// lookup finds a subscription by its JSON.
func (m *WebPushService) lookup(subscription string) *webpushSub {
	var js struct {
		Endpoint string `json:"endpoint"`
	}
	if json.Unmarshal([]byte(subscription), &js) != nil {
		return nil
	}
	id, ok := strings.CutPrefix(js.Endpoint, m.url+"/push/")
	if !ok {
		return nil
	}
	m.subMu.RLock()
	defer m.subMu.RUnlock()
	return m.subs[id]
}

// Script sets the answers for pushes to a subscription (its JSON, as
// Subscribe returned it), consumed in order, the last repeating; Script
// with "" sets the default for every subscription without a script. An
// Answer's Status is answered as it is after the checks passed (0 means
// 201; Reason is the body's text); a 3xx Status carries a Location on the
// mock (see Redirected). No answers removes the script.
func (m *WebPushService) Script(subscription string, answers ...Answer) {
	m.answers.set(subscription, answers)
}

// Received returns the pushes accepted so far, decrypted, oldest first:
// every one with Record, else the last 100.
func (m *WebPushService) Received() []WebPushMessage {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	return append([]WebPushMessage(nil), m.msgs...)
}

// Requests returns every request to an endpoint so far (Record only).
func (m *WebPushService) Requests() []WebPushRequest {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	return append([]WebPushRequest(nil), m.reqs...)
}

// Count returns how many requests reached an endpoint, whatever the answer.
func (m *WebPushService) Count() int64 { return m.count.Load() }

// Redirected returns how many requests reached the target of a scripted
// redirect: a sender that never follows redirects keeps it at 0.
func (m *WebPushService) Redirected() int64 { return m.redirs.Load() }

// Reset forgets recorded requests, messages, scripts and counts; the
// subscriptions stay.
func (m *WebPushService) Reset() {
	m.recMu.Lock()
	m.reqs, m.msgs = nil, nil
	m.recMu.Unlock()
	m.answers.reset()
	m.count.Store(0)
	m.redirs.Store(0)
}

// Close stops the mock.
func (m *WebPushService) Close() error { return m.srv.close() }

// ServeHTTP routes the mock's requests.
func (m *WebPushService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/push/"):
		m.servePush(w, r, strings.TrimPrefix(r.URL.Path, "/push/"))
	case strings.HasPrefix(r.URL.Path, "/redirected/"):
		m.redirs.Add(1)
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPost && r.URL.Path == "/subscribe":
		m.serveSubscribe(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/messages":
		m.serveMessages(w)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func (m *WebPushService) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	bp, err := readBody(r, 1024)
	defer bufPool.Put(bp)
	var req struct {
		Key string `json:"applicationServerKey"`
	}
	if err != nil || len(*bp) > 1024 || (len(*bp) > 0 && json.Unmarshal(*bp, &req) != nil) {
		http.Error(w, `want {"applicationServerKey":"<base64url>"} or no body`, http.StatusBadRequest)
		return
	}
	js, err := m.subscribe(req.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(js))
}

func (m *WebPushService) serveMessages(w http.ResponseWriter) {
	type shown struct {
		Subscription string          `json:"subscription"`
		Payload      json.RawMessage `json:"payload,omitempty"` // the plaintext when it is JSON
		Text         string          `json:"text,omitempty"`    // else as text
		Urgency      string          `json:"urgency,omitempty"`
		TTL          int             `json:"ttl"`
	}
	msgs := m.Received()
	if len(msgs) > webpushKept {
		msgs = msgs[len(msgs)-webpushKept:]
	}
	out := make([]shown, 0, len(msgs))
	for _, msg := range msgs {
		s := shown{Subscription: msg.Subscription, Urgency: msg.Urgency, TTL: msg.TTL}
		if json.Valid(msg.Plaintext) {
			s.Payload = msg.Plaintext
		} else {
			s.Text = string(msg.Plaintext)
		}
		out = append(out, s)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// servePush takes one push to the endpoint id.
func (m *WebPushService) servePush(w http.ResponseWriter, r *http.Request, id string) {
	m.count.Add(1)
	bp, err := readBody(r, webpushMaxRecord)
	defer bufPool.Put(bp)
	rec := WebPushRequest{BodySize: len(*bp)}
	if m.record {
		rec.Header = r.Header.Clone()
	}
	m.subMu.RLock()
	sub := m.subs[id]
	m.subMu.RUnlock()
	if sub != nil {
		rec.Subscription = sub.json
	}
	status, reason, msg := m.check(r, sub, *bp, err)
	if status == http.StatusCreated && sub != nil {
		if a, ok := m.answers.next(sub.json); ok {
			if !a.wait(r.Context(), sub.json) {
				m.save(rec, nil)
				return
			}
			status, reason = a.Status, a.Reason
			if status == 0 {
				status = http.StatusCreated
			}
			if a.RetryAfter != "" {
				w.Header().Set("Retry-After", a.RetryAfter)
			}
			if status >= 300 && status < 400 {
				w.Header().Set("Location", m.url+"/redirected/"+id)
			}
		}
	}
	rec.Status, rec.Reason = status, reason
	if msg != nil {
		rec.Plaintext = msg.Plaintext
	}
	if status != http.StatusCreated {
		msg = nil
	}
	m.save(rec, msg)
	if status == http.StatusCreated {
		w.Header().Set("Location", m.url+"/message/"+id)
		w.WriteHeader(status)
		return
	}
	http.Error(w, reason, status)
}

// save records a request (Record) and a delivered message.
func (m *WebPushService) save(rec WebPushRequest, msg *WebPushMessage) {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	if m.record {
		m.reqs = append(m.reqs, rec)
	}
	if msg != nil {
		if !m.record && len(m.msgs) >= webpushKept {
			m.msgs = append(m.msgs[:0], m.msgs[1:]...)
		}
		m.msgs = append(m.msgs, *msg)
	}
}

// check applies the push service's rules to one push; msg is the decrypted
// message when every check passed.
func (m *WebPushService) check(r *http.Request, sub *webpushSub, body []byte, readErr error) (int, string, *WebPushMessage) {
	switch {
	case sub == nil:
		return http.StatusNotFound, "no such subscription", nil
	case sub.gone.Load():
		return http.StatusGone, "the subscription has expired or was unsubscribed", nil
	case readErr != nil:
		return http.StatusBadRequest, readErr.Error(), nil
	}
	msg := &WebPushMessage{Subscription: sub.json, Proto: r.Proto, Urgency: r.Header.Get("Urgency"), Topic: r.Header.Get("Topic")}
	claims, key, err := m.checkVAPID(r.Header.Get("Authorization"))
	if err != nil {
		return http.StatusUnauthorized, err.Error(), nil
	}
	msg.Subject, msg.Audience, msg.Expires, msg.PublicKey = claims.Sub, claims.Aud, time.Unix(claims.Exp, 0), key
	if sub.serverKey != "" && key != sub.serverKey {
		return http.StatusForbidden, "the VAPID key is not the applicationServerKey this subscription was made with", nil
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		return http.StatusBadRequest, "want a TTL header of whole seconds (RFC 8030 section 5.2)", nil
	}
	msg.TTL = ttl
	switch msg.Urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		return http.StatusBadRequest, "Urgency must be very-low, low, normal or high", nil
	}
	if len(msg.Topic) > 32 {
		return http.StatusBadRequest, "Topic is longer than 32 characters", nil
	}
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "aes128gcm") {
		return http.StatusBadRequest, "want Content-Encoding: aes128gcm", nil
	}
	if len(body) > webpushMaxRecord {
		return http.StatusRequestEntityTooLarge, "the body is over 4096 bytes", nil
	}
	plain, err := DecryptWebPush(body, sub.key, sub.auth)
	if err != nil {
		return http.StatusBadRequest, "cannot decrypt: " + err.Error(), nil
	}
	msg.Plaintext = plain
	return http.StatusCreated, "", msg
}

// vapidClaims are the claims RFC 8292 section 2 names.
type vapidClaims struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Sub string `json:"sub"`
}

// checkVAPID verifies an "Authorization: vapid t=<JWT>, k=<key>" header
// (RFC 8292 section 3) and returns the JWT's claims and k.
func (m *WebPushService) checkVAPID(h string) (vapidClaims, string, error) {
	var c vapidClaims
	scheme, params, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "vapid") {
		return c, "", errors.New(`want "Authorization: vapid t=<JWT>, k=<key>"`)
	}
	var token, k string
	for _, p := range strings.Split(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(name) {
		case "t":
			token = value
		case "k":
			k = strings.TrimRight(value, "=")
		}
	}
	if token == "" || k == "" {
		return c, "", errors.New("the vapid authorization needs both t and k")
	}
	point, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return c, "", errors.New("k is not base64url")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return c, "", errors.New("k is not an uncompressed P-256 point")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, "", errors.New("t is not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &c) != nil {
		return c, "", errors.New("t is not a JWT")
	}
	if hdr.Alg != "ES256" || len(sig) != 64 {
		return c, "", errors.New("the JWT must be signed with ES256")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return c, "", errors.New("the JWT's signature does not verify under k")
	}
	now := time.Now()
	switch {
	case c.Aud != m.url:
		return c, "", fmt.Errorf("aud %q is not this push service's origin %s", c.Aud, m.url)
	case c.Exp == 0:
		return c, "", errors.New("exp is missing")
	case !now.Before(time.Unix(c.Exp, 0)):
		return c, "", errors.New("the JWT has expired")
	case time.Unix(c.Exp, 0).After(now.Add(webpushMaxJWTLife + time.Minute)):
		return c, "", errors.New("exp is more than 24 hours ahead")
	case c.Sub == "":
		return c, "", errors.New("sub is missing")
	case !strings.HasPrefix(c.Sub, "mailto:") && !strings.HasPrefix(c.Sub, "https:"):
		return c, "", errors.New("sub must be a mailto: or https: URL")
	}
	return c, k, nil
}

// DecryptWebPush decrypts an aes128gcm push body (RFC 8188 with RFC 8291's
// key derivation, one record) with the subscription's private key and
// authentication secret, as the browser does, and returns the plaintext
// without its padding. It is written from the RFCs, apart from the sender's
// library, so a test of the sender checks it against a second reading.
func DecryptWebPush(body []byte, key *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	// Header: salt (16) | rs (4) | idlen (1) | keyid (idlen) — RFC 8188 2.1.
	if len(body) < webpushSaltLen+5 {
		return nil, errors.New("shorter than the aes128gcm header")
	}
	salt := body[:webpushSaltLen]
	rs := binary.BigEndian.Uint32(body[webpushSaltLen:])
	idlen := int(body[webpushSaltLen+4])
	rest := body[webpushSaltLen+5:]
	if idlen != 65 || len(rest) < idlen {
		return nil, fmt.Errorf("keyid must be the sender's 65-byte public key, got %d bytes", idlen)
	}
	senderPub, ciphertext := rest[:idlen], rest[idlen:]
	if rs < 18 {
		return nil, fmt.Errorf("record size %d is below 18", rs)
	}
	if uint64(len(ciphertext)) > uint64(rs) {
		return nil, fmt.Errorf("%d bytes of ciphertext do not fit one record of %d: Web Push takes one record", len(ciphertext), rs)
	}
	if len(ciphertext) < 17 {
		return nil, errors.New("the record is shorter than its tag and delimiter")
	}
	asPub, err := ecdh.P256().NewPublicKey(senderPub)
	if err != nil {
		return nil, errors.New("keyid is not a point on P-256")
	}
	shared, err := key.ECDH(asPub)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %w", err)
	}
	// RFC 8291 section 3.4: IKM from the ECDH secret and the auth secret,
	// bound to both public keys.
	prkKey, err := hkdf.Extract(sha256.New, shared, authSecret)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(key.PublicKey().Bytes()) + string(senderPub)
	ikm, err := hkdf.Expand(sha256.New, prkKey, info, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 section 2.2 and 2.3: content key and nonce from the salt.
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
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
	// One record, sequence number 0: the nonce is used as derived.
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, errors.New("the record does not authenticate under the subscription's keys")
	}
	// Padding: the data, then the delimiter 2 (last record), then zeros.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("the record lacks the last-record delimiter 0x02")
	}
	return plain[:end], nil
}
