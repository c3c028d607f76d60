package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/verify"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0"

// printVersion prints the version, as GET /health shows it.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "push-server v"+version)
}

// check validates the environment as serve does before it opens the store
// and the listeners, without opening them: exit 0 with one line saying so,
// or 2 with serve's line naming the first bad variable. A deploy can run
// it before replacing a working instance.
func check(getenv func(string) string, stdout, stderr io.Writer) int {
	if _, _, code := validate(getenv, stderr); code != 0 {
		return code
	}
	if code := checkTracing(getenv, stderr); code != 0 {
		return code
	}
	fmt.Fprintln(stdout, "push-server: configuration OK")
	return 0
}

// keygen prints a fresh relay key pair.
func keygen(w io.Writer) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "RELAY_PUBLIC_KEY=%x\nRELAY_PRIVATE_KEY=%x\n", pub, priv.Seed())
	return nil
}

// vapidKeygen prints a fresh VAPID key pair for Web Push, in keygen's
// env-file form: the private key as web-push tools print it (base64url of
// the P-256 scalar) and the public key wallets subscribe with.
func vapidKeygen(w io.Writer) error {
	priv, pub, err := dispatch.GenerateVAPIDKeys()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "VAPID_PUBLIC_KEY=%s\nVAPID_PRIVATE_KEY=%s\n", pub, priv)
	return nil
}

// sign prints the two headers a relay sends with the body in --body.
func sign(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	keyHex := fs.String("key", "", "relay private key: 32-byte seed or 64-byte key, hex")
	bodyFile := fs.String("body", "", "file holding the exact request body")
	ts := fs.Int64("timestamp", 0, "unix seconds to sign (default now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := hex.DecodeString(*keyHex)
	var priv ed25519.PrivateKey
	switch {
	case err == nil && len(key) == ed25519.SeedSize:
		priv = ed25519.NewKeyFromSeed(key)
	case err == nil && len(key) == ed25519.PrivateKeySize:
		priv = key
	default:
		return errors.New("sign: --key wants the relay's private key as 64 or 128 hex digits (see keygen)")
	}
	if *bodyFile == "" {
		return errors.New("sign: --body FILE is required")
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	stamp := []byte(strconv.FormatInt(*ts, 10))
	fmt.Fprintf(w, "X-Ed25519-Timestamp: %s\nX-Ed25519-Signature: %s\n", stamp, verify.Sign(priv, stamp, body))
	return nil
}

// tenantToken prints a tenants-API token for an operator: HS256 with
// JWT_SECRET, sub = the tenant id.
func tenantToken(args []string, getenv func(string) string, w io.Writer) error {
	fs := flag.NewFlagSet("tenant-token", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant id (sub)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := getenv("JWT_SECRET")
	switch {
	case *tenant == "":
		return errors.New("tenant-token: --tenant ID is required")
	case len(secret) < 32:
		return errors.New("tenant-token: JWT_SECRET must be set (at least 32 bytes)")
	case *ttl <= 0:
		return errors.New("tenant-token: --ttl must be positive")
	}
	fmt.Fprintln(w, verify.SignTenantToken([]byte(secret), *tenant, *ttl, time.Now()))
	return nil
}

// mockProviders runs the mock APNs, FCM and Web Push servers for trying
// the gateway without Apple, Google or a browser. It prints the settings
// that point the gateway at them, WEBPUSH_ALLOWED_ORIGINS included (the
// mock push service's origin: plain HTTP on loopback, which only a
// loopback origin may be).
// It runs until ctx ends (run ends it on SIGTERM or SIGINT).
func mockProviders(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("mock-providers", flag.ContinueOnError)
	apnsAddr := fs.String("apns", "127.0.0.1:8443", "mock APNs listen address")
	fcmAddr := fs.String("fcm", "127.0.0.1:8444", "mock FCM listen address")
	webpushAddr := fs.String("webpush", "127.0.0.1:8445", "mock Web Push service listen address")
	apnsTLS := fs.Bool("tls", false, "serve APNs over TLS (self-signed) instead of h2c")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return dispatchtest.ServeMocks(ctx, w, dispatchtest.ServeOptions{APNsAddr: *apnsAddr, FCMAddr: *fcmAddr, WebPushAddr: *webpushAddr, APNsTLS: *apnsTLS})
}
