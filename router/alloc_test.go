//go:build !race

package router

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestSendParseDoesNotAllocate(t *testing.T) {
	bodies := []string{
		`{"topic":"0b7a6e4d3c2f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a","tag":1108,"message":"Y2lwaGVydGV4dA=="}`,
		`{"id":"1700000000000123","payload":{"topic":"t","flags":1,"blob":"ZW5j"}}`,
		`{"topic":"t","tag":4000,"message":"esc\"aped\u00e9","unknown":{"a":[1,2,3]}}`,
	}
	for _, body := range bodies {
		b := []byte(body)
		n := testing.AllocsPerRun(200, func() {
			r := acquireSendRequest()
			if rerr := r.parse(b); rerr != nil {
				t.Fatal(rerr)
			}
			releaseSendRequest(r)
		})
		if n != 0 {
			t.Errorf("parse(%s) allocates %.1f times per call; want 0", body, n)
		}
	}
}

func TestOKReplyDoesNotAllocate(t *testing.T) {
	var ctx fasthttp.RequestCtx
	if n := testing.AllocsPerRun(200, func() { writeOK(&ctx, 202) }); n != 0 {
		t.Errorf("writeOK allocates %.1f times per call; want 0", n)
	}
}

func TestRequestIDDoesNotAllocate(t *testing.T) {
	var ctx fasthttp.RequestCtx
	setRequestID(&ctx) // the header's first set may grow its buffer
	if n := testing.AllocsPerRun(200, func() { setRequestID(&ctx) }); n != 0 {
		t.Errorf("setRequestID allocates %.1f times per call; want 0", n)
	}
}
