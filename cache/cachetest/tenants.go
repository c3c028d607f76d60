package cachetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"push-server/cache"
)

// TenantStore is a Store that also stores tenants, as both implementations
// do.
type TenantStore interface {
	cache.Store
	cache.Tenants
}

// RawTenantReader is implemented (in test builds) by stores that can show
// a tenant record's stored bytes; RunTenants uses it to check that sealed
// credentials are stored as given.
type RawTenantReader interface {
	RawTenantForTest(ctx context.Context, id string) ([]byte, error)
}

// RunTenants checks that stores made by newStore keep every promise of
// cache.Tenants. Each subtest makes its own store, as in Run.
//
// Fine print checked here, beyond the interface docs:
//   - Version grows with every UpdateTenant;
//   - setting a provider lifts only that provider's suspension, clearing it
//     removes credentials and suspension; the APNs hosts (production,
//     sandbox) are suspended apart, and new APNs credentials lift both;
//   - Incarnation is not 0, survives every update, and is new when a
//     deleted tenant is created again;
//   - DeleteTenant removes clients and dedup records of that tenant only
//     (not of a tenant whose id it prefixes), and a re-created tenant starts
//     empty;
//   - a Tenant read right after a write on the same store sees the write;
//   - a conditional suspension (TenantChange.If) lands only while the
//     tenant has the incarnation and the suspended provider's credentials
//     it was decided from: not on credentials uploaded since, nor on a
//     tenant created again; other changes since (the other provider's
//     credentials, other suspensions) do not stop it;
//   - an APNs certificate's expiry is kept with its credentials, replaced
//     or removed with them (token credentials have none), and
//     APNSCertificateExpiries reports exactly the tenants holding one,
//     once each, whatever their ids' spelling;
//   - Web Push's credentials (sealed key and clear public key) and its
//     suspension follow the same rules, apart from the other providers'.
//   - after Close every tenant method returns an error matching
//     ErrUnavailable, a tenant read just before included.
func RunTenants(t *testing.T, newStore func(t *testing.T) TenantStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s TenantStore)
	}{
		{"CreateIsIdempotent", testCreateTenantIsIdempotent},
		{"UnknownTenant", testUnknownTenant},
		{"UpdateSetsAndClears", testUpdateTenantSetsAndClears},
		{"SetLiftsOnlyItsSuspension", testSetLiftsOnlyItsSuspension},
		{"APNSHostsSuspendApart", testAPNSHostsSuspendApart},
		{"IncarnationNewOnRecreate", testIncarnationNewOnRecreate},
		{"ConditionalSuspension", testConditionalSuspension},
		{"DeleteRemovesClients", testDeleteTenantRemovesClients},
		{"SealedBytesStoredAsGiven", testSealedBytesStoredAsGiven},
		{"CertificateExpiries", testCertificateExpiries},
		{"WebPushLikeTheOthers", testWebPushLikeTheOthers},
		{"ClosedStoreIsUnavailable", testClosedTenantStoreIsUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func mustCreateTenant(t *testing.T, s cache.Tenants, id string, wantCreated bool) {
	t.Helper()
	created, err := s.CreateTenant(ctx(t), id)
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	if created != wantCreated {
		t.Fatalf("CreateTenant(%q) reported created=%v; want %v", id, created, wantCreated)
	}
}

func mustTenant(t *testing.T, s cache.Tenants, id string) cache.Tenant {
	t.Helper()
	tn, err := s.Tenant(ctx(t), id)
	if err != nil {
		t.Fatalf("Tenant(%q): %v", id, err)
	}
	if tn.ID != id {
		t.Fatalf("Tenant(%q).ID = %q", id, tn.ID)
	}
	return tn
}

func mustUpdateTenant(t *testing.T, s cache.Tenants, id string, c cache.TenantChange) {
	t.Helper()
	if err := s.UpdateTenant(ctx(t), id, c); err != nil {
		t.Fatalf("UpdateTenant(%q, %+v): %v", id, c, err)
	}
}

// updateAndCheck applies c, then checks the tenant reads as want (ID and
// Version aside) with a version above the previous one; it returns the new
// tenant.
func updateAndCheck(t *testing.T, s cache.Tenants, prev cache.Tenant, c cache.TenantChange, want cache.Tenant) cache.Tenant {
	t.Helper()
	mustUpdateTenant(t, s, prev.ID, c)
	got := mustTenant(t, s, prev.ID)
	if got.Version <= prev.Version {
		t.Fatalf("after UpdateTenant(%+v), Version = %d; want more than %d", c, got.Version, prev.Version)
	}
	if got.Incarnation != prev.Incarnation {
		t.Fatalf("after UpdateTenant(%+v), Incarnation = %d; want it kept at %d", c, got.Incarnation, prev.Incarnation)
	}
	want.ID, want.Version, want.Incarnation = got.ID, got.Version, got.Incarnation
	if !tenantEqual(got, want) {
		t.Fatalf("after UpdateTenant(%+v), Tenant = %+v; want %+v", c, got, want)
	}
	return got
}

// tenantEqual compares tenants, telling nil credentials (not set up) from
// set ones.
func tenantEqual(a, b cache.Tenant) bool {
	sameBytes := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	return a.ID == b.ID && a.Version == b.Version && a.Incarnation == b.Incarnation &&
		a.APNSTopic == b.APNSTopic && a.APNSType == b.APNSType && sameBytes(a.APNS, b.APNS) &&
		sameBytes(a.FCM, b.FCM) && a.APNSSuspended == b.APNSSuspended &&
		a.APNSSandboxSuspended == b.APNSSandboxSuspended && a.FCMSuspended == b.FCMSuspended &&
		a.APNSCertificateNotAfter == b.APNSCertificateNotAfter &&
		sameBytes(a.WebPush, b.WebPush) && a.WebPushPublicKey == b.WebPushPublicKey && a.WebPushSuspended == b.WebPushSuspended
}

// sealed bytes as dispatch.Vault might produce them: arbitrary binary.
var (
	sealedAPNS = []byte("\x00sealed-apns\xff\x01{}")
	sealedFCM  = []byte("\x00sealed-fcm\xfe\x02/*")
	sealedWP   = []byte("\x00sealed-vapid\xfd\x03'")
)

func testCreateTenantIsIdempotent(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	tn := mustTenant(t, s, "a")
	if !tenantEqual(tn, cache.Tenant{ID: "a", Version: tn.Version, Incarnation: tn.Incarnation}) {
		t.Fatalf("new tenant = %+v; want no credentials and no suspension", tn)
	}
	mustUpdateTenant(t, s, "a", cache.TenantChange{SetFCM: true, FCM: sealedFCM})
	before := mustTenant(t, s, "a")
	mustCreateTenant(t, s, "a", false)
	if after := mustTenant(t, s, "a"); !tenantEqual(after, before) {
		t.Fatalf("after a second CreateTenant, Tenant = %+v; want it kept as %+v", after, before)
	}
	mustCreateTenant(t, s, "b", true)
}

func testUnknownTenant(t *testing.T, s TenantStore) {
	if tn, err := s.Tenant(ctx(t), "nope"); !errors.Is(err, cache.ErrTenantNotFound) {
		t.Fatalf("Tenant(unknown) = %+v, %v; want ErrTenantNotFound", tn, err)
	}
	err := s.UpdateTenant(ctx(t), "nope", cache.TenantChange{SetFCM: true, FCM: sealedFCM})
	if !errors.Is(err, cache.ErrTenantNotFound) {
		t.Fatalf("UpdateTenant(unknown) = %v; want ErrTenantNotFound", err)
	}
	// The failed update must not have created it.
	if _, err := s.Tenant(ctx(t), "nope"); !errors.Is(err, cache.ErrTenantNotFound) {
		t.Fatalf("Tenant(unknown) after a failed update = %v; want ErrTenantNotFound", err)
	}
	if err := s.DeleteTenant(ctx(t), "nope"); err != nil {
		t.Fatalf("DeleteTenant(unknown) = %v; want nil", err)
	}
}

func testUpdateTenantSetsAndClears(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	tn := mustTenant(t, s, "a")
	apns := cache.Tenant{APNSTopic: "com.example.wallet", APNSType: "token", APNS: sealedAPNS}
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: apns.APNSTopic, APNSType: apns.APNSType, APNS: sealedAPNS}, apns)
	both := apns
	both.FCM = sealedFCM
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: sealedFCM}, both)
	// Replacing APNs credentials replaces all three fields.
	both.APNSTopic, both.APNSType, both.APNS = "com.example.other", "certificate", []byte("p12")
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: both.APNSTopic, APNSType: both.APNSType, APNS: both.APNS}, both)
	tn = updateAndCheck(t, s, tn, cache.TenantChange{ClearAPNS: true}, cache.Tenant{FCM: sealedFCM})
	tn = updateAndCheck(t, s, tn, cache.TenantChange{ClearFCM: true}, cache.Tenant{})
	// Even a change that changes nothing bumps the version, so instances
	// rebuild rather than wonder.
	updateAndCheck(t, s, tn, cache.TenantChange{}, cache.Tenant{})
}

func testSetLiftsOnlyItsSuspension(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	tn := mustTenant(t, s, "a")
	want := cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: sealedAPNS, FCM: sealedFCM}
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS, SetFCM: true, FCM: sealedFCM}, want)
	want.APNSSuspended, want.FCMSuspended = "BadCertificate", "SENDER_ID_MISMATCH"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNS: want.APNSSuspended, SuspendFCM: want.FCMSuspended}, want)
	// New FCM credentials lift FCM's suspension, not APNs's.
	want.FCM, want.FCMSuspended = []byte("new-fcm"), ""
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: want.FCM}, want)
	want.APNSSuspended = "ExpiredProviderToken"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNS: want.APNSSuspended}, want)
	want.APNS, want.APNSSuspended = []byte("new-apns"), ""
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: want.APNS}, want)
	// Clearing removes a suspension with the credentials.
	want.FCMSuspended = "UNREGISTERED"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendFCM: want.FCMSuspended}, want)
	want.FCM, want.FCMSuspended = nil, ""
	updateAndCheck(t, s, tn, cache.TenantChange{ClearFCM: true}, want)
}

func testAPNSHostsSuspendApart(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	tn := mustTenant(t, s, "a")
	want := cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: sealedAPNS}
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS}, want)
	// The sandbox host's refusal leaves production running, and the other
	// way round.
	want.APNSSandboxSuspended = "InvalidProviderToken"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNSSandbox: want.APNSSandboxSuspended}, want)
	want.APNSSuspended = "BadCertificateEnvironment"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNS: want.APNSSuspended}, want)
	// New APNs credentials lift both hosts' suspensions; clearing APNs too.
	want.APNS, want.APNSSuspended, want.APNSSandboxSuspended = []byte("new-apns"), "", ""
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: want.APNS}, want)
	want.APNSSandboxSuspended = "BadEnvironmentKeyInToken"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNSSandbox: want.APNSSandboxSuspended}, want)
	updateAndCheck(t, s, tn, cache.TenantChange{ClearAPNS: true}, cache.Tenant{})
}

func testIncarnationNewOnRecreate(t *testing.T, s TenantStore) {
	seen := map[uint64]bool{}
	for range 3 {
		mustCreateTenant(t, s, "a", true)
		tn := mustTenant(t, s, "a")
		if tn.Incarnation == 0 || seen[tn.Incarnation] {
			t.Fatalf("created tenant has Incarnation %d; want a new one, not 0, each time (seen %v)", tn.Incarnation, seen)
		}
		seen[tn.Incarnation] = true
		// Kept by updates (updateAndCheck) and by a second create.
		updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: sealedFCM}, cache.Tenant{FCM: sealedFCM})
		mustCreateTenant(t, s, "a", false)
		if again := mustTenant(t, s, "a"); again.Incarnation != tn.Incarnation {
			t.Fatalf("a second CreateTenant changed Incarnation %d to %d", tn.Incarnation, again.Incarnation)
		}
		if err := s.DeleteTenant(ctx(t), "a"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
	}
}

// A send read the tenant, then its provider refused the credentials: its
// suspension carries what it read as the condition.
func testConditionalSuspension(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	mustUpdateTenant(t, s, "a", cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS, SetFCM: true, FCM: sealedFCM})
	read := mustTenant(t, s, "a")
	used := func(tn cache.Tenant) *cache.TenantCondition {
		return &cache.TenantCondition{Incarnation: tn.Incarnation, APNS: tn.APNS, FCM: tn.FCM}
	}
	wantChanged := func(c cache.TenantChange) {
		t.Helper()
		before := mustTenant(t, s, "a")
		if err := s.UpdateTenant(ctx(t), "a", c); !errors.Is(err, cache.ErrTenantChanged) {
			t.Fatalf("UpdateTenant(%+v) = %v; want ErrTenantChanged", c, err)
		}
		if after := mustTenant(t, s, "a"); !tenantEqual(after, before) {
			t.Fatalf("a refused conditional change changed the tenant: %+v; want %+v", after, before)
		}
	}

	// New APNs credentials since the read: the late refusal of the old ones
	// suspends neither APNs host.
	newAPNS := []byte("\x00sealed-apns-2")
	want := cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: newAPNS, FCM: sealedFCM}
	tn := updateAndCheck(t, s, read, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: newAPNS}, want)
	wantChanged(cache.TenantChange{SuspendAPNS: "InvalidProviderToken", If: used(read)})
	wantChanged(cache.TenantChange{SuspendAPNSSandbox: "InvalidProviderToken", If: used(read)})
	// FCM did not change since that read, and an APNs change says nothing
	// about it.
	want.FCMSuspended = "UNAUTHENTICATED"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendFCM: want.FCMSuspended, If: used(read)}, want)
	// A suspension of the other provider or the other host since the read
	// does not stop one decided from the current credentials.
	cur := used(tn)
	want.APNSSandboxSuspended = "BadEnvironmentKeyInToken"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNSSandbox: want.APNSSandboxSuspended, If: cur}, want)
	want.APNSSuspended = "ExpiredProviderToken"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendAPNS: want.APNSSuspended, If: cur}, want)
	// Cleared since: nothing left to suspend.
	tn = updateAndCheck(t, s, tn, cache.TenantChange{ClearFCM: true}, cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: newAPNS, APNSSuspended: want.APNSSuspended, APNSSandboxSuspended: want.APNSSandboxSuspended})
	wantChanged(cache.TenantChange{SuspendFCM: "UNAUTHENTICATED", If: cur})

	// Deleted and created again with the very same sealed bytes: still not
	// the tenant the send read.
	if err := s.DeleteTenant(ctx(t), "a"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	mustCreateTenant(t, s, "a", true)
	mustUpdateTenant(t, s, "a", cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: newAPNS, SetFCM: true, FCM: sealedFCM})
	wantChanged(cache.TenantChange{SuspendAPNS: "InvalidProviderToken", If: used(tn)})
	wantChanged(cache.TenantChange{SuspendFCM: "UNAUTHENTICATED", If: &cache.TenantCondition{Incarnation: tn.Incarnation, FCM: sealedFCM}})
	if got := mustTenant(t, s, "a"); got.APNSSuspended != "" || got.APNSSandboxSuspended != "" || got.FCMSuspended != "" {
		t.Fatalf("the re-created tenant got the old tenant's suspensions: %+v", got)
	}
}

func testDeleteTenantRemovesClients(t *testing.T, s TenantStore) {
	c := ctx(t)
	// "ab" starts with "a": a prefix match gone wrong would take it too.
	for _, id := range []string{"a", "b", "ab"} {
		mustCreateTenant(t, s, id, true)
		mustUpdateTenant(t, s, id, cache.TenantChange{SetFCM: true, FCM: sealedFCM})
	}
	var clients []cache.Client
	for i, tok := range []string{"tok-1", "tok-2", "tok-3"} {
		clients = append(clients, cache.Client{ID: "z6Mk" + tok, Type: cache.TypeFCM, Token: tok, AlwaysRaw: i == 1})
	}
	for _, tenant := range []string{"a", "b", "ab"} {
		for _, cl := range clients {
			mustRegister(t, s, tenant, cl)
			wantClient(t, s, tenant, cl) // fills a look-up cache, if any
		}
		mustCommit(t, s, mustReserve(t, s, tenant, clients[0].ID, "msg", longLease), longTTL)
		wantReserveErr(t, s, tenant, clients[0].ID, "msg", cache.ErrAlreadyDelivered)
	}

	if err := s.DeleteTenant(c, "a"); err != nil {
		t.Fatalf("DeleteTenant(\"a\"): %v", err)
	}
	if _, err := s.Tenant(c, "a"); !errors.Is(err, cache.ErrTenantNotFound) {
		t.Fatalf("Tenant(\"a\") after DeleteTenant = %v; want ErrTenantNotFound", err)
	}
	for _, cl := range clients {
		wantNotFound(t, s, "a", cl.ID)
	}
	for _, tenant := range []string{"b", "ab"} {
		mustTenant(t, s, tenant)
		for _, cl := range clients {
			wantClient(t, s, tenant, cl)
		}
		wantReserveErr(t, s, tenant, clients[0].ID, "msg", cache.ErrAlreadyDelivered)
	}

	// A re-created tenant starts empty: no old clients, no old dedup marks.
	mustCreateTenant(t, s, "a", true)
	if tn := mustTenant(t, s, "a"); tn.FCM != nil {
		t.Fatalf("re-created tenant = %+v; want no credentials", tn)
	}
	for _, cl := range clients {
		wantNotFound(t, s, "a", cl.ID)
	}
	mustRelease(t, s, mustReserve(t, s, "a", clients[0].ID, "msg", longLease))
	// Registering again works, and the old token index does not interfere.
	mustRegister(t, s, "a", clients[1])
	wantClient(t, s, "a", clients[1])
	wantNotFound(t, s, "a", clients[0].ID)

	// Idempotent.
	for range 2 {
		if err := s.DeleteTenant(c, "a"); err != nil {
			t.Fatalf("DeleteTenant(\"a\") again: %v", err)
		}
	}
	wantNotFound(t, s, "a", clients[1].ID)
	wantClient(t, s, "b", clients[1])
}

func testSealedBytesStoredAsGiven(t *testing.T, s TenantStore) {
	raw, ok := s.(RawTenantReader)
	if !ok {
		t.Skipf("%T has no RawTenantForTest", s)
	}
	mustCreateTenant(t, s, "a", true)
	mustUpdateTenant(t, s, "a", cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS, SetFCM: true, FCM: sealedFCM})
	b, err := raw.RawTenantForTest(ctx(t), "a")
	if err != nil {
		t.Fatalf("RawTenantForTest: %v", err)
	}
	for _, sealed := range [][]byte{sealedAPNS, sealedFCM} {
		if !bytes.Contains(b, sealed) {
			t.Fatalf("stored tenant record %q does not hold the sealed bytes %q as given", b, sealed)
		}
	}
}

func testWebPushLikeTheOthers(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "a", true)
	tn := mustTenant(t, s, "a")
	want := cache.Tenant{FCM: sealedFCM, WebPush: sealedWP, WebPushPublicKey: "BPublicKey"}
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: sealedFCM, SetWebPush: true, WebPush: sealedWP, WebPushPublicKey: "BPublicKey"}, want)
	read := tn

	// Suspended alone, and conditionally on the key the send used.
	want.WebPushSuspended = "401 Unauthorized"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendWebPush: want.WebPushSuspended,
		If: &cache.TenantCondition{Incarnation: read.Incarnation, WebPush: read.WebPush}}, want)
	// A new key lifts the suspension; a late refusal of the old one does
	// not land on it.
	newWP := []byte("\x00sealed-vapid-2")
	want.WebPush, want.WebPushPublicKey, want.WebPushSuspended = newWP, "BOther", ""
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetWebPush: true, WebPush: newWP, WebPushPublicKey: "BOther"}, want)
	late := cache.TenantChange{SuspendWebPush: "401", If: &cache.TenantCondition{Incarnation: read.Incarnation, WebPush: read.WebPush}}
	if err := s.UpdateTenant(ctx(t), "a", late); !errors.Is(err, cache.ErrTenantChanged) {
		t.Fatalf("a suspension decided from the old VAPID key = %v; want ErrTenantChanged", err)
	}
	// The other providers' changes leave Web Push as it is, and the other
	// way round.
	want.FCMSuspended = "UNAUTHENTICATED"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendFCM: want.FCMSuspended}, want)
	want.FCM, want.FCMSuspended = nil, ""
	tn = updateAndCheck(t, s, tn, cache.TenantChange{ClearFCM: true}, want)
	want.WebPushSuspended = "401 again"
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SuspendWebPush: want.WebPushSuspended}, want)
	want.FCM = sealedFCM
	tn = updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: sealedFCM}, want)
	// Clearing takes key, public key and suspension.
	tn = updateAndCheck(t, s, tn, cache.TenantChange{ClearWebPush: true}, cache.Tenant{FCM: sealedFCM})
	if err := s.UpdateTenant(ctx(t), "a", cache.TenantChange{SuspendWebPush: "401", If: &cache.TenantCondition{Incarnation: tn.Incarnation, WebPush: newWP}}); !errors.Is(err, cache.ErrTenantChanged) {
		t.Fatalf("a suspension of a cleared Web Push = %v; want ErrTenantChanged", err)
	}

	if raw, ok := s.(RawTenantReader); ok {
		mustUpdateTenant(t, s, "a", cache.TenantChange{SetWebPush: true, WebPush: sealedWP, WebPushPublicKey: "BPublicKey"})
		b, err := raw.RawTenantForTest(ctx(t), "a")
		if err != nil {
			t.Fatalf("RawTenantForTest: %v", err)
		}
		if !bytes.Contains(b, sealedWP) {
			t.Fatalf("stored tenant record %q does not hold the sealed VAPID key %q as given", b, sealedWP)
		}
	}
}

// RunLimiter checks a cache.Limiter's fixed windows, and that a limiter
// that can be closed refuses after Close with ErrUnavailable. newLimiter
// must close what it makes in t.Cleanup (Close is then called twice).
func RunLimiter(t *testing.T, newLimiter func(t *testing.T) cache.Limiter) {
	t.Run("FixedWindow", func(t *testing.T) { testFixedWindow(t, newLimiter(t)) })
	t.Run("ClosedLimiterIsUnavailable", func(t *testing.T) { testClosedLimiterIsUnavailable(t, newLimiter(t)) })
}

// testClosedLimiterIsUnavailable: a closed store does not count requests
// any more (on a Redis Cluster a call after Close could still reach a node).
func testClosedLimiterIsUnavailable(t *testing.T, l cache.Limiter) {
	closer, ok := l.(interface{ Close() error })
	if !ok {
		t.Skip("the limiter cannot be closed")
	}
	if _, _, err := l.Allow(ctx(t), "ip:198.51.100.9", 3, time.Minute); err != nil {
		t.Fatalf("Allow before Close: %v", err)
	}
	if err := closer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, _, err := l.Allow(ctx(t), "ip:198.51.100.9", 3, time.Minute)
	wantUnavailable(t, "Allow", err)
}

func testFixedWindow(t *testing.T, l cache.Limiter) {
	const (
		limit  = 3
		window = 200 * time.Millisecond
	)
	c := ctx(t)
	allow := func(key string) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Allow(c, key, limit, window)
		if err != nil {
			t.Fatalf("Allow(%q): %v", key, err)
		}
		return ok, retry
	}
	// A slow machine may let a window run out between the calls; then the
	// round is repeated with a fresh key rather than failed.
	for attempt := 0; ; attempt++ {
		key := "ip:198.51.100.7/" + string(rune('a'+attempt))
		start := time.Now()
		for i := range limit {
			if ok, _ := allow(key); !ok && time.Since(start) < window {
				t.Fatalf("Allow call %d of %d in one window refused", i+1, limit)
			}
		}
		ok, retry := allow(key)
		if time.Since(start) >= window/2 {
			if attempt < 3 {
				continue
			}
			t.Fatalf("four Allow calls took %v; too slow to test a %v window", time.Since(start), window)
		}
		if ok {
			t.Fatalf("Allow call %d in one window allowed; want refused past the limit of %d", limit+1, limit)
		}
		if retry <= 0 || retry > window {
			t.Fatalf("refused Allow: retryAfter = %v; want within (0, %v]", retry, window)
		}
		// Another key has its own count.
		if ok, _ := allow(key + "-other"); !ok {
			t.Fatal("Allow on a fresh key refused after another key ran out")
		}
		time.Sleep(retry + 20*time.Millisecond)
		if ok, retry := allow(key); !ok {
			t.Fatalf("Allow after the window ended refused (retryAfter %v)", retry)
		}
		return
	}
}

func testCertificateExpiries(t *testing.T, s TenantStore) {
	const (
		july  = int64(1783000000)
		march = int64(1773000000)
	)
	// "odd id" is spelled hex-escaped in Redis keys; the store must still
	// report it under its own name.
	for _, id := range []string{"cert", "token", "cleared", "replaced", "odd id", "none"} {
		mustCreateTenant(t, s, id, true)
	}
	cert := cache.Tenant{APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: july}
	tn := updateAndCheck(t, s, mustTenant(t, s, "cert"), cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: july}, cert)
	// Other changes keep it.
	cert.FCM, cert.APNSSuspended = sealedFCM, "BadCertificate"
	updateAndCheck(t, s, tn, cache.TenantChange{SetFCM: true, FCM: sealedFCM, SuspendAPNS: "BadCertificate"}, cert)
	updateAndCheck(t, s, mustTenant(t, s, "token"), cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS},
		cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: sealedAPNS})
	tn = updateAndCheck(t, s, mustTenant(t, s, "cleared"), cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march},
		cache.Tenant{APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march})
	updateAndCheck(t, s, tn, cache.TenantChange{ClearAPNS: true}, cache.Tenant{})
	// A certificate replaced by a token key leaves no expiry behind.
	tn = updateAndCheck(t, s, mustTenant(t, s, "replaced"), cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march},
		cache.Tenant{APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march})
	updateAndCheck(t, s, tn, cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "token", APNS: sealedAPNS},
		cache.Tenant{APNSTopic: "t", APNSType: "token", APNS: sealedAPNS})
	updateAndCheck(t, s, mustTenant(t, s, "odd id"), cache.TenantChange{SetAPNS: true, APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march},
		cache.Tenant{APNSTopic: "t", APNSType: "certificate", APNS: sealedAPNS, APNSCertificateNotAfter: march})

	got := map[string]int64{}
	if err := s.APNSCertificateExpiries(ctx(t), func(id string, notAfter int64) {
		if _, dup := got[id]; dup {
			t.Errorf("APNSCertificateExpiries reported %q twice", id)
		}
		got[id] = notAfter
	}); err != nil {
		t.Fatalf("APNSCertificateExpiries: %v", err)
	}
	want := map[string]int64{"cert": july, "odd id": march}
	if len(got) != len(want) || got["cert"] != july || got["odd id"] != march {
		t.Fatalf("APNSCertificateExpiries reported %v; want %v", got, want)
	}
	// A deleted tenant goes with its expiry.
	if err := s.DeleteTenant(ctx(t), "cert"); err != nil {
		t.Fatal(err)
	}
	clear(got)
	if err := s.APNSCertificateExpiries(ctx(t), func(id string, notAfter int64) { got[id] = notAfter }); err != nil {
		t.Fatalf("APNSCertificateExpiries: %v", err)
	}
	if len(got) != 1 || got["odd id"] != march {
		t.Fatalf("after deleting a tenant, APNSCertificateExpiries reported %v; want only odd id", got)
	}
}

// testClosedTenantStoreIsUnavailable: a tenant read just before Close is
// not served afterwards from a cache (a store whose connections close in
// the background could still answer from one), and nothing else is either.
func testClosedTenantStoreIsUnavailable(t *testing.T, s TenantStore) {
	mustCreateTenant(t, s, "acme", true)
	mustTenant(t, s, "acme")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	x := ctx(t)
	_, err := s.CreateTenant(x, "other")
	wantUnavailable(t, "CreateTenant", err)
	_, err = s.Tenant(x, "acme")
	wantUnavailable(t, "Tenant", err)
	wantUnavailable(t, "UpdateTenant", s.UpdateTenant(x, "acme", cache.TenantChange{}))
	wantUnavailable(t, "DeleteTenant", s.DeleteTenant(x, "acme"))
	wantUnavailable(t, "APNSCertificateExpiries", s.APNSCertificateExpiries(x, func(string, int64) {}))
}
