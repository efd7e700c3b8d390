package wsrpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// frameQueueMax bounds the data message starts a frameConn keeps for
// nextMessage.
//
// Starts are queued as Read sees them and popped once per message returned
// by coder/websocket's Reader, so what is queued is what has been read from
// the connection but not yet parsed by coder/websocket, plus at most the one
// message just returned. That read-ahead is a bufio.Reader's buffer: 4 KiB
// on both sides (net/http's server reader, which Accept keeps using, and
// coder/websocket's own reader on the client, with net/http's client reader
// only holding bytes that came in with the handshake response; framedClient
// keeps that one at its 4 KiB default too). A frame takes at least 2 bytes,
// so at most 2049 starts can be queued honestly; 4096 leaves room for twice
// that. Reaching the bound therefore means the caller stopped popping, and
// a queue that would drop or overwrite entries would make every later
// nextMessage describe the wrong message, so the conn breaks instead: the
// Read that would overflow returns errFrameQueueFull (with the bytes it
// read), and so does every later Read.
const frameQueueMax = 4096

// errFrameQueueFull is the error a frameConn's Read returns once more than
// frameQueueMax data message starts wait for nextMessage.
var errFrameQueueFull = errors.New("wsrpc: more than 4096 WebSocket messages read ahead and not taken")

// frameStart is a data message start queued for nextMessage: its first
// frame's payload length, FIN bit and opcode.
type frameStart struct {
	length int64
	fin    bool
	opcode byte
}

// frameConn is the net.Conn under a coder/websocket Conn. It passes every
// byte through unchanged, and parses the RFC 6455 frame headers in the byte
// stream as coder/websocket reads it, because coder/websocket keeps the
// headers to itself and wsrpc needs two things from them:
//
//   - when a frame starts arriving, so that a message timeout can run from
//     the first byte of its header (begin and end hooks, see setHooks)
//     rather than from when coder/websocket has the whole header (a header
//     trickled in one byte at a time would otherwise never be timed);
//   - how long the next data message's first frame is, as soon as
//     coder/websocket's Reader returns it and before its payload is read
//     (nextMessage), so that a memory budget can be reserved for that many
//     bytes.
//
// A frameConn follows the stream; it never judges it. When the stream is one
// it cannot follow (a 64-bit length with the top bit set, a frame
// coder/websocket itself rejects whatever the negotiated options, an HTTP
// response other than 101 before the frames), it stops tracking: no more
// hooks and no more queued starts, while bytes keep flowing so that
// coder/websocket reports the error in its own words. Starts queued before
// that point stay valid and can still be popped: they describe messages
// that come before the bad frame. The bad frame's begin has run already (at
// its first byte); no end follows it, and none is needed, since the
// connection is about to fail.
//
// The length is the frame's payload length on the wire; with
// permessage-deflate (which wsrpc does not negotiate) it would be the
// compressed length.
type frameConn struct {
	net.Conn

	pre        []byte // replayed by Read before c.Conn is read
	begin, end func() // set by setHooks before Read runs

	// Parser state, used by Read only (and by setHooks, which must not run
	// concurrently with Read); lost is also read by wholeAhead.
	lost   atomic.Bool // stream no longer followed
	err    error       // sticky error Read returns (queue overflow)
	head   bool        // inside an HTTP response head (skipHTTP)
	line   int         // bytes in the current head line so far
	lastCR bool        // the last of them was '\r'
	status [16]byte
	statN  int // bytes of the current head kept in status

	hdr    [14]byte // frame header being assembled: 2 + 8 length + 4 mask
	hn     int      // header bytes in hdr
	hneed  int      // header bytes needed; 2 until byte 1 is known
	remain int64    // payload bytes of the current frame still to come
	inMsg  bool     // a data message has started and not finished
	endMsg bool     // the current frame is the final frame of that message

	// Caller mode (see callerRead): bytes read and parsed ahead, not yet
	// returned. caller is set and cleared by the reading goroutine;
	// interrupted, and the read deadline, by cmu.
	held    []byte
	heldOff int
	// ready: bytes at held[heldOff:] of whole frames already being
	// returned, which a short p left; they go out before anything is
	// parsed again.
	ready  int
	rerr   error // a read error kept until held is returned
	caller atomic.Bool
	cmu    sync.Mutex
	// interrupted: interrupt set the read deadline in the past; the
	// next timeout is ours.
	interrupted bool

	// The write side (framewrite.go).
	w frameWriter

	// Queue of data message starts, shared with nextMessage; and, for
	// wholeAhead, which the reading goroutine calls between reads, while
	// another goroutine may be reading (coder/websocket's Close reads
	// until the close frame), a copy of inMsg that changes with qLen.
	mu       sync.Mutex
	q        []frameStart // ring; grows by doubling up to frameQueueMax
	qHead    int
	qLen     int
	arriving bool // inMsg: the newest start's message has not ended
}

// newFrameConn wraps c. pre holds bytes already read from c (buffered by
// net/http before a hijack) which Read returns first. skipHTTP: the stream
// starts with an HTTP response head (client side: the 101 Switching
// Protocols response read by net/http through this conn), which is not
// framed: everything up to and including the first "\r\n\r\n" is passed
// through untracked.
//
// Like net/http, the head ends at the first empty line whether lines end in
// "\r\n" or "\n", and an interim 1xx response other than 101 (103 Early
// Hints) is followed by another head, which is skipped as well, since
// net/http reads past it too. Any final status other than 101 means the
// rest is no WebSocket stream, so tracking stops.
func newFrameConn(c net.Conn, pre []byte, skipHTTP bool) *frameConn {
	return &frameConn{Conn: c, pre: pre, head: skipHTTP}
}

// Read reads from the connection (pre first) and advances the frame parser
// over the bytes returned. Read is only ever called by one goroutine at a
// time (coder/websocket's reader holds its read lock), but nextMessage may
// be called from other goroutines, so the queue it shares with Read is
// guarded by a mutex, taken only when a data message start is queued.
//
// Read reads at most len(p) bytes with a single call to the wrapped conn (or
// none, while pre lasts), and costs O(1) per Read for payload bytes: the
// parser only looks at header bytes.
func (c *frameConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.caller.Load() {
		return c.callerRead(p)
	}
	if c.heldOff < len(c.held) {
		// Read ahead in caller mode, and parsed then.
		n := copy(p, c.held[c.heldOff:])
		c.consumeHeld(n)
		return n, nil
	}
	if c.rerr != nil {
		err := c.rerr
		c.rerr = nil
		return 0, err
	}
	var n int
	var err error
	if len(c.pre) > 0 {
		n = copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil // let the replayed bytes be collected
		}
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 && n <= len(p) && !c.lost.Load() {
		c.advance(p[:n])
		if c.err != nil && err == nil {
			err = c.err
		}
	}
	return n, err
}

// ---- caller mode ----
//
// A caller whose context can end may read its own answer (see readFor)
// only if its read can be stopped when the context ends, and coder/websocket
// cannot stop a read in the middle of a frame without failing the
// connection. In caller mode the frameConn therefore returns only whole
// frames, read ahead into held: small control frames, and messages of one
// frame (FIN set) of at most callerFrameMax bytes. Between them, a blocked
// read can be stopped (interrupt) and coder/websocket sees a read error
// with no byte of a frame consumed, which leaves it as it was. A frame of
// any other kind (large, fragmented) is left to a reader goroutine: Read
// returns errHandOff before returning a byte of it.

// callerFrameMax bounds the frames a caller reads in caller mode: the most
// a frameConn holds ahead of coder/websocket.
const callerFrameMax = 64 << 10

var (
	// errInterrupted: interrupt stopped a caller's read.
	errInterrupted = errors.New("wsrpc: read stopped: the caller's context ended")
	// errHandOff: the next frame is not one a caller reads.
	errHandOff = errors.New("wsrpc: read stopped: the next frame is for a reader")
)

// aLongTimeAgo is a read deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// setCaller enters caller mode (true) or leaves it. Only the goroutine
// that reads calls it, between reads. Leaving clears an interrupt that
// came too late to stop anything.
//
// Entering reports whether caller mode is on. It is not when the bytes
// passed on so far end inside a frame (or a fragmented message), or when
// bytes read ahead are left that a reader took some of: coder/websocket's
// buffer then holds the start of a frame whose rest callerRead would take
// for a new frame, and a read stopped inside it would leave
// coder/websocket in the middle of a frame.
func (c *frameConn) setCaller(on bool) bool {
	if on {
		// (ready is 0 outside caller mode: held[heldOff:] holds it.)
		if c.hn > 0 || c.remain > 0 || c.inMsg || c.head || c.lost.Load() || c.err != nil ||
			c.heldOff < len(c.held) {
			return false
		}
		c.caller.Store(true)
		return true
	}
	c.ready = 0 // a reader takes what is held as it comes
	c.cmu.Lock()
	c.caller.Store(false)
	if c.interrupted {
		c.interrupted = false
		c.Conn.SetReadDeadline(time.Time{})
	}
	c.cmu.Unlock()
	return false
}

// interrupt stops a read in caller mode: the blocked Read returns
// errInterrupted. Outside caller mode it does nothing. Any goroutine may
// call it.
func (c *frameConn) interrupt() {
	c.cmu.Lock()
	if c.caller.Load() && !c.interrupted {
		c.interrupted = true
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
	c.cmu.Unlock()
}

// takeInterrupt reports whether err is the timeout interrupt caused, and
// if so clears the deadline.
func (c *frameConn) takeInterrupt(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if !c.interrupted {
		return false
	}
	c.interrupted = false
	c.Conn.SetReadDeadline(time.Time{})
	return true
}

// callerRead is Read in caller mode.
func (c *frameConn) callerRead(p []byte) (int, error) {
	if len(c.pre) > 0 {
		c.held = append(c.held, c.pre...)
		c.advance(c.pre)
		c.pre = nil
	}
	for {
		if c.ready > 0 {
			n := copy(p, c.held[c.heldOff:c.heldOff+c.ready])
			c.ready -= n
			c.consumeHeld(n)
			return n, nil
		}
		whole, refuse, need := wholeFrames(c.held[c.heldOff:])
		switch {
		case whole > 0:
			c.ready = whole
			continue
		case c.rerr != nil:
			err := c.rerr
			c.rerr = nil
			return 0, err
		case refuse, c.lost.Load(), c.head, c.err != nil:
			return 0, errHandOff
		}
		// Read the rest of the frame under way and at most 4 KiB more,
		// so that what is held ahead stays small.
		if c.heldOff > 0 {
			c.held = c.held[:copy(c.held, c.held[c.heldOff:])]
			c.heldOff = 0
		}
		want := len(c.held) + need + 4096
		if cap(c.held) < want {
			c.held = append(make([]byte, 0, want), c.held...)
		}
		start := len(c.held)
		n, err := c.Conn.Read(c.held[start:want])
		if n > 0 {
			c.held = c.held[:start+n]
			c.advance(c.held[start:])
		}
		if err != nil {
			if c.takeInterrupt(err) {
				return 0, errInterrupted
			}
			c.rerr = err
		}
	}
}

// consumeHeld drops the first n bytes of held.
func (c *frameConn) consumeHeld(n int) {
	c.heldOff += n
	if c.heldOff == len(c.held) {
		c.held, c.heldOff = c.held[:0], 0
	}
}

// wholeFrames returns how many bytes at the start of b are whole frames a
// caller may read; refuse when the first frame after them is one it may
// not; and need, the bytes that frame still lacks (0 if its header is not
// whole yet).
func wholeFrames(b []byte) (whole int, refuse bool, need int) {
	for {
		rest := b[whole:]
		if len(rest) < 2 {
			return whole, false, 0
		}
		fin, op := rest[0]&0x80 != 0, rest[0]&0x0f
		hl := 2
		switch rest[1] & 0x7f {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if rest[1]&0x80 != 0 {
			hl += 4
		}
		if len(rest) < hl {
			return whole, false, 0
		}
		var n uint64
		switch l := rest[1] & 0x7f; l {
		case 126:
			n = uint64(binary.BigEndian.Uint16(rest[2:4]))
		case 127:
			n = binary.BigEndian.Uint64(rest[2:10])
		default:
			n = uint64(l)
		}
		switch {
		case op == 1 || op == 2:
			if !fin || n > callerFrameMax {
				return whole, true, 0
			}
		case op >= 8 && op <= 10:
			if !fin || n > 125 {
				return whole, true, 0
			}
		default:
			return whole, true, 0 // continuation, reserved
		}
		if uint64(len(rest)-hl) < n {
			return whole, false, hl + int(n) - len(rest)
		}
		whole += hl + int(n)
	}
}

// setHooks installs begin and end (either may be nil): begin runs (on the
// reading goroutine, inside Read) when the first byte of a frame header
// arrives while no frame and no fragmented data message is in progress;
// end runs when a frame completes and no fragmented data message remains
// in progress (i.e. after a control frame, or after the final frame of a
// data message). Between a data message's first frame and its final frame,
// interleaved control frames do not call begin or end. Hooks must be set
// before the first Read.
//
// On the client the first Reads happen inside net/http during the dial,
// before the caller has the frameConn (see framedClient), and the read of
// the 101 response may already take in bytes of the first frames. So
// setHooks may also be called after the dial, as long as no Read runs
// concurrently (i.e. before the first Reader call): frames read whole with
// the response then call no hook (they are in memory already), and if a
// frame or a data message is under way, begin runs at once, inside
// setHooks, so that every end still follows its begin.
func (c *frameConn) setHooks(begin, end func()) {
	c.begin, c.end = begin, end
	if begin != nil && !c.lost.Load() && !c.head && (c.hn > 0 || c.remain > 0 || c.inMsg) {
		begin()
	}
}

// nextMessage pops the oldest data message start seen by Read that has not
// been popped yet: the payload length of its FIRST frame and whether that
// frame is final (fin), and its opcode (1 text, 2 binary). ok is false if
// none is queued. The caller calls it once after each coder/websocket
// Reader returns a data message: because coder/websocket consumes the
// stream in order, the oldest unpopped start is that message's (control
// frames are never queued). The queue is bounded, see frameQueueMax.
func (c *frameConn) nextMessage() (length int64, fin bool, opcode byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qLen == 0 {
		return 0, false, 0, false
	}
	s := c.q[c.qHead]
	c.qHead++
	if c.qHead == len(c.q) {
		c.qHead = 0
	}
	c.qLen--
	return s.length, s.fin, s.opcode, true
}

// wholeAhead reports whether a whole data message has been read ahead:
// its start is queued and its last byte has been read. Only the reading
// goroutine calls it, between reads.
func (c *frameConn) wholeAhead() bool {
	if c.lost.Load() {
		return false
	}
	c.mu.Lock()
	n, arriving := c.qLen, c.arriving
	c.mu.Unlock()
	if arriving {
		n-- // the newest start's message is still arriving
	}
	return n > 0
}

// advance runs the parser over b, bytes just returned by Read.
func (c *frameConn) advance(b []byte) {
	for len(b) > 0 && !c.lost.Load() {
		if c.head {
			b = c.skipHead(b)
			continue
		}
		if c.remain > 0 {
			if int64(len(b)) < c.remain {
				c.remain -= int64(len(b))
				return
			}
			b = b[c.remain:]
			c.remain = 0
			c.frameDone()
			continue
		}
		if c.hn == 0 {
			c.hneed = 2
			if !c.inMsg && c.begin != nil {
				c.begin()
			}
		}
		k := copy(c.hdr[c.hn:c.hneed], b)
		c.hn += k
		b = b[k:]
		if c.hn < c.hneed {
			return
		}
		if c.hneed == 2 {
			// Byte 1 tells how many length and mask bytes follow.
			switch c.hdr[1] & 0x7f {
			case 126:
				c.hneed += 2
			case 127:
				c.hneed += 8
			}
			if c.hdr[1]&0x80 != 0 {
				c.hneed += 4
			}
			if c.hn < c.hneed {
				continue
			}
		}
		c.headerDone()
	}
}

// skipHead passes over the HTTP response head at the start of b and returns
// the rest of b (empty if the head goes on past b).
func (c *frameConn) skipHead(b []byte) []byte {
	for i, x := range b {
		if c.statN < len(c.status) {
			c.status[c.statN] = x
			c.statN++
		}
		if x != '\n' {
			c.line++
			c.lastCR = x == '\r'
			continue
		}
		if c.line > 1 || c.line == 1 && !c.lastCR {
			c.line, c.lastCR = 0, false
			continue
		}
		// An empty line: the head ends here.
		code := c.statusCode()
		c.line, c.lastCR, c.statN = 0, false, 0
		switch {
		case code == http.StatusSwitchingProtocols:
			c.head = false
		case code >= 100 && code <= 199:
			// Interim response; the real one follows.
		default:
			c.head = false
			c.lost.Store(true)
		}
		return b[i+1:]
	}
	return nil
}

// statusCode returns the status code of the head whose first bytes are in
// c.status ("HTTP/1.1 101 ..."), or 0.
func (c *frameConn) statusCode() int {
	s := c.status[:c.statN]
	i := bytes.IndexByte(s, ' ')
	if i < 0 || len(s) < i+4 {
		return 0
	}
	code := 0
	for _, d := range s[i+1 : i+4] {
		if d < '0' || d > '9' {
			return 0
		}
		code = code*10 + int(d-'0')
	}
	return code
}

// headerDone handles the frame header complete in c.hdr[:c.hn].
func (c *frameConn) headerDone() {
	h := c.hdr[:c.hn]
	c.hn = 0
	fin := h[0]&0x80 != 0
	op := h[0] & 0x0f
	var n int64
	switch l := h[1] & 0x7f; l {
	case 126:
		n = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u>>63 != 0 {
			c.lost.Store(true) // coder/websocket fails on a negative length
			return
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	switch op {
	case 1, 2:
		if c.inMsg {
			c.lost.Store(true) // a new message inside a message
			return
		}
		if !c.push(frameStart{length: n, fin: fin, opcode: op}) {
			return
		}
		c.inMsg, c.endMsg = true, fin
	case 0:
		if !c.inMsg {
			c.lost.Store(true) // a continuation with nothing to continue
			return
		}
		c.endMsg = fin
	case 8, 9, 10:
		if !fin || n > 125 {
			c.lost.Store(true) // fragmented or oversized control frame
			return
		}
		c.endMsg = false
	default:
		c.lost.Store(true) // reserved opcode
		return
	}
	c.remain = n
	if n == 0 {
		c.frameDone()
	}
}

// frameDone runs when the current frame's last payload byte has been read.
func (c *frameConn) frameDone() {
	if c.endMsg {
		c.inMsg, c.endMsg = false, false
		c.mu.Lock()
		c.arriving = false
		c.mu.Unlock()
	}
	if !c.inMsg && c.end != nil {
		c.end()
	}
}

// push queues s for nextMessage. It reports false, having broken the conn,
// if frameQueueMax starts are queued already.
func (c *frameConn) push(s frameStart) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qLen == len(c.q) {
		if c.qLen >= frameQueueMax {
			c.err = errFrameQueueFull
			c.lost.Store(true)
			return false
		}
		q := make([]frameStart, min(max(8, 2*len(c.q)), frameQueueMax))
		n := copy(q, c.q[c.qHead:])
		copy(q[n:], c.q[:c.qHead])
		c.q, c.qHead = q, 0
	}
	i := c.qHead + c.qLen
	if i >= len(c.q) {
		i -= len(c.q)
	}
	c.q[i] = s
	c.qLen++
	c.arriving = true // until frameDone ends its message
	return true
}

// hijackFrames is what a hijacking http.ResponseWriter wrapper returns from
// Hijack: the hijacked conn wrapped in a frameConn that first replays the
// bytes net/http had buffered (brw.Reader's Buffered bytes), and a
// bufio.ReadWriter whose Reader is empty (reading through the frameConn)
// and whose Writer is brw.Writer (it is brw itself, its Reader reset).
//
// coder/websocket's Accept peeks brw.Reader.Buffered() and resets the
// reader to a MultiReader of those bytes and the conn; frames a client sent
// right behind its request would pass by the frameConn that way. So the
// buffered bytes are moved into the frameConn instead, and brw.Reader (its
// 4 KiB buffer reused) is reset to read from the frameConn. Hooks can be set
// on the frameConn before Hijack returns: nothing has been read through it
// yet.
func hijackFrames(c net.Conn, brw *bufio.ReadWriter) (*frameConn, *bufio.ReadWriter, error) {
	if c == nil || brw == nil || brw.Reader == nil || brw.Writer == nil {
		return nil, nil, errors.New("wsrpc: hijackFrames: no conn or buffers")
	}
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, err := brw.Reader.Peek(n)
		if err != nil {
			return nil, nil, err
		}
		pre = bytes.Clone(b) // Reset below reuses the buffer b points into
	}
	fc := newFrameConn(c, pre, false)
	brw.Reader.Reset(fc)
	return fc, brw, nil
}

// framedClient returns a copy of base (nil: http.DefaultClient) whose
// transport dials through a frameConn (skipHTTP=true), and a function that
// returns that frameConn after the dial (nil if none was made). It returns
// ok=false, and base unchanged, when it cannot do that safely: base's
// Transport is not an *http.Transport (nil means http.DefaultTransport), or
// a proxy applies to u (Transport.Proxy returns a non-nil URL for it). For
// wss it sets DialTLSContext: dial TCP with the transport's DialContext (or
// a net.Dialer), then tls.Client with a clone of TLSClientConfig whose
// ServerName defaults to u's host and whose NextProtos is []string{"http/1.1"},
// handshake bounded by ctx, then wrap the *tls.Conn (the frameConn must be
// ABOVE TLS so it sees plaintext frames).
//
// Also ok=false: u is nil or not ws, wss, http or https; Transport.Proxy
// fails for u; the transport has its own TLS dialer (DialTLSContext or
// DialTLS), since the frameConn would have to sit on a conn we do not
// control and whose ALPN we cannot pin.
//
// The copy's transport is a Clone of base's, set up for the one handshake:
//   - both DialContext (ws) and DialTLSContext (wss) are set, whatever u's
//     scheme, so that a redirect to the other scheme can never run TLS on
//     top of a frameConn;
//   - the default ServerName is the host of the address being dialed, which
//     is u's host (in its IDNA ASCII form) for u itself, and the host a
//     redirect goes to, as net/http would verify it;
//   - TLSHandshakeTimeout, if set, bounds the handshake too, as net/http
//     would;
//   - HTTP/1 only (Protocols, and no ALPN but http/1.1), which WebSocket
//     needs anyway;
//   - DisableKeepAlives, so a refused handshake leaves no idle conn and
//     goroutines behind in a transport nobody will close;
//   - ReadBufferSize at its 4 KiB default, which keeps net/http's read-ahead
//     within what frameQueueMax allows for.
//
// Redirects are followed as base would follow them. A redirect to a URL a
// proxy applies to still works, but that frameConn sees the proxy's
// response head (or TLS records) and stops tracking, so nextMessage reports
// ok=false; the conn function reports the frameConn of the latest dial.
func framedClient(base *http.Client, u *url.URL) (c *http.Client, conn func() *frameConn, ok bool) {
	if base == nil {
		base = http.DefaultClient
	}
	none := func() *frameConn { return nil }
	if u == nil {
		return base, none, false
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr, isTr := rt.(*http.Transport)
	if !isTr || tr.DialTLSContext != nil || tr.DialTLS != nil {
		return base, none, false
	}
	hu := *u
	switch u.Scheme {
	case "ws", "http":
		hu.Scheme = "http"
	case "wss", "https":
		hu.Scheme = "https"
	default:
		return base, none, false
	}
	if tr.Proxy != nil {
		req := &http.Request{Method: http.MethodGet, URL: &hu, Header: http.Header{}, Host: hu.Host}
		p, err := tr.Proxy(req)
		if err != nil || p != nil {
			return base, none, false
		}
	}

	dial := tr.DialContext
	if dial == nil && tr.Dial != nil {
		d := tr.Dial // deprecated, but net/http still uses it
		dial = func(_ context.Context, network, addr string) (net.Conn, error) { return d(network, addr) }
	}
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	hsTimeout := tr.TLSHandshakeTimeout
	var last atomic.Pointer[frameConn]

	t := tr.Clone()
	tlsBase := t.TLSClientConfig // the clone's own copy, cloned again per dial
	t.Dial = nil
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := newFrameConn(nc, nil, true)
		last.Store(fc)
		return fc, nil
	}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := tlsBase.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		hctx := ctx
		if hsTimeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, hsTimeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			return nil, err
		}
		fc := newFrameConn(tc, nil, true)
		last.Store(fc)
		return fc, nil
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	t.Protocols = &protos
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	t.DisableKeepAlives = true
	t.ReadBufferSize = 0

	cc := *base
	cc.Transport = t
	return &cc, last.Load, true
}
