package dispatch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// DefaultWebPushTTL is how long a push service keeps a Web Push for an
// offline browser when Config.WebPushTTL is 0: a day, as APNs' expiration.
const DefaultWebPushTTL = 24 * time.Hour

// webpushOverhead is what aes128gcm adds to a Web Push's plaintext in its
// one record: the header (salt 16, record size 4, key id length 1, the
// sender's public key 65), the padding delimiter (1) and the AES-GCM tag
// (16). RFC 8291 section 4 caps the whole at 4096 bytes, so the plaintext
// may be MaxPayloadSize - webpushOverhead = 3993 bytes, the most webpush-go
// fits before ErrMaxPadExceeded.
const webpushOverhead = 16 + 4 + 1 + 65 + 1 + 16

// maxWebPushPlaintext is the largest payload a Web Push carries.
const maxWebPushPlaintext = MaxPayloadSize - webpushOverhead

// maxWebPushReason bounds how much of a push service's error answer goes
// into a ProviderError's Reason (and so into a 502's description).
const maxWebPushReason = 120

// webpushSender pushes to browsers' push services (RFC 8030) through
// github.com/SherClockHolmes/webpush-go, which encrypts (aes128gcm, RFC
// 8291) and signs the VAPID JWT (RFC 8292). It is safe for concurrent use:
// it holds no mutable state but its loudLog and HTTP client.
type webpushSender struct {
	vapid *vapidKey
	// privateKey is vapid's scalar as webpush-go wants it (unpadded
	// base64url), however the operator wrote it.
	privateKey string
	// subscriber is the JWT's sub as webpush-go wants it: it prefixes
	// "mailto:" to anything that does not start with "https:", so a
	// mailto: subject goes in without its scheme.
	subscriber string
	allowed    *WebPushOrigins
	client     *http.Client
	policy     *retryPolicy
	ttlSeconds int
	timeout    time.Duration
	log        *loudLog
}

// newWebPushSender builds the one Web Push sender of a Dispatcher over base,
// the transport shared by every push service it reaches (HTTP/2 where the
// service offers it in TLS's ALPN, as all the browsers' do).
//
// Two guards sit around base. The allow-list is checked again before each
// request (webpushGuard): registration checked it, but the list may have
// been narrowed since, and a request must never go where the list does not
// allow. And the client never follows a redirect: the endpoint is chosen by
// whoever registered, and a redirect would let an allowed host send the
// POST anywhere. The 3xx answer itself comes back and fails the push.
func newWebPushSender(cfg *Config, k *vapidKey, base http.RoundTripper, policy *retryPolicy, log *loudLog) *webpushSender {
	return &webpushSender{
		vapid:      k,
		privateKey: base64.RawURLEncoding.EncodeToString(k.private.Bytes()),
		subscriber: strings.TrimPrefix(k.subject, "mailto:"),
		allowed:    cfg.WebPushAllowedOrigins,
		client: &http.Client{
			Transport:     &recordingTransport{next: &webpushGuard{allowed: cfg.WebPushAllowedOrigins, next: base}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			// No client timeout: Send's context bounds each push, retries
			// included, as for the other providers.
		},
		policy:     policy,
		ttlSeconds: int(cfg.WebPushTTL / time.Second),
		timeout:    cfg.Timeout,
		log:        log,
	}
}

// Send pushes n to the subscription in token (a PushSubscription's JSON).
// See the Sender contract; the outcomes are classifyWebPush's.
//
// A token that no longer parses is ErrTokenDead: it can never be delivered,
// and registration refuses such tokens, so it is not one the allow-list
// refused. An endpoint the allow-list refuses (narrowed since the client
// registered) is ErrMisconfigured and nothing is sent: the operator's
// choice, not the subscription's death, so the client is kept.
func (s *webpushSender) Send(ctx context.Context, token string, n *Notification) error {
	if !validKind(n.Kind) {
		return fmt.Errorf("webpush: cannot push notification kind %d", n.Kind)
	}
	sub, err := parseSubscription(token, s.allowed)
	if err != nil {
		pe := &ProviderError{Provider: TypeWebPush, Err: ErrTokenDead, Cause: err}
		if errors.Is(err, ErrEndpointNotAllowed) {
			pe.Err = ErrMisconfigured
			s.log.report(pe)
		}
		return pe
	}
	buf := acquirePayload()
	defer releasePayload(buf)
	*buf = appendWebPushPayload((*buf)[:0], n)
	if len(*buf) > maxWebPushPlaintext {
		return fmt.Errorf("webpush: payload is %d bytes, the limit is %d (a %d-byte record with its encryption): %w",
			len(*buf), maxWebPushPlaintext, MaxPayloadSize, ErrPayloadTooLarge)
	}
	opts := &webpush.Options{
		HTTPClient:      s.client,
		Subscriber:      s.subscriber,
		TTL:             s.ttlSeconds,
		Urgency:         webpushUrgency(n),
		VAPIDPublicKey:  s.vapid.public,
		VAPIDPrivateKey: s.privateKey,
	}
	wsub := &webpush.Subscription{Endpoint: sub.endpoint, Keys: webpush.Keys{Auth: sub.rawAuth, P256dh: sub.rawP256dh}}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var refused error // webpush-go failed before sending anything
	err = s.policy.run(ctx, TypeWebPush, classifyWebPush, func(ctx context.Context) answer {
		var rec tryRecord
		// webpush-go pads the message in place: it appends to the slice it
		// is given, within buf's spare capacity, and the length we hold is
		// unchanged, so a retry sends the same plaintext.
		resp, err := webpush.SendNotificationWithContext(withTryRecord(ctx, &rec), *buf, wsub, opts)
		switch {
		case err == nil:
			defer resp.Body.Close()
			a := answer{status: resp.StatusCode, retryAfter: rec.retryAfter}
			a.reason = webpushReason(resp)
			return a
		case rec.requests == 0 && !errors.Is(err, ErrEndpointNotAllowed) && ctx.Err() == nil:
			refused = err
			return answer{status: -1}
		}
		return answer{err: cleanCause(err)}
	})
	if refused != nil {
		// Encryption or signing failed on input registration accepted:
		// our bug, not the provider's answer.
		return fmt.Errorf("webpush: cannot build the push: %w", refused)
	}
	if pe, ok := err.(*ProviderError); ok {
		pe.redactToken(token)
		pe.redactToken(sub.endpoint)
		s.log.report(pe)
	}
	return err
}

// webpushReason reads a short explanation from a push service's error
// answer (the services put a sentence or a small JSON object in the body),
// and drains the rest of a small body so the connection is reused. It
// keeps printable ASCII only, on one line.
func webpushReason(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "redirect not followed"
	case resp.StatusCode < 400:
		return ""
	}
	var b strings.Builder
	for _, c := range body {
		if b.Len() >= maxWebPushReason {
			b.WriteString("…")
			break
		}
		switch {
		case c >= ' ' && c < 0x7f:
			b.WriteByte(c)
		case c == '\n' || c == '\r' || c == '\t':
			b.WriteByte(' ')
		}
	}
	return strings.TrimSpace(b.String())
}

// webpushUrgency is RFC 8030's Urgency for n: high for the pushes a user
// acts on at once (a session proposal, tag 1100, and a session request, tag
// 1108), so a browser on low battery still wakes for them; normal for the
// rest.
func webpushUrgency(n *Notification) webpush.Urgency {
	for _, f := range n.Data {
		if f.Key == "tag" && (f.Value == "1100" || f.Value == "1108") {
			return webpush.UrgencyHigh
		}
	}
	return webpush.UrgencyNormal
}

// appendWebPushPayload appends the JSON object a Web Push carries: the
// members of the FCM data message of n (fcmData: Data, and "url" for
// KindVisible), and for KindVisible "title", "body" and "image" (FCM puts
// those in its notification; a service worker shows them with
// showNotification). Data wins over an added key, as with APNs.
func appendWebPushPayload(dst []byte, n *Notification) []byte {
	dst = append(dst, '{')
	first := true
	member := func(k, v string) {
		if first {
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, v)
			return
		}
		dst = appendMember(dst, k, v)
	}
	fcmData(n, member)
	if n.Kind == KindVisible {
		if !hasKey(n.Data, "title") {
			member("title", n.Title)
		}
		if !hasKey(n.Data, "body") {
			member("body", n.Body)
		}
		if n.ImageURL != "" && !hasKey(n.Data, keyImage) {
			member(keyImage, n.ImageURL)
		}
	}
	return append(dst, '}')
}

// webpushGuard is the Web Push transport's last check: a request whose URL
// the allow-list does not let through fails without a connection.
type webpushGuard struct {
	allowed *WebPushOrigins
	next    http.RoundTripper
}

func (g *webpushGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.allowed.Check(req.URL.String()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.next.RoundTrip(req)
}
