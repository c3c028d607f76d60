package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// fcmScope is the OAuth scope of the FCM HTTP v1 API.
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// fcmSender pushes through FCM HTTP v1 with the Firebase Admin SDK. It is
// safe for concurrent use: messaging.Client is.
type fcmSender struct {
	client  *messaging.Client
	policy  *retryPolicy
	timeout time.Duration
	log     *loudLog
	// redirects, when set, guards the token fetch's redirects; it tells a
	// fetch refused for redirecting off the allow-list from an outage.
	redirects *redirectGuard
	// refused, when set, says why no push may be sent (a token_uri outside
	// Config.FCMTokenURIs); client is nil then.
	refused error
}

// newFCMSender builds the one messaging client of the process.
//
// Authentication is ours, not the SDK's: an oauth2 transport from
// google.JWTConfigFromJSON, which signs the JWT grant for the token_uri the
// service-account JSON names (so a mock token endpoint works) and reuses
// the access token until it expires. It is handed to the SDK inside an
// http.Client with option.WithHTTPClient, and with that option the SDK
// (google.golang.org/api/transport/http.NewClient) uses the client as it is
// and adds no credentials of its own. FCM_URL goes in through
// option.WithEndpoint: the SDK then sends to {FCM_URL}/v1/projects/{id}/messages:send.
//
// With cfg.FCMTokenURIs set, the token_uri (as oauth2 resolves it, Google's
// when empty) must be on that list, and token fetches follow redirects only
// to listed endpoints. A token_uri off the list gives a sender that refuses
// every push without a request: the list may have been narrowed since the
// tenant uploaded, and the tenant's other provider must keep working.
func newFCMSender(cfg *Config, sa *serviceAccount, base http.RoundTripper, policy *retryPolicy, log *loudLog) (*fcmSender, error) {
	jc, err := google.JWTConfigFromJSON(cfg.FCMCredentials, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("FCM_V1_CREDENTIALS: %w", err)
	}
	// Token fetches do not see the push's context (oauth2 fetches with the
	// context the source was made with), so their client gets the push
	// timeout as its own bound.
	tokenClient := &http.Client{Transport: base, Timeout: cfg.Timeout}
	var guard *redirectGuard
	if allowed := cfg.FCMTokenURIs; allowed != nil {
		if err := allowed.Check(jc.TokenURL); err != nil {
			return &fcmSender{timeout: cfg.Timeout, log: log, refused: err}, nil
		}
		guard = &redirectGuard{allowed: allowed, next: base}
		tokenClient.Transport, tokenClient.CheckRedirect = guard, guard.checkRedirect
	}
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient)
	hc := &http.Client{Transport: &recordingTransport{
		next:   &oauth2.Transport{Source: jc.TokenSource(tokenCtx), Base: base},
		buffer: true,
	}}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if cfg.FCMURL != "" {
		opts = append(opts, option.WithEndpoint(baseURL(cfg.FCMURL)+"/v1"))
	}
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sa.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("FCM_V1_CREDENTIALS: cannot set up Firebase: %w", err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("FCM_V1_CREDENTIALS: cannot set up Firebase messaging: %w", err)
	}
	return &fcmSender{client: mc, policy: policy, timeout: cfg.Timeout, log: log, redirects: guard}, nil
}

// Send pushes n to the registration token. See the Sender contract.
//
// The SDK retries a 503 or a transport error by itself, sleeping 0, 1, 2
// and 4 s (longer with Retry-After) between up to 5 requests. Two things
// keep that inside our policy: Send's context carries the deadline
// Config.Timeout, which ends any SDK sleep or request when it passes; and
// each try runs on its own context that recordingTransport cancels on a
// 503 or a transport error, so the SDK gives up after one request and our
// loop (MaxAttempts, RetryDelay) decides about the next.
func (s *fcmSender) Send(ctx context.Context, token string, n *Notification) error {
	if s.refused != nil {
		// We refuse these credentials, as FCM refuses bad ones:
		// ErrCredentialsRejected, so the router suspends the tenant's FCM,
		// and nothing is fetched.
		pe := &ProviderError{Provider: TypeFCM, Err: ErrCredentialsRejected, Cause: fmt.Errorf("not sent: %w", s.refused)}
		s.log.report(pe)
		return pe
	}
	if !validKind(n.Kind) {
		return fmt.Errorf("fcm: cannot push notification kind %d", n.Kind)
	}
	if size := fcmPayloadSize(n); size > MaxPayloadSize {
		return fmt.Errorf("fcm: payload is %d bytes, the limit is %d: %w", size, MaxPayloadSize, ErrPayloadTooLarge)
	}
	msg := fcmMessage(token, n, time.Now())

	ctx, cancel := withTimeout(ctx, s.timeout)
	defer cancel()
	var refused error // the SDK refused the message without sending it
	err := s.policy.run(ctx, TypeFCM, classifyFCM, func(ctx context.Context) answer {
		tryCtx, stop := context.WithCancel(ctx)
		defer stop()
		rec := tryRecord{stop: stop}
		_, err := s.client.Send(withTryRecord(tryCtx, &rec), msg)
		switch {
		case err == nil:
			return answer{status: http.StatusOK}
		case rec.requests == 0:
			// Nothing went out: the SDK's own validation refused the
			// message. Status -1 is no provider status, so run stops
			// without a retry; the error is replaced below.
			refused = err
			return answer{status: -1}
		case rec.err != nil:
			if rerr := s.redirects.refusedRedirect(); rerr != nil {
				// The token fetch was led off the allow-list: ours to fix.
				return answer{err: fmt.Errorf("token fetch redirected: %w (%w)", rerr, cleanCause(rec.err))}
			}
			return answer{err: cleanCause(rec.err)}
		}
		reason, message := fcmReason(err)
		return answer{status: rec.status, reason: reason, message: message, retryAfter: rec.retryAfter}
	})
	if refused != nil {
		// Our message broke a rule the SDK checks before sending: our bug.
		return fmt.Errorf("fcm: the Firebase SDK refused the message: %w", refused)
	}
	if pe, ok := err.(*ProviderError); ok {
		pe.redactToken(token)
		s.log.report(pe)
	}
	return err
}

// fcmReason names an FCM error: its FcmError code when the answer carried
// one, else its canonical status. message is the provider's text.
func fcmReason(err error) (reason, message string) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The try was stopped on a 503: the SDK returns the context error.
		return "", ""
	}
	message = err.Error()
	switch {
	case messaging.IsUnregistered(err):
		return fcmUnregistered, message
	case messaging.IsSenderIDMismatch(err):
		return fcmSenderIDMismatch, message
	case messaging.IsThirdPartyAuthError(err):
		return fcmThirdPartyAuth, message
	case messaging.IsQuotaExceeded(err):
		return fcmQuotaExceeded, message
	case messaging.IsUnavailable(err):
		return fcmUnavailable, message
	case messaging.IsInternal(err):
		return fcmInternal, message
	case messaging.IsInvalidArgument(err), errorutils.IsInvalidArgument(err):
		return fcmInvalidArgument, message
	case errorutils.IsUnauthenticated(err):
		return fcmUnauthenticated, message
	case errorutils.IsPermissionDenied(err):
		return fcmPermissionDenied, message
	case errorutils.IsResourceExhausted(err):
		return fcmResourceExhausted, message
	case errorutils.IsUnavailable(err):
		return fcmUnavailable, message
	case errorutils.IsInternal(err):
		return fcmInternal, message
	}
	return "", message
}

// fcmMessage translates n into an FCM v1 message. Every push is Android
// priority "high" (the spec; a normal-priority data message can wait for
// the device's next maintenance window). Only KindVisible carries a
// notification; the other kinds are data messages the app handles. The
// apns block mirrors what the APNs sender sends, for iOS apps registered
// through FCM: FCM copies data into the APNs payload as custom keys.
func fcmMessage(token string, n *Notification, now time.Time) *messaging.Message {
	ttl := apnsExpiration
	msg := &messaging.Message{
		Token:   token,
		Data:    make(map[string]string, len(n.Data)+1),
		Android: &messaging.AndroidConfig{Priority: "high", TTL: &ttl},
	}
	fcmData(n, func(k, v string) { msg.Data[k] = v })
	aps := &messaging.Aps{}
	headers := map[string]string{
		"apns-expiration": strconv.FormatInt(now.Add(apnsExpiration).Unix(), 10),
	}
	switch n.Kind {
	case KindVisible:
		image := n.ImageURL
		if image != "" && !validImageURL(image) {
			// The SDK refuses the whole message for a bad image URL; a
			// notification without its picture beats none.
			image = ""
		}
		msg.Notification = &messaging.Notification{Title: n.Title, Body: n.Body, ImageURL: image}
		aps.Alert = &messaging.ApsAlert{Title: n.Title, Body: n.Body}
		aps.Sound = "default"
		aps.MutableContent = image != ""
		headers["apns-push-type"], headers["apns-priority"] = "alert", "10"
		if n.MessageID != "" && len(n.MessageID) <= apnsMaxCollapseID {
			headers["apns-collapse-id"] = n.MessageID
		}
	case KindEncrypted:
		aps.Alert = &messaging.ApsAlert{Title: encryptedTitle, Body: encryptedBody}
		aps.MutableContent = true
		headers["apns-push-type"], headers["apns-priority"] = "alert", "10"
	case KindRaw:
		aps.ContentAvailable = true
		headers["apns-push-type"], headers["apns-priority"] = "background", "5"
	}
	msg.APNS = &messaging.APNSConfig{Headers: headers, Payload: &messaging.APNSPayload{Aps: aps}}
	return msg
}

// validImageURL applies the SDK's own check of an image URL.
func validImageURL(s string) bool {
	_, err := url.ParseRequestURI(s)
	return err == nil
}
