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
