package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/dispatch/dispatchtest"
	"push-server/internal/testkit"
)

// expiryWarning is one warning line of expiryWatch, as logged in JSON.
type expiryWarning struct {
	Msg, Credential, Tenant, Within, ExpiresAt string
}

// expiryWarnings reads the expiry warnings out of JSON log lines.
func expiryWarnings(t *testing.T, logs []byte) []expiryWarning {
	t.Helper()
	var out []expiryWarning
	sc := bufio.NewScanner(bytes.NewReader(logs))
	for sc.Scan() {
		var l struct {
			Msg        string `json:"msg"`
			Credential string `json:"credential"`
			Tenant     string `json:"tenant"`
			Within     string `json:"within"`
			ExpiresAt  string `json:"expires_at"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if strings.HasPrefix(l.Msg, "APNs certificate") {
			out = append(out, expiryWarning{l.Msg, l.Credential, l.Tenant, l.Within, l.ExpiresAt})
		}
	}
	return out
}

// A tenant's certificate upload keeps its expiry: GET /tenants/{id} shows
// it, the expiring gauges count it, and one warning is logged for each
// certificate within 30 days however often the sweep runs. An expired
// certificate is refused naming the part.
func TestTenantCertificateExpiry(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			logs := &testkit.SyncBuffer{}
			apns, fcm := dispatchtest.StartAPNs(t, true), dispatchtest.StartFCM(t)
			h := newTenantHarnessHosts(t, st.open, apns, apns, fcm, nil, func(c *Config) {
				c.ServeMetrics = true
				c.CredentialSweep = 20 * time.Millisecond
				c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			})
			now := time.Now().Truncate(time.Second)
			certs := map[string]time.Time{"soon": now.Add(5 * day), "later": now.Add(20 * day), "far": now.Add(90 * day)}
			for id, notAfter := range certs {
				h.createTenant(id)
				r := h.upload(id, "/apns", map[string]string{"apns_topic": "com.example.p12", "apns_certificate": "@" + string(p12Expiring(t, "pw", notAfter)), "apns_certificate_password": "pw"})
				if r.status != 200 {
					t.Fatalf("upload %s: %d %s", id, r.status, r.body)
				}
			}
			h.createTenant("tok")
			h.setAPNS("tok", "com.example.tok", "KEY1234567", false)

			h.createTenant("old")
			h.upload("old", "/apns", map[string]string{"apns_topic": "com.example.p12", "apns_certificate": "@" + string(p12Expiring(t, "pw", now.Add(-time.Hour))), "apns_certificate_password": "pw"}).
				expectError(t, 400, "bad_apns_credentials", "apns_certificate")

			for id, notAfter := range certs {
				var v struct {
					ExpiresAt *string `json:"apns_certificate_expires_at"`
				}
				r := h.do("GET", "/tenants/"+id, "", bearer(id, time.Hour))
				if err := json.Unmarshal(r.body, &v); err != nil || v.ExpiresAt == nil || *v.ExpiresAt != notAfter.UTC().Format(time.RFC3339) {
					t.Fatalf("GET /tenants/%s: %s; want apns_certificate_expires_at %s", id, r.body, notAfter.UTC().Format(time.RFC3339))
				}
			}
			for _, id := range []string{"tok", "old"} {
				if r := h.do("GET", "/tenants/"+id, "", bearer(id, time.Hour)); !strings.Contains(string(r.body), `"apns_certificate_expires_at":null`) {
					t.Fatalf("GET /tenants/%s: %s; want apns_certificate_expires_at null", id, r.body)
				}
			}

			gauges := func(in7, in30 float64) func() bool {
				return func() bool {
					m := scrape(t, h.harness)
					return m[`push_tenant_credentials_expiring{within="7d"}`] == in7 &&
						m[`push_tenant_credentials_expiring{within="30d"}`] == in30 && m[`push_tenant_credentials_expired`] == 0
				}
			}
			testkit.Eventually(t, 5*time.Second, "expiring gauges 7d=1, 30d=2", gauges(1, 2))
			// Many sweeps later, still one warning per certificate.
			time.Sleep(200 * time.Millisecond)
			got := map[string]expiryWarning{}
			for _, w := range expiryWarnings(t, []byte(logs.String())) {
				if _, dup := got[w.Tenant]; dup {
					t.Errorf("tenant %s warned about more than once: %+v", w.Tenant, w)
				}
				got[w.Tenant] = w
			}
			if len(got) != 2 || got["soon"].Within != "7d" || got["later"].Within != "30d" || got["soon"].Credential != "tenant" ||
				got["soon"].ExpiresAt != certs["soon"].UTC().Format(time.RFC3339) {
				t.Fatalf("warnings: %+v; want one for soon (7d) and one for later (30d)", got)
			}

			// Removing a certificate reaches the gauges without waiting for
			// the period.
			if r := h.do("DELETE", "/tenants/soon/apns", "", bearer("soon", time.Hour)); r.status != 204 {
				t.Fatalf("DELETE apns: %d %s", r.status, r.body)
			}
			testkit.Eventually(t, 5*time.Second, "expiring gauges 7d=0, 30d=1", gauges(0, 1))
		})
	}
}

// The operator's certificate is exported as its notAfter.
func TestOperatorCertificateExpiryExported(t *testing.T) {
	notAfter := time.Now().Add(45 * day).Truncate(time.Second)
	h := newHarness(t, options{configure: func(c *Config) { c.ServeMetrics = true; c.APNSCertificateNotAfter = notAfter }})
	got, ok := scrape(t, h)[`push_credential_expiry_timestamp_seconds{provider="apns"}`]
	if !ok || got != float64(notAfter.Unix()) {
		t.Fatalf(`push_credential_expiry_timestamp_seconds{provider="apns"} = %v (exported: %v); want %d`, got, ok, notAfter.Unix())
	}
}

// Warnings come at most once a day per credential, name the nearest
// threshold (30, 7, 1 days), and say when a certificate has expired; a
// store that cannot be read leaves the gauges as they were.
func TestExpiryWarningsOncePerDay(t *testing.T) {
	store, err := cache.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	base := time.Now().Truncate(time.Second)
	if _, err := store.CreateTenant(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := store.UpdateTenant(ctx, "a", cache.TenantChange{SetAPNS: true, APNSType: "certificate", APNS: []byte("x"), APNSCertificateNotAfter: base.Add(10 * day).Unix()}); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	w := newExpiryWatch(slog.New(slog.NewJSONHandler(logs, nil)), store, base.Add(40*day), time.Hour)

	var seen int
	step := func(at time.Duration, want ...string) {
		t.Helper()
		w.sweep(ctx, base.Add(at))
		all := expiryWarnings(t, []byte(logs.String()))
		var got []string
		for _, l := range all[seen:] {
			got = append(got, l.Credential+":"+l.Tenant+":"+l.Within)
		}
		seen = len(all)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("sweep at +%v logged %q; want %q", at, got, want)
		}
	}
	step(0, "tenant:a:30d") // operator: 40 days out, not yet
	if w.in7.Load() != 0 || w.in30.Load() != 1 || w.expired.Load() != 0 {
		t.Fatalf("gauges at +0: 7d=%d 30d=%d expired=%d", w.in7.Load(), w.in30.Load(), w.expired.Load())
	}
	step(time.Hour)                     // the same day: nothing
	step(23 * time.Hour)                // nor 23 hours later
	step(day+time.Hour, "tenant:a:30d") // a day after the last warning: again
	step(4*day, "tenant:a:7d")
	step(9*day+12*time.Hour, "tenant:a:1d")
	step(11*day, "operator::30d", "tenant:a:expired")
	if !strings.Contains(logs.String(), "has expired") {
		t.Fatal("no line says the tenant's certificate has expired")
	}
	if w.in7.Load() != 1 || w.expired.Load() != 1 {
		t.Fatalf("gauges at +11d: 7d=%d expired=%d; want 1 and 1", w.in7.Load(), w.expired.Load())
	}

	store.Close()
	w.sweep(ctx, base.Add(12*day))
	if w.sweepErrors.Get() != 1 || w.in30.Load() != 1 || w.expired.Load() != 1 {
		t.Fatalf("after a failed sweep: errors=%d 30d=%d expired=%d; want 1 and the last values kept", w.sweepErrors.Get(), w.in30.Load(), w.expired.Load())
	}
}
