// Command mockapns runs a mock APNs over TLS for load tests, in token mode:
// it makes a fresh ES256 provider key, trusts it, and writes what push-server
// needs to use it to -env, one shell assignment a line: APNS_TYPE,
// APNS_TOPIC, APNS_KEY_ID, APNS_TEAM_ID, APNS_PKCS8_PEM (base64), APNS_URL,
// APNS_SANDBOX_URL and SSL_CERT_FILE, the mock's self-signed certificate
// (written to -cert), which Go's TLS reads as the system roots on Linux. The
// mock validates each provider token as Apple does, so the server's token
// path is exercised for real.
//
// It is not dispatchtest's mock (net/http's HTTP/2 server, a goroutine and
// a handler per stream, 35-40 µs of CPU a push), which made the mock the
// bottleneck of the APNs load run. This one speaks HTTP/2 at the frame level
// on one goroutine per connection, reads and answers each burst of pushes
// with one syscall each, and pauses -coalesce after a burst so that the
// next one gathers (see conn.run): about 7 µs a push at 30k pushes/s
// (BenchmarkMockCPU). -coalesce is also the latency it may add to a push,
// far below Apple's.
//
// It records nothing (memory stays flat) and runs until SIGTERM or SIGINT;
// then it prints how many pushes it accepted and its own CPU time, which
// shows whether the mock could have been the bottleneck.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mockapns:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	envFile := flag.String("env", "mockapns.env", "file to write the server's APNS_* settings to")
	certFile := flag.String("cert", "mockapns.pem", "file to write the mock's TLS certificate to")
	coalesce := flag.Duration("coalesce", 200*time.Microsecond,
		"pause after answering a burst, so the next one gathers: fewer wake-ups, up to this much latency per push (0: none)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cannot create -cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cannot start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("cannot generate provider key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("cannot encode provider key: %w", err)
	}
	const keyID, teamID = "LOADTEST01", "LOADTEAM01"
	m, err := newServer(serverConfig{Addr: *addr, KeyID: keyID, TeamID: teamID, Key: &key.PublicKey, Coalesce: *coalesce})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := os.WriteFile(*certFile, m.CertPEM(), 0o600); err != nil {
		return fmt.Errorf("cannot write -cert: %w", err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	env := fmt.Sprintf("APNS_TYPE=token\nAPNS_TOPIC=com.example.wallet\nAPNS_KEY_ID=%s\nAPNS_TEAM_ID=%s\n"+
		"APNS_PKCS8_PEM=%s\nAPNS_URL=%s\nAPNS_SANDBOX_URL=%s\nSSL_CERT_FILE=%s\n",
		keyID, teamID, base64.StdEncoding.EncodeToString(pemKey), m.URL(), m.URL(), *certFile)
	// Written last and renamed, so a script waiting for the file sees it whole
	// only once the mock listens.
	if err := os.WriteFile(*envFile+".tmp", []byte(env), 0o600); err != nil {
		return fmt.Errorf("cannot write -env: %w", err)
	}
	if err := os.Rename(*envFile+".tmp", *envFile); err != nil {
		return fmt.Errorf("cannot write -env: %w", err)
	}

	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("mockapns: accepted %d pushes; CPU %v over %v wall\n",
		m.Count(), cpu.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}
