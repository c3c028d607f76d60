//go:build !race

package dispatch

import "testing"

func TestAPNsPayloadDoesNotAllocate(t *testing.T) {
	n := benchNotification()
	n.ImageURL, n.URL = "https://img.example/a.png", "https://example.com/?a=1&b=2"
	if a := testing.AllocsPerRun(100, func() {
		buf := acquirePayload()
		*buf = appendAPNSPayload((*buf)[:0], n)
		sink = len(*buf)
		releasePayload(buf)
	}); a != 0 {
		t.Fatalf("building an APNs payload allocates %.1f times; want 0", a)
	}
}
