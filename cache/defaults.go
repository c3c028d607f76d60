package cache

import "time"

// Defaults of settings the stores own, for main's environment parsing
// (and router's zero values) to share, so each is written once.
const (
	// DefaultDedupTTL is how long a delivered message id is remembered
	// (DEDUP_TTL): a relay retrying within it gets the first answer.
	DefaultDedupTTL = 24 * time.Hour
	// DefaultMaxFlushDelay is RedisConfig.MaxFlushDelay's setting in
	// production (REDIS_MAX_FLUSH_DELAY; zero, the field's own default,
	// turns the wait off). It lets Redis commands of concurrent sends
	// share a write: on one core under load it cut a send's CPU by about
	// 15 % (0 vs 50µs, BENCHMARKS.md); a lone command is never delayed
	// (rueidis waits only while more than one is in flight).
	DefaultMaxFlushDelay = 50 * time.Microsecond
)
