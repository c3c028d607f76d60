// Package loadtest prepares load for push-server: send requests signed ahead
// of the measured window (signing costs about as much as the server's own
// verification, so a generator that signed on the fly would measure itself),
// the open-loop schedule, latency percentiles, and the Generator that sends
// them in closed and open loops and records each phase's latencies.
//
// cmd/loadgen drives the server with them (flags and the report); cmd/signer writes them to a file
// for the k6 scripts; cmd/mockapns and cmd/fillredis set up the APNs and the
// one-million-clients runs. See run.sh and ../BENCHMARKS.md.
package loadtest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"push-server/verify"
)

// Batch is a set of send requests signed before a load window. Request i
// goes to client ClientID(i) with body AppendBody(nil, i); every body is
// different, so no request is answered from the deduplication record (a
// 200 instead of a 202 would skip the provider and flatter the server).
//
// Only the signatures are kept (64 bytes a request): bodies are rebuilt from
// their index, so a million requests fit in 64 MB. A Batch is read-only
// after SignBatch returns and safe for concurrent use.
type Batch struct {
	// Run is part of every body, so a re-run against a store that still
	// remembers the last run's message ids (DEDUP_TTL) is not deduplicated.
	Run string
	// Timestamp is the X-Ed25519-Timestamp of every request, in unix seconds.
	Timestamp []byte
	// Clients are the client ids the requests go to, round robin.
	Clients []string
	sigs    [][ed25519.SignatureSize]byte
}

// SignBatch signs n send requests with priv, spread over clients, using
// workers goroutines (0 = GOMAXPROCS). timestamp is unix seconds; run tells
// runs apart (see Batch.Run) and must not contain '"' or '\'.
func SignBatch(priv ed25519.PrivateKey, clients []string, n, workers int, timestamp int64, run string) (*Batch, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("loadtest: private key is %d bytes; want %d", len(priv), ed25519.PrivateKeySize)
	}
	if len(clients) == 0 {
		return nil, errors.New("loadtest: no clients to send to")
	}
	for i := 0; i < len(run); i++ {
		if run[i] == '"' || run[i] == '\\' || run[i] < ' ' {
			return nil, fmt.Errorf("loadtest: run %q: must not need JSON escaping", run)
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	b := &Batch{
		Run:       run,
		Timestamp: strconv.AppendInt(nil, timestamp, 10),
		Clients:   clients,
		sigs:      make([][ed25519.SignatureSize]byte, n),
	}
	// Contiguous chunks per worker: no shared counter in the loop.
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			var body, msg []byte
			for i := lo; i < hi; i++ {
				body = b.AppendBody(body[:0], i)
				msg = verify.AppendMessage(msg[:0], b.Timestamp, body)
				copy(b.sigs[i][:], ed25519.Sign(priv, msg))
			}
		}(lo, hi)
	}
	wg.Wait()
	return b, nil
}

// Len is the number of requests in the batch.
func (b *Batch) Len() int { return len(b.sigs) }

// ClientID is the client request i goes to.
func (b *Batch) ClientID(i int) string { return b.Clients[i%len(b.Clients)] }

// AppendPath appends request i's path, /clients/{client_id}, to dst.
func (b *Batch) AppendPath(dst []byte, i int) []byte {
	return append(append(dst, "/clients/"...), b.ClientID(i)...)
}

// AppendBody appends request i's JSON body to dst: an encrypted-style
// message (topic + message, no legacy payload), the shape a relay sends
// most, so that the server does the same work as in production.
func (b *Batch) AppendBody(dst []byte, i int) []byte {
	dst = append(dst, `{"topic":"a5fbd5bd2b8a2c9f1e0d3c4b5a69788796a5b4c3d2e1f00112233445566778899","tag":4000,"message":"`...)
	dst = append(dst, b.Run...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, `"}`...)
}

// AppendSignature appends request i's X-Ed25519-Signature value (hex) to dst.
func (b *Batch) AppendSignature(dst []byte, i int) []byte {
	return hex.AppendEncode(dst, b.sigs[i][:])
}

// Token is the device token loadtest registers for a client id: 64 hex
// digits, as APNs wants, and unique per id, because a token belongs to one
// client (registering it for another id would move it).
func Token(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Due is when request i of an open-loop run at rate requests per second is
// due, counted from the start of the run. An open-loop generator sends on
// this schedule whatever the server does, and measures each latency from
// the due time, so a server that falls behind is charged for the queue it
// builds (no coordinated omission).
func Due(i int, rate float64) time.Duration {
	return time.Duration(math.Round(float64(i) * float64(time.Second) / rate))
}

// Percentiles returns the p-quantiles (0 < p ≤ 1) of latencies, by the
// nearest-rank method: the smallest latency that at least p of them do not
// exceed. It sorts latencies in place. An empty slice gives zeros.
func Percentiles(latencies []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(latencies) == 0 {
		return out
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	for k, p := range ps {
		rank := int(math.Ceil(p*float64(len(latencies)))) - 1
		out[k] = latencies[min(max(rank, 0), len(latencies)-1)]
	}
	return out
}
