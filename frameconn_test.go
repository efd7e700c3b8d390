package wsrpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// fcFrame describes one frame to encode for the frameConn tests.
type fcFrame struct {
	fin    bool
	op     byte
	n      int  // payload length
	masked bool // with a mask key (client to server)
	form   int  // length encoding: 0 the shortest, 16 or 64 forces that one
	key    [4]byte
}

// fcAppend appends f's bytes to b. The payload is a pattern that contains
// bytes which look like frame headers, so that a parser reading payload as
// headers would be caught.
func fcAppend(b []byte, f fcFrame) []byte {
	b0 := f.op & 0x0f
	if f.fin {
		b0 |= 0x80
	}
	var m byte
	if f.masked {
		m = 0x80
	}
	b = append(b, b0)
	switch {
	case f.form == 64 || f.n > 0xffff:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(f.n))
	case f.form == 16 || f.n > 125:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(f.n))
	default:
		b = append(b, m|byte(f.n))
	}
	if f.masked {
		b = append(b, f.key[:]...)
	}
	for i := range f.n {
		b = append(b, fcPattern[i%len(fcPattern)])
	}
	return b
}

var fcPattern = []byte{0x81, 0x7e, 0x7f, 0x89, 0x00, 0x02, 0xff, 0x88}

// fcEncode encodes frames one after the other.
func fcEncode(frames ...fcFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = fcAppend(b, f)
	}
	return b
}

// fcScript is a net.Conn whose Read serves data, at most sizes[i] bytes
// for the i-th call (cycling; no limit if sizes is empty), then io.EOF.
type fcScript struct {
	net.Conn // nil: only Read is used
	data     []byte
	sizes    []int
	calls    int
	maxAsked int
}

func (s *fcScript) Read(p []byte) (int, error) {
	s.calls++
	s.maxAsked = max(s.maxAsked, len(p))
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(s.data))
	if len(s.sizes) > 0 {
		n = min(n, s.sizes[(s.calls-1)%len(s.sizes)])
	}
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

// fcEvent is a hook call: kind 'B' (begin) or 'E' (end), made inside the
// Read that returned the stream bytes [lo, hi).
type fcEvent struct {
	kind   byte
	lo, hi int64
}

// fcView is what a frameConn made of a stream.
type fcView struct {
	starts []frameStart
	events []fcEvent
	err    error
	lost   bool
}

func (v fcView) kinds() string {
	var b strings.Builder
	for _, e := range v.events {
		b.WriteByte(e.kind)
	}
	return b.String()
}

// fcRun reads stream through a frameConn, the first pre bytes replayed as
// pre, the rest from a conn; the i-th Read asks for sizes[i] bytes (cycling;
// 64 KiB if sizes is empty). It pops the starts at the end.
func fcRun(stream []byte, pre int, sizes []int, skipHTTP bool) fcView {
	var v fcView
	sc := &fcScript{data: stream[pre:]}
	fc := newFrameConn(sc, bytes.Clone(stream[:pre]), skipHTTP)
	var off int64
	fc.setHooks(
		func() { v.events = append(v.events, fcEvent{kind: 'B', lo: off}) },
		func() { v.events = append(v.events, fcEvent{kind: 'E', lo: off}) },
	)
	buf := make([]byte, min(1<<16, len(stream)+1))
	mark := 0
	for i := 0; ; i++ {
		size := len(buf)
		if len(sizes) > 0 {
			size = min(sizes[i%len(sizes)], len(buf))
		}
		n, err := fc.Read(buf[:size])
		for j := mark; j < len(v.events); j++ {
			v.events[j].hi = off + int64(n)
		}
		mark = len(v.events)
		off += int64(n)
		if err != nil {
			if err != io.EOF {
				v.err = err
			}
			break
		}
	}
	for {
		n, fin, op, ok := fc.nextMessage()
		if !ok {
			break
		}
		v.starts = append(v.starts, frameStart{length: n, fin: fin, opcode: op})
	}
	v.lost = fc.lost.Load()
	return v
}

// fcSplits are the ways each table case is cut into Reads: {pre, sizes}.
var fcSplits = []struct {
	pre   int
	sizes []int
}{
	{0, nil},               // all in one Read
	{0, []int{1}},          // one byte per Read
	{0, []int{2}},          // two
	{0, []int{3, 1, 7}},    // uneven
	{0, []int{13}},         // several small frames per Read
	{0, []int{1, 200000}},  // one byte, then the rest
	{3, []int{5}},          // pre, then small Reads
	{14, []int{1}},         // a whole header in pre
	{1 << 30, []int{4096}}, // everything in pre
}

const fcHead101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

func TestFrameConnParser(t *testing.T) {
	text := func(n int, fin bool) fcFrame { return fcFrame{op: 1, n: n, fin: fin} }
	bin := func(n int, fin bool) fcFrame { return fcFrame{op: 2, n: n, fin: fin} }
	cont := func(n int, fin bool) fcFrame { return fcFrame{op: 0, n: n, fin: fin} }
	ctl := func(op byte, n int) fcFrame { return fcFrame{op: op, n: n, fin: true} }
	masked := func(f fcFrame) fcFrame { f.masked, f.key = true, [4]byte{0x81, 0x7f, 0x0a, 0x0d}; return f }
	form := func(f fcFrame, form int) fcFrame { f.form = form; return f }
	st := func(n int64, fin bool, op byte) frameStart { return frameStart{length: n, fin: fin, opcode: op} }

	type fcCase struct {
		name   string
		head   string // HTTP head before the frames; skipHTTP if set
		frames []fcFrame
		tail   []byte // raw bytes after the frames
		starts []frameStart
		events string
		lost   bool
	}
	cases := []fcCase{
		{name: "text 7-bit", frames: []fcFrame{text(5, true)}, starts: []frameStart{st(5, true, 1)}, events: "BE"},
		{name: "text 125", frames: []fcFrame{text(125, true)}, starts: []frameStart{st(125, true, 1)}, events: "BE"},
		{name: "masked binary 16-bit", frames: []fcFrame{masked(bin(300, true))}, starts: []frameStart{st(300, true, 2)}, events: "BE"},
		{name: "16-bit 126", frames: []fcFrame{bin(126, true)}, starts: []frameStart{st(126, true, 2)}, events: "BE"},
		{name: "16-bit 65535", frames: []fcFrame{masked(text(65535, true))}, starts: []frameStart{st(65535, true, 1)}, events: "BE"},
		{name: "64-bit 65536", frames: []fcFrame{bin(65536, true)}, starts: []frameStart{st(65536, true, 2)}, events: "BE"},
		{name: "masked 64-bit 70000", frames: []fcFrame{masked(text(70000, true))}, starts: []frameStart{st(70000, true, 1)}, events: "BE"},
		{name: "non-minimal lengths", frames: []fcFrame{form(text(3, true), 16), masked(form(bin(0, true), 64)), form(ctl(9, 4), 64)},
			starts: []frameStart{st(3, true, 1), st(0, true, 2)}, events: "BEBEBE"},
		{name: "zero-length payloads", frames: []fcFrame{text(0, true), ctl(9, 0), masked(bin(0, true)), masked(ctl(10, 0))},
			starts: []frameStart{st(0, true, 1), st(0, true, 2)}, events: "BEBEBEBE"},
		{name: "fragmented with ping interleaved",
			frames: []fcFrame{text(3, false), ctl(9, 2), cont(4, false), ctl(10, 0), cont(0, false), ctl(9, 125), cont(5, true)},
			starts: []frameStart{st(3, false, 1)}, events: "BE"},
		{name: "masked fragments, 16 and 64-bit",
			frames: []fcFrame{masked(bin(200, false)), masked(ctl(9, 1)), masked(cont(70000, false)), masked(cont(0, true))},
			starts: []frameStart{st(200, false, 2)}, events: "BE"},
		{name: "empty first fragment", frames: []fcFrame{bin(0, false), cont(7, true)}, starts: []frameStart{st(0, false, 2)}, events: "BE"},
		{name: "control outside a message",
			frames: []fcFrame{ctl(9, 3), text(2, true), ctl(10, 3), bin(1, false), ctl(9, 0), cont(1, true), ctl(8, 2)},
			starts: []frameStart{st(2, true, 1), st(1, false, 2)}, events: "BEBEBEBEBE"},
		{name: "many small frames", frames: []fcFrame{text(1, true), text(0, true), bin(2, true), text(1, false), cont(1, true), bin(0, true)},
			starts: []frameStart{st(1, true, 1), st(0, true, 1), st(2, true, 2), st(1, false, 1), st(0, true, 2)}, events: "BEBEBEBEBE"},
		{name: "101 head then frames", head: fcHead101, frames: []fcFrame{text(4, true), ctl(9, 1), bin(300, true)},
			starts: []frameStart{st(4, true, 1), st(300, true, 2)}, events: "BEBEBE"},
		{name: "103 then 101", head: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + fcHead101, frames: []fcFrame{text(1, true)},
			starts: []frameStart{st(1, true, 1)}, events: "BE"},
		{name: "head with bare LF", head: "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n", frames: []fcFrame{bin(2, true)},
			starts: []frameStart{st(2, true, 2)}, events: "BE"},
		{name: "head, no frames", head: fcHead101},
		{name: "not 101", head: "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n", tail: []byte{0x81, 0x00}, lost: true},
		{name: "empty status line", head: "\r\n" + fcHead101, frames: []fcFrame{text(1, true)}, lost: true},
		{name: "lost: new message inside a message", frames: []fcFrame{text(1, false)},
			tail: fcEncode(bin(1, true), text(2, true), ctl(9, 0)), starts: []frameStart{st(1, false, 1)}, events: "B", lost: true},
	}
	// Streams the tracker cannot follow: it keeps what came before (the
	// begin of the bad frame ran at its first byte) and then stays silent,
	// whatever follows.
	after := fcEncode(text(2, true), ctl(9, 0))
	for _, bad := range []struct {
		name string
		raw  []byte
	}{
		{"negative 64-bit length", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}},
		{"continuation outside a message", fcEncode(cont(1, true))},
		{"reserved data opcode", fcEncode(fcFrame{op: 3, n: 1, fin: true})},
		{"reserved control opcode", fcEncode(fcFrame{op: 11, n: 1, fin: true})},
		{"fragmented control", fcEncode(fcFrame{op: 9, n: 1})},
		{"oversized control", fcEncode(fcFrame{op: 9, n: 126, fin: true})},
	} {
		cases = append(cases, fcCase{name: "lost: " + bad.name, frames: []fcFrame{bin(3, true)},
			tail: append(bytes.Clone(bad.raw), after...), starts: []frameStart{st(3, true, 2)}, events: "BEB", lost: true})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := append([]byte(tc.head), fcEncode(tc.frames...)...)
			stream = append(stream, tc.tail...)
			for _, sp := range fcSplits {
				t.Run(fmt.Sprintf("pre%d/%v", min(sp.pre, len(stream)), sp.sizes), func(t *testing.T) {
					v := fcRun(stream, min(sp.pre, len(stream)), sp.sizes, tc.head != "")
					require.NoError(t, v.err)
					require.Equal(t, tc.starts, v.starts)
					require.Equal(t, tc.events, v.kinds())
					require.Equal(t, tc.lost, v.lost)
				})
			}
		})
	}
}

// A begin runs in the Read that returns the first byte of the frame's
// header, even when that is all the Read returns; an end runs in the Read
// that returns the frame's last byte.
func TestFrameConnHookTiming(t *testing.T) {
	stream := fcEncode(
		fcFrame{op: 1, n: 300, fin: false, masked: true},
		fcFrame{op: 9, n: 2, fin: true, masked: true},
		fcFrame{op: 0, n: 0, fin: true, masked: true},
		fcFrame{op: 10, n: 0, fin: true, masked: true},
	)
	v := fcRun(stream, 0, []int{1}, false)
	require.Equal(t, "BEBE", v.kinds())
	first := int64(2 + 2 + 4 + 300 + 2 + 4 + 2)
	require.Equal(t, []fcEvent{
		{'B', 0, 1},
		{'E', first + 6 - 1, first + 6},
		{'B', first + 6, first + 7},
		{'E', int64(len(stream)) - 1, int64(len(stream))},
	}, v.events)
}

// pre is returned first, on its own, without touching the conn; and Read
// never asks the conn for more than it was asked.
func TestFrameConnPre(t *testing.T) {
	frames := fcEncode(fcFrame{op: 1, n: 10, fin: true}, fcFrame{op: 2, n: 20, fin: true})
	sc := &fcScript{data: frames[7:]}
	fc := newFrameConn(sc, bytes.Clone(frames[:7]), false)
	p := make([]byte, 5)
	n, err := fc.Read(p)
	require.NoError(t, err)
	require.Equal(t, frames[:5], p[:n])
	n, err = fc.Read(make([]byte, 100))
	require.NoError(t, err)
	require.Equal(t, 2, n, "the rest of pre, and nothing more")
	require.Zero(t, sc.calls)
	n, err = fc.Read(p[:3])
	require.NoError(t, err)
	require.Equal(t, frames[7:10], p[:n])
	require.Equal(t, 3, sc.maxAsked)
	got, err := io.ReadAll(fc)
	require.NoError(t, err)
	require.Equal(t, frames[10:], got)
	_, fin, op, ok := fc.nextMessage()
	require.True(t, ok && fin && op == 1)
	n64, _, op, ok := fc.nextMessage()
	require.True(t, ok && op == 2 && n64 == 20)
	_, _, _, ok = fc.nextMessage()
	require.False(t, ok)
}

// Past frameQueueMax unpopped starts the conn breaks: the Read that
// overflows returns its bytes and errFrameQueueFull, and every later Read
// the error alone. What was queued stays, in order.
func TestFrameConnQueueBound(t *testing.T) {
	var stream []byte
	for i := range frameQueueMax + 1 {
		stream = fcAppend(stream, fcFrame{op: byte(1 + i%2), n: 0, fin: true})
	}
	stream = append(stream, 0x81, 0x00)
	sc := &fcScript{data: stream}
	fc := newFrameConn(sc, nil, false)
	var begins, ends int
	fc.setHooks(func() { begins++ }, func() { ends++ })
	buf := make([]byte, len(stream)+10)
	n, err := fc.Read(buf)
	require.Equal(t, len(stream), n)
	require.ErrorIs(t, err, errFrameQueueFull)
	n, err = fc.Read(buf)
	require.Zero(t, n)
	require.ErrorIs(t, err, errFrameQueueFull)
	require.Equal(t, 1, sc.calls)
	require.Equal(t, frameQueueMax+1, begins, "the last begin has no end: the conn is broken")
	require.Equal(t, frameQueueMax, ends)
	for i := range frameQueueMax {
		_, _, op, ok := fc.nextMessage()
		require.True(t, ok)
		require.Equal(t, byte(1+i%2), op)
	}
	_, _, _, ok := fc.nextMessage()
	require.False(t, ok)

	// Popping as it goes, the same stream is fine.
	sc = &fcScript{data: stream, sizes: []int{1000}}
	fc = newFrameConn(sc, nil, false)
	popped := 0
	for {
		_, err := fc.Read(buf)
		for {
			if _, _, _, ok := fc.nextMessage(); !ok {
				break
			}
			popped++
		}
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	require.Equal(t, frameQueueMax+2, popped)
}

// On the client, net/http reads the 101 response (and maybe the start of
// the first frames) before the caller has the frameConn; setHooks then
// reports a frame under way with a begin of its own.
func TestFrameConnLateHooks(t *testing.T) {
	whole := fcEncode(fcFrame{op: 1, n: 3, fin: true})
	partial := fcEncode(fcFrame{op: 2, n: 300, fin: true})
	for _, tc := range []struct {
		name   string
		cut    int // bytes of partial read with the head
		begins int
	}{
		{"frame boundary", 0, 0},
		{"one header byte", 1, 1},
		{"inside the payload", 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := append([]byte(fcHead101), whole...)
			first := len(stream) + tc.cut
			stream = append(stream, partial...)
			sc := &fcScript{data: stream, sizes: []int{first, 1 << 20}}
			fc := newFrameConn(sc, nil, true)
			_, err := fc.Read(make([]byte, 4096))
			require.NoError(t, err)
			var events []byte
			fc.setHooks(func() { events = append(events, 'B') }, func() { events = append(events, 'E') })
			require.Len(t, events, tc.begins)
			_, err = io.ReadAll(fc)
			require.NoError(t, err)
			require.Equal(t, "BE", string(events))
			n, _, _, _ := fc.nextMessage()
			require.EqualValues(t, 3, n)
			n, _, _, _ = fc.nextMessage()
			require.EqualValues(t, 300, n)
		})
	}
}

// A Read of payload bytes costs nothing but a subtraction, and in the
// steady state no Read allocates.
func TestFrameConnReadAllocs(t *testing.T) {
	var unit []byte
	for _, f := range []fcFrame{
		{op: 1, n: 100, fin: true, masked: true},
		{op: 9, n: 3, fin: true, masked: true},
		{op: 2, n: 5000, fin: false, masked: true},
		{op: 10, n: 0, fin: true, masked: true},
		{op: 0, n: 70000, fin: true, masked: true},
		{op: 1, n: 0, fin: true, masked: true},
	} {
		unit = fcAppend(unit, f)
	}
	lc := &fcLoopConn{data: unit}
	fc := newFrameConn(lc, nil, false)
	var begins, ends int
	fc.setHooks(func() { begins++ }, func() { ends++ })
	buf := make([]byte, 777)
	pops := 0
	step := func() {
		_, _ = fc.Read(buf)
		for {
			if _, _, _, ok := fc.nextMessage(); !ok {
				break
			}
			pops++
		}
	}
	for range 1000 {
		step()
	}
	require.Zero(t, testing.AllocsPerRun(1000, step))
	require.False(t, fc.lost.Load())
	require.Positive(t, pops)
	require.LessOrEqual(t, begins-ends, 1)
}

// fcLoopConn serves data over and over.
type fcLoopConn struct {
	net.Conn
	data []byte
	off  int
}

func (l *fcLoopConn) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func TestHijackFramesReplaysBuffered(t *testing.T) {
	frames := fcEncode(fcFrame{op: 1, n: 4, fin: true, masked: true}, fcFrame{op: 2, n: 2, fin: true, masked: true})
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	// net/http read the request and, behind it, the first frame and a half.
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(frames[:12]), c1))
	_, err := br.Peek(12)
	require.NoError(t, err)
	bw := bufio.NewWriter(c1)
	fc, brw, err := hijackFrames(c1, bufio.NewReadWriter(br, bw))
	require.NoError(t, err)
	require.Zero(t, brw.Reader.Buffered())
	require.Same(t, bw, brw.Writer)
	require.Same(t, c1, fc.Conn)
	var events []byte
	fc.setHooks(func() { events = append(events, 'B') }, func() { events = append(events, 'E') })

	go func() {
		_, _ = c2.Write(frames[12:])
		_ = c2.Close()
	}()
	got, err := io.ReadAll(brw.Reader)
	require.NoError(t, err)
	require.Equal(t, frames, got)
	require.Equal(t, "BEBE", string(events))
	n, fin, op, ok := fc.nextMessage()
	require.True(t, ok)
	require.Equal(t, frameStart{4, true, 1}, frameStart{n, fin, op})

	_, _, err = hijackFrames(c1, nil)
	require.Error(t, err)
}

func TestFramedClientRefuses(t *testing.T) {
	ws, err := url.Parse("ws://127.0.0.1:1/x")
	require.NoError(t, err)
	wss, err := url.Parse("wss://example.com/x")
	require.NoError(t, err)
	proxy, err := url.Parse("http://proxy.invalid:3128")
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		base *http.Client
		u    *url.URL
	}{
		{"not an *http.Transport", &http.Client{Transport: fcRoundTripper{}}, ws},
		{"proxy", &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}, wss},
		{"proxy error", &http.Client{Transport: &http.Transport{Proxy: func(*http.Request) (*url.URL, error) {
			return nil, errors.New("no")
		}}}, ws},
		{"custom TLS dialer", &http.Client{Transport: &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no")
		}}}, ws},
		{"scheme", &http.Client{}, &url.URL{Scheme: "ftp", Host: "example.com"}},
		{"no URL", &http.Client{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, conn, ok := framedClient(tc.base, tc.u)
			require.False(t, ok)
			require.Same(t, tc.base, c)
			require.Nil(t, conn())
		})
	}

	// Proxy consulted for the URL itself, with an http(s) scheme.
	var asked []string
	tr := &http.Transport{Proxy: func(r *http.Request) (*url.URL, error) {
		asked = append(asked, r.URL.String())
		return nil, nil
	}}
	base := &http.Client{Transport: tr, Timeout: 12345}
	c, conn, ok := framedClient(base, wss)
	require.True(t, ok)
	require.Equal(t, []string{"https://example.com/x"}, asked)
	require.NotSame(t, base, c)
	require.Equal(t, base.Timeout, c.Timeout)
	require.NotSame(t, tr, c.Transport)
	require.Nil(t, conn())
	// base's transport is untouched.
	require.Nil(t, tr.DialContext)
	require.Nil(t, tr.DialTLSContext)
	require.False(t, tr.DisableKeepAlives)
	require.Nil(t, tr.Protocols)

	c, _, ok = framedClient(nil, ws)
	require.True(t, ok, "http.DefaultClient, and no proxy for a loopback address")
	require.NotSame(t, http.DefaultClient, c)
	require.NotSame(t, http.DefaultTransport, c.Transport)
}

type fcRoundTripper struct{}

func (fcRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no")
}

// fcHooks checks that begin and end alternate, starting with begin.
type fcHooks struct {
	depth, begins, ends, bad atomic.Int64
}

func (h *fcHooks) set(fc *frameConn) {
	fc.setHooks(func() {
		h.begins.Add(1)
		if h.depth.Add(1) != 1 {
			h.bad.Add(1)
		}
	}, func() {
		h.ends.Add(1)
		if h.depth.Add(-1) != 0 {
			h.bad.Add(1)
		}
	})
}

// fcHijacker is an http.ResponseWriter whose Hijack goes through
// hijackFrames.
type fcHijacker struct {
	http.ResponseWriter
	hooks *fcHooks
	fc    *frameConn
}

func (w *fcHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	fc, brw2, err := hijackFrames(c, brw)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	w.hooks.set(fc)
	w.fc = fc
	return fc, brw2, nil
}

// fcPlan is a message to send: parts > 1 are written as fragments through
// a Writer, with a ping after the first fragment if ping is set.
type fcPlan struct {
	typ   websocket.MessageType
	parts [][]byte
	ping  bool
}

func (p fcPlan) data() []byte { return bytes.Join(p.parts, nil) }

// first is the first frame nextMessage must report for p.
func (p fcPlan) first() frameStart {
	return frameStart{length: int64(len(p.parts[0])), fin: len(p.parts) == 1, opcode: byte(p.typ)}
}

func (p fcPlan) send(ctx context.Context, c *websocket.Conn) error {
	if len(p.parts) == 1 {
		return c.Write(ctx, p.typ, p.parts[0])
	}
	w, err := c.Writer(ctx, p.typ)
	if err != nil {
		return err
	}
	for i, part := range p.parts {
		if _, err := w.Write(part); err != nil {
			return err
		}
		if i == 0 && p.ping {
			if err := c.Ping(ctx); err != nil {
				return err
			}
		}
	}
	return w.Close()
}

// fcGot is a message as read, with what nextMessage said right after
// Reader returned it.
type fcGot struct {
	typ   websocket.MessageType
	data  []byte
	first frameStart
	ok    bool
	err   error
}

// fcReadLoop reads messages until an error, popping nextMessage after each
// Reader, as wsrpc would.
func fcReadLoop(ctx context.Context, c *websocket.Conn, fc *frameConn, out chan<- fcGot) {
	defer close(out)
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return
		}
		g := fcGot{typ: typ}
		g.first.length, g.first.fin, g.first.opcode, g.ok = fc.nextMessage()
		g.data, g.err = io.ReadAll(r)
		out <- g
		if g.err != nil {
			return
		}
	}
}

func fcPlans() []fcPlan {
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + (seed+byte(i))%26
		}
		return b
	}
	var plans []fcPlan
	for i, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		typ := websocket.MessageText
		if i%2 == 1 {
			typ = websocket.MessageBinary
		}
		plans = append(plans, fcPlan{typ: typ, parts: [][]byte{pattern(n, byte(i))}})
	}
	plans = append(plans,
		fcPlan{typ: websocket.MessageText, parts: [][]byte{pattern(3, 1), pattern(5, 2)}},
		fcPlan{typ: websocket.MessageBinary, parts: [][]byte{pattern(126, 3), pattern(70000, 4), pattern(1, 5)}, ping: true},
		fcPlan{typ: websocket.MessageText, parts: [][]byte{{}, pattern(10, 6)}, ping: true},
		fcPlan{typ: websocket.MessageBinary, parts: [][]byte{pattern(65536, 7), pattern(2, 8)}},
		fcPlan{typ: websocket.MessageText, parts: [][]byte{pattern(2, 9)}},
	)
	return plans
}

func fcCheck(t *testing.T, who string, plans []fcPlan, got <-chan fcGot) {
	t.Helper()
	for i, p := range plans {
		g, ok := <-got
		require.True(t, ok, "%s: message %d: reader stopped", who, i)
		require.NoError(t, g.err, "%s: message %d", who, i)
		require.Equal(t, p.typ, g.typ, "%s: message %d", who, i)
		require.True(t, bytes.Equal(p.data(), g.data), "%s: message %d: data differs", who, i)
		require.True(t, g.ok, "%s: message %d: nothing queued", who, i)
		require.Equal(t, p.first(), g.first, "%s: message %d", who, i)
		if len(p.parts) == 1 {
			require.EqualValues(t, len(p.parts[0]), g.first.length)
			require.True(t, g.first.fin)
		}
	}
}

// fcRoundTrip runs plans from client to server and back, with pings both
// ways, over a coder/websocket server whose Hijack uses hijackFrames and a
// client dialed with framedClient(base).
func fcRoundTrip(t *testing.T, tlsServer bool, base func(*httptest.Server) *http.Client) {
	ctx := context.Background()
	plans := fcPlans()
	srvGot := make(chan fcGot, len(plans)+1)
	var srvHooks fcHooks
	handlerDone := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &fcHijacker{ResponseWriter: w, hooks: &srvHooks}
		c, err := websocket.Accept(hw, r, nil)
		if err != nil {
			close(srvGot)
			handlerDone <- err
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		got := make(chan fcGot, len(plans)+1)
		go fcReadLoop(ctx, c, hw.fc, got)
		var sendErr error
		i := 0
		for g := range got { // until the client's close ends the reader
			srvGot <- g
			if sendErr == nil && i < len(plans) {
				sendErr = plans[i].send(ctx, c)
				if sendErr == nil && i == 2 {
					sendErr = c.Ping(ctx) // between messages
				}
			}
			i++
		}
		close(srvGot)
		handlerDone <- sendErr
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	defer srv.Close()

	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	hc, conn, ok := framedClient(base(srv), u)
	require.True(t, ok)
	require.Nil(t, conn())
	c, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: hc})
	require.NoError(t, err)
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	fc := conn()
	require.NotNil(t, fc)
	if tlsServer {
		_, isTLS := fc.Conn.(*tls.Conn)
		require.True(t, isTLS, "the frameConn sits above TLS")
	}
	var cliHooks fcHooks
	cliHooks.set(fc)
	cliGot := make(chan fcGot, len(plans)+1)
	go fcReadLoop(ctx, c, fc, cliGot)

	for i, p := range plans {
		require.NoError(t, p.send(ctx, c), "message %d", i)
		if i == 4 {
			require.NoError(t, c.Ping(ctx)) // between messages
		}
	}
	fcCheck(t, "server", plans, srvGot)
	fcCheck(t, "client", plans, cliGot)

	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	for range cliGot {
	}
	require.NoError(t, <-handlerDone)
	for range srvGot {
		t.Fatal("unexpected message")
	}

	for who, h := range map[string]*fcHooks{"server": &srvHooks, "client": &cliHooks} {
		require.Zero(t, h.bad.Load(), who)
		require.Equal(t, h.begins.Load(), h.ends.Load(), who)
		// Every message, ping, pong and the close frame.
		require.GreaterOrEqual(t, h.begins.Load(), int64(len(plans)+3), who)
	}
	_, _, _, ok = fc.nextMessage()
	require.False(t, ok)
}

func TestFrameConnRoundTrip(t *testing.T) {
	fcRoundTrip(t, false, func(*httptest.Server) *http.Client { return nil })
}

func TestFrameConnRoundTripTLS(t *testing.T) {
	fcRoundTrip(t, true, func(s *httptest.Server) *http.Client { return s.Client() })
}

// fcBytes hands out the bytes of a fuzz input, then zeros.
type fcBytes struct {
	b []byte
	i int
}

func (r *fcBytes) more() bool { return r.i < len(r.b) }

func (r *fcBytes) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// fcGen turns prog into a valid frame sequence: data messages, some
// fragmented with control frames between the fragments, and control
// frames between messages.
func fcGen(prog []byte) []fcFrame {
	r := &fcBytes{b: prog}
	var frames []fcFrame
	frame := func(op byte, fin bool, n int) fcFrame {
		x := r.next()
		f := fcFrame{op: op, fin: fin, n: n, masked: x&1 != 0}
		switch x >> 1 % 4 {
		case 2:
			if n <= 0xffff {
				f.form = 16
			}
		case 3:
			f.form = 64
		}
		if f.masked {
			f.key = [4]byte{r.next(), r.next(), r.next(), r.next()}
		}
		return f
	}
	ctl := func() fcFrame { return frame(8+r.next()%3, true, int(r.next()%126)) }
	total := 0
	length := func() int {
		if total > 1<<17 {
			return int(r.next() % 126)
		}
		switch r.next() % 8 {
		case 5, 6:
			return 126 + int(r.next())<<4
		case 7:
			return 0xffff - 6 + int(r.next()%12)
		default:
			return int(r.next() % 126)
		}
	}
	for r.more() && len(frames) < 400 {
		x := r.next()
		if x%4 == 0 {
			frames = append(frames, ctl())
			continue
		}
		op := 1 + x>>2&1
		nfrag := 1 + int(x>>3%4)
		for i := range nfrag {
			if i > 0 && r.next()%3 == 0 {
				frames = append(frames, ctl())
			}
			fop := op
			if i > 0 {
				fop = 0
			}
			f := frame(fop, i == nfrag-1, length())
			total += f.n
			frames = append(frames, f)
		}
	}
	return frames
}

// fcWant is the view computed from the frames themselves: the starts, and
// for each hook the stream offset of the byte it must run on.
func fcWant(frames []fcFrame, base int64) (starts []frameStart, events []fcEvent) {
	off := base
	inMsg := false
	for _, f := range frames {
		enc := fcAppend(nil, f)
		last := off + int64(len(enc)) - 1
		if !inMsg {
			events = append(events, fcEvent{kind: 'B', lo: off})
		}
		if f.op == 1 || f.op == 2 {
			starts = append(starts, frameStart{length: int64(f.n), fin: f.fin, opcode: f.op})
			inMsg = true
		}
		if f.op < 8 && f.fin {
			inMsg = false
		}
		if !inMsg {
			events = append(events, fcEvent{kind: 'E', lo: last})
		}
		off += int64(len(enc))
	}
	return starts, events
}

// fcCuts turns fuzz bytes into a pre length and Read sizes.
func fcCuts(cuts []byte, total int) (int, []int) {
	if len(cuts) == 0 {
		return 0, nil
	}
	pre := int(cuts[0]) * total / 256
	var sizes []int
	for _, c := range cuts[1:] {
		if c < 192 {
			sizes = append(sizes, 1+int(c%24))
		} else {
			sizes = append(sizes, 1+int(c)*97%9000)
		}
	}
	return pre, sizes
}

func fcSameView(t *testing.T, a, b fcView) {
	t.Helper()
	require.Equal(t, a.starts, b.starts)
	require.Equal(t, a.kinds(), b.kinds())
	require.Equal(t, a.err, b.err)
	require.Equal(t, a.lost, b.lost)
}

func FuzzFrameConn(f *testing.F) {
	f.Add([]byte{}, []byte{}, false)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{0, 1}, false)
	f.Add([]byte{0x0d, 9, 0, 0x81, 0x22, 0xff, 7, 0xfe, 0x99, 3, 0, 0x45, 0x10}, []byte{100, 1, 2, 3, 250}, true)
	f.Add(fcEncode(fcFrame{op: 1, n: 5, fin: true}, fcFrame{op: 9, n: 0, fin: true}), []byte{0, 1}, false)
	f.Add([]byte(fcHead101+"\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00"), []byte{3, 7, 200}, true)
	f.Fuzz(func(t *testing.T, prog, cuts []byte, skip bool) {
		// A valid frame sequence: the split view equals the view computed
		// from the frames, and the view of one whole Read.
		frames := fcGen(prog)
		var head []byte
		if skip {
			head = []byte(fcHead101)
		}
		stream := append(head, fcEncode(frames...)...)
		wantStarts, wantEvents := fcWant(frames, int64(len(head)))
		pre, sizes := fcCuts(cuts, len(stream))
		whole := fcRun(stream, 0, nil, skip)
		split := fcRun(stream, pre, sizes, skip)
		fcSameView(t, whole, split)
		require.NoError(t, split.err)
		require.False(t, split.lost)
		if wantStarts == nil {
			wantStarts = []frameStart(nil)
		}
		require.Equal(t, wantStarts, split.starts)
		require.Len(t, split.events, len(wantEvents))
		for i, w := range wantEvents {
			e := split.events[i]
			require.Equal(t, w.kind, e.kind, "event %d", i)
			require.True(t, e.lo <= w.lo && w.lo < e.hi, "event %d %c at byte %d ran in Read [%d, %d)", i, e.kind, w.lo, e.lo, e.hi)
		}

		// Garbage: no panic, and the same view however it is cut.
		for _, skip := range []bool{false, true} {
			pre, sizes := fcCuts(cuts, len(prog))
			a := fcRun(prog, 0, nil, skip)
			b := fcRun(prog, pre, sizes, skip)
			fcSameView(t, a, b)
			for i, e := range b.events {
				require.Equal(t, "BE"[i%2], e.kind)
			}
			for _, s := range b.starts {
				require.True(t, s.opcode == 1 || s.opcode == 2)
				require.GreaterOrEqual(t, s.length, int64(0))
			}
		}
	})
}

// In caller mode a frameConn returns only whole frames a caller may read,
// and stops with errHandOff before the first byte of any other frame; the
// bytes it read ahead come first once it leaves caller mode, and every
// byte is parsed once.
func TestFrameConnCallerMode(t *testing.T) {
	t.Parallel()
	small := fcEncode(fcFrame{fin: true, op: 1, n: 100}, fcFrame{fin: true, op: 9, n: 4})
	big := fcEncode(fcFrame{fin: true, op: 1, n: callerFrameMax + 1})
	frag := fcEncode(fcFrame{op: 1, n: 10}, fcFrame{fin: true, op: 0, n: 10})
	for name, tc := range map[string]struct {
		stream []byte
		whole  int // bytes a caller gets before errHandOff
	}{
		"big after small":  {append(slices.Clone(small), big...), len(small)},
		"fragmented":       {append(slices.Clone(small), frag...), len(small)},
		"continuation":     {fcEncode(fcFrame{fin: true, op: 0, n: 3}), 0},
		"control too long": {fcEncode(fcFrame{fin: true, op: 9, n: 126}), 0},
	} {
		t.Run(name, func(t *testing.T) {
			for _, size := range []int{1, 3, 4096} {
				fc := newFrameConn(&fcScript{data: tc.stream, sizes: []int{size}}, nil, false)
				fc.setCaller(true)
				var got []byte
				p := make([]byte, 512)
				var err error
				for err == nil {
					var n int
					n, err = fc.Read(p)
					got = append(got, p[:n]...)
				}
				require.ErrorIs(t, err, errHandOff, "read size %d", size)
				require.Equal(t, string(tc.stream[:tc.whole]), string(got), "read size %d", size)
				fc.setCaller(false)
				rest, err := io.ReadAll(fc)
				require.NoError(t, err)
				require.Equal(t, tc.stream, append(got, rest...), "read size %d", size)
			}
		})
	}
	require.Equal(t, 2, mustPopAll(newFrameConnRead(t, append(slices.Clone(small), big...))), "each data message start queued once")
}

// newFrameConnRead reads stream through a frameConn in caller mode until it
// stops, then the rest in streaming mode, and returns the frameConn.
func newFrameConnRead(t *testing.T, stream []byte) *frameConn {
	fc := newFrameConn(&fcScript{data: stream, sizes: []int{7}}, nil, false)
	fc.setCaller(true)
	p := make([]byte, 64)
	for {
		if _, err := fc.Read(p); err != nil {
			require.ErrorIs(t, err, errHandOff)
			break
		}
	}
	fc.setCaller(false)
	_, err := io.ReadAll(fc)
	require.NoError(t, err)
	return fc
}

func mustPopAll(fc *frameConn) int {
	n := 0
	for {
		if _, _, _, ok := fc.nextMessage(); !ok {
			return n
		}
		n++
	}
}

// interrupt stops a caller's blocked Read with errInterrupted and nothing
// consumed; the deadline it set is gone for the reads after it, and an
// interrupt outside caller mode does nothing.
func TestFrameConnInterrupt(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fc := newFrameConn(a, nil, false)
	fc.interrupt() // not in caller mode: nothing
	fc.setCaller(true)
	read := make(chan error, 1)
	go func() {
		_, err := fc.Read(make([]byte, 16))
		read <- err
	}()
	// A frame under way: the interrupt stops the read all the same, and
	// its first bytes stay held.
	frame := fcEncode(fcFrame{fin: true, op: 1, n: 5})
	_, err := b.Write(frame[:3])
	require.NoError(t, err)
	fc.interrupt()
	require.ErrorIs(t, <-read, errInterrupted)
	fc.setCaller(false)
	go b.Write(frame[3:])
	got, err := io.ReadAll(io.LimitReader(fc, int64(len(frame))))
	require.NoError(t, err)
	require.Equal(t, frame, got)
}

// TestFrameConnWholeAheadWhileAnotherReads: the reading goroutine asks
// wholeAhead between its reads while another goroutine reads frames (as
// coder/websocket's Close does, reading until the close frame). Under
// -race this fails if wholeAhead looks at the parser's own state.
func TestFrameConnWholeAheadWhileAnotherReads(t *testing.T) {
	t.Parallel()
	var stream []byte
	for range 200 {
		stream = fcAppend(stream, fcFrame{op: 1, n: 3, fin: true, masked: true})
		stream = fcAppend(stream, fcFrame{op: 1, n: 130, fin: false, masked: true})
		stream = fcAppend(stream, fcFrame{op: 0, n: 5, fin: true, masked: true})
	}
	fc := newFrameConn(&fcScript{data: stream, sizes: []int{1, 7, 64}}, nil, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			if _, err := fc.Read(buf); err != nil {
				return
			}
			for {
				if _, _, _, ok := fc.nextMessage(); !ok {
					break
				}
			}
		}
	}()
	seen := false
	for {
		select {
		case <-done:
			require.False(t, fc.wholeAhead(), "everything was popped")
			t.Logf("a whole message was seen ahead: %v", seen)
			return
		default:
			seen = fc.wholeAhead() || seen
		}
	}
}

// TestFrameConnCallerShortReads: in caller mode, whole frames longer than
// the reader's buffer (coder/websocket reads through a 4 KiB one) are
// returned over several Reads, byte for byte, and what follows them is
// parsed from its own start. Until this session the rest of such a frame
// was parsed again as if a frame started there: a dialed client calling
// with a context that can end failed on notifications of 4 to 64 KiB
// ("received header with unexpected rsv bits set").
func TestFrameConnCallerShortReads(t *testing.T) {
	stream := fcEncode(fcFrame{fin: true, op: 1, n: 10000}, fcFrame{fin: true, op: 9, n: 5}, fcFrame{fin: true, op: 1, n: 5000})
	for _, size := range []int{1, 7, 4096, 1 << 16} {
		fc := newFrameConn(&fcScript{data: stream, sizes: []int{size}}, nil, false)
		require.True(t, fc.setCaller(true))
		var got []byte
		p := make([]byte, 4096)
		for len(got) < len(stream) {
			n, err := fc.Read(p)
			require.NoError(t, err, "read size %d after %d bytes", size, len(got))
			got = append(got, p[:n]...)
		}
		require.Equal(t, stream, got, "read size %d", size)
		fc.setCaller(false)
	}
}

// TestFrameConnCallerNotInsideFrame: caller mode is refused while the
// bytes passed on end inside a frame, or while bytes read ahead are left
// that a reader took some of; it is granted at a frame's end.
func TestFrameConnCallerNotInsideFrame(t *testing.T) {
	stream := fcEncode(fcFrame{fin: true, op: 1, n: 100}, fcFrame{fin: true, op: 1, n: 100})
	fc := newFrameConn(&fcScript{data: stream, sizes: []int{50, 52, 200}}, nil, false)
	p := make([]byte, 200)
	n, err := fc.Read(p[:50])
	require.NoError(t, err)
	require.Equal(t, 50, n)
	require.False(t, fc.setCaller(true), "inside the first frame")
	n, err = fc.Read(p[:52])
	require.NoError(t, err)
	require.Equal(t, 52, n)
	require.True(t, fc.setCaller(true), "at the first frame's end")
	// Caller mode reads the second frame ahead; a reader takes part of it.
	n, err = fc.Read(p[:10])
	require.NoError(t, err)
	require.Equal(t, 10, n)
	fc.setCaller(false)
	require.False(t, fc.setCaller(true), "inside the second frame")
	rest, err := io.ReadAll(fc)
	require.NoError(t, err)
	require.Len(t, rest, len(stream)-102-10)
	require.True(t, fc.setCaller(true), "at the end of the stream")
}
