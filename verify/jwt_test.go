package verify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testAudience = "https://push.example.com"

// clientFixture is one wallet key and a ClientAuth on the fixed test clock.
type clientFixture struct {
	priv ed25519.PrivateKey
	did  string
	auth *ClientAuth
}

func newClientFixture() clientFixture {
	priv := testKey("client")
	return clientFixture{
		priv: priv,
		did:  DIDKey(priv.Public().(ed25519.PublicKey)),
		auth: &ClientAuth{Audience: testAudience, Leeway: 120 * time.Second, Now: func() time.Time { return testNow }},
	}
}

// claims returns typical client claims issued at testNow+iatOffset and
// valid for ttl.
func (c clientFixture) claims(iatOffset, ttl time.Duration) jwt.MapClaims {
	iat := testNow.Add(iatOffset)
	return jwt.MapClaims{
		"iss": c.did,
		"sub": "c479fe5dc464e771e78b193d239a65b58d278cad1c34bfb0b5716e5bb514928e",
		"aud": testAudience,
		"iat": iat.Unix(),
		"exp": iat.Add(ttl).Unix(),
	}
}

// signEdDSA encodes claims with golang-jwt, an encoder independent of ours.
func signEdDSA(t testing.TB, priv ed25519.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// craft builds a token from literal JSON, for shapes no encoder would make.
func craft(header, payload string, sign func(input []byte) []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return input + "." + enc.EncodeToString(sign([]byte(input)))
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestClientAuth(t *testing.T) {
	c := newClientFixture()
	wantID := strings.TrimPrefix(c.did, "did:key:")
	ok := func(name, header string) {
		t.Helper()
		id, err := c.auth.Verify([]byte(header))
		if err != nil || id != wantID {
			t.Fatalf("%s: Verify = %q, %v; want %q, nil", name, id, err, wantID)
		}
	}
	bad := func(name, header string) {
		t.Helper()
		id, err := c.auth.Verify([]byte(header))
		if !errors.Is(err, ErrBadJWT) || id != "" {
			t.Fatalf("%s: Verify = %q, %v; want \"\", ErrBadJWT", name, id, err)
		}
	}
	edSign := func(input []byte) []byte { return ed25519.Sign(c.priv, input) }
	base := c.claims(0, time.Hour)
	valid := signEdDSA(t, c.priv, base)

	ok("raw", valid)
	ok("Bearer", "Bearer "+valid)
	ok("bearer lower case", "bearer "+valid)
	ok("BEARER upper case", "BEARER "+valid)
	ok("surrounding spaces", "  Bearer  "+valid+" ")
	ok("aud array", signEdDSA(t, c.priv, with(base, "aud", []string{"https://other.example", testAudience})))
	ok("no iat", signEdDSA(t, c.priv, with(base, "iat", nil)))
	ok("fractional exp", signEdDSA(t, c.priv, with(base, "exp", float64(testNow.Unix())+0.5)))
	ok("typ absent", craft(`{"alg":"EdDSA"}`, jsonOf(t, base), edSign))
	ok("extra header members ignored", craft(`{"alg":"EdDSA","typ":"jwt","kid":"x","crv":"Ed25519"}`, jsonOf(t, base), edSign))
	ok("our own encoder", SignClientToken(c.priv, testAudience, time.Hour, testNow))

	// Time: leeway is 120 s.
	ok("expired within leeway", signEdDSA(t, c.priv, c.claims(-time.Hour-119*time.Second, time.Hour)))
	bad("expired at the leeway edge", signEdDSA(t, c.priv, c.claims(-time.Hour-120*time.Second, time.Hour)))
	bad("expired beyond leeway", signEdDSA(t, c.priv, c.claims(-2*time.Hour, time.Hour)))
	ok("iat in the future within leeway", signEdDSA(t, c.priv, c.claims(120*time.Second, time.Hour)))
	bad("iat in the future beyond leeway", signEdDSA(t, c.priv, c.claims(121*time.Second, time.Hour)))
	bad("nbf beyond leeway", signEdDSA(t, c.priv, with(base, "nbf", testNow.Add(10*time.Minute).Unix())))
	ok("nbf within leeway", signEdDSA(t, c.priv, with(base, "nbf", testNow.Add(time.Minute).Unix())))
	bad("missing exp", signEdDSA(t, c.priv, with(base, "exp", nil)))
	bad("exp a string", signEdDSA(t, c.priv, with(base, "exp", "tomorrow")))
	bad("exp null", craft(`{"alg":"EdDSA"}`, strings.Replace(jsonOf(t, base), `"exp":`, `"exp":null,"x":`, 1), edSign))
	bad("iat a string", signEdDSA(t, c.priv, with(base, "iat", "now")))

	// Audience.
	bad("wrong aud", signEdDSA(t, c.priv, with(base, "aud", "https://evil.example")))
	bad("aud with a trailing slash", signEdDSA(t, c.priv, with(base, "aud", testAudience+"/")))
	bad("aud array without it", signEdDSA(t, c.priv, with(base, "aud", []string{"https://a.example", "https://b.example"})))
	bad("empty aud array", signEdDSA(t, c.priv, with(base, "aud", []string{})))
	bad("missing aud", signEdDSA(t, c.priv, with(base, "aud", nil)))
	bad("aud a number", signEdDSA(t, c.priv, with(base, "aud", 7)))
	bad("aud array of numbers", signEdDSA(t, c.priv, with(base, "aud", []int{1})))

	// Algorithms and headers.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, base).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	bad("alg none", none)
	bad("alg none with an EdDSA signature", craft(`{"alg":"none","typ":"JWT"}`, jsonOf(t, base), edSign))
	// Alg confusion: an HMAC keyed with the public key, which anyone knows.
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, base).SignedString([]byte(c.priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	bad("alg HS256", hs)
	bad("alg eddsa lower case", craft(`{"alg":"eddsa"}`, jsonOf(t, base), edSign))
	bad("typ not JWT", craft(`{"alg":"EdDSA","typ":"JOSE+JSON"}`, jsonOf(t, base), edSign))
	bad("crit", craft(`{"alg":"EdDSA","crit":["exp"]}`, jsonOf(t, base), edSign))
	bad("duplicate alg", craft(`{"alg":"none","alg":"EdDSA"}`, jsonOf(t, base), edSign))
	bad("duplicate iss", craft(`{"alg":"EdDSA"}`, `{"iss":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",`+jsonOf(t, base)[1:], edSign))
	bad("ALG is not alg", craft(`{"ALG":"EdDSA"}`, jsonOf(t, base), edSign))

	// Issuer and key.
	other := testKey("someone else")
	bad("iss key mismatch", signEdDSA(t, c.priv, with(base, "iss", DIDKey(other.Public().(ed25519.PublicKey)))))
	bad("signed by another key", signEdDSA(t, other, base))
	bad("iss not did:key", signEdDSA(t, c.priv, with(base, "iss", "did:web:wallet.example")))
	bad("iss without did:key:", signEdDSA(t, c.priv, with(base, "iss", wantID)))
	bad("missing iss", signEdDSA(t, c.priv, with(base, "iss", nil)))
	bad("iss a number", signEdDSA(t, c.priv, with(base, "iss", 1)))

	// Tampering and garbage.
	parts := strings.Split(valid, ".")
	evil := with(base, "aud", "https://evil.example")
	bad("payload swapped", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(jsonOf(t, evil)))+"."+parts[2])
	bad("signature truncated", valid[:len(valid)-4])
	bad("signature padded", valid+"==")
	bad("no signature", parts[0]+"."+parts[1]+".")
	bad("empty", "")
	bad("Bearer only", "Bearer ")
	bad("garbage", "hello")
	bad("two parts", parts[0]+"."+parts[1])
	bad("four parts", valid+".x")
	bad("dots only", "..")
	bad("non-base64 header", "!!!."+parts[1]+"."+parts[2])
	bad("header not JSON", base64.RawURLEncoding.EncodeToString([]byte("alg"))+"."+parts[1]+"."+parts[2])
	bad("payload an array", craft(`{"alg":"EdDSA"}`, `[1,2]`, edSign))
	bad("payload with trailing data", craft(`{"alg":"EdDSA"}`, jsonOf(t, base)+`{}`, edSign))
	bad("oversize", "Bearer "+strings.Repeat("a", 9000)+"."+parts[1]+"."+parts[2])
	bad("Basic auth", "Basic dXNlcjpwYXNz")
}

func TestClientAuthDefaults(t *testing.T) {
	c := newClientFixture()
	tok := []byte(signEdDSA(t, c.priv, c.claims(-time.Hour-100*time.Second, time.Hour))) // expired 100 s ago

	a := &ClientAuth{Audience: testAudience, Now: func() time.Time { return testNow }}
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("Leeway 0 should mean the 120 s default: %v", err)
	}
	a.Leeway = 10 * time.Second
	if _, err := a.Verify(tok); !errors.Is(err, ErrBadJWT) {
		t.Fatalf("Leeway 10 s accepted a token expired 100 s ago: %v", err)
	}

	// Now nil means the real clock: a token for the real now verifies.
	wall := &ClientAuth{Audience: testAudience}
	if _, err := wall.Verify([]byte(SignClientToken(c.priv, testAudience, time.Minute, time.Now()))); err != nil {
		t.Fatalf("Now nil: %v", err)
	}

	// A missing Audience is the server's bug, not a bad token.
	noAud := &ClientAuth{Now: a.Now}
	if id, err := noAud.Verify(tok); err == nil || errors.Is(err, ErrBadJWT) || id != "" {
		t.Fatalf("empty Audience: Verify = %q, %v; want a configuration error that is not ErrBadJWT", id, err)
	}
}

// TestClientAuthReasons checks that the reason is in the error text, since
// operators read it in logs.
func TestClientAuthReasons(t *testing.T) {
	c := newClientFixture()
	base := c.claims(0, time.Hour)
	f := func(tok, want string) {
		t.Helper()
		_, err := c.auth.Verify([]byte(tok))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Verify error %v; want it to mention %q", err, want)
		}
	}
	f(signEdDSA(t, c.priv, with(base, "exp", nil)), "exp missing")
	f(signEdDSA(t, c.priv, c.claims(-3*time.Hour, time.Hour)), "expired")
	f(signEdDSA(t, c.priv, with(base, "aud", "x")), "aud")
	f(signEdDSA(t, testKey("other"), base), "signature")
	f(signEdDSA(t, c.priv, with(base, "iss", "did:web:x")), "iss")
}

// TestSignClientTokenIsStandard parses our encoder's output with golang-jwt.
func TestSignClientTokenIsStandard(t *testing.T) {
	c := newClientFixture()
	tok := SignClientToken(c.priv, testAudience, time.Hour, time.Now())
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return c.priv.Public(), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(testAudience), jwt.WithExpirationRequired(), jwt.WithIssuer(c.did))
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt rejects SignClientToken's output: %v", err)
	}
}

func TestTenantAuth(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	auth := &TenantAuth{Secret: secret, Leeway: 60 * time.Second, Now: func() time.Time { return testNow }}
	const tenant = "wallet-one"
	hs := func(key []byte, claims jwt.MapClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := jwt.MapClaims{"sub": tenant, "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix()}
	f := func(name, header, tenantID string, wantOK bool) {
		t.Helper()
		err := auth.Verify([]byte(header), tenantID)
		if wantOK && err != nil {
			t.Fatalf("%s: Verify = %v; want nil", name, err)
		}
		if !wantOK && !errors.Is(err, ErrBadJWT) {
			t.Fatalf("%s: Verify = %v; want ErrBadJWT", name, err)
		}
	}
	valid := hs(secret, base)
	f("valid raw", valid, tenant, true)
	f("valid Bearer", "Bearer "+valid, tenant, true)
	f("valid bearer", "bearer "+valid, tenant, true)
	f("SignTenantToken", SignTenantToken(secret, tenant, time.Hour, testNow), tenant, true)
	f("no iat", hs(secret, with(base, "iat", nil)), tenant, true)
	f("expired within leeway", hs(secret, with(base, "exp", testNow.Add(-59*time.Second).Unix())), tenant, true)
	f("expired beyond leeway", hs(secret, with(base, "exp", testNow.Add(-61*time.Second).Unix())), tenant, false)
	f("SignTenantToken expired", SignTenantToken(secret, tenant, time.Hour, testNow.Add(-2*time.Hour)), tenant, false)
	f("missing exp", hs(secret, with(base, "exp", nil)), tenant, false)
	f("iat beyond leeway", hs(secret, with(base, "iat", testNow.Add(2*time.Minute).Unix())), tenant, false)
	f("other tenant", valid, "wallet-two", false)
	f("tenant id prefix", valid, "wallet", false)
	f("empty tenant id", hs(secret, with(base, "sub", "")), "", false)
	f("missing sub", hs(secret, with(base, "sub", nil)), tenant, false)
	f("sub a number", hs(secret, with(base, "sub", 1)), tenant, false)
	f("wrong secret", hs([]byte("fedcba9876543210fedcba9876543210"), base), tenant, false)
	f("secret prefix", hs(secret[:31], base), tenant, false)
	f("alg HS512", func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, base).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}(), tenant, false)
	f("alg EdDSA", signEdDSA(t, testKey("tenant"), base), tenant, false)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, base).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	f("alg none", none, tenant, false)
	f("HS256 header, empty signature", strings.Join(strings.Split(valid, ".")[:2], ".")+".", tenant, false)
	f("duplicate sub", craft(`{"alg":"HS256"}`, `{"sub":"wallet-two","sub":"wallet-one","exp":`+itoa(testNow.Add(time.Hour).Unix())+`}`,
		func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) }), tenant, false)
	f("garbage", "Bearer nope", tenant, false)
	f("empty", "", tenant, false)

	// Defaults and configuration errors.
	def := &TenantAuth{Secret: secret, Now: auth.Now}
	if err := def.Verify([]byte(hs(secret, with(base, "exp", testNow.Add(-50*time.Second).Unix()))), tenant); err != nil {
		t.Fatalf("Leeway 0 should mean the 60 s default: %v", err)
	}
	if err := def.Verify([]byte(hs(secret, with(base, "exp", testNow.Add(-70*time.Second).Unix()))), tenant); !errors.Is(err, ErrBadJWT) {
		t.Fatalf("default leeway accepted a token expired 70 s ago: %v", err)
	}
	empty := &TenantAuth{Now: auth.Now}
	if err := empty.Verify([]byte(hs([]byte{0}, base)), tenant); err == nil || errors.Is(err, ErrBadJWT) {
		t.Fatalf("empty Secret: Verify = %v; want a configuration error that is not ErrBadJWT", err)
	}
}

// TestSignTenantTokenIsStandard parses our encoder's output with golang-jwt.
func TestSignTenantTokenIsStandard(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok := SignTenantToken(secret, "t1", time.Hour, time.Now())
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithSubject("t1"), jwt.WithIssuedAt())
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt rejects SignTenantToken's output: %v", err)
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) < 59*time.Minute {
		t.Fatalf("exp = %v; want about an hour from now", exp)
	}
}

func jsonOf(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	// golang-jwt's own encoder, so the payload is exactly what it would sign.
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
