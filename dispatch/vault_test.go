package dispatch

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key32(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVaultSealsPerTenant(t *testing.T) {
	v, err := NewVault(key32(t))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEA...\n-----END PRIVATE KEY-----\npassword=hunter2")
	sealed := v.seal("tenant-a", secret)
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) || bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed blob contains the plaintext")
	}
	if got, err := v.open("tenant-a", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := v.open("tenant-b", sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("another tenant's Open = %v; want ErrSealed", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := v.open("tenant-a", tampered); !errors.Is(err, ErrSealed) {
		t.Fatalf("tampered Open = %v; want ErrSealed", err)
	}
	if bytes.Equal(v.seal("tenant-a", secret), sealed) {
		t.Fatal("two seals of one plaintext are equal: the nonce is not fresh")
	}
	for _, short := range [][]byte{nil, {1, 2}, sealed[:10]} {
		if _, err := v.open("tenant-a", short); !errors.Is(err, ErrSealed) {
			t.Fatalf("Open(%x) = %v; want ErrSealed", short, err)
		}
	}
}

func TestVaultRotation(t *testing.T) {
	oldKey, newKey := key32(t), key32(t)
	old, _ := NewVault(oldKey)
	sealed := old.seal("t", []byte("secret"))

	rotated, err := NewVault(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.open("t", sealed); err != nil || string(got) != "secret" {
		t.Fatalf("a blob sealed under the previous key: %q, %v", got, err)
	}
	if rotated.Current(sealed) || !rotated.Current(rotated.seal("t", []byte("x"))) {
		t.Fatal("Current does not tell old blobs from new ones")
	}
	onlyNew, _ := NewVault(newKey)
	if _, err := onlyNew.open("t", sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("without the previous key: %v; want ErrSealed", err)
	}
	if _, err := NewVault(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}
