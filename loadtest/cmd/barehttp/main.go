// Command barehttp is the load test's ceiling: a fasthttp server that does
// nothing but answer, with push-server's answers, on push-server's routes.
// run.sh runs it where the gateway runs (one core, GOMAXPROCS=1) under the
// same closed loop, so sends/s ÷ barehttp's requests/s is the share of the
// HTTP-only maximum the gateway keeps, measured on the same machine state:
// on a virtual machine whose loopback system calls are expensive, that
// ceiling, not the verification, is what bounds sends/s ÷ verifies/s.
package main

import (
	"fmt"
	"net"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	ok := []byte(`{"status":"OK"}`)
	handler := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		// Registration answers 200, a send 202, as push-server does.
		if string(ctx.Path()) == "/clients" {
			ctx.SetStatusCode(fasthttp.StatusOK)
		} else {
			ctx.SetStatusCode(fasthttp.StatusAccepted)
		}
		ctx.Response.SetBodyRaw(ok)
	}
	ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
	// The gateway's buffer size, so a request costs the same to read.
	srv := &fasthttp.Server{Handler: handler, Name: "push-server", ReadBufferSize: 8 << 10}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
}
