// Command push-server is a push-notification gateway: wallets register
// device tokens, relays send signed notifications, and it pushes them through
// APNs, FCM and Web Push. See README.md and docs/.
//
// Usage:
//
//	push-server                      serve (configured from the environment)
//	push-server check                validate the environment, exit 0 or 2
//	push-server keygen               print a relay Ed25519 key pair (hex)
//	push-server vapid-keygen         print a VAPID key pair for Web Push (base64url)
//	push-server sign --key HEX --body FILE [--timestamp N]
//	                                 print the headers a relay would send
//	push-server mock-providers       run the mock APNs, FCM and Web Push servers
//	push-server tenant-token --tenant ID [--ttl 1h]
//	                                 print a tenants-API token (needs JWT_SECRET)
//	push-server version
//
// main.go wires the parts together and runs them; config.go reads the
// environment and commands.go holds the other commands.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/router"
	"push-server/verify"
)

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
	case "check":
		return check(getenv, stdout, stderr)
	case "keygen":
		err = keygen(stdout)
	case "vapid-keygen":
		err = vapidKeygen(stdout)
	case "sign":
		err = sign(args, stdout)
	case "mock-providers":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err = mockProviders(ctx, args, stdout)
		stop()
	case "tenant-token":
		err = tenantToken(args, getenv, stdout)
	case "version", "--version", "-version":
		printVersion(stdout)
	default:
		err = fmt.Errorf("unknown command %q: want serve, check, keygen, vapid-keygen, sign, mock-providers, tenant-token or version", cmd)
	}
	if err != nil {
		fmt.Fprintln(stderr, "push-server:", err)
		return 2
	}
	return 0
}

// tenantClientsIdle is how long a tenant's provider clients stay open
// without a push before the pool closes them.
const tenantClientsIdle = 30 * time.Minute

// serve runs the gateway until SIGTERM or SIGINT, then drains.
func serve(getenv func(string) string, stderr io.Writer) int {
	log := newLogger(getenv, stderr)
	cfg, relay, code := validate(getenv, stderr)
	if code != 0 {
		return code
	}
	// Providers log their rejections of our credentials: through the same
	// logger, so LOG_FORMAT and LOG_LEVEL apply to those lines too.
	cfg.router.Logger, cfg.dispatch.Logger = log, log

	tp, stopTracing, err := startTracing(context.Background(), getenv, log)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: tracing:", err)
		return 2
	}
	if tp != nil {
		cfg.router.TracerProvider = tp
		log.Info("tracing on")
	}
	defer func() {
		// Flush the spans still buffered, but never hold the exit for long.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			log.Warn("tracing: cannot flush spans at exit", "error", err.Error())
		}
	}()

	store, err := openStore(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "push-server:", err)
		return 1
	}
	defer store.Close()

	providers, err := dispatch.NewParsed(cfg.dispatch, cfg.credentials)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: providers:", err)
		return 2
	}
	defer providers.Close()
	retryCounters := []router.RetryCounter{providers}

	clientAuth := &verify.ClientAuth{Audience: cfg.publicURL, Leeway: verify.DefaultClientLeeway}
	deps := router.Deps{Store: store, Relay: relay, ClientAuth: clientAuth, Providers: providers}
	// Both stores are Limiters and Tenants (cache/guards.go makes that a
	// build-time fact); the assertions only reach them through Store.
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
		pool := dispatch.NewPool(shared, dispatch.DefaultPoolSize, tenantClientsIdle)
		defer pool.Close()
		deps.Tenants, deps.Vault, deps.Pool = tenants, vault, pool
		retryCounters = append(retryCounters, pool)
		deps.TenantAuth = &verify.TenantAuth{Secret: cfg.jwtSecret, Leeway: verify.DefaultTenantLeeway}
		log.Info("multi-tenant mode on")
	}
	router.PublishRetries(retryCounters...)
	if cfg.eventLog != "" {
		out, err := openEventLog(cfg.eventLog)
		if err != nil {
			fmt.Fprintln(stderr, "push-server: EVENT_LOG:", err)
			return 2
		}
		// Deferred calls run after serveUntilSignal's Shutdown, which
		// writes the lines still queued.
		defer out.Close()
		cfg.router.EventLog = out
		log.Info("event log on", "to", cfg.eventLog)
	}
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
	return serveUntilSignal(srv, ln, cfg, log)
}

// validate is everything serve checks before it opens the store and the
// listeners, and so everything `push-server check` checks. On a bad
// setting it prints the one line naming it and returns exit code 2.
func validate(getenv func(string) string, stderr io.Writer) (*config, *verify.Relay, int) {
	cfg, err := parseConfig(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "push-server: configuration:", err)
		return nil, nil, 2
	}
	var relay *verify.Relay
	if cfg.relayKey != nil {
		// NewRelay refuses keys that are 32 bytes but no safe point.
		if relay, err = verify.NewRelay(cfg.relayKey, cfg.maxAge); err != nil {
			fmt.Fprintln(stderr, "push-server: RELAY_PUBLIC_KEY:", err)
			return nil, nil, 2
		}
	}
	return cfg, relay, 0
}

// openStore opens Redis when REDIS_URL is set, else the embedded store in
// DATA_DIR. Its error names the variable.
func openStore(cfg *config, log *slog.Logger) (cache.Store, error) {
	if cfg.redisURL == "" {
		store, err := cache.OpenEmbeddedWith(cfg.dataDir, cache.EmbeddedConfig{ClientTTL: cfg.clientTTL})
		if err != nil {
			return nil, fmt.Errorf("DATA_DIR: %w", err)
		}
		log.Info("store: embedded", "dir", cfg.dataDir)
		return store, nil
	}
	store, err := cache.NewRedis(cache.RedisConfig{
		URL: cfg.redisURL, ReplicaURL: cfg.redisReplica, CacheSize: cfg.redisCacheSize, MaxFlushDelay: cfg.redisFlush,
		ClientTTL: cfg.clientTTL,
		OnLostCommits: func(n int, err error) {
			log.Warn("delivered but cannot record it for deduplication; the claims expire after their lease",
				"messages", n, "error", err.Error())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	log.Info("store: redis", "url", redactURL(cfg.redisURL))
	return store, nil
}

// serveUntilSignal serves on ln until SIGTERM or SIGINT, then drains:
// it returns 0 after a clean shutdown, 1 if the server stopped by itself.
func serveUntilSignal(srv *router.Server, ln net.Listener, cfg *config, log *slog.Logger) int {
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
	// then close the providers and the store in serve's deferred calls.
	log.Info("shutting down: draining requests in flight")
	drain, cancel := context.WithTimeout(context.Background(), cfg.router.SendTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("shutdown did not finish draining", "error", err)
	}
	return 0
}

// openEventLog opens EVENT_LOG: standard output for "stdout" (left open
// by Close), else the file, appended to and created owner-writable.
func openEventLog(to string) (io.WriteCloser, error) {
	if to == "stdout" {
		return nopCloser{os.Stdout}, nil
	}
	return os.OpenFile(to, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

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
