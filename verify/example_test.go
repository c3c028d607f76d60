package verify_test

import (
	"crypto/ed25519"
	"fmt"

	"push-server/verify"
)

// A relay signs the X-Ed25519-Timestamp header value, a dot, the body length
// in bytes, a dot, and the body.
func ExampleAppendMessage() {
	ts := []byte("1700000000")
	body := []byte(`{"topic":"t","tag":1100,"message":"hi"}`)
	fmt.Printf("%s\n", verify.AppendMessage(nil, ts, body))
	// Output: 1700000000.39.{"topic":"t","tag":1100,"message":"hi"}
}

// The relay's side and the server's side of one send.
func ExampleRelay_Verify() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // use a real secret key
	r, err := verify.NewRelay(priv.Public().(ed25519.PublicKey), 0)
	if err != nil {
		panic(err)
	}
	ts, body := []byte("1700000000"), []byte(`{"message":"hi"}`)
	sig := verify.Sign(priv, ts, body) // X-Ed25519-Signature

	fmt.Println(r.Verify(ts, []byte(sig), body))
	fmt.Println(r.Verify(ts, []byte(sig), []byte(`{"message":"HI"}`)))
	// Output:
	// <nil>
	// verify: signature does not match
}
