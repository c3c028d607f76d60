package dispatch

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"push-server/dispatch/dispatchtest"
)

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU runs send b.N times and reports the process CPU per push
// (client and in-process server together) beside the wall time.
func reportCPU(b *testing.B, send func() error) {
	b.Helper()
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e3, "cpu-µs/op")
}

// BenchmarkWebPushSend is the cost of one Web Push against a noop and an
// APNs push, one push at a time, in the same run:
//
//   - noop: Noop.Send, the floor.
//   - apns: apnsSender to the h2c APNs mock with token auth (the provider
//     token is signed once per 50 minutes, so not per push).
//   - webpush/bare: webpushSender to a server that answers 201 at once:
//     the sender's own cost (encryption, VAPID JWT, HTTP/1.1 over loopback).
//   - webpush-go/bare: webpush-go's own send to that server, for comparison.
//   - webpush/mock: the same to dispatchtest's push service, which also
//     verifies the JWT and decrypts, as a browser's service and the browser
//     would: what a test through the mock costs.
//
// cpu-µs/op is the process's CPU per push, server included: compare the
// rows, not the absolute figures, on a shared machine.
func BenchmarkWebPushSend(b *testing.B) {
	ctx := b.Context()
	raw := &Notification{Kind: KindRaw, Data: benchNotification().Data}

	b.Run("noop", func(b *testing.B) {
		var p Noop
		reportCPU(b, func() error { return p.Send(ctx, testToken, raw) })
	})

	b.Run("apns", func(b *testing.B) {
		key := newAPNsKey(b)
		m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		m.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
		cfg := baseConfig()
		cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
		cfg.APNSURL, cfg.APNSSandboxURL = m.URL(), m.URL()
		s := mustSender(b, mustNew(b, cfg), TypeAPNS)
		reportCPU(b, func() error { return s.Send(ctx, testToken, raw) })
	})

	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		b.Fatal(err)
	}
	webpushTo := func(b *testing.B, origin string) Sender {
		origins, err := ParseWebPushOrigins(origin)
		if err != nil {
			b.Fatal(err)
		}
		cfg := baseConfig()
		cfg.VAPIDPrivateKey, cfg.VAPIDSubject, cfg.WebPushAllowedOrigins = priv, testVAPIDSubject, origins
		return mustSender(b, mustNew(b, cfg), TypeWebPush)
	}

	b.Run("webpush/bare", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
		}))
		defer srv.Close()
		m := dispatchtest.StartWebPushService(b, false)
		// A real subscription's keys, aimed at the bare server.
		sub := strings.Replace(m.Subscribe(pub), m.Origin(), srv.URL, 1)
		s := webpushTo(b, srv.URL)
		reportCPU(b, func() error { return s.Send(ctx, sub, raw) })
	})

	b.Run("webpush-go/bare", func(b *testing.B) {
		// The library's SendNotificationWithContext to the same server: a
		// fresh VAPID JWT per push, the reason the sender signs its own.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
		}))
		defer srv.Close()
		m := dispatchtest.StartWebPushService(b, false)
		var js webpush.Subscription
		if err := json.Unmarshal([]byte(strings.Replace(m.Subscribe(pub), m.Origin(), srv.URL, 1)), &js); err != nil {
			b.Fatal(err)
		}
		client := &http.Client{Transport: newFCMTransport(nil, nil)}
		defer client.CloseIdleConnections()
		opts := &webpush.Options{HTTPClient: client, Subscriber: "ops@example.com", TTL: 86400, VAPIDPublicKey: pub, VAPIDPrivateKey: priv}
		msg := appendWebPushPayload(nil, raw)
		reportCPU(b, func() error {
			resp, err := webpush.SendNotificationWithContext(ctx, msg, &js, opts)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
	})

	b.Run("webpush/mock", func(b *testing.B) {
		m, err := dispatchtest.NewWebPushService(dispatchtest.WebPushOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		sub := m.Subscribe(pub)
		s := webpushTo(b, m.Origin())
		reportCPU(b, func() error { return s.Send(ctx, sub, raw) })
	})
}
