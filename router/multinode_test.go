package router

import (
	"strings"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/internal/testkit"
)

// Two gateways on one machine as two regions: A on the primary, B reading
// from its local replica. Register through A, send through B; kill the
// primary and keep sending to known clients; bring it back and register.
func TestTwoRegionsPrimaryAndReplica(t *testing.T) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplicaServer(t, primary.Addr)
	open := func(replicaURL string) func(t *testing.T) cache.Store {
		return func(t *testing.T) cache.Store {
			s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: replicaURL, Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	a := newHarness(t, options{store: open("")})
	b := newHarness(t, options{store: open("redis://" + replica.Addr)})

	a.register("wallet", "noop", "tok-wallet", false)
	body := func(m string) string { return `{"topic":"t","tag":4000,"message":"` + m + `"}` }
	b.send("wallet", body("1")).expectOK(t, 202)
	b.send("wallet", body("1")).expectOK(t, 200) // dedup on the primary, seen from B
	a.send("wallet", body("1")).expectOK(t, 200) // and from A: a retry through another region is not redelivered
	// A retry through A right after B's 202, before B's delivered mark
	// (written behind its answer) can have landed: 200, not 409.
	for i := range 10 {
		m := "right-after-" + strings.Repeat("x", i)
		b.send("wallet", body(m)).expectOK(t, 202)
		a.send("wallet", body(m)).expectOK(t, 200)
	}

	primary.Stop()
	for i := range 5 {
		b.send("wallet", body("down-"+strings.Repeat("x", i))).expectOK(t, 202)
	}
	b.send("wallet", body("down-")).expectOK(t, 200) // deduplicated locally meanwhile
	a.do("POST", "/clients", `{"client_id":"new","type":"noop","token":"tok-new"}`, nil).expectError(t, 503, "store_unavailable")

	primary.Restart()
	testkit.Eventually(t, 10*time.Second, "registration after the primary came back", func() bool {
		return a.do("POST", "/clients", `{"client_id":"new","type":"noop","token":"tok-new"}`, nil).status == 200
	})
	testkit.Eventually(t, 10*time.Second, "the new client visible through B", func() bool {
		return b.send("new", body("after")).status == 202
	})
}

// The whole client life on a 3-master Redis Cluster, through HTTP.
func TestClusterEndToEnd(t *testing.T) {
	addrs := cachetest.StartCluster(t)
	h := newHarness(t, options{store: func(t *testing.T) cache.Store {
		s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + addrs[0]})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
	body := `{"topic":"t","tag":4000,"message":"m"}`
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5", "c6"} {
		h.register(id, "noop", "tok-"+id, false)
		h.send(id, body).expectOK(t, 202)
		h.send(id, body).expectOK(t, 200)
	}
	h.register("c7", "noop", "tok-c1", false) // the token moves across slots
	h.send("c1", `{"topic":"t","tag":4000,"message":"m2"}`).expectError(t, 404, "client_not_found")
	h.send("c7", body).expectOK(t, 202)
	h.do("DELETE", "/clients/c2", "", nil).expectOK(t, 200)
	h.send("c2", `{"topic":"t","tag":4000,"message":"m3"}`).expectError(t, 404, "client_not_found")
}
