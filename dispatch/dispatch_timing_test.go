package dispatch

import (
	"encoding/json"
	"testing"
)

var sink int

func benchNotification() *Notification {
	return &Notification{
		Kind: KindVisible, MessageID: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		Title: "Signature required", Body: "You have a message to sign",
		Data: []Field{{"topic", "d1c9d6f4a4c0e1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6"}, {"tag", "1108"}, {"message", "eyJpZCI6MTcwMDAwMDAwMDAwMCwianNvbnJwYyI6IjIuMCJ9"}},
	}
}

// BenchmarkAPNsPayload compares the append builder with encoding/json
// marshalling the same payload from maps, the obvious alternative.
func BenchmarkAPNsPayload(b *testing.B) {
	n := benchNotification()
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p := map[string]any{"aps": map[string]any{
				"alert": map[string]string{"title": n.Title, "body": n.Body}, "sound": "default",
			}}
			for _, f := range n.Data {
				p[f.Key] = f.Value
			}
			out, _ := json.Marshal(p)
			sink = len(out)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := acquirePayload()
			*buf = appendAPNSPayload((*buf)[:0], n)
			sink = len(*buf)
			releasePayload(buf)
		}
	})
	b.Run("append/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			s := 0
			for pb.Next() {
				buf := acquirePayload()
				*buf = appendAPNSPayload((*buf)[:0], n)
				s += len(*buf)
				releasePayload(buf)
			}
			sink = s
		})
	})
}
