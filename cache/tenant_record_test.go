package cache

import (
	"encoding/binary"
	"testing"
)

// A bbolt file written before incarnations and sandbox suspensions existed
// must still open: its records read as incarnation 0, and the next write
// stores the current layout.
func TestTenantRecordV1StillReads(t *testing.T) {
	v1 := []byte{tenantRecordV1, tenantFlagAPNS}
	v1 = binary.AppendUvarint(v1, 7)
	for _, f := range []string{"com.example", "token", "sealed", "", "BadCertificate", ""} {
		v1 = binary.AppendUvarint(v1, uint64(len(f)))
		v1 = append(v1, f...)
	}
	got, err := decodeTenantRecord("a", v1)
	if err != nil {
		t.Fatalf("decode a version 1 record: %v", err)
	}
	if got.Version != 7 || got.Incarnation != 0 || got.APNSTopic != "com.example" || string(got.APNS) != "sealed" ||
		got.FCM != nil || got.APNSSuspended != "BadCertificate" || got.APNSSandboxSuspended != "" {
		t.Fatalf("version 1 record read as %+v", got)
	}
	got.Incarnation, got.APNSSandboxSuspended = 42, "InvalidProviderToken"
	again, err := decodeTenantRecord("a", appendTenantRecord(nil, &got))
	if err != nil || again.Incarnation != 42 || again.APNSSandboxSuspended != "InvalidProviderToken" || again.Version != 7 {
		t.Fatalf("round trip of the current layout: %+v, %v", again, err)
	}
}

// A version 2 record (before certificate expiries were kept) reads with an
// unknown expiry, and the current layout round-trips one.
func TestTenantRecordV2StillReads(t *testing.T) {
	v2 := []byte{tenantRecordV2, tenantFlagAPNS}
	v2 = binary.AppendUvarint(v2, 3)
	v2 = binary.AppendUvarint(v2, 99)
	for _, f := range []string{"com.example", "certificate", "sealed", "", "", "", ""} {
		v2 = binary.AppendUvarint(v2, uint64(len(f)))
		v2 = append(v2, f...)
	}
	got, err := decodeTenantRecord("a", v2)
	if err != nil {
		t.Fatalf("decode a version 2 record: %v", err)
	}
	if got.Version != 3 || got.Incarnation != 99 || got.APNSType != "certificate" || got.APNSCertificateNotAfter != 0 {
		t.Fatalf("version 2 record read as %+v", got)
	}
	got.APNSCertificateNotAfter = 1783000000
	again, err := decodeTenantRecord("a", appendTenantRecord(nil, &got))
	if err != nil || again.APNSCertificateNotAfter != 1783000000 || again.Incarnation != 99 {
		t.Fatalf("round trip of the current layout: %+v, %v", again, err)
	}
	if _, err := decodeTenantRecord("a", append(v2, 0x80)); err == nil {
		t.Fatal("a version 2 record with trailing bytes decoded")
	}
}

// Web Push made the record longer (version 3). A tenant that does not use
// it is still written as version 2, which a binary from before Web Push
// reads (its decoder took version 2 only); one that does round-trips its
// sealed key, public key and suspension, "not set up" kept apart from set
// up with empty bytes.
func TestTenantRecordWebPushLayout(t *testing.T) {
	plain := Tenant{ID: "a", Version: 3, Incarnation: 9, FCM: []byte("sealed-fcm")}
	if b := appendTenantRecord(nil, &plain); b[0] != tenantRecordV2 {
		t.Fatalf("a tenant without Web Push is written as version %d; want 2, which older binaries read", b[0])
	}
	for _, wp := range []Tenant{
		{ID: "a", Version: 4, Incarnation: 9, WebPush: []byte("\x00sealed-vapid\xff"), WebPushPublicKey: "BPub", WebPushSuspended: "401 Unauthorized"},
		{ID: "a", Version: 5, Incarnation: 9, WebPush: []byte{}},
		{ID: "a", Version: 6, Incarnation: 9, WebPushSuspended: "left from before a clear"},
	} {
		b := appendTenantRecord(nil, &wp)
		if b[0] != tenantRecordVersion {
			t.Fatalf("a tenant with Web Push is written as version %d; want %d", b[0], tenantRecordVersion)
		}
		got, err := decodeTenantRecord("a", b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if (got.WebPush == nil) != (wp.WebPush == nil) || string(got.WebPush) != string(wp.WebPush) ||
			got.WebPushPublicKey != wp.WebPushPublicKey || got.WebPushSuspended != wp.WebPushSuspended || got.Version != wp.Version {
			t.Fatalf("round trip: got %+v; want %+v", got, wp)
		}
	}
}
