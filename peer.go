package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A Peer is one end of a JSON-RPC connection. Both ends are Peers: each can
// call, notify and batch, and each serves its own method table to the other.
//
// At any time one goroutine reads the connection. It serves quick requests
// and notifications itself; work that runs past a millisecond or two, or
// calls back the peer, keeps its goroutine while reading moves to another,
// so a peer has at most one goroutine per running handler (bounded by
// Options.MaxHandlers) plus the reader. An idle peer has one goroutine. All
// of them have returned when Close returns.
type Peer struct {
	cfg     *config
	conn    transport
	httpReq *http.Request

	// ctx is the context of every handler: it carries the peer and is
	// cancelled when the peer closes.
	ctx    context.Context
	cancel context.CancelFunc
	// slotCtx is ctx for handlers that hold a handler slot; a call back
	// to this peer made with it lends the slot while it waits.
	slotCtx context.Context

	nextID atomic.Uint64
	slots  chan struct{} // one per outgoing call or batch awaiting answers
	calls  sync.Pool     // of *call

	// writeSem is held (full) while a message is being written. It is a
	// channel, not a mutex, so that a caller whose context ends while it
	// waits for its turn can give up (see writeCtx).
	writeSem   chan struct{}
	writeWatch *watchdog
	pingTimer  *time.Timer
	// handoffTimer checks, at most once per inlineBudget while armed,
	// whether work served on the reading goroutine has run past the
	// budget. It is armed lazily rather than reset per message: resetting
	// a short timer on every message wakes the runtime's network poller
	// each time, which cost more than the work it guarded.
	handoffTimer *time.Timer

	// readToken is full while some goroutine has the reading role: the
	// background reader, or a caller reading its own answer (readUntil).
	// lapseTimer gives the role back to a background reader when it has
	// been free for readLapse; armed lazily, like handoffTimer.
	readToken  chan struct{}
	lapseTimer *time.Timer
	// yieldRead is set by complete, for the goroutine that has the reading
	// role only: the call just answered was the last pending one, and its
	// caller can read for itself next time.
	yieldRead bool

	done     chan struct{} // closed when the peer stops working
	finished chan struct{} // closed when every goroutine has returned
	onFinish func(*Peer)

	// mu guards the state below. It is never held while user code (a
	// handler, hook or logger) runs, nor while writing.
	mu      sync.Mutex
	pending map[uint64]*call
	running int        // goroutines serving requests
	queue   []*inbound // requests waiting for a slot
	notes   []*inbound // notifications waiting, served in order
	noting  bool       // a goroutine is serving notes
	// noteCalling: the notification handler waits on a call to this peer.
	noteCalling bool
	// notesRoom is closed when the notes queue has room again for a
	// reader paused by backpressure.
	notesRoom chan struct{}
	// inlineWork is the work the reading goroutine is serving itself; nil
	// once reading has moved on (handoff). Comparing it with its own work
	// tells a goroutine whether it is still the reader.
	inlineWork *inbound
	inlineSB   *serverBatch
	// inlineSeq numbers inline work; inlineSeen is the number the budget
	// check saw last (or the work that armed it). lapseSince is when the
	// reading role was last left free. The armed flags say a check is
	// scheduled.
	inlineSeq    uint64
	inlineSeen   uint64
	lapseSince   time.Time
	handoffArmed bool
	lapseArmed   bool
	inflightN    map[uint64]struct{}
	inflightS    map[string]struct{}
	goroutines   int
	closing      bool
	draining     bool
	drained      chan struct{}
	err          error
	identity     any

	// broadcast queue (broadcast.go): outQ, outBusy and outOverflow are
	// guarded by mu; id is set once, atomically.
	id          atomic.Uint64
	outQ        [][]byte // messages waiting, shared with other peers
	outBusy     bool     // a goroutine is draining outQ
	outOverflow bool     // outQ overflowed: the peer is being closed
}

type peerKey struct{}

type slotKey struct{}

// PeerFromContext returns the peer whose handler is running with ctx, or
// nil.
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// NewPeer makes a Peer of an established WebSocket connection and starts
// it. The Peer owns c from now on: closing the Peer closes c.
func NewPeer(c *websocket.Conn, opts *Options) *Peer {
	cfg := opts.config()
	p := newPeer(newWSTransport(c, cfg), cfg, nil, nil)
	p.start()
	return p
}

func newPeer(t transport, cfg *config, r *http.Request, identity any) *Peer {
	p := &Peer{
		cfg:      cfg,
		conn:     t,
		httpReq:  r,
		slots:    make(chan struct{}, cfg.MaxPending),
		writeSem: make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		pending:  map[uint64]*call{},
		identity: identity,
	}
	p.calls.New = newCall
	base := context.Background()
	if r != nil {
		base = context.WithoutCancel(r.Context())
	}
	p.ctx, p.cancel = context.WithCancel(context.WithValue(base, peerKey{}, p))
	p.slotCtx = context.WithValue(p.ctx, slotKey{}, p)
	p.writeWatch = newWatchdog(cfg.WriteTimeout, func() {
		p.fail(fmt.Errorf("wsrpc: write did not complete within %v", cfg.WriteTimeout))
	})
	p.handoffTimer = time.AfterFunc(time.Hour, p.handoffCheck)
	p.handoffTimer.Stop()
	p.readToken = make(chan struct{}, 1)
	p.lapseTimer = time.AfterFunc(time.Hour, p.lapse)
	p.lapseTimer.Stop()
	return p
}

// start launches the reading goroutine and the keepalive timer.
func (p *Peer) start() {
	p.readToken <- struct{}{}
	p.mu.Lock()
	p.goroutines++
	p.mu.Unlock()
	go p.readLoop(getBuf())
	if p.cfg.PingInterval > 0 {
		p.mu.Lock()
		if !p.closing {
			p.pingTimer = time.AfterFunc(p.cfg.PingInterval, p.keepalive)
		}
		p.mu.Unlock()
	}
}

// HTTPRequest returns the upgrade request of an accepted peer (its headers,
// cookies and remote address), or nil for a dialed peer.
func (p *Peer) HTTPRequest() *http.Request { return p.httpReq }

// Identity returns what Options.Authenticate or SetIdentity attached to the
// peer, or nil.
func (p *Peer) Identity() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.identity
}

// SetIdentity attaches v to the peer, for handlers and guards to see.
func (p *Peer) SetIdentity(v any) {
	p.mu.Lock()
	p.identity = v
	p.mu.Unlock()
}

// Done returns a channel that is closed when the peer has stopped: it was
// closed, the connection failed, or the other side left. Err tells why.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Err returns nil while the peer works, and afterwards an error that wraps
// ErrClosed and the cause (for example a *websocket.CloseError).
func (p *Peer) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Close closes the connection with status 1000 (normal closure), fails every
// pending call with ErrClosed, cancels the context of every running handler,
// and waits for every goroutine of the peer to return. It is safe to call
// from any goroutine, any number of times, except from one of the peer's own
// handlers, which it would wait for.
func (p *Peer) Close() error {
	return p.closeWith(websocket.StatusNormalClosure, "")
}

func (p *Peer) closeWith(code websocket.StatusCode, reason string) error {
	if p.shutdown(nil) {
		p.conn.close(code, reason)
	}
	<-p.finished
	return nil
}

// fail ends the peer because of cause and drops the connection.
func (p *Peer) fail(cause error) {
	p.shutdown(cause)
	p.conn.closeNow()
}

// violation ends the peer because the other side broke a rule, closing
// with code and reason so it can tell.
func (p *Peer) violation(code websocket.StatusCode, reason string) {
	p.cfg.log.Warn("wsrpc: closing peer", "code", int(code), "reason", reason)
	if p.shutdown(fmt.Errorf("wsrpc: %s", reason)) {
		// The closing handshake waits for the other side; callers run on
		// one of the peer's own goroutines, which returns right after.
		p.conn.close(code, reason)
	}
}

// shutdown moves the peer to its closed state: it records cause, fails the
// pending calls, drops queued work and cancels handler contexts. It reports
// whether this call did it (false: the peer was already closed).
func (p *Peer) shutdown(cause error) bool {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return false
	}
	p.closing = true
	p.err = &closedError{cause: cause}
	pending := p.pending
	p.pending = nil
	queued := append(p.queue, p.notes...)
	p.queue, p.notes = nil, nil
	fin := p.goroutines == 0
	p.mu.Unlock()

	close(p.done)
	// Pending calls fail before handler contexts are cancelled: their
	// callers should not be scheduled behind every handler woken by the
	// cancellation.
	for id, c := range pending {
		c.slots[id-c.firstID].err = p.err
		if c.remaining.Add(-1) == 0 {
			c.done <- struct{}{}
		}
	}
	p.cancel()
	p.writeWatch.stop()
	p.handoffTimer.Stop()
	p.lapseTimer.Stop()
	if p.pingTimer != nil {
		p.pingTimer.Stop()
	}
	for _, in := range queued {
		in.release()
	}
	if fin {
		p.finish()
	}
	return true
}

func (p *Peer) finish() {
	close(p.finished)
	if p.onFinish != nil {
		p.onFinish(p)
	}
}

// exit is the last thing every goroutine of the peer does.
func (p *Peer) exit() {
	p.mu.Lock()
	p.goroutines--
	fin := p.closing && p.goroutines == 0
	p.mu.Unlock()
	if fin {
		p.finish()
	}
}

// keepalive pings the other side; no pong in time means the connection is
// dead.
func (p *Peer) keepalive() {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	p.goroutines++
	p.mu.Unlock()
	defer p.exit()

	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.PingTimeout)
	err := p.conn.ping(ctx)
	cancel()
	if err != nil {
		p.fail(fmt.Errorf("wsrpc: keepalive: no pong within %v: %w", p.cfg.PingTimeout, err))
		return
	}
	p.mu.Lock()
	if !p.closing {
		p.pingTimer.Reset(p.cfg.PingInterval)
	}
	p.mu.Unlock()
}

// write sends one message. Writers take turns; a write that does not finish
// within the write timeout closes the connection.
func (p *Peer) write(b []byte) error { return p.writeCtx(nil, b) }

// errWriteAbandoned is writeCtx giving up before its turn to write came.
var errWriteAbandoned = errors.New("wsrpc: write abandoned")

// writeCtx is write for a caller that stops waiting for its turn when done
// is closed (nil: never), returning errWriteAbandoned with nothing written.
// A write that has begun is never interrupted.
func (p *Peer) writeCtx(done <-chan struct{}, b []byte) error {
	select {
	case p.writeSem <- struct{}{}:
	default:
		select {
		case p.writeSem <- struct{}{}:
		case <-done:
			return errWriteAbandoned
		}
	}
	select {
	case <-p.done:
		// Closed: nothing but the closing handshake goes out any more,
		// not even an answer whose handler returned after Close began.
		<-p.writeSem
		return p.Err()
	default:
	}
	p.writeWatch.begin()
	err := p.conn.writeMessage(b)
	p.writeWatch.end()
	<-p.writeSem
	if err != nil {
		// The reader may know better why the connection ended: the other
		// side's close frame (1009, say) is often already queued when the
		// reset it sent right after fails this write. Give the reader a
		// moment to report it before settling for the write error.
		grace := time.NewTimer(writeErrGrace)
		select {
		case <-p.done:
		case <-grace.C:
		}
		grace.Stop()
		p.fail(err)
		return p.Err()
	}
	return nil
}

// writeErrGrace is how long a failed write waits for the reader to report
// why the connection ended.
const writeErrGrace = 20 * time.Millisecond

// ---- reading and routing ----

// msgBuf is a reusable message buffer.
type msgBuf struct{ b []byte }

const maxPooledBuf = 1 << 20

var bufPool = sync.Pool{New: func() any { return &msgBuf{b: make([]byte, 0, 512)} }}

func getBuf() *msgBuf { return bufPool.Get().(*msgBuf) }

func putBuf(m *msgBuf) {
	if cap(m.b) <= maxPooledBuf {
		m.b = m.b[:0]
		bufPool.Put(m)
	}
}

// inbound is a request, notification or batch received, with the buffer
// its slices point into.
type inbound struct {
	msg   *msgBuf
	env   envelope
	req   Request
	batch *serverBatch
}

var inboundPool = sync.Pool{New: func() any { return new(inbound) }}

func (in *inbound) release() {
	if in.msg != nil {
		putBuf(in.msg)
	}
	if in.batch != nil {
		in.batch.release()
	}
	*in = inbound{}
	inboundPool.Put(in)
}

// readLoop reads messages and routes them: responses complete pending calls
// right here, so they never wait behind handlers. Requests and
// notifications are served right here too while they are cheap (see
// serveInline): no goroutine is started and no hand-off is paid for them.
func (p *Peer) readLoop(buf *msgBuf) {
	for {
		work, next, ok := p.readNext(buf)
		if !ok {
			p.exit()
			return
		}
		buf = next
		if work != nil && !p.serveInline(work) {
			putBuf(buf)
			return
		}
		if p.yieldRead {
			// The last pending call was answered and its caller reads
			// for itself: leave the role free for its next call.
			p.yieldRead = false
			p.leaveRole()
			putBuf(buf)
			p.exit()
			return
		}
	}
}

// readNext reads and routes one message. It returns work for this goroutine
// to serve (if any) and the buffer to read into next; !ok means the
// connection failed, the peer has been failed, and buf is released.
func (p *Peer) readNext(buf *msgBuf) (work *inbound, next *msgBuf, ok bool) {
	var err error
	if buf.b, err = p.conn.readMessage(buf.b); err != nil {
		putBuf(buf)
		p.fail(err)
		return nil, nil, false
	}
	work, kept := p.route(buf)
	if kept {
		buf = getBuf()
	}
	return work, buf, true
}

// readLapse is how long the reading role may stay free before a background
// reader takes it back. While it is free, nothing reads: incoming requests
// and pings wait about this long at most.
const readLapse = time.Millisecond

// leaveRole leaves the reading role free, for a caller's next call to take,
// and makes sure a background reader takes it if none does in time.
func (p *Peer) leaveRole() {
	p.mu.Lock()
	p.lapseSince = time.Now()
	if !p.lapseArmed && !p.closing {
		p.lapseArmed = true
		p.lapseTimer.Reset(readLapse)
	}
	p.mu.Unlock()
	<-p.readToken
}

// lapse starts a background reader if the reading role has been free for
// readLapse.
func (p *Peer) lapse() {
	p.mu.Lock()
	if p.closing {
		p.lapseArmed = false
		p.mu.Unlock()
		return
	}
	if !due(p.lapseTimer, p.lapseSince, readLapse) {
		p.mu.Unlock()
		return
	}
	p.lapseArmed = false
	select {
	case p.readToken <- struct{}{}:
	default:
		p.mu.Unlock()
		return // a caller reads; it arms the check again when it leaves
	}
	p.goroutines++
	p.mu.Unlock()
	p.readLoop(getBuf())
}

// readUntil lets a waiting caller read the connection itself until its own
// call c is answered, which saves the hand-off from a reader goroutine to
// the caller: the answer wakes the caller directly. It is used only by
// callers whose context cannot be cancelled (a blocked read cannot be
// interrupted) and that are not handlers of this peer, and only when the
// reading role is free.
func (p *Peer) readUntil(c *call) {
	select {
	case p.readToken <- struct{}{}:
	default:
		return // someone else reads; wait for them
	}
	buf := getBuf()
	for c.remaining.Load() != 0 {
		work, next, ok := p.readNext(buf)
		if !ok {
			return
		}
		buf = next
		if work != nil {
			// A caller does not serve the other side: the work, and the
			// reading role with it, go to a reader goroutine.
			putBuf(buf)
			p.yieldRead = false
			p.spawnReader(work)
			return
		}
	}
	putBuf(buf)
	p.yieldRead = false // set by our own answer; we hand the role on below
	p.mu.Lock()
	waiting := len(p.pending) > 0 && !p.closing
	p.mu.Unlock()
	if waiting {
		p.spawnReader(nil) // other callers wait for their answers
		return
	}
	p.leaveRole()
}

// spawnReader starts a reader goroutine that inherits the reading role and
// first serves work (when not nil), which admit has already accounted for.
func (p *Peer) spawnReader(work *inbound) {
	p.mu.Lock()
	if p.closing {
		if work != nil {
			p.inlineWork, p.inlineSB = nil, nil
			p.unadmit(isNote(work))
		}
		p.mu.Unlock()
		if work != nil {
			work.release()
		}
		return
	}
	p.goroutines++
	p.mu.Unlock()
	go func() {
		if work == nil || p.serveInline(work) {
			p.readLoop(getBuf())
		}
	}()
}

// inlineBudget is how long work may run on the reading goroutine before
// reading moves to another goroutine (up to twice that: see startInline).
// It bounds the delay a slow handler can impose on the messages behind it.
const inlineBudget = time.Millisecond

// serveInline serves work on the reading goroutine. Work that finishes
// within inlineBudget never leaves it. Work that runs longer, or calls back
// this peer, hands reading to another goroutine (handoff) and finishes here,
// and this goroutine then serves the queue behind it and exits. It reports
// whether this goroutine is still the reader.
func (p *Peer) serveInline(in *inbound) bool {
	note := isNote(in)
	if in.batch != nil {
		p.serveBatch(in, false)
	} else {
		p.serveOne(in)
	}

	p.mu.Lock()
	if p.inlineWork == in {
		p.inlineWork, p.inlineSB = nil, nil
		idle := len(p.queue) == 0 || p.closing
		if note {
			idle = len(p.notes) == 0
		}
		if idle {
			p.unadmit(note)
			p.checkDrained()
			p.mu.Unlock()
			in.release()
			return true
		}
		// Work queued behind this: serve it here, read elsewhere.
		p.goroutines++
		go p.readLoop(getBuf())
	}
	p.mu.Unlock()
	if note {
		p.serveNotes(p.nextNote(in))
	} else {
		p.serve(p.nextQueued(in))
	}
	return false
}

// isNote reports whether in is a single notification (not a request, not a
// batch). Ask before serving: serveBatch hands the batch off in.
func isNote(in *inbound) bool { return in.env.id == nil && in.batch == nil }

// unadmit gives back what admit took: the notification role (note) or a
// handler slot. Called with p.mu held.
func (p *Peer) unadmit(note bool) {
	if note {
		p.noting = false
	} else {
		p.running--
	}
}

// due reports whether period has passed since start; if not, it re-arms t
// for the rest of it. The lazily armed timers check with it when they fire.
func due(t *time.Timer, since time.Time, period time.Duration) bool {
	if el := time.Since(since); el < period {
		t.Reset(period - el)
		return false
	}
	return true
}

// startInline records that the reader serves in itself, and schedules the
// budget check if none is. Called with p.mu held.
//
// The check reads no clock, which costs about 100 ns a message here: it
// hands off work it sees running at two checks in a row, or at the first
// check after the work armed it, so work is handed off after between one
// and two budgets.
func (p *Peer) startInline(in *inbound) {
	p.inlineWork, p.inlineSB = in, in.batch
	p.inlineSeq++
	if !p.handoffArmed {
		p.handoffArmed = true
		p.inlineSeen = p.inlineSeq
		p.handoffTimer.Reset(inlineBudget)
	}
}

// handoffCheck hands reading off work that has outrun inlineBudget, or
// schedules the next check while work is served inline.
func (p *Peer) handoffCheck() {
	p.mu.Lock()
	if p.inlineWork == nil || p.closing {
		p.handoffArmed = false
		p.mu.Unlock()
		return
	}
	if p.inlineSeq != p.inlineSeen {
		p.inlineSeen = p.inlineSeq
		p.handoffTimer.Reset(inlineBudget)
		p.mu.Unlock()
		return
	}
	p.handoffArmed = false
	p.mu.Unlock()
	p.handoff(true)
}

// handoff moves reading off the goroutine serving inline work, so that the
// messages behind it get read. becomeReader: the calling goroutine (the
// timer's) becomes the reader itself.
func (p *Peer) handoff(becomeReader bool) {
	p.mu.Lock()
	if p.inlineWork == nil || p.closing {
		p.mu.Unlock()
		return
	}
	p.inlineWork = nil
	p.goroutines++
	sb := p.inlineSB
	p.inlineSB = nil
	if sb != nil {
		sb.workers.Add(1) // keeps the batch alive while helpers start
	}
	p.mu.Unlock()
	if sb != nil {
		p.startHelpers(sb)
		sb.leave()
	}
	if becomeReader {
		p.readLoop(getBuf())
	} else {
		go p.readLoop(getBuf())
	}
}

// route handles one message. It returns work that admit gave this goroutine
// to serve, or nil; kept reports that the message's buffer now belongs to
// that work, to queued work, or to the call it answered.
func (p *Peer) route(buf *msgBuf) (work *inbound, kept bool) {
	b := buf.b
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == '[' {
		return p.routeBatch(buf, i)
	}
	if i == len(b) || b[i] != '{' {
		if validJSON(b) {
			p.replyError(nil, errorf(CodeInvalidRequest, "invalid request: not an object or array"))
		} else {
			p.replyError(nil, errorf(CodeParseError, "parse error"))
		}
		return nil, false
	}
	in := inboundPool.Get().(*inbound)
	end, err := parseObject(b, i, &in.env)
	if err == nil && skipSpace(b, end) != len(b) {
		err = errSyntax
	}
	switch {
	case err != nil:
		p.replyError(nil, errorf(CodeParseError, "parse error"))
	case in.env.invalid != "":
		p.replyError(readableID(&in.env), errorf(CodeInvalidRequest, "invalid request: "+in.env.invalid))
	case !in.env.isRequest():
		kept = p.complete(&in.env, buf)
	default:
		in.msg = buf
		return p.admit(in)
	}
	in.release()
	return nil, kept
}

// readableID returns the id of an invalid message if it is one the
// specification allows, so the error can echo it; else nil (sent as null).
func readableID(e *envelope) []byte {
	if validID(e.id) {
		return e.id
	}
	return nil
}

// admit decides who serves a request or notification: this goroutine,
// inline (see serveInline), a queue, or nobody (busy). It blocks only to
// apply notification backpressure.
func (p *Peer) admit(in *inbound) (work *inbound, kept bool) {
	env := &in.env
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		in.release()
		return nil, true
	}
	if env.id == nil && in.batch == nil {
		if p.noting {
			if len(p.notes) >= p.cfg.MaxNotifications && p.noteCalling {
				// The notification handler waits for an answer that
				// only this reader can deliver: pausing would deadlock.
				p.mu.Unlock()
				in.release()
				p.violation(websocket.StatusPolicyViolation, "notification queue overflow")
				return nil, true
			}
			p.notes = append(p.notes, in)
			if len(p.notes) < p.cfg.MaxNotifications {
				p.mu.Unlock()
				return nil, true
			}
			// Backpressure: stop reading until the queue is half drained,
			// so a burst is slowed down by TCP rather than refused. A
			// flood the handler cannot absorb within WriteTimeout is
			// closed with 1008.
			room := make(chan struct{})
			p.notesRoom = room
			p.mu.Unlock()
			stall := time.NewTimer(p.cfg.WriteTimeout)
			defer stall.Stop()
			select {
			case <-room:
			case <-p.done:
			case <-stall.C:
				p.violation(websocket.StatusPolicyViolation, "notification queue overflow")
			}
			return nil, true
		}
		p.noting = true
		p.startInline(in)
		p.mu.Unlock()
		return in, true
	}
	if p.draining {
		p.mu.Unlock()
		p.replyBusy(in, errorf(CodeServerBusy, "server busy: shutting down"))
		in.release()
		return nil, true
	}
	if in.batch == nil && !p.trackID(env.id) {
		p.mu.Unlock()
		p.replyError(env.id, errorf(CodeInvalidRequest, "invalid request: id already in use by a request in progress"))
		in.release()
		return nil, true
	}
	if p.running < p.cfg.MaxHandlers {
		p.running++
		p.startInline(in)
		p.mu.Unlock()
		return in, true
	}
	if len(p.queue) < p.cfg.MaxQueued {
		p.queue = append(p.queue, in)
		p.mu.Unlock()
		return nil, true
	}
	if in.batch == nil {
		p.untrackID(env.id)
	}
	p.mu.Unlock()
	p.replyBusy(in, errorf(CodeServerBusy, "server busy: too many requests in progress"))
	in.release()
	return nil, true
}

// trackID records an incoming request id as in progress; false if it
// already is. Called with p.mu held.
func (p *Peer) trackID(id []byte) bool {
	if n, ok := parseUintID(id); ok {
		if _, dup := p.inflightN[n]; dup {
			return false
		}
		if p.inflightN == nil {
			p.inflightN = map[uint64]struct{}{}
		}
		p.inflightN[n] = struct{}{}
		return true
	}
	if id[0] == 'n' {
		return true // null ids cannot be told apart: not tracked
	}
	if _, dup := p.inflightS[string(id)]; dup {
		return false
	}
	if p.inflightS == nil {
		p.inflightS = map[string]struct{}{}
	}
	p.inflightS[string(id)] = struct{}{}
	return true
}

// untrackID forgets an id recorded by trackID. Called with p.mu held.
func (p *Peer) untrackID(id []byte) {
	if n, ok := parseUintID(id); ok {
		delete(p.inflightN, n)
	} else if id[0] != 'n' {
		delete(p.inflightS, string(id))
	}
}

// serve runs work on this goroutine, then whatever queued behind it, and
// returns when there is nothing left. in may be nil.
func (p *Peer) serve(in *inbound) {
	if in != nil && in.env.id == nil && in.batch == nil {
		p.serveNotes(in)
		return
	}
	for in != nil {
		if in.batch != nil {
			p.serveBatch(in, true)
		} else {
			p.serveOne(in)
		}
		in = p.nextQueued(in)
	}
	p.exit()
}

// nextQueued releases served work (nil for none) and returns the next queued
// request for the calling goroutine, keeping its slot, or nil after giving
// the slot up.
func (p *Peer) nextQueued(served *inbound) *inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	if served != nil {
		served.release() // its slot passes to the next request, if any
	}
	if len(p.queue) > 0 && !p.closing {
		in := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		return in
	}
	p.running--
	p.checkDrained()
	return nil
}

// serveNotes serves notifications one at a time, in arrival order, then
// returns.
func (p *Peer) serveNotes(in *inbound) {
	for in != nil {
		p.serveOne(in)
		in = p.nextNote(in)
	}
	p.exit()
}

// nextNote releases a served notification and returns the next one, or nil
// when there is none (and no goroutine serves notes any more).
func (p *Peer) nextNote(served *inbound) *inbound {
	served.release()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.notes) > 0 {
		in := p.notes[0]
		p.notes[0] = nil
		p.notes = p.notes[1:]
		if len(p.notes) <= p.cfg.MaxNotifications/2 {
			p.wakeReader()
		}
		return in
	}
	p.noting = false
	p.checkDrained()
	return nil
}

// serveOne runs a single request or notification and writes its response.
func (p *Peer) serveOne(in *inbound) {
	req := &in.req
	if in.env.id == nil {
		p.dispatch(p.ctx, &in.env, req)
		return
	}
	res, err := p.dispatch(p.slotCtx, &in.env, req)
	wb := getBuf()
	wb.b = appendResponse(wb.b[:0], req, res, err, int(p.cfg.MaxMessageSize), p.cfg)
	// The id is free again before the answer goes out: a caller may reuse
	// it as soon as it has the answer.
	p.mu.Lock()
	if !p.closing {
		p.untrackID(in.env.id)
	}
	p.mu.Unlock()
	p.write(wb.b)
	putBuf(wb)
}

// dispatch finds and runs the handler for env, filling req.
func (p *Peer) dispatch(ctx context.Context, env *envelope, req *Request) (any, error) {
	return dispatch(ctx, p.cfg, p, env, req)
}

// dispatch finds and runs the handler for env in cfg.Methods, filling req.
// p is the peer the request came on, nil for HTTP POST.
func dispatch(ctx context.Context, cfg *config, p *Peer, env *envelope, req *Request) (any, error) {
	*req = Request{Params: env.params, ID: env.id, peer: p, codec: cfg.Codec, scanned: env.params}
	me := cfg.Methods.lookup(env.method[1 : len(env.method)-1])
	if me == nil && env.methodEscaped {
		me = cfg.Methods.lookup([]byte(env.methodName()))
	}
	if me == nil {
		return nil, methodNotFound(env.methodName())
	}
	req.Method = me.name
	return invoke(ctx, me.chain, req, cfg)
}

func methodNotFound(name string) *Error {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return errorf(CodeMethodNotFound, "method not found: "+strconv.Quote(name))
}

// invoke runs h under the recovery of the Recover middleware (recovered),
// so that a panic or a plain error never reaches the wire even when the
// table has no middleware.
func invoke(ctx context.Context, h Handler, req *Request, cfg *config) (res any, err error) {
	return recovered(ctx, h, req, cfg.log)
}

// appendResponse appends the response to req. A result that cannot be
// encoded, or that would make the message larger than limit, is replaced
// by an error response.
func appendResponse(b []byte, req *Request, res any, err error, limit int, cfg *config) []byte {
	start := len(b)
	if err == nil {
		b = append(b, jsonrpcPrefix+`,"id":`...)
		b = append(b, req.ID...)
		b = append(b, `,"result":`...)
		var encErr error
		if t := req.trusted; t != nil && sameBytes(res, t) {
			b = append(b, t...)
		} else {
			b, encErr = appendResultValue(b, res, cfg.Codec)
		}
		if encErr == nil {
			b = append(b, '}')
			if len(b)-start <= limit {
				return b
			}
			err = errorf(CodeResponseTooLarge, "response too large")
		} else {
			cfg.log.Error("wsrpc: cannot encode result", "method", req.Method, "err", encErr)
			err = ErrInternal
		}
		b = b[:start]
	}
	b = appendErrorResponse(b, req.ID, toWireError(err))
	if len(b)-start > limit {
		// An error too large to send (a handler's big data): the caller
		// still gets an answer to its id, within the limit.
		b = appendErrorResponse(b[:start], req.ID, ErrResponseTooLarge)
	}
	return b
}

// tooLargeSize is the size of the CodeResponseTooLarge error response to
// id, the least an answer to id can take.
func tooLargeSize(id []byte) int {
	if id == nil {
		id = []byte(nullID)
	}
	return len(jsonrpcPrefix+`,"id":,"error":{"code":-32001,"message":"response too large"}}`) + len(id)
}

// appendResultValue is appendValue for a handler's result: a panic in the
// result's encoding (a MarshalJSON method, a Codec) becomes an error, as a
// panic in the handler itself does, instead of crashing the process.
func appendResultValue(b []byte, v any, c Codec) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = b, fmt.Errorf("wsrpc: encoding the result panicked: %v", r)
		}
	}()
	return appendValue(b, v, c)
}

// sameBytes reports whether v is a json.RawMessage that is t itself: a
// params copy handed back unchanged needs no second validation.
func sameBytes(v any, t []byte) bool {
	r, ok := v.(json.RawMessage)
	return ok && sameSlice(r, t)
}

// sameSlice reports whether a and b are the same non-empty slice of the
// same array.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

func (p *Peer) replyError(id []byte, e *Error) {
	p.cfg.log.Debug("wsrpc: refused message", "code", e.Code, "message", e.Message)
	wb := getBuf()
	wb.b = appendErrorResponse(wb.b[:0], id, e)
	p.write(wb.b)
	putBuf(wb)
}

// replyBusy answers work that was not admitted.
func (p *Peer) replyBusy(in *inbound, e *Error) {
	if in.batch == nil {
		p.replyError(in.env.id, e)
		return
	}
	in.batch.replyAll(p, e)
}

// wakeReader resumes a reader paused by notification backpressure. Called
// with p.mu held.
func (p *Peer) wakeReader() {
	if p.notesRoom != nil {
		close(p.notesRoom)
		p.notesRoom = nil
	}
}

// noteCall marks the notification handler as waiting on this peer (on) or
// not (off); while it waits, the reader must not pause for backpressure.
func (p *Peer) noteCall(on bool) {
	p.mu.Lock()
	p.noteCalling = on
	if on {
		p.wakeReader()
	}
	p.mu.Unlock()
}

// lendSlot gives up the handler slot of a handler that waits for an answer
// from this same peer, so that the other side's callbacks can run: without
// it, nested callbacks A→B→A→… would deadlock once every slot waits. The
// handler takes the slot back with reclaimSlot when the answer arrives, even
// if that briefly exceeds MaxHandlers.
func (p *Peer) lendSlot() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	if len(p.queue) > 0 && !p.closing && p.running < p.cfg.MaxHandlers {
		in := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.running++
		p.goroutines++
		go p.serve(in)
	}
}

func (p *Peer) reclaimSlot() {
	p.mu.Lock()
	p.running++
	p.mu.Unlock()
}

// checkDrained signals a draining peer that no handler runs any more.
// Called with p.mu held.
func (p *Peer) checkDrained() {
	if p.draining && p.running == 0 && !p.noting && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// drain stops admitting requests and returns a channel closed when every
// running handler has returned.
func (p *Peer) drain() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	p.draining = true
	p.drained = ch
	p.checkDrained()
	return ch
}
