package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// flyConfig mirrors the parts of Fly.io's documented fly.toml schema that
// this project uses (fly.io/docs/reference/configuration). flyctl cannot be
// installed here, so TestFlyTOML checks the file against it instead: any key
// not in this struct is reported, which catches typos flyctl would catch.
type flyConfig struct {
	App           string            `toml:"app"`
	PrimaryRegion string            `toml:"primary_region"`
	KillSignal    string            `toml:"kill_signal"`
	KillTimeout   string            `toml:"kill_timeout"`
	Build         map[string]any    `toml:"build"`
	Env           map[string]string `toml:"env"`
	HTTPService   struct {
		InternalPort       int    `toml:"internal_port"`
		ForceHTTPS         bool   `toml:"force_https"`
		AutoStopMachines   string `toml:"auto_stop_machines"`
		AutoStartMachines  bool   `toml:"auto_start_machines"`
		MinMachinesRunning int    `toml:"min_machines_running"`
		Concurrency        struct {
			Type      string `toml:"type"`
			SoftLimit int    `toml:"soft_limit"`
			HardLimit int    `toml:"hard_limit"`
		} `toml:"concurrency"`
		Checks []struct {
			GracePeriod string `toml:"grace_period"`
			Interval    string `toml:"interval"`
			Method      string `toml:"method"`
			Path        string `toml:"path"`
			Timeout     string `toml:"timeout"`
		} `toml:"checks"`
	} `toml:"http_service"`
	Metrics struct {
		Port int    `toml:"port"`
		Path string `toml:"path"`
	} `toml:"metrics"`
	VM []struct {
		Size   string `toml:"size"`
		Memory string `toml:"memory"`
	} `toml:"vm"`
}

func TestFlyTOML(t *testing.T) {
	var c flyConfig
	md, err := toml.DecodeFile("fly.toml", &c)
	if err != nil {
		t.Fatalf("fly.toml: %v", err)
	}
	for _, k := range md.Undecoded() {
		if k[0] != "build" { // [build] and [build.args] are builder-specific maps
			t.Errorf("fly.toml: key %q is not in Fly's schema as this test knows it", k.String())
		}
	}
	if c.App == "" || len(c.PrimaryRegion) != 3 {
		t.Errorf("app %q, primary_region %q: want a name and a three-letter region", c.App, c.PrimaryRegion)
	}
	if c.KillSignal != "SIGTERM" {
		t.Errorf("kill_signal = %q; the server drains on SIGTERM", c.KillSignal)
	}
	kill, err := time.ParseDuration(c.KillTimeout)
	if err != nil || kill <= 10*time.Second || kill > 300*time.Second {
		t.Errorf("kill_timeout = %q; want more than PROVIDER_TIMEOUT (10 s) and at most Fly's 300 s", c.KillTimeout)
	}

	// The environment it sets must be one the server accepts.
	env := map[string]string{"RELAY_PUBLIC_KEY": testKey}
	for k, v := range c.Env {
		env[k] = v
	}
	cfg, err := parseConfig(envMap(env))
	if err != nil {
		t.Fatalf("fly.toml [env] is refused by the server: %v", err)
	}
	hs := c.HTTPService
	if hs.InternalPort != cfg.port {
		t.Errorf("http_service.internal_port %d != PORT %d", hs.InternalPort, cfg.port)
	}
	if ct := hs.Concurrency; (ct.Type != "requests" && ct.Type != "connections") || ct.SoftLimit <= 0 || ct.SoftLimit > ct.HardLimit {
		t.Errorf("http_service.concurrency = %+v", ct)
	}
	// SIGTERM: SHUTDOWN_DELAY of draining, then up to PROVIDER_TIMEOUT + 5 s
	// for the sends in flight (main.go); Fly kills the machine after
	// kill_timeout, which must cover both.
	if need := cfg.shutdownDelay + cfg.router.SendTimeout + 5*time.Second; kill < need {
		t.Errorf("kill_timeout %s < SHUTDOWN_DELAY + PROVIDER_TIMEOUT + 5 s = %s: Fly would kill sends in flight", kill, need)
	}
	paths := map[string]bool{}
	for _, ch := range hs.Checks {
		paths[ch.Path] = true
		for _, d := range []string{ch.GracePeriod, ch.Interval, ch.Timeout} {
			if _, err := time.ParseDuration(d); err != nil {
				t.Errorf("check %s: %q is not a duration", ch.Path, d)
			}
		}
		// The drain only moves traffic away if the readiness check sees
		// its 503 while it lasts, more than once.
		if interval, _ := time.ParseDuration(ch.Interval); ch.Path == "/health/ready" && 2*interval > cfg.shutdownDelay {
			t.Errorf("readiness check every %s: fewer than two polls within SHUTDOWN_DELAY %s", interval, cfg.shutdownDelay)
		}
		if ch.Method != "GET" {
			t.Errorf("check %s: method %q", ch.Path, ch.Method)
		}
	}
	if !paths["/health"] || !paths["/health/ready"] {
		t.Error("want http_service checks on /health and /health/ready")
	}
	if strconv.Itoa(c.Metrics.Port) != env["TELEMETRY_PROMETHEUS_PORT"] || c.Metrics.Path != "/metrics" {
		t.Errorf("[metrics] %+v does not match TELEMETRY_PROMETHEUS_PORT=%s", c.Metrics, env["TELEMETRY_PROMETHEUS_PORT"])
	}
}
