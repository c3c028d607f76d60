package loadtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"push-server/verify"
)

// TestSignBatchVerifies checks what the server will check: every request
// verifies under the relay's public key, with a fresh timestamp; bodies are
// distinct JSON sends; requests go round robin over the clients.
func TestSignBatchVerifies(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := verify.NewRelay(pub, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clients := []string{"z6MkA", "z6MkB", "z6MkC"}
	const n = 301 // not a multiple of the workers, so the last chunk is short
	b, err := SignBatch(priv, clients, n, 4, time.Now().Unix(), "run1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != n {
		t.Fatalf("Len() = %d; want %d", b.Len(), n)
	}
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		body := b.AppendBody(nil, i)
		if err := relay.Verify(b.Timestamp, b.AppendSignature(nil, i), body); err != nil {
			t.Fatalf("request %d does not verify: %v", i, err)
		}
		var send struct {
			Topic   string `json:"topic"`
			Tag     int    `json:"tag"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &send); err != nil || send.Topic == "" || send.Tag == 0 || send.Message == "" {
			t.Fatalf("request %d body %s: %v; want a send with topic, tag and message", i, body, err)
		}
		if seen[send.Message] {
			t.Fatalf("request %d repeats message %q: the server would deduplicate it", i, send.Message)
		}
		seen[send.Message] = true
		if got, want := string(b.AppendPath(nil, i)), "/clients/"+clients[i%3]; got != want {
			t.Fatalf("request %d path = %q; want %q", i, got, want)
		}
	}
	// A signature must not verify another request's body.
	if err := relay.Verify(b.Timestamp, b.AppendSignature(nil, 0), b.AppendBody(nil, 1)); err == nil {
		t.Fatal("signature of request 0 verifies the body of request 1")
	}
}

func TestSignBatchRejects(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	f := func(priv ed25519.PrivateKey, clients []string, run string) {
		t.Helper()
		if _, err := SignBatch(priv, clients, 1, 1, 1, run); err == nil {
			t.Fatalf("SignBatch(%d-byte key, %q, %q) succeeded; want an error", len(priv), clients, run)
		}
	}
	f(priv[:32], []string{"a"}, "r")
	f(priv, nil, "r")
	f(priv, []string{"a"}, `r"`)
}

func TestDue(t *testing.T) {
	f := func(i int, rate float64, want time.Duration) {
		t.Helper()
		if got := Due(i, rate); got != want {
			t.Fatalf("Due(%d, %v) = %v; want %v", i, rate, got, want)
		}
	}
	f(0, 30000, 0)
	f(1, 1000, time.Millisecond)
	f(30000, 30000, time.Second)
	f(3, 3, time.Second)
	f(1, 3, 333333333*time.Nanosecond)
	f(600000, 60000, 10*time.Second) // the whole window of a 10 s run at 60k/s
}

func TestPercentiles(t *testing.T) {
	var l []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	got := Percentiles(l, 0.5, 0.9, 0.99, 0.999, 1)
	want := []time.Duration{50, 90, 99, 100, 100}
	for k := range want {
		if got[k] != want[k]*time.Millisecond {
			t.Fatalf("Percentiles = %v; want %v ms", got, want)
		}
	}
	if got := Percentiles(nil, 0.5); got[0] != 0 {
		t.Fatalf("Percentiles(nil) = %v; want [0]", got)
	}
	if got := Percentiles([]time.Duration{7}, 0.001); got[0] != 7 {
		t.Fatalf("Percentiles of one = %v; want [7]", got)
	}
}
