package main

import (
	"os"
	"testing"
	"time"
)

func TestProcReadsThisProcess(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU so the count is not zero
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("procCPU(self) = %v, %v; want > 0", cpu, err)
	}
	cur, peak, err := rss(os.Getpid())
	if err != nil || cur <= 0 || peak < cur {
		t.Fatalf("rss(self) = %d, %d, %v; want 0 < rss ≤ peak", cur, peak, err)
	}
	if _, err := parseWatch("server=x"); err == nil {
		t.Fatal(`parseWatch("server=x") succeeded; want an error`)
	}
	if w, err := parseWatch("server=12,mock=34"); err != nil || len(w) != 2 || w[1] != (watched{"mock", 34}) {
		t.Fatalf("parseWatch = %v, %v", w, err)
	}
}
