// Command push-server is a push-notification gateway: wallets register
// device tokens, relays send signed notifications, and it pushes them through
// APNs and FCM. See README.md and docs/.
//
// Usage:
//
//	push-server                      serve (configured from the environment)
//	push-server keygen               print a relay Ed25519 key pair (hex)
//	push-server sign --key HEX --body FILE [--timestamp N]
//	                                 print the headers a relay would send
//	push-server mock-providers       run the mock APNs and FCM servers
//	push-server tenant-token --tenant ID [--ttl 1h]
//	                                 print a tenants-API token (needs JWT_SECRET)
//	push-server version
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
	"push-server/router"
	"push-server/verify"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main with its inputs as parameters, so tests can call it. It
// returns the process's exit code: 2 for bad configuration or usage.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		return serve(getenv, stderr)
	case "keygen":
		err = keygen(stdout)
	case "sign":
		err = sign(args, stdout)
	case "mock-providers":
		err = mockProviders(args, stdout)
	case "tenant-token":
		err = tenantToken(args, getenv, stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "push-server v"+version)
	default:
		err = fmt.Errorf("unknown command %q: want serve, keygen, sign, mock-providers, tenant-token or version", cmd)
	}
	if err != nil {
		fmt.Fprintln(stderr, "push-server:", err)
		return 2
	}
	return 0
}

// config is every setting, parsed from the environment.
type config struct {
	port           int
	listenAddr     string // host part of both listeners; "" = every interface
	publicURL      string
	redisURL       string
	redisReplica   string
	redisCacheSize int
	redisFlush     time.Duration
	dataDir        string
	clientTTL      time.Duration // 0: registrations never expire
	relayKey       ed25519.PublicKey
	maxAge         time.Duration
	metricsPort    int // 0: /metrics on the API port
	shutdownDelay  time.Duration
	// Multi-tenant mode, on when jwtSecret is set.
	jwtSecret      []byte
	credentialsKey []byte
	previousKeys   [][]byte
	// tenantTokenURIs are the token endpoints tenants' service accounts may
	// name (Google's plus TENANT_FCM_TOKEN_URIS); FCM_V1_CREDENTIALS, the
	// operator's own, is not held to it.
	tenantTokenURIs *dispatch.TokenURIs
	router          router.Config
	dispatch        dispatch.Config
}

// parseConfig reads the environment through getenv. Its first error names
// the variable, its value (never a secret's) and what is allowed.
func parseConfig(getenv func(string) string) (*config, error) {
	var c config
	var err error
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	if c.port, err = envInt(getenv, "PORT", 3000, 1, 65535); err != nil {
		return nil, err
	}
	c.publicURL = strings.TrimRight(env("PUBLIC_URL", "http://localhost:"+strconv.Itoa(c.port)), "/")
	c.router.PublicURL = c.publicURL
	if c.router.ValidateSignatures, err = envBool(getenv, "VALIDATE_SIGNATURES", true); err != nil {
		return nil, err
	}
	if c.router.RequireClientAuth, err = envBool(getenv, "REQUIRE_CLIENT_AUTH", false); err != nil {
		return nil, err
	}
	if c.maxAge, err = envSeconds(getenv, "SIGNATURE_MAX_AGE", 300*time.Second); err != nil {
		return nil, err
	}
	if k := env("RELAY_PUBLIC_KEY", ""); k != "" {
		b, herr := hex.DecodeString(strings.TrimPrefix(k, "0x"))
		if herr != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("RELAY_PUBLIC_KEY=%q: want 32 bytes as 64 hex digits", k)
		}
		c.relayKey = b
	} else if c.router.ValidateSignatures {
		return nil, errors.New("RELAY_PUBLIC_KEY: required when VALIDATE_SIGNATURES is true (make one with `push-server keygen`)")
	}
	c.redisURL = env("REDIS_URL", "")
	if c.redisURL != "" {
		for _, u := range strings.Split(c.redisURL, ",") {
			if u = strings.TrimSpace(u); !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
				return nil, fmt.Errorf("REDIS_URL: want redis:// or rediss:// URLs (comma-separated for cluster seeds), got %q", redactURL(u))
			}
		}
	}
	c.redisReplica = env("REDIS_REPLICA_URL", "")
	if c.redisReplica != "" && !strings.HasPrefix(c.redisReplica, "redis://") && !strings.HasPrefix(c.redisReplica, "rediss://") {
		return nil, fmt.Errorf("REDIS_REPLICA_URL: want a redis:// or rediss:// URL, got %q", redactURL(c.redisReplica))
	}
	if c.redisReplica != "" && c.redisURL == "" {
		return nil, errors.New("REDIS_REPLICA_URL: needs REDIS_URL (the primary) too")
	}
	if c.redisCacheSize, err = envInt(getenv, "REDIS_CACHE_SIZE", cache.DefaultCacheSize, 1<<20, 1<<34); err != nil {
		return nil, err
	}
	if c.redisFlush, err = envDelay(getenv, "REDIS_MAX_FLUSH_DELAY", defaultRedisFlushDelay, 10*time.Millisecond); err != nil {
		return nil, err
	}
	c.dataDir = env("DATA_DIR", "./data")
	if v := strings.TrimSpace(getenv("CLIENT_TTL")); v != "" {
		// Below a minute every send would refresh and idle clients would
		// vanish between a wallet's registration and its first push.
		if c.clientTTL, err = parseDurationOrSeconds(v); err != nil || c.clientTTL < 0 || c.clientTTL > 0 && c.clientTTL < time.Minute {
			return nil, fmt.Errorf("CLIENT_TTL=%q: want a duration of at least 1m like 720h, or whole seconds (0 turns expiry off)", v)
		}
	}
	if c.router.DedupTTL, err = envDuration(getenv, "DEDUP_TTL", 24*time.Hour); err != nil {
		return nil, err
	}
	if c.router.SendTimeout, err = envDuration(getenv, "PROVIDER_TIMEOUT", 10*time.Second); err != nil {
		return nil, err
	}
	if c.shutdownDelay, err = envDelay(getenv, "SHUTDOWN_DELAY", 5*time.Second, 5*time.Minute); err != nil {
		return nil, err
	}
	maxBody, err := envInt(getenv, "MAX_BODY_SIZE", 64<<10, 256, 16<<20)
	if err != nil {
		return nil, err
	}
	c.router.MaxBodySize = maxBody
	if c.router.MaxInFlightSends, err = envInt(getenv, "MAX_INFLIGHT_SENDS", 10000, 1, 1<<20); err != nil {
		return nil, err
	}
	c.router.Version = version
	rl := &c.router.RateLimits
	if rl.PerIP, err = envInt(getenv, "RATE_LIMIT_PER_IP", 100, 0, 1<<30); err != nil {
		return nil, err
	}
	if rl.PerClient, err = envInt(getenv, "RATE_LIMIT_PER_CLIENT", 20, 0, 1<<30); err != nil {
		return nil, err
	}
	if rl.Window, err = envDuration(getenv, "RATE_LIMIT_WINDOW", time.Minute); err != nil {
		return nil, err
	}
	if v := env("TRUSTED_PROXIES", ""); v != "" {
		if rl.TrustedProxies, err = router.ParseTrustedProxies(v); err != nil {
			return nil, fmt.Errorf("TRUSTED_PROXIES=%q: want comma-separated addresses or CIDR prefixes: %v", v, err)
		}
	}
	if rl.IPv6Prefix, err = envInt(getenv, "RATE_LIMIT_IPV6_PREFIX", 64, 48, 128); err != nil {
		return nil, err
	}
	// Fly's proxy overwrites Fly-Client-IP on every request it forwards, and
	// every connection comes from it: the header is the caller, and a
	// per-peer connection cap would cap all callers together.
	onFly := getenv("FLY_APP_NAME") != ""
	if onFly {
		rl.EdgeHeader = "Fly-Client-IP"
	}
	if c.router.HeaderTimeout, err = envDuration(getenv, "HEADER_READ_TIMEOUT", 5*time.Second); err != nil {
		return nil, err
	}
	if c.router.MaxConns, err = envInt(getenv, "MAX_CONNS", 10000, 1, 1<<20); err != nil {
		return nil, err
	}
	perIPDefault := max(c.router.MaxConns/10, 1)
	if onFly || len(rl.TrustedProxies) > 0 {
		perIPDefault = 0 // the peers are proxies carrying many callers each
	}
	if c.router.MaxConnsPerIP, err = envInt(getenv, "MAX_CONNS_PER_IP", perIPDefault, 0, 1<<20); err != nil {
		return nil, err
	}
	if c.listenAddr, err = envListenAddr(env("LISTEN_ADDR", "")); err != nil {
		return nil, err
	}
	if c.metricsPort, err = envInt(getenv, "TELEMETRY_PROMETHEUS_PORT", 0, 1, 65535); err != nil {
		return nil, err
	}
	if c.metricsPort == c.port {
		return nil, fmt.Errorf("TELEMETRY_PROMETHEUS_PORT=%d: must differ from PORT", c.metricsPort)
	}
	c.router.ServeMetrics = c.metricsPort == 0
	if secret := getenv("JWT_SECRET"); secret != "" {
		if len(secret) < 32 {
			return nil, fmt.Errorf("JWT_SECRET: want at least 32 bytes, got %d", len(secret))
		}
		c.jwtSecret = []byte(secret)
		if c.credentialsKey, err = envKey(getenv, "TENANT_CREDENTIALS_KEY", true); err != nil {
			return nil, err
		}
		if v := env("TENANT_CREDENTIALS_PREVIOUS_KEYS", ""); v != "" {
			for _, k := range strings.Split(v, ",") {
				b, kerr := decodeKey(strings.TrimSpace(k))
				if kerr != nil {
					return nil, errors.New("TENANT_CREDENTIALS_PREVIOUS_KEYS: want comma-separated 32-byte keys, hex or base64")
				}
				c.previousKeys = append(c.previousKeys, b)
			}
		}
	}
	if c.tenantTokenURIs, err = dispatch.ParseTokenURIs(env("TENANT_FCM_TOKEN_URIS", "")); err != nil {
		return nil, fmt.Errorf("TENANT_FCM_TOKEN_URIS: want comma-separated absolute https URLs (http only for a loopback host): %v", err)
	}

	d := &c.dispatch
	d.APNSType = strings.ToLower(env("APNS_TYPE", ""))
	d.APNSTopic = env("APNS_TOPIC", "")
	if v := env("APNS_CERTIFICATE", ""); v != "" {
		if d.APNSCertificate, err = base64.StdEncoding.DecodeString(v); err != nil {
			return nil, errors.New("APNS_CERTIFICATE: want the .p12 file as standard base64")
		}
	}
	d.APNSCertificatePassword = getenv("APNS_CERTIFICATE_PASSWORD")
	if v := env("APNS_PKCS8_PEM", ""); v != "" {
		d.APNSPKCS8PEM = []byte(v)
		if !strings.Contains(v, "-----BEGIN") {
			if d.APNSPKCS8PEM, err = base64.StdEncoding.DecodeString(v); err != nil {
				return nil, errors.New("APNS_PKCS8_PEM: want the .p8 key as PEM text or as standard base64 of it")
			}
		}
	}
	d.APNSKeyID = env("APNS_KEY_ID", "")
	d.APNSTeamID = env("APNS_TEAM_ID", "")
	if v := env("FCM_V1_CREDENTIALS", ""); v != "" {
		d.FCMCredentials = []byte(v)
	}
	d.APNSURL = env("APNS_URL", "")
	d.APNSSandboxURL = env("APNS_SANDBOX_URL", "")
	d.FCMURL = env("FCM_URL", "")
	d.Timeout = c.router.SendTimeout
	if d.MaxAttempts, err = envInt(getenv, "PROVIDER_MAX_ATTEMPTS", 3, 1, 10); err != nil {
		return nil, err
	}
	if d.MaxRetriesPerSecond, err = envInt(getenv, "PROVIDER_MAX_RETRIES_PER_SECOND", dispatch.DefaultMaxRetriesPerSecond, 1, 1<<20); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// defaultRedisFlushDelay lets Redis commands of concurrent sends share a
// write: on one core under load it cut a send's CPU by about 15 % (0 vs
// 50µs, BENCHMARKS.md); a lone command is never delayed (rueidis waits only
// while more than one is in flight).
const defaultRedisFlushDelay = 50 * time.Microsecond

// serve runs the gateway until SIGTERM or SIGINT, then drains.
func serve(getenv func(string) string, stderr io.Writer) int {
	log := newLogger(getenv, stderr)
	cfg, err := parseConfig(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: configuration:", err)
		return 2
	}
	// Providers log their rejections of our credentials: through the same
	// logger, so LOG_FORMAT and LOG_LEVEL apply to those lines too.
	cfg.router.Logger, cfg.dispatch.Logger = log, log

	var store cache.Store
	if cfg.redisURL != "" {
		store, err = cache.NewRedis(cache.RedisConfig{
			URL: cfg.redisURL, ReplicaURL: cfg.redisReplica, CacheSize: cfg.redisCacheSize, MaxFlushDelay: cfg.redisFlush,
			ClientTTL: cfg.clientTTL,
			OnLostCommits: func(n int, err error) {
				log.Warn("delivered but cannot record it for deduplication; the claims expire after their lease",
					"messages", n, "error", err.Error())
			},
		})
		if err != nil {
			fmt.Fprintln(stderr, "push-server: REDIS_URL:", err)
			return 1
		}
		log.Info("store: redis", "url", redactURL(cfg.redisURL))
	} else {
		store, err = cache.OpenEmbeddedWith(cfg.dataDir, cache.EmbeddedConfig{ClientTTL: cfg.clientTTL})
		if err != nil {
			fmt.Fprintln(stderr, "push-server: DATA_DIR:", err)
			return 1
		}
		log.Info("store: embedded", "dir", cfg.dataDir)
	}
	defer store.Close()

	providers, err := dispatch.New(cfg.dispatch)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: providers:", err)
		return 2
	}
	defer providers.Close()
	retryCounters := []router.RetryCounter{providers}

	var relay *verify.Relay
	if cfg.relayKey != nil {
		if relay, err = verify.NewRelay(cfg.relayKey, cfg.maxAge); err != nil {
			fmt.Fprintln(stderr, "push-server: RELAY_PUBLIC_KEY:", err)
			return 2
		}
	}
	clientAuth := &verify.ClientAuth{Audience: cfg.publicURL, Leeway: 120 * time.Second}
	deps := router.Deps{Store: store, Relay: relay, ClientAuth: clientAuth, Providers: providers}
	if l, ok := store.(cache.Limiter); ok {
		deps.Limiter = l
	}
	if cfg.jwtSecret != nil {
		tenants, ok := store.(cache.Tenants)
		if !ok {
			fmt.Fprintln(stderr, "push-server: JWT_SECRET: this store does not support multi-tenant mode")
			return 2
		}
		vault, err := dispatch.NewVault(cfg.credentialsKey, cfg.previousKeys...)
		if err != nil {
			fmt.Fprintln(stderr, "push-server: TENANT_CREDENTIALS_KEY:", err)
			return 2
		}
		shared := cfg.dispatch // NewPool ignores its Credentials
		shared.FCMTokenURIs = cfg.tenantTokenURIs
		pool := dispatch.NewPool(shared, dispatch.DefaultPoolSize, 30*time.Minute)
		defer pool.Close()
		deps.Tenants, deps.Vault, deps.Pool = tenants, vault, pool
		retryCounters = append(retryCounters, pool)
		deps.TenantAuth = &verify.TenantAuth{Secret: cfg.jwtSecret, Leeway: 60 * time.Second}
		log.Info("multi-tenant mode on")
	}
	router.PublishRetries(retryCounters...)
	srv, err := router.New(cfg.router, deps)
	if err != nil {
		fmt.Fprintln(stderr, "push-server:", err)
		return 2
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.listenAddr, strconv.Itoa(cfg.port)))
	if err != nil {
		fmt.Fprintln(stderr, "push-server: LISTEN_ADDR/PORT:", err)
		return 1
	}
	log.Info("serving", "addr", ln.Addr().String(), "version", version, "validate_signatures", cfg.router.ValidateSignatures)

	if cfg.metricsPort != 0 {
		mln, err := net.Listen("tcp", net.JoinHostPort(cfg.listenAddr, strconv.Itoa(cfg.metricsPort)))
		if err != nil {
			fmt.Fprintln(stderr, "push-server: LISTEN_ADDR/TELEMETRY_PROMETHEUS_PORT:", err)
			return 1
		}
		defer mln.Close()
		go srv.MetricsServer().Serve(mln)
		log.Info("serving metrics", "addr", mln.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("server stopped", "error", err)
		return 1
	case <-ctx.Done():
	}
	// Closing the listener at once would reset the connections a load
	// balancer opened before it noticed: they wait in the kernel's accept
	// queue and are never read. So fail readiness and close keep-alive
	// connections first, and keep serving for SHUTDOWN_DELAY; a second
	// signal cuts the wait short.
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(again)
	stop()
	srv.Drain()
	log.Info("shutting down: readiness fails; still serving", "delay", cfg.shutdownDelay.String())
	wait := time.NewTimer(cfg.shutdownDelay)
	select {
	case <-wait.C:
	case <-again:
		wait.Stop()
		log.Info("second signal: skipping the rest of the shutdown delay")
	case err := <-served:
		log.Error("server stopped", "error", err)
		return 1
	}
	// Finish the requests in flight (a send waits at most PROVIDER_TIMEOUT),
	// then close the providers and the store in the deferred calls.
	log.Info("shutting down: draining requests in flight")
	drain, cancel := context.WithTimeout(context.Background(), cfg.router.SendTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("shutdown did not finish draining", "error", err)
	}
	return 0
}

// newLogger logs JSON unless LOG_FORMAT=text.
func newLogger(getenv func(string) string, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(getenv("LOG_LEVEL")))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(getenv("LOG_FORMAT"), "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
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

// mockProviders runs the mock APNs and FCM servers for trying the gateway
// without Apple or Google.
func mockProviders(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("mock-providers", flag.ContinueOnError)
	apnsAddr := fs.String("apns", "127.0.0.1:8443", "mock APNs listen address")
	fcmAddr := fs.String("fcm", "127.0.0.1:8444", "mock FCM listen address")
	apnsTLS := fs.Bool("tls", false, "serve APNs over TLS (self-signed) instead of h2c")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return dispatchtest.Serve(ctx, w, *apnsAddr, *fcmAddr, *apnsTLS)
}

func envInt(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func envBool(getenv func(string) string, name string, def bool) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// envSeconds reads whole seconds, as echo-server's SIGNATURE_MAX_AGE is.
func envSeconds(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want whole seconds, like 300 (0 turns the check off)", name, v)
	}
	return time.Duration(n) * time.Second, nil
}

// envDuration reads a Go duration ("24h", "90s") or whole seconds.
func envDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := parseDurationOrSeconds(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration like 24h or 90s", name, v)
	}
	return d, nil
}

// parseDurationOrSeconds reads a Go duration ("90s") or whole seconds ("90").
func parseDurationOrSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// envDelay reads a Go duration ("5s") or whole seconds, from 0 to limit.
func envDelay(getenv func(string) string, name string, def, limit time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := parseDurationOrSeconds(v)
	if err != nil || d < 0 || d > limit {
		return 0, fmt.Errorf("%s=%q: want a duration from 0s to %s (a bare number counts seconds)", name, v, limit)
	}
	return d, nil
}

// envKey reads a 32-byte key given as hex or standard base64.
func envKey(getenv func(string) string, name string, required bool) ([]byte, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		if required {
			return nil, fmt.Errorf("%s: required with JWT_SECRET (32 bytes, hex or base64)", name)
		}
		return nil, nil
	}
	k, err := decodeKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: want 32 bytes as 64 hex digits or standard base64", name)
	}
	return k, nil
}

func decodeKey(v string) ([]byte, error) {
	if b, err := hex.DecodeString(v); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("not a 32-byte key")
}

// envListenAddr checks LISTEN_ADDR: an IP address or host name, without a
// port (the ports are PORT and TELEMETRY_PROMETHEUS_PORT).
func envListenAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := netip.ParseAddr(strings.Trim(v, "[]")); err == nil {
		return strings.Trim(v, "[]"), nil
	}
	if strings.ContainsAny(v, ":/[] ") {
		return "", fmt.Errorf("LISTEN_ADDR=%q: want an IP address or host name without a port, like 10.0.0.5 or fly-local-6pn (the port is PORT)", v)
	}
	return v, nil
}

// redactURL hides a URL's password: REDIS_URL may carry one.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return u[:scheme+3] + userinfo[:i] + ":***" + u[at:]
	}
	return u
}
