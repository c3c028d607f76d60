package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// faultServer is one push-server process started by a test.
type faultServer struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, set before done closes
	out  *testkit.SyncBuffer
}

// startFaultServer runs bin on a free port with its store in dataDir (env
// adds or overrides variables) and returns once GET /health answers.
func startFaultServer(t *testing.T, bin, dataDir string, env ...string) *faultServer {
	t.Helper()
	port := testkit.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "VALIDATE_SIGNATURES=false", "PORT="+strconv.Itoa(port), "DATA_DIR="+dataDir,
		"PROVIDER_TIMEOUT=2s", "LOG_LEVEL=warn", "RATE_LIMIT_PER_IP=0", "RATE_LIMIT_PER_CLIENT=0")
	cmd.Env = append(cmd.Env, env...)
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &faultServer{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{}), out: out}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	testkit.Eventually(t, 10*time.Second, "push-server to answer /health with 200", func() bool {
		resp, err := http.Get(s.url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// isConnectFailure tells a request that never reached the server (refused
// after the listener closed) from one that was cut after it was sent.
func isConnectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED)
}

// TestSIGTERMUnderLoad sends SIGTERM to a real push-server process while
// several goroutines register and send, the way a load balancer's traffic
// arrives: a checker polls GET /health/ready and, once it fails, no new
// request is sent to this instance. A user expects: readiness fails at once
// with 503 shutting_down while the server keeps serving for SHUTDOWN_DELAY,
// keep-alive answers carry Connection: close, every request sent got a
// complete success (nothing refused, reset or cut, no 5xx), the process
// exits 0 within SHUTDOWN_DELAY+PROVIDER_TIMEOUT+5s, and every registration
// acknowledged before the exit survives a restart on the same DATA_DIR.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const delay = time.Second
	dir := t.TempDir()
	bin := filepath.Join(dir, "push-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(dir, "data")
	srv := startFaultServer(t, bin, dataDir, "SHUTDOWN_DELAY="+delay.String())
	oneShot := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(c *http.Client, path, body string) (int, string, bool, error) {
		resp, err := c.Post(srv.url+path, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, "", false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Close, err
	}
	if st, b, _, err := post(oneShot, "/clients", `{"client_id":"target","type":"noop","token":"tok"}`); err != nil || st != 200 {
		t.Fatalf("register target: %d %s %v", st, b, err)
	}

	var (
		mu                                 sync.Mutex
		acked                              []string
		problems                           []string
		sent, accepted, refused, cut, dups atomic.Int64
		closedAnswers                      atomic.Int64 // keep-alive answers with Connection: close
		lastOK                             atomic.Int64
		inRotation                         atomic.Bool
		readyFailedAt                      atomic.Int64
	)
	inRotation.Store(true)
	problem := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, s)
		}
	}
	// The load balancer's checker: it takes the instance out of rotation
	// at the first readiness answer that is not 200.
	checkerDone := make(chan struct{})
	go func() {
		defer close(checkerDone)
		for {
			resp, err := oneShot.Get(srv.url + "/health/ready")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if resp.StatusCode != 503 || !strings.Contains(string(b), `"name":"shutting_down"`) {
					problem(fmt.Sprintf("readiness while draining: %d %s; want 503 shutting_down", resp.StatusCode, b))
				}
			} else {
				problem(fmt.Sprintf("readiness check failed to connect: %v", err))
			}
			readyFailedAt.Store(time.Now().UnixNano())
			inRotation.Store(false)
			return
		}
	}()
	// outcome sorts one request. Every request is sent while the instance
	// is in rotation, so every one must get its complete success.
	outcome := func(what string, st int, body string, err error, want int) {
		switch {
		case err != nil && isConnectFailure(err):
			refused.Add(1)
			problem(fmt.Sprintf("%s: refused at connect: %v", what, err))
		case err != nil && st == 0:
			cut.Add(1)
			problem(fmt.Sprintf("%s: no answer: %v", what, err))
		case err == nil && st == want && body == `{"status":"OK"}`:
			accepted.Add(1)
			lastOK.Store(time.Now().UnixNano())
		case err == nil && st == 200 && want == 202:
			dups.Add(1)
			problem(fmt.Sprintf("%s: distinct message answered 200", what))
		default:
			problem(fmt.Sprintf("%s: %d %q %v", what, st, body, err))
		}
	}
	var wg sync.WaitGroup
	for g := range 6 {
		// Four senders open a connection per request, two reuse theirs.
		c := oneShot
		if g >= 4 {
			c = keepAlive
		}
		wg.Go(func() {
			for i := 0; inRotation.Load(); i++ {
				sent.Add(1)
				body := fmt.Sprintf(`{"topic":"t","tag":1,"message":"m-%d-%d"}`, g, i)
				st, b, closed, err := post(c, "/clients/target", body)
				outcome("send "+body, st, b, err, 202)
				if closed && c == keepAlive {
					closedAnswers.Add(1)
				}
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := 0; inRotation.Load(); i++ {
				id := fmt.Sprintf("sig-%d-%d", g, i)
				sent.Add(1)
				st, b, _, err := post(oneShot, "/clients", fmt.Sprintf(`{"client_id":%q,"type":"noop","token":"t-%s"}`, id, id))
				outcome("register "+id, st, b, err, 200)
				if err == nil && st == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		})
	}
	// SIGTERM once the load is flowing: sends answered and registrations
	// acknowledged, so the drain has both in flight.
	flowing := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted.Load() >= 100 && len(acked) > 0
	}
	for deadline := time.Now().Add(10 * time.Second); !flowing(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no load flowing 10 s after it started: %d sent, %d accepted", sent.Load(), accepted.Load())
		}
	}
	termAt := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-checkerDone
	wg.Wait()
	loadStoppedAfter := time.Since(termAt)
	// Still inside SHUTDOWN_DELAY: the instance answers, and a keep-alive
	// client is told to close its connection.
	drainingClose := false
	if resp, err := keepAlive.Get(srv.url + "/health"); err != nil {
		t.Errorf("GET /health during the shutdown delay (%s after SIGTERM): %v", time.Since(termAt), err)
	} else {
		resp.Body.Close()
		drainingClose = resp.Close
		if resp.StatusCode != 200 || !resp.Close {
			t.Errorf("GET /health during the shutdown delay: %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
		}
	}

	limit := delay + 2*time.Second + 5*time.Second
	var exitErr error
	select {
	case <-srv.done:
		exitErr = srv.err
	case <-time.After(limit):
		t.Fatalf("push-server still running %s after SIGTERM", time.Since(termAt))
	}
	exitAfter := time.Since(termAt)
	if exitErr != nil {
		t.Errorf("push-server exited with %v; want 0\n%s", exitErr, srv.out.String())
	}
	if exitAfter < delay {
		t.Errorf("push-server exited %s after SIGTERM; want it to keep serving for SHUTDOWN_DELAY=%s", exitAfter, delay)
	}
	for _, p := range problems {
		t.Error(p)
	}
	lost := sent.Load() - accepted.Load()
	if lost != 0 {
		t.Errorf("%d of %d requests sent while in rotation got no complete success (refused %d, no answer %d)",
			lost, sent.Load(), refused.Load(), cut.Load())
	}
	lastAnswer := time.Duration(lastOK.Load() - termAt.UnixNano())
	readyFailed := time.Duration(readyFailedAt.Load() - termAt.UnixNano())

	// Every registration acknowledged before the exit is in the store.
	srv2 := startFaultServer(t, bin, dataDir)
	srv = srv2
	var regsLost int
	for i, id := range acked {
		st, b, _, err := post(oneShot, "/clients/"+id, fmt.Sprintf(`{"topic":"t","tag":1,"message":"after-%d"}`, i))
		if err != nil || st != 202 {
			regsLost++
			if regsLost <= 10 {
				t.Errorf("registration %s acknowledged before SIGTERM: send after restart got %d %s %v", id, st, b, err)
			}
		}
	}
	t.Logf("sigterm: sent=%d accepted=%d lost=%d (refused-at-connect=%d no-answer=%d dup200=%d) keep-alive answers with Connection: close=%d (probe %v) | registrations acknowledged=%d lost=%d | readiness failed %s after SIGTERM, load stopped after %s, last 2xx after %s, exit 0 after %s (delay %s, limit %s)",
		sent.Load(), accepted.Load(), lost, refused.Load(), cut.Load(), dups.Load(), closedAnswers.Load(), drainingClose,
		len(acked), regsLost, readyFailed.Round(time.Millisecond), loadStoppedAfter.Round(time.Millisecond),
		lastAnswer.Round(time.Millisecond), exitAfter.Round(time.Millisecond), delay, limit)
}
