package dispatch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// Vault seals tenants' provider Credentials for storage (AES-256-GCM, the
// tenant id as associated data, so a sealed blob copied to another tenant
// does not open). A sealed blob starts with a 4-byte key id, so that after
// a key rotation blobs sealed under the previous key still open while they
// are re-sealed (see docs/tenants.md, "Rotating the key").
type Vault struct {
	sealer  cipher.AEAD
	id      [4]byte
	openers map[[4]byte]cipher.AEAD // every key that may have sealed a stored blob
}

// ErrSealed means a sealed blob does not open: another key, another tenant,
// or tampering.
var ErrSealed = errors.New("dispatch: sealed credentials do not open with this key and tenant")

// NewVault makes a Vault that seals with key and opens blobs sealed with key
// or any of previous. Every key is 32 bytes.
func NewVault(key []byte, previous ...[]byte) (*Vault, error) {
	v := &Vault{openers: map[[4]byte]cipher.AEAD{}}
	for i, k := range append([][]byte{key}, previous...) {
		aead, id, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			v.sealer, v.id = aead, id
		}
		v.openers[id] = aead
	}
	return v, nil
}

func newAEAD(key []byte) (cipher.AEAD, [4]byte, error) {
	var id [4]byte
	if len(key) != 32 {
		return nil, id, fmt.Errorf("want a 32-byte key, got %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, id, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, id, err
	}
	sum := sha256.Sum256(append([]byte("push-server vault key id\x00"), key...))
	copy(id[:], sum[:4])
	return aead, id, nil
}

// SealAPNS seals c's APNs credentials for tenantID: the blob a tenant
// record keeps for APNs. It holds every field of Credentials but the topic
// and FCM's (those tagged "-"), as JSON in Credentials' stored form.
func (v *Vault) SealAPNS(tenantID string, c *Credentials) []byte {
	plain, err := json.Marshal(c)
	if err != nil {
		panic("BUG: Credentials do not marshal: " + err.Error())
	}
	return v.seal(tenantID, plain)
}

// SealFCM seals c's FCM service account for tenantID: the blob a tenant
// record keeps for FCM, apart from APNs' so that either can be replaced or
// cleared alone.
func (v *Vault) SealFCM(tenantID string, c *Credentials) []byte {
	return v.seal(tenantID, c.FCMCredentials)
}

// webpushBlob is the stored form of a tenant's sealed Web Push blob.
type webpushBlob struct {
	PrivateKey string `json:"vapid_private_key"`
	Subject    string `json:"vapid_subject"`
}

// SealWebPush seals c's VAPID private key and subject for tenantID: the
// blob a tenant record keeps for Web Push, apart from the others so that it
// can be replaced or cleared alone. The public key is derived when it is
// needed (CheckVAPID), so nothing about the key is kept in the clear.
func (v *Vault) SealWebPush(tenantID string, c *Credentials) []byte {
	plain, err := json.Marshal(webpushBlob{PrivateKey: c.VAPIDPrivateKey, Subject: c.VAPIDSubject})
	if err != nil {
		panic("BUG: VAPID credentials do not marshal: " + err.Error())
	}
	return v.seal(tenantID, plain)
}

// OpenCredentials opens a tenant's sealed blobs, as SealAPNS, SealFCM and
// SealWebPush made them, into its Credentials; apnsTopic is the topic
// stored in the clear beside the APNs blob. A nil blob leaves that
// provider unconfigured. An error names the provider whose blob
// does not open (wrapping ErrSealed) or does not decode.
func (v *Vault) OpenCredentials(tenantID string, apns, fcm []byte, apnsTopic string, webpush []byte) (Credentials, error) {
	var c Credentials
	if apns != nil {
		plain, err := v.open(tenantID, apns)
		if err != nil {
			return Credentials{}, fmt.Errorf("cannot open tenant %s's APNs credentials: %w", tenantID, err)
		}
		if err := json.Unmarshal(plain, &c); err != nil {
			return Credentials{}, fmt.Errorf("cannot decode tenant %s's APNs credentials: %w", tenantID, err)
		}
		c.APNSTopic = apnsTopic
	}
	if fcm != nil {
		plain, err := v.open(tenantID, fcm)
		if err != nil {
			return Credentials{}, fmt.Errorf("cannot open tenant %s's FCM credentials: %w", tenantID, err)
		}
		c.FCMCredentials = plain
	}
	if webpush != nil {
		plain, err := v.open(tenantID, webpush)
		if err != nil {
			return Credentials{}, fmt.Errorf("cannot open tenant %s's Web Push credentials: %w", tenantID, err)
		}
		var b webpushBlob
		if err := json.Unmarshal(plain, &b); err != nil {
			return Credentials{}, fmt.Errorf("cannot decode tenant %s's Web Push credentials: %w", tenantID, err)
		}
		c.VAPIDPrivateKey, c.VAPIDSubject = b.PrivateKey, b.Subject
	}
	return c, nil
}

// seal encrypts plaintext for tenantID: key id, random nonce, ciphertext.
func (v *Vault) seal(tenantID string, plaintext []byte) []byte {
	out := make([]byte, 4+v.sealer.NonceSize(), 4+v.sealer.NonceSize()+len(plaintext)+v.sealer.Overhead())
	copy(out, v.id[:])
	if _, err := rand.Read(out[4:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return v.sealer.Seal(out, out[4:], plaintext, []byte(tenantID))
}

// open decrypts a blob seal made for tenantID.
func (v *Vault) open(tenantID string, sealed []byte) ([]byte, error) {
	if len(sealed) < 4 {
		return nil, ErrSealed
	}
	aead := v.openers[[4]byte(sealed[:4])]
	if aead == nil || len(sealed) < 4+aead.NonceSize() {
		return nil, ErrSealed
	}
	nonce, ct := sealed[4:4+aead.NonceSize()], sealed[4+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, []byte(tenantID))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// Current reports whether sealed was made with the sealing key (false: it
// was sealed under a previous key and should be re-sealed).
func (v *Vault) Current(sealed []byte) bool {
	return len(sealed) >= 4 && [4]byte(sealed[:4]) == v.id
}
