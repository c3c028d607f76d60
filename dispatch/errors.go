package dispatch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// This file is the one place where a provider's answer becomes a sentinel
// and a retry decision. Rules:
//   - ErrTokenDead only when the provider says so about the token: a wrong
//     guess deletes a working client.
//   - ErrMisconfigured when the provider rejects what is ours (credentials,
//     topic, trust roots): every push fails the same way until an operator
//     acts, so retrying is pointless and it is logged (rate-limited).
//   - ErrCredentialsRejected (an ErrMisconfigured) only when the answer
//     says the host refused the credentials themselves: it suspends a
//     tenant's provider for that host, so an answer that one device token
//     can cause must never be it (any client may register any token, and
//     choose the sandbox host). docs/tenants.md lists every row with its
//     source.
//   - 429, 5xx and no answer are retried, then ErrUnavailable.
//   - Any other 4xx is not retried (the same request gets the same answer)
//     and is reported as ErrUnavailable, so the router answers 502
//     provider_unavailable with the provider's status and reason in the
//     description. It is never ErrTokenDead: we cannot tell that the token
//     is at fault.

// Reasons that dispatch treats specially. APNs spells them in CamelCase,
// FCM in upper snake case (its FcmError code or canonical status).
const (
	reasonTooManyProviderTokenUpdates = "TooManyProviderTokenUpdates"
	reasonIdleTimeout                 = "IdleTimeout"

	fcmUnregistered      = "UNREGISTERED"
	fcmSenderIDMismatch  = "SENDER_ID_MISMATCH"
	fcmInvalidArgument   = "INVALID_ARGUMENT"
	fcmThirdPartyAuth    = "THIRD_PARTY_AUTH_ERROR"
	fcmUnauthenticated   = "UNAUTHENTICATED"
	fcmPermissionDenied  = "PERMISSION_DENIED"
	fcmQuotaExceeded     = "QUOTA_EXCEEDED"
	fcmResourceExhausted = "RESOURCE_EXHAUSTED"
	fcmUnavailable       = "UNAVAILABLE"
	fcmInternal          = "INTERNAL"
)

// classifyAPNs maps one APNs answer to a sentinel and whether to try again.
// Reasons: Apple's "Handling notification responses from APNs".
func classifyAPNs(a answer) (error, bool) {
	if a.status == 0 {
		return classifyTransport(a.err)
	}
	switch a.status {
	case http.StatusGone: // Unregistered, ExpiredToken: the token is inactive for good
		return ErrTokenDead, false
	case http.StatusRequestEntityTooLarge:
		return ErrPayloadTooLarge, false
	case http.StatusForbidden:
		switch a.reason {
		case "InvalidProviderToken", "ExpiredProviderToken", "MissingProviderToken",
			"BadCertificate", "BadCertificateEnvironment", "BadEnvironmentKeyInToken":
			// This host refuses our provider token or certificate
			// (ExpiredProviderToken: signed too long ago, or by a clock
			// that is off); the other APNs host may accept them.
			return ErrCredentialsRejected, false
		}
		// Forbidden ("the specified action is not allowed"), a reason
		// Apple adds later: ours to look at, not proof that the
		// credentials are refused.
		return ErrMisconfigured, false
	case http.StatusTooManyRequests:
		if a.reason == reasonTooManyProviderTokenUpdates {
			// Our token changes too often (several instances sharing a key,
			// or restarts in a loop). Retrying within seconds cannot help
			// and it is not the device's fault: unavailable, no retry, and
			// logged like a misconfiguration. Not ErrMisconfigured: that
			// would suspend a tenant's APNs over a rate limit that clears
			// by itself.
			return ErrUnavailable, false
		}
		return ErrUnavailable, true // TooManyRequests to this device
	case http.StatusBadRequest:
		switch a.reason {
		case "BadDeviceToken", "DeviceTokenNotForTopic":
			return ErrTokenDead, false
		case "BadTopic", "TopicDisallowed", "MissingTopic":
			// APNS_TOPIC is wrong for our credentials: every push fails.
			return ErrMisconfigured, false
		case reasonIdleTimeout:
			return ErrUnavailable, true
		}
		return ErrUnavailable, false
	}
	if a.status >= 500 {
		return ErrUnavailable, true
	}
	return ErrUnavailable, false
}

// classifyFCM maps one FCM HTTP v1 answer to a sentinel and whether to try
// again. Codes: firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode.
func classifyFCM(a answer) (error, bool) {
	if a.status == 0 {
		return classifyTransport(a.err)
	}
	switch a.reason {
	case fcmUnregistered:
		return ErrTokenDead, false
	case fcmSenderIDMismatch:
		// The token belongs to another Firebase project: it will never
		// work with our credentials, but every other token does. Treating
		// it as ErrMisconfigured would let one client registering a
		// foreign token suspend a tenant's FCM.
		return ErrTokenDead, false
	case fcmThirdPartyAuth:
		// The APNs credentials or web push key uploaded to the Firebase
		// project were refused for this token: the project's setup, but
		// one iOS or web token (of another app, or the sandbox) can cause
		// it too, so it fails the send and suspends nothing.
		return ErrMisconfigured, false
	case fcmUnauthenticated, fcmPermissionDenied:
		// Our OAuth access token is refused, or the service account may
		// not send for its project. Per-token refusals (SENDER_ID_MISMATCH,
		// THIRD_PARTY_AUTH_ERROR) carry their own code, matched above.
		return ErrCredentialsRejected, false
	case fcmQuotaExceeded, fcmResourceExhausted, fcmUnavailable, fcmInternal:
		return ErrUnavailable, true
	case fcmInvalidArgument:
		msg := strings.ToLower(a.message)
		if strings.Contains(msg, "registration token") {
			// "The registration token is not a valid FCM registration token"
			return ErrTokenDead, false
		}
		if strings.Contains(msg, "too big") || strings.Contains(msg, "too large") {
			return ErrPayloadTooLarge, false
		}
	}
	switch {
	case a.status == http.StatusUnauthorized, a.status == http.StatusForbidden:
		return ErrMisconfigured, false
	case a.status == http.StatusRequestEntityTooLarge:
		return ErrPayloadTooLarge, false
	case a.status == http.StatusTooManyRequests, a.status >= 500:
		return ErrUnavailable, true
	}
	return ErrUnavailable, false
}

// classifyWebPush maps one push service's answer to a sentinel and whether
// to try again. Statuses: RFC 8030 section 5 and 8.3, RFC 8292 section 4.
func classifyWebPush(a answer) (error, bool) {
	if a.status == 0 {
		if errors.Is(a.err, ErrEndpointNotAllowed) {
			// Our allow-list refused the request (narrowed since the
			// client registered): nothing was sent, and the operator's
			// choice is no sign that the subscription is dead.
			return ErrMisconfigured, false
		}
		return classifyTransport(a.err)
	}
	switch a.status {
	case http.StatusNotFound, http.StatusGone:
		// The subscription expired or the user revoked it.
		return ErrTokenDead, false
	case http.StatusForbidden:
		// RFC 8292 section 4.2: the VAPID key is not the one the
		// subscription was made with. Every other subscription made with
		// our key works, so it is this subscription's end, not a reason to
		// suspend anything: a client may register a subscription made for
		// another server.
		return ErrTokenDead, false
	case http.StatusUnauthorized:
		// RFC 8292 section 4.2: the push service refused our VAPID
		// authorisation itself (key or JWT), for every subscription.
		return ErrCredentialsRejected, false
	case http.StatusBadRequest:
		// A malformed request: ours to look at, but a subscription's
		// endpoint can provoke it too, so it suspends nothing.
		return ErrMisconfigured, false
	case http.StatusRequestEntityTooLarge:
		return ErrPayloadTooLarge, false
	case http.StatusTooManyRequests:
		return ErrUnavailable, true
	}
	if a.status >= 500 {
		return ErrUnavailable, true
	}
	return ErrUnavailable, false
}

// classifyTransport handles a try that got no HTTP answer. Most such
// failures pass (connection refused, reset, timeout): retry. A failure
// about trust is ours and does not pass: the provider's certificate is not
// trusted by our roots (RootCAs), the provider's TLS stack rejected our
// client certificate, or the OAuth token endpoint refused our service
// account's assertion.
func classifyTransport(err error) (error, bool) {
	if errors.Is(err, ErrTokenURINotAllowed) {
		// The service account names (or its endpoint redirects to) a
		// token endpoint off the allow-list: we refuse these credentials.
		return ErrCredentialsRejected, false
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
			re.Response.StatusCode != http.StatusTooManyRequests {
			// The token endpoint refused the service account's signed
			// grant (a deleted or disabled key): UNAUTHENTICATED one step
			// earlier.
			return ErrCredentialsRejected, false
		}
		return ErrUnavailable, true
	}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		// Our trust roots (the operator's) do not accept the host: no
		// tenant's credentials are at fault.
		return ErrMisconfigured, false
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 42, 43, 44, 45, 46, 48, 49, 116:
			// bad_certificate, unsupported_certificate, certificate_revoked,
			// certificate_expired, certificate_unknown, unknown_ca,
			// access_denied, certificate_required: the server refused the
			// client certificate we presented (or did not get one), as
			// APNs' BadCertificate would.
			return ErrCredentialsRejected, false
		}
	}
	return ErrUnavailable, true
}

// loudLog logs a provider's rejection of our own setup at most once per
// minute: a misconfigured provider fails every push, and one line per push
// would drown the log. It is safe for concurrent use.
type loudLog struct {
	logger *slog.Logger
	last   atomic.Int64 // unix nanoseconds of the last line
}

// loudLogEvery is the minimum time between two lines of one loudLog.
const loudLogEvery = time.Minute

// report logs pe when it is the operator's to fix (ErrMisconfigured, or
// APNs saying our token changes too often) and the last line is older than
// loudLogEvery.
func (l *loudLog) report(pe *ProviderError) {
	if !errors.Is(pe, ErrMisconfigured) && pe.Reason != reasonTooManyProviderTokenUpdates {
		return
	}
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(loudLogEvery) || !l.last.CompareAndSwap(last, now) {
		return
	}
	msg := "push provider rejects this server's setup; pushes to it fail until fixed"
	if errors.Is(pe, ErrCredentialsRejected) {
		// Same opening as the other line, so that one search finds both.
		msg = "push provider rejects this server's setup: this host refuses its credentials; every push to this host fails until they are fixed"
	}
	l.logger.Error(msg, "provider", pe.Provider, "status", pe.Status, "reason", pe.Reason, "error", pe.Error())
}
