package dispatchtest_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
)

func TestServe(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "h2c"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := dispatchtest.Serve(ctx, pw, "", "", useTLS)
				pw.Close()
				done <- err
			}()

			// Serve prints shell assignments, the certificate (TLS) last and
			// over several lines.
			settings := map[string]string{}
			var pemLines []string
			sc := bufio.NewScanner(pr)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if pemLines != nil {
					pemLines = append(pemLines, strings.TrimSuffix(line, "'"))
					if strings.HasSuffix(line, "'") {
						break
					}
					continue
				}
				k, v, _ := strings.Cut(line, "=")
				if k == "APNS_MOCK_CA_PEM" {
					pemLines = []string{strings.TrimPrefix(v, "'")}
					continue
				}
				settings[k] = strings.Trim(v, "'")
				if k == "WEBPUSH_ALLOWED_ORIGINS" && !useTLS {
					break
				}
			}
			go io.Copy(io.Discard, pr) // nothing more is expected; do not block Serve

			apnsURL, fcmURL := settings["APNS_URL"], settings["FCM_URL"]
			if apnsURL == "" || settings["APNS_SANDBOX_URL"] != apnsURL || fcmURL == "" {
				t.Fatalf("Serve printed %v", settings)
			}
			c := h2cClient(t)
			if useTLS {
				pool := x509.NewCertPool()
				pem := strings.Join(pemLines, "\n")
				if !pool.AppendCertsFromPEM([]byte(pem)) {
					t.Fatalf("APNS_MOCK_CA_PEM is not a certificate: %q", pem)
				}
				c = tlsClient(t, pool)
			}
			if r := send(t, c, apnsURL, newPush(testToken)); r.status != 200 {
				t.Fatalf("APNs push: %d %q", r.status, r.reason)
			}

			sa := parseServiceAccount(t, []byte(settings["FCM_V1_CREDENTIALS"]))
			if sa.ProjectID != dispatchtest.ServeProjectID || sa.TokenURI != fcmURL+"/token" {
				t.Fatalf("printed service account: project %q, token_uri %q", sa.ProjectID, sa.TokenURI)
			}
			if got := settings["TENANT_FCM_TOKEN_URIS"]; got != sa.TokenURI {
				t.Fatalf("TENANT_FCM_TOKEN_URIS=%q; want the mock's token endpoint %q", got, sa.TokenURI)
			}
			if status, out := fetchToken(t, sa.TokenURI, jwtBearer, sa.assertion(t, nil)); status != 200 {
				t.Fatalf("token fetch with the printed credentials: %d %v", status, out)
			}

			// The Web Push mock makes subscriptions for its printed origin.
			wp := settings["WEBPUSH_ALLOWED_ORIGINS"]
			if status, sub := post(t, wp+"/subscribe", http.Header{}, nil); status != 201 || !strings.HasPrefix(endpointOf(t, sub), wp+"/push/") {
				t.Fatalf("POST %s/subscribe: %d %s", wp, status, sub)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after ctx ended")
			}
			for _, u := range []string{apnsURL, fcmURL, wp} {
				host := u[strings.Index(u, "//")+2:]
				if conn, err := net.DialTimeout("tcp", host, time.Second); err == nil {
					conn.Close()
					t.Fatalf("%s still accepts connections after Serve returned", u)
				}
			}
		})
	}
}
