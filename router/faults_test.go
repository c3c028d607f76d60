package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"push-server/cache"
	"push-server/cache/cachetest"
	"push-server/dispatch"
	"push-server/dispatch/dispatchtest"
)

// faultReply is one answer seen under a fault: status, error name and how
// long it took. err is set when no answer came at all.
type faultReply struct {
	status  int
	name    string
	latency time.Duration
	err     error
}

// faultDo is harness.do for load goroutines: it never calls t.Fatal, and a
// request that hangs past timeout comes back as an error, not a stuck test.
func (h *harness) faultDo(c *http.Client, method, path, body string, header map[string]string) faultReply {
	start := time.Now()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		return faultReply{err: err}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return faultReply{err: err, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := faultReply{status: resp.StatusCode, latency: time.Since(start), err: err}
	var env struct {
		Errors []struct {
			Name string `json:"name"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &env) == nil && len(env.Errors) > 0 {
		r.name = env.Errors[0].Name
	}
	return r
}

func faultClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
}

// TestRedisKilledMidLoadAndRestarted crashes Redis (SIGKILL) half a second
// into a register-and-send load and brings it back half a second later. A
// user expects: fast 503 store_unavailable during the outage (no hang, no
// 500), recovery without a restart of the gateway, and no acknowledged
// registration or accepted send lost.
func TestRedisKilledMidLoadAndRestarted(t *testing.T) {
	rs := cachetest.StartRedisServer(t)
	h := newHarness(t, options{store: func(t *testing.T) cache.Store {
		s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + rs.Addr, Timeout: 300 * time.Millisecond,
			KeyPrefix: fmt.Sprintf("faults%d:", time.Now().UnixNano())})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
	h.register("sender-target", "noop", "tok", false)
	c := faultClient(3 * time.Second)
	const (
		registrars = 4
		loadFor    = 2 * time.Second
		hangLimit  = time.Second
	)

	var (
		mu           sync.Mutex
		registered   []string // ids acknowledged with 200
		problems     []string
		regSent      atomic.Int64
		regUnavail   atomic.Int64
		sendSent     atomic.Int64
		sendAccepted atomic.Int64 // 202
		sendDup      atomic.Int64 // 200
		sendUnavail  atomic.Int64
		firstOKAfter atomic.Int64 // unix nanos of the first 200 registration answered after Restart
		restartedAt  atomic.Int64
		maxLatency   atomic.Int64
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	noteLatency := func(d time.Duration) {
		for {
			old := maxLatency.Load()
			if int64(d) <= old || maxLatency.CompareAndSwap(old, int64(d)) {
				return
			}
		}
	}
	deadline := time.Now().Add(loadFor)
	var wg sync.WaitGroup
	for g := range registrars {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("fault-%d-%d", g, i)
				regSent.Add(1)
				r := h.faultDo(c, "POST", "/clients", fmt.Sprintf(`{"client_id":%q,"type":"noop","token":"t-%s"}`, id, id), nil)
				noteLatency(r.latency)
				switch {
				case r.err != nil:
					problem("register %s: %v after %s", id, r.err, r.latency)
				case r.latency > hangLimit:
					problem("register %s took %s", id, r.latency)
				case r.status == 200:
					mu.Lock()
					registered = append(registered, id)
					mu.Unlock()
					if ra := restartedAt.Load(); ra != 0 {
						firstOKAfter.CompareAndSwap(0, time.Now().UnixNano())
					}
				case r.status == 503 && r.name == "store_unavailable":
					regUnavail.Add(1)
					time.Sleep(10 * time.Millisecond) // a client backs off a little
				default:
					problem("register %s: %d %q", id, r.status, r.name)
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; time.Now().Before(deadline); i++ {
			body := fmt.Sprintf(`{"topic":"t","tag":1,"message":"load-%d"}`, i)
			sendSent.Add(1)
			r := h.faultDo(c, "POST", "/clients/sender-target", body, h.signed(body, time.Now().Unix()))
			noteLatency(r.latency)
			switch {
			case r.err != nil:
				problem("send %d: %v after %s", i, r.err, r.latency)
			case r.latency > hangLimit:
				problem("send %d took %s", i, r.latency)
			case r.status == 202:
				sendAccepted.Add(1)
			case r.status == 200:
				sendDup.Add(1)
			case r.status == 503 && r.name == "store_unavailable":
				sendUnavail.Add(1)
				time.Sleep(10 * time.Millisecond)
			default:
				problem("send %d: %d %q", i, r.status, r.name)
			}
		}
	})

	time.Sleep(500 * time.Millisecond)
	rs.Stop()
	time.Sleep(500 * time.Millisecond)
	rs.Restart()
	restartedAt.Store(time.Now().UnixNano())
	wg.Wait()

	for _, p := range problems {
		t.Error(p)
	}
	// Every 202 was a delivery to the noop provider; nothing else delivered
	// during the load.
	delivered := int64(h.providers.Noop().Sent())
	if delivered != sendAccepted.Load() {
		t.Errorf("noop delivered %d; sends answered 202: %d", delivered, sendAccepted.Load())
	}
	if sendDup.Load() != 0 {
		t.Errorf("%d distinct messages were answered 200 (duplicate)", sendDup.Load())
	}
	if regUnavail.Load() == 0 {
		t.Errorf("no registration saw the outage: the fault was not exercised")
	}
	ok := firstOKAfter.Load()
	if ok == 0 {
		t.Fatalf("no registration succeeded after Redis came back: the gateway did not recover by itself")
	}
	recovery := time.Duration(ok - restartedAt.Load())

	// Every acknowledged registration is still there: a send to it is
	// delivered.
	lookups := faultClient(5 * time.Second)
	var lost atomic.Int64
	ids := make(chan string)
	var lw sync.WaitGroup
	for range 8 {
		lw.Go(func() {
			for id := range ids {
				body := `{"topic":"t","tag":1,"message":"after"}`
				r := h.faultDo(lookups, "POST", "/clients/"+id, body, h.signed(body, time.Now().Unix()))
				if r.err != nil || r.status != 202 {
					lost.Add(1)
					problem("acknowledged %s: send after recovery got %d %q %v", id, r.status, r.name, r.err)
				}
			}
		})
	}
	for _, id := range registered {
		ids <- id
	}
	close(ids)
	lw.Wait()
	if lost.Load() != 0 {
		t.Errorf("%d acknowledged registrations were lost", lost.Load())
		for _, p := range problems {
			t.Error(p)
		}
	}
	t.Logf("redis-kill: register sent=%d accepted=%d unavailable=%d lost=%d | send sent=%d accepted=%d delivered=%d unavailable=%d lost=%d | max latency=%s recovery=%s",
		regSent.Load(), len(registered), regUnavail.Load(), lost.Load(),
		sendSent.Load(), sendAccepted.Load(), delivered, sendUnavail.Load(), sendAccepted.Load()-delivered,
		time.Duration(maxLatency.Load()).Round(time.Millisecond), recovery.Round(time.Millisecond))
}

// faultAPNsToken is the device token the provider fault tests script.
const faultAPNsToken = "eeee0000000000000000000000000000000000000000000000000000000000e1"

// newFaultAPNsHarness is a harness whose APNs provider is the mock (token
// auth over TLS), with client "dev" registered on faultAPNsToken. edit
// changes the dispatch config, configure the router's.
func newFaultAPNsHarness(t *testing.T, edit func(*dispatch.Config), configure func(*Config)) (*harness, *dispatchtest.APNs) {
	t.Helper()
	key, p8 := newP8(t)
	mock := dispatchtest.StartAPNs(t, true)
	mock.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	cfg := dispatch.Config{
		APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID,
		APNSPKCS8PEM: p8,
		APNSURL:      mock.URL(), APNSSandboxURL: mock.URL(), RootCAs: mock.RootCAs(),
		MaxAttempts: 3, RetryDelay: func(int, time.Duration) time.Duration { return 0 },
	}
	if edit != nil {
		edit(&cfg)
	}
	h := newHarness(t, options{dispatch: cfg, configure: configure})
	h.register("dev", "apns", faultAPNsToken, false)
	return h, mock
}

// TestProviderHangingAnswers502WithinTheTimeout plays an APNs that never
// answers: the send must fail with 502 provider_unavailable soon after
// PROVIDER_TIMEOUT (not hold the relay), and the relay's retry of the same
// message, once APNs is back, must be delivered (the failed attempt must not
// have left a dedup mark).
func TestProviderHangingAnswers502WithinTheTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h, mock := newFaultAPNsHarness(t,
		func(c *dispatch.Config) { c.Timeout = timeout },
		func(c *Config) { c.SendTimeout = timeout })
	mock.Script(faultAPNsToken, dispatchtest.Answer{Delay: 5 * time.Second})

	body := `{"topic":"t","tag":1,"message":"hang-1"}`
	start := time.Now()
	r := h.send("dev", body)
	took := time.Since(start)
	r.expectError(t, 502, "provider_unavailable")
	if took > timeout+time.Second {
		t.Fatalf("hanging provider answered after %s; want within %s + 1s", took, timeout)
	}
	if n := mock.Count(); n != 0 {
		t.Fatalf("mock accepted %d pushes while hanging", n)
	}

	mock.Script(faultAPNsToken) // the provider recovers
	start = time.Now()
	h.send("dev", body).expectOK(t, 202)
	recovery := time.Since(start)
	if n := mock.Count(); n != 1 {
		t.Fatalf("mock accepted %d pushes after recovery; want 1", n)
	}
	attempts := len(mock.Requests())
	t.Logf("provider-hang: sent=2 accepted=1 delivered=%d lost=0 | 502 after %s (timeout %s) | retry delivered in %s | attempts seen by mock=%d",
		mock.Count(), took.Round(time.Millisecond), timeout, recovery.Round(time.Millisecond), attempts)
}

// TestProviderFlapping has APNs answer 503 to every other request. With the
// default retries each send should still get through; with one attempt about
// half fail with 502 and must be delivered when the relay retries them after
// APNs is healthy. The mock's request count against the sends is the retry
// amplification a flapping provider sees.
func TestProviderFlapping(t *testing.T) {
	for _, attempts := range []int{3, 1} {
		t.Run(fmt.Sprintf("attempts=%d", attempts), func(t *testing.T) {
			h, mock := newFaultAPNsHarness(t, func(c *dispatch.Config) {
				c.MaxAttempts = attempts
				c.Timeout = 2 * time.Second
			}, func(c *Config) { c.SendTimeout = 2 * time.Second })
			const sends = 50
			flap := make([]dispatchtest.Answer, 0, 8*sends)
			for range 4 * sends {
				flap = append(flap, dispatchtest.Answer{Status: 503}, dispatchtest.Answer{})
			}
			mock.Script(faultAPNsToken, flap...)

			c := faultClient(5 * time.Second)
			var (
				mu     sync.Mutex
				failed []string // bodies answered 502
				ok     atomic.Int64
				bad    []string
			)
			jobs := make(chan int)
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() {
					for i := range jobs {
						body := fmt.Sprintf(`{"topic":"t","tag":1,"message":"flap-%d"}`, i)
						r := h.faultDo(c, "POST", "/clients/dev", body, h.signed(body, time.Now().Unix()))
						mu.Lock()
						switch {
						case r.err == nil && r.status == 202:
							ok.Add(1)
						case r.err == nil && r.status == 502 && r.name == "provider_unavailable":
							failed = append(failed, body)
						default:
							bad = append(bad, fmt.Sprintf("send %d: %d %q %v", i, r.status, r.name, r.err))
						}
						mu.Unlock()
					}
				})
			}
			for i := range sends {
				jobs <- i
			}
			close(jobs)
			wg.Wait()
			for _, b := range bad {
				t.Error(b)
			}
			seen := len(mock.Requests())
			delivered := mock.Count()
			if delivered != ok.Load() {
				t.Errorf("mock delivered %d; sends answered 202: %d", delivered, ok.Load())
			}
			if attempts == 1 && len(failed) == 0 {
				t.Errorf("no send failed with one attempt against a flapping provider: the fault was not exercised")
			}

			mock.Script(faultAPNsToken) // healthy again
			var lost int
			for _, body := range failed {
				if r := h.faultDo(c, "POST", "/clients/dev", body, h.signed(body, time.Now().Unix())); r.err != nil || r.status != 202 {
					lost++
					t.Errorf("retry of a 502'd message after recovery: %d %q %v", r.status, r.name, r.err)
				}
			}
			if got := mock.Count(); got != sends {
				t.Errorf("mock delivered %d distinct messages in the end; want %d", got, sends)
			}
			t.Logf("provider-flap attempts=%d: sent=%d accepted=%d failed502=%d delivered=%d lost=%d | mock saw %d attempts for %d sends (%.2fx) | after recovery %d retried, total delivered %d",
				attempts, sends, ok.Load(), len(failed), delivered, lost, seen, sends, float64(seen)/sends, len(failed), mock.Count())
		})
	}
}
