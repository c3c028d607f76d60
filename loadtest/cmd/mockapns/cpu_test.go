package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"push-server/internal/testkit"
)

// BenchmarkMockCPU measures what the mock costs per push as `make loadtest`
// runs it: the command is built and started as its own process, b.N pushes
// are sent to it with the real apns2 client from benchWorkers goroutines
// over one connection, and the mock's CPU time over the pushes (utime+stime
// from /proc, 10 ms ticks) is divided by b.N (mock-µs/push). The mock runs with
// GOMAXPROCS=1, as on its one core in run.sh. push/read, push/write and
// push/sleep (voluntary context switches, i.e. wake-ups) show how well it
// batches. Use a fixed count long enough for the ticks not to matter, e.g.
//
//	go test -run '^$' -bench MockCPU -benchtime 40000x ./loadtest/cmd/mockapns
//
// "framer" runs the command with its defaults, "framer-nocoalesce" with
// -coalesce 0. Environment: MOCKAPNS_COMPARE=/path/to/binary measures
// another build of the command (say, the previous one) in the same run, as
// "compare"; MOCKAPNS_CPU=n pins the mock to core n (taskset), as run.sh
// does; MOCKAPNS_PROFILE=file has this command (not "compare") write a CPU
// profile there.
func BenchmarkMockCPU(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc to read the mock's CPU time")
	}
	self := filepath.Join(b.TempDir(), "mockapns")
	if out, err := exec.Command("go", "build", "-o", self, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	var profile []string
	if p := os.Getenv("MOCKAPNS_PROFILE"); p != "" {
		profile = []string{"-cpuprofile", p}
	}
	b.Run("framer", func(b *testing.B) { benchProcess(b, self, profile...) })
	b.Run("framer-nocoalesce", func(b *testing.B) { benchProcess(b, self, append(profile, "-coalesce", "0")...) })
	if other := os.Getenv("MOCKAPNS_COMPARE"); other != "" {
		b.Run("compare", func(b *testing.B) { benchProcess(b, other) })
	}
}

func benchProcess(b *testing.B, bin string, args ...string) {
	dir := b.TempDir()
	envFile := filepath.Join(dir, "mockapns.env")
	var out bytes.Buffer
	args = append([]string{"-env", envFile, "-cert", filepath.Join(dir, "mockapns.pem")}, args...)
	// MOCKAPNS_CPU pins the mock to a core, as run.sh does (taskset execs
	// the mock, so the pid stays the mock's).
	if cpu := os.Getenv("MOCKAPNS_CPU"); cpu != "" {
		args = append([]string{"-c", cpu, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// One P, as under run.sh's taskset to a single core.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	env := waitEnv(b, envFile)
	c := envClient(b, env)

	pushN(b, c, benchWorkers*10) // connect and warm up outside the measurement
	cpu0, io0, cs0 := procCPU(b, cmd.Process.Pid), procIO(b, cmd.Process.Pid), procSwitches(b, cmd.Process.Pid)
	b.ResetTimer()
	start := time.Now()
	pushN(b, c, b.N)
	wall := time.Since(start)
	cpu, io1, cs1 := procCPU(b, cmd.Process.Pid)-cpu0, procIO(b, cmd.Process.Pid), procSwitches(b, cmd.Process.Pid)
	b.StopTimer()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("mock: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`accepted (\d+) pushes`).FindStringSubmatch(out.String())
	if m == nil || m[1] != strconv.Itoa(benchWorkers*10+b.N) {
		b.Fatalf("mock's report %q, want %d pushes accepted", strings.TrimSpace(out.String()), benchWorkers*10+b.N)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "mock-µs/push")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "pushes/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "mock-cores")
	b.ReportMetric(float64(b.N)/float64(io1["syscr"]-io0["syscr"]), "push/read")
	b.ReportMetric(float64(b.N)/float64(cs1-cs0), "push/sleep")
	b.ReportMetric(float64(b.N)/float64(io1["syscw"]-io0["syscw"]), "push/write")
}

// benchWorkers is how many goroutines push at once, as many as run.sh's
// closed loop has connections to push-server.
const benchWorkers = 64

// pushN sends n pushes shaped like push-server's (alert, priority 10,
// expiration, apns-id and collapse id, a ~250-byte payload, one device token
// each) from benchWorkers goroutines; each must be accepted.
func pushN(b *testing.B, c *apns2.Client, n int) {
	var next atomic.Int64
	var failed atomic.Value
	body := payload(250)
	var wg sync.WaitGroup
	for range benchWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				note := &apns2.Notification{
					DeviceToken: fmt.Sprintf("%064x", i),
					Topic:       testTopic,
					ApnsID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
					CollapseID:  fmt.Sprintf("m%d", i),
					Priority:    apns2.PriorityHigh,
					PushType:    apns2.PushTypeAlert,
					Expiration:  time.Now().Add(time.Hour),
					Payload:     body,
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := c.PushWithContext(ctx, note)
				cancel()
				if err == nil && res.StatusCode != 200 {
					err = fmt.Errorf("answered %d %s", res.StatusCode, res.Reason)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("push: %s", err)
	}
}

// waitEnv waits for the mock's -env file (written whole, by rename, once it
// listens) and returns its assignments.
func waitEnv(b *testing.B, path string) map[string]string {
	var f *os.File
	var err error
	if !testkit.Poll(10*time.Second, func() bool { f, err = os.Open(path); return err == nil }) {
		b.Fatalf("mock wrote no %s: %v", path, err)
	}
	defer f.Close()
	env := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

// envClient builds the apns2 client push-server would from the mock's -env
// settings.
func envClient(b *testing.B, env map[string]string) *apns2.Client {
	pemKey, err := base64.StdEncoding.DecodeString(env["APNS_PKCS8_PEM"])
	if err != nil {
		b.Fatalf("APNS_PKCS8_PEM: %v", err)
	}
	key, err := token.AuthKeyFromBytes(pemKey)
	if err != nil {
		b.Fatalf("APNS_PKCS8_PEM: %v", err)
	}
	certPEM, err := os.ReadFile(env["SSL_CERT_FILE"])
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		b.Fatal("SSL_CERT_FILE holds no certificate")
	}
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	b.Cleanup(tr.CloseIdleConnections)
	return &apns2.Client{
		Host:       env["APNS_URL"],
		HTTPClient: &http.Client{Transport: tr},
		Token:      &token.Token{AuthKey: key, KeyID: env["APNS_KEY_ID"], TeamID: env["APNS_TEAM_ID"]},
	}
}

// procCPU returns the user+system CPU time process pid has used, from
// /proc/pid/stat (in USER_HZ ticks, 100 a second on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields follow the parenthesised command name; utime and stime are
	// the 14th and 15th fields, the 12th and 13th after the name.
	i := bytes.LastIndexByte(raw, ')')
	fields := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(fields) < 13 {
		b.Fatalf("cannot parse /proc/%d/stat: %q", pid, raw)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("cannot parse /proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

// procIO returns the counters of /proc/pid/io: syscr and syscw count read
// and write syscalls, which show how well the mock batches.
func procIO(b *testing.B, pid int) map[string]int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := make(map[string]int64)
	for line := range strings.Lines(string(raw)) {
		k, v, _ := strings.Cut(line, ":")
		m[k], _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	return m
}

// procSwitches returns how many times the threads of process pid went to
// sleep (voluntary context switches): each is a wake-up to pay for.
func procSwitches(b *testing.B, pid int) int64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		for line := range strings.Lines(string(raw)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}
