package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"push-server/dispatch/dispatchtest"
)

// initialWindow is HTTP/2's default flow-control window (RFC 9113 §6.9.2),
// which holds for the connection until a WINDOW_UPDATE and for streams until
// SETTINGS_INITIAL_WINDOW_SIZE.
const initialWindow = 65535

// ioBufSize is the size of each connection's read and write buffers: a few
// full TLS records, so a burst of requests is read, and its answers written,
// with one call each.
const ioBufSize = 64 << 10

// conn serves one HTTP/2 connection on one goroutine, which both reads and
// writes: requests are parsed frame by frame from a bufio.Reader, and each
// one is answered, as soon as its last frame is read, into a bufio.Writer
// that is flushed only when no complete frame is left in the read buffer.
// As the reader below hands over everything received at once (see
// sock.go), and the connection pauses after each burst so that the next one
// gathers, a burst of requests costs one wake-up, one read and one write
// syscall, and no goroutine, channel or lock per stream. The design works
// because the mock never has anything to say that is not a reply to
// something it read.
type conn struct {
	srv *server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	fr  *http2.Framer
	dec *hpack.Decoder

	sawSettings bool
	lastID      uint32 // highest client stream id seen
	// streams holds the open streams (headers seen, END_STREAM not yet);
	// few at a time, as the client writes each body right after its
	// headers, so a slice searched from the newest beats a map.
	streams []*stream
	free    []*stream // released streams, for reuse
	cur     *stream   // the stream whose header block is being decoded
	hdrLen  int       // encoded size of the header block so far

	// recvUnacked is the DATA (with padding) consumed since the last
	// connection-level WINDOW_UPDATE.
	recvUnacked int
	// sendWindow is the peer's connection-level window for our DATA, and
	// peerStreamWindow its SETTINGS_INITIAL_WINDOW_SIZE. Only error answers
	// carry DATA; pending holds those the windows do not admit yet.
	sendWindow       int64
	peerStreamWindow int64
	pending          []pendingBody

	lastAuth    string    // the last provider token this connection verified
	lastExpires time.Time // and when it expires

	hb       []byte // response header block, reused
	ids      idGen
	answered int // requests answered since the last flush: the mock is busy
}

// pendingBody is an error answer's body waiting for flow-control window.
type pendingBody struct {
	id     uint32
	body   []byte
	window int64 // the stream's send window
}

// connError ends the connection with a GOAWAY carrying code and reason.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string { return fmt.Sprintf("http2 %v: %s", e.code, e.reason) }

// serveConn completes the TLS handshake and serves the connection until it
// fails or the peer closes it; the caller closes nc.
func serveConn(srv *server, nc net.Conn) {
	sock := &sockReader{nc: nc}
	tc := tls.Server(&sockConn{Conn: nc, r: bufio.NewReaderSize(sock, ioBufSize)}, srv.tlsConf)
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		return
	}
	// APNs speaks only HTTP/2; a client that did not negotiate it gets
	// nothing.
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	c := &conn{
		srv:              srv,
		nc:               tc,
		br:               bufio.NewReaderSize(&drainReader{tc: tc, sock: sock}, ioBufSize),
		bw:               bufio.NewWriterSize(tc, ioBufSize),
		sendWindow:       initialWindow,
		peerStreamWindow: initialWindow,
	}
	c.fr = http2.NewFramer(c.bw, c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.dec = hpack.NewDecoder(4096, c.onField) // 4096: SETTINGS_HEADER_TABLE_SIZE's default
	c.dec.SetMaxStringLength(maxHeaderBlock)
	c.ids.init()

	var ce connError
	if err := c.run(); errors.As(err, &ce) {
		c.goAway(ce)
	}
}

// run speaks HTTP/2 until an error; a connError is the peer's fault and
// worth a GOAWAY, anything else is an I/O error or EOF.
func (c *conn) run() error {
	// The server preface, sent without waiting for the client's: SETTINGS,
	// then the connection window raised from its fixed initial size.
	if err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderBlock},
	); err != nil {
		return err
	}
	if err := c.fr.WriteWindowUpdate(0, connWindow-initialWindow); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("cannot write server preface: %w", err)
	}
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return fmt.Errorf("cannot read client preface: %w", err)
	}
	if string(preface[:]) != http2.ClientPreface {
		return connError{http2.ErrCodeProtocol, "bad client preface"}
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.frameError(err)
		}
		if err := c.handle(f); err != nil {
			return asConnError(err)
		}
		if !c.frameBuffered() {
			if err := c.flush(); err != nil {
				return fmt.Errorf("cannot write answers: %w", err)
			}
			// After answering a burst, let the next one gather before
			// reading again. Without the pause the mock keeps up with the
			// client push by push and wakes for each: on the load-test VM
			// that is ~25 µs of CPU a push at 25k pushes/s, mostly the
			// wake-ups. With 200 µs it wakes once per ~10 pushes and
			// spends ~7 µs a push, for up to 200 µs more latency a push
			// (BenchmarkMockCPU).
			if c.answered > 0 && c.srv.coalesce > 0 {
				pause(c.srv.coalesce)
			}
			c.answered = 0
		}
	}
}

// frameError converts a ReadFrame error. A stream error is treated as a
// connection error (RFC 9113 §5.4.1 allows it): a client that sends a
// malformed frame is broken, and a load test should stop, not limp on.
func (c *conn) frameError(err error) error {
	var se http2.StreamError
	switch {
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connError{http2.ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
	case errors.As(err, &se):
		return connError{se.Code, fmt.Sprintf("stream %d: %v", se.StreamID, se.Cause)}
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		reason := "malformed frame"
		if d := c.fr.ErrorDetail(); d != nil {
			reason = d.Error()
		}
		return connError{http2.ErrCode(ce), reason}
	}
	return err
}

// asConnError turns the http2 package's ConnectionError (from
// Setting.Valid) into a connError.
func asConnError(err error) error {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return connError{http2.ErrCode(ce), err.Error()}
	}
	return err
}

// frameBuffered reports whether the read buffer holds a whole frame, so the
// next ReadFrame will not block on the network.
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := c.br.Peek(9) // cannot fail or block: 9 bytes are buffered
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// flush tops up the connection window when a quarter of it is used (one
// WINDOW_UPDATE per burst at most) and writes out what is buffered.
func (c *conn) flush() error {
	if c.recvUnacked >= connWindow/4 {
		if err := c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked)); err != nil {
			return err
		}
		c.recvUnacked = 0
	}
	if c.bw.Buffered() == 0 {
		return nil
	}
	return c.bw.Flush()
}

// goAway tells the peer why the connection ends; best effort, with a short
// deadline, as the connection is being dropped anyway.
func (c *conn) goAway(ce connError) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.fr.WriteGoAway(c.lastID, ce.code, []byte(ce.reason))
	_ = c.bw.Flush()
}

func (c *conn) handle(f http2.Frame) error {
	if !c.sawSettings {
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			return connError{http2.ErrCodeProtocol, "client preface must end with SETTINGS"}
		}
		c.sawSettings = true
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.HeadersFrame:
		return c.onHeaders(f)
	case *http2.ContinuationFrame:
		// The Framer has checked that it continues c.cur's block.
		return c.decodeBlock(f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.fr.WritePing(true, f.Data)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if f.StreamID > c.lastID {
			return connError{http2.ErrCodeProtocol, "RST_STREAM on idle stream"}
		}
		c.dropPending(f.StreamID)
		if s := c.find(f.StreamID); s != nil {
			c.release(s)
		}
		return nil
	case *http2.GoAwayFrame:
		// The client opens no more streams; it closes the connection once
		// its open ones are answered, which ends run with EOF.
		return nil
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	}
	return nil // PRIORITY, PRIORITY_UPDATE and unknown frame types are ignored
}

func (c *conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if s := c.find(id); s != nil {
		// A second header block on an open stream is trailers, which must
		// end it.
		if !f.StreamEnded() {
			return connError{http2.ErrCodeProtocol, "trailers without END_STREAM"}
		}
		s.trailers, s.endStream = true, true
		c.cur, c.hdrLen = s, 0
		return c.decodeBlock(f.HeaderBlockFragment(), f.HeadersEnded())
	}
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "client stream with an even id"}
	}
	if id <= c.lastID {
		return connError{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
	}
	c.lastID = id
	s := c.newStream(id)
	s.endStream = f.StreamEnded()
	s.refused = len(c.streams) > maxStreams
	c.cur, c.hdrLen = s, 0
	return c.decodeBlock(f.HeaderBlockFragment(), f.HeadersEnded())
}

// decodeBlock feeds one fragment of c.cur's header block to HPACK and, at
// the block's end, answers the request if its stream has ended.
func (c *conn) decodeBlock(frag []byte, end bool) error {
	if c.hdrLen += len(frag); c.hdrLen > maxHeaderBlock {
		return connError{http2.ErrCodeEnhanceYourCalm, "header block too large"}
	}
	if _, err := c.dec.Write(frag); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !end {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	s := c.cur
	c.cur = nil
	switch {
	case s.refused:
		c.release(s)
		return c.fr.WriteRSTStream(s.id, http2.ErrCodeRefusedStream)
	case s.endStream:
		return c.answer(s)
	}
	return nil
}

// onField is the HPACK decoder's callback: it keeps the fields the checks
// need. The strings are the decoder's (shared with its dynamic table when
// the client indexed the field), so nothing is copied.
func (c *conn) onField(f hpack.HeaderField) {
	s := c.cur
	if s == nil || s.trailers {
		return
	}
	switch f.Name {
	case ":method":
		s.method = f.Value
	case ":path":
		s.path = f.Value
	case "authorization":
		s.auth = f.Value
	case "apns-topic":
		s.topic = f.Value
	case "apns-id":
		s.apnsID = f.Value
	case "apns-push-type":
		s.pushType = f.Value
	}
}

func (c *conn) onData(f *http2.DataFrame) error {
	n := int(f.Length) // flow control counts the padding too
	if c.recvUnacked += n; c.recvUnacked > connWindow {
		return connError{http2.ErrCodeFlowControl, "connection window exceeded"}
	}
	s := c.find(f.StreamID)
	if s == nil {
		if f.StreamID > c.lastID {
			return connError{http2.ErrCodeProtocol, "DATA on idle stream"}
		}
		// The stream was reset by the client or refused by us: frames it
		// had in flight only count against the connection window.
		return nil
	}
	if s.unacked += n; s.unacked > streamWindow {
		return connError{http2.ErrCodeFlowControl, "stream window exceeded"}
	}
	s.bodyLen += len(f.Data())
	if f.StreamEnded() {
		s.endStream = true
		return c.answer(s)
	}
	// Only a body far over APNs' limit gets here; it is read to its end so
	// the answer comes after the request, as with Apple.
	if s.unacked >= streamWindow/2 {
		if err := c.fr.WriteWindowUpdate(s.id, uint32(s.unacked)); err != nil {
			return err
		}
		s.unacked = 0
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return err
		}
		// Only the initial window matters: the mock's answers never
		// exceed the minimum frame size, and it never indexes into the
		// peer's HPACK table.
		if st.ID == http2.SettingInitialWindowSize {
			delta := int64(st.Val) - c.peerStreamWindow
			c.peerStreamWindow = int64(st.Val)
			for i := range c.pending {
				c.pending[i].window += delta
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		return err
	}
	return c.drainPending()
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	incr := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendWindow += incr; c.sendWindow > 1<<31-1 {
			return connError{http2.ErrCodeFlowControl, "connection send window over 2^31-1"}
		}
		return c.drainPending()
	}
	if f.StreamID > c.lastID {
		return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream"}
	}
	for i := range c.pending {
		if c.pending[i].id == f.StreamID {
			c.pending[i].window += incr
		}
	}
	return c.drainPending()
}

// answer writes the response to a complete request and closes its stream.
func (c *conn) answer(s *stream) error {
	status, reason := c.check(s)
	hb := c.hb[:0]
	if status == 200 {
		hb = append(hb, 0x80|8) // indexed field 8 of the static table, ":status: 200"
	} else {
		// Literal without indexing, name from static entry 8 (":status").
		var digits [3]byte
		hb = appendHpackString(append(hb, 8), strconv.AppendInt(digits[:0], int64(status), 10))
	}
	if s.apnsID != "" && dispatchtest.IsAPNsID(s.apnsID) {
		hb = appendLiteral(hb, "apns-id", s.apnsID)
	} else {
		hb = appendLiteral(hb, "apns-id", c.ids.next())
	}
	if status != 200 {
		hb = appendLiteral(hb, "content-type", "application/json")
	}
	c.hb = hb
	c.answered++
	id := s.id
	c.release(s)
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb, EndStream: status == 200, EndHeaders: true})
	if err != nil {
		return err
	}
	if status == 200 {
		c.srv.accepted.Add(1)
		return nil
	}
	return c.sendBody(id, errorBody(reason))
}

// sendBody writes an error answer's body, or queues it until the client's
// windows admit it (bodies go out in order, which keeps this simple; error
// answers are rare).
func (c *conn) sendBody(id uint32, body []byte) error {
	n := int64(len(body))
	if len(c.pending) == 0 && n <= c.sendWindow && n <= c.peerStreamWindow {
		c.sendWindow -= n
		return c.fr.WriteData(id, true, body)
	}
	c.pending = append(c.pending, pendingBody{id: id, body: body, window: c.peerStreamWindow})
	return nil
}

func (c *conn) drainPending() error {
	i := 0
	for ; i < len(c.pending); i++ {
		p := c.pending[i]
		n := int64(len(p.body))
		if n > c.sendWindow || n > p.window {
			break
		}
		c.sendWindow -= n
		if err := c.fr.WriteData(p.id, true, p.body); err != nil {
			return err
		}
	}
	c.pending = c.pending[:copy(c.pending, c.pending[i:])]
	return nil
}

func (c *conn) dropPending(id uint32) {
	kept := c.pending[:0]
	for _, p := range c.pending {
		if p.id != id {
			kept = append(kept, p)
		}
	}
	c.pending = kept
}

func (c *conn) newStream(id uint32) *stream {
	var s *stream
	if n := len(c.free); n > 0 {
		s, c.free = c.free[n-1], c.free[:n-1]
	} else {
		s = new(stream)
	}
	s.id = id
	c.streams = append(c.streams, s)
	return s
}

// find returns the open stream id, or nil; the newest streams are searched
// first, as DATA usually follows its HEADERS closely.
func (c *conn) find(id uint32) *stream {
	for i := len(c.streams) - 1; i >= 0; i-- {
		if c.streams[i].id == id {
			return c.streams[i]
		}
	}
	return nil
}

// release closes s and keeps it for reuse.
func (c *conn) release(s *stream) {
	for i, o := range c.streams {
		if o == s {
			last := len(c.streams) - 1
			c.streams[i] = c.streams[last]
			c.streams[last] = nil
			c.streams = c.streams[:last]
			break
		}
	}
	*s = stream{}
	c.free = append(c.free, s)
}

// appendLiteral appends an HPACK "literal header field without indexing,
// new name" (RFC 7541 §6.2.2), uncompressed. Not indexing keeps the peer's
// table untouched, so the mock needs no encoder state at all.
func appendLiteral[V string | []byte](b []byte, name string, value V) []byte {
	b = appendHpackString(append(b, 0), name)
	return appendHpackString(b, value)
}

// appendHpackString appends an HPACK string literal without Huffman coding:
// its length as a 7-bit-prefix integer (RFC 7541 §5.1), then the bytes.
func appendHpackString[V string | []byte](b []byte, s V) []byte {
	n := uint64(len(s))
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		for n -= 127; n >= 128; n >>= 7 {
			b = append(b, byte(n)|0x80)
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}

// idGen makes apns-id values for requests that carry none: a random prefix
// fixed per connection and a counter, so no per-request call into
// crypto/rand or allocation is needed.
type idGen struct {
	buf [36]byte // the current id; the first 19 characters never change
	seq uint64
}

func (g *idGen) init() {
	var p [8]byte
	_, _ = rand.Read(p[:])  // crypto/rand.Read never fails since Go 1.24
	p[6] = 0x40 | p[6]&0x0f // version 4 layout, so strict parsers accept it
	hex.Encode(g.buf[0:8], p[0:4])
	g.buf[8] = '-'
	hex.Encode(g.buf[9:13], p[4:6])
	g.buf[13] = '-'
	hex.Encode(g.buf[14:18], p[6:8])
	g.buf[18] = '-'
	g.buf[23] = '-'
}

// next returns the next id, valid until the following call.
func (g *idGen) next() []byte {
	g.seq++
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], g.seq)
	raw[0] = 0x80 | raw[0]&0x3f // the RFC 4122 variant
	hex.Encode(g.buf[19:23], raw[0:2])
	hex.Encode(g.buf[24:36], raw[2:8])
	return g.buf[:]
}
