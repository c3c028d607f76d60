package router

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"push-server/verify"
)

// clientJWT makes a client's JWT with an encoder independent of verify.
func clientJWT(t *testing.T, priv ed25519.PrivateKey, aud string, iat, exp time.Time) string {
	t.Helper()
	iss := verify.DIDKey(priv.Public().(ed25519.PublicKey))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": iss, "sub": "push", "aud": aud, "iat": iat.Unix(), "exp": exp.Unix(),
	}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestClientAuthentication(t *testing.T) {
	const aud = "https://push.example.com"
	h := newHarness(t, options{audience: aud})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	did := verify.DIDKey(pub)
	id := did[len("did:key:"):]
	now := time.Now()
	body := `{"client_id":"` + did + `","type":"noop","token":"tok"}`

	ok := clientJWT(t, priv, aud, now, now.Add(time.Hour))
	h.do("POST", "/clients", body, map[string]string{"Authorization": ok}).expectOK(t, 200)
	h.do("POST", "/clients", body, map[string]string{"Authorization": "Bearer " + ok}).expectOK(t, 200)

	bad := map[string]string{
		"another client's JWT": clientJWT(t, other, aud, now, now.Add(time.Hour)),
		"wrong audience":       clientJWT(t, priv, "https://elsewhere", now, now.Add(time.Hour)),
		"expired":              clientJWT(t, priv, aud, now.Add(-time.Hour), now.Add(-121*time.Second)),
		"garbage":              "Bearer not.a.jwt",
	}
	for what, tok := range bad {
		t.Run(what, func(t *testing.T) {
			h.do("POST", "/clients", body, map[string]string{"Authorization": tok}).expectError(t, 401, "authentication", "authorization")
			h.do("DELETE", "/clients/"+id, "", map[string]string{"Authorization": tok}).expectError(t, 401, "authentication", "authorization")
		})
	}
	// Within the 120 s leeway.
	late := clientJWT(t, priv, aud, now.Add(-time.Hour), now.Add(-100*time.Second))
	h.do("DELETE", "/clients/"+did, "", map[string]string{"Authorization": late}).expectOK(t, 200)

	strict := newHarness(t, options{audience: aud, configure: func(c *Config) { c.RequireClientAuth = true }})
	strict.do("POST", "/clients", body, nil).expectError(t, 401, "authentication", "authorization")
	strict.do("DELETE", "/clients/"+id, "", nil).expectError(t, 401, "authentication", "authorization")
	strict.do("POST", "/clients", body, map[string]string{"Authorization": ok}).expectOK(t, 200)
}
