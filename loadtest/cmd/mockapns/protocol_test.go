package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"push-server/dispatch/dispatchtest"
)

// rawClient speaks HTTP/2 frame by frame, to drive the mock through what
// apns2 does not do on demand: interleaved streams, CONTINUATION, PING and
// protocol errors.
type rawClient struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer // the encoder's output
}

func dialRaw(t *testing.T, f *fixture) *rawClient {
	t.Helper()
	addr := strings.TrimPrefix(f.srv.URL(), "https://")
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: f.roots, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: tc, fr: http2.NewFramer(tc, tc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	return c
}

// block HPACK-encodes name, value pairs.
func (c *rawClient) block(kv ...string) []byte {
	c.buf.Reset()
	for i := 0; i < len(kv); i += 2 {
		if err := c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			c.t.Fatal(err)
		}
	}
	return bytes.Clone(c.buf.Bytes())
}

func (c *rawClient) request(auth, apnsID string) []byte {
	kv := []string{":method", "POST", ":scheme", "https", ":authority", "127.0.0.1", ":path", "/3/device/" + testDevice,
		"authorization", auth, "apns-topic", testTopic}
	if apnsID != "" {
		kv = append(kv, "apns-id", apnsID)
	}
	return c.block(kv...)
}

func (c *rawClient) read() http2.Frame {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

func (c *rawClient) check(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// response reads the next frame, which must be a response header block on
// stream id, and returns its :status and apns-id.
func (c *rawClient) response(id uint32, endStream bool) (status, apnsID string) {
	c.t.Helper()
	mh, ok := c.read().(*http2.MetaHeadersFrame)
	if !ok || mh.StreamID != id || mh.StreamEnded() != endStream {
		c.t.Fatalf("got %v, want a response on stream %d (END_STREAM %v)", mh, id, endStream)
	}
	for _, hf := range mh.Fields {
		if hf.Name == "apns-id" {
			apnsID = hf.Value
		}
	}
	return mh.PseudoValue("status"), apnsID
}

func TestProtocol(t *testing.T) {
	f := startMock(t, defaultCoalesce)
	c := dialRaw(t, f)
	auth := "bearer " + signJWT(t, f.key, testKeyID, testTeamID, time.Now())

	c.check(c.fr.WriteSettings())
	c.check(c.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	// The mock's preface comes first, then the answers to ours.
	sf, ok := c.read().(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want the mock's SETTINGS", sf)
	}
	if v, _ := sf.Value(http2.SettingMaxConcurrentStreams); v != maxStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", v, maxStreams)
	}
	if v, _ := sf.Value(http2.SettingInitialWindowSize); v != streamWindow {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE %d, want %d", v, streamWindow)
	}
	if wu, ok := c.read().(*http2.WindowUpdateFrame); !ok || wu.StreamID != 0 || wu.Increment != connWindow-initialWindow {
		t.Fatalf("got %v, want the connection window raised to %d", wu, connWindow)
	}
	if ack, ok := c.read().(*http2.SettingsFrame); !ok || !ack.IsAck() {
		t.Fatalf("got %v, want SETTINGS ACK", ack)
	}
	if ping, ok := c.read().(*http2.PingFrame); !ok || !ping.IsAck() || ping.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Fatalf("got %v, want the PING acknowledged", ping)
	}
	c.check(c.fr.WriteSettingsAck())

	// Two requests whose frames interleave: each is answered when its own
	// body ends, with its own apns-id.
	const id1 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.request(auth, id1), EndHeaders: true}))
	c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.request(auth, ""), EndHeaders: true}))
	c.check(c.fr.WriteData(1, false, []byte(`{"aps":`)))
	c.check(c.fr.WriteData(3, true, []byte(`{"aps":{}}`)))
	if status, id := c.response(3, true); status != "200" || !dispatchtest.IsAPNsID(id) || id == id1 {
		t.Errorf("stream 3: %s with apns-id %q, want 200 with a fresh UUID", status, id)
	}
	c.check(c.fr.WriteData(1, true, []byte(`{}}`)))
	if status, id := c.response(1, true); status != "200" || id != id1 {
		t.Errorf("stream 1: %s with apns-id %q, want 200 with %q", status, id, id1)
	}

	// A header block split over HEADERS and CONTINUATION, ending the stream
	// without a body: an error answer, headers then a JSON body.
	const id5 = "55555555-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	block := c.request(auth, id5)
	c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: block[:len(block)/2], EndStream: true}))
	c.check(c.fr.WriteContinuation(5, true, block[len(block)/2:]))
	if status, id := c.response(5, false); status != "400" || id != id5 {
		t.Errorf("stream 5: %s with apns-id %q, want 400 with %q", status, id, id5)
	}
	if d, ok := c.read().(*http2.DataFrame); !ok || d.StreamID != 5 || !d.StreamEnded() || string(d.Data()) != `{"reason":"PayloadEmpty"}` {
		t.Errorf("got %v, want the PayloadEmpty body ending stream 5", d)
	}
	if got := f.srv.Count(); got != 2 {
		t.Errorf("mock counted %d pushes, want 2", got)
	}

	// A client may not open an even-numbered stream: GOAWAY, then the
	// connection closes.
	c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 6, BlockFragment: c.request(auth, ""), EndStream: true, EndHeaders: true}))
	ga, ok := c.read().(*http2.GoAwayFrame)
	if !ok || ga.ErrCode != http2.ErrCodeProtocol || ga.LastStreamID != 5 {
		t.Fatalf("got %v, want GOAWAY PROTOCOL_ERROR with last stream 5", ga)
	}
	if f, err := c.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after GOAWAY read %v, %v; want EOF", f, err)
	}
}

func TestOnlyHTTP2IsServed(t *testing.T) {
	f := startMock(t, 0)
	addr := strings.TrimPrefix(f.srv.URL(), "https://")
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: f.roots, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err == nil {
		// Go's TLS server lets a client whose only ALPN protocol is
		// http/1.1 through (its http/1.1 fallback), so this exercises the
		// mock's own check: it must hang up.
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = tc.Read(make([]byte, 1))
		_ = tc.Close()
	}
	if err == nil {
		t.Fatal("an HTTP/1.1-only client got a connection that serves")
	}
}
