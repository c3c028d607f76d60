package dispatchtest_test

import (
	"testing"
	"time"

	"push-server/dispatch/dispatchtest"
)

// TestGateHoldsUntilRelease: a push scripted with a Gate is reported as
// arrived, with its token, and left unanswered until the test releases it; then it gets its
// scripted answer, and later pushes pass the open gate at once.
func TestGateHoldsUntilRelease(t *testing.T) {
	m := dispatchtest.StartAPNs(t, false)
	c := h2cClient(t)
	g := dispatchtest.NewGate()
	defer g.Release()
	m.Script(testToken, dispatchtest.Answer{Reason: "Unregistered", Hold: g.Hold})

	done := make(chan apnsReply, 1)
	go func() { done <- send(t, c, m.URL(), newPush(testToken)) }()
	if got := g.WaitArrived(t, 10*time.Second); got != testToken {
		t.Fatalf("arrived token %q; want %q", got, testToken)
	}
	select {
	case r := <-done:
		t.Fatalf("a held push was answered %d %q before Release", r.status, r.reason)
	case <-time.After(50 * time.Millisecond):
	}
	g.Release()
	select {
	case r := <-done:
		if r.status != 410 || r.reason != "Unregistered" {
			t.Fatalf("released push: got %d %q, want 410 Unregistered", r.status, r.reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a released push was not answered")
	}

	if r := send(t, c, m.URL(), newPush(testToken)); r.status != 410 {
		t.Fatalf("push after Release: got %d, want 410 at once", r.status)
	}
	select {
	case got := <-g.Arrived():
		if got != testToken {
			t.Fatalf("arrived token %q after Release; want %q", got, testToken)
		}
	default:
		t.Fatal("a push after Release was not reported as arrived")
	}
}

// TestGateHoldsFCMPushes: the FCM mock holds a gated push and reports the
// registration token from the message body, as the APNs mock reports the
// one from the path.
func TestGateHoldsFCMPushes(t *testing.T) {
	m := dispatchtest.StartFCM(t)
	tok := accessToken(t, m, testProject)
	g := dispatchtest.NewGate()
	defer g.Release()
	m.Script(testFCMToken, dispatchtest.Answer{Reason: "UNREGISTERED", Hold: g.Hold})

	done := make(chan fcmReply, 1)
	go func() { done <- fcmSend(t, m, testProject, tok, message(testFCMToken)) }()
	if got := g.WaitArrived(t, 10*time.Second); got != testFCMToken {
		t.Fatalf("arrived token %q; want %q", got, testFCMToken)
	}
	select {
	case r := <-done:
		t.Fatalf("a held push was answered %d before Release", r.status)
	case <-time.After(50 * time.Millisecond):
	}
	g.Release()
	if r := <-done; r.status != 404 {
		t.Fatalf("released push: got %d, want 404 UNREGISTERED", r.status)
	}
}
