package dispatch

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// DefaultWebPushTTL is how long a push service keeps a Web Push for an
// offline browser when Config.WebPushTTL is 0: a day, as APNs' expiration.
const DefaultWebPushTTL = 24 * time.Hour

// webpushSender pushes to browsers' push services (RFC 8030) with
// aes128gcm encryption (RFC 8291) and VAPID (RFC 8292).
type webpushSender struct {
	vapid   *vapidKey
	allowed *WebPushOrigins
	client  *http.Client
	policy  *retryPolicy
	ttl     time.Duration
	timeout time.Duration
	log     *loudLog
}

func newWebPushSender(cfg *Config, k *vapidKey, t http.RoundTripper, policy *retryPolicy, log *loudLog) *webpushSender {
	return &webpushSender{
		vapid: k, allowed: cfg.WebPushAllowedOrigins, client: &http.Client{Transport: t},
		policy: policy, ttl: cfg.WebPushTTL, timeout: cfg.Timeout, log: log,
	}
}

// Send pushes n to the subscription in token. Not implemented yet.
func (s *webpushSender) Send(ctx context.Context, token string, n *Notification) error {
	return errors.New("webpush: not implemented yet")
}
