package wsrpc

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A Peer is one end of a JSON-RPC connection. Both ends are Peers: each can
// call, notify and batch, and each serves its own method table to the other.
//
// A Peer's goroutines are its reader (at most one reads at a time; see
// role.go), at most Limits.MaxHandlers serving requests, one serving
// notifications, one writing its outbound queue, and short-lived ones for
// keepalive pings and closing; an idle peer has one goroutine, or none for
// a moment after a call. All of them have returned when Close returns.
type Peer struct {
	cfg     *config
	conn    transport
	httpReq *http.Request
	since   time.Time // see ConnectedAt
	// server is the Server the peer belongs to, nil for other peers; cl
	// is its name and topics there (cluster.go), guarded by server.mu.
	server *Server
	cl     peerState
	// pool is the byte budget shared by the peers of a Server; nil for
	// other peers.
	pool *pool

	// ctx is the context of every handler: it carries the peer and is
	// cancelled when the peer closes. slotCtx is ctx for handlers that
	// hold a handler slot (requests, batch items); a call back to this
	// peer made with it may serve queued requests while it waits.
	ctx     context.Context
	cancel  context.CancelFunc
	slotCtx context.Context

	id     atomic.Uint64 // see ID
	nextID atomic.Uint64 // ids of our own calls
	// batchSize is the number of calls in the last batch sent (batch.go).
	batchSize atomic.Int32
	slots     chan struct{} // one per own call or batch awaiting answers
	calls     sync.Pool     // of *call (per peer: see newCall)

	// writeSem is held (full) while a message is written. It is a channel,
	// not a mutex, so that a caller whose context ends while it waits for
	// its turn can give up (writeCtx).
	writeSem   chan struct{}
	writeWatch *watchdog
	// writers counts the goroutines in writeCtx, waiting for their turn
	// or writing, and a reader holding answers back (holding) or a peer
	// draining its broadcast queue: while there are others, a message may
	// wait to go out with the next (leaveWriting).
	writers atomic.Int32
	// holding: the reader counts as a writer (in writers) while it serves
	// messages it has read ahead, so that their answers go out together
	// (holdAnswers).
	holding atomic.Bool

	// roleFree mirrors role.holder == roleNone, so that a caller can see
	// without the lock whether the reading role is its to take or start:
	// once its call is pending, the role cannot become free before the
	// call is answered (readRole.step), so a false read stays true enough.
	roleFree atomic.Bool

	// reserveFn is p.reserve, made once: a method value handed to the
	// transport on every read would be allocated on every read.
	reserveFn func(int64) error

	pingTimer    *time.Timer
	lapseTimer   *time.Timer   // see readRole
	lapseAfter   time.Duration // readLapse; tests make it longer (guarded by mu)
	handoffTimer *time.Timer   // see readRole

	done     chan struct{} // closed when the peer stops working
	onFinish func(*Peer)
	// inUser counts the peer's goroutines running user code (handlers,
	// their middleware and guards). Close waits for the others only
	// (settled): a handler may close its own peer.
	inUser atomic.Int64

	// mu guards everything below. It is never held while user code (a
	// handler, hook or logger) runs, nor while reading or writing.
	mu      sync.Mutex
	role    readRole         // role.go, read.go
	pending map[uint64]*call // single calls, by id: call.go
	batches []*call          // batches of calls awaiting answers: call.go
	serving                  // serve.go
	out     outbound         // broadcast.go
	streams streams          // stream.go

	// help rings a handler that waits on this peer when every handler
	// slot is taken by such handlers and requests are queued (serve.go).
	// Made by the first such handler.
	help chan struct{}
	// finished is closed when every goroutine has returned, settled when
	// the peer is closing and only inUser goroutines are left. Both are
	// made by the first Close that waits for them (most peers end without
	// one), and never once the bool beside them is set.
	finished, settled     chan struct{}
	isFinished, isSettled bool

	goroutines int
	closing    bool
	err        error
	identity   any
	values     map[*keyID]any // key.go
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
func NewPeer(c *websocket.Conn, opts *PeerOptions) *Peer {
	cfg := opts.options().config()
	p := newPeer(newWSTransport(c, nil, nil, cfg), cfg, nil, nil)
	p.start()
	return p
}

func newPeer(t transport, cfg *config, r *http.Request, identity any) *Peer {
	p := &Peer{
		cfg:      cfg,
		conn:     t,
		httpReq:  r,
		since:    time.Now(),
		slots:    make(chan struct{}, cfg.MaxPending),
		writeSem: make(chan struct{}, 1),
		done:     make(chan struct{}),
		pending:  map[uint64]*call{},
		identity: identity,
	}
	p.calls.New = newCall
	p.reserveFn = p.reserve
	base := context.Background()
	if r != nil {
		base = context.WithoutCancel(r.Context())
	}
	p.ctx, p.cancel = context.WithCancel(context.WithValue(base, peerKey{}, p))
	p.slotCtx = context.WithValue(p.ctx, slotKey{}, p)
	p.writeWatch = newWatchdog(cfg.WriteTimeout, func() {
		p.fail(fmt.Errorf("wsrpc: write did not complete within %v", cfg.WriteTimeout))
	})
	p.lapseAfter = readLapse
	p.lapseTimer = time.AfterFunc(time.Hour, p.lapse)
	p.lapseTimer.Stop()
	p.handoffTimer = time.AfterFunc(time.Hour, p.handoffCheck)
	p.handoffTimer.Stop()
	return p
}

// start starts the reader and the keepalive timer.
func (p *Peer) start() {
	p.roleStep(evStart, 0, nil)
	p.mu.Lock()
	if p.cfg.PingInterval > 0 && !p.closing {
		p.pingTimer = time.AfterFunc(p.cfg.PingInterval, p.keepalive)
	}
	p.mu.Unlock()
}

// launch starts f on a new goroutine of the peer, counted so that Close
// waits for it, and reports whether it did: a closing peer starts none.
// Called with p.mu held. Every goroutine of a peer starts here, or is a
// timer's goroutine adopted with adopt.
func (p *Peer) launch(f func()) bool {
	if !p.adopt() {
		return false
	}
	go func() {
		defer p.exit()
		f()
	}()
	return true
}

// adopt counts the calling goroutine (a timer's) as one of the peer's until
// it calls exit; false if the peer is closing. Called with p.mu held.
func (p *Peer) adopt() bool {
	if p.closing {
		return false
	}
	p.goroutines++
	return true
}

// exit is the last thing every goroutine of the peer does.
func (p *Peer) exit() {
	p.mu.Lock()
	p.goroutines--
	fin := p.closing && p.goroutines == 0
	p.checkSettled()
	p.mu.Unlock()
	if fin {
		p.finish()
	}
}

// enterUser and leaveUser bracket user code run by one of the peer's
// goroutines.
func (p *Peer) enterUser() { p.inUser.Add(1) }

func (p *Peer) leaveUser() {
	p.inUser.Add(-1)
	if p.Err() != nil { // closed: Close may be waiting for this
		p.mu.Lock()
		p.checkSettled()
		p.mu.Unlock()
	}
}

// checkSettled closes settled once the peer is closing and every goroutine
// left is in user code. Called with p.mu held.
func (p *Peer) checkSettled() {
	if p.closing && !p.isSettled && int64(p.goroutines) <= p.inUser.Load() {
		p.isSettled = true
		if p.settled != nil {
			close(p.settled)
		}
	}
}

// awaitable returns *ch, made if need be, to wait for an event that done
// says has not happened yet; nil if it has. Called with p.mu held.
func awaitable(ch *chan struct{}, done bool) chan struct{} {
	if done {
		return nil
	}
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// HTTPRequest returns the upgrade request of an accepted peer (its headers,
// cookies and remote address), or nil for a dialed peer.
func (p *Peer) HTTPRequest() *http.Request { return p.httpReq }

// ConnectedAt returns when the peer was made: once its WebSocket handshake
// had completed (Dial, Accept, a Server's upgrade), or when NewPeer or
// Pipe made it.
func (p *Peer) ConnectedAt() time.Time { return p.since }

// Identity returns what Authenticate (ServerOptions, AcceptOptions) or
// SetIdentity attached to the peer, or nil.
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
// from any goroutine, any number of times. Called from a handler (or its
// middleware or guard), it does not wait for handlers still running, its
// own caller among them: it returns once the peer's other goroutines have,
// and the peer finishes (a Server's OnDisconnect runs) when the last
// handler returns.
func (p *Peer) Close() error {
	return p.closeWith(websocket.StatusNormalClosure, "")
}

func (p *Peer) closeWith(code websocket.StatusCode, reason string) error {
	if p.shutdown(nil) {
		p.closeHandshake(code, reason)
	}
	// A handler closing its peer must not wait for itself: it waits for
	// the peer to settle, unless it has (a second Close, or one after the
	// other side left).
	handler := inHandler()
	p.mu.Lock()
	var wait chan struct{}
	if handler {
		wait = awaitable(&p.settled, p.isSettled)
	} else {
		wait = awaitable(&p.finished, p.isFinished)
	}
	p.mu.Unlock()
	if wait != nil {
		<-wait
	}
	return nil
}

// dispatchName is the function every handler of a peer runs under.
const dispatchName = "github.com/wsrpc/wsrpc.(*Peer).dispatch"

// inHandler reports whether the calling goroutine runs a peer's handler
// (or its middleware or guard), which Close must not wait for: Go has no
// goroutine identity, but the handler's frames are on this one's stack.
func inHandler() bool {
	var pcs [64]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs[:])])
	for {
		f, more := frames.Next()
		if f.Function == dispatchName {
			return true
		}
		if !more {
			return false
		}
	}
}

// closeHandshake sends the close frame and waits for the other side's.
// A write in progress finishes first, within WriteTimeout: coder/websocket
// would give up waiting for it after a few seconds and drop the connection
// without the close frame, leaving the other side to guess why.
func (p *Peer) closeHandshake(code websocket.StatusCode, reason string) {
	p.writeSem <- struct{}{}
	p.conn.close(code, reason)
	<-p.writeSem
}

// fail ends the peer because of cause and drops the connection.
func (p *Peer) fail(cause error) {
	p.shutdown(cause)
	p.conn.closeNow()
}

// violation ends the peer because the other side broke a rule, closing
// with code and reason so it can tell.
func (p *Peer) violation(code websocket.StatusCode, reason string) {
	p.violate(code, reason, fmt.Errorf("wsrpc: %s", reason))
}

// violate is violation with the cause the peer's error wraps.
func (p *Peer) violate(code websocket.StatusCode, reason string, cause error) {
	p.cfg.log.Warn("wsrpc: closing peer", "code", int(code), "reason", reason)
	if p.shutdown(cause) {
		// The closing handshake waits for the other side; callers run on
		// one of the peer's own goroutines, which returns right after.
		p.closeHandshake(code, reason)
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
	p.roleStepLocked(evClose, 0, false)
	pending, batches := p.pending, p.batches
	p.pending, p.batches = nil, nil
	queued := p.dropQueued()
	p.out.drop()
	p.endStreams(p.err)
	fin := p.goroutines == 0
	p.checkSettled()
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
	for _, c := range batches {
		n := c.takeRest(func(s *slot, _ uint64) { s.err = p.err })
		if c.remaining.Add(-n) == 0 {
			c.done <- struct{}{}
		}
	}
	p.cancel()
	// The write watchdog keeps watching a write in progress, which the
	// closing handshake waits for; finish stops it.
	p.handoffTimer.Stop()
	p.lapseTimer.Stop()
	if p.pingTimer != nil {
		p.pingTimer.Stop()
	}
	for _, in := range queued {
		p.releaseIn(in)
	}
	if fin {
		p.finish()
	}
	return true
}

func (p *Peer) finish() {
	p.writeWatch.stop()
	p.mu.Lock()
	p.isFinished = true
	if p.finished != nil {
		close(p.finished)
	}
	p.mu.Unlock()
	if p.onFinish != nil {
		p.onFinish(p)
	}
}

// keepalive pings the other side; no pong in time means the connection is
// dead. It runs on the ping timer's goroutine.
func (p *Peer) keepalive() {
	p.mu.Lock()
	if !p.adopt() {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	defer p.exit()
	// The pong comes back with the inbound messages: someone must read.
	p.needReader(false)

	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.PingTimeout)
	err := p.conn.ping(ctx)
	cancel()
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	if err != nil && !paused {
		p.fail(fmt.Errorf("wsrpc: keepalive: no pong within %v: %w", p.cfg.PingTimeout, err))
		return
	}
	// A reader paused by this peer's own byte budget reads no pong; that
	// says nothing about the other side.
	p.mu.Lock()
	if !p.closing {
		p.pingTimer.Reset(p.cfg.PingInterval)
	}
	p.mu.Unlock()
}
