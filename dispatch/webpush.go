package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"push-server/internal/jsonstr"
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

// webpushSender pushes to browsers' push services (RFC 8030): aes128gcm
// encryption (RFC 8291) and a VAPID header (RFC 8292) signed once per push
// service origin (webpush_crypto.go says why not through webpush-go). It is
// safe for concurrent use.
type webpushSender struct {
	vapid   *vapidKey
	headers *vapidCache
	allowed *WebPushOrigins
	client  *http.Client
	policy  *retryPolicy
	ttl     string // the TTL header, whole seconds
	timeout time.Duration
	log     *loudLog
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
func newWebPushSender(cfg *Config, k *vapidKey, base http.RoundTripper, policy *retryPolicy, log *loudLog) (*webpushSender, error) {
	headers, err := newVAPIDCache(k)
	if err != nil {
		return nil, err
	}
	return &webpushSender{
		vapid:   k,
		headers: headers,
		allowed: cfg.WebPushAllowedOrigins,
		client: &http.Client{
			Transport:     &recordingTransport{next: &webpushGuard{allowed: cfg.WebPushAllowedOrigins, next: base}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			// No client timeout: Send's context bounds each push, retries
			// included, as for the other providers.
		},
		policy:  policy,
		ttl:     strconv.FormatInt(int64(cfg.WebPushTTL/time.Second), 10),
		timeout: cfg.Timeout,
		log:     log,
	}, nil
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
	plain := acquirePayload()
	defer releasePayload(plain)
	*plain = appendWebPushPayload((*plain)[:0], n)
	if len(*plain) > maxWebPushPlaintext {
		return fmt.Errorf("webpush: payload is %d bytes, the limit is %d (a %d-byte record with its encryption): %w",
			len(*plain), maxWebPushPlaintext, MaxPayloadSize, ErrPayloadTooLarge)
	}
	body := acquirePayload()
	defer releasePayload(body)
	if *body, err = encryptWebPush((*body)[:0], *plain, sub.p256dh, sub.auth); err != nil {
		return fmt.Errorf("webpush: cannot encrypt: %w", err)
	}
	u := sub.url
	auth, err := s.headers.header(sub.origin)
	if err != nil {
		return fmt.Errorf("webpush: %w", err)
	}
	urgency := webpushUrgency(n)

	ctx, cancel := withTimeout(ctx, s.timeout)
	defer cancel()
	err = s.policy.run(ctx, TypeWebPush, classifyWebPush, func(ctx context.Context) answer {
		var rec tryRecord
		req := &http.Request{
			Method: http.MethodPost,
			URL:    u,
			Host:   u.Host,
			Header: http.Header{
				"Authorization":    {auth},
				"Content-Encoding": {"aes128gcm"},
				"Content-Type":     {"application/octet-stream"},
				"Ttl":              {s.ttl},
				"Urgency":          {urgency},
			},
			Body:          io.NopCloser(bytes.NewReader(*body)),
			ContentLength: int64(len(*body)),
		}
		resp, err := s.client.Do(req.WithContext(withTryRecord(ctx, &rec)))
		if err != nil {
			return answer{err: cleanCause(err)}
		}
		defer resp.Body.Close()
		return answer{status: resp.StatusCode, reason: webpushReason(resp), retryAfter: rec.retryAfter}
	})
	if pe, ok := err.(*ProviderError); ok {
		pe.redactToken(token)
		pe.redactToken(sub.endpoint)
		pe.redactToken(u.EscapedPath()) // a push service quoting the path alone
		// or a capability in the query (Windows' /w/?token=…), whole or
		// a value alone; redactToken skips what is too short to matter.
		pe.redactToken(u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				pe.redactToken(v)
			}
		}
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
func webpushUrgency(n *Notification) string {
	for _, f := range n.Data {
		if f.Key == "tag" && (f.Value == "1100" || f.Value == "1108") {
			return "high"
		}
	}
	return "normal"
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
			dst = jsonstr.Append(dst, k)
			dst = append(dst, ':')
			dst = jsonstr.Append(dst, v)
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
