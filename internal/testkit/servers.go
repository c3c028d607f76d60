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

// SilentServer listens on 127.0.0.1, accepts every connection and never
// answers on it, as a hung server does; it returns its address
// ("127.0.0.1:port"). The listener and the connections close in t.Cleanup.
func SilentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn // the accept loop's until done is closed
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
