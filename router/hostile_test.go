package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
