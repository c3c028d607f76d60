package verify

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// -update rewrites testdata/relay_messages.txt. It exists so the file's origin
// is reproducible; the file was generated once and must not change: a diff in
// it means the signed message format changed, which breaks every relay.
var update = flag.Bool("update", false, "rewrite testdata/relay_messages.txt from relayVectorSeed")

// relayVectorSeed is the fixed seed of the key in testdata/relay_messages.txt.
const relayVectorSeed = "push-server verify testdata relay_messages v1"

// readVectors returns the tab-separated fields of each non-comment line.
func readVectors(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, "\t"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("testdata/%s holds no vectors", name)
	}
	return out
}

// TestRFC8032 checks the raw Ed25519 primitive the relay check relies on
// against RFC 8032 §7.1 TEST 1 and TEST 2 (testdata/ed25519_rfc8032.txt):
// key derivation, deterministic signing and verification.
func TestRFC8032(t *testing.T) {
	for i, v := range readVectors(t, "ed25519_rfc8032.txt") {
		if len(v) != 4 {
			t.Fatalf("vector %d: %d fields; want 4", i, len(v))
		}
		seed, pub, msg, sig := mustHexS(t, v[0]), mustHexS(t, v[1]), mustHexS(t, v[2]), mustHexS(t, v[3])
		priv := ed25519.NewKeyFromSeed(seed)
		if got := priv.Public().(ed25519.PublicKey); !bytes.Equal(got, pub) {
			t.Errorf("vector %d: public key %x; want %x", i, got, pub)
		}
		if got := ed25519.Sign(priv, msg); !bytes.Equal(got, sig) {
			t.Errorf("vector %d: signature %x; want %x", i, got, sig)
		}
		if !ed25519.Verify(pub, msg, sig) {
			t.Errorf("vector %d: signature does not verify", i)
		}
		bad := bytes.Clone(sig)
		bad[63] ^= 0x10 // S out of range: the malleability check must reject it
		if ed25519.Verify(pub, msg, bad) {
			t.Errorf("vector %d: modified S verifies", i)
		}
	}
}

// relayVectorCases are the inputs of testdata/relay_messages.txt.
var relayVectorCases = []struct{ ts, body string }{
	{"1700000000", ""},
	{"1700000000", `{"topic":"t","tag":1100,"message":"hello"}`},
	{"1700000000000", `{"id":"m1","payload":{"topic":"t","flags":1,"blob":"YWJj"}}`},
	{"0001700000000", "leading zeros are signed as sent"},
	{"1", "a.b.c\n.d"},
	{"1700000000", "h\u00e9llo \u4e16\u754c"},
	{"1700000000", "\x00\x01\xff binary\ttab"},
	{"1700000000", strings.Repeat("0123456789", 30)},
}

func TestRelayVectors(t *testing.T) {
	seed := sha256.Sum256([]byte(relayVectorSeed))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	if *update {
		writeRelayVectors(t, priv)
	}
	r, err := NewRelay(pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	vs := readVectors(t, "relay_messages.txt")
	if len(vs) != len(relayVectorCases) {
		t.Errorf("%d vectors in the file; want %d (run with -update only if the cases were extended on purpose)", len(vs), len(relayVectorCases))
	}
	for i, v := range vs {
		if len(v) != 5 {
			t.Fatalf("vector %d: %d fields; want 5", i, len(v))
		}
		if got := hex.EncodeToString(pub); v[0] != got {
			t.Fatalf("vector %d: key %s; the seed gives %s", i, v[0], got)
		}
		ts := []byte(v[1])
		body, msg := []byte(mustUnquote(t, v[2])), []byte(mustUnquote(t, v[3]))
		sigHex := []byte(v[4])
		if got := AppendMessage(nil, ts, body); !bytes.Equal(got, msg) {
			t.Errorf("vector %d: AppendMessage = %q; file says %q", i, got, msg)
		}
		// The file's message bytes, not AppendMessage, are what was signed.
		if !ed25519.Verify(pub, msg, mustHex(t, sigHex)) {
			t.Errorf("vector %d: signature does not verify over the file's message", i)
		}
		if got := Sign(priv, ts, body); got != string(sigHex) {
			t.Errorf("vector %d: Sign = %s; file says %s", i, got, sigHex)
		}
		if err := r.Verify(ts, sigHex, body); err != nil {
			t.Errorf("vector %d: Relay.Verify = %v", i, err)
		}
	}
}

func writeRelayVectors(t *testing.T, priv ed25519.PrivateKey) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Relay signature vectors for push-server: Ed25519 over \"{timestamp}.{len(body)}.{body}\".\n")
	fmt.Fprintf(&b, "# Generated once by `go test ./verify -run TestRelayVectors -update` on %s;\n", time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "# the private key is ed25519.NewKeyFromSeed(sha256(%q)).\n", relayVectorSeed)
	fmt.Fprintf(&b, "# Fields, tab-separated: public key (hex), X-Ed25519-Timestamp, body (Go-quoted),\n")
	fmt.Fprintf(&b, "# signed message (Go-quoted), X-Ed25519-Signature (hex).\n")
	for _, c := range relayVectorCases {
		msg := AppendMessage(nil, []byte(c.ts), []byte(c.body))
		fmt.Fprintf(&b, "%x\t%s\t%s\t%s\t%s\n", priv.Public(), c.ts, strconv.Quote(c.body), strconv.Quote(string(msg)), Sign(priv, []byte(c.ts), []byte(c.body)))
	}
	if err := os.WriteFile(filepath.Join("testdata", "relay_messages.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustHexS(t *testing.T, s string) []byte {
	t.Helper()
	return mustHex(t, []byte(s))
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("unquote %s: %v", s, err)
	}
	return u
}
