package dispatchtest_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"push-server/dispatch/dispatchtest"
)

// BenchmarkAPNsPush measures a push through the h2c mock with Record off, as
// a load test runs it; the client's cost is included, so the mock's share is
// at most what this shows.
func BenchmarkAPNsPush(b *testing.B) {
	for _, auth := range []string{"open", "token"} {
		b.Run(auth, func(b *testing.B) {
			m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			p := newPush(testToken)
			if auth == "token" {
				key := newECKey(b)
				m.TrustKey("KEY", "TEAM", &key.PublicKey)
				p.header["authorization"] = "bearer " + signJWT(b, key,
					map[string]any{"alg": "ES256", "kid": "KEY"},
					map[string]any{"iss": "TEAM", "iat": time.Now().Unix()})
			}
			tr := &http2.Transport{
				AllowHTTP: true,
				DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := m.URL() + p.path
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(p.body))
					for k, v := range p.header {
						req.Header.Set(k, v)
					}
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			if m.Count() < int64(b.N) {
				b.Fatalf("Count() = %d, want %d", m.Count(), b.N)
			}
		})
	}
}
