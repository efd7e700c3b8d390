package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// transport is the seam between a Peer and its connection: whole messages
// in and out. A Peer reads from one goroutine at a time and serialises its
// writes; a transport never sees a caller's context.
type transport interface {
	// readMessage reads the next data message into a buffer from the
	// pool (getBuf), taken once the message has started to arrive, so
	// that a peer waiting for messages holds none.
	// Before reading a message's payload (or, when its size cannot be
	// known in advance, right after) it calls reserve with its size, and
	// fails with reserve's error. reserve may wait.
	readMessage(reserve func(n int64) error) (*msgBuf, error)
	// wholeAhead reports whether the next readMessage has a whole
	// message to return without waiting for the connection: it was read
	// ahead with the messages before it. Only the goroutine that reads
	// calls it, between reads.
	wholeAhead() bool
	// holdTimer stops (true) and restarts (false) the message timeout
	// while the peer itself keeps a message waiting.
	holdTimer(on bool)
	// interruptible reports whether a read can be stopped between
	// messages: then a caller whose context can end may read, in caller
	// mode (callerMode), and interrupt stops its read, which then fails
	// with an error that is errReadStopped. callerMode(true) reports
	// whether caller mode is on: not while the stream stands inside a
	// frame, whose start the transport has already taken in.
	interruptible() bool
	callerMode(on bool) bool
	interrupt()
	// writeMessage writes b as one text message.
	writeMessage(b []byte) error
	// setGather(true) lets the messages written until setGather(false)
	// wait to go out with the next one: another writer waits for its
	// turn. hasGathered reports whether messages wait, and flushGathered
	// sends them; neither is called during a write.
	setGather(on bool)
	hasGathered() bool
	flushGathered() error
	// ping sends a ping and waits, bounded by ctx, for its pong.
	ping(ctx context.Context) error
	// close performs the closing handshake with code and reason (bounded
	// by the transport) and releases the connection.
	close(code websocket.StatusCode, reason string) error
	// closeNow drops the connection at once, without a handshake.
	closeNow() error
}

// protocolError is a read that failed because the other side broke the
// protocol or a limit: the peer closes with code and reason, and is, when
// not nil, the sentinel the peer's error matches (errors.Is).
type protocolError struct {
	code   websocket.StatusCode
	reason string
	is     error
}

func (e *protocolError) Error() string { return "wsrpc: " + e.reason }
func (e *protocolError) Unwrap() error { return e.is }

// errBinary refuses a binary message: JSON-RPC over WebSocket is text
// (RFC 6455 §7.4.1: 1003, a type of data the endpoint cannot accept).
var errBinary = &protocolError{websocket.StatusUnsupportedData, "binary messages are not accepted: JSON-RPC is sent as text", nil}

// errDeclaredTooBig refuses a message whose first frame's header declares
// more than the limit (1009), before a byte of its payload is read.
func errDeclaredTooBig(n, limit int64) error {
	return &protocolError{websocket.StatusMessageTooBig,
		fmt.Sprintf("message too big: a frame of %d bytes, over the limit of %d", n, limit), ErrMessageTooBig}
}

// errMessageTimeout is the cause of a peer closed because a message did not
// finish arriving within Limits.MessageTimeout.
var errMessageTimeout = errors.New("wsrpc: message did not complete in time")

// wsTransport is a transport over a github.com/coder/websocket connection.
//
// coder/websocket closes the connection when the context of a Read or Write
// is cancelled, so it is only ever given context.Background(); time limits
// are timers that close the connection on purpose, never contexts that
// close it by accident.
type wsTransport struct {
	c   *websocket.Conn
	raw net.Conn // the hijacked connection of an accepted peer, or nil
	// frames follows the frame headers under c, when we could put it
	// there (Accept always; Dial when it can: framedClient): it starts
	// the message timer at a frame's first byte, and tells a message's
	// size before its payload is read. nil otherwise.
	frames   *frameConn
	maxMsg   int64
	msgWatch *watchdog
	timedOut atomic.Bool
}

// newWSTransport returns the transport over c; raw is the net.Conn under
// it when we have it (an accepted connection), or nil, and frames the
// frameConn under it, or nil.
func newWSTransport(c *websocket.Conn, raw net.Conn, frames *frameConn, cfg *config) *wsTransport {
	c.SetReadLimit(cfg.MaxMessageSize)
	t := &wsTransport{c: c, raw: raw, frames: frames, maxMsg: cfg.MaxMessageSize}
	t.msgWatch = newWatchdog(cfg.MessageTimeout, func() {
		t.timedOut.Store(true)
		t.c.CloseNow()
		if t.raw != nil {
			t.raw.Close()
		}
	})
	if frames != nil {
		// From a frame header's first byte to the end of its message
		// (or of a control frame): a trickled header is timed too.
		frames.setHooks(t.msgWatch.begin, t.msgWatch.end)
	}
	return t
}

func (t *wsTransport) readMessage(reserve func(int64) error) (*msgBuf, error) {
	typ, r, err := t.c.Reader(context.Background())
	if err != nil {
		return nil, t.readErr(err)
	}
	if typ != websocket.MessageText {
		return nil, errBinary
	}
	m := getBuf()
	if err := t.readBody(m, r, reserve); err != nil {
		putBuf(m)
		return nil, err
	}
	return m, nil
}

// readBody reads the message r returns into m.b, charging reserve.
func (t *wsTransport) readBody(m *msgBuf, r io.Reader, reserve func(int64) error) error {
	var err error
	if t.frames == nil {
		// Sizes are known only once read: charge after.
		t.msgWatch.begin()
		m.b, err = readAll(m.b, r)
		t.msgWatch.end()
		if err != nil {
			return t.readErr(err)
		}
		return reserve(int64(len(m.b)))
	}
	n, fin, _, ok := t.frames.nextMessage()
	switch {
	case ok && n > t.maxMsg:
		// Refused on its header. coder/websocket would refuse it too,
		// but only once it had read the limit's worth of its payload,
		// uncharged: a stalled sender would hold that much per
		// connection, outside every byte budget.
		return errDeclaredTooBig(n, t.maxMsg)
	case ok && fin && n == 0:
	case ok && fin:
		// One frame: the message is n bytes, read into a buffer of that
		// size, charged before a byte of it is read.
		if err := reserve(n); err != nil {
			return err
		}
		m.grow(int(n))
	default:
		// Fragmented: charge the most it may take, and give back the
		// rest once read.
		n = t.maxMsg
		if err := reserve(n); err != nil {
			return err
		}
	}
	if m.b, err = readAll(m.b, r); err != nil {
		return t.readErr(err)
	}
	if got := int64(len(m.b)); got < n {
		reserve(got - n) // a fragmented message gives back what it did not use
	}
	return nil
}

func (t *wsTransport) holdTimer(on bool) { t.msgWatch.hold(on) }

func (t *wsTransport) wholeAhead() bool { return t.frames != nil && t.frames.wholeAhead() }

func (t *wsTransport) interruptible() bool     { return t.frames != nil }
func (t *wsTransport) callerMode(on bool) bool { return t.frames.setCaller(on) }
func (t *wsTransport) interrupt()              { t.frames.interrupt() }

// errReadStopped reports whether err is a read stopped on purpose in
// caller mode (interrupted, or a frame left to a reader): nothing was
// consumed, and the connection is as it was.
func errReadStopped(err error) bool {
	return errors.Is(err, errInterrupted) || errors.Is(err, errHandOff)
}

// readErr names the cause of a failed read in wsrpc's terms.
func (t *wsTransport) readErr(err error) error {
	switch {
	case t.timedOut.Load():
		return errMessageTimeout
	case errors.Is(err, websocket.ErrMessageTooBig),
		websocket.CloseStatus(err) == websocket.StatusMessageTooBig:
		return errors.Join(ErrMessageTooBig, err)
	}
	return err
}

func (t *wsTransport) writeMessage(b []byte) error {
	return t.c.Write(context.Background(), websocket.MessageText, b)
}

func (t *wsTransport) setGather(on bool) {
	if t.frames != nil {
		t.frames.setGather(on)
	}
}

func (t *wsTransport) hasGathered() bool { return t.frames != nil && t.frames.hasGathered() }

func (t *wsTransport) flushGathered() error {
	if t.frames == nil {
		return nil
	}
	return t.frames.flushGathered()
}

func (t *wsTransport) ping(ctx context.Context) error { return t.c.Ping(ctx) }

func (t *wsTransport) close(code websocket.StatusCode, reason string) error {
	t.msgWatch.stop()
	return t.c.Close(code, reason)
}

func (t *wsTransport) closeNow() error {
	t.msgWatch.stop()
	if t.raw != nil {
		t.raw.Close() // also ends a closing handshake in progress
	}
	return t.c.CloseNow()
}

// readAll appends the rest of r to b, growing it as needed. A b with room
// for exactly what r holds is not grown to find the end.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			var one [1]byte
			n, err := r.Read(one[:])
			if n == 0 && err == io.EOF {
				return b, nil
			}
			if err != nil && err != io.EOF {
				return b, err
			}
			b = append(b, one[:n]...)
			if err == io.EOF {
				return b, nil
			}
			continue
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// ---- in-memory transport ----

// pipeEnd is one end of an in-memory transport pair: messages go through
// buffered channels, like a socket with a small send buffer. Pipe gives
// users a pair; tests use it to run peers without sockets (and under
// testing/synctest); benchmarks use it to measure wsrpc without the
// network.
type pipeEnd struct {
	in, out chan []byte
	shared  *pipeShared
	maxMsg  int64 // a longer message closes the pipe with 1009 (0: no limit)
	// deaf makes ping on the other end wait for ever, as a peer that
	// stopped answering.
	deaf atomic.Bool
	peer *pipeEnd
}

type pipeShared struct {
	once   sync.Once
	closed chan struct{}
	err    error // *websocket.CloseError seen by both ends
}

// newPipe returns two connected in-memory transports. buffer is the number
// of messages each direction holds before a write blocks.
func newPipe(buffer int) (*pipeEnd, *pipeEnd) {
	sh := &pipeShared{closed: make(chan struct{})}
	ab, ba := make(chan []byte, buffer), make(chan []byte, buffer)
	a := &pipeEnd{in: ba, out: ab, shared: sh}
	b := &pipeEnd{in: ab, out: ba, shared: sh}
	a.peer, b.peer = b, a
	return a, b
}

func (p *pipeEnd) readMessage(reserve func(int64) error) (*msgBuf, error) {
	select {
	case m := <-p.in:
		if p.maxMsg > 0 && int64(len(m)) > p.maxMsg {
			p.close(websocket.StatusMessageTooBig, "message too big")
			return nil, errors.Join(ErrMessageTooBig, p.shared.err)
		}
		if err := reserve(int64(len(m))); err != nil {
			return nil, err
		}
		buf := getBuf()
		buf.grow(len(m))
		buf.b = append(buf.b, m...)
		return buf, nil
	case <-p.shared.closed:
		return nil, p.shared.err
	}
}

func (p *pipeEnd) wholeAhead() bool     { return false }
func (p *pipeEnd) setGather(bool)       {}
func (p *pipeEnd) hasGathered() bool    { return false }
func (p *pipeEnd) flushGathered() error { return nil }

func (p *pipeEnd) writeMessage(b []byte) error {
	m := append([]byte(nil), b...)
	select {
	case p.out <- m:
		return nil
	case <-p.shared.closed:
		return net.ErrClosed
	}
}

func (p *pipeEnd) holdTimer(bool)       {}
func (p *pipeEnd) interruptible() bool  { return false }
func (p *pipeEnd) callerMode(bool) bool { return false }
func (p *pipeEnd) interrupt()           {}

func (p *pipeEnd) ping(ctx context.Context) error {
	if !p.peer.deaf.Load() {
		select {
		case <-p.shared.closed:
			return net.ErrClosed
		default:
			return nil
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.shared.closed:
		return net.ErrClosed
	}
}

func (p *pipeEnd) close(code websocket.StatusCode, reason string) error {
	p.shared.once.Do(func() {
		p.shared.err = websocket.CloseError{Code: code, Reason: reason}
		close(p.shared.closed)
	})
	return nil
}

func (p *pipeEnd) closeNow() error {
	return p.close(websocket.StatusAbnormalClosure, "")
}
