package cache_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
)

func newEmbedded(t testing.TB, dir string) *cache.Embedded {
	t.Helper()
	s, err := cache.OpenEmbedded(dir)
	if err != nil {
		t.Fatalf("OpenEmbedded(%q): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEmbedded(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Store { return newEmbedded(t, t.TempDir()) })
}

func TestEmbeddedRestartKeepsClientsAndDeliveries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // OpenEmbedded creates it
	s := newEmbedded(t, dir)
	ctx := t.Context()
	kept := cache.Client{ID: "kept", Type: cache.TypeFCM, Token: "tok-kept", AlwaysRaw: true}
	moved := cache.Client{ID: "mover", Type: cache.TypeAPNS, Token: "tok-moved"}
	for _, c := range []cache.Client{kept, {ID: "loser", Type: cache.TypeNoop, Token: "tok-moved"}, moved} {
		if err := s.Register(ctx, "a", c); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	r, err := s.Reserve(ctx, "a", "kept", "m", time.Minute)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := s.Commit(ctx, r, time.Hour); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	pending, err := s.Reserve(ctx, "a", "kept", "in-flight", time.Minute)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v, %v; want mode 0700", fi.Mode(), err)
	}

	s = newEmbedded(t, dir)
	for _, want := range []cache.Client{kept, moved} {
		got, err := s.Lookup(ctx, "a", want.ID)
		if err != nil || got != want {
			t.Fatalf("after reopening, Lookup(%q) = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	if _, err := s.Lookup(ctx, "a", "loser"); !errors.Is(err, cache.ErrClientNotFound) {
		t.Fatalf("after reopening, Lookup(\"loser\") = %v; want ErrClientNotFound", err)
	}
	if _, err := s.Reserve(ctx, "a", "kept", "m", time.Minute); !errors.Is(err, cache.ErrAlreadyDelivered) {
		t.Fatalf("after reopening, Reserve of a delivered message = %v; want ErrAlreadyDelivered", err)
	}
	// A reservation dies with the process that held it.
	if _, err := s.Reserve(ctx, "a", "kept", pending.MessageID, time.Minute); err != nil {
		t.Fatalf("after reopening, Reserve of a message in flight before = %v; want a fresh reservation", err)
	}
}

func TestEmbeddedSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	newEmbedded(t, dir)
	start := time.Now()
	s, err := cache.OpenEmbedded(dir)
	if err == nil {
		s.Close()
		t.Fatal("a second OpenEmbedded of one directory succeeded; want an error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("second OpenEmbedded took %v; want it to give up after about a second", took)
	}
	if !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second OpenEmbedded: %v; want an error naming the lock holder", err)
	}
}

func TestEmbeddedTenants(t *testing.T) {
	cachetest.RunTenants(t, func(t *testing.T) cachetest.TenantStore { return newEmbedded(t, t.TempDir()) })
}

func TestEmbeddedLimiter(t *testing.T) {
	cachetest.RunLimiter(t, func(t *testing.T) cache.Limiter { return newEmbedded(t, t.TempDir()) })
}

// TestEmbeddedTenantsSurviveRestart: tenants are durable like clients.
func TestEmbeddedTenantsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := newEmbedded(t, dir)
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, "a"); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	if err := s.UpdateTenant(ctx, "a", cache.TenantChange{SetFCM: true, FCM: []byte("sealed")}); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	want, err := s.Tenant(ctx, "a")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = newEmbedded(t, dir)
	got, err := s.Tenant(ctx, "a")
	if err != nil || got.Version != want.Version || string(got.FCM) != "sealed" {
		t.Fatalf("after reopening, Tenant = %+v, %v; want %+v", got, err, want)
	}
}

func TestEmbeddedClientTTL(t *testing.T) {
	cachetest.RunClientTTL(t, func(t *testing.T, ttl time.Duration) cache.Store {
		s, err := cache.OpenEmbeddedWith(t.TempDir(), cache.EmbeddedConfig{ClientTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
