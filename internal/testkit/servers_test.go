package testkit

import (
	"net/http"
	"testing"
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
