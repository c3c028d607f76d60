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
