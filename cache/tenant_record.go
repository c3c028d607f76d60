package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// A tenant record in the embedded store is one value:
//
//	[0]   record version (1, 2 or 3)
//	[1]   flags (bit 0: APNs set up, bit 1: FCM set up, bit 2: Web Push
//	      set up)
//	uvarint Version
//	uvarint Incarnation
//	then length-prefixed (uvarint) fields: APNSTopic, APNSType, APNS, FCM,
//	APNSSuspended, FCMSuspended, APNSSandboxSuspended, and in version 3
//	WebPushPublicKey, WebPush, WebPushSuspended
//	and in version 3 last: uvarint APNSCertificateNotAfter (unix seconds;
//	0 for none)
//
// Version 1 records (no Incarnation, six fields) are still read, as
// incarnation 0 with no sandbox suspension, and version 2 records as a
// tenant without Web Push and with an unknown certificate expiry (0). A
// tenant that uses neither Web Push nor a certificate expiry is written as
// version 2, any other as version 3: a binary from before either still
// reads every tenant that does not use them.
//
// The flags keep "not set up" (nil) apart from set up with empty bytes. The
// sealed credentials are stored exactly as given: the store never opens them.
const (
	tenantRecordVersion = 3
	tenantRecordV2      = 2
	tenantRecordV1      = 1

	tenantFlagAPNS    = 1
	tenantFlagFCM     = 2
	tenantFlagWebPush = 4
)

// errCorruptTenant means a stored tenant record does not decode.
var errCorruptTenant = errors.New("cache: corrupt tenant record")

func appendTenantRecord(dst []byte, t *Tenant) []byte {
	var flags byte
	if t.APNS != nil {
		flags |= tenantFlagAPNS
	}
	if t.FCM != nil {
		flags |= tenantFlagFCM
	}
	fields := [][]byte{[]byte(t.APNSTopic), []byte(t.APNSType), t.APNS, t.FCM, []byte(t.APNSSuspended), []byte(t.FCMSuspended), []byte(t.APNSSandboxSuspended)}
	version := byte(tenantRecordV2)
	if t.WebPush != nil || t.WebPushPublicKey != "" || t.WebPushSuspended != "" || t.APNSCertificateNotAfter > 0 {
		version = tenantRecordVersion
		if t.WebPush != nil {
			flags |= tenantFlagWebPush
		}
		fields = append(fields, []byte(t.WebPushPublicKey), t.WebPush, []byte(t.WebPushSuspended))
	}
	dst = append(dst, version, flags)
	dst = binary.AppendUvarint(dst, t.Version)
	dst = binary.AppendUvarint(dst, t.Incarnation)
	for _, f := range fields {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	if version == tenantRecordVersion {
		dst = binary.AppendUvarint(dst, uint64(max(t.APNSCertificateNotAfter, 0)))
	}
	return dst
}

// decodeTenantRecord parses b into a tenant named id; the result shares no
// memory with b, which bbolt may reuse after the transaction.
func decodeTenantRecord(id string, b []byte) (Tenant, error) {
	t := Tenant{ID: id}
	if len(b) < 2 || b[0] < tenantRecordV1 || b[0] > tenantRecordVersion {
		return t, errCorruptTenant
	}
	recordVersion := b[0]
	v1 := recordVersion == tenantRecordV1
	flags := b[1]
	b = b[2:]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return t, errCorruptTenant
	}
	t.Version = v
	b = b[n:]
	nfields := 7
	switch recordVersion {
	case tenantRecordV1:
		nfields = 6
	case tenantRecordVersion:
		nfields = 10
	}
	if !v1 {
		inc, n := binary.Uvarint(b)
		if n <= 0 {
			return t, errCorruptTenant
		}
		t.Incarnation = inc
		b = b[n:]
	}
	var fields [10][]byte
	for i := range fields[:nfields] {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return t, errCorruptTenant
		}
		fields[i] = append([]byte{}, b[n:n+int(l)]...)
		b = b[n+int(l):]
	}
	if recordVersion == tenantRecordVersion {
		na, n := binary.Uvarint(b)
		if n <= 0 || na > 1<<62 {
			return t, errCorruptTenant
		}
		t.APNSCertificateNotAfter = int64(na)
		b = b[n:]
	}
	if len(b) != 0 {
		return t, errCorruptTenant
	}
	t.APNSTopic, t.APNSType = string(fields[0]), string(fields[1])
	if flags&tenantFlagAPNS != 0 {
		t.APNS = fields[2]
	}
	if flags&tenantFlagFCM != 0 {
		t.FCM = fields[3]
	}
	t.APNSSuspended, t.FCMSuspended, t.APNSSandboxSuspended = string(fields[4]), string(fields[5]), string(fields[6])
	t.WebPushPublicKey, t.WebPushSuspended = string(fields[7]), string(fields[9])
	if flags&tenantFlagWebPush != 0 {
		t.WebPush = fields[8]
	}
	return t, nil
}

// apply applies c to t in the documented order: clears, then sets (which
// lift the provider's suspensions), then suspensions; then bumps Version. The
// Redis update script follows the same order.
func (c *TenantChange) apply(t *Tenant) {
	if c.ClearAPNS {
		t.APNSTopic, t.APNSType, t.APNS, t.APNSSuspended, t.APNSSandboxSuspended = "", "", nil, "", ""
		t.APNSCertificateNotAfter = 0
	}
	if c.ClearFCM {
		t.FCM, t.FCMSuspended = nil, ""
	}
	if c.ClearWebPush {
		t.WebPush, t.WebPushPublicKey, t.WebPushSuspended = nil, "", ""
	}
	if c.SetAPNS {
		t.APNSTopic, t.APNSType, t.APNSSuspended, t.APNSSandboxSuspended = c.APNSTopic, c.APNSType, "", ""
		t.APNS = append([]byte{}, c.APNS...)
		t.APNSCertificateNotAfter = c.APNSCertificateNotAfter
	}
	if c.SetFCM {
		t.FCM, t.FCMSuspended = append([]byte{}, c.FCM...), ""
	}
	if c.SetWebPush {
		t.WebPush, t.WebPushPublicKey, t.WebPushSuspended = append([]byte{}, c.WebPush...), c.WebPushPublicKey, ""
	}
	if c.SuspendAPNS != "" {
		t.APNSSuspended = c.SuspendAPNS
	}
	if c.SuspendAPNSSandbox != "" {
		t.APNSSandboxSuspended = c.SuspendAPNSSandbox
	}
	if c.SuspendFCM != "" {
		t.FCMSuspended = c.SuspendFCM
	}
	if c.SuspendWebPush != "" {
		t.WebPushSuspended = c.SuspendWebPush
	}
	t.Version++
}

// holds reports whether t meets c.If (true without one). The Redis update
// script makes the same check.
func (c *TenantChange) holds(t *Tenant) bool {
	if c.If == nil {
		return true
	}
	if t.Incarnation != c.If.Incarnation {
		return false
	}
	if (c.SuspendAPNS != "" || c.SuspendAPNSSandbox != "") && (t.APNS == nil || !bytes.Equal(t.APNS, c.If.APNS)) {
		return false
	}
	if c.SuspendFCM != "" && (t.FCM == nil || !bytes.Equal(t.FCM, c.If.FCM)) {
		return false
	}
	if c.SuspendWebPush != "" && (t.WebPush == nil || !bytes.Equal(t.WebPush, c.If.WebPush)) {
		return false
	}
	return true
}
