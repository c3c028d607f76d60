package router

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// tenantView reads GET /tenants/{id}'s suspensions.
func (h *tenantHarness) suspensions(tenant string) (bool, map[string]string) {
	h.t.Helper()
	r := h.do("GET", "/tenants/"+tenant, "", bearer(tenant, time.Hour))
	var v struct {
		Suspended   bool              `json:"suspended"`
		Suspensions map[string]string `json:"suspensions"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &v) != nil {
		h.t.Fatalf("GET /tenants/%s: %d %s", tenant, r.status, r.body)
	}
	return v.Suspended, v.Suspensions
}

func (h *tenantHarness) sendIn(tenant, id, msg string) reply {
	h.t.Helper()
	b := `{"topic":"tp","tag":1108,"message":"` + msg + `"}`
	return h.do("POST", "/"+tenant+"/clients/"+id, b, h.signed(b, time.Now().Unix()))
}

// A tenant whose key Apple's production host accepts and its development
// host refuses (InvalidProviderToken): any client may register as
// apns-sandbox, so that refusal must stop the sandbox alone.
func TestSandboxRefusalSuspendsOnlySandbox(t *testing.T) {
	prod, sandbox, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	allowed := mustTokenURIs(t, fcm)
	h := newTenantHarnessHosts(t, redisStore, prod, sandbox, fcm, allowed)
	other, _ := testkit.NewP8(t)
	sandbox.TrustKey("SANDBOXKEY", "TEAM123456", &other.PublicKey) // the sandbox checks tokens, and knows not ours
	h.createTenant("split")
	h.setAPNS("split", "com.example.split", "KEYPROD001", true) // trusted by production only
	h.registerIn("split", "ios", "apns", strings.Repeat("a", 64))
	h.registerIn("split", "attacker", "apns-sandbox", strings.Repeat("b", 64))

	h.sendIn("split", "attacker", "m1").expectError(t, 502, "provider_misconfigured")
	suspended, by := h.suspensions("split")
	if !suspended || !strings.Contains(by["apns-sandbox"], "InvalidProviderToken") || by["apns"] != "" {
		t.Fatalf("after the sandbox refused the key: suspended %v, %v; want apns-sandbox alone", suspended, by)
	}
	for i := range 3 {
		h.sendIn("split", "ios", "p"+strconv.Itoa(i)).expectOK(t, 202)
	}
	if n := prod.Count(); n != 3 {
		t.Fatalf("production accepted %d pushes; want 3", n)
	}
	before := len(sandbox.Requests())
	h.sendIn("split", "attacker", "m2").expectError(t, 502, "provider_misconfigured")
	if len(sandbox.Requests()) != before {
		t.Fatal("the suspended sandbox host was still called")
	}

	// The other way round: production refuses, the sandbox keeps going.
	h.createTenant("prodoff")
	k, p8 := testkit.NewP8(t)
	sandbox.TrustKey("KEYSANDBOX", "TEAM123456", &k.PublicKey)
	if r := h.upload("prodoff", "/apns", map[string]string{"apns_topic": "com.example.p", "apns_pkcs8_pem": "@" + string(p8), "apns_key_id": "KEYSANDBOX", "apns_team_id": "TEAM123456"}); r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	h.registerIn("prodoff", "ios", "apns", strings.Repeat("c", 64))
	h.registerIn("prodoff", "dev", "apns-sandbox", strings.Repeat("d", 64))
	h.sendIn("prodoff", "ios", "m1").expectError(t, 502, "provider_misconfigured")
	h.sendIn("prodoff", "dev", "m1").expectOK(t, 202)
	if _, by := h.suspensions("prodoff"); by["apns"] == "" || by["apns-sandbox"] != "" {
		t.Fatalf("after production refused the key: %v; want apns alone", by)
	}
}

// Answers one device token can cause fail that send (or remove that
// client) and suspend nothing; an APNs Forbidden or BadTopic is the
// tenant's to look at but no proof that the credentials are refused.
func TestPerTokenErrorsSuspendNothing(t *testing.T) {
	h := newTenantHarness(t, redisStore)
	h.createTenant("tok")
	h.setAPNS("tok", "com.example.tok", "KEYTOK0001", true)
	if r := h.upload("tok", "/fcm_v1", map[string]string{"credentials": "@" + string(h.fcm.ServiceAccountJSON("p-tok"))}); r.status != 200 {
		t.Fatalf("upload FCM: %d %s", r.status, r.body)
	}
	good, goodFCM := strings.Repeat("e", 64), "fcm-good"
	h.registerIn("tok", "ios-good", "apns", good)
	h.registerIn("tok", "dev-good", "apns-sandbox", strings.Repeat("f", 64))
	h.registerIn("tok", "droid-good", "fcm", goodFCM)
	for i, c := range []struct {
		typ, reason string
		status      int
		name        string
	}{
		{"apns", "BadDeviceToken", 410, "client_deleted"},
		{"apns-sandbox", "DeviceTokenNotForTopic", 410, "client_deleted"},
		{"apns", "Forbidden", 502, "provider_misconfigured"},
		{"apns-sandbox", "BadTopic", 502, "provider_misconfigured"},
		{"fcm", "SENDER_ID_MISMATCH", 410, "client_deleted"},
		{"fcm", "THIRD_PARTY_AUTH_ERROR", 502, "provider_misconfigured"},
	} {
		id, token := "bad-"+strconv.Itoa(i), fmt.Sprintf("%064x", i+1)
		if c.typ == "fcm" {
			token = "fcm-bad-" + strconv.Itoa(i)
			h.fcm.Script(token, dispatchtest.Answer{Reason: c.reason})
		} else {
			h.apns.Script(token, dispatchtest.Answer{Reason: c.reason})
		}
		h.registerIn("tok", id, c.typ, token)
		h.sendIn("tok", id, "m").expectError(t, c.status, c.name)
		if suspended, by := h.suspensions("tok"); suspended || len(by) != 0 {
			t.Fatalf("%s %s suspended %v", c.typ, c.reason, by)
		}
		for _, ok := range []string{"ios-good", "dev-good", "droid-good"} {
			h.sendIn("tok", ok, "after-"+c.reason).expectOK(t, 202)
		}
	}
}

// Two instances share a store. A tenant is deleted and created again under
// the same id with other credentials: the instance that pushed for the old
// tenant must push with the new credentials, never the old, and the
// deleting instance drops the old provider clients at once.
func TestRecreatedTenantNeverUsesTheOldCredentials(t *testing.T) {
	open := sharedRedis(t)
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	a, b := newTenantHarnessWith(t, open, apns, fcm), newTenantHarnessWith(t, open, apns, fcm)
	a.createTenant("again")
	a.setAPNS("again", "com.example.old", "KEYOLD0001", true)
	a.registerIn("again", "ios", "apns", strings.Repeat("a", 64))
	a.sendIn("again", "ios", "m1").expectOK(t, 202)
	b.sendIn("again", "ios", "m2").expectOK(t, 202)
	if a.pool.Len() != 1 || b.pool.Len() != 1 {
		t.Fatalf("pools hold %d and %d tenants; want 1 each", a.pool.Len(), b.pool.Len())
	}

	if r := a.do("DELETE", "/tenants/again", "", bearer("again", time.Hour)); r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if n := a.pool.Len(); n != 0 {
		t.Fatalf("the deleting instance still holds %d tenants' provider clients", n)
	}
	// The other instance drops its clients as soon as it hears of the
	// tenant again.
	b.sendIn("again", "ios", "m3").expectError(t, 404, "tenant_not_found", "tenant_id")
	if n := b.pool.Len(); n != 0 {
		t.Fatalf("the other instance still holds %d tenants' provider clients after finding the tenant gone", n)
	}

	// Re-created with the same number of changes, so the same version.
	a.createTenant("again")
	a.setAPNS("again", "com.example.new", "KEYNEW0001", true)
	a.registerIn("again", "ios", "apns", strings.Repeat("a", 64))
	apns.Reset()
	for n, h := range []*tenantHarness{a, b} {
		for i := range 2 {
			h.sendIn("again", "ios", "new-"+strconv.Itoa(n)+strconv.Itoa(i)).expectOK(t, 202)
		}
	}
	if len(apns.Requests()) != 4 {
		t.Fatalf("APNs saw %d pushes; want 4", len(apns.Requests()))
	}
	for _, r := range apns.Requests() {
		if topic := r.Header.Get("apns-topic"); topic != "com.example.new" {
			t.Fatalf("a push for the re-created tenant went out with %s, the deleted tenant's topic", topic)
		}
	}
}

// A version restarting at 0 is not enough on one instance either: a
// send racing the delete may rebuild the old clients, and a re-created
// tenant reaches the same version.
func TestRecreatedTenantOnOneInstance(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newTenantHarness(t, st.open)
			h.createTenant("once")
			h.setAPNS("once", "com.example.old", "KEYOLD0002", true)
			h.registerIn("once", "ios", "apns", strings.Repeat("a", 64))
			h.sendIn("once", "ios", "m1").expectOK(t, 202)
			// Delete behind the server's back, as another instance would:
			// this instance's pool keeps the old clients.
			if err := h.srv.deps.Tenants.DeleteTenant(t.Context(), "once"); err != nil {
				t.Fatal(err)
			}
			h.createTenant("once")
			h.setAPNS("once", "com.example.new", "KEYNEW0002", true)
			h.registerIn("once", "ios", "apns", strings.Repeat("a", 64))
			h.apns.Reset()
			h.sendIn("once", "ios", "m2").expectOK(t, 202)
			if r := h.apns.Requests(); len(r) != 1 || r[0].Header.Get("apns-topic") != "com.example.new" {
				t.Fatalf("the re-created tenant pushed with %q; want its own topic", r[0].Header.Get("apns-topic"))
			}
		})
	}
}

// A send reads the tenant when it starts and may hear Apple refuse its key
// up to a provider timeout later. If the operator uploaded a new key in
// between, or deleted the tenant and created it again, that late refusal
// is about credentials nobody uses any more: it must not suspend the new
// ones.
func TestLateRefusalSuspendsNotTheTenantsNewCredentials(t *testing.T) {
	for _, st := range stores {
		for _, c := range []struct {
			name    string
			replace func(h *tenantHarness, token string)
		}{
			{"new key", func(h *tenantHarness, _ string) {
				h.setAPNS("late", "com.example.late", "KEYNEW0003", true)
			}},
			{"re-created", func(h *tenantHarness, token string) {
				if r := h.do("DELETE", "/tenants/late", "", bearer("late", time.Hour)); r.status != 200 {
					t.Fatalf("DELETE: %d %s", r.status, r.body)
				}
				h.createTenant("late")
				h.setAPNS("late", "com.example.late", "KEYNEW0003", true)
				h.registerIn("late", "ios", "apns", token)
			}},
		} {
			t.Run(st.name+"/"+c.name, func(t *testing.T) {
				h := newTenantHarness(t, st.open)
				h.createTenant("late")
				h.setAPNS("late", "com.example.late", "KEYOLD0003", true)
				token := strings.Repeat("a", 64)
				h.registerIn("late", "ios", "apns", token)

				gate := dispatchtest.NewGate()
				defer gate.Release()
				h.apns.Script(token, dispatchtest.Answer{Reason: "InvalidProviderToken", Hold: gate.Hold}, dispatchtest.Answer{})
				done := make(chan reply, 1)
				go func() { done <- h.sendIn("late", "ios", "m1") }()
				gate.WaitArrived(t, 10*time.Second)
				c.replace(h, token)
				gate.Release()
				(<-done).expectError(t, 502, "provider_misconfigured")

				if suspended, by := h.suspensions("late"); suspended || len(by) != 0 {
					t.Fatalf("the old key's late refusal suspended the new credentials: %v", by)
				}
				h.sendIn("late", "ios", "m2").expectOK(t, 202)
			})
		}
	}
}

// Registrations and unregistrations cycling over many tenants build no
// provider clients (they need none), so they cannot churn the pool that
// sends rely on; past the per-address limit they are refused before the
// tenant is even read.
func TestTenantRegistrationFloodBuildsNothing(t *testing.T) {
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	h := newTenantHarnessHosts(t, embeddedStore, apns, apns, fcm, mustTokenURIs(t, fcm), func(c *Config) {
		c.RateLimits = RateLimits{PerIP: 60, Window: time.Minute}
	})
	const tenants = 20
	for i := range tenants {
		id := "flood-" + strconv.Itoa(i)
		h.createTenant(id)
		h.setAPNS(id, "com.example.flood", "KEYFLOOD"+fmt.Sprintf("%02d", i), true)
	}
	for i := range tenants {
		id := "flood-" + strconv.Itoa(i)
		h.registerIn(id, "c", "apns", strings.Repeat("a", 64))
		h.do("DELETE", "/"+id+"/clients/c", "", nil).expectOK(t, 200)
	}
	if n := h.pool.Len(); n != 0 {
		t.Fatalf("registrations built provider clients for %d tenants; want none", n)
	}
	// 40 of 60 used: the rest of the window's calls, then 429, also for
	// tenants that do not exist.
	codes := map[int]int{}
	for i := range 40 {
		r := h.do("POST", "/nobody-"+strconv.Itoa(i)+"/clients", `{"client_id":"c","type":"apns","token":"`+strings.Repeat("a", 64)+`"}`, nil)
		codes[r.status]++
	}
	if codes[404] != 20 || codes[429] != 20 {
		t.Fatalf("40 registrations over unknown tenants past 40 calls of 60: %v; want 20 × 404 then 20 × 429", codes)
	}
	if n := h.pool.Len(); n != 0 {
		t.Fatalf("the pool holds %d tenants after the flood; want 0", n)
	}
}

func mustTokenURIs(t *testing.T, fcm *dispatchtest.FCM) *dispatch.TokenURIs {
	t.Helper()
	allowed, err := dispatch.NewTokenURIs(fcm.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	return allowed
}

// An instance that never hears of a deleted tenant again still closes its
// provider clients, within a sweep.
func TestDeletedTenantsClientsCloseOnAnIdleInstance(t *testing.T) {
	open := sharedRedis(t)
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	sweep := func(c *Config) { c.StaleTenantSweep = 20 * time.Millisecond }
	a := newTenantHarnessHosts(t, open, apns, apns, fcm, mustTokenURIs(t, fcm), sweep)
	b := newTenantHarnessHosts(t, open, apns, apns, fcm, mustTokenURIs(t, fcm), sweep)
	for _, id := range []string{"gone", "kept"} {
		a.createTenant(id)
		a.setAPNS(id, "com.example."+id, "KEY"+strings.ToUpper(id)+"0001", true)
		a.registerIn(id, "ios", "apns", strings.Repeat("a", 64))
		b.sendIn(id, "ios", "m1").expectOK(t, 202)
	}
	if n := b.pool.Len(); n != 2 {
		t.Fatalf("instance b holds %d tenants; want 2", n)
	}
	if r := a.do("DELETE", "/tenants/gone", "", bearer("gone", time.Hour)); r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 2*time.Second, "instance b to close the deleted tenant's clients", func() bool { return b.pool.Len() == 1 })
	// The tenant that still exists keeps its clients and pushes.
	time.Sleep(100 * time.Millisecond) // several sweeps
	if n := b.pool.Len(); n != 1 {
		t.Fatalf("instance b holds %d tenants after the sweeps; want 1", n)
	}
	b.sendIn("kept", "ios", "m2").expectOK(t, 202)
}
