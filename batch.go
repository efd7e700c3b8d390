package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// A Batch collects calls and notifications to send as one JSON array in one
// WebSocket message. Build it inside Peer.Batch, or with NewBatch and Send.
// A Batch is not safe for concurrent use while it is being built.
type Batch struct {
	p *Peer
	batchItems
}

// batchItems is what Batch and HTTPBatch share: the calls and notifications
// added, and sending them once.
type batchItems struct {
	// items and calls come from listPool and go back to it once the
	// batch is sent: only the calls handed out outlive the batch.
	*batchLists
	// slab is where calls live, allocated a chunk at a time rather than
	// one call at a time: a BatchCall handed out keeps its chunk (at
	// most 256 calls) alive, and no more.
	slab []BatchCall
	sent bool
	n    int // items sent
	// sized remembers how many calls this peer's batches had last (the
	// peer's or HTTPClient's batchSize), to size the first chunk of slab:
	// a program sends batches of about the same size over and over.
	sized *atomic.Int32
}

// batchLists are the lists of a batch being built.
type batchLists struct {
	items []batchItem
	calls []*BatchCall
}

var listPool = sync.Pool{New: func() any {
	// Batches are built to be many calls: start past the smallest
	// growth steps, each a copy with write barriers.
	return &batchLists{items: make([]batchItem, 0, 16), calls: make([]*BatchCall, 0, 16)}
}}

// maxPooledItems bounds the lists kept for the next batch.
const maxPooledItems = 1024

func (b *batchItems) lists() *batchLists {
	if b.batchLists == nil {
		b.batchLists = listPool.Get().(*batchLists)
	}
	return b.batchLists
}

// recycle gives the lists back once the batch is sent.
func (b *batchItems) recycle() {
	l := b.batchLists
	if l == nil {
		return
	}
	b.batchLists = nil
	if cap(l.items) > maxPooledItems {
		return
	}
	clear(l.items)
	clear(l.calls)
	l.items, l.calls = l.items[:0], l.calls[:0]
	listPool.Put(l)
}

func (b *batchItems) addCall(method string, params, result any) *BatchCall {
	if len(b.slab) == cap(b.slab) {
		// A new chunk; the calls handed out still point into the old one.
		n := 2 * cap(b.slab)
		if n == 0 && b.sized != nil {
			n = int(b.sized.Load())
		}
		b.slab = make([]BatchCall, 0, min(max(n, 16), 256))
	}
	b.slab = append(b.slab, BatchCall{Method: method, result: result})
	c := &b.slab[len(b.slab)-1]
	l := b.lists()
	l.items = append(l.items, batchItem{method: method, params: params, call: c})
	l.calls = append(l.calls, c)
	return c
}

func (b *batchItems) addNotify(method string, params any) {
	l := b.lists()
	l.items = append(l.items, batchItem{method: method, params: params})
}

// count is the number of calls and notifications added (and sent).
func (b *batchItems) count() int {
	if b.sent || b.batchLists == nil {
		return b.n
	}
	return len(b.items)
}

// sendOnce runs send, once, and then gives every call an outcome: its own,
// or send's error.
// With an Observer (cfg; nil for none) each item is observed on its own.
func (b *batchItems) sendOnce(ctx context.Context, cfg *config, p *Peer, send func(context.Context) error) error {
	if b.sent {
		return errors.New("wsrpc: batch already sent")
	}
	l := b.lists()
	b.n = len(l.items)
	b.sent = true
	if b.sized != nil && len(l.calls) > 0 {
		b.sized.Store(int32(min(len(l.calls), 256)))
	}
	defer b.recycle()
	var events []*Event
	var ctxs []context.Context // each item's, as its Start returned it
	if cfg != nil && cfg.Observer != nil {
		events = make([]*Event, len(l.items))
		ctxs = make([]context.Context, len(l.items))
		for i, it := range l.items {
			ctxs[i], events[i] = cfg.startOut(ctx, p, it.method, it.call == nil, true, 0)
		}
	}
	err := send(ctx)
	for _, c := range l.calls {
		if err != nil && !c.done {
			c.err = err
		}
		c.done = true
	}
	for i, e := range events {
		if c := l.items[i].call; c != nil {
			cfg.end(ctxs[i], e, c.err)
		} else {
			cfg.end(ctxs[i], e, err)
		}
	}
	return err
}

type batchItem struct {
	method string
	params any
	call   *BatchCall // nil for a notification
}

// BatchCall is the handle of one call in a batch.
type BatchCall struct {
	Method string
	result any
	err    error
	done   bool
}

// Err returns the call's own outcome once the batch has been sent: nil, the
// *Error the other side answered with, or why the batch failed. Before Send
// has returned it reports that the call has no outcome yet.
func (c *BatchCall) Err() error {
	if !c.done {
		return errors.New("wsrpc: batch not sent yet")
	}
	return c.err
}

// NewBatch returns an empty batch for p.
func (p *Peer) NewBatch() *Batch {
	b := &Batch{p: p}
	if p != nil {
		b.sized = &p.batchSize
	}
	return b
}

// Call adds a call of method with params; its result is decoded into result
// (a pointer, or nil) when the batch's answer arrives.
func (b *Batch) Call(method string, params, result any) *BatchCall {
	return b.addCall(method, params, result)
}

// Notify adds a notification of method with params.
func (b *Batch) Notify(method string, params any) { b.addNotify(method, params) }

// Len returns the number of calls and notifications in the batch.
func (b *Batch) Len() int { return b.count() }

// Batch builds a batch with build and sends it when build returns, as one
// message. It returns when every call in it has its outcome (see
// BatchCall.Err), or when ctx ends. A batch of notifications only returns as
// soon as it is written.
//
// The returned error is about the batch as a whole (the peer closed, ctx
// ended, params could not be encoded); each call's own error, such as a
// JSON-RPC error from the other side, is in its BatchCall.
func (p *Peer) Batch(ctx context.Context, build func(b *Batch)) error {
	b := p.NewBatch()
	build(b)
	return b.Send(ctx)
}

// Send sends the batch and waits as Peer.Batch does. A batch is sent once;
// an empty batch sends nothing.
func (b *Batch) Send(ctx context.Context) error {
	var cfg *config
	if b.p != nil {
		cfg = b.p.cfg
	}
	return b.sendOnce(ctx, cfg, b.p, b.send)
}

func (b *Batch) send(ctx context.Context) error {
	p := b.p
	if p == nil {
		return ErrNoPeer
	}
	if len(b.items) == 0 {
		return nil
	}
	if len(b.calls) == 0 {
		return b.sendNotifications(ctx)
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer p.release()
	n := len(b.calls)
	c := p.getCall(n)
	c.firstID = p.nextID.Add(uint64(n)) - uint64(n) + 1
	var err error
	if c.buf, err = b.encode(c.buf, c.firstID, p.cfg.Codec); err != nil {
		p.putCall(c)
		return err
	}
	if err := p.send(ctx, c); err != nil {
		return err
	}
	for i, bc := range b.calls {
		bc.done = true
		if bc.err = c.slots[i].err; bc.err == nil && bc.result != nil {
			if derr := decodeValue(c.result(i), bc.result, p.cfg.Codec); derr != nil {
				bc.err = fmt.Errorf("wsrpc: decoding result of %s: %w", bc.Method, derr)
			}
		}
	}
	p.putCall(c)
	return nil
}

func (b *Batch) sendNotifications(ctx context.Context) error {
	p := b.p
	if err := ctx.Err(); err != nil {
		return err
	}
	wb := getBuf()
	defer putBuf(wb)
	var err error
	if wb.b, err = b.encode(wb.b[:0], 0, p.cfg.Codec); err != nil {
		return err
	}
	if int64(len(wb.b)) > p.cfg.MaxMessageSize {
		return fmt.Errorf("%w: batch of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(wb.b), p.cfg.MaxMessageSize)
	}
	if err := p.Err(); err != nil {
		return err
	}
	return p.write(wb.b)
}

// encode appends the batch as a JSON array, numbering its calls from id.
func (b *batchItems) encode(buf []byte, id uint64, c Codec) ([]byte, error) {
	buf = append(buf, '[')
	// The ids run on from id: its digits are counted up in place rather
	// than formatted again for each call.
	var digits [24]byte
	num := strconv.AppendUint(digits[:0], id, 10)
	// A batch calls the same few methods over and over: a name that is
	// the last one's is copied from where it was encoded.
	var last string
	var lastAt, lastEnd int
	for i, it := range b.items {
		if i > 0 {
			buf = append(buf, ',')
		}
		if it.call != nil {
			buf = append(buf, jsonrpcPrefix+`,"id":`...)
			buf = append(buf, num...)
			num = incDecimal(num)
		} else {
			buf = append(buf, jsonrpcPrefix...)
		}
		buf = append(buf, `,"method":`...)
		if lastEnd > 0 && it.method == last {
			buf = append(buf, buf[lastAt:lastEnd]...)
		} else {
			lastAt = len(buf)
			buf = appendString(buf, it.method)
			last, lastEnd = it.method, len(buf)
		}
		var err error
		if buf, err = appendParams(buf, it.params, c); err != nil {
			return buf, fmt.Errorf("wsrpc: encoding params of %s: %w", it.method, err)
		}
	}
	return append(buf, ']'), nil
}

// incDecimal adds one to the decimal number in d, in place when it has no
// more digits after.
func incDecimal(d []byte) []byte {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] != '9' {
			d[i]++
			return d
		}
		d[i] = '0'
	}
	// All nines: one digit more.
	d = append(d, '0')
	d[0] = '1'
	return d
}

// ---- serving batches ----

// serverBatch is an incoming batch being served: on a peer, its items are
// claimed one at a time by the goroutine that admitted it and by helpers it
// starts while handler slots are free, so items run concurrently, and the
// goroutine that finishes the last item writes the one answer. Over HTTP
// its items are run by the POST's own goroutines (http.go).
type serverBatch struct {
	items   []serverItem
	replies int          // items that get an answer
	next    atomic.Int32 // index of the next unclaimed item
	left    atomic.Int32 // items not finished
	workers atomic.Int32 // goroutines in runItems; the last one out recycles
	p       *Peer
	msg     *msgBuf // the message the items point into
	size    int64   // bytes charged to p's budgets
	// answers are the answers to our own calls that came in the batch,
	// completed together (Peer.completeAll), with taken its scratch.
	answers []envelope
	taken   []takenID
}

// serverItem is one item of an incoming batch and its outcome. An item
// refused before it runs (not a valid request; an answer where none is
// expected) has err set from the start and is not run.
type serverItem struct {
	env   envelope
	req   Request
	res   any
	err   error
	reply bool // a call, or a refused item: it gets an answer
}

var batchPool = sync.Pool{New: func() any { return new(serverBatch) }}

func getBatch(p *Peer) *serverBatch {
	sb := batchPool.Get().(*serverBatch)
	sb.p = p
	return sb
}

// slot appends a zero item and returns its envelope, for the parser to
// fill; took or drop follows.
func (sb *serverBatch) slot() *envelope {
	if n := len(sb.items); n < cap(sb.items) {
		// Zero already: release and drop clear what they leave, and
		// growth leaves zeros beyond the items it copies.
		sb.items = sb.items[:n+1]
	} else {
		sb.items = append(sb.items, serverItem{})
	}
	return &sb.items[len(sb.items)-1].env
}

// drop removes the item slot appended, before took: only its envelope
// has been written, and is zeroed again.
func (sb *serverBatch) drop() {
	sb.items[len(sb.items)-1].env = envelope{}
	sb.items = sb.items[:len(sb.items)-1]
}

// took settles the item slot appended, once parsed.
func (sb *serverBatch) took() {
	it := &sb.items[len(sb.items)-1]
	e := &it.env
	switch {
	case e.invalid != "":
		it.req.ID, it.err = readableID(e), invalidError(e)
	case !e.isRequest():
		it.req.ID, it.err = readableID(e), errNoCall
	}
	it.reply = it.err != nil || e.id != nil
	if it.reply {
		sb.replies++
	}
}

// serveBatch runs the items of in's batch, with helpers while handler slots
// are free. The batch takes over in's buffer and charge, and in is
// recycled; whoever finishes the last item writes the answer and releases
// the batch.
//
// eager: start helpers right away. Otherwise (served inline on the reading
// goroutine) helpers start only when the batch outlives the inline budget.
func (p *Peer) serveBatch(in *inbound, eager bool) {
	p.runItems(prepareBatch(in), eager)
}

// prepareBatch takes in's batch out of in (which it releases), ready to
// run. Its counters must be set before any other goroutine can see the
// batch: handoffCheck adds helpers to the batch the reader serves inline.
func prepareBatch(in *inbound) *serverBatch {
	sb := in.batch
	sb.msg, sb.size = in.msg, in.size
	in.batch, in.msg, in.size = nil, nil, 0
	in.release()
	sb.next.Store(0)
	sb.left.Store(int32(len(sb.items)))
	sb.workers.Store(1)
	return sb
}

// runItems claims and runs items until none is left unclaimed. Before each
// item, while another one waits, it offers the rest to a helper goroutine if
// a handler slot is free.
func (p *Peer) runItems(sb *serverBatch, eager bool) {
	n := len(sb.items)
	defer func() {
		if !eager {
			// Served inline: from now on a handoff must not start
			// helpers for this batch, which may be recycled below.
			p.mu.Lock()
			if p.inlineSB == sb {
				p.inlineSB = nil
			}
			p.mu.Unlock()
		}
		sb.leave()
	}()
	for {
		i := int(sb.next.Add(1)) - 1
		if i >= n {
			return
		}
		if eager && i+1 < n {
			p.startHelper(sb)
		}
		if it := &sb.items[i]; it.err == nil {
			it.res, it.err = p.dispatch(p.slotCtx, &it.env, &it.req)
		}
		if sb.left.Add(-1) == 0 && sb.replies > 0 {
			wb := getBuf()
			wb.b = appendBatchAnswer(wb.b[:0], sb.items, p.cfg.MaxBatchResponse, p.cfg)
			p.mu.Lock()
			answer := p.holdAnswer(len(wb.b))
			p.mu.Unlock()
			p.write(wb.b)
			putBuf(wb)
			if answer > 0 {
				p.mu.Lock()
				p.unhold(answer)
				p.mu.Unlock()
			}
		}
	}
}

// startHelpers starts a helper for each unclaimed item, while slots last.
func (p *Peer) startHelpers(sb *serverBatch) {
	for range len(sb.items) - int(sb.next.Load()) {
		if !p.startHelper(sb) {
			return
		}
	}
}

// startHelper starts a goroutine with a handler slot of its own that runs
// items of sb, then serves the queue; false if no slot is free.
func (p *Peer) startHelper(sb *serverBatch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running >= p.cfg.MaxHandlers {
		return false
	}
	sb.workers.Add(1)
	if !p.launch(func() {
		p.runItems(sb, true)
		p.serveQueue(nil)
	}) {
		sb.workers.Add(-1) // closing; the caller still holds the batch
		return false
	}
	p.running++
	return true
}

// replyAll answers every item of a batch that was not admitted with e.
func (sb *serverBatch) replyAll(p *Peer, e *Error) {
	if sb.replies == 0 {
		return
	}
	for i := range sb.items {
		it := &sb.items[i]
		it.req.ID = readableID(&it.env)
		it.err = e
	}
	wb := getBuf()
	wb.b = appendBatchAnswer(wb.b[:0], sb.items, p.cfg.MaxBatchResponse, p.cfg)
	p.write(wb.b)
	putBuf(wb)
}

// leave drops a worker's reference; the last one out recycles the batch.
func (sb *serverBatch) leave() {
	if sb.workers.Add(-1) == 0 {
		if p := sb.p; p != nil && sb.size > 0 {
			p.mu.Lock()
			p.unholdWork(sb.size)
			p.mu.Unlock()
		}
		sb.release()
	}
}

func (sb *serverBatch) release() {
	if sb.msg != nil {
		putBuf(sb.msg)
	}
	clear(sb.items)
	sb.items, sb.replies = sb.items[:0], 0
	clear(sb.answers)
	sb.answers = sb.answers[:0]
	sb.p, sb.msg, sb.size = nil, nil, 0
	batchPool.Put(sb)
}
