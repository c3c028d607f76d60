package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"push-server/cache"
	"push-server/dispatch"
	"push-server/router"
	"push-server/verify"
)

// Defaults of the settings main itself owns; the others are the owning
// package's exported constants.
const (
	defaultPort          = 3000
	defaultDataDir       = "./data"
	defaultShutdownDelay = 5 * time.Second
)

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
	// eventLog is EVENT_LOG: "" (off), "stdout" or a file path, which
	// serve opens (appending) so that check opens nothing.
	eventLog string
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
	// credentials is dispatch's credentials as validation opened them, for
	// dispatch.NewParsed: the .p12 and keys are parsed once per start.
	credentials *dispatch.Parsed
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
	if c.port, err = envInt(getenv, "PORT", defaultPort, 1, 65535); err != nil {
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
	if c.maxAge, err = envSeconds(getenv, "SIGNATURE_MAX_AGE", verify.DefaultMaxAge); err != nil {
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
			if u = strings.TrimSpace(u); !isRedisURL(u) {
				return nil, fmt.Errorf("REDIS_URL: want redis:// or rediss:// URLs (comma-separated for cluster seeds), got %q", redactURL(u))
			}
		}
	}
	c.redisReplica = env("REDIS_REPLICA_URL", "")
	if c.redisReplica != "" && !isRedisURL(c.redisReplica) {
		return nil, fmt.Errorf("REDIS_REPLICA_URL: want a redis:// or rediss:// URL, got %q", redactURL(c.redisReplica))
	}
	if c.redisReplica != "" && c.redisURL == "" {
		return nil, errors.New("REDIS_REPLICA_URL: needs REDIS_URL (the primary) too")
	}
	if c.redisCacheSize, err = envInt(getenv, "REDIS_CACHE_SIZE", cache.DefaultCacheSize, 1<<20, 1<<34); err != nil {
		return nil, err
	}
	if c.redisFlush, err = envDelay(getenv, "REDIS_MAX_FLUSH_DELAY", cache.DefaultMaxFlushDelay, 0, 10*time.Millisecond); err != nil {
		return nil, err
	}
	c.dataDir = env("DATA_DIR", defaultDataDir)
	if v := strings.TrimSpace(getenv("CLIENT_TTL")); v != "" {
		// Below a minute every send would refresh and idle clients would
		// vanish between a wallet's registration and its first push.
		if c.clientTTL, err = parseDurationOrSeconds(v); err != nil || c.clientTTL < 0 || c.clientTTL > 0 && c.clientTTL < time.Minute {
			return nil, fmt.Errorf("CLIENT_TTL=%q: want a duration of at least 1m like 720h, or whole seconds (0 turns expiry off)", v)
		}
	}
	if c.router.DedupTTL, err = envDuration(getenv, "DEDUP_TTL", cache.DefaultDedupTTL); err != nil {
		return nil, err
	}
	if c.router.SendTimeout, err = envDuration(getenv, "PROVIDER_TIMEOUT", dispatch.DefaultTimeout); err != nil {
		return nil, err
	}
	if c.shutdownDelay, err = envDelay(getenv, "SHUTDOWN_DELAY", defaultShutdownDelay, 0, 5*time.Minute); err != nil {
		return nil, err
	}
	maxBody, err := envInt(getenv, "MAX_BODY_SIZE", router.DefaultMaxBodySize, 256, 16<<20)
	if err != nil {
		return nil, err
	}
	c.router.MaxBodySize = maxBody
	if c.router.MaxInFlightSends, err = envInt(getenv, "MAX_INFLIGHT_SENDS", router.DefaultMaxInFlightSends, 1, 1<<20); err != nil {
		return nil, err
	}
	c.router.Version = version
	rl := &c.router.RateLimits
	if rl.PerIP, err = envInt(getenv, "RATE_LIMIT_PER_IP", router.DefaultRateLimitPerIP, 0, 1<<30); err != nil {
		return nil, err
	}
	if rl.PerClient, err = envInt(getenv, "RATE_LIMIT_PER_CLIENT", router.DefaultRateLimitPerClient, 0, 1<<30); err != nil {
		return nil, err
	}
	if rl.Window, err = envDuration(getenv, "RATE_LIMIT_WINDOW", router.DefaultRateLimitWindow); err != nil {
		return nil, err
	}
	if v := env("TRUSTED_PROXIES", ""); v != "" {
		if rl.TrustedProxies, err = router.ParseTrustedProxies(v); err != nil {
			return nil, fmt.Errorf("TRUSTED_PROXIES=%q: want comma-separated addresses or CIDR prefixes: %v", v, err)
		}
	}
	if rl.IPv6Prefix, err = envInt(getenv, "RATE_LIMIT_IPV6_PREFIX", router.DefaultIPv6Prefix, 48, 128); err != nil {
		return nil, err
	}
	// Fly's proxy overwrites Fly-Client-IP on every request it forwards, and
	// every connection comes from it: the header is the caller, and a
	// per-peer connection cap would cap all callers together.
	onFly := getenv("FLY_APP_NAME") != ""
	if onFly {
		rl.EdgeHeader = "Fly-Client-IP"
	}
	if c.router.HeaderTimeout, err = envDuration(getenv, "HEADER_READ_TIMEOUT", router.DefaultHeaderTimeout); err != nil {
		return nil, err
	}
	if c.router.MaxConns, err = envInt(getenv, "MAX_CONNS", router.DefaultMaxConns, 1, 1<<20); err != nil {
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
	if c.router.TenantLabels, err = envInt(getenv, "METRICS_TENANT_LABELS", 0, 0, 1000); err != nil {
		return nil, err
	}
	c.eventLog = env("EVENT_LOG", "")
	if secret := getenv("JWT_SECRET"); secret != "" {
		if len(secret) < 32 {
			return nil, fmt.Errorf("JWT_SECRET: want at least 32 bytes, got %d", len(secret))
		}
		c.jwtSecret = []byte(secret)
		if c.credentialsKey, err = envKey(getenv, "TENANT_CREDENTIALS_KEY"); err != nil {
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
	if v := getenv("WEBPUSH_ALLOWED_ORIGINS"); strings.TrimSpace(v) != "" {
		if d.WebPushAllowedOrigins, err = dispatch.ParseWebPushOrigins(v); err != nil {
			return nil, fmt.Errorf("WEBPUSH_ALLOWED_ORIGINS: want comma-separated push-service hosts or origins (https, or http for a loopback host): %v", err)
		}
	}
	// Tenants' subscriptions are held to the same list (the Pool's base
	// is this Config), and registrations of either before they are stored.
	c.router.WebPushAllowedOrigins = d.WebPushAllowedOrigins
	// At least a second: dispatch reads 0 as its default, and a push
	// service keeps a message for whole seconds.
	if d.WebPushTTL, err = envDelay(getenv, "WEBPUSH_TTL", dispatch.DefaultWebPushTTL, time.Second, maxWebPushTTL); err != nil {
		return nil, err
	}
	d.VAPIDPrivateKey = env("VAPID_PRIVATE_KEY", "")
	d.VAPIDSubject = env("VAPID_SUBJECT", "")
	d.APNSURL = env("APNS_URL", "")
	d.APNSSandboxURL = env("APNS_SANDBOX_URL", "")
	d.FCMURL = env("FCM_URL", "")
	d.Timeout = c.router.SendTimeout
	if d.MaxAttempts, err = envInt(getenv, "PROVIDER_MAX_ATTEMPTS", dispatch.DefaultMaxAttempts, 1, 10); err != nil {
		return nil, err
	}
	if d.MaxRetriesPerSecond, err = envInt(getenv, "PROVIDER_MAX_RETRIES_PER_SECOND", dispatch.DefaultMaxRetriesPerSecond, 1, 1<<20); err != nil {
		return nil, err
	}
	if err := c.router.Validate(); err != nil {
		return nil, err
	}
	if c.credentials, err = d.Parse(); err != nil {
		return nil, err
	}
	// Zero unless APNS_TYPE is certificate: the router watches no date then.
	c.router.APNSCertificateNotAfter = c.credentials.APNSCertificateNotAfter()
	if err := checkVAPIDPublicKey(c.credentials.VAPIDPublicKey(), env("VAPID_PUBLIC_KEY", "")); err != nil {
		return nil, err
	}
	return &c, nil
}

// maxWebPushTTL bounds WEBPUSH_TTL: push services keep a message at most
// about four weeks (autopush 60 days, FCM 28), so a longer TTL promises
// what none of them does.
const maxWebPushTTL = 28 * 24 * time.Hour

// checkVAPIDPublicKey holds an operator's VAPID_PUBLIC_KEY to derived, the
// key VAPID_PRIVATE_KEY derives ("" without one): it is optional (the server
// derives it), but a deployment that states one and pairs it with another
// private key would serve wallets a key whose subscriptions every push then
// fails with 403.
func checkVAPIDPublicKey(derived, given string) error {
	switch {
	case given == "":
		return nil
	case derived == "":
		return errors.New("VAPID_PUBLIC_KEY: given without VAPID_PRIVATE_KEY (set both, or the private key alone: the public key is derived)")
	case strings.TrimRight(given, "=") != derived:
		return fmt.Errorf("VAPID_PUBLIC_KEY=%q: does not match VAPID_PRIVATE_KEY, whose public key is %s (leave VAPID_PUBLIC_KEY unset to use the derived one)", given, derived)
	}
	return nil
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

// envDelay reads a Go duration ("5s") or whole seconds, from lo to hi.
func envDelay(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := parseDurationOrSeconds(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s=%q: want a duration from %s to %s (a bare number counts seconds)", name, v, lo, hi)
	}
	return d, nil
}

// envKey reads a 32-byte key given as hex or standard base64. Its one
// caller needs the key with JWT_SECRET, so an empty value is an error.
func envKey(getenv func(string) string, name string) ([]byte, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil, fmt.Errorf("%s: required with JWT_SECRET (32 bytes, hex or base64)", name)
	}
	k, err := decodeKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: want 32 bytes as 64 hex digits or standard base64", name)
	}
	return k, nil
}

// isRedisURL reports whether u has a scheme REDIS_URL and
// REDIS_REPLICA_URL accept: redis:// or rediss:// (TLS).
func isRedisURL(u string) bool {
	return strings.HasPrefix(u, "redis://") || strings.HasPrefix(u, "rediss://")
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
