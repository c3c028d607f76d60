package testkit

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

func TestClosingServerDropsEveryRequest(t *testing.T) {
	url := ClosingServer(t)
	for range 2 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s answered %d; want the connection dropped", url, resp.StatusCode)
		}
	}
}

func TestSilentServerAcceptsAndNeverAnswers(t *testing.T) {
	c, err := net.Dial("tcp", SilentServer(t))
	if err != nil {
		t.Fatalf("dial: %v; want the connection accepted", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read = %d, %v; want no answer until the deadline", n, err)
	}
}
