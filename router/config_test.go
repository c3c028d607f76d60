package router

import (
	"strings"
	"testing"
	"time"
)

// TestConfigValidateNamesTheVariable: a bad setting's error starts with the
// environment variable an operator would fix, as dispatch's does.
func TestConfigValidateNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		want string
		set  func(*Config)
	}{
		{"MAX_BODY_SIZE: ", func(c *Config) { c.MaxBodySize = -1 }},
		{"MAX_CONNS: ", func(c *Config) { c.MaxConns = -1 }},
		{"MAX_CONNS_PER_IP: ", func(c *Config) { c.MaxConnsPerIP = -1 }},
		{"MAX_INFLIGHT_SENDS: ", func(c *Config) { c.MaxInFlightSends = -1 }},
		{"RATE_LIMIT_PER_IP: ", func(c *Config) { c.RateLimits.PerIP = -1 }},
		{"RATE_LIMIT_PER_CLIENT: ", func(c *Config) { c.RateLimits.PerClient = -1 }},
		{"RATE_LIMIT_WINDOW: ", func(c *Config) { c.RateLimits.Window = -time.Second }},
		{"RATE_LIMIT_IPV6_PREFIX: ", func(c *Config) { c.RateLimits.IPv6Prefix = 129 }},
		{"DEDUP_TTL: ", func(c *Config) { c.DedupTTL = -time.Second }},
		{"PROVIDER_TIMEOUT: ", func(c *Config) { c.SendTimeout = -time.Second }},
		{"HEADER_READ_TIMEOUT: ", func(c *Config) { c.HeaderTimeout = -time.Second }},
	} {
		var c Config
		tc.set(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error starting %q", err, tc.want)
		}
		if _, err := New(c, Deps{}); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New() error = %v, want one starting %q", err, tc.want)
		}
	}
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Errorf("the zero Config (every default): %v", err)
	}
}
