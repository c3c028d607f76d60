package dispatchtest_test

// The mocks are only worth their validation if the clients production uses
// pass it and read their answers; these tests drive them with those clients
// (sideshow/apns2, the Firebase Admin SDK and its Google OAuth stack). Test
// files only: the package itself stays stdlib-only.

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
	"google.golang.org/api/option"

	"push-server/dispatch/dispatchtest"
)

func TestAPNsWithApns2(t *testing.T) {
	const keyID, teamID = "KEY1234567", "TEAM765432"
	key := newECKey(t)
	newClient := func(t *testing.T, m *dispatchtest.APNs) *apns2.Client {
		c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID})
		c.Host = m.URL()
		tr := c.HTTPClient.Transport.(*http2.Transport)
		if m.RootCAs() != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: m.RootCAs()}
		} else {
			tr.AllowHTTP = true
			tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			tr.DialTLS = nil
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "h2c", true: "tls"}[useTLS], func(t *testing.T) {
			m := dispatchtest.StartAPNs(t, useTLS)
			m.TrustKey(keyID, teamID, &key.PublicKey)
			c := newClient(t, m)
			n := &apns2.Notification{
				DeviceToken: testToken,
				Topic:       testTopic,
				Priority:    apns2.PriorityHigh,
				PushType:    apns2.PushTypeAlert,
				Payload:     payload.NewPayload().AlertTitle("Signature required").MutableContent().Custom("topic", "t"),
			}
			res, err := c.Push(n)
			if err != nil || res.StatusCode != 200 || !uuidRE.MatchString(res.ApnsID) {
				t.Fatalf("apns2 push: %+v, %v", res, err)
			}

			m.Script(testToken, dispatchtest.Answer{Reason: apns2.ReasonUnregistered})
			res, err = c.Push(n)
			if err != nil || res.StatusCode != 410 || res.Reason != apns2.ReasonUnregistered || res.Timestamp.IsZero() {
				t.Fatalf("scripted Unregistered: %+v, %v", res, err)
			}

			wrongTeam := newClient(t, m)
			wrongTeam.Token = &token.Token{AuthKey: key, KeyID: keyID, TeamID: "OTHER"}
			if res, err := wrongTeam.Push(n); err != nil || res.StatusCode != 403 || res.Reason != apns2.ReasonInvalidProviderToken {
				t.Fatalf("wrong team: %+v, %v", res, err)
			}
		})
	}

	t.Run("certificate", func(t *testing.T) {
		pool, cert := newCA(t)
		m := dispatchtest.StartAPNs(t, true)
		m.TrustClientCerts(pool)
		c := apns2.NewClient(cert)
		c.Host = m.URL()
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig.RootCAs = m.RootCAs()
		t.Cleanup(c.CloseIdleConnections)
		res, err := c.Push(&apns2.Notification{DeviceToken: testToken, Topic: testTopic, Payload: []byte(`{"aps":{"alert":"hi"}}`)})
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("apns2 certificate push: %+v, %v", res, err)
		}
	})
}

func TestFCMWithFirebaseSDK(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, nil,
		option.WithCredentialsJSON(m.ServiceAccountJSON(testProject)),
		option.WithEndpoint(m.URL()+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := &messaging.Message{
		Token:   testFCMToken,
		Data:    map[string]string{"topic": "t", "blob": "b"},
		Android: &messaging.AndroidConfig{Priority: "high"},
	}
	for range 3 {
		if _, err := c.Send(ctx, msg); err != nil {
			t.Fatalf("firebase Send: %v", err)
		}
	}
	if _, err := c.SendDryRun(ctx, msg); err != nil {
		t.Fatalf("firebase SendDryRun: %v", err)
	}
	if m.Count() != 3 || m.TokenFetches() != 1 {
		t.Fatalf("Count %d, TokenFetches %d; want 3 sends on one access token", m.Count(), m.TokenFetches())
	}

	for _, tc := range []struct {
		reason string
		is     func(error) bool
	}{
		{"UNREGISTERED", messaging.IsUnregistered},
		{"QUOTA_EXCEEDED", messaging.IsQuotaExceeded},
		{"SENDER_ID_MISMATCH", messaging.IsSenderIDMismatch},
		{"INVALID_ARGUMENT", messaging.IsInvalidArgument},
		{"THIRD_PARTY_AUTH_ERROR", messaging.IsThirdPartyAuthError},
	} {
		m.Script(testFCMToken, dispatchtest.Answer{Reason: tc.reason})
		if _, err := c.Send(ctx, msg); !tc.is(err) {
			t.Errorf("scripted %s: the SDK returned %v, which it does not classify as %s", tc.reason, err, tc.reason)
		}
	}

	// Another project's credentials are refused, as Google refuses them.
	other, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: "other-project"},
		option.WithCredentialsJSON(m.ServiceAccountJSON(testProject)),
		option.WithEndpoint(m.URL()+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	oc, err := other.Messaging(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Send(ctx, msg); !errorutils.IsPermissionDenied(err) {
		t.Fatalf("a send to a project the service account does not belong to: %v, want PERMISSION_DENIED", err)
	}
}
