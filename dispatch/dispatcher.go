package dispatch

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// Config is what dispatch needs from the environment. main fills it; Parse
// names the environment variable of the first bad setting.
type Config struct {
	// Credentials are the providers' credentials: the environment's in
	// single-tenant mode, a tenant's in a Pool (which takes them, and only
	// them, from the tenant).
	Credentials

	APNSURL        string // APNS_URL; "" = Apple's production host
	APNSSandboxURL string // APNS_SANDBOX_URL; "" = Apple's development host
	FCMURL         string // FCM_URL; "" = Google's host

	// FCMTokenURIs, when set, are the only token endpoints FCMCredentials'
	// token_uri may name: a tenant's service account is untrusted input,
	// and its token_uri is where every token fetch POSTs. A disallowed one
	// still builds, but its "fcm" provider fails every push with
	// ErrMisconfigured without sending anything. nil trusts any token_uri:
	// the operator's own FCM_V1_CREDENTIALS. Pool always sets it.
	FCMTokenURIs *TokenURIs

	// WebPushAllowedOrigins (WEBPUSH_ALLOWED_ORIGINS) are the push
	// services beyond the browsers' own that a webpush subscription's
	// endpoint may name; nil allows the browsers' only. The sender checks
	// it again before every request, so narrowing it stops pushes to
	// endpoints registered before.
	WebPushAllowedOrigins *WebPushOrigins
	// WebPushTTL (WEBPUSH_TTL) is how long a push service keeps a Web Push
	// for an offline browser, sent as the TTL header in whole seconds; 0
	// means DefaultWebPushTTL.
	WebPushTTL time.Duration

	// Timeout bounds one push, retries included (PROVIDER_TIMEOUT); 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts bounds tries per push (PROVIDER_MAX_ATTEMPTS); 0 means
	// DefaultMaxAttempts.
	MaxAttempts int
	// MaxRetriesPerSecond caps the retries (tries after a push's first) of
	// all providers of one Dispatcher together, so a flapping provider sees
	// each push's first attempt plus at most this many retries a second
	// (after a burst of one second's worth) instead of MaxAttempts times the
	// traffic. A push whose retry is refused fails at once with its last
	// error (ErrUnavailable for a 5xx); RetriesRefused counts them.
	// PROVIDER_MAX_RETRIES_PER_SECOND; 0 means DefaultMaxRetriesPerSecond.
	// Each tenant Dispatcher of a Pool has its own budget.
	MaxRetriesPerSecond int
	// RetryDelay returns how long to wait before try attempt+1 (attempt
	// counts from 1); retryAfter is the provider's Retry-After, 0 when absent.
	// nil means capped exponential backoff with jitter. Tests pass a zero
	// delay instead of sleeping.
	RetryDelay func(attempt int, retryAfter time.Duration) time.Duration
	// RootCAs, when set, replaces the system roots for provider TLS (for
	// mock providers with a self-signed certificate).
	RootCAs *x509.CertPool
	// Proxy picks the outbound proxy of every provider connection, the
	// OAuth token fetch's included. nil means ProxyFromEnvironment, read
	// when New runs: HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
	Proxy ProxyFunc
	// Logger receives provider misconfiguration reports; nil = slog.Default().
	Logger *slog.Logger

	// retryCounts, when set (by a Pool), is where the retry budget counts,
	// shared with the Pool's other Dispatchers.
	retryCounts *retryCounts
}

// Dispatcher holds the providers built from one Config: each configured
// provider once, with its long-lived connections. It is safe for concurrent
// use; Close it when done.
type Dispatcher struct {
	noop        *Noop
	apns        *apnsSender    // nil when APNs is not configured
	apnsSandbox *apnsSender    // nil when APNs is not configured
	fcm         *fcmSender     // nil when FCM is not configured
	webpush     *webpushSender // nil when Web Push is not configured
	closers     []interface{ CloseIdleConnections() }
	closes      atomic.Int32 // how often Close ran, for the Pool's tests
	budget      *retryBudget // shared by every provider's retry policy
}

// New validates cfg and builds every configured provider: with APNS_TYPE
// set, "apns" (production host, or APNS_URL) and "apns-sandbox"
// (development host, or APNS_SANDBOX_URL), each an apns2 client over an
// HTTP/2 transport shared per scheme, with one provider token for both;
// with FCM_V1_CREDENTIALS set, "fcm", one messaging client; with
// VAPID_PRIVATE_KEY set, "webpush", one HTTP client for every push service.
// Nothing is
// dialled until the first push. "noop" always exists.
func New(cfg Config) (*Dispatcher, error) {
	p, err := cfg.Parse()
	if err != nil {
		return nil, err
	}
	return NewParsed(cfg, p)
}

// NewParsed is New for a Config whose credentials cfg.Parse has already
// opened, so that a start-up that validated them (and read the APNs
// certificate's expiry) does not open the .p12 and parse the keys again.
// p must come from Parse of the same credential settings; NewParsed does
// not check cfg again, so change only what Parse does not read, such as
// Logger, in between.
func NewParsed(cfg Config, p *Parsed) (*Dispatcher, error) {
	cr := p.cr
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxRetriesPerSecond == 0 {
		cfg.MaxRetriesPerSecond = DefaultMaxRetriesPerSecond
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = defaultRetryDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Proxy == nil {
		cfg.Proxy = ProxyFromEnvironment()
	}
	// One budget for all providers: the cap is on what this Dispatcher
	// sends, and APNs production and sandbox are one Apple service; per
	// provider it would be up to three times the configured figure.
	budget := newRetryBudget(cfg.MaxRetriesPerSecond, cfg.retryCounts)
	policy := &retryPolicy{maxAttempts: cfg.MaxAttempts, delay: cfg.RetryDelay, budget: budget}
	d := &Dispatcher{noop: new(Noop), budget: budget}

	if cfg.APNSType != "" {
		var tok *token.Token
		if cr.apnsKey != nil {
			// One token for both hosts: apns2 re-signs it when it is 50
			// minutes old, under Apple's limit of one update per 20 minutes
			// and its one-hour expiry.
			tok = &token.Token{AuthKey: cr.apnsKey, KeyID: cfg.APNSKeyID, TeamID: cfg.APNSTeamID}
			if _, err := tok.Generate(); err != nil {
				return nil, fmt.Errorf("APNS_PKCS8_PEM: cannot sign a provider token: %w", err)
			}
		}
		var cert *tls.Certificate
		if cr.apnsKey == nil {
			cert = &cr.apnsCert
		}
		transports := make(map[string]*http2.Transport, 2)
		transportFor := func(host string) http.RoundTripper {
			scheme := "https"
			if strings.HasPrefix(host, "http://") {
				scheme = "http"
			}
			t := transports[scheme]
			if t == nil {
				t = newAPNsTransport(scheme, cert, cfg.RootCAs, cfg.Proxy)
				transports[scheme] = t
				d.closers = append(d.closers, t)
			}
			return t
		}
		for _, h := range [...]struct {
			sender      **apnsSender
			name, host  string
			defaultHost string
		}{
			{&d.apns, TypeAPNS, cfg.APNSURL, apns2.HostProduction},
			{&d.apnsSandbox, TypeAPNSSandbox, cfg.APNSSandboxURL, apns2.HostDevelopment},
		} {
			host := baseURL(h.host)
			if host == "" {
				host = h.defaultHost
			}
			*h.sender = &apnsSender{
				name:    h.name,
				topic:   cfg.APNSTopic,
				client:  newAPNsClient(host, transportFor(host), cr, tok),
				policy:  policy,
				timeout: cfg.Timeout,
				// One per host: a sandbox refusal must not mute the line
				// about production's for a minute, nor the other way.
				log: &loudLog{logger: cfg.Logger},
			}
		}
	}
	if cr.fcm != nil {
		base := newFCMTransport(cfg.RootCAs, cfg.Proxy)
		d.closers = append(d.closers, base)
		s, err := newFCMSender(&cfg, cr.fcm, base, policy, &loudLog{logger: cfg.Logger})
		if err != nil {
			d.Close()
			return nil, err
		}
		d.fcm = s
	}
	if cr.vapid != nil {
		if cfg.WebPushTTL == 0 {
			cfg.WebPushTTL = DefaultWebPushTTL
		}
		t := newFCMTransport(cfg.RootCAs, cfg.Proxy)
		d.closers = append(d.closers, t)
		s, err := newWebPushSender(&cfg, cr.vapid, t, policy, &loudLog{logger: cfg.Logger})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("VAPID_PRIVATE_KEY: %w", err)
		}
		d.webpush = s
	}
	return d, nil
}

// Sender returns the provider for a client's type: one of the Type
// constants, compared case-insensitively. An unknown type, or one whose
// provider is not configured, is ErrProviderNotAvailable; "noop" always
// works.
func (d *Dispatcher) Sender(typ string) (Sender, error) {
	switch {
	case strings.EqualFold(typ, TypeAPNS) && d.apns != nil:
		return d.apns, nil
	case strings.EqualFold(typ, TypeAPNSSandbox) && d.apnsSandbox != nil:
		return d.apnsSandbox, nil
	case strings.EqualFold(typ, TypeFCM) && d.fcm != nil:
		return d.fcm, nil
	case strings.EqualFold(typ, TypeWebPush) && d.webpush != nil:
		return d.webpush, nil
	case strings.EqualFold(typ, TypeNoop):
		return d.noop, nil
	}
	return nil, fmt.Errorf("provider type %q: %w", typ, ErrProviderNotAvailable)
}

// Available reports whether Sender(typ) would succeed.
func (d *Dispatcher) Available(typ string) bool {
	_, err := d.Sender(typ)
	return err == nil
}

// VAPIDPublicKey returns the base64url VAPID public key of this
// Dispatcher's Web Push (the applicationServerKey a browser subscribes
// with), or "" when Web Push is not configured.
func (d *Dispatcher) VAPIDPublicKey() string {
	if d.webpush == nil {
		return ""
	}
	return d.webpush.vapid.public
}

// Noop returns the dispatcher's noop provider, to read its count.
func (d *Dispatcher) Noop() *Noop { return d.noop }

// RetriesRefused returns how many retries the retry budget
// (Config.MaxRetriesPerSecond) has refused since New, for metrics: each is a
// push that failed with its last error instead of trying again.
func (d *Dispatcher) RetriesRefused() uint64 { return d.budget.counts.refused.Load() }

// Retries returns how many retries the retry budget granted: pushes tried
// again after a 429, 5xx or network error.
func (d *Dispatcher) Retries() uint64 { return d.budget.counts.granted.Load() }

// Close closes the idle provider connections. Pushes in flight finish on
// their connections; a push after Close dials again. It returns nil; the
// error is there for the io.Closer shape main's shutdown expects.
func (d *Dispatcher) Close() error {
	d.closes.Add(1)
	for _, c := range d.closers {
		c.CloseIdleConnections()
	}
	return nil
}
