package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"push-server/cache"
)

// A client that sends its headers a byte at a time (slowloris) is cut off
// once ReadTimeout passes, with the envelope, not held open.
func TestSlowClientIsCutOff(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.ReadTimeout = 300 * time.Millisecond }})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	partial := "POST /clients HTTP/1.1\r\nHost: x\r\nX-Slow: "
	for i := 0; i < len(partial); i++ {
		if _, err := conn.Write([]byte{partial[i]}); err != nil {
			break // the server already hung up
		}
		time.Sleep(20 * time.Millisecond)
		if time.Since(start) > 2*time.Second {
			break
		}
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 || !strings.Contains(string(body), `"request_timeout"`) {
			t.Fatalf("slow client got %d %s; want 408 request_timeout", resp.StatusCode, body)
		}
	}
	// Either way the connection must be closed by the server, well before
	// the client would have finished.
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server kept the slow connection open")
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("cut off after %v; want about ReadTimeout", took)
	}
}

func TestOversizeHeadersAreRefusedInTheEnvelope(t *testing.T) {
	h := newHarness(t, options{})
	r := h.do("POST", "/clients", `{}`, map[string]string{"X-Big": strings.Repeat("a", 16<<10)})
	r.expectError(t, 431, "headers_too_large")
}

// TestOversizeRequestsGetTheirAnswerNotAReset: a request refused before it
// was read to its end (oversize headers or body) must still reach its
// client as the envelope. fasthttp closed such connections with the rest
// unread, so the kernel reset them and clients saw ECONNRESET instead of the
// answer (26 of 400 here before lingerListener).
func TestOversizeRequestsGetTheirAnswerNotAReset(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.MaxBodySize = 1 << 10 }})
	bigHeader := strings.Repeat("a", 64<<10)
	bigBody := `{"client_id":"` + strings.Repeat("b", 256<<10) + `"}`
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A connection each: every refusal closes its connection.
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; i < 25; i++ {
				headers := i%2 == 0
				body := `{}`
				if !headers {
					body = bigBody
				}
				req, err := http.NewRequest("POST", h.url+"/clients", strings.NewReader(body))
				if err != nil {
					errs <- err.Error()
					return
				}
				want, name := 413, `"request_too_large"`
				if headers {
					req.Header.Set("X-Big", bigHeader)
					want, name = 431, `"headers_too_large"`
				}
				resp, err := c.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want || !strings.Contains(string(b), name) {
					errs <- fmt.Sprintf("got %d %s; want %d %s", resp.StatusCode, b, want, name)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n++; n <= 3 {
			t.Error(e)
		}
	}
	if n > 0 {
		t.Errorf("%d of 200 oversize requests did not get their envelope", n)
	}
}

func TestGarbageIsRefusedInTheEnvelope(t *testing.T) {
	h := newHarness(t, options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("HELLO THERE\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"bad_request"`) {
		t.Fatalf("garbage got %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestRegistrationsAreRateLimited(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, options{store: st.open,
				deps: func(d *Deps) { d.Limiter = d.Store.(cache.Limiter) },
				configure: func(c *Config) {
					c.RateLimits = RateLimits{PerIP: 3, PerClient: 2, Window: time.Minute,
						TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}
				}})
			reg := func(id string, hdr map[string]string) reply {
				return h.do("POST", "/clients", `{"client_id":"`+id+`","type":"noop","token":"t-`+id+`"}`, hdr)
			}
			xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip + ", 10.0.0.1"} }
			// Per client id.
			reg("same", xff("192.0.2.1")).expectOK(t, 200)
			reg("same", xff("192.0.2.2")).expectOK(t, 200)
			r := reg("same", xff("192.0.2.3"))
			r.expectError(t, 429, "rate_limited")
			if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 60 {
				t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
			}
			// Per address: the rightmost hop that is not a trusted proxy.
			for i := range 3 {
				reg("ip-"+strconv.Itoa(i), xff("198.51.100.7")).expectOK(t, 200)
			}
			reg("ip-3", xff("198.51.100.7")).expectError(t, 429, "rate_limited")
			reg("ip-4", xff("198.51.100.8")).expectOK(t, 200)
			h.do("DELETE", "/clients/ip-5", "", xff("198.51.100.7")).expectError(t, 429, "rate_limited")
		})
	}
}

func TestForwardedForIsIgnoredFromUntrustedPeers(t *testing.T) {
	h := newHarness(t, options{
		deps:      func(d *Deps) { d.Limiter = d.Store.(cache.Limiter) },
		configure: func(c *Config) { c.RateLimits = RateLimits{PerIP: 2, Window: time.Minute} }})
	for i := range 2 {
		h.do("POST", "/clients", `{"client_id":"u`+strconv.Itoa(i)+`","type":"noop","token":"t`+strconv.Itoa(i)+`"}`,
			map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i)}).expectOK(t, 200)
	}
	// A spoofed header does not buy a fresh bucket.
	h.do("POST", "/clients", `{"client_id":"u9","type":"noop","token":"t9"}`,
		map[string]string{"X-Forwarded-For": "203.0.113.99", "Fly-Client-IP": "203.0.113.98"}).expectError(t, 429, "rate_limited")
}

// TestRefusedRequestEndsItsStreamAtOnce: after a refusal's answer the server
// sends the end of the stream (a FIN) before it drains what the client
// still sends, so a client that reads to the end is not held for the
// drain's 500 ms.
func TestRefusedRequestEndsItsStreamAtOnce(t *testing.T) {
	h := newHarness(t, options{})
	addr := strings.TrimPrefix(h.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers past the 8 KiB limit, and the request left unfinished, so
	// the connection is refused with bytes still unread.
	req := "POST /clients HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(5 * time.Second))
	b, err := io.ReadAll(c)
	took := time.Since(start)
	if err != nil || !strings.Contains(string(b), `"headers_too_large"`) {
		t.Fatalf("read %q, %v; want the 431 envelope and the end of the stream", b, err)
	}
	if took >= lingerFor/2 {
		t.Errorf("the end of the stream came after %v; want it right after the answer, not after the %v drain", took, lingerFor)
	}
}
