package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// serveInProcess runs serve with env until the test ends (SIGTERM to this
// process, which serve catches) and returns its base URL.
func serveInProcess(t *testing.T, env map[string]string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("serves on real ports")
	}
	env["PORT"] = strconv.Itoa(testkit.FreePort(t))
	logs := &testkit.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"serve"}, envMap(env), io.Discard, logs) }()
	host := "127.0.0.1"
	if env["LISTEN_ADDR"] != "" {
		host = env["LISTEN_ADDR"]
	}
	api := "http://" + host + ":" + env["PORT"]
	if !testkit.Poll(10*time.Second, func() bool {
		if resp, err := http.Get(api + "/health"); err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		default:
		}
		return false
	}) {
		t.Fatalf("serve did not answer /health:\n%s", logs.String())
	}
	t.Cleanup(func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Error(err)
			return
		}
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d after SIGTERM\n%s", code, logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop after SIGTERM")
		}
	})
	return api
}

// TestOnFlyTheLimitsCountTheCaller: with the shipped configuration on Fly
// (FLY_APP_NAME set by the platform, default RATE_LIMIT_PER_IP) every
// connection comes from Fly's proxy, which writes the caller's address in
// Fly-Client-IP. 300 wallets registering in one window must all get 200;
// one wallet past its own limit gets 429.
func TestOnFlyTheLimitsCountTheCaller(t *testing.T) {
	api := serveInProcess(t, map[string]string{
		"FLY_APP_NAME": "push-server", "VALIDATE_SIGNATURES": "false", "DATA_DIR": t.TempDir(),
		"SHUTDOWN_DELAY": "0", "LOG_LEVEL": "warn",
	})
	c := &http.Client{Timeout: 10 * time.Second}
	register := func(id, caller string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", api+"/clients", strings.NewReader(
			fmt.Sprintf(`{"client_id":"%s","type":"noop","token":"tok-%s"}`, id, id)))
		req.Header.Set("Fly-Client-IP", caller)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 300 {
		caller := fmt.Sprintf("198.51.%d.%d", 100+i/250, 1+i%250)
		if st := register("w"+strconv.Itoa(i), caller); st != 200 {
			t.Fatalf("registration %d from %s: %d; want 200 (300 wallets behind Fly's proxy)", i, caller, st)
		}
	}
	// 198.51.100.1 made one call; the default limit is 100 a minute.
	for i := range 99 {
		if st := register("again"+strconv.Itoa(i), "198.51.100.1"); st != 200 {
			t.Fatalf("call %d of 198.51.100.1: %d; want 200 within its limit", i+2, st)
		}
	}
	if st := register("one-too-many", "198.51.100.1"); st != 429 {
		t.Fatalf("call 101 of 198.51.100.1: %d; want 429", st)
	}
	if st := register("neighbour", "198.51.100.2"); st != 200 {
		t.Fatalf("another wallet after 198.51.100.1 hit its limit: %d; want 200", st)
	}
}

func TestEdgeSettings(t *testing.T) {
	bad := func(name, value string) {
		t.Helper()
		_, err := parseConfig(envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, name: value}))
		if err == nil || !strings.HasPrefix(err.Error(), name+"=") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%q: %v; want one line naming it", name, value, err)
		}
	}
	bad("RATE_LIMIT_IPV6_PREFIX", "32")
	bad("RATE_LIMIT_IPV6_PREFIX", "129")
	bad("RATE_LIMIT_IPV6_PREFIX", "/64")
	bad("MAX_CONNS", "0")
	bad("MAX_CONNS_PER_IP", "-1")
	bad("HEADER_READ_TIMEOUT", "soon")
	bad("LISTEN_ADDR", "0.0.0.0:3000")
	bad("LISTEN_ADDR", "[::1]:3000")
	bad("LISTEN_ADDR", "http://10.0.0.5")

	for _, tc := range []struct {
		env           map[string]string
		edge          string
		prefix, perIP int
		listen        string
		maxConns      int
		headerTimeout time.Duration
	}{
		// Direct: one address may hold a tenth of the connections.
		{map[string]string{}, "", 64, 1000, "", 10000, 5 * time.Second},
		// On Fly every peer is Fly's proxy: a per-peer cap would cap everybody.
		{map[string]string{"FLY_APP_NAME": "push"}, "Fly-Client-IP", 64, 0, "", 10000, 5 * time.Second},
		// Behind another proxy, likewise.
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8"}, "", 64, 0, "", 10000, 5 * time.Second},
		{map[string]string{"FLY_APP_NAME": "push", "MAX_CONNS_PER_IP": "50", "MAX_CONNS": "500",
			"RATE_LIMIT_IPV6_PREFIX": "56", "LISTEN_ADDR": "10.0.0.5", "HEADER_READ_TIMEOUT": "2s"},
			"Fly-Client-IP", 56, 50, "10.0.0.5", 500, 2 * time.Second},
		{map[string]string{"MAX_CONNS": "500", "LISTEN_ADDR": "[fdaa::3]"}, "", 64, 50, "fdaa::3", 500, 5 * time.Second},
		{map[string]string{"LISTEN_ADDR": "fly-local-6pn"}, "", 64, 1000, "fly-local-6pn", 10000, 5 * time.Second},
	} {
		tc.env["RELAY_PUBLIC_KEY"] = testKey
		c, err := parseConfig(envMap(tc.env))
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		rl := c.router.RateLimits
		if rl.EdgeHeader != tc.edge || rl.IPv6Prefix != tc.prefix || c.router.MaxConnsPerIP != tc.perIP ||
			c.listenAddr != tc.listen || c.router.MaxConns != tc.maxConns || c.router.HeaderTimeout != tc.headerTimeout {
			t.Errorf("%v: edge %q, prefix %d, per-IP %d, listen %q, max %d, header %v; want %q %d %d %q %d %v", tc.env,
				rl.EdgeHeader, rl.IPv6Prefix, c.router.MaxConnsPerIP, c.listenAddr, c.router.MaxConns, c.router.HeaderTimeout,
				tc.edge, tc.prefix, tc.perIP, tc.listen, tc.maxConns, tc.headerTimeout)
		}
	}
}

// LISTEN_ADDR binds the listener to one address: the server answers there
// and nowhere else.
func TestListenAddrBindsOneAddress(t *testing.T) {
	api := serveInProcess(t, map[string]string{
		"LISTEN_ADDR": "127.0.0.2", "VALIDATE_SIGNATURES": "false", "DATA_DIR": t.TempDir(),
		"SHUTDOWN_DELAY": "0", "LOG_LEVEL": "warn",
	})
	port := api[strings.LastIndex(api, ":")+1:]
	resp, err := http.Get("http://127.0.0.1:" + port + "/health")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("LISTEN_ADDR=127.0.0.2: 127.0.0.1:%s answered %d; want nothing listening", port, resp.StatusCode)
	}
}
