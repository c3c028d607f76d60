package dispatchtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ServeProjectID is the FCM project of the service account Serve prints.
const ServeProjectID = "mock-project"

// Serve is ServeMocks with the Web Push mock on a free port.
func Serve(ctx context.Context, w io.Writer, apnsAddr, fcmAddr string, apnsTLS bool) error {
	return ServeMocks(ctx, w, ServeOptions{APNsAddr: apnsAddr, FCMAddr: fcmAddr, APNsTLS: apnsTLS})
}

// ServeOptions say where ServeMocks' mocks listen; "" picks a free port on
// 127.0.0.1.
type ServeOptions struct {
	APNsAddr, FCMAddr, WebPushAddr string
	// APNsTLS serves APNs over TLS (self-signed) instead of h2c.
	APNsTLS bool
}

// ServeMocks runs an APNs mock (TLS when APNsTLS, else h2c), an FCM mock
// and a Web Push mock (plain HTTP on loopback) until ctx ends, then closes
// them. It first writes the settings that point push-server at them to w,
// one shell assignment a line (APNS_URL, APNS_SANDBOX_URL, FCM_URL,
// FCM_V1_CREDENTIALS, TENANT_FCM_TOKEN_URIS, WEBPUSH_ALLOWED_ORIGINS, and
// with TLS the mock's certificate as APNS_MOCK_CA_PEM, last). The mocks run
// in open APNs mode (any provider credentials are accepted) and record
// nothing, so a long load test does not grow memory; the Web Push mock
// keeps its last 100 messages for GET /messages, and makes subscriptions
// on POST /subscribe (see WebPushService).
func ServeMocks(ctx context.Context, w io.Writer, opts ServeOptions) error {
	apnsAddr, fcmAddr, apnsTLS := opts.APNsAddr, opts.FCMAddr, opts.APNsTLS
	apns, err := NewAPNs(APNsOptions{Addr: apnsAddr, TLS: apnsTLS})
	if err != nil {
		return err
	}
	fcm, err := NewFCM(FCMOptions{Addr: fcmAddr})
	if err != nil {
		return errors.Join(err, apns.Close())
	}
	wp, err := NewWebPushService(WebPushOptions{Addr: opts.WebPushAddr})
	if err != nil {
		return errors.Join(err, fcm.Close(), apns.Close())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "APNS_URL=%s\n", apns.URL())
	fmt.Fprintf(&b, "APNS_SANDBOX_URL=%s\n", apns.URL())
	fmt.Fprintf(&b, "FCM_URL=%s\n", fcm.URL())
	// The JSON has no single quotes (its PEM newlines are \n escapes), so
	// single-quoting makes the line safe to source in a shell.
	fmt.Fprintf(&b, "FCM_V1_CREDENTIALS='%s'\n", fcm.ServiceAccountJSON(ServeProjectID))
	// Tenants' service accounts may use the mock's token endpoint only when
	// the operator allows it (multi-tenant mode; ignored otherwise).
	fmt.Fprintf(&b, "TENANT_FCM_TOKEN_URIS=%s\n", fcm.TokenURL())
	// Subscriptions come from POST <origin>/subscribe; the gateway sends
	// to their endpoints only when the origin is allowed.
	fmt.Fprintf(&b, "WEBPUSH_ALLOWED_ORIGINS=%s\n", wp.Origin())
	if apnsTLS {
		fmt.Fprintf(&b, "APNS_MOCK_CA_PEM='%s'\n", strings.TrimSpace(string(apns.CertPEM())))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return errors.Join(fmt.Errorf("cannot print mock settings: %w", err), wp.Close(), fcm.Close(), apns.Close())
	}
	<-ctx.Done()
	return errors.Join(wp.Close(), fcm.Close(), apns.Close())
}
