//go:build !race

package router

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestTracingOffStepsDoNotAllocate: with tracing off, the hooks send.go
// runs at each step cost a nil check, nothing more.
func TestTracingOffStepsDoNotAllocate(t *testing.T) {
	var s Server
	var ctx fasthttp.RequestCtx
	n := testing.AllocsPerRun(200, func() {
		st := s.stepOf(&ctx, spanLookup)
		st.end(nil)
		st = s.stepOf(&ctx, spanClaim)
		st.endClaim(nil)
		st = s.stepOf(&ctx, spanPush)
		st.endPush("apns", errInternal)
	})
	if n != 0 {
		t.Errorf("the step hooks allocate %.1f times per send with tracing off; want 0", n)
	}
}
