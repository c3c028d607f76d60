package cachetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// RedisServer is a private redis-server that a test can crash and restart,
// to see how a store rides out an outage. It persists every write before
// answering (AOF, appendfsync always), so a crash loses nothing that was
// acknowledged, the way a production primary should be configured.
type RedisServer struct {
	// Addr is "127.0.0.1:port"; it stays the same across Restart.
	Addr string

	t    testing.TB
	bin  string
	args []string

	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd  // nil while stopped
	exited chan struct{}
}

// StartRedisServer starts a persistent redis-server on a free 127.0.0.1
// port with its data in a t.TempDir(), and returns once it answers PING.
// args are appended to the command line. It is killed in t.Cleanup.
func StartRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	return startOnFreePort(t, append([]string{
		"--appendonly", "yes",
		"--appendfsync", "always",
		// A diskless full sync waits 5s for more replicas to join, and then
		// streams writes only after the replica's first ACK, up to a second
		// later; a sync through a file starts streaming as soon as the file
		// is sent.
		"--repl-diskless-sync", "no",
	}, args...))
}

// startOnFreePort is how both StartRedis and StartRedisServer start a
// server: on a free port, bound to 127.0.0.1, with no snapshots and its
// directory in a t.TempDir(), args appended; killed in t.Cleanup.
func startOnFreePort(t testing.TB, args []string) *RedisServer {
	t.Helper()
	bin := redisBin(t, "redis-server")
	// The free port is found by binding and releasing it, so another process
	// may take it before the server binds it: then the server exits and
	// another port is tried.
	for attempt := 0; attempt < 3; attempt++ {
		port := strconv.Itoa(testkit.FreePort(t))
		s := &RedisServer{
			Addr: net.JoinHostPort("127.0.0.1", port),
			t:    t,
			bin:  bin,
			args: append([]string{
				"--port", port,
				"--bind", "127.0.0.1",
				"--save", "",
				"--dir", t.TempDir(),
			}, args...),
		}
		out, ok := s.start()
		if ok {
			t.Cleanup(s.Stop)
			return s
		}
		t.Logf("redis-server on %s did not come up (attempt %d): %s", s.Addr, attempt+1, out)
	}
	t.Fatalf("cannot start redis-server after 3 attempts")
	return nil
}

// redisBin is where every Redis a test starts comes from, so it is the one
// place that skips them: under -short (the fast inner loop), and when the
// binary is missing on a plain `go test` (under make test that fails
// instead; see testkit.Missing).
func redisBin(t testing.TB, name string) string {
	t.Helper()
	testkit.SkipShort(t, "a redis-server")
	bin, err := exec.LookPath(name)
	if err != nil {
		testkit.Missing(t, "%s not found in PATH (%v): install redis-server or run make test", name, err)
	}
	return bin
}

// start launches the process and waits for PONG; on failure it returns the
// process's output.
func (s *RedisServer) start() (output string, ok bool) {
	cmd := exec.Command(s.bin, s.args...)
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("cannot start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if !waitForPong(s.Addr, exited, 5*time.Second) {
		_ = cmd.Process.Kill()
		<-exited
		return out.String(), false
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return "", true
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown) and returns
// once it has exited. Stopping a stopped server does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts a stopped server again on the same port and data
// directory; it comes back with every acknowledged write.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.t.Fatalf("Restart of redis-server on %s, which is running", s.Addr)
	}
	if out, ok := s.start(); !ok {
		s.t.Fatalf("cannot restart redis-server on %s: %s", s.Addr, out)
	}
}

// Freeze stops the server's process (SIGSTOP) without closing its sockets:
// a server that hangs, which the kernel keeps accepting and acknowledging
// for, unlike a crash. Thaw resumes it; t.Cleanup's Stop kills a frozen
// server too.
func (s *RedisServer) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a server stopped by Freeze.
func (s *RedisServer) Thaw() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("signal %v to redis-server on %s, which is not running", sig, s.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v to redis-server on %s: %v", sig, s.Addr, err)
	}
}

// StartReplica starts a replica of the server at primaryAddr (see
// StartReplicaServer) and returns its address.
func StartReplica(t testing.TB, primaryAddr string) (addr string) {
	t.Helper()
	return StartReplicaServer(t, primaryAddr).Addr
}

// StartReplicaServer starts a redis-server replicating primaryAddr and
// returns once it has synced (master_link_status:up), so a test starts from
// a replica holding all of the primary's data.
func StartReplicaServer(t testing.TB, primaryAddr string) *RedisServer {
	t.Helper()
	host, port, err := net.SplitHostPort(primaryAddr)
	if err != nil {
		t.Fatalf("primary address %q: %v", primaryAddr, err)
	}
	s := StartRedisServer(t, "--replicaof", host, port)
	WaitReplicaSynced(t, s.Addr)
	return s
}

// WaitReplicaSynced waits until the replica at addr reports its link to the
// primary up, for at most 10s.
func WaitReplicaSynced(t testing.TB, addr string) {
	t.Helper()
	var info string
	if !testkit.Poll(10*time.Second, func() bool {
		var err error
		info, err = command(addr, "INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	}) {
		t.Fatalf("replica on %s has not synced after 10s: %s", addr, info)
	}
}

// StartCluster starts a three-master Redis Cluster (no replicas) of private
// servers and returns the masters' addresses once every node reports
// cluster_state:ok. All hash slots are assigned, spread evenly.
func StartCluster(t testing.TB) (addrs []string) {
	t.Helper()
	const nodes = 3
	for range nodes {
		dir := t.TempDir()
		s := StartRedisServer(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
			// One node being briefly unreachable must not make the others
			// refuse every key.
			"--cluster-require-full-coverage", "no",
		)
		addrs = append(addrs, s.Addr)
	}
	cli := redisBin(t, "redis-cli")
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// cluster create returns when the slots are assigned; the nodes agree on
	// it a little later.
	for _, addr := range addrs {
		var info string
		if !testkit.Poll(10*time.Second, func() bool {
			var err error
			// ok alone can come before a node has met every other node;
			// then it would redirect to a master it cannot name.
			info, err = command(addr, "CLUSTER", "INFO")
			return err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(nodes))
		}) {
			t.Fatalf("cluster node %s not ok after 10s: %s", addr, info)
		}
	}
	return addrs
}

// Command sends one command to the server at addr on a new connection and
// returns the reply: a status, integer or bulk string as text, "" for a nil
// reply. A Redis error reply is returned as an error. Replies of other
// shapes (arrays, maps) are not supported. It is for tests that inspect a
// server (INFO, CLUSTER KEYSLOT, DBSIZE) without a client library.
func Command(addr string, args ...string) (string, error) {
	return command(addr, args...)
}

func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	if _, err := c.Write(b); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error reply: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unsupported reply type %q", line)
	}
}
