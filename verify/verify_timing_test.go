package verify

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// sink keeps the compiler from optimising benchmarked calls away.
var sink any

// BenchmarkVerify compares Relay.Verify with the bare crypto/ed25519.Verify
// it wraps, the ceiling it is measured against: the difference is the cost of
// header parsing, hex decoding and building the message.
func BenchmarkVerify(b *testing.B) {
	r, ts, sigHex, body := newSignedSend(b)
	msg, sig := AppendMessage(nil, ts, body), mustHex(b, sigHex)
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sink = ed25519.Verify(r.key, msg, sig)
		}
	})
	b.Run("relay", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sink = r.Verify(ts, sigHex, body) == nil
		}
	})
	b.Run("relay-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.RunParallel(func(pb *testing.PB) {
			ok := true
			for pb.Next() {
				ok = ok && r.Verify(ts, sigHex, body) == nil
			}
			sink = ok
		})
	})
	forged := []byte(flipHex(string(sigHex), 10))
	b.Run("relay-bad-signature", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = r.Verify(ts, forged, body) == nil
		}
	})
}

// BenchmarkClientAuth measures the register path's JWT check.
func BenchmarkClientAuth(b *testing.B) {
	c := newClientFixture()
	tok := []byte("Bearer " + SignClientToken(c.priv, testAudience, time.Hour, testNow))
	b.ReportAllocs()
	for b.Loop() {
		id, err := c.auth.Verify(tok)
		if err != nil {
			b.Fatal(err)
		}
		sink = id
	}
}
