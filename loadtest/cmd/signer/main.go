// Command signer writes pre-signed requests to a JSON file for the k6
// scripts (k6 cannot sign Ed25519 itself, and signing inside the test would
// measure k6). The file holds:
//
//	{"clients": [{"client_id": …, "type": …, "token": …}, …],
//	 "sends":   [{"path": "/clients/…", "timestamp": "…", "signature": "…", "body": "…"}, …]}
//
// The signatures carry one timestamp, taken now: the server accepts them for
// SIGNATURE_MAX_AGE (300 s by default), so sign right before the k6 run, or
// run the server with SIGNATURE_MAX_AGE=0.
package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"push-server/loadtest"
)

type client struct {
	ClientID string `json:"client_id"`
	Type     string `json:"type"`
	Token    string `json:"token"`
}

type send struct {
	Path      string `json:"path"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	Body      string `json:"body"`
}

func main() {
	keyHex := flag.String("key", os.Getenv("RELAY_PRIVATE_KEY"), "relay private key, hex seed; default $RELAY_PRIVATE_KEY")
	nClients := flag.Int("clients", 1000, "clients to register and send to")
	typ := flag.String("type", "noop", "provider type of the clients")
	n := flag.Int("n", 100000, "signed sends to write (each body unique)")
	out := flag.String("out", "requests.json", "output file")
	flag.Parse()
	if err := run(*keyHex, *nClients, *typ, *n, *out); err != nil {
		fmt.Fprintln(os.Stderr, "signer:", err)
		os.Exit(1)
	}
}

func run(keyHex string, nClients int, typ string, n int, out string) error {
	seed, err := hex.DecodeString(strings.TrimPrefix(keyHex, "0x"))
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("-key: want the relay's 32-byte seed as 64 hex digits (push-server keygen)")
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	run := hex.EncodeToString(r[:])
	ids := make([]string, nClients)
	for i := range ids {
		ids[i] = "k6-" + run + "-" + strconv.Itoa(i)
	}
	start := time.Now()
	b, err := loadtest.SignBatch(ed25519.NewKeyFromSeed(seed), ids, n, 0, time.Now().Unix(), run)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("cannot create -out: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	w.WriteString(`{"clients":[`)
	for i, id := range ids {
		if i > 0 {
			w.WriteByte(',')
		}
		if err := enc.Encode(client{id, typ, loadtest.Token(id)}); err != nil {
			return err
		}
	}
	w.WriteString(`],"sends":[`)
	ts := string(b.Timestamp)
	for i := 0; i < b.Len(); i++ {
		if i > 0 {
			w.WriteByte(',')
		}
		s := send{string(b.AppendPath(nil, i)), ts, string(b.AppendSignature(nil, i)), string(b.AppendBody(nil, i))}
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		return fmt.Errorf("cannot write -out: %w", err)
	}
	fmt.Fprintf(os.Stderr, "signer: %d clients, %d sends signed in %v, written to %s\n",
		nClients, n, time.Since(start).Round(time.Millisecond), out)
	return f.Close()
}
