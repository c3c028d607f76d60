package verify

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	ved25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// FuzzVerify feeds arbitrary headers and bodies to Relay.Verify. Properties:
// it never panics; any error is one of the package's sentinels; and whether
// the signature verifies agrees with an independent implementation of the
// same semantics, voi's ed25519.VerifyWithOptions with the FIPS 186-5 preset
// (cofactored, canonical R and A, S below L): nil and ErrStaleTimestamp only
// for a signature it accepts, ErrBadSignature only for one it rejects. A nil
// also needs a fresh timestamp.
func FuzzVerify(f *testing.F) {
	r, ts, sig, body := newSignedSend(f)
	f.Add(ts, sig, body)
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add(ts, sig, []byte{})
	f.Add([]byte("1700000000000"), sig, body)
	f.Add([]byte("99999999999999999999"), sig, body)
	f.Add(ts, []byte(strings.Repeat("zz", 64)), body)
	f.Add(ts, sig[:127], body)
	f.Add([]byte("-1"), sig, body)
	es := newEdgeSigner(f)
	for _, v := range relayEdgeVectors(f, es) {
		f.Add(es.ts, []byte(hex.EncodeToString(v.sig)), es.body)
	}
	sentinels := []error{ErrMissingTimestamp, ErrMissingSignature, ErrMalformedTimestamp, ErrStaleTimestamp, ErrMalformedSignature, ErrBadSignature}
	fips := &ved25519.Options{Verify: ved25519.VerifyOptionsFIPS_186_5}
	f.Fuzz(func(t *testing.T, ts, sigHex, body []byte) {
		err := r.Verify(ts, sigHex, body)
		if err == nil || errors.Is(err, ErrStaleTimestamp) || errors.Is(err, ErrBadSignature) {
			raw, herr := hex.DecodeString(string(sigHex))
			if herr != nil || len(raw) != ed25519.SignatureSize {
				t.Fatalf("Verify(%q, %q, %q) = %v for a malformed signature", ts, sigHex, body, err)
			}
			ref := ved25519.VerifyWithOptions(ved25519.PublicKey(r.key), AppendMessage(nil, ts, body), raw, fips)
			if ref == errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify(%q, %q, %q) = %v; voi's FIPS 186-5 verification says %v", ts, sigHex, body, err, ref)
			}
		}
		if err == nil {
			sec, perr := ParseTimestamp(ts)
			if perr != nil {
				t.Fatalf("Verify(%q, ...) = nil for a malformed timestamp", ts)
			}
			if d := testNow.Unix() - sec; d > 300 || d < -300 {
				t.Fatalf("Verify(%q, ...) = nil for a timestamp %d s off", ts, d)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("Verify returned %v, which is none of the sentinels", err)
	})
}

// FuzzClientAuth feeds arbitrary Authorization headers to ClientAuth.Verify.
// Properties: it never panics, and it returns a client id or an error, never
// both and never neither; an error always wraps ErrBadJWT; an accepted id is
// the did:key of a real Ed25519 key.
func FuzzClientAuth(f *testing.F) {
	c := newClientFixture()
	valid := SignClientToken(c.priv, testAudience, time.Hour, testNow)
	f.Add(valid)
	f.Add("Bearer " + valid)
	f.Add("")
	f.Add("Bearer ")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(valid[:len(valid)/2])
	f.Add(craft(`{"alg":"none"}`, `{"iss":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","aud":"x","exp":1}`, func([]byte) []byte { return nil }))
	f.Add(craft(`{"alg":"EdDSA","alg":"EdDSA"}`, `{}`, func([]byte) []byte { return make([]byte, 64) }))
	f.Add(craft(`{"alg":"EdDSA"}`, `{"iss":"did:key:z111111111111111111111111111111111111111111111111","aud":["`+testAudience+`"],"exp":1e400}`, func([]byte) []byte { return make([]byte, 64) }))
	f.Fuzz(func(t *testing.T, header string) {
		id, err := c.auth.Verify([]byte(header))
		switch {
		case err != nil && id != "":
			t.Fatalf("Verify(%q) = %q and %v; want one of them", header, id, err)
		case err == nil && id == "":
			t.Fatalf("Verify(%q) = \"\", nil; want an id or an error", header)
		case err != nil && !errors.Is(err, ErrBadJWT):
			t.Fatalf("Verify(%q) error %v does not wrap ErrBadJWT", header, err)
		case err == nil:
			if _, perr := ParseDIDKey("did:key:" + id); perr != nil {
				t.Fatalf("Verify(%q) accepted id %q that is not a did:key: %v", header, id, perr)
			}
		}
	})
}
