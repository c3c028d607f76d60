package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrBadJWT is wrapped by every error that [ClientAuth.Verify] and
// [TenantAuth.Verify] return because of the token itself; the text after it
// says why ("verify: bad jwt: expired 300s ago (leeway 120s)"). The reason is
// for logs and humans; callers switch on errors.Is(err, ErrBadJWT) only.
var ErrBadJWT = errors.New("verify: bad jwt")

// Default leeways from API.md.
const (
	// DefaultClientLeeway is ClientAuth's clock-skew allowance: client tokens
	// are minted on phones, whose clocks drift.
	DefaultClientLeeway = 120 * time.Second
	// DefaultTenantLeeway is TenantAuth's: tenant tokens come from operators'
	// machines, which are usually NTP-synchronised.
	DefaultTenantLeeway = 60 * time.Second
)

// maxJWTLen bounds the work an Authorization header can cause. Real client and
// tenant tokens are a few hundred bytes.
const maxJWTLen = 8 << 10

// strictB64 rejects padding and non-zero trailing bits, so each signature and
// segment has exactly one accepted encoding.
var strictB64 = base64.RawURLEncoding.Strict()

// badJWT returns an error that wraps ErrBadJWT and says why.
func badJWT(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadJWT, fmt.Sprintf(format, args...))
}

// ClientAuth checks the EdDSA JWT a wallet client sends in the Authorization
// header of register and unregister (API.md, "Client authentication").
//
// A token is accepted when all of these hold:
//   - the header's alg is "EdDSA" (typ, if present, is "JWT"; crit is absent);
//   - iss is "did:key:z…" of an Ed25519 key, and the signature verifies under
//     that key (the key comes from iss and nowhere else: jwk, kid and x5c are
//     ignored);
//   - aud equals Audience exactly, either as a string or as one element of an
//     array of strings;
//   - exp is present and now < exp + Leeway. exp is required, as echo-server
//     requires it: a token without one would be a bearer credential for ever;
//   - iat, if present, is at most Leeway in the future; nbf, if present, is at
//     most Leeway in the future.
//
// The fields must not be changed while Verify may run; a ClientAuth is then
// safe for concurrent use.
type ClientAuth struct {
	// Audience is PUBLIC_URL. It must not be empty.
	Audience string
	// Leeway is the allowed clock skew for exp, iat and nbf; zero or negative
	// means DefaultClientLeeway (120 s).
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks authorization, the raw Authorization header value (the token,
// optionally prefixed by "Bearer ", case-insensitively), and returns the
// client id it proves: iss without "did:key:". It keeps no reference to
// authorization. Every failure caused by the token wraps ErrBadJWT, including
// an empty header: whether the header is required is the router's decision.
func (a *ClientAuth) Verify(authorization []byte) (clientID string, err error) {
	if a.Audience == "" {
		// A server bug, not the caller's: do not wrap ErrBadJWT, so it
		// surfaces as an internal error instead of a 401.
		return "", errors.New("verify: ClientAuth.Audience is empty; set it to PUBLIC_URL")
	}
	t, err := parseJWT(authorization)
	if err != nil {
		return "", err
	}
	if t.alg != "EdDSA" {
		return "", badJWT("alg %q; want EdDSA", t.alg)
	}
	iss, err := t.claims.str("iss")
	if err != nil {
		return "", err
	}
	pub, err := ParseDIDKey(iss)
	if err != nil {
		return "", fmt.Errorf("%w: iss: %w", ErrBadJWT, err)
	}
	if len(t.sig) != ed25519.SignatureSize || !ed25519.Verify(pub, t.signingInput, t.sig) {
		return "", badJWT("signature does not verify under the key of iss %s", iss)
	}
	if err := t.claims.checkAudience(a.Audience); err != nil {
		return "", err
	}
	leeway := a.Leeway
	if leeway <= 0 {
		leeway = DefaultClientLeeway
	}
	if err := t.claims.checkTimes(now(a.Now), leeway); err != nil {
		return "", err
	}
	return strings.TrimPrefix(iss, didKeyPrefix), nil
}

// TenantAuth checks the HS256 JWT of the tenants API (API.md, "Tenants API
// authentication"): alg "HS256" with Secret (JWT_SECRET), exp required and
// checked with Leeway, iat and nbf (if present) at most Leeway in the future,
// and sub equal to the tenant id being managed.
//
// The fields must not be changed while Verify may run; a TenantAuth is then
// safe for concurrent use.
type TenantAuth struct {
	// Secret is JWT_SECRET; the configuration requires at least 32 bytes, and
	// Verify refuses to work with an empty one.
	Secret []byte
	// Leeway is the allowed clock skew; zero or negative means
	// DefaultTenantLeeway (60 s).
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks authorization, the raw Authorization header value (optionally
// "Bearer "-prefixed), for tenantID. It keeps no reference to authorization.
// Every failure caused by the token wraps ErrBadJWT.
func (a *TenantAuth) Verify(authorization []byte, tenantID string) error {
	if len(a.Secret) == 0 {
		// An empty HMAC key would let anyone mint tokens; this is a server
		// bug, so it is not reported as the caller's bad token.
		return errors.New("verify: TenantAuth.Secret is empty; set JWT_SECRET")
	}
	t, err := parseJWT(authorization)
	if err != nil {
		return err
	}
	if t.alg != "HS256" {
		return badJWT("alg %q; want HS256", t.alg)
	}
	mac := hmac.New(sha256.New, a.Secret)
	mac.Write(t.signingInput)
	if !hmac.Equal(t.sig, mac.Sum(nil)) {
		return badJWT("signature does not verify with JWT_SECRET")
	}
	sub, err := t.claims.str("sub")
	if err != nil {
		return err
	}
	if tenantID == "" || sub != tenantID {
		return badJWT("sub %q is not tenant %q", truncate(sub), truncate(tenantID))
	}
	leeway := a.Leeway
	if leeway <= 0 {
		leeway = DefaultTenantLeeway
	}
	return t.claims.checkTimes(now(a.Now), leeway)
}

// SignTenantToken returns an HS256 token for the tenants API of tenantID,
// issued at now and valid for ttl. It is what `push-server tenant-token`
// prints.
func SignTenantToken(secret []byte, tenantID string, ttl time.Duration, now time.Time) string {
	payload, err := json.Marshal(struct {
		Sub string `json:"sub"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}{tenantID, now.Unix(), now.Add(ttl).Unix()})
	if err != nil {
		panic("BUG: verify: cannot encode tenant claims: " + err.Error()) // a string and two ints always encode
	}
	input := appendSigningInput(nil, `{"alg":"HS256","typ":"JWT"}`, payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write(input)
	return string(strictB64.AppendEncode(append(input, '.'), mac.Sum(nil)))
}

// SignClientToken returns an EdDSA client token as a wallet would send it:
// iss is the did:key of priv's public key, aud is audience, iat is now and exp
// is now+ttl. It is for the CLI, the load generator and tests.
func SignClientToken(priv ed25519.PrivateKey, audience string, ttl time.Duration, now time.Time) string {
	payload, err := json.Marshal(struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}{DIDKey(priv.Public().(ed25519.PublicKey)), audience, now.Unix(), now.Add(ttl).Unix()})
	if err != nil {
		panic("BUG: verify: cannot encode client claims: " + err.Error())
	}
	input := appendSigningInput(nil, `{"alg":"EdDSA","typ":"JWT"}`, payload)
	return string(strictB64.AppendEncode(append(input, '.'), ed25519.Sign(priv, input)))
}

// appendSigningInput appends base64url(header) "." base64url(payload).
func appendSigningInput(dst []byte, header string, payload []byte) []byte {
	dst = strictB64.AppendEncode(dst, []byte(header))
	dst = append(dst, '.')
	return strictB64.AppendEncode(dst, payload)
}

func now(clock func() time.Time) time.Time {
	if clock == nil {
		return time.Now()
	}
	return clock()
}

// token is a parsed, not yet verified, compact JWS.
type token struct {
	alg          string
	claims       claims
	signingInput []byte // header "." payload, as sent; a copy, never the caller's
	sig          []byte
}

// parseJWT splits and decodes a compact JWS, strips an optional "Bearer "
// prefix, and checks the parts of the header that do not depend on the
// algorithm. The signature is not checked here.
func parseJWT(authorization []byte) (*token, error) {
	tok := bytes.TrimSpace(authorization)
	if len(tok) >= len("Bearer ") && bytes.EqualFold(tok[:len("Bearer ")], []byte("Bearer ")) {
		tok = bytes.TrimLeft(tok[len("Bearer "):], " ")
	}
	if len(tok) == 0 {
		return nil, badJWT("no token")
	}
	if len(tok) > maxJWTLen {
		return nil, badJWT("token is %d bytes; at most %d", len(tok), maxJWTLen)
	}
	if bytes.Count(tok, []byte{'.'}) != 2 {
		return nil, badJWT("not three dot-separated parts")
	}
	dot1 := bytes.IndexByte(tok, '.')
	dot2 := dot1 + 1 + bytes.IndexByte(tok[dot1+1:], '.')
	headerB64, payloadB64, sigB64 := tok[:dot1], tok[dot1+1:dot2], tok[dot2+1:]

	headerJSON, err := strictB64.DecodeString(string(headerB64))
	if err != nil {
		return nil, badJWT("header is not base64url: %v", err)
	}
	header, err := parseObject(headerJSON)
	if err != nil {
		return nil, badJWT("header: %v", err)
	}
	alg, err := header.str("alg")
	if err != nil {
		return nil, err
	}
	if raw, ok := header["typ"]; ok {
		var typ string
		if json.Unmarshal(raw, &typ) != nil || !strings.EqualFold(typ, "JWT") {
			return nil, badJWT("typ %s; want \"JWT\"", truncate(string(raw)))
		}
	}
	// RFC 7515 §4.1.11: a recipient that does not understand every extension
	// listed in crit must reject the token, and we understand none.
	if _, ok := header["crit"]; ok {
		return nil, badJWT("crit header present; no extensions are supported")
	}
	payloadJSON, err := strictB64.DecodeString(string(payloadB64))
	if err != nil {
		return nil, badJWT("payload is not base64url: %v", err)
	}
	c, err := parseObject(payloadJSON)
	if err != nil {
		return nil, badJWT("payload: %v", err)
	}
	sig, err := strictB64.DecodeString(string(sigB64))
	if err != nil {
		return nil, badJWT("signature is not base64url: %v", err)
	}
	return &token{
		alg:          alg,
		claims:       c,
		signingInput: append([]byte(nil), tok[:dot2]...),
		sig:          sig,
	}, nil
}

// claims is a JSON object's members, undecoded. The header uses it too.
type claims map[string]json.RawMessage

// parseObject decodes a JSON object, rejecting duplicate member names and
// trailing data. Duplicates must be rejected because parsers disagree on
// which one wins ({"alg":"EdDSA","alg":"none"}), and a signer's tool and our
// verifier must read the same claims. Names are matched exactly, unlike
// encoding/json's case-insensitive struct fields.
func parseObject(b []byte) (claims, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	c := claims{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("bad JSON: member name is not a string")
		}
		if _, dup := c[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", truncate(name))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("bad JSON in %q: %w", truncate(name), err)
		}
		c[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("bad JSON: object not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("bad JSON: data after the object")
	}
	return c, nil
}

// str returns the required string member name.
func (c claims) str(name string) (string, error) {
	raw, ok := c[name]
	if !ok {
		return "", badJWT("%s missing", name)
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", badJWT("%s is not a string", name)
	}
	return s, nil
}

// num returns the NumericDate member name (seconds since the epoch, possibly
// fractional) and whether it is present. null is not a number.
func (c claims) num(name string) (float64, bool, error) {
	raw, ok := c[name]
	if !ok {
		return 0, false, nil
	}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, true, badJWT("%s is not a number", name)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, true, badJWT("%s is not a finite number", name)
	}
	return f, true, nil
}

// checkAudience requires aud to be want, or an array of strings containing it.
func (c claims) checkAudience(want string) error {
	raw, ok := c["aud"]
	if !ok {
		return badJWT("aud missing")
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return badJWT("aud is not a string")
		}
		if s != want {
			return badJWT("aud %q; want %q", truncate(s), want)
		}
		return nil
	}
	var list []string
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return badJWT("aud is neither a string nor an array of strings")
	}
	for _, s := range list {
		if s == want {
			return nil
		}
	}
	return badJWT("aud %s does not contain %q", truncate(string(raw)), want)
}

// checkTimes requires exp, and checks exp, iat and nbf against now with leeway.
func (c claims) checkTimes(now time.Time, leeway time.Duration) error {
	t := float64(now.Unix()) + float64(now.Nanosecond())/1e9
	lw := leeway.Seconds()
	exp, ok, err := c.num("exp")
	if err != nil {
		return err
	}
	if !ok {
		return badJWT("exp missing; tokens must expire")
	}
	// RFC 7519 §4.1.4: the current time must be before exp.
	if t >= exp+lw {
		return badJWT("expired %.0fs ago (leeway %s)", t-exp, leeway)
	}
	if iat, ok, err := c.num("iat"); err != nil {
		return err
	} else if ok && iat > t+lw {
		return badJWT("iat is %.0fs in the future (leeway %s)", iat-t, leeway)
	}
	if nbf, ok, err := c.num("nbf"); err != nil {
		return err
	} else if ok && nbf > t+lw {
		return badJWT("not valid for another %.0fs (nbf, leeway %s)", nbf-t, leeway)
	}
	return nil
}
