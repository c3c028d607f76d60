package router

import (
	"fmt"
	"os"
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

// crashLoad sizes one run of TestDedupSurvivesRedisCrash.
type crashLoad struct {
	rate    int           // sends a second, spread over both instances
	loadFor time.Duration // how long the load runs
	killAt  time.Duration // into the load, Redis's primary is SIGKILLed
	outage  time.Duration // and restarted this much later
	runs    int
}

// crashLoadFast runs in make test; crashLoadFull (PUSH_FAULTS=full, make
// faults) is the figure: ~400 sends/s, Redis down for 5 s, 4 runs.
var (
	crashLoadFast = crashLoad{rate: 200, loadFor: 1500 * time.Millisecond, killAt: 500 * time.Millisecond, outage: 700 * time.Millisecond, runs: 1}
	crashLoadFull = crashLoad{rate: 400, loadFor: 12 * time.Second, killAt: 4 * time.Second, outage: 5 * time.Second, runs: 4}
)

// TestDedupSurvivesRedisCrash SIGKILLs Redis's primary under a steady load
// of distinct sends through two instances — A on the primary alone, B with
// a replica in its region, which keeps delivering known clients during the
// outage on its in-process fallback — and restarts it on the same port and
// data. Once every claim's lease has run out, the relay re-sends every
// message that was answered 202, through both instances. A user expects
// each to hear 200 and the APNs mock to have received each message exactly
// once: neither a delivered mark queued behind its answer at the kill nor
// one made by the fallback during the outage may be forgotten.
//
// The primary runs with AOF and appendfsync always, so a crash loses
// nothing it acknowledged. With everysec a process kill normally loses
// nothing acknowledged either (the AOF is written before the reply; only
// its fsync is deferred), except writes that Redis postponed behind a slow
// fsync (up to 2 s of them), and a machine crash loses up to the last
// second or two: a mark acknowledged and lost that way is not kept by the
// gateway, and its message can be delivered twice. The test's figure would
// then depend on the disk, not on the gateway.
func TestDedupSurvivesRedisCrash(t *testing.T) {
	load := crashLoadFast
	if os.Getenv("PUSH_FAULTS") == "full" {
		load = crashLoadFull
	} else if testing.Short() {
		t.Skip("kills and restarts redis-server under load")
	}
	for run := range load.runs {
		t.Run(fmt.Sprint("run", run+1), func(t *testing.T) { crashRun(t, load) })
	}
}

func crashRun(t *testing.T, load crashLoad) {
	primary := cachetest.StartRedisServer(t)
	replica := cachetest.StartReplicaServer(t, primary.Addr)
	prefix := fmt.Sprintf("crash%d:", time.Now().UnixNano())
	open := func(replicaURL string) func(t *testing.T) cache.Store {
		return func(t *testing.T) cache.Store {
			s, err := cache.NewRedis(cache.RedisConfig{URL: "redis://" + primary.Addr, ReplicaURL: replicaURL,
				Timeout: 300 * time.Millisecond, KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	key, p8 := testkit.NewP8(t)
	mock := dispatchtest.StartAPNs(t, true)
	mock.TrustKey(apnsKeyID, apnsTeamID, &key.PublicKey)
	// Long enough that a push slowed by the machine (a burst after the
	// outage, -race) is not answered 502 after the mock took it: the relay
	// would retry that, a duplicate this test is not about.
	const sendTimeout = time.Second
	opts := func(store func(t *testing.T) cache.Store) options {
		return options{
			store: store,
			dispatch: dispatch.Config{
				Credentials: dispatch.Credentials{APNSType: "token", APNSTopic: apnsTopic, APNSKeyID: apnsKeyID, APNSTeamID: apnsTeamID,
					APNSPKCS8PEM: p8},
				APNSURL: mock.URL(), APNSSandboxURL: mock.URL(), RootCAs: mock.RootCAs(),
				Timeout: sendTimeout,
			},
			configure: func(c *Config) { c.SendTimeout = sendTimeout },
		}
	}
	insts := []*harness{newHarness(t, opts(open(""))), newHarness(t, opts(open("redis://"+replica.Addr)))}
	const targets = 8
	for i := range targets {
		insts[0].register(fmt.Sprintf("target-%d", i), "apns", fmt.Sprintf("%062x%02x", 0xc7a5, i), false)
	}
	cachetest.WaitReplicaSynced(t, replica.Addr)
	// A send is answered within its claim's lease, or never: past it the
	// claim no longer guards the send, and an answer would mean nothing
	// for dedup. So the lease, not the machine's speed, bounds the wait;
	// a fixed 3 s timed out sends that a starved machine (load average
	// above 20, -race) answered 202 or 502 after 3.1–3.8 s.
	answerWithin := sendTimeout + leaseMargin
	c := faultClient(answerWithin)
	// B looks every target up once, so it knows them when the primary is
	// gone; these warm-up messages count like the others.
	var (
		mu       sync.Mutex
		answered = map[string]int{} // message → status
		via      = map[string]int{} // message → instance that answered 202
		problems []string
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	send := func(inst int, target int, msg string) faultReply {
		h := insts[inst]
		body := fmt.Sprintf(`{"topic":"t","tag":1,"message":%q}`, msg)
		return h.faultDo(c, "POST", fmt.Sprintf("/clients/target-%d", target), body, h.signed(body, time.Now().Unix()))
	}
	for i := range targets {
		msg := fmt.Sprint("warm-", i)
		if r := send(1, i, msg); r.err != nil || r.status != 202 {
			t.Fatalf("warm-up send through B: %d %q %v", r.status, r.name, r.err)
		}
		answered[msg], via[msg] = 202, 1
	}

	var (
		sent, outage202, outage503 atomic.Int64
		timedOut                   atomic.Int64 // 502 provider_unavailable
		down                       atomic.Bool
		lastAnswer                 time.Time // when the last send was answered; under mu
	)
	// Enough senders that sends waiting out the store's timeout during the
	// outage (A's look-ups, 300 ms) do not slow the others' pace.
	jobs := make(chan int, 256)
	var wg sync.WaitGroup
	for range 128 {
		wg.Go(func() {
			for i := range jobs {
				msg := fmt.Sprint("load-", i)
				inst := i % 2
				wasDown := down.Load()
				r := send(inst, (i/2)%targets, msg)
				mu.Lock()
				lastAnswer = time.Now()
				answered[msg] = r.status
				if r.status == 202 {
					via[msg] = inst
				}
				mu.Unlock()
				if wasDown && down.Load() {
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
				case r.status == 202, r.status == 503 && r.name == "store_unavailable":
				case r.status == 502 && r.name == "provider_unavailable":
					// The mock answered after SendTimeout (a starved
					// machine, -race): not this test's subject, see below.
					timedOut.Add(1)
				default:
					problem("send %s through %c: %d %q", msg, 'A'+inst, r.status, r.name)
				}
			}
		})
	}
	start := time.Now()
	killed := make(chan struct{})
	var downFor time.Duration // read after killed
	go func() {
		defer close(killed)
		time.Sleep(load.killAt)
		down.Store(true)
		primary.Stop()
		stopped := time.Now()
		time.Sleep(load.outage)
		// A starved machine can take longer than the outage to answer any
		// send: the primary stays down until B has answered one 202 while
		// it was down (checked below), within a send's bound.
		for until := time.Now().Add(answerWithin); outage202.Load() == 0 && time.Now().Before(until); {
			time.Sleep(10 * time.Millisecond)
		}
		primary.Restart()
		down.Store(false)
		downFor = time.Since(stopped)
	}()
	// Send i leaves at start + i/rate: on a busy machine the pace catches
	// up after a stall instead of dropping sends, as a ticker would.
	interval := time.Second / time.Duration(load.rate)
	for i := 0; i < int(load.loadFor/interval); i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		jobs <- i
		sent.Add(1)
	}
	close(jobs)
	wg.Wait()
	<-killed
	loadTook := time.Since(start)
	for _, p := range problems {
		t.Error(p)
	}
	problems = nil

	// The relay re-sends after the lease (SendTimeout + leaseMargin) of the
	// last claim has run out, so no claim can answer for a mark. Every claim
	// was taken before its send was answered: counting from the last
	// answer, rather than the last send's start, holds however long a
	// starved machine took to answer.
	time.Sleep(time.Until(lastAnswer.Add(sendTimeout + leaseMargin + 500*time.Millisecond)))
	var resent []string
	for msg, st := range answered {
		if st == 202 {
			resent = append(resent, msg)
		}
	}
	var resent200 atomic.Int64
	msgs := make(chan string)
	var rw sync.WaitGroup
	for range 8 {
		rw.Go(func() {
			for msg := range msgs {
				target := 0
				if _, err := fmt.Sscanf(msg, "warm-%d", &target); err != nil {
					var i int
					fmt.Sscanf(msg, "load-%d", &i)
					target = (i / 2) % targets
				}
				// First through the instance that did not deliver it.
				for _, inst := range []int{1 - via[msg], via[msg]} {
					r := send(inst, target, msg)
					if r.err == nil && r.status == 200 {
						resent200.Add(1)
					} else {
						problem("re-send of %s (202 through %c) through %c after the lease: %d %q %v; want 200",
							msg, 'A'+via[msg], 'A'+inst, r.status, r.name, r.err)
					}
				}
			}
		})
	}
	for _, msg := range resent {
		msgs <- msg
	}
	close(msgs)
	rw.Wait()

	delivered := deliveredByBlob(t, mock)
	var accepted, twice, never, unacked int
	var twiceVia [2]int // by the instance that answered 202
	for msg, st := range answered {
		n := delivered[msg]
		switch {
		case st == 202 && n == 1:
			accepted++
		case st == 202 && n == 0:
			accepted++
			never++
			problem("%s answered 202 but never delivered", msg)
		case st == 202:
			accepted++
			twice++
			twiceVia[via[msg]]++
			problem("%s answered 202 and delivered %d times", msg, n)
		case st == 502:
			// A push the mock took after the send had timed out: the relay
			// retries it and it is delivered again. That is the provider
			// timeout's duplicate, whatever Redis does; the relay re-sends
			// only 202'd messages here.
		case n > 0:
			unacked++
			problem("%s answered %d but delivered %d times", msg, st, n)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if outage202.Load() == 0 {
		t.Errorf("no send was answered 202 while the primary was down: B's fallback was not exercised")
	}
	t.Logf("redis-crash: sent=%d in %s (%.0f/s) accepted=%d (during the %s outage: 202=%d through B's fallback, 503=%d) | after the lease re-sent %d messages twice each (other instance, then the same): 200=%d | delivered twice=%d (202 through A=%d, through B=%d) never=%d delivered-but-not-202=%d | provider timeouts (502, not re-sent)=%d",
		sent.Load()+targets, loadTook.Round(time.Millisecond), float64(sent.Load())/loadTook.Seconds(), accepted,
		downFor.Round(time.Millisecond), outage202.Load(), outage503.Load(), len(resent), resent200.Load(), twice, twiceVia[0], twiceVia[1], never, unacked, timedOut.Load())
}
