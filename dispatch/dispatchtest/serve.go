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

// Serve runs an APNs mock on apnsAddr (TLS when apnsTLS, else h2c) and an FCM
// mock on fcmAddr until ctx ends, then closes both. It first writes the
// settings that point push-server at them to w, one shell assignment a line
// (APNS_URL, APNS_SANDBOX_URL, FCM_URL, FCM_V1_CREDENTIALS,
// TENANT_FCM_TOKEN_URIS, and with TLS the mock's certificate as
// APNS_MOCK_CA_PEM). The mocks run in open APNs mode
// (any provider credentials are accepted) and record nothing, so a long load
// test does not grow memory. "" addresses pick free ports on 127.0.0.1.
func Serve(ctx context.Context, w io.Writer, apnsAddr, fcmAddr string, apnsTLS bool) error {
	apns, err := NewAPNs(APNsOptions{Addr: apnsAddr, TLS: apnsTLS})
	if err != nil {
		return err
	}
	fcm, err := NewFCM(FCMOptions{Addr: fcmAddr})
	if err != nil {
		return errors.Join(err, apns.Close())
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
	if apnsTLS {
		fmt.Fprintf(&b, "APNS_MOCK_CA_PEM='%s'\n", strings.TrimSpace(string(apns.CertPEM())))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return errors.Join(fmt.Errorf("cannot print mock settings: %w", err), fcm.Close(), apns.Close())
	}
	<-ctx.Done()
	return errors.Join(fcm.Close(), apns.Close())
}
