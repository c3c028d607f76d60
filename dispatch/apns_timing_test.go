package dispatch

import (
	"bufio"
	"context"
	"crypto/x509"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
)

// benchAPNs is an "apns" Sender with token auth against a TLS mock that
// trusts its key and records nothing, as in the load test. With
// APNS_BENCH_ENV naming the -env file of a running loadtest/cmd/mockapns,
// it pushes to that mock instead, in its own process, so that this
// process's CPU time is the client's alone; count then returns -1.
func benchAPNs(tb testing.TB) (s Sender, count func() int64) {
	tb.Helper()
	cfg := baseConfig()
	if path := os.Getenv("APNS_BENCH_ENV"); path != "" {
		env := readEnvFile(tb, path)
		pem, err := os.ReadFile(env["SSL_CERT_FILE"])
		if err != nil {
			tb.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			tb.Fatalf("%s holds no certificate", env["SSL_CERT_FILE"])
		}
		cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM = env["APNS_TYPE"], env["APNS_TOPIC"], []byte(env["APNS_PKCS8_PEM"])
		cfg.APNSKeyID, cfg.APNSTeamID = env["APNS_KEY_ID"], env["APNS_TEAM_ID"]
		cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = env["APNS_URL"], env["APNS_SANDBOX_URL"], roots
		count = func() int64 { return -1 }
	} else {
		key := newAPNsKey(tb)
		m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{TLS: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = m.Close() })
		m.TrustKey(testKeyID, testTeamID, &key.key.PublicKey)
		cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
		cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = m.URL(), m.URL(), m.RootCAs()
		count = m.Count
	}
	d := mustNew(tb, cfg)
	s = mustSender(tb, d, TypeAPNS)
	// The first push dials and signs the provider token: not per push.
	if err := s.Send(context.Background(), testToken, benchNotification()); err != nil {
		tb.Fatal(err)
	}
	return s, count
}

// readEnvFile reads KEY=VALUE lines, as mockapns writes them.
func readEnvFile(tb testing.TB, path string) map[string]string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	env := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return env
}

// processCPU is this process's user + system CPU time.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAPNsPush pushes through the real apns2 client, our transport and
// TLS, from 64 goroutines per P (pushes in flight on one connection, as
// under the load test's 64 connections), each with the router's context (a
// deadline of PROVIDER_TIMEOUT), whose cost is included.
//
// By default the mock is dispatchtest's, in this process: ns/op and the
// allocations include the mock's. For the client's own cost, run
// loadtest/cmd/mockapns on the other core and point APNS_BENCH_ENV at its
// -env file: the benchmark then reports cpu-µs/push, this process's CPU
// time per push (GC, scheduler and kernel time included), and a CPU profile
// of this process is the client's alone (BENCHMARKS.md has the commands).
func BenchmarkAPNsPush(b *testing.B) {
	s, count := benchAPNs(b)
	n := benchNotification()
	timeout := baseConfig().Timeout
	before := count()
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// As router/send.go calls it: a deadline of PROVIDER_TIMEOUT,
			// which is also the sender's Config.Timeout.
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := s.Send(ctx, testToken, n)
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu = processCPU(b) - cpu
	b.StopTimer()
	if before < 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/push")
	} else if got := count() - before; got != int64(b.N) {
		b.Fatalf("the mock accepted %d pushes; want %d", got, b.N)
	}
}
