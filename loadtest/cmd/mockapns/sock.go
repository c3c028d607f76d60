package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
)

// The mock's reads are layered so that one wake-up serves a whole burst of
// pushes:
//
//	conn.br (bufio, frames) ← drainReader ← tls.Conn ← sockConn (bufio) ← sockReader ← TCP
//
// tls.Conn.Read returns one record per call, so a bufio.Reader right over it
// would see one frame at a time, and the mock would answer, and write, after
// every frame. Instead sockConn reads the socket through a buffer as large
// as a burst, so one read(2) brings in every record that has arrived, and
// drainReader keeps reading records until the ones buffered under TLS run
// out; only then does the connection flush its answers and wait.

// errWouldBlock is what sockReader returns in drain mode instead of
// reading the socket; temporary, so crypto/tls keeps the connection usable.
var errWouldBlock = wouldBlock{}

// wouldBlock is errWouldBlock's type: a net.Error that is a timeout.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// sockReader reads the TCP connection, except in drain mode, when it
// fails at once with errWouldBlock.
type sockReader struct {
	nc    net.Conn
	drain bool
}

func (s *sockReader) Read(p []byte) (int, error) {
	if s.drain {
		return 0, errWouldBlock
	}
	return s.nc.Read(p)
}

// sockConn is the net.Conn crypto/tls runs on: the TCP connection, read
// through a bufio.Reader over a sockReader.
type sockConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *sockConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// drainReader reads from the TLS connection everything already received:
// after a read that may wait, it keeps reading with the socket layer in
// drain mode until the records buffered under TLS run out.
type drainReader struct {
	tc   *tls.Conn
	sock *sockReader
}

func (d *drainReader) Read(p []byte) (int, error) {
	n, err := d.tc.Read(p)
	if err != nil || n == len(p) {
		return n, err
	}
	d.sock.drain = true
	defer func() { d.sock.drain = false }()
	for n < len(p) {
		m, err := d.tc.Read(p[n:])
		n += m
		if errors.Is(err, errWouldBlock) {
			break
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
