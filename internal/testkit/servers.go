package testkit

import (
	"net"
	"testing"
)

// ClosingServer listens on 127.0.0.1 and closes every connection as soon as
// it is accepted, as a provider dropping connections does; it returns its
// http:// URL and stops in t.Cleanup.
func ClosingServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}
