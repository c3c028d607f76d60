package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
)

// TestDIDKeyKnownVector uses the W3C did:key method's Ed25519 example, where
// the key is given independently as base58 (publicKeyBase58).
func TestDIDKeyKnownVector(t *testing.T) {
	const (
		did       = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
		keyBase58 = "B12NYF8RrR3h41TDCTJojY59usg3mbtbjnFs7Eud1Y6u"
	)
	key, err := decodeBase58(keyBase58)
	if err != nil || len(key) != ed25519.PublicKeySize {
		t.Fatalf("decodeBase58(%s) = %x, %v; want 32 bytes", keyBase58, key, err)
	}
	if got := DIDKey(key); got != did {
		t.Fatalf("DIDKey(%x) = %s; want %s", key, got, did)
	}
	got, err := ParseDIDKey(did)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("ParseDIDKey(%s) = %x, %v; want %x", did, got, err, key)
	}
}

// TestDIDKeySpecExample checks the did:key spec's best-known example decodes
// to a 32-byte Ed25519 key and re-encodes to the same string.
func TestDIDKeySpecExample(t *testing.T) {
	const did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	key, err := ParseDIDKey(did)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != ed25519.PublicKeySize {
		t.Fatalf("ParseDIDKey(%s) gave %d bytes; want 32", did, len(key))
	}
	if got := DIDKey(key); got != did {
		t.Fatalf("DIDKey(ParseDIDKey(%s)) = %s", did, got)
	}
}

func TestDIDKeyRoundTrip(t *testing.T) {
	keys := []ed25519.PublicKey{
		make(ed25519.PublicKey, 32),                       // all zero
		ed25519.PublicKey(bytes.Repeat([]byte{0xff}, 32)), // all ones
	}
	for i := range 50 {
		keys = append(keys, testKey(string(rune('a'+i))).Public().(ed25519.PublicKey))
	}
	for _, k := range keys {
		did := DIDKey(k)
		if !strings.HasPrefix(did, "did:key:z6Mk") {
			t.Errorf("DIDKey(%x) = %s; want the did:key:z6Mk prefix of every Ed25519 did:key", k, did)
		}
		got, err := ParseDIDKey(did)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseDIDKey(DIDKey(%x)) = %x, %v", k, got, err)
		}
	}
}

func TestParseDIDKeyRejects(t *testing.T) {
	valid := DIDKey(testKey("client").Public().(ed25519.PublicKey))
	secp := "did:key:z" + string(appendBase58(nil, append([]byte{0xe7, 0x01}, bytes.Repeat([]byte{2}, 33)...)))
	f := func(s string) {
		t.Helper()
		if k, err := ParseDIDKey(s); err == nil {
			t.Fatalf("ParseDIDKey(%q) = %x; want an error", s, k)
		}
	}
	f("")
	f("did:key:")
	f("did:key:z")
	f(strings.TrimPrefix(valid, "did:key:")) // the prefix is required
	f("DID:KEY:" + strings.TrimPrefix(valid, "did:key:"))
	f("did:web:example.com")
	f("did:key:" + "m" + strings.TrimPrefix(valid, "did:key:z")) // multibase base64, not base58btc
	f(valid[:len(valid)-1])                                      // 33 bytes
	f(valid + "1")                                               // one more digit: too long a key
	f(strings.Replace(valid, "6Mk", "6M0", 1))                   // '0' is not in the alphabet
	f(strings.Replace(valid, "6Mk", "6Ml", 1))                   // nor is 'l'
	f(secp)                                                      // secp256k1 key (0xe7)
	f("did:key:z" + strings.Repeat("2", 500))                    // long input is refused early
}

// TestBase58Vectors pins the codec on Bitcoin's base58 test vectors.
func TestBase58Vectors(t *testing.T) {
	f := func(hexIn, want string) {
		t.Helper()
		in, err := hex.DecodeString(hexIn)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendBase58(nil, in)); got != want {
			t.Fatalf("base58(%s) = %q; want %q", hexIn, got, want)
		}
		if want == "" {
			return
		}
		back, err := decodeBase58(want)
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("decodeBase58(%q) = %x, %v; want %s", want, back, err, hexIn)
		}
	}
	f("", "")
	f("61", "2g")
	f("626262", "a3gV")
	f("636363", "aPEr")
	f("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2")
	f("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L")
	f("516b6fcd0f", "ABnLTmg")
	f("bf4f89001e670274dd", "3SEo3LWLoPntC")
	f("572e4794", "3EFU7m")
	f("ecac89cad93923c02321", "EJDM8drfXA6uyA")
	f("10c8511e", "Rt5zm")
	f("00000000000000000000", "1111111111")
	f("00", "1")
}
