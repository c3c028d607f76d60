package router

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
	"push-server/verify"
)

var tenantSecret = []byte("tenant-api-secret-of-at-least-32-bytes!")

// tenantHarness is a gateway in multi-tenant mode whose providers are the
// mock APNs (production and sandbox on one mock) and mock FCM.
type tenantHarness struct {
	*harness
	apns *dispatchtest.APNs
	fcm  *dispatchtest.FCM
	pool *dispatch.Pool
}

func newTenantHarness(t *testing.T, open func(t *testing.T) cache.Store) *tenantHarness {
	t.Helper()
	return newTenantHarnessWith(t, open, dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t))
}

// newTenantHarnessWith allows the mock FCM's token endpoint for tenants,
// as an operator would with TENANT_FCM_TOKEN_URIS.
func newTenantHarnessWith(t *testing.T, open func(t *testing.T) cache.Store, apns *dispatchtest.APNs, fcm *dispatchtest.FCM) *tenantHarness {
	t.Helper()
	allowed, err := dispatch.NewTokenURIs(fcm.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	return newTenantHarnessAllowing(t, open, apns, fcm, allowed)
}

// newTenantHarnessAllowing is newTenantHarnessWith with the token
// endpoints tenants may use (nil: Google's only).
func newTenantHarnessAllowing(t *testing.T, open func(t *testing.T) cache.Store, apns *dispatchtest.APNs, fcm *dispatchtest.FCM, allowed *dispatch.TokenURIs) *tenantHarness {
	t.Helper()
	return newTenantHarnessHosts(t, open, apns, apns, fcm, allowed)
}

// newTenantHarnessHosts is newTenantHarnessAllowing with Apple's
// development host on its own mock, sandbox, as with Apple.
// configure, if given, changes the server's Config (the limiter is the
// store's).
func newTenantHarnessHosts(t *testing.T, open func(t *testing.T) cache.Store, apns, sandbox *dispatchtest.APNs, fcm *dispatchtest.FCM, allowed *dispatch.TokenURIs, configure ...func(*Config)) *tenantHarness {
	t.Helper()
	return newTenantHarnessBase(t, open, apns, sandbox, fcm, allowed, nil, configure...)
}

// newTenantHarnessBase is newTenantHarnessHosts with base, if given,
// changing the Pool's shared settings (the operator's environment that
// tenants' clients are built over, such as WEBPUSH_ALLOWED_ORIGINS).
func newTenantHarnessBase(t *testing.T, open func(t *testing.T) cache.Store, apns, sandbox *dispatchtest.APNs, fcm *dispatchtest.FCM, allowed *dispatch.TokenURIs, tweak func(*dispatch.Config), configure ...func(*Config)) *tenantHarness {
	t.Helper()
	roots := apns.RootCAs()
	if sandbox != apns {
		roots = x509.NewCertPool()
		for _, m := range []*dispatchtest.APNs{apns, sandbox} {
			if !roots.AppendCertsFromPEM(m.CertPEM()) {
				t.Fatal("cannot add a mock's certificate to the roots")
			}
		}
	}
	// One key for every instance of a test, as one fleet shares
	// TENANT_CREDENTIALS_KEY.
	vault, err := dispatch.NewVault([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	base := dispatch.Config{APNSURL: apns.URL(), APNSSandboxURL: sandbox.URL(), FCMURL: fcm.URL(), RootCAs: roots,
		FCMTokenURIs: allowed, MaxAttempts: 2, RetryDelay: func(int, time.Duration) time.Duration { return 0 }}
	if tweak != nil {
		tweak(&base)
	}
	pool := dispatch.NewPool(base, 100, time.Minute)
	t.Cleanup(func() { pool.Close() })
	var conf func(*Config)
	if len(configure) > 0 {
		conf = configure[0]
	}
	h := newHarness(t, options{store: open, configure: conf, deps: func(d *Deps) {
		d.Tenants = d.Store.(cache.Tenants)
		d.Limiter = d.Store.(cache.Limiter)
		d.TenantAuth = &verify.TenantAuth{Secret: tenantSecret}
		d.Vault, d.Pool = vault, pool
	}})
	return &tenantHarness{h, apns, fcm, pool}
}

func bearer(tenant string, ttl time.Duration) map[string]string {
	return map[string]string{"Authorization": "Bearer " + verify.SignTenantToken(tenantSecret, tenant, ttl, time.Now())}
}

// multipartBody builds a multipart form: a value starting with "@" is sent
// as a file holding the rest.
func multipartBody(t *testing.T, parts map[string]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range parts {
		if strings.HasPrefix(v, "@") {
			f, _ := w.CreateFormFile(k, k+".bin")
			f.Write([]byte(v[1:]))
		} else {
			w.WriteField(k, v)
		}
	}
	w.Close()
	return b.String(), w.FormDataContentType()
}

func (h *tenantHarness) upload(tenant, path string, parts map[string]string) reply {
	h.t.Helper()
	body, ct := multipartBody(h.t, parts)
	hdr := bearer(tenant, time.Hour)
	hdr["Content-Type"] = ct
	return h.do("POST", "/tenants/"+tenant+path, body, hdr)
}

func (h *tenantHarness) createTenant(id string) {
	h.t.Helper()
	r := h.do("POST", "/tenants", `{"id":"`+id+`"}`, bearer(id, time.Hour))
	if r.status != 200 || !strings.HasSuffix(string(r.body), `/`+id+`"}`) {
		h.t.Fatalf("create tenant %s: %d %s", id, r.status, r.body)
	}
}

// apnsKey makes a .p8 and has the mock trust it under keyID.
func (h *tenantHarness) apnsKey(keyID string, trusted bool) string {
	k, p8 := testkit.NewP8(h.t)
	if trusted {
		h.apns.TrustKey(keyID, "TEAM123456", &k.PublicKey)
	}
	return string(p8)
}

func (h *tenantHarness) setAPNS(tenant, topic, keyID string, trusted bool) string {
	h.t.Helper()
	p8 := h.apnsKey(keyID, trusted)
	r := h.upload(tenant, "/apns", map[string]string{"apns_topic": topic, "apns_pkcs8_pem": "@" + p8, "apns_key_id": keyID, "apns_team_id": "TEAM123456"})
	if r.status != 200 || string(r.body) != `{"success":true}` {
		h.t.Fatalf("upload APNs for %s: %d %s", tenant, r.status, r.body)
	}
	return p8
}

func (h *tenantHarness) registerIn(tenant, id, typ, token string) {
	h.t.Helper()
	body := fmt.Sprintf(`{"client_id":%q,"type":%q,"token":%q,"always_raw":false}`, id, typ, token)
	if r := h.do("POST", "/"+tenant+"/clients", body, nil); r.status != 200 {
		h.t.Fatalf("register %s in %s: %d %s", id, tenant, r.status, r.body)
	}
}

// rawStores are the two stores, each with a way to read every byte it
// stored, for the at-rest checks.
func rawStores() []struct {
	name string
	open func(t *testing.T) cache.Store
	raw  func(t *testing.T) []byte
} {
	dir, addr := "", ""
	return []struct {
		name string
		open func(t *testing.T) cache.Store
		raw  func(t *testing.T) []byte
	}{
		{"embedded", func(t *testing.T) cache.Store {
			dir = t.TempDir()
			s, err := cache.OpenEmbedded(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, func(t *testing.T) []byte {
			b, err := os.ReadFile(filepath.Join(dir, cache.EmbeddedFile))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"redis", func(t *testing.T) cache.Store {
			addr = cachetest.StartRedis(t)
			s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, func(t *testing.T) []byte {
			_, port, _ := strings.Cut(addr, ":")
			keys, err := exec.Command("redis-cli", "-p", port, "--scan").Output()
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, k := range strings.Fields(string(keys)) {
				typ, _ := exec.Command("redis-cli", "-p", port, "TYPE", k).Output()
				cmd := "GET"
				if strings.TrimSpace(string(typ)) == "hash" {
					cmd = "HGETALL"
				}
				v, _ := exec.Command("redis-cli", "-p", port, "--raw", cmd, k).Output()
				all = append(all, v...)
			}
			if len(all) == 0 {
				t.Fatal("read nothing from Redis")
			}
			return all
		}},
	}
}

func TestTenantsAPI(t *testing.T) {
	for _, st := range rawStores() {
		t.Run(st.name, func(t *testing.T) {
			h := newTenantHarness(t, st.open)
			// Authentication first, even for a tenant that does not exist.
			h.do("GET", "/tenants/nope", "", nil).expectError(t, 401, "authentication", "authorization")
			h.do("GET", "/tenants/nope", "", bearer("other", time.Hour)).expectError(t, 401, "authentication", "authorization")
			h.do("GET", "/tenants/nope", "", bearer("nope", -time.Hour)).expectError(t, 401, "authentication", "authorization")
			forged := map[string]string{"Authorization": verify.SignTenantToken([]byte("another-secret-of-at-least-32-bytes!!"), "nope", time.Hour, time.Now())}
			h.do("GET", "/tenants/nope", "", forged).expectError(t, 401, "authentication", "authorization")
			h.do("POST", "/tenants", `{"id":"a"}`, bearer("b", time.Hour)).expectError(t, 401, "authentication", "authorization")
			h.do("GET", "/tenants/nope", "", bearer("nope", time.Hour)).expectError(t, 404, "tenant_not_found", "tenant_id")
			h.do("POST", "/tenants", `{"id":"bad.id"}`, bearer("bad.id", time.Hour)).expectError(t, 400, "", "id")
			h.do("POST", "/tenants", `{"id":"clients"}`, bearer("clients", time.Hour)).expectError(t, 400, "", "id")

			h.createTenant("wallet-1")
			h.createTenant("wallet-1") // idempotent
			r := h.do("GET", "/tenants/wallet-1", "", bearer("wallet-1", time.Hour))
			var v map[string]any
			json.Unmarshal(r.body, &v)
			if r.status != 200 || fmt.Sprint(v["enabled_providers"]) != "[noop]" || v["apns_type"] != nil || v["suspended"] != false {
				t.Fatalf("GET new tenant: %d %s", r.status, r.body)
			}

			// Bad credentials are refused naming the part, nothing stored.
			h.upload("wallet-1", "/apns", map[string]string{"apns_topic": "com.a", "apns_pkcs8_pem": "@not a key", "apns_key_id": "K", "apns_team_id": "T"}).
				expectError(t, 400, "bad_apns_credentials", "apns_pkcs8_pem")
			h.upload("wallet-1", "/apns", map[string]string{"apns_topic": "com.a", "apns_certificate": "@garbage", "apns_certificate_password": "pw"}).
				expectError(t, 400, "bad_apns_credentials", "apns_certificate")
			h.upload("wallet-1", "/apns", map[string]string{"apns_topic": "com.a"}).expectError(t, 400, "bad_apns_credentials", "apns_certificate")
			other := dispatchtest.StartFCM(t)
			untrusted := bytes.Replace(other.ServiceAccountJSON("p"), []byte(other.TokenURL()), []byte(h.fcm.TokenURL()), 1)
			h.upload("wallet-1", "/fcm_v1", map[string]string{"credentials": "@" + string(untrusted)}).expectError(t, 400, "bad_fcm_v1_credentials", "credentials")
			h.upload("wallet-1", "/fcm", map[string]string{}).expectError(t, 410, "fcm_legacy_unsupported")

			p8 := h.setAPNS("wallet-1", "com.example.one", "KEYONE1234", true)
			if r := h.upload("wallet-1", "/fcm_v1", map[string]string{"credentials": string(h.fcm.ServiceAccountJSON("project-one"))}); r.status != 200 {
				t.Fatalf("upload FCM: %d %s", r.status, r.body)
			}
			r = h.do("GET", "/tenants/wallet-1", "", bearer("wallet-1", time.Hour))
			json.Unmarshal(r.body, &v)
			if fmt.Sprint(v["enabled_providers"]) != "[apns apns-sandbox fcm noop]" || v["apns_topic"] != "com.example.one" || v["apns_type"] != "token" ||
				bytes.Contains(r.body, []byte("PRIVATE")) {
				t.Fatalf("GET configured tenant: %s", r.body)
			}
			// At rest the credentials are sealed: no line of the key, no
			// password, in any stored byte.
			if raw := st.raw(t); bytes.Contains(raw, []byte(strings.Split(p8, "\n")[1])) {
				t.Fatal("the APNs key is stored in clear")
			}

			hdr := bearer("wallet-1", time.Hour)
			if r := h.do("DELETE", "/tenants/wallet-1/fcm_v1", "", hdr); r.status != 204 {
				t.Fatalf("DELETE fcm_v1: %d %s", r.status, r.body)
			}
			r = h.do("GET", "/tenants/wallet-1", "", hdr)
			json.Unmarshal(r.body, &v)
			if fmt.Sprint(v["enabled_providers"]) != "[apns apns-sandbox noop]" {
				t.Fatalf("after DELETE fcm_v1: %s", r.body)
			}

			h.registerIn("wallet-1", "did:key:z6MkGone", "noop", "tok")
			if r := h.do("DELETE", "/tenants/wallet-1", "", hdr); r.status != 200 || string(r.body) != `{"success":true}` {
				t.Fatalf("DELETE tenant: %d %s", r.status, r.body)
			}
			h.do("DELETE", "/tenants/wallet-1", "", hdr)
			h.do("GET", "/tenants/wallet-1", "", hdr).expectError(t, 404, "tenant_not_found", "tenant_id")
			h.do("POST", "/wallet-1/clients/z6MkGone", `{"topic":"t","tag":1,"message":"m"}`, h.signed(`{"topic":"t","tag":1,"message":"m"}`, time.Now().Unix())).
				expectError(t, 404, "tenant_not_found", "tenant_id")
			h.createTenant("wallet-1")
			b := `{"topic":"t","tag":1,"message":"m"}`
			h.do("POST", "/wallet-1/clients/z6MkGone", b, h.signed(b, time.Now().Unix())).expectError(t, 404, "client_not_found")
		})
	}
}

func TestTwoTenantsDeliverWithTheirOwnCredentials(t *testing.T) {
	h := newTenantHarness(t, redisStore)
	for _, tn := range []struct{ id, topic, key, project string }{
		{"alpha", "com.example.alpha", "KEYALPHA01", "project-alpha"},
		{"beta", "com.example.beta", "KEYBETA001", "project-beta"},
	} {
		h.createTenant(tn.id)
		h.setAPNS(tn.id, tn.topic, tn.key, true)
		if r := h.upload(tn.id, "/fcm_v1", map[string]string{"credentials": "@" + string(h.fcm.ServiceAccountJSON(tn.project))}); r.status != 200 {
			t.Fatalf("FCM upload: %d %s", r.status, r.body)
		}
		h.registerIn(tn.id, "did:key:z6MkSame", "apns", strings.Repeat("a", 63)+tn.id[:1])
		h.registerIn(tn.id, "did:key:z6MkDroid", "fcm", "fcm-"+tn.id)
	}
	h.registerIn("alpha", "did:key:z6MkOnlyAlpha", "noop", "t")

	for _, tn := range []string{"alpha", "beta"} {
		b := `{"topic":"tp","tag":1108,"message":"` + tn + `"}`
		h.do("POST", "/"+tn+"/clients/did:key:z6MkSame", b, h.signed(b, time.Now().Unix())).expectOK(t, 202)
		h.do("POST", "/"+tn+"/clients/z6MkDroid", b, h.signed(b, time.Now().Unix())).expectOK(t, 202)
	}
	reqs := h.apns.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("apns-topic") != "com.example.alpha" || reqs[1].Header.Get("apns-topic") != "com.example.beta" ||
		reqs[0].Header.Get("authorization") == reqs[1].Header.Get("authorization") {
		t.Fatalf("APNs pushes did not carry each tenant's own topic and token: %d requests", len(reqs))
	}
	fr := h.fcm.Requests()
	if len(fr) != 2 || fr[0].ProjectID != "project-alpha" || fr[1].ProjectID != "project-beta" {
		t.Fatalf("FCM sends did not use each tenant's project: %+v", fr)
	}
	b := `{"topic":"tp","tag":1,"message":"x"}`
	h.do("POST", "/beta/clients/z6MkOnlyAlpha", b, h.signed(b, time.Now().Unix())).expectError(t, 404, "client_not_found")
	h.do("POST", "/alpha/clients/z6MkOnlyAlpha", b, h.signed(b, time.Now().Unix())).expectOK(t, 202)
}

func TestSuspensionPerProvider(t *testing.T) {
	h := newTenantHarness(t, redisStore)
	h.apnsKey("SOMEOTHER1", true) // the mock now checks provider tokens
	h.createTenant("susp")
	h.setAPNS("susp", "com.example.susp", "KEYSUSP001", false) // a key Apple does not know
	h.upload("susp", "/fcm_v1", map[string]string{"credentials": "@" + string(h.fcm.ServiceAccountJSON("p-susp"))})
	h.registerIn("susp", "ios", "apns", strings.Repeat("b", 64))
	h.registerIn("susp", "droid", "fcm", "fcm-susp")
	send := func(id, msg string) reply {
		b := `{"topic":"tp","tag":4000,"message":"` + msg + `"}`
		return h.do("POST", "/susp/clients/"+id, b, h.signed(b, time.Now().Unix()))
	}
	send("ios", "m1").expectError(t, 502, "provider_misconfigured")
	var v map[string]any
	r := h.do("GET", "/tenants/susp", "", bearer("susp", time.Hour))
	json.Unmarshal(r.body, &v)
	if v["suspended"] != true || !strings.Contains(fmt.Sprint(v["suspended_reason"]), "apns") {
		t.Fatalf("after a rejected push the tenant is not suspended: %s", r.body)
	}
	before := len(h.apns.Requests())
	send("ios", "m2").expectError(t, 502, "provider_misconfigured")
	if len(h.apns.Requests()) != before {
		t.Fatal("a suspended provider was still called")
	}
	send("droid", "m3").expectOK(t, 202) // FCM is not affected

	h.setAPNS("susp", "com.example.susp", "KEYSUSP002", true)
	testkit.Eventually(t, 2*time.Second, "new credentials to lift the suspension", func() bool { return send("ios", "m1").status == 202 })
}

// sharedRedis starts a Redis and returns an opener whose stores all use
// it under one fresh prefix: two gateway instances of one fleet.
func sharedRedis(t *testing.T) func(t *testing.T) cache.Store {
	addr := cachetest.StartRedis(t)
	prefix := fmt.Sprintf("x%d:", time.Now().UnixNano())
	return func(t *testing.T) cache.Store {
		s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addr, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestCredentialChangeReachesAnotherInstance(t *testing.T) {
	open := sharedRedis(t)
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	a, b := newTenantHarnessWith(t, open, apns, fcm), newTenantHarnessWith(t, open, apns, fcm)
	a.apnsKey("SOMEOTHER1", true) // the mock now checks provider tokens
	a.createTenant("shared")
	a.setAPNS("shared", "com.example.shared", "KEYSHARED1", false)
	a.registerIn("shared", "c", "apns", strings.Repeat("c", 64))
	body := `{"topic":"tp","tag":1108,"message":"m"}`
	// Instance b builds its clients for the first credentials, which Apple refuses.
	b.do("POST", "/shared/clients/c", body, b.signed(body, time.Now().Unix())).expectError(t, 502, "provider_misconfigured")
	// New credentials through instance a reach instance b within a second.
	a.setAPNS("shared", "com.example.shared", "KEYSHARED2", true)
	start := time.Now()
	for {
		r := b.do("POST", "/shared/clients/c", body, b.signed(body, time.Now().Unix()))
		if r.status == 202 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("instance b still answers %d %s a second after the change", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hitCounter is a server that counts every request: where a tenant's
// token_uri points when the gateway must not go there.
func hitCounter(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"x","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

func TestFCMUploadRefusesTokenURIOffTheAllowList(t *testing.T) {
	h := newTenantHarness(t, embeddedStore)
	h.createTenant("probe")
	target, hits := hitCounter(t)
	sa := h.fcm.ServiceAccountJSON("project-probe")
	for _, uri := range []string{
		target + "/token",
		target + "/token?next=" + h.fcm.TokenURL(),
		strings.Replace(h.fcm.TokenURL(), "127.0.0.1", "localhost", 1), // same server, another name
		"http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
	} {
		js := bytes.Replace(sa, []byte(h.fcm.TokenURL()), []byte(uri), 1)
		r := h.upload("probe", "/fcm_v1", map[string]string{"credentials": "@" + string(js)})
		r.expectError(t, 400, "bad_fcm_v1_credentials", "credentials")
		if f := r.env.Fields[0]; f.Location != "body" || !strings.Contains(f.Description, "token_uri") {
			t.Fatalf("token_uri %s: field %+v does not point at the token_uri in the body", uri, f)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the disallowed token_uri got %d requests; want 0", n)
	}
	if n := h.fcm.TokenFetches(); n != 0 {
		t.Fatalf("the mock token endpoint issued %d tokens during refused uploads; want 0", n)
	}
	r := h.do("GET", "/tenants/probe", "", bearer("probe", time.Hour))
	var v map[string]any
	json.Unmarshal(r.body, &v)
	if fmt.Sprint(v["enabled_providers"]) != "[noop]" {
		t.Fatalf("a refused upload was stored: %s", r.body)
	}

	// The endpoint the operator allowed still works end to end.
	if r := h.upload("probe", "/fcm_v1", map[string]string{"credentials": "@" + string(sa)}); r.status != 200 {
		t.Fatalf("upload with the allowed token_uri: %d %s", r.status, r.body)
	}
	h.registerIn("probe", "droid", "fcm", "fcm-probe")
	b := `{"topic":"tp","tag":1108,"message":"m"}`
	h.do("POST", "/probe/clients/droid", b, h.signed(b, time.Now().Unix())).expectOK(t, 202)
	if fr := h.fcm.Requests(); len(fr) != 1 || fr[0].ProjectID != "project-probe" {
		t.Fatalf("FCM sends: %+v; want one to project-probe", fr)
	}
}

func TestStoredTokenURIOffTheAllowListFailsWithoutAFetch(t *testing.T) {
	open := sharedRedis(t)
	apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
	// Instance old allowed the mock's token endpoint when the tenant
	// uploaded; instance now runs with Google's endpoints only.
	old := newTenantHarnessWith(t, open, apns, fcm)
	now := newTenantHarnessAllowing(t, open, apns, fcm, nil)
	old.createTenant("narrowed")
	old.setAPNS("narrowed", "com.example.narrowed", "KEYNARROW1", true)
	if r := old.upload("narrowed", "/fcm_v1", map[string]string{"credentials": "@" + string(fcm.ServiceAccountJSON("project-n"))}); r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	old.registerIn("narrowed", "droid", "fcm", "fcm-narrowed")
	old.registerIn("narrowed", "ios", "apns", strings.Repeat("d", 64))
	fetches, sends := fcm.TokenFetches(), fcm.Count()

	b := `{"topic":"tp","tag":1108,"message":"m"}`
	r := now.do("POST", "/narrowed/clients/droid", b, now.signed(b, time.Now().Unix()))
	r.expectError(t, 502, "provider_misconfigured")
	if !strings.Contains(r.env.Errors[0].Description, "token_uri") {
		t.Fatalf("the error does not say why: %s", r.body)
	}
	if fcm.TokenFetches() != fetches || fcm.Count() != sends {
		t.Fatalf("the push reached the disallowed endpoint: %d token fetches, %d sends; want %d, %d",
			fcm.TokenFetches(), fcm.Count(), fetches, sends)
	}
	var v map[string]any
	r = now.do("GET", "/tenants/narrowed", "", bearer("narrowed", time.Hour))
	json.Unmarshal(r.body, &v)
	if s, _ := v["suspensions"].(map[string]any); s == nil || !strings.Contains(fmt.Sprint(s["fcm"]), "token_uri") || s["apns"] != nil {
		t.Fatalf("want FCM alone suspended for its token_uri: %s", r.body)
	}
	// The tenant's APNs is not affected.
	now.do("POST", "/narrowed/clients/ios", b, now.signed(b, time.Now().Unix())).expectOK(t, 202)
}
