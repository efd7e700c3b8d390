package wsrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
)

// call is one outgoing request, or one batch of them, awaiting answers. Its
// ids are firstID .. firstID+len(slots)-1. Each id is completed exactly once:
// by its response, by the caller giving up, or by the peer closing. Whoever
// completes the last one signals done (unless it is the waiter itself).
type call struct {
	firstID   uint64
	slots     []slot
	remaining atomic.Int32
	done      chan struct{}
	arena     []byte  // raw results, appended by the reading goroutine
	buf       []byte  // the request message
	msg       *msgBuf // a response message handed over whole (see complete)
	selfRead  bool    // the caller may read the connection itself
	open      int     // a batch's ids not yet taken (Peer.mu)
}

type slot struct {
	off, n int    // result in arena
	raw    []byte // or: result in msg, handed over by the reader
	err    error  // *Error from the other side, or ErrClosed
	// taken: the id of a batch's slot has been completed, or is being
	// (Peer.mu); a single call's id is in Peer.pending instead.
	taken bool
}

// newCall is the New of a peer's call pool. Each peer pools its own calls:
// a call holds a channel, and a channel made inside a testing/synctest
// bubble must never be reused outside it, which a process-wide pool would
// do.
func newCall() any { return &call{done: make(chan struct{}, 1)} }

func (p *Peer) getCall(n int) *call {
	c := p.calls.Get().(*call)
	if cap(c.slots) < n {
		c.slots = make([]slot, n)
	}
	c.slots = c.slots[:n]
	clear(c.slots)
	c.arena = c.arena[:0]
	c.buf = c.buf[:0]
	c.remaining.Store(int32(n))
	return c
}

func (p *Peer) putCall(c *call) {
	if c.msg != nil {
		putBuf(c.msg)
		c.msg = nil
	}
	if cap(c.arena) > maxPooledBuf {
		putLarge(c.arena)
		c.arena = nil
	}
	if cap(c.buf) > maxPooledBuf {
		putLarge(c.buf)
		c.buf = nil
	}
	p.calls.Put(c)
}

func (c *call) result(i int) []byte {
	s := c.slots[i]
	if s.raw != nil {
		return s.raw
	}
	return c.arena[s.off : s.off+s.n]
}

// Call calls method on the other side with params (nil for none; anything
// that encodes to a JSON array or object) and decodes the result into result
// (a pointer; nil to discard it).
//
// ctx bounds the wait: when it ends, Call returns ctx.Err() at once, a
// late response is dropped, and the connection stays up; with a
// CancelMethod in the options the other side is told, so that its handler
// stops too. A JSON-RPC error
// from the other side is returned as an *Error; a closed peer as an error
// wrapping ErrClosed.
func (p *Peer) Call(ctx context.Context, method string, params, result any) error {
	if p == nil {
		return ErrNoPeer
	}
	if p.cfg.Observer == nil {
		return p.call(ctx, method, params, result, nil)
	}
	ctx, e := p.cfg.startOut(ctx, p, method, false, false, 0)
	err := p.call(ctx, method, params, result, e)
	p.cfg.end(ctx, e, err)
	return err
}

// call is Call; e, when not nil, is given the sizes of the request and
// the response.
func (p *Peer) call(ctx context.Context, method string, params, result any, e *Event) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer p.release()
	c := p.getCall(1)
	c.firstID = p.nextID.Add(1)
	var err error
	c.buf = appendRequestHead(c.buf, c.firstID, method)
	if c.buf, err = appendParams(c.buf, params, p.cfg.Codec); err != nil {
		p.putCall(c)
		return fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	if e != nil {
		e.RequestBytes = len(c.buf)
		e.ID = strconv.AppendUint(nil, c.firstID, 10)
	}
	if err := p.send(ctx, c); err != nil {
		return err
	}
	err = c.slots[0].err
	if e != nil && err == nil {
		e.ResponseBytes = len(c.result(0))
	}
	if err == nil && result != nil {
		if derr := decodeValue(c.result(0), result, p.cfg.Codec); derr != nil {
			err = fmt.Errorf("wsrpc: decoding result of %s: %w", method, derr)
		}
	}
	p.putCall(c)
	return err
}

// Call calls method through c (a *Peer or an *HTTPClient) and returns its
// result decoded as an R: c.Call for callers who prefer a return value to
// an out parameter.
func Call[R any](ctx context.Context, c Caller, method string, params any) (R, error) {
	var r R
	err := c.Call(ctx, method, params, &r)
	return r, err
}

// acquire takes one of the MaxPending slots, waiting for ctx if none is
// free.
func (p *Peer) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return p.Err()
	}
}

func (p *Peer) release() { <-p.slots }

// send registers c's ids, writes c.buf and waits until every id is
// completed or ctx ends. On a nil return, c's slots hold the outcomes and the
// caller owns c; on an error, c has been recycled.
func (p *Peer) send(ctx context.Context, c *call) error {
	if n := len(c.buf); int64(n) > p.cfg.MaxMessageSize {
		p.putCall(c) // c may be another caller's from here on
		return fmt.Errorf("%w: request of %d bytes exceeds the limit of %d", ErrMessageTooBig, n, p.cfg.MaxMessageSize)
	}
	if err := ctx.Err(); err != nil {
		p.putCall(c) // ended before anything was sent
		return err
	}
	handler := PeerFromContext(ctx) == p
	// A caller who is not a handler of this peer may read its own answer
	// (see roleCaller): with a ctx that cannot end, or over a transport
	// whose reads can be stopped when it ends.
	cancellable := ctx.Done() != nil
	c.selfRead = !handler && (!cancellable || p.conn.interruptible())
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		p.putCall(c)
		return p.err
	}
	p.addPending(c)
	p.wakeReader() // a reader paused for room must now read: see mustRead
	p.mu.Unlock()

	// A failed write closes the peer, which completes c's ids with
	// ErrClosed; the wait below sees that. A caller whose ctx ends while
	// it waits for its turn to write gives up without writing.
	if p.writeCtx(ctx.Done(), c.buf) == errWriteAbandoned {
		p.abandon(c, false)
		return ctx.Err()
	}

	switch {
	case handler:
		return p.waitAsHandler(ctx, c)
	case !p.roleFree.Load():
		// Someone reads, and will not stop before this call is answered.
	case c.selfRead && !cancellable:
		if act, _ := p.roleStep(evCallerWants, 0, nil); act == actRead {
			p.readFor(c, false)
		}
	case c.selfRead:
		if act, _ := p.roleStep(evCallerWants, 0, nil); act == actRead {
			// Caller mode first: an interrupt outside it does nothing,
			// and AfterFunc runs at once if ctx has ended already.
			if !p.conn.callerMode(true) {
				// The stream stands inside a frame: as when readFor's
				// read stops, a reader takes over (this call is
				// pending) and the caller waits below.
				p.roleStep(evCallerDone, 0, nil)
				break
			}
			stop := context.AfterFunc(ctx, p.conn.interrupt)
			p.readFor(c, true)
			stop()
		}
	default:
		p.needReader(false)
	}
	if !cancellable {
		<-c.done
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		p.abandon(c, true)
		return ctx.Err()
	}
}

// waitAsHandler waits for the answers to c, made by a handler of this very
// peer. The answer must be read by another goroutine, at once if this
// handler is being served on the reader. A request handler keeps its slot
// while it waits, and when every slot is held by such a waiting handler it
// serves queued requests meanwhile (serve.go: ringHelp).
func (p *Peer) waitAsHandler(ctx context.Context, c *call) error {
	slot := ctx.Value(slotKey{}) == p
	p.needReader(true)
	help := p.beginCalling(slot)
	defer p.endCalling(slot)
	for {
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			p.abandon(c, true)
			return ctx.Err()
		case <-help:
			p.helpOnce()
		}
	}
}

// abandon completes c's unanswered ids on behalf of a caller that stopped
// waiting, then recycles c once no one else can touch it. sent: the
// request went out, so the other side is told (CancelMethod).
func (p *Peer) abandon(c *call, sent bool) {
	removed := int32(0)
	var cancel []uint64
	p.mu.Lock()
	tell := sent && p.cfg.CancelMethod != "" && !p.closing
	if len(c.slots) == 1 {
		if p.pending[c.firstID] == c {
			delete(p.pending, c.firstID)
			removed++
			if tell {
				cancel = append(cancel, c.firstID)
			}
		}
	} else if p.dropBatch(c) {
		removed = c.takeRest(func(s *slot, id uint64) {
			if tell {
				cancel = append(cancel, id)
			}
		})
	}
	p.mu.Unlock()
	p.cancelOutgoing(cancel)
	if removed == 0 || c.remaining.Add(-removed) != 0 {
		// The reader or shutdown completes the last id and signals.
		<-c.done
	}
	p.putCall(c)
}

// complete routes a response to the call that issued its id. A response to
// an id never issued, already answered, or of another type (the string "7"
// for 7) completes nothing.
//
// msg is the message env points into, when the caller of complete can give
// it away: a large result of a single call then stays where it is, instead
// of being copied, and complete reports that it kept msg.
//
// idle reports that the call completed was the last one pending, and that
// its caller may read its answers itself: the reader can step aside.
func (p *Peer) complete(env *envelope, msg *msgBuf) (kept, idle bool) {
	p.mu.Lock()
	c, id := p.takeID(env)
	idle = c != nil && !p.awaiting() && c.selfRead
	p.mu.Unlock()
	if c == nil {
		p.cfg.log.Debug("wsrpc: dropped a response to no pending call", "id", string(env.id))
		return false, false
	}
	return p.fill(c, id, env, msg), idle
}

// completeAll is complete for the answers in one batch message: their ids
// are taken under one lock. to is scratch of len(es).
func (p *Peer) completeAll(es []envelope, to []takenID) (idle bool) {
	p.mu.Lock()
	for i := range es {
		t := &to[i]
		t.c, t.id = p.takeID(&es[i])
		idle = idle || t.c != nil && t.c.selfRead
	}
	idle = idle && !p.awaiting()
	p.mu.Unlock()
	for i, t := range to {
		if t.c == nil {
			p.cfg.log.Debug("wsrpc: dropped a response to no pending call", "id", string(es[i].id))
			continue
		}
		p.fill(t.c, t.id, &es[i], nil)
	}
	clear(to)
	return idle
}

// takenID is an id taken from the call that issued it.
type takenID struct {
	c  *call
	id uint64
}

// takeID takes the id of the answer env from the call that issued it, if
// it awaits that answer: then only the caller of takeID writes its slot.
// Called with p.mu held.
func (p *Peer) takeID(env *envelope) (*call, uint64) {
	id, ok := parseUintID(env.id)
	if !ok {
		return nil, 0
	}
	c := p.pending[id]
	if c != nil {
		delete(p.pending, id)
	} else if c = p.takeBatchID(id); c != nil && c.open == 0 {
		p.dropBatch(c)
	}
	return c, id
}

// fill writes the answer env into the slot of id, which the caller has
// taken, and signals c's waiter after the last one. A large result of a
// single call stays in msg (if not nil), which c then keeps.
func (p *Peer) fill(c *call, id uint64, env *envelope, msg *msgBuf) (kept bool) {
	s := &c.slots[id-c.firstID]
	if env.err != nil {
		s.err = decodeRemoteError(env.err)
	} else if msg != nil && len(c.slots) == 1 && len(env.result) >= handOverMin {
		s.raw = env.result
		c.msg = msg
		kept = true
	} else {
		s.off = len(c.arena)
		c.arena = append(c.arena, env.result...)
		s.n = len(env.result)
	}
	if c.remaining.Add(-1) == 0 {
		c.done <- struct{}{}
	}
	return kept
}

// addPending registers c's ids as awaiting answers. Called with p.mu held.
func (p *Peer) addPending(c *call) {
	if len(c.slots) == 1 {
		p.pending[c.firstID] = c
		return
	}
	// A batch is registered as a whole: one entry, not a map insert and
	// delete per id.
	c.open = len(c.slots)
	p.batches = append(p.batches, c)
}

// takeBatchID finds the batch that issued id and takes the id, if it is
// not taken yet. Called with p.mu held.
func (p *Peer) takeBatchID(id uint64) *call {
	// Few batches are in flight at once, and the answers of one come
	// together: the newest first.
	for i := len(p.batches) - 1; i >= 0; i-- {
		c := p.batches[i]
		if id < c.firstID || id >= c.firstID+uint64(len(c.slots)) {
			continue
		}
		s := &c.slots[id-c.firstID]
		if s.taken {
			return nil
		}
		s.taken = true
		c.open--
		return c
	}
	return nil
}

// takeRest takes the ids of batch c not taken yet, calling f with each
// one's slot, and returns how many it took. Its caller has just taken c
// out of p.batches, under p.mu, so no one else takes them.
func (c *call) takeRest(f func(s *slot, id uint64)) int32 {
	n := int32(0)
	for i := range c.slots {
		if s := &c.slots[i]; !s.taken {
			s.taken = true
			f(s, c.firstID+uint64(i))
			n++
		}
	}
	return n
}

// dropBatch removes c from the batches in flight; false if it was not
// there. Called with p.mu held.
func (p *Peer) dropBatch(c *call) bool {
	for i, b := range p.batches {
		if b == c {
			last := len(p.batches) - 1
			p.batches[i] = p.batches[last]
			p.batches[last] = nil
			p.batches = p.batches[:last]
			return true
		}
	}
	return false
}

// awaiting reports whether any call awaits an answer. Called with p.mu
// held.
func (p *Peer) awaiting() bool { return len(p.pending) > 0 || len(p.batches) > 0 }

// handOverMin is the result size from which the reader gives its message
// buffer to the call rather than copying the result out of it.
const handOverMin = 4 << 10

// decodeRemoteError decodes an error object; a malformed one still becomes
// an *Error, so callers always get one.
func decodeRemoteError(raw []byte) *Error {
	var w struct {
		Code    *int64          `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &w); err != nil || w.Code == nil {
		return &Error{Code: CodeInternalError, Message: "malformed error object", Data: append(json.RawMessage(nil), raw...)}
	}
	e := &Error{Code: *w.Code, Message: w.Message}
	if len(w.Data) > 0 {
		e.Data = w.Data
	}
	return e
}

// Notify sends a notification: method with params, no response expected.
// It returns once the message is written. ctx is only checked before
// writing: a write in progress is bounded by Limits.WriteTimeout, never by
// ctx, so that cancelling cannot break the connection mid-message.
func (p *Peer) Notify(ctx context.Context, method string, params any) error {
	if p == nil {
		return ErrNoPeer
	}
	if p.cfg.Observer == nil {
		return p.notify(ctx, method, params, nil)
	}
	ctx, e := p.cfg.startOut(ctx, p, method, true, false, 0)
	err := p.notify(ctx, method, params, e)
	p.cfg.end(ctx, e, err)
	return err
}

func (p *Peer) notify(ctx context.Context, method string, params any, e *Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.Err(); err != nil {
		return err
	}
	wb := getBuf()
	defer putBuf(wb)
	wb.b = appendNotificationHead(wb.b[:0], method)
	var err error
	if wb.b, err = appendParams(wb.b, params, p.cfg.Codec); err != nil {
		return fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	if int64(len(wb.b)) > p.cfg.MaxMessageSize {
		return fmt.Errorf("%w: notification of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(wb.b), p.cfg.MaxMessageSize)
	}
	if e != nil {
		e.RequestBytes = len(wb.b)
	}
	if err := p.writeCtx(ctx.Done(), wb.b); err != errWriteAbandoned {
		return err
	}
	return ctx.Err()
}
