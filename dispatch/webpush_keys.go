package dispatch

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// This file is Web Push's input side (RFC 8030, 8291, 8292): what a client
// registers (a browser's PushSubscription), where the gateway may send it
// (WebPushOrigins) and the operator's or a tenant's VAPID key. The sender is
// in webpush.go.

// Web Push input errors. CheckWebPushSubscription's errors wrap
// ErrBadSubscription (the router answers 400 with field "token"); one for an
// endpoint outside the allow-list wraps ErrEndpointNotAllowed too.
var (
	// ErrBadSubscription means a webpush token is not a usable
	// PushSubscription: it does not parse, a key has the wrong length or is
	// not a point on P-256, or its endpoint is not an allowed push service.
	ErrBadSubscription = errors.New("dispatch: not a usable Web Push subscription")
	// ErrEndpointNotAllowed means a subscription's endpoint is not a push
	// service on the allow-list (WebPushOrigins): the gateway never sends
	// to it, as it would otherwise POST wherever a client asks.
	ErrEndpointNotAllowed = errors.New("dispatch: endpoint is not an allowed push service")
)

// WebPushBrowserHosts are the browsers' push services, always allowed (over
// https on the default port): Chrome's (FCM), Firefox's (autopush) and
// Safari's. Hosts under WebPushWindowsDomain, Edge's (WNS), are allowed too.
var WebPushBrowserHosts = []string{
	"fcm.googleapis.com",
	"updates.push.services.mozilla.com",
	"web.push.apple.com",
}

// WebPushWindowsDomain is the domain whose subdomains (wns2-….notify.windows.com)
// are Edge's push service.
const WebPushWindowsDomain = "notify.windows.com"

// WebPushOrigins is an allow-list of push services a subscription's endpoint
// may name: WebPushBrowserHosts, hosts under WebPushWindowsDomain, and the
// operator's extra hosts and origins (WEBPUSH_ALLOWED_ORIGINS). It is
// read-only after ParseWebPushOrigins and safe for concurrent use; a nil
// *WebPushOrigins allows the browsers' push services only.
type WebPushOrigins struct {
	// origins holds allowed origins as "scheme://host[:port]", lowercase,
	// without the scheme's default port.
	origins map[string]bool
}

// ParseWebPushOrigins parses WEBPUSH_ALLOWED_ORIGINS: comma-separated hosts
// ("push.example.com", meaning https on port 443) or origins
// ("https://push.example.com:8443", "http://127.0.0.1:9000"). An http
// origin is accepted only for a loopback host (mocks); a path, query, user
// info or fragment is refused. Empty entries are skipped; the error names
// the first bad entry.
func ParseWebPushOrigins(csv string) (*WebPushOrigins, error) {
	o := &WebPushOrigins{origins: make(map[string]bool)}
	for _, entry := range strings.Split(csv, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		s := entry
		if !strings.Contains(s, "://") {
			s = "https://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") || u.Hostname() == "" {
			return nil, fmt.Errorf("%q: want a host or an origin such as https://push.example.com[:port]", entry)
		}
		origin, ok := originKey(u)
		if !ok {
			return nil, fmt.Errorf("%q: want an https origin", entry)
		}
		if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%q: http is allowed for a loopback host only", entry)
		}
		o.origins[origin] = true
	}
	return o, nil
}

// originKey returns "scheme://host[:port]" of an http(s) URL, lowercase,
// without the scheme's default port; ok is false for another scheme.
func originKey(u *url.URL) (string, bool) {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme == "https" && port == "443", scheme == "http" && port == "80":
		port = ""
	case scheme != "https" && scheme != "http":
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, true
}

// Check returns nil when endpoint is an absolute URL of an allowed push
// service, else an error wrapping ErrEndpointNotAllowed. The error shows
// the endpoint's scheme and host only: the rest of the URL identifies the
// browser (RFC 8030 treats it as a capability), so it is kept out of every
// message.
func (o *WebPushOrigins) Check(endpoint string) error {
	_, _, err := o.check(endpoint)
	return err
}

// check is Check, also returning the parsed endpoint and its origin
// (originKey) when it is allowed, so the sender parses it once a push.
func (o *WebPushOrigins) check(endpoint string) (*url.URL, string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Opaque != "" || u.Hostname() == "" {
		return nil, "", fmt.Errorf("endpoint is not an absolute URL: %w", ErrEndpointNotAllowed)
	}
	origin, ok := originKey(u)
	if !ok {
		return nil, "", fmt.Errorf("endpoint scheme %q: %w", u.Scheme, ErrEndpointNotAllowed)
	}
	shown := origin // what messages may quote
	switch {
	case u.User != nil:
		return nil, "", fmt.Errorf("endpoint %s carries user info: %w", shown, ErrEndpointNotAllowed)
	case u.Fragment != "" || strings.Contains(endpoint, "#"):
		return nil, "", fmt.Errorf("endpoint %s carries a fragment: %w", shown, ErrEndpointNotAllowed)
	}
	if strings.HasPrefix(origin, "https://") {
		host := origin[len("https://"):]
		for _, h := range WebPushBrowserHosts {
			if host == h {
				return u, origin, nil
			}
		}
		if strings.HasSuffix(host, "."+WebPushWindowsDomain) {
			return u, origin, nil
		}
	}
	if o != nil && o.origins[origin] {
		return u, origin, nil
	}
	return nil, "", fmt.Errorf("endpoint %s: %w", shown, ErrEndpointNotAllowed)
}

// Origins returns the operator's extra origins, sorted, as
// "scheme://host[:port]" (the browsers' push services are not listed).
func (o *WebPushOrigins) Origins() []string {
	if o == nil {
		return nil
	}
	out := make([]string, 0, len(o.origins))
	for k := range o.origins {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// maxSubscriptionSize bounds a webpush token: a PushSubscription's JSON is a
// few hundred bytes (WNS endpoints are the longest, about 400).
const maxSubscriptionSize = 4096

// subscription is a parsed webpush token.
type subscription struct {
	endpoint string
	url      *url.URL // endpoint, parsed
	origin   string   // url's originKey: the VAPID JWT's aud
	p256dh   *ecdh.PublicKey
	auth     []byte // 16 bytes
}

// CheckWebPushSubscription validates a webpush token at registration: the
// JSON text of a browser's PushSubscription,
// {"endpoint":"https://…","keys":{"p256dh":"…","auth":"…"}} (other members,
// such as expirationTime, are ignored). p256dh must be the base64url of a
// 65-byte uncompressed point on P-256, auth of 16 bytes, and the endpoint an
// https URL of a push service that allowed lets through (nil: the browsers'
// push services only). Every error wraps ErrBadSubscription (an endpoint
// off the list ErrEndpointNotAllowed too); its text never quotes the
// endpoint's path or the keys.
func CheckWebPushSubscription(token string, allowed *WebPushOrigins) error {
	_, err := parseSubscription(token, allowed)
	return err
}

// parseSubscription is CheckWebPushSubscription's body; the sender parses
// each push's token with it too, so what registered is what is sent.
func parseSubscription(token string, allowed *WebPushOrigins) (*subscription, error) {
	if len(token) > maxSubscriptionSize {
		return nil, fmt.Errorf("subscription is %d bytes, the limit is %d: %w", len(token), maxSubscriptionSize, ErrBadSubscription)
	}
	var js struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(token), &js); err != nil {
		return nil, fmt.Errorf(`want a PushSubscription as JSON text, {"endpoint":…,"keys":{"p256dh":…,"auth":…}}: %w`, ErrBadSubscription)
	}
	if js.Endpoint == "" {
		return nil, fmt.Errorf("endpoint is missing: %w", ErrBadSubscription)
	}
	u, origin, err := allowed.check(js.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrBadSubscription)
	}
	s := &subscription{endpoint: js.Endpoint, url: u, origin: origin}
	point, err := decodeB64(js.Keys.P256dh)
	if err != nil || len(point) != 65 {
		return nil, fmt.Errorf("keys.p256dh: want the base64url of a 65-byte uncompressed P-256 point: %w", ErrBadSubscription)
	}
	if s.p256dh, err = ecdh.P256().NewPublicKey(point); err != nil {
		return nil, fmt.Errorf("keys.p256dh is not a point on P-256: %w", ErrBadSubscription)
	}
	if s.auth, err = decodeB64(js.Keys.Auth); err != nil || len(s.auth) != 16 {
		return nil, fmt.Errorf("keys.auth: want the base64url of 16 bytes: %w", ErrBadSubscription)
	}
	return s, nil
}

// decodeB64 decodes base64url, padded or not, and for good measure the
// standard alphabet, as webpush-go does: PushSubscription.toJSON gives
// unpadded base64url, but libraries that re-encode the keys differ.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// vapidKey is a parsed VAPID key pair.
type vapidKey struct {
	private *ecdh.PrivateKey
	public  string // base64url (unpadded) of the 65-byte uncompressed point
	subject string // VAPID_SUBJECT, "mailto:…" or "https:…"
}

// CheckVAPID checks a VAPID private key (the base64url of the 32-byte P-256
// scalar, as web-push tools print it) and subject (a mailto: or https: URL,
// RFC 8292's contact for the push service's operator) and returns the
// public key, base64url of the uncompressed point: the applicationServerKey
// browsers subscribe with. Errors are *CredentialError with Part
// PartVAPIDPrivateKey or PartVAPIDSubject; they never quote the key.
func CheckVAPID(privateKey, subject string) (publicKey string, err error) {
	k, err := parseVAPID(privateKey, subject, uploadNames)
	if err != nil {
		return "", err
	}
	return k.public, nil
}

// parseVAPID is CheckVAPID's body, naming the inputs with n.
func parseVAPID(privateKey, subject string, n *partNames) (*vapidKey, error) {
	if privateKey == "" {
		return nil, credErr(n.vapidKey, "required")
	}
	raw, err := decodeB64(strings.TrimSpace(privateKey))
	if err != nil || len(raw) != 32 {
		return nil, credErr(n.vapidKey, "want the base64url of a 32-byte P-256 private key")
	}
	priv, err := ecdh.P256().NewPrivateKey(raw)
	if err != nil {
		return nil, credErr(n.vapidKey, "not a valid P-256 private key")
	}
	if err := checkVAPIDSubject(subject); err != nil {
		return nil, &CredentialError{Part: n.vapidSubject, Err: err}
	}
	return &vapidKey{
		private: priv,
		public:  base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		subject: subject,
	}, nil
}

// maxVAPIDSubject bounds VAPID_SUBJECT: it rides in every push's JWT.
const maxVAPIDSubject = 256

// checkVAPIDSubject accepts a mailto: address or an https: URL with a host.
func checkVAPIDSubject(subject string) error {
	switch {
	case subject == "":
		return errors.New("required: a mailto: or https: contact for the push services")
	case len(subject) > maxVAPIDSubject:
		return fmt.Errorf("want at most %d bytes, got %d", maxVAPIDSubject, len(subject))
	}
	for i := 0; i < len(subject); i++ {
		if c := subject[i]; c <= ' ' || c >= 0x7f {
			return errors.New("want a mailto: or https: URL without spaces or control characters")
		}
	}
	switch {
	case strings.HasPrefix(subject, "mailto:"):
		addr := subject[len("mailto:"):]
		if at := strings.IndexByte(addr, '@'); at <= 0 || at == len(addr)-1 {
			return errors.New("want mailto:name@example.com")
		}
		return nil
	case strings.HasPrefix(subject, "https:"):
		u, err := url.Parse(subject)
		if err != nil || u.Hostname() == "" {
			return errors.New("want https://host…")
		}
		return nil
	}
	return errors.New("want a mailto: or https: URL (RFC 8292)")
}

// GenerateVAPIDKeys returns a new VAPID key pair: the private key as the
// base64url of its 32-byte scalar (VAPID_PRIVATE_KEY), the public key as
// the base64url of its uncompressed point (the applicationServerKey).
func GenerateVAPIDKeys() (privateKey, publicKey string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("cannot generate a P-256 key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k.Bytes()),
		base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}
