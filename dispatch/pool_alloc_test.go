//go:build !race

package dispatch

import "testing"

func TestPoolGetDoesNotAllocate(t *testing.T) {
	p := startPool(t, baseConfig(), 10, 0, nil)
	creds := newAPNsTenant(t, testTopic, testKeyID, testTeamID).creds
	want := mustGet(t, p, "tenant", 1, creds)
	if a := testing.AllocsPerRun(1000, func() {
		// A closure capturing the caller's state, as the router passes.
		d, err := p.Get("tenant", 0, 1, func() (Config, error) { return creds, nil })
		if d != want || err != nil {
			t.Fatalf("Get = %p, %v; want %p", d, err, want)
		}
	}); a != 0 {
		t.Fatalf("Get of a built Dispatcher allocates %.1f times; want 0", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		if d, ok := p.Lookup("tenant", 0, 1); !ok || d != want {
			t.Fatal("Lookup missed")
		}
	}); a != 0 {
		t.Fatalf("Lookup allocates %.1f times; want 0", a)
	}
}
