package dispatch

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// TestWebPushHTTPECEDecrypts has a second implementation judge our
// encryption: the body the webpush sender put on the wire is decrypted by
// the npm package http_ece (what the web-push package uses), run with node
// (testdata/http-ece; make test installs it), and must give back the
// payload the sender built.
func TestWebPushHTTPECEDecrypts(t *testing.T) {
	const dir = "testdata/http-ece"
	testkit.SkipShort(t, "node and the npm package http_ece")
	if _, err := exec.LookPath("node"); err != nil {
		testkit.Missing(t, "node not found in PATH (%v): install Node.js, then run make http-ece (or make test)", err)
	}
	if _, err := os.Stat(dir + "/node_modules/http_ece"); err != nil {
		testkit.Missing(t, "http_ece is not installed: run make http-ece (npm ci --prefix dispatch/%s), or make test: %v", dir, err)
	}

	// A browser's side of a subscription, and a push service that keeps
	// what it is sent.
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	s := webpushTo(t, srv.URL)
	sub, _ := json.Marshal(map[string]any{"endpoint": srv.URL + "/push/1", "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		"auth":   base64.RawURLEncoding.EncodeToString(auth),
	}})

	for _, n := range []*Notification{
		{Kind: KindRaw, Data: []Field{{"topic", "t"}, {"tag", "4000"}, {"message", "hello"}}},
		{Kind: KindVisible, Title: "Signature required", Body: "ünïcode ✓ <&>", Data: []Field{{"topic", "t"}, {"blob", "YmxvYg"}, {"tag", "1108"}}},
		// The largest payload: a 4096-byte record.
		{Kind: KindRaw, Data: []Field{{"topic", "t"}, {"message", string(bytes.Repeat([]byte{'x'}, maxWebPushPlaintext-26))}}},
	} {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		if err := s.Send(t.Context(), string(sub), n); err != nil {
			t.Fatalf("Send: %v", err)
		}
		mu.Lock()
		body := bodies[0]
		mu.Unlock()
		want := appendWebPushPayload(nil, n)
		if got := eceDecrypt(t, dir, body, key, auth); !bytes.Equal(got, want) {
			t.Fatalf("http_ece decrypted %q, want %q", got, want)
		}
	}
}

// eceDecrypt runs decrypt.mjs on one body.
func eceDecrypt(t *testing.T, dir string, body []byte, key *ecdh.PrivateKey, auth []byte) []byte {
	t.Helper()
	in, _ := json.Marshal(map[string]string{
		"body":       base64.RawURLEncoding.EncodeToString(body),
		"privateKey": base64.RawURLEncoding.EncodeToString(key.Bytes()),
		"auth":       base64.RawURLEncoding.EncodeToString(auth),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", dir+"/decrypt.mjs")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decrypt.mjs: %v\n%s", err, stderr.Bytes())
	}
	plain, err := base64.RawURLEncoding.DecodeString(string(out))
	if err != nil {
		t.Fatalf("decrypt.mjs printed %q: %v", out, err)
	}
	return plain
}
