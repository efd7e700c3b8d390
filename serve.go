package wsrpc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// This file serves what the other side sends: it decides, for every
// request, notification and batch read, who serves it and when (admit),
// holds what waits (queues), counts the bytes held against the budgets
// (reserve), and runs handlers (serveOne). The limits, in the order they
// apply:
//
//   - Bytes, before a message is read (reserve): a peer holds at most
//     Limits.MaxPeerBytes of inbound messages, counting the one being
//     read; a Server's peers together hold at most ServerOptions.MaxServerBytes
//     beyond the first peerFloor bytes of each. With no room, the reader
//     waits (TCP backpressure), unless waiting could deadlock: while a call
//     of this peer awaits an answer, the message is read over budget and
//     admission refuses what does not fit.
//   - Handler slots (admit): at most Limits.MaxHandlers requests and
//     batches run at once; up to Limits.MaxQueued more wait; beyond that,
//     CodeServerBusy, and the reader reads nothing more until a slot or a
//     place is free (so that a flood costs one refusal, not one per
//     message). Notifications run one at a time, in order; up to
//     Limits.MaxNotifications wait, then the reader waits.
//   - Goroutines: a request runs on the reader itself while it is quick
//     (see read.go), otherwise on a goroutine holding its slot, which then
//     serves the queue. A handler waiting for an answer from its own peer
//     keeps its slot and goroutine; when every slot is held by such a
//     handler, it serves queued requests itself while it waits (help), so
//     nested callbacks neither deadlock nor take more goroutines.

// peerFloor is what each peer may hold without drawing on the Server's
// shared budget, so that peers sending small messages never wait for the
// bytes others hold.
const peerFloor = 64 << 10

// smallMessage is the size under which messages are not charged to the
// byte budgets (or a 64th of MaxPeerBytes, if less): the count limits
// (MaxHandlers, MaxQueued, MaxNotifications) bound what a peer holds of
// them to a few MiB, and charging them would cost the common small message
// a lock more.
const smallMessage = 4 << 10

// largeMessage is the size from which a peer serves its messages one at a
// time: the reader does not read the payload of a large message while
// another is held. Reading, parsing and answering a large message is
// mostly CPU; one client flooding large messages then keeps at most one
// core busy, not one per message it has in flight, and the other peers
// keep theirs.
const largeMessage = 1 << 20

// serving is the part of a Peer's state that admission and handlers change,
// guarded by Peer.mu.
type serving struct {
	running     int        // handler slots taken (inline work included)
	calling     int        // slot holders waiting for an answer from this peer
	queue       []*inbound // requests waiting for a slot, in arrival order
	notes       []*inbound // notifications waiting, served in order
	noting      bool       // a goroutine serves notifications
	noteCalling bool       // ... and waits for an answer from this peer
	// inlineSB is the batch the reader serves inline, for a handoff to
	// start helpers for.
	inlineSB *serverBatch

	held     int64 // bytes of inbound messages held
	large    int   // large messages held (see largeMessage)
	poolHeld int64 // the part of held drawn from the Server's pool
	// readCharge and readOver belong to the goroutine that reads (they
	// move with the role, under Peer.mu); changed with Peer.mu held.
	readCharge int64 // reserved for the message being read
	readOver   bool  // ... over budget (see reserve)
	paused     bool  // the reader waits for room
	// refused: a request was refused for want of a slot or a queue place;
	// the reader reads nothing more until one is free, so that a flood
	// costs one refusal, not one per message.
	refused atomic.Bool // written with Peer.mu held; read without it too
	// flooded: a request was refused since the queue was last empty.
	// Meanwhile a request that fills the queue again pauses the reader
	// (refused) before the next is read, rather than have that one
	// refused: the flood still costs one refusal, however fast the
	// reader is woken and handlers take the queue.
	flooded bool
	// room is closed when room may have been made (bytes released, a
	// notification place freed, a reason not to wait), waking a paused
	// reader.
	room chan struct{}

	// gated: inbound work waits in the queues, served by nobody, until
	// the gate opens (a Server's OnConnect is running).
	gated bool

	inflightN map[uint64]*inbound // requests in progress (or queued), by id
	inflightS map[string]*inbound
	draining  bool
	drained   chan struct{}
}

// inbound is a request, notification or batch received, with the buffer
// its slices point into and the bytes it is charged.
type inbound struct {
	msg   *msgBuf
	env   envelope
	req   Request
	batch *serverBatch
	size  int64 // bytes charged to the budgets
	over  bool  // read over budget
	// cancelled and cancel are a request's wire cancellation
	// (Options.CancelMethod; cancel.go), guarded by Peer.mu.
	cancelled bool
	cancel    context.CancelFunc
}

var inboundPool = sync.Pool{New: func() any { return new(inbound) }}

// release recycles in; its charge must have been given back.
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

// releaseIn gives back in's charge and recycles it.
func (p *Peer) releaseIn(in *inbound) {
	if in.size > 0 {
		p.mu.Lock()
		p.unholdWork(in.size)
		p.mu.Unlock()
	}
	in.release()
}

// unholdWork gives back the charge of a unit of work that takeReserved
// charged size bytes. Called with p.mu held.
func (p *Peer) unholdWork(size int64) {
	if size >= largeMessage {
		p.large--
	}
	p.unhold(size)
}

// isNote reports whether in is a single notification (not a request, not a
// batch).
func isNote(in *inbound) bool { return in.env.id == nil && in.batch == nil }

// ---- bytes ----

// reserve charges a message of n bytes, about to be read (or just read,
// when its size could not be known before), to the budgets. It waits for
// room, unless waiting could deadlock (mustRead); then it charges the
// message anyway and marks it over budget. It fails only when the peer
// closes. A negative n gives back part of the charge. It runs on the
// reading goroutine.
func (p *Peer) reserve(n int64) error {
	if n > 0 && n < p.cfg.smallMessage && !p.refused.Load() {
		return nil // not charged: see smallMessage
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n <= 0 {
		p.readCharge += n
		p.unhold(-n)
		return nil
	}
	for {
		if p.closing {
			return p.err
		}
		if p.refused.Load() && (p.running < p.cfg.MaxHandlers || len(p.queue) < p.cfg.MaxQueued) {
			p.refused.Store(false)
		}
		over := p.held > 0 && p.held+n > p.cfg.MaxPeerBytes || p.refused.Load() ||
			n >= largeMessage && p.large > 0
		need := p.poolNeed(n)
		if !over && (need == 0 || p.pool.take(need, false)) {
			p.charge(n, need)
			return nil
		}
		if p.mustRead() {
			if need > 0 {
				p.pool.take(need, true)
			}
			p.charge(n, need)
			p.readOver = true
			return nil
		}
		var poolRoom <-chan struct{}
		if !over {
			poolRoom = p.pool.roomCh()
		}
		p.pauseLocked(poolRoom, nil)
	}
}

// pauseLocked waits, with p.mu held on entry and on return, until room
// may have been made for the reader (or other or stall, if not nil, is
// ready), or the peer closes. The message timer does not run meanwhile:
// the wait is this peer's doing, not the other side's. It reports whether
// stall ended the wait.
func (p *Peer) pauseLocked(other <-chan struct{}, stall <-chan time.Time) (stalled bool) {
	if p.room == nil {
		p.room = make(chan struct{})
	}
	room := p.room
	p.paused = true
	p.mu.Unlock()
	p.sendAnswers() // a paused reader holds nothing back
	p.conn.holdTimer(true)
	select {
	case <-room:
	case <-other:
	case <-stall:
		stalled = true
	case <-p.done:
	}
	p.conn.holdTimer(false)
	p.mu.Lock()
	p.paused = false
	return stalled
}

// wakeReader wakes a paused reader to look again. Called with p.mu held.
func (p *Peer) wakeReader() {
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
}

// mustRead reports whether the reader must not wait for room, because
// something that waiting would hold up waits for this very peer: a call
// awaiting its answer, or a handler calling back. Called with p.mu held.
func (p *Peer) mustRead() bool {
	return p.awaiting() || p.calling > 0 || p.noteCalling
}

// poolNeed returns what charging n more bytes must draw from the Server's
// pool. Called with p.mu held.
func (p *Peer) poolNeed(n int64) int64 {
	if p.pool == nil {
		return 0
	}
	return max(0, p.held+n-peerFloor) - p.poolHeld
}

// charge adds n bytes, need of them from the pool, to the message being
// read. Called with p.mu held.
func (p *Peer) charge(n, need int64) {
	p.held += n
	p.poolHeld += max(need, 0)
	p.readCharge += n
}

// takeReserved hands the charge of the message just read to its work.
func (p *Peer) takeReserved() (n int64, over bool) {
	if p.readCharge == 0 && !p.readOver {
		return 0, false
	}
	p.mu.Lock()
	n, over = p.readCharge, p.readOver
	p.readCharge, p.readOver = 0, false
	if n >= largeMessage {
		p.large++
	}
	p.mu.Unlock()
	return n, over
}

// unreserve gives back the charge of a message that left no work to hold
// (an answer, a refused message) or that failed to arrive.
func (p *Peer) unreserve() {
	if p.readCharge == 0 && !p.readOver {
		return
	}
	p.mu.Lock()
	p.unhold(p.readCharge)
	p.readCharge, p.readOver = 0, false
	p.mu.Unlock()
}

// unhold gives back n held bytes, and to the pool what the peer no longer
// needs of it. Called with p.mu held.
func (p *Peer) unhold(n int64) {
	if n == 0 {
		return
	}
	p.held -= n
	if p.pool != nil {
		if extra := p.poolHeld - max(0, p.held-peerFloor); extra > 0 {
			p.poolHeld -= extra
			p.pool.give(extra)
		}
	}
	p.wakeReader()
}

// pool is a byte budget shared by the peers of a Server.
type pool struct {
	mu    sync.Mutex
	limit int64
	used  int64
	room  chan struct{} // closed when bytes are given back
}

// take takes n bytes if they fit, or regardless if force. A nil pool has
// room for anything.
func (b *pool) take(n int64, force bool) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !force && b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *pool) give(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}

// roomCh returns a channel closed when bytes are next given back.
func (b *pool) roomCh() <-chan struct{} {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.room == nil {
		b.room = make(chan struct{})
	}
	return b.room
}

// ---- admission ----

// admission is what decide made of one unit of inbound work.
type admission uint8

const (
	admitInline   admission = iota // the reader serves it; its slot is taken
	admitQueued                    // it waits in a queue
	admitWait                      // no place yet: the reader waits for room
	admitClosed                    // the peer is closing: dropped
	admitBusy                      // refused with CodeServerBusy
	admitDraining                  // refused: the server is shutting down
	admitDupID                     // refused: its id is in use
	admitOverflow                  // a notification with no place, whose handler waits on this reader
)

var (
	errBusy       = errorf(CodeServerBusy, "server busy: too many requests in progress")
	errBusyBytes  = errorf(CodeServerBusy, "server busy: too much data in progress")
	errShutting   = errorf(CodeServerBusy, "server busy: shutting down")
	errDuplicated = errorf(CodeInvalidRequest, "invalid request: id already in use by a request in progress")
)

// admit decides who serves in. It returns true when the calling reader is
// to serve it inline, its slot taken; otherwise in has been queued, or
// refused and released. It waits only for a notification place: at most
// WriteTimeout, after which the flood closes the connection with 1008.
func (p *Peer) admit(in *inbound) bool {
	p.mu.Lock()
	d := p.decide(in)
	if d == admitWait {
		stall := time.NewTimer(p.cfg.WriteTimeout)
		for d == admitWait {
			if p.pauseLocked(nil, stall.C) {
				d = admitOverflow
				break
			}
			d = p.decide(in)
		}
		stall.Stop()
	}
	p.mu.Unlock()
	switch d {
	case admitInline:
		return true
	case admitQueued:
		return false
	case admitBusy:
		e := errBusy
		if in.over {
			e = errBusyBytes
		}
		p.replyBusy(in, e)
	case admitDraining:
		p.replyBusy(in, errShutting)
	case admitDupID:
		p.replyError(in.env.id, errDuplicated)
	case admitOverflow:
		// Notifications come faster than their handler takes them, or
		// it waits for an answer that only this reader can deliver, so
		// the reader cannot wait for a place.
		p.releaseIn(in)
		p.violation(websocket.StatusPolicyViolation, "notification queue overflow")
		return false
	}
	p.releaseIn(in)
	return false
}

// decide is admit's decision, with p.mu held.
func (p *Peer) decide(in *inbound) admission {
	if p.closing {
		return admitClosed
	}
	// Work read over budget fits once what was held before it is gone.
	over := in.over && p.held > p.cfg.MaxPeerBytes && p.held > in.size
	if isNote(in) {
		switch {
		case !p.noting && !p.gated:
			p.noting = true
			return admitInline
		case len(p.notes) < p.cfg.MaxNotifications && !over:
			p.notes = append(p.notes, in)
			return admitQueued
		case p.noteCalling:
			return admitOverflow
		}
		return admitWait
	}
	if p.draining {
		return admitDraining
	}
	if in.batch == nil && !p.trackID(in) {
		return admitDupID
	}
	switch {
	case over:
	case p.running < p.cfg.MaxHandlers && !p.gated:
		p.running++
		return admitInline
	case len(p.queue) < p.cfg.MaxQueued:
		p.queue = append(p.queue, in)
		p.ringHelp()
		if p.flooded && len(p.queue) == p.cfg.MaxQueued {
			p.refused.Store(true)
		}
		return admitQueued
	}
	if in.batch == nil {
		p.untrackID(in.env.id)
	}
	p.refused.Store(!over)
	p.flooded = p.flooded || !over
	return admitBusy
}

// gate holds inbound work in the queues (on), or serves what waits there
// and lets work in again (off).
func (p *Peer) gate(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gated = on
	if on {
		return
	}
	// The serving loops take the queued work themselves; a loop that
	// finds none gives its slot (or role) back. If the peer is closing,
	// launch refuses and shutdown drops the queues.
	for n := min(len(p.queue), p.cfg.MaxHandlers-p.running); n > 0; n-- {
		p.running++
		if !p.launch(func() { p.serveQueue(nil) }) {
			p.running--
			break
		}
	}
	if !p.noting && len(p.notes) > 0 {
		p.noting = true
		if !p.launch(func() { p.serveNotes(nil) }) {
			p.noting = false
		}
	}
	p.wakeReader()
}

// unadmit gives back what admission gave inline work: the notification
// role (note) or a handler slot. Called with p.mu held.
func (p *Peer) unadmit(note bool) {
	if note {
		p.noting = false
	} else {
		p.running--
		p.wakeReader()
	}
	p.checkDrained()
}

// queuedBehind reports whether work of in's kind waits in a queue. Called
// with p.mu held.
func (p *Peer) queuedBehind(note bool) bool {
	if note {
		return len(p.notes) > 0
	}
	return len(p.queue) > 0
}

// trackID records an incoming request as in progress under its id; false
// if one with the same id already is. Called with p.mu held.
func (p *Peer) trackID(in *inbound) bool {
	id := in.env.id
	if n, ok := parseUintID(id); ok {
		if _, dup := p.inflightN[n]; dup {
			return false
		}
		if p.inflightN == nil {
			p.inflightN = map[uint64]*inbound{}
		}
		p.inflightN[n] = in
		return true
	}
	if id[0] == 'n' {
		return true // null ids cannot be told apart: not tracked
	}
	if _, dup := p.inflightS[string(id)]; dup {
		return false
	}
	if p.inflightS == nil {
		p.inflightS = map[string]*inbound{}
	}
	p.inflightS[string(id)] = in
	return true
}

// tracked returns the request in progress with id, or nil. Called with
// p.mu held.
func (p *Peer) tracked(id []byte) *inbound {
	if n, ok := parseUintID(id); ok {
		return p.inflightN[n]
	}
	return p.inflightS[string(id)]
}

// untrackID forgets an id recorded by trackID. Called with p.mu held.
func (p *Peer) untrackID(id []byte) {
	if n, ok := parseUintID(id); ok {
		delete(p.inflightN, n)
	} else if id[0] != 'n' {
		delete(p.inflightS, string(id))
	}
}

// dropQueued empties the queues of a closing peer and returns what they
// held. Called with p.mu held.
func (p *Peer) dropQueued() []*inbound {
	q := append(p.queue, p.notes...)
	p.queue, p.notes = nil, nil
	p.wakeReader()
	return q
}

// ---- handlers ----

// serveQueue serves first (if not nil) and then queued requests, holding
// one handler slot, until the queue is empty; then it gives the slot
// back.
func (p *Peer) serveQueue(first *inbound) {
	for in := first; ; {
		if in != nil {
			p.serveOne(in, true)
		}
		if in = p.nextQueued(); in == nil {
			return
		}
	}
}

// nextQueued returns the next queued request for a goroutine holding a
// slot, or nil after taking the slot back.
func (p *Peer) nextQueued() *inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in := p.popQueue(); in != nil {
		return in
	}
	p.running--
	p.checkDrained()
	p.wakeReader() // a slot is free
	return nil
}

// popQueue takes the oldest queued request, or nil. Called with p.mu held.
func (p *Peer) popQueue() *inbound {
	if len(p.queue) == 0 || p.closing {
		return nil
	}
	in := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	if len(p.queue) == 0 {
		p.flooded = false
	}
	p.wakeReader() // a queue place is free
	return in
}

// serveNotes serves first (if not nil) and then queued notifications, one
// at a time in order, until none is left; then it gives up the role.
func (p *Peer) serveNotes(first *inbound) {
	for in := first; ; {
		if in != nil {
			p.serveOne(in, true)
		}
		if in = p.nextNote(); in == nil {
			return
		}
	}
}

// nextNote returns the next notification, or nil after giving up the
// notification role.
func (p *Peer) nextNote() *inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.notes) > 0 && !p.closing {
		in := p.notes[0]
		p.notes[0] = nil
		p.notes = p.notes[1:]
		if len(p.notes) <= p.cfg.MaxNotifications/2 {
			p.wakeReader() // a reader paused for a place: half are free
		}
		return in
	}
	p.noting = false
	p.checkDrained()
	return nil
}

// serveOne runs a request, notification or batch, writes its answer and
// releases it. eager: a batch starts helpers at once (it does not run on
// the reader).
func (p *Peer) serveOne(in *inbound, eager bool) {
	switch {
	case in.batch != nil:
		p.serveBatch(in, eager)
	case in.env.id == nil:
		p.dispatch(p.ctx, &in.env, &in.req)
		p.releaseIn(in)
	default:
		var res any
		var err error
		if p.cfg.CancelMethod == "" {
			res, err = p.dispatch(p.slotCtx, &in.env, &in.req)
		} else {
			res, err = p.dispatchCancellable(in)
		}
		wb := getBuf()
		wb.grow(responseSize(&in.req, res))
		wb.b = appendResponse(wb.b, &in.req, res, err, int(p.cfg.MaxMessageSize), p.cfg)
		// The id is free again, and the request's bytes given back, before
		// the answer goes out: a caller may reuse the id as soon as it has
		// the answer. A large answer is held in their place until written.
		p.mu.Lock()
		if !p.closing {
			p.untrackID(in.env.id)
		}
		p.unhold(in.size)
		answer := p.holdAnswer(len(wb.b))
		p.mu.Unlock()
		large := in.size >= largeMessage
		in.size = 0
		in.release()
		p.write(wb.b)
		putBuf(wb)
		if large || answer > 0 {
			p.mu.Lock()
			p.unhold(answer)
			if large {
				// A large message's turn ends when its answer is out.
				p.large--
				p.wakeReader()
			}
			p.mu.Unlock()
		}
	}
}

// holdAnswer charges an answer of n bytes, about to be written, to the
// budgets if it is large enough to matter (the count limits bound the
// small ones), and returns what it charged. It never waits: the answer
// exists already. Called with p.mu held.
func (p *Peer) holdAnswer(n int) int64 {
	if n < peerFloor {
		return 0
	}
	need := p.poolNeed(int64(n))
	if need > 0 {
		p.pool.take(need, true)
		p.poolHeld += need
	}
	p.held += int64(n)
	return int64(n)
}

// dispatch finds and runs the handler for env, filling req. (Close looks
// for it on the stack by name: see inHandler.)
//
//go:noinline
func (p *Peer) dispatch(ctx context.Context, env *envelope, req *Request) (any, error) {
	p.enterUser()
	defer p.leaveUser()
	return dispatch(ctx, p.cfg, p, env, req)
}

// ---- handlers calling back their own peer ----

// beginCalling marks a handler as waiting for an answer from this peer:
// slot says it holds a handler slot (else it is the notification handler).
// The reader must not wait for room meanwhile, and if every slot now
// waits, queued requests are served by the waiting handlers. A handler
// with a slot gets the channel ringHelp rings, made on first use: most
// peers never need it.
func (p *Peer) beginCalling(slot bool) (help chan struct{}) {
	p.mu.Lock()
	if slot {
		if p.help == nil {
			p.help = make(chan struct{}, 1)
		}
		help = p.help
		p.calling++
		p.ringHelp()
	} else {
		p.noteCalling = true
	}
	p.wakeReader()
	p.mu.Unlock()
	return help
}

func (p *Peer) endCalling(slot bool) {
	p.mu.Lock()
	if slot {
		p.calling--
	} else {
		p.noteCalling = false
	}
	p.mu.Unlock()
}

// ringHelp rings a waiting handler when requests are queued and every slot
// holder waits on this peer: nobody else would serve them, and one of them
// may be the very callback those handlers wait for. Called with p.mu held.
func (p *Peer) ringHelp() {
	if p.calling > 0 && p.calling == p.running && len(p.queue) > 0 {
		select {
		case p.help <- struct{}{}:
		default:
		}
	}
}

// helpOnce serves one queued request on the goroutine of a handler that
// waits on this peer, with that handler's slot.
func (p *Peer) helpOnce() {
	p.mu.Lock()
	in := p.popQueue()
	if in == nil {
		p.mu.Unlock()
		return
	}
	p.calling--
	p.mu.Unlock()
	p.serveOne(in, true)
	p.mu.Lock()
	p.calling++
	p.ringHelp()
	p.mu.Unlock()
}

// ---- shutdown ----

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
