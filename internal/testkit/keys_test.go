package testkit

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestNewP8ParsesBackToItsKey(t *testing.T) {
	key, p8 := NewP8(t)
	block, _ := pem.Decode(p8)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("p8 is not a PRIVATE KEY PEM block: %q", p8)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(parsed) {
		t.Error("the .p8 holds another key than the one returned")
	}
}
