package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

const (
	// apnsExpiration is how long APNs keeps trying to reach a device that
	// is offline. With no expiration APNs tries once and drops the push,
	// so a wallet that is briefly offline would miss a signing request.
	// Past a day the message is stale: the relay itself keeps messages
	// (and we keep dedup records, DEDUP_TTL) for about as long.
	apnsExpiration = 24 * time.Hour
	// apnsMaxCollapseID is Apple's limit on apns-collapse-id.
	apnsMaxCollapseID = 64
	// APNs priorities: 10 shows at once, 5 saves power; Apple rejects 10
	// for a background (content-available only) push.
	apnsPriorityHigh = 10
	apnsPriorityLow  = 5
)

// apnsSender pushes through one APNs host. It is safe for concurrent use:
// apns2.Client is, and the sender holds no other mutable state but its
// loudLog.
type apnsSender struct {
	name   string // TypeAPNS or TypeAPNSSandbox
	topic  string
	client *apns2.Client
	policy *retryPolicy
	// timeout bounds one Send, all tries and waits included.
	timeout time.Duration
	log     *loudLog
}

// Send pushes n to the device token. See the Sender contract.
func (s *apnsSender) Send(ctx context.Context, token string, n *Notification) error {
	if !validKind(n.Kind) {
		return fmt.Errorf("%s: cannot push notification kind %d", s.name, n.Kind)
	}
	buf := acquirePayload()
	defer releasePayload(buf)
	*buf = appendAPNSPayload((*buf)[:0], n)
	if len(*buf) > MaxPayloadSize {
		return fmt.Errorf("%s: payload is %d bytes, the limit is %d: %w", s.name, len(*buf), MaxPayloadSize, ErrPayloadTooLarge)
	}
	note := notePool.Get().(*apns2.Notification)
	defer releaseNote(note)
	*note = apns2.Notification{
		// apns2 builds the URL as host + "/3/device/" + token: escaped, a
		// token can only ever be one path segment, whatever was stored
		// (registration refuses such tokens, but not those stored before
		// it did). A hex token comes back unchanged, without allocating.
		DeviceToken: url.PathEscape(token),
		Topic:       s.topic,
		Expiration:  time.Now().Add(apnsExpiration),
		// apns2 runs Payload through json.Marshal, which copies it: buf
		// goes back to the pool when Send returns, after every try.
		Payload: *buf,
	}
	if n.MessageID != "" {
		note.ApnsID = apnsID(n.MessageID)
	}
	switch n.Kind {
	case KindVisible:
		note.PushType, note.Priority = apns2.PushTypeAlert, apnsPriorityHigh
		// Two pushes of one message (a relay retry racing its original)
		// show as one notification.
		if len(n.MessageID) <= apnsMaxCollapseID {
			note.CollapseID = n.MessageID
		}
	case KindEncrypted:
		note.PushType, note.Priority = apns2.PushTypeAlert, apnsPriorityHigh
	case KindRaw:
		note.PushType, note.Priority = apns2.PushTypeBackground, apnsPriorityLow
	}

	ctx, cancel := withTimeout(ctx, s.timeout)
	defer cancel()
	err := s.policy.run(ctx, s.name, classifyAPNs, func(ctx context.Context) answer {
		tc := newTryContext(ctx)
		resp, err := s.client.PushWithContext(tc, note)
		if err != nil {
			return answer{err: cleanCause(err)}
		}
		return answer{status: resp.StatusCode, reason: resp.Reason, retryAfter: tc.rec.retryAfter}
	})
	if pe, ok := err.(*ProviderError); ok {
		pe.redactToken(token)
		s.log.report(pe)
	}
	return err
}

// notePool holds apns2 notifications: PushWithContext keeps no reference
// to one once it returns (it marshals the payload and copies the strings
// into the request), so each is reused instead of escaping per push.
var notePool = sync.Pool{New: func() any { return new(apns2.Notification) }}

func releaseNote(n *apns2.Notification) {
	*n = apns2.Notification{} // drop the payload buffer, itself pooled
	notePool.Put(n)
}

// newAPNsClient builds the long-lived apns2 client of one host. The
// transport is shared by the senders of one scheme: http2.Transport keeps
// one connection pool per host, and one transport means one place to close.
func newAPNsClient(host string, t http.RoundTripper, cr *credentials, tok *token.Token) *apns2.Client {
	c := &apns2.Client{
		Host: host,
		// No http.Client timeout: Send's context bounds each push, and a
		// client-wide timeout would also cut a healthy stream short.
		HTTPClient:  &http.Client{Transport: &recordingTransport{next: t}},
		Certificate: cr.apnsCert,
	}
	if tok != nil {
		c.Token = tok
	}
	return c
}
