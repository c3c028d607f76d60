package router

import (
	"fmt"
	"time"

	"push-server/cache"
	"push-server/dispatch"
)

// Defaults New gives Config's zero fields, and main the unset environment
// variables named beside them: each is written here once. DEDUP_TTL's is
// cache.DefaultDedupTTL and PROVIDER_TIMEOUT's dispatch.DefaultTimeout,
// the owners of those settings.
const (
	// DefaultMaxBodySize bounds a request body, in bytes (MAX_BODY_SIZE).
	DefaultMaxBodySize = 64 << 10
	// DefaultHeaderTimeout bounds a request's headers (HEADER_READ_TIMEOUT).
	DefaultHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds a body once the headers are in.
	DefaultReadTimeout = 10 * time.Second
	// DefaultIdleTimeout bounds the wait for a kept-alive connection's
	// next request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConns bounds the connections served at once (MAX_CONNS).
	DefaultMaxConns = 10000
	// DefaultMaxInFlightSends bounds the sends handled at once
	// (MAX_INFLIGHT_SENDS).
	DefaultMaxInFlightSends = 10000
	// DefaultRateLimitPerIP, DefaultRateLimitPerClient and
	// DefaultRateLimitWindow are main's RateLimits (RATE_LIMIT_PER_IP,
	// RATE_LIMIT_PER_CLIENT, RATE_LIMIT_WINDOW). New leaves zero limits
	// at zero: off.
	DefaultRateLimitPerIP     = 100
	DefaultRateLimitPerClient = 20
	DefaultRateLimitWindow    = time.Minute
	// DefaultIPv6Prefix is how many bits of an IPv6 caller's address the
	// per-IP limits count (RATE_LIMIT_IPV6_PREFIX): one host usually owns
	// a whole /64.
	DefaultIPv6Prefix = 64
	// DefaultStaleTenantSweep is how often deleted tenants' provider
	// clients are looked for (Config.StaleTenantSweep).
	DefaultStaleTenantSweep = 10 * time.Second
)

// Validate checks the settings without touching anything and returns an
// error naming the environment variable of the first bad one (the field,
// for those main does not read from the environment). Zero is never an
// error: it means the default.
func (c *Config) Validate() error {
	for _, n := range [...]struct {
		name  string
		value int
	}{
		{"MAX_BODY_SIZE", c.MaxBodySize},
		{"MAX_CONNS", c.MaxConns},
		{"MAX_CONNS_PER_IP", c.MaxConnsPerIP},
		{"MAX_INFLIGHT_SENDS", c.MaxInFlightSends},
		{"RATE_LIMIT_PER_IP", c.RateLimits.PerIP},
		{"RATE_LIMIT_PER_CLIENT", c.RateLimits.PerClient},
		{"router: EventLogBuffer", c.EventLogBuffer},
	} {
		if n.value < 0 {
			return fmt.Errorf("%s: want a whole number of at least 0, got %d", n.name, n.value)
		}
	}
	for _, d := range [...]struct {
		name  string
		value time.Duration
	}{
		{"DEDUP_TTL", c.DedupTTL},
		{"PROVIDER_TIMEOUT", c.SendTimeout},
		{"HEADER_READ_TIMEOUT", c.HeaderTimeout},
		{"RATE_LIMIT_WINDOW", c.RateLimits.Window},
		{"router: ReadTimeout", c.ReadTimeout},
		{"router: WriteTimeout", c.WriteTimeout},
		{"router: IdleTimeout", c.IdleTimeout},
		{"router: StaleTenantSweep", c.StaleTenantSweep},
		{"router: CredentialSweep", c.CredentialSweep},
		{"router: TenantLabelWindow", c.TenantLabelWindow},
	} {
		if d.value < 0 {
			return fmt.Errorf("%s: want a positive duration, got %s", d.name, d.value)
		}
	}
	if c.TenantLabels < 0 || c.TenantLabels > maxTenantLabels {
		return fmt.Errorf("METRICS_TENANT_LABELS: want a whole number from 0 (off) to %d, got %d", maxTenantLabels, c.TenantLabels)
	}
	if p := c.RateLimits.IPv6Prefix; p < 0 || p > 128 {
		return fmt.Errorf("RATE_LIMIT_IPV6_PREFIX: want a prefix length from 1 to 128, got %d", p)
	}
	return nil
}

// withDefaults is c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxBodySize == 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.DedupTTL == 0 {
		c.DedupTTL = cache.DefaultDedupTTL
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = dispatch.DefaultTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		// An answer waits for the send's provider hand-off.
		c.WriteTimeout = c.SendTimeout + 5*time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	c.HeaderTimeout = min(c.HeaderTimeout, c.ReadTimeout)
	if c.RateLimits.IPv6Prefix == 0 {
		c.RateLimits.IPv6Prefix = DefaultIPv6Prefix
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxInFlightSends == 0 {
		c.MaxInFlightSends = DefaultMaxInFlightSends
	}
	if c.StaleTenantSweep == 0 {
		c.StaleTenantSweep = DefaultStaleTenantSweep
	}
	if c.CredentialSweep == 0 {
		c.CredentialSweep = DefaultCredentialSweep
	}
	if c.TenantLabelWindow == 0 {
		c.TenantLabelWindow = DefaultTenantLabelWindow
	}
	if c.EventLogBuffer == 0 {
		c.EventLogBuffer = DefaultEventLogBuffer
	}
	return c
}
