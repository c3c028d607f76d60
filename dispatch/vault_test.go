package dispatch

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
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

// everyCredential returns Credentials with every field set to a value
// naming it, so a field that gets lost on the way shows up as zero.
func everyCredential(t *testing.T, prefix string) Credentials {
	t.Helper()
	var c Credentials
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name := prefix + v.Type().Field(i).Name
		switch f := v.Field(i); f.Interface().(type) {
		case string:
			f.SetString(name)
		case []byte:
			f.SetBytes([]byte(name))
		default:
			t.Fatalf("Credentials.%s is a %s: teach everyCredential to fill it", v.Type().Field(i).Name, f.Type())
		}
	}
	return c
}

func TestVaultCredentialsRoundTrip(t *testing.T) {
	v, err := NewVault(key32(t))
	if err != nil {
		t.Fatal(err)
	}
	want := everyCredential(t, "")
	apns, fcm, webpush := v.SealAPNS("acme", &want), v.SealFCM("acme", &want), v.SealWebPush("acme", &want)
	for _, secret := range [][]byte{want.APNSPKCS8PEM, want.FCMCredentials, []byte(want.APNSCertificatePassword), []byte(want.VAPIDPrivateKey)} {
		if bytes.Contains(apns, secret) || bytes.Contains(fcm, secret) || bytes.Contains(webpush, secret) {
			t.Fatalf("a sealed blob contains %q in the clear", secret)
		}
	}
	// The topic is stored in the clear beside the blobs, not in them.
	got, err := v.OpenCredentials("acme", apns, fcm, want.APNSTopic, webpush)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("OpenCredentials = %+v, %v; want %+v (a field that does not survive sealing never reaches tenants)", got, err, want)
	}

	// Each provider's blob stands alone: a tenant may have either.
	onlyFCM, err := v.OpenCredentials("acme", nil, fcm, "", nil)
	if err != nil || !reflect.DeepEqual(onlyFCM, Credentials{FCMCredentials: want.FCMCredentials}) {
		t.Fatalf("FCM only: %+v, %v", onlyFCM, err)
	}
	onlyWebPush, err := v.OpenCredentials("acme", nil, nil, "", webpush)
	if err != nil || !reflect.DeepEqual(onlyWebPush, Credentials{VAPIDPrivateKey: want.VAPIDPrivateKey, VAPIDSubject: want.VAPIDSubject}) {
		t.Fatalf("Web Push only: %+v, %v", onlyWebPush, err)
	}
	if _, err := v.OpenCredentials("other", nil, nil, "", webpush); !errors.Is(err, ErrSealed) {
		t.Fatalf("another tenant's Web Push blob opened: %v", err)
	}
	wantAPNS := want
	wantAPNS.FCMCredentials = nil
	wantAPNS.VAPIDPrivateKey, wantAPNS.VAPIDSubject = "", ""
	if onlyAPNS, err := v.OpenCredentials("acme", apns, nil, want.APNSTopic, nil); err != nil || !reflect.DeepEqual(onlyAPNS, wantAPNS) {
		t.Fatalf("APNs only: %+v, %v", onlyAPNS, err)
	}
	if c, err := v.OpenCredentials("acme", nil, nil, "", nil); err != nil || !reflect.DeepEqual(c, Credentials{}) {
		t.Fatalf("no blobs: %+v, %v", c, err)
	}

	for _, tc := range []struct {
		name      string
		apns, fcm []byte
		want      string
	}{
		{"another tenant's APNs blob", v.SealAPNS("other", &want), fcm, "cannot open tenant acme's APNs credentials"},
		{"another tenant's FCM blob", apns, v.SealFCM("other", &want), "cannot open tenant acme's FCM credentials"},
		{"an APNs blob that is no JSON", v.seal("acme", []byte("{")), nil, "cannot decode tenant acme's APNs credentials"},
	} {
		_, err := v.OpenCredentials("acme", tc.apns, tc.fcm, "", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
		if strings.Contains(tc.name, "another tenant") && !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v; want ErrSealed", tc.name, err)
		}
	}
}

// Blobs sealed by the release before Credentials existed (router's own
// apnsSecret JSON, and the raw service account), under a fixed key: a
// tenant stored then must still open after an upgrade.
const (
	fixtureVaultKey = "vault-fixture-key-0123456789abcd"
	// {"type":"token","pkcs8_pem":"<base64 of fixtureP8>","key_id":"ABC123DEFG","team_id":"DEF123GHIJ"}
	fixtureTokenBlob = "cd8e8f5264b8e64d8c445cd00d8eb4f4706783856fa960ed059609a61aa93cee9d4ee9dea3a091e7eb399cff419082852e0cf94fa4f4505b3c5256ce8a8778087eb93df043e3091a2ccb0302358a54c20ba3d726d7930818778f43df2bfaba8742b304373bc08fbfd2f3d1b5a6be6828932a5be36f694cdc45c96c0518f52655d22701a89efa9ecc45b523b29709769e511b50ae82313da07a309f53a0d2b119fb4490ed2859e0a5b0041f18af1126e73a1cea6d2c32b9885073324d88312dbb"
	fixtureP8        = "-----BEGIN PRIVATE KEY-----\nMIGTAgEA\n-----END PRIVATE KEY-----\n"
	// {"type":"certificate","certificate":"MIIB/wA=","password":"hunter2"}
	fixtureCertBlob = "cd8e8f52716a441db15a10f46d827f92e975122bb878e377c1520736d157962d240f990c6b6bb4ffaf1a5a6cf9058554c99865f410b1c4ed997ca7b08eea6b0cce02fba80076aa6b4fec7b6e360f599f63de9509cadc21c2a85b79e21537a455beab2cb7"
	fixtureFCMBlob  = "cd8e8f522a4fa8dcf71250fe9b7d8d7b87aaa05ffe9d7ad6642f36eeb1718dd485ff5b1a2b20112816095d9f9b90b9883c4e5f0d71ad08e920c260af239ae0240569c9ad25831138042901d0d6c62dd348e21b"
	fixtureFCM      = `{"type":"service_account","project_id":"acme-push"}`
)

func TestVaultOpensBlobsSealedBeforeCredentials(t *testing.T) {
	v, err := NewVault([]byte(fixtureVaultKey))
	if err != nil {
		t.Fatal(err)
	}
	blob := func(h string) []byte {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := v.OpenCredentials("acme", blob(fixtureTokenBlob), blob(fixtureFCMBlob), "com.example.wallet", nil)
	want := Credentials{APNSType: APNSTypeToken, APNSTopic: "com.example.wallet", APNSPKCS8PEM: []byte(fixtureP8),
		APNSKeyID: "ABC123DEFG", APNSTeamID: "DEF123GHIJ", FCMCredentials: []byte(fixtureFCM)}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("token-auth tenant sealed by the old release: %+v, %v; want %+v", got, err, want)
	}
	got, err = v.OpenCredentials("acme", blob(fixtureCertBlob), nil, "com.example.wallet", nil)
	want = Credentials{APNSType: APNSTypeCertificate, APNSTopic: "com.example.wallet",
		APNSCertificate: []byte{0x30, 0x82, 0x01, 0xff, 0x00}, APNSCertificatePassword: "hunter2"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("certificate-auth tenant sealed by the old release: %+v, %v; want %+v", got, err, want)
	}
}
