package dispatchtest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// fcmMaxPayload is FCM's limit on a message's payload, in bytes.
	fcmMaxPayload = 4096
	// fcmMaxBody bounds what the mock reads of a send request; the payload
	// limit applies to the message's content, not to the JSON around it.
	fcmMaxBody = 64 << 10
	// fcmTokenTTL is the lifetime of an issued access token, as Google's.
	fcmTokenTTL = time.Hour
	// jwtBearerGrant is the OAuth grant type of a service-account assertion
	// (RFC 7523).
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	errorInfoType  = "type.googleapis.com/google.rpc.ErrorInfo"
)

// fcmScopes are the OAuth scopes that allow messages:send.
var fcmScopes = []string{
	"https://www.googleapis.com/auth/firebase.messaging",
	"https://www.googleapis.com/auth/cloud-platform",
}

// fcmErrorCodes maps an FCM error code (the errorCode of an FcmError detail)
// to Google's HTTP status and canonical status, as documented for
// projects.messages.send.
var fcmErrorCodes = map[string]struct {
	status    int
	canonical string
}{
	"UNSPECIFIED_ERROR":      {500, "INTERNAL"},
	"INVALID_ARGUMENT":       {400, "INVALID_ARGUMENT"},
	"UNREGISTERED":           {404, "NOT_FOUND"},
	"SENDER_ID_MISMATCH":     {403, "PERMISSION_DENIED"},
	"QUOTA_EXCEEDED":         {429, "RESOURCE_EXHAUSTED"},
	"UNAVAILABLE":            {503, "UNAVAILABLE"},
	"INTERNAL":               {500, "INTERNAL"},
	"THIRD_PARTY_AUTH_ERROR": {401, "UNAUTHENTICATED"},
}

// canonicalStatus maps Google's canonical statuses that are not FCM error
// codes to their HTTP status.
var canonicalStatus = map[string]int{
	"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
	"RESOURCE_EXHAUSTED": 429, "DEADLINE_EXCEEDED": 504, "ABORTED": 409,
	"FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "CANCELLED": 499,
}

// fcmStatusCode is the FCM error code a scripted Answer gets when it names
// only an HTTP status.
var fcmStatusCode = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
	404: "UNREGISTERED", 429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE",
}

// fcmMessageFields are the fields of an FCM v1 Message; Google rejects others.
// Both JSON spellings of a field are accepted, as with any Google API.
var fcmMessageFields = map[string]bool{
	"name": true, "data": true, "notification": true, "android": true, "webpush": true,
	"apns": true, "fcm_options": true, "fcmOptions": true, "token": true, "topic": true,
	"condition": true,
}

// FCMOptions configures NewFCM.
type FCMOptions struct {
	// Addr is the listen address; "" = 127.0.0.1:0.
	Addr string
	// Record keeps every send for Requests. Off, the mock only counts.
	Record bool
}

// FCMRequest is one messages:send request the FCM mock received.
type FCMRequest struct {
	Path      string         // URL path, e.g. /v1/projects/p/messages:send
	ProjectID string         // the project from the path
	Token     string         // message.token, "" when absent
	Header    http.Header    // the request headers (a copy)
	Body      []byte         // the whole request JSON (a copy)
	Message   map[string]any // the decoded "message"; nil when it did not decode
	// ValidateOnly is the request's validate_only: a dry run, never counted.
	ValidateOnly bool
	Status       int    // the HTTP status answered; 0 when the client gave up during a Delay
	Reason       string // the FCM error code (or canonical status) answered; "" on success
}

// FCM is a mock of the FCM HTTP v1 API (POST
// /v1/projects/{project}/messages:send) and of Google's OAuth 2.0 token
// endpoint (POST /token), speaking HTTP/1.1 and h2c.
//
// Every send needs an access token that the mock's token endpoint issued for
// a service account from ServiceAccountJSON, for the same project. All methods
// are safe for concurrent use.
type FCM struct {
	srv     *server
	url     string
	record  bool
	ids     *idGen
	count   atomic.Int64
	fetches atomic.Int64
	answers script

	authMu   sync.RWMutex
	accounts map[string]fcmAccount // by client_email; guarded by authMu
	tokens   map[string]fcmToken   // issued access tokens; guarded by authMu

	recMu sync.Mutex
	reqs  []FCMRequest // guarded by recMu
}

type fcmAccount struct {
	projectID string
	keyID     string
	pub       *rsa.PublicKey
}

type fcmToken struct {
	projectID string
	expires   time.Time
	scoped    bool // the grant had a scope that allows messages:send
}

// NewFCM starts an FCM mock. Close it when done.
func NewFCM(opts FCMOptions) (*FCM, error) {
	m := &FCM{
		record:   opts.Record,
		ids:      newIDGen(),
		accounts: make(map[string]fcmAccount),
		tokens:   make(map[string]fcmToken),
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv, base, err := listenMock(opts.Addr, m, protos, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot start FCM mock: %w", err)
	}
	m.srv, m.url = srv, base
	return m, nil
}

// StartFCM starts an FCM mock that records requests and closes it when the
// test ends.
func StartFCM(t testing.TB) *FCM {
	t.Helper()
	m, err := NewFCM(FCMOptions{Record: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// URL returns the base for FCM_URL, e.g. "http://127.0.0.1:port"; sends go
// to URL()+"/v1/projects/{project}/messages:send".
func (m *FCM) URL() string { return m.url }

// TokenURL returns the OAuth token endpoint, URL()+"/token".
func (m *FCM) TokenURL() string { return m.url + "/token" }

// ServiceAccountJSON returns a new service-account JSON key for projectID, as
// the Google Cloud console downloads it: type service_account, project_id, a
// fresh RSA-2048 private_key (PKCS#8 PEM), private_key_id, client_email, and
// token_uri = TokenURL(). The mock trusts the key from then on.
func (m *FCM) ServiceAccountJSON(projectID string) []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot generate RSA key: %v", err)) // crypto/rand does not fail
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal RSA key: %v", err))
	}
	var kid [20]byte
	_, _ = rand.Read(kid[:])
	keyID := hex.EncodeToString(kid[:])
	n := m.ids.seq.Add(1)
	email := fmt.Sprintf("firebase-adminsdk-mock%d@%s.iam.gserviceaccount.com", n, projectID)

	m.authMu.Lock()
	m.accounts[email] = fcmAccount{projectID: projectID, keyID: keyID, pub: &key.PublicKey}
	m.authMu.Unlock()

	b, err := json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  projectID,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   strconv.FormatUint(100000000000000000+n, 10),
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   m.TokenURL(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
		"universe_domain":             "googleapis.com",
	})
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal service account: %v", err))
	}
	return b
}

// Script sets the answers for sends to token that pass validation, in order;
// the last one repeats. No answers removes the script. Token "" sets the
// default script, for tokens without one of their own.
func (m *FCM) Script(token string, answers ...Answer) { m.answers.set(token, answers) }

// Requests returns every messages:send request received since the start or
// the last Reset, in order. It is a copy; empty when Record is off.
func (m *FCM) Requests() []FCMRequest {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	return append([]FCMRequest(nil), m.reqs...)
}

// Count returns how many sends the mock accepted (answered 200, dry runs
// excluded) since the start or the last Reset.
func (m *FCM) Count() int64 { return m.count.Load() }

// TokenFetches returns how many access tokens the token endpoint issued since
// the start or the last Reset.
func (m *FCM) TokenFetches() int { return int(m.fetches.Load()) }

// Reset forgets the recorded requests, the scripts and both counters. Service
// accounts and issued access tokens stay valid.
func (m *FCM) Reset() {
	m.answers.reset()
	m.recMu.Lock()
	m.reqs = nil
	m.count.Store(0)
	m.fetches.Store(0)
	m.recMu.Unlock()
}

// Close stops the mock and closes its connections.
func (m *FCM) Close() error { return m.srv.close() }

// ServeHTTP routes to the token endpoint or messages:send.
func (m *FCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		m.serveToken(w, r)
		return
	}
	m.serveSend(w, r)
}

// fcmReply is one answer to a send.
type fcmReply struct {
	status     int
	code       string // FCM error code or canonical status; "" on success
	message    string // human-readable, as Google's error.message
	retryAfter string
}

func (m *FCM) serveSend(w http.ResponseWriter, r *http.Request) {
	rec := FCMRequest{Path: r.URL.Path}
	bp, err := readBody(r, fcmMaxBody)
	defer bufPool.Put(bp)
	body := *bp

	var reply fcmReply
	var validateOnly bool
	if err != nil {
		reply = fcmReply{status: 400, code: "INVALID_ARGUMENT", message: "Cannot read request body."}
	} else {
		reply, validateOnly = m.checkSend(r, body, &rec)
	}
	if reply.status == http.StatusOK {
		if a, ok := m.answers.next(rec.Token); ok {
			if !a.wait(r.Context(), rec.Token) {
				m.save(r, body, rec)
				return
			}
			reply = fcmAnswer(a)
		}
	}

	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if reply.retryAfter != "" {
		h.Set("Retry-After", reply.retryAfter)
	}
	w.WriteHeader(reply.status)
	if reply.status == http.StatusOK {
		if !validateOnly {
			m.count.Add(1)
		}
		b := make([]byte, 0, 96)
		b = append(b, `{"name":"projects/`...)
		b = append(b, rec.ProjectID...)
		b = append(b, "/messages/0:"...)
		b = strconv.AppendUint(b, m.ids.seq.Add(1), 10)
		b = append(b, "%mock\"}"...)
		_, _ = w.Write(b)
	} else {
		_, _ = w.Write(googleError(reply.status, reply.code, reply.message))
	}
	rec.Status, rec.Reason = reply.status, reply.code
	m.save(r, body, rec)
}

// fcmAnswer resolves a scripted answer.
func fcmAnswer(a Answer) fcmReply {
	status, code := a.Status, a.Reason
	if status == 0 {
		status = http.StatusOK
		if code != "" {
			if e, ok := fcmErrorCodes[code]; ok {
				status = e.status
			} else if s, ok := canonicalStatus[code]; ok {
				status = s
			} else {
				status = http.StatusInternalServerError
			}
		}
	}
	if status != http.StatusOK && code == "" {
		if code = fcmStatusCode[status]; code == "" {
			code = "INTERNAL"
		}
	}
	return fcmReply{status: status, code: code, message: "Scripted by the FCM mock.", retryAfter: a.RetryAfter}
}

// googleError is Google's error JSON. An FCM error code goes into an FcmError
// detail, which the Firebase Admin SDK reads (details[].errorCode); any other
// code is taken as a canonical status, with an ErrorInfo detail as Google
// sends for authentication and permission errors.
func googleError(status int, code, message string) []byte {
	type detail struct {
		Type      string `json:"@type"`
		ErrorCode string `json:"errorCode,omitempty"`
		Reason    string `json:"reason,omitempty"`
		Domain    string `json:"domain,omitempty"`
	}
	var e struct {
		Error struct {
			Code    int      `json:"code"`
			Message string   `json:"message"`
			Status  string   `json:"status"`
			Details []detail `json:"details"`
		} `json:"error"`
	}
	e.Error.Code, e.Error.Message = status, message
	if fc, ok := fcmErrorCodes[code]; ok {
		e.Error.Status = fc.canonical
		e.Error.Details = []detail{{Type: fcmErrorType, ErrorCode: code}}
	} else {
		e.Error.Status = code
		e.Error.Details = []detail{{Type: errorInfoType, Reason: code, Domain: "googleapis.com"}}
	}
	b, _ := json.Marshal(&e) // cannot fail: strings and ints only
	return b
}

// checkSend authenticates and validates one send, filling rec's parsed
// fields. It returns 200 or Google's error, and the request's validate_only.
func (m *FCM) checkSend(r *http.Request, body []byte, rec *FCMRequest) (fcmReply, bool) {
	project, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if ok {
		project, ok = strings.CutSuffix(project, "/messages:send")
	}
	if !ok || project == "" || strings.Contains(project, "/") || r.Method != http.MethodPost {
		return fcmReply{status: 404, code: "NOT_FOUND", message: "Method not found."}, false
	}
	rec.ProjectID = project

	if reply, ok := m.authenticate(r.Header.Get("Authorization"), project); !ok {
		return reply, false
	}

	invalid := func(msg string) fcmReply {
		return fcmReply{status: 400, code: "INVALID_ARGUMENT", message: msg}
	}
	if len(body) > fcmMaxBody {
		return invalid("Request payload size exceeds the limit."), false
	}
	var req struct {
		ValidateOnly      bool            `json:"validate_only"`
		ValidateOnlyCamel bool            `json:"validateOnly"`
		Message           json.RawMessage `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields() // Google rejects unknown fields ("Cannot find field")
	if err := dec.Decode(&req); err != nil {
		return invalid("Invalid JSON payload received. " + err.Error()), false
	}
	validateOnly := req.ValidateOnly || req.ValidateOnlyCamel
	rec.ValidateOnly = validateOnly
	var msg map[string]any
	if len(req.Message) == 0 || json.Unmarshal(req.Message, &msg) != nil || msg == nil {
		return invalid("Request contains an invalid argument: message is required."), validateOnly
	}
	rec.Message = msg
	if tok, ok := msg["token"].(string); ok {
		rec.Token = tok
	}
	if err := checkMessage(msg); err != "" {
		return invalid(err), validateOnly
	}
	return fcmReply{status: http.StatusOK}, validateOnly
}

// checkMessage validates a decoded v1 Message as FCM does and returns the
// problem, or "".
func checkMessage(msg map[string]any) string {
	for k := range msg {
		if !fcmMessageFields[k] {
			return fmt.Sprintf("Invalid JSON payload received. Unknown name %q at 'message': Cannot find field.", k)
		}
	}
	targets := 0
	for _, k := range [...]string{"token", "topic", "condition"} {
		if v, ok := msg[k]; ok {
			s, isStr := v.(string)
			if !isStr || s == "" {
				return fmt.Sprintf("Invalid value at 'message.%s': want a non-empty string.", k)
			}
			targets++
		}
	}
	if targets != 1 {
		return "Request contains an invalid argument: exactly one of token, topic or condition is required."
	}
	if tok, ok := msg["token"].(string); ok && !validFCMToken(tok) {
		return "The registration token is not a valid FCM registration token"
	}
	size, problem := dataSize(msg["data"], "message.data")
	if problem != "" {
		return problem
	}
	size += notificationSize(msg["notification"])
	if v, ok := msg["android"]; ok {
		android, ok := v.(map[string]any)
		if !ok {
			return "Invalid value at 'message.android': want an object."
		}
		n, problem := dataSize(android["data"], "message.android.data")
		if problem != "" {
			return problem
		}
		size += n + notificationSize(android["notification"])
		if p, ok := android["priority"]; ok {
			s, _ := p.(string)
			if !strings.EqualFold(s, "normal") && !strings.EqualFold(s, "high") {
				return fmt.Sprintf("Invalid value at 'message.android.priority': %v", p)
			}
		}
		if ttl, ok := android["ttl"]; ok && !validDuration(ttl) {
			return fmt.Sprintf("Invalid value at 'message.android.ttl': %v", ttl)
		}
	}
	if size > fcmMaxPayload {
		return "Message too big"
	}
	return ""
}

// dataSize checks that v, a data map, holds only strings, and returns the
// bytes of its keys and values, which count towards the payload limit.
func dataSize(v any, where string) (int, string) {
	if v == nil {
		return 0, ""
	}
	data, ok := v.(map[string]any)
	if !ok {
		return 0, fmt.Sprintf("Invalid value at '%s': want a map of strings.", where)
	}
	n := 0
	for k, val := range data {
		s, ok := val.(string)
		if !ok {
			return 0, fmt.Sprintf("Invalid value at '%s[%q].value' (TYPE_STRING), %v", where, k, val)
		}
		n += len(k) + len(s)
	}
	return n, ""
}

// notificationSize is the bytes of a notification's visible strings.
func notificationSize(v any) int {
	n, _ := v.(map[string]any)
	size := 0
	for _, k := range [...]string{"title", "body", "image"} {
		s, _ := n[k].(string)
		size += len(s)
	}
	return size
}

// validFCMToken accepts the characters FCM registration tokens are made of.
func validFCMToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isHex(c) || 'g' <= c && c <= 'z' || 'G' <= c && c <= 'Z' || c == '_' || c == '-' || c == ':' || c == '.') {
			return false
		}
	}
	return s != ""
}

// validDuration accepts protobuf JSON durations such as "3600s" or "1.5s".
func validDuration(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	num, ok := strings.CutSuffix(s, "s")
	if !ok || num == "" {
		return false
	}
	_, err := strconv.ParseFloat(num, 64)
	return err == nil && !strings.ContainsAny(num, "eE+-")
}

// authenticate checks the access token of a send to project.
func (m *FCM) authenticate(auth, project string) (fcmReply, bool) {
	tok, ok := bearer(auth)
	if !ok {
		return fcmReply{status: 401, code: "UNAUTHENTICATED", message: "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential."}, false
	}
	m.authMu.RLock()
	t, ok := m.tokens[tok]
	m.authMu.RUnlock()
	switch {
	case !ok || time.Now().After(t.expires):
		return fcmReply{status: 401, code: "UNAUTHENTICATED", message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}, false
	case !t.scoped:
		return fcmReply{status: 403, code: "PERMISSION_DENIED", message: "Request had insufficient authentication scopes."}, false
	case t.projectID != project:
		return fcmReply{status: 403, code: "PERMISSION_DENIED", message: fmt.Sprintf("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/%s' (or it may not exist).", project)}, false
	}
	return fcmReply{}, true
}

func (m *FCM) save(r *http.Request, body []byte, rec FCMRequest) {
	if !m.record {
		return
	}
	rec.Header = r.Header.Clone()
	rec.Body = append([]byte(nil), body...)
	m.recMu.Lock()
	m.reqs = append(m.reqs, rec)
	m.recMu.Unlock()
}

// serveToken is the OAuth 2.0 token endpoint for service accounts (RFC 7523
// JWT bearer grant), as oauth2.googleapis.com/token.
func (m *FCM) serveToken(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	fail := func(status int, code, desc string) {
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
		_, _ = w.Write(b)
	}
	if r.Method != http.MethodPost {
		fail(405, "invalid_request", "The token endpoint takes POST.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(400, "invalid_request", "Cannot parse the form: "+err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		fail(400, "unsupported_grant_type", fmt.Sprintf("Invalid grant_type: %s", gt))
		return
	}
	// aud must be the token URL the client addressed: this mock's, by
	// address or by a name a test proxy resolves to it.
	t, err := m.verifyAssertion(r.PostForm.Get("assertion"), "http://"+r.Host+"/token")
	if err != nil {
		fail(400, "invalid_grant", err.Error())
		return
	}

	var raw [24]byte
	_, _ = rand.Read(raw[:])
	access := "ya29.mock-" + base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now()
	t.expires = now.Add(fcmTokenTTL)
	m.authMu.Lock()
	for k, old := range m.tokens { // keep the map small in long runs
		if now.After(old.expires) {
			delete(m.tokens, k)
		}
	}
	m.tokens[access] = t
	m.authMu.Unlock()
	m.fetches.Add(1)

	b, _ := json.Marshal(map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   int(fcmTokenTTL / time.Second),
	})
	_, _ = w.Write(b)
}

// verifyAssertion checks a service account's RS256 JWT as Google does: a key
// the mock issued, iss = client_email, aud = the token endpoint, a scope,
// and an unexpired lifetime of at most an hour.
func (m *FCM) verifyAssertion(jwt, aud string) (fcmToken, error) {
	hdrB64, rest, ok1 := strings.Cut(jwt, ".")
	claimsB64, sigB64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return fcmToken{}, fmt.Errorf("invalid JWT: want three segments")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
	}
	if err := decodeJSONSegment(hdrB64, &hdr); err != nil {
		return fcmToken{}, fmt.Errorf("invalid JWT header: %w", err)
	}
	if err := decodeJSONSegment(claimsB64, &claims); err != nil {
		return fcmToken{}, fmt.Errorf("invalid JWT claims: %w", err)
	}
	if hdr.Alg != "RS256" {
		return fcmToken{}, fmt.Errorf("invalid JWT: alg %q, want RS256", hdr.Alg)
	}
	m.authMu.RLock()
	acct, ok := m.accounts[claims.Iss]
	m.authMu.RUnlock()
	if !ok {
		return fcmToken{}, fmt.Errorf("invalid JWT: unknown issuer %q", claims.Iss)
	}
	if hdr.Kid != "" && hdr.Kid != acct.keyID {
		return fcmToken{}, fmt.Errorf("invalid JWT: kid %q is not the key of %s", hdr.Kid, claims.Iss)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil {
		return fcmToken{}, fmt.Errorf("invalid JWT signature encoding: %w", err)
	}
	digest := sha256.Sum256([]byte(jwt[:len(hdrB64)+1+len(claimsB64)]))
	if err := rsa.VerifyPKCS1v15(acct.pub, crypto.SHA256, digest[:], sig); err != nil {
		return fcmToken{}, fmt.Errorf("invalid JWT signature: %w", err)
	}
	if claims.Aud != aud {
		return fcmToken{}, fmt.Errorf("invalid JWT: aud %q, want %q", claims.Aud, aud)
	}
	if claims.Scope == "" {
		return fcmToken{}, fmt.Errorf("invalid_scope: no scope requested")
	}
	now := time.Now().Unix()
	const skew = 300 // seconds of clock difference Google tolerates
	switch {
	case claims.Exp <= now:
		return fcmToken{}, fmt.Errorf("invalid JWT: token expired at %d, now %d", claims.Exp, now)
	case claims.Iat > now+skew:
		return fcmToken{}, fmt.Errorf("invalid JWT: iat %d is in the future", claims.Iat)
	case claims.Exp-claims.Iat > int64(time.Hour/time.Second):
		return fcmToken{}, fmt.Errorf("invalid JWT: lifetime over one hour")
	}
	t := fcmToken{projectID: acct.projectID}
	for _, s := range strings.Fields(claims.Scope) {
		for _, want := range fcmScopes {
			t.scoped = t.scoped || s == want
		}
	}
	return t, nil
}
