//go:build !race

package dispatch

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"push-server/dispatch/dispatchtest"
)

func TestAPNsPayloadDoesNotAllocate(t *testing.T) {
	n := benchNotification()
	n.ImageURL, n.URL = "https://img.example/a.png", "https://example.com/?a=1&b=2"
	if a := testing.AllocsPerRun(100, func() {
		buf := acquirePayload()
		*buf = appendAPNSPayload((*buf)[:0], n)
		sink = len(*buf)
		releasePayload(buf)
	}); a != 0 {
		t.Fatalf("building an APNs payload allocates %.1f times; want 0", a)
	}
}

// maxAPNsPushAllocs bounds the allocations of one push, client side: the
// real apns2 client, net/http's Client, our transport, x/net/http2 and TLS,
// with the router's context. 81 on 2026-12-03 (go1.26.8, x/net v0.62.0,
// apns2 v0.25.0; 89 before this session's changes); BENCHMARKS.md lists
// where they come from.
const maxAPNsPushAllocs = 81

// TestAPNsPushAllocatesOnlyThePinnedCount pushes to dispatchtest's TLS mock
// APNs run in a process of its own (TestAPNsMockProcess), so that
// AllocsPerRun, which counts the whole process, counts the client alone.
func TestAPNsPushAllocatesOnlyThePinnedCount(t *testing.T) {
	url, roots := startAPNsMockProcess(t)
	key := newAPNsKey(t)
	cfg := baseConfig()
	cfg.APNSType, cfg.APNSTopic, cfg.APNSPKCS8PEM, cfg.APNSKeyID, cfg.APNSTeamID = APNSTypeToken, testTopic, key.pem, testKeyID, testTeamID
	cfg.APNSURL, cfg.APNSSandboxURL, cfg.RootCAs = url, url, roots
	s := mustSender(t, mustNew(t, cfg), TypeAPNS)
	n := benchNotification()
	push := func() {
		// As router/send.go calls it: a deadline of PROVIDER_TIMEOUT.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		if err := s.Send(ctx, testToken, n); err != nil {
			t.Fatal(err)
		}
	}
	push() // dials and signs the provider token: once, not per push
	a := testing.AllocsPerRun(500, push)
	t.Logf("%.1f allocations a push", a)
	if a > maxAPNsPushAllocs {
		t.Fatalf("a push allocates %.1f times; want at most %d", a, maxAPNsPushAllocs)
	}
}

// apnsMockProcessEnv makes TestAPNsMockProcess serve instead of skipping.
const apnsMockProcessEnv = "DISPATCH_TEST_APNS_MOCK_PROCESS"

// TestAPNsMockProcess is not a test of its own: started by
// startAPNsMockProcess, it serves an open (any token accepted) TLS mock
// APNs, prints "MOCK <url> <certificate PEM, base64>" and serves until its
// standard input closes.
func TestAPNsMockProcess(t *testing.T) {
	if os.Getenv(apnsMockProcessEnv) == "" {
		t.Skip("the mock APNs process of TestAPNsPushAllocatesOnlyThePinnedCount")
	}
	m, err := dispatchtest.NewAPNs(dispatchtest.APNsOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fmt.Printf("MOCK %s %s\n", m.URL(), base64.StdEncoding.EncodeToString(m.CertPEM()))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startAPNsMockProcess runs TestAPNsMockProcess in a child process and
// returns its URL and a pool trusting its certificate; the child stops when
// the test ends.
func startAPNsMockProcess(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAPNsMockProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), apnsMockProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "MOCK" {
			continue
		}
		pem, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatal("the mock process printed no certificate")
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		return f[1], roots
	}
	t.Fatalf("the mock process ended without printing its address: %v", sc.Err())
	return "", nil
}
