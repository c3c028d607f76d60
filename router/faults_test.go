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
	"push-server/internal/testkit"
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
// into a load that is mostly sends (six relays sending distinct messages to
// eight pre-registered APNs clients, the mock recording every push) plus two
// wallets registering, and brings it back a second later. A user
// expects: fast 503 store_unavailable during the outage (no hang, no 500),
// recovery without a restart of the gateway, every send answered 202
// delivered exactly once and no message answered otherwise delivered (a
// relay retries those), and no acknowledged registration lost.
func TestRedisKilledMidLoadAndRestarted(t *testing.T) {
	rs := cachetest.StartRedisServer(t)
	key, p8 := testkit.NewP8(t)
	mock := dispatchtest.StartAPNs(t, true)
	mock.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	h := newHarness(t, options{
		store: func(t *testing.T) cache.Store {
			s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + rs.Addr, Timeout: 300 * time.Millisecond,
				KeyPrefix: fmt.Sprintf("faults%d:", time.Now().UnixNano())})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		dispatch: dispatch.Config{
			Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID,
				APNSPKCS8PEM: p8},
			APNSURL: mock.URL(), APNSSandboxURL: mock.URL(), RootCAs: mock.RootCAs(),
			Timeout: 2 * time.Second,
		},
		configure: func(c *Config) { c.SendTimeout = 2 * time.Second },
	})
	const (
		targets    = 8
		senders    = 6
		registrars = 2
		outage     = time.Second
		loadFor    = 2*time.Second + outage
		hangLimit  = time.Second // a hang that lasts the outage shows
	)
	for i := range targets {
		h.register(fmt.Sprintf("target-%d", i), "apns", fmt.Sprintf("%062x%02x", 0xfa017, i), false)
	}
	c := faultClient(3 * time.Second)
	degradedBefore := dedupDegraded.Get()

	var (
		mu           sync.Mutex
		registered   []string           // ids acknowledged with 200
		answered     = map[string]int{} // message → status answered
		problems     []string
		regSent      atomic.Int64
		regUnavail   atomic.Int64
		sendSent     atomic.Int64
		sendUnavail  atomic.Int64
		firstOKAfter atomic.Int64 // unix nanos of the first success answered after Restart
		stoppedAt    atomic.Int64
		restartedAt  atomic.Int64
		maxLatency   atomic.Int64
		outage202    atomic.Int64 // sends answered 202 while Redis was down
		outage503    atomic.Int64 // sends answered 503 while Redis was down
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
	noteSuccess := func() {
		if restartedAt.Load() != 0 {
			firstOKAfter.CompareAndSwap(0, time.Now().UnixNano())
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
					noteSuccess()
				case r.status == 503 && r.name == "store_unavailable":
					regUnavail.Add(1)
					time.Sleep(10 * time.Millisecond) // a client backs off a little
				default:
					problem("register %s: %d %q", id, r.status, r.name)
				}
			}
		})
	}
	for g := range senders {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				msg := fmt.Sprintf("load-%d-%d", g, i)
				body := fmt.Sprintf(`{"topic":"t","tag":1,"message":%q}`, msg)
				sendSent.Add(1)
				r := h.faultDo(c, "POST", fmt.Sprintf("/clients/target-%d", (g+i)%targets), body, h.signed(body, time.Now().Unix()))
				noteLatency(r.latency)
				mu.Lock()
				answered[msg] = r.status
				mu.Unlock()
				if stop, now := stoppedAt.Load(), time.Now().UnixNano(); stop != 0 && now-int64(r.latency) > stop && restartedAt.Load() == 0 {
					// Sent and answered while Redis was down.
					switch r.status {
					case 202:
						outage202.Add(1)
					case 503:
						outage503.Add(1)
					}
				}
				switch {
				case r.err != nil:
					problem("send %s: %v after %s", msg, r.err, r.latency)
				case r.latency > hangLimit:
					problem("send %s took %s", msg, r.latency)
				case r.status == 202:
					noteSuccess()
				case r.status == 503 && r.name == "store_unavailable":
					sendUnavail.Add(1)
					time.Sleep(10 * time.Millisecond)
				default:
					problem("send %s: %d %q", msg, r.status, r.name)
				}
			}
		})
	}

	time.Sleep(500 * time.Millisecond)
	rs.Stop()
	stoppedAt.Store(time.Now().UnixNano())
	time.Sleep(outage)
	rs.Restart()
	restartedAt.Store(time.Now().UnixNano())
	wg.Wait()

	for _, p := range problems {
		t.Error(p)
	}
	problems = nil // reported; the checks below collect their own
	// Exactly once: each message the mock accepted, counted by its blob.
	delivered := deliveredByBlob(t, mock)
	var accepted, deliveredOnce, deliveredTwice, notDelivered, deliveredUnacked int
	for msg, st := range answered {
		n := delivered[msg]
		switch {
		case st == 202 && n == 1:
			accepted++
			deliveredOnce++
		case st == 202 && n == 0:
			accepted++
			notDelivered++
			problem("send %s answered 202 but never delivered", msg)
		case st == 202:
			accepted++
			deliveredTwice++
			problem("send %s answered 202 and delivered %d times", msg, n)
		case n > 0:
			deliveredUnacked++
			problem("send %s answered %d but delivered %d times: the relay's retry would duplicate it", msg, st, n)
		}
	}
	for msg := range delivered {
		if _, ok := answered[msg]; !ok {
			problem("delivered %s, which was never sent", msg)
		}
	}
	if accepted == 0 {
		t.Errorf("no send was accepted")
	}
	// Sends to a client the store's client-side cache holds are delivered
	// during the outage (dedup degrades to this instance, 202); others are
	// 503. Either way some must have been sent and answered while Redis
	// was down, or the kill did not land mid-send.
	if regUnavail.Load() == 0 || outage202.Load()+outage503.Load() == 0 {
		t.Errorf("registrations answered 503 %d times, sends answered during the outage %d: the outage was not exercised on both",
			regUnavail.Load(), outage202.Load()+outage503.Load())
	}
	ok := firstOKAfter.Load()
	if ok == 0 {
		t.Fatalf("nothing succeeded after Redis came back: the gateway did not recover by itself")
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
	for _, p := range problems {
		t.Error(p)
	}
	if lost.Load() != 0 {
		t.Errorf("%d acknowledged registrations were lost", lost.Load())
	}
	t.Logf("redis-kill: register sent=%d accepted=%d unavailable=%d lost=%d | send sent=%d accepted=%d delivered once=%d twice=%d never=%d delivered-but-not-202=%d unavailable=%d degraded-dedup=%d lost=%d (during the outage: %d sends answered 202, %d answered 503) | max latency=%s recovery=%s",
		regSent.Load(), len(registered), regUnavail.Load(), lost.Load(),
		sendSent.Load(), accepted, deliveredOnce, deliveredTwice, notDelivered, deliveredUnacked, sendUnavail.Load(),
		dedupDegraded.Get()-degradedBefore, notDelivered, outage202.Load(), outage503.Load(),
		time.Duration(maxLatency.Load()).Round(time.Millisecond), recovery.Round(time.Millisecond))
}

// faultAPNsToken is the device token the provider fault tests script.
const faultAPNsToken = "eeee0000000000000000000000000000000000000000000000000000000000e1"

// newFaultAPNsHarness is a harness whose APNs provider is the mock (token
// auth over TLS), with client "dev" registered on faultAPNsToken. edit
// changes the dispatch config, configure the router's.
func newFaultAPNsHarness(t *testing.T, edit func(*dispatch.Config), configure func(*Config)) (*harness, *dispatchtest.APNs) {
	t.Helper()
	key, p8 := testkit.NewP8(t)
	mock := dispatchtest.StartAPNs(t, true)
	mock.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	cfg := dispatch.Config{
		Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID,
			APNSPKCS8PEM: p8},
		APNSURL: mock.URL(), APNSSandboxURL: mock.URL(), RootCAs: mock.RootCAs(),
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

// TestDrainFailsReadinessAndClosesConnections checks what a load balancer
// and a keep-alive relay see once shutdown begins (Drain) and before the
// listener closes: readiness fails with 503 shutting_down, while every
// other route still answers normally with Connection: close, so that the
// relay reconnects to another instance instead of losing a request to the
// coming close.
func TestDrainFailsReadinessAndClosesConnections(t *testing.T) {
	h := newHarness(t, options{})
	h.register("d", "noop", "tok-d", false)
	h.do("GET", "/health/ready", "", nil).expectOK(t, 200)
	if r := h.do("GET", "/health/ready", "", nil); r.closed {
		t.Fatal("Connection: close before Drain")
	}

	h.srv.Drain()
	h.do("GET", "/health/ready", "", nil).expectError(t, 503, "shutting_down")
	if r := h.do("GET", "/health/ready", "", nil); r.status != 503 || !r.closed {
		t.Errorf("readiness while draining: %d, Connection: close %v; want 503 and close", r.status, r.closed)
	}
	body := `{"topic":"t","tag":1,"message":"during-drain"}`
	h.send("d", body).expectOK(t, 202)
	body2 := `{"topic":"t","tag":1,"message":"during-drain-2"}`
	if r := h.do("POST", "/clients/d", body2, h.signed(body2, time.Now().Unix())); r.status != 202 || !r.closed {
		t.Errorf("send while draining: %d, Connection: close %v; want 202 and close", r.status, r.closed)
	}
	if n := h.providers.Noop().Sent(); n != 2 {
		t.Errorf("noop delivered %d while draining; want 2", n)
	}
	if r := h.do("GET", "/health", "", nil); r.status != 200 || !r.closed {
		t.Errorf("GET /health while draining: %d, Connection: close %v; want 200 and close", r.status, r.closed)
	}
}

// deliveredByBlob counts the pushes the mock APNs accepted, by their blob
// (each message's own text), for the exactly-once checks.
func deliveredByBlob(t *testing.T, mock *dispatchtest.APNs) map[string]int {
	t.Helper()
	delivered := map[string]int{}
	for _, req := range mock.Requests() {
		if req.Status != 200 {
			continue
		}
		var push struct {
			Blob string `json:"blob"`
		}
		if err := json.Unmarshal(req.Body, &push); err != nil || push.Blob == "" {
			t.Fatalf("mock push without a blob: %s (%v)", req.Body, err)
		}
		delivered[push.Blob]++
	}
	return delivered
}
