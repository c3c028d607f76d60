package cachetest

import (
	"bufio"
	"net"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// StartRedis starts a private redis-server on a free 127.0.0.1 port, with no
// persistence and its working directory in t.TempDir(), and returns its
// address ("127.0.0.1:port") once it answers PING. args are appended to the
// command line (e.g. "--maxmemory", "1mb"). The server is killed in
// t.Cleanup. It never touches any other Redis. Under -short, or with no
// redis-server on PATH outside `make test`, t is skipped (see redisBin).
func StartRedis(t testing.TB, args ...string) (addr string) {
	t.Helper()
	return startOnFreePort(t, append([]string{"--appendonly", "no"}, args...)).Addr
}

// waitForPong polls addr with PING until it answers +PONG, the process exits,
// or the time runs out.
func waitForPong(addr string, exited <-chan struct{}, within time.Duration) bool {
	up := false
	testkit.Poll(within, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		up = ping(addr)
		return up
	})
	return up
}

func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// ShutdownRedis stops a server that StartRedis started (SHUTDOWN NOSAVE), so
// a test can see how its callers behave with the store gone. It returns once
// the port no longer answers.
func ShutdownRedis(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("cannot reach redis-server on %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Write([]byte("SHUTDOWN NOSAVE\r\n"))
	_, _ = bufio.NewReader(c).ReadString('\n') // the server closes the connection
	c.Close()
	if !testkit.Poll(5*time.Second, func() bool { return !ping(addr) }) {
		t.Fatalf("redis-server on %s still answers after SHUTDOWN", addr)
	}
}
