package dispatch

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/sideshow/apns2"
)

// apns2 runs the payload through json.Marshal before sending; the bytes, and
// so the checked size, must come out unchanged.
func TestAPNsPayloadSurvivesApns2(t *testing.T) {
	n := &Notification{
		Kind: KindVisible, Title: "<script>&\u2028", Body: "\x00\xff\"\\", ImageURL: "https://i/?a=1&b=<2>", URL: "u",
		Data: []Field{{"k<", "v>"}, {"e", ""}},
	}
	for _, kind := range []Kind{KindVisible, KindEncrypted, KindRaw} {
		n.Kind = kind
		payload := appendAPNSPayload(nil, n)
		if !json.Valid(payload) {
			t.Fatalf("kind %d: invalid JSON %s", kind, payload)
		}
		sent, err := json.Marshal(&apns2.Notification{Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if string(sent) != string(payload) {
			t.Fatalf("kind %d: apns2 sends\n%s\nwe built\n%s", kind, sent, payload)
		}
	}
}

func TestAPNsID(t *testing.T) {
	id := apnsID("msg-1")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("apnsID = %q; want a lowercase version-8 UUID", id)
	}
	if apnsID("msg-1") != id || apnsID("msg-2") == id {
		t.Fatal("apnsID must be a function of the message id")
	}
}

func TestDefaultRetryDelay(t *testing.T) {
	f := func(attempt int, retryAfter, lo, hi time.Duration) {
		t.Helper()
		for range 100 {
			if d := defaultRetryDelay(attempt, retryAfter); d < lo || d > hi {
				t.Fatalf("defaultRetryDelay(%d, %v) = %v; want within [%v, %v]", attempt, retryAfter, d, lo, hi)
			}
		}
	}
	f(1, 0, 50*time.Millisecond, 100*time.Millisecond) // equal jitter: never 0
	f(2, 0, 100*time.Millisecond, 200*time.Millisecond)
	f(10, 0, time.Second, 2*time.Second) // capped
	f(1000, 0, time.Second, 2*time.Second)
	f(1, 3*time.Second, 3*time.Second, 3*time.Second) // Retry-After wins
	f(1, time.Hour, retryAfterCap, retryAfterCap)     // but is capped
}

func TestRetryWaitGivesUpBeforeDeadline(t *testing.T) {
	p := &retryPolicy{maxAttempts: 3, delay: func(int, time.Duration) time.Duration { return time.Hour }}
	ctx, cancel := contextWithTimeout(t, time.Second)
	defer cancel()
	start := time.Now()
	if p.wait(ctx, 1, 0) {
		t.Fatal("wait of an hour within a 1 s deadline returned true")
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatalf("wait slept %v before giving up; want no sleep", time.Since(start))
	}
}
