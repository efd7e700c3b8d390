package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"strconv"
	"time"
)

// This file is typed streams: a subscription whose values the serving side
// pushes, with credit-based flow control so that both ends stay bounded.
// The wire format is in the Streams section of the package documentation.
// Every stream message is a notification acted on as it is read (route),
// never queued behind other work; an idle stream holds no goroutine.

// The notifications of the stream protocol. Names beginning with "$/stream."
// are wsrpc's: a table's methods of that name are never reached.
const (
	streamPrefix = "$/stream."
	streamNext   = streamPrefix + "next"   // serving → subscriber: {"id", "value"}
	streamEnd    = streamPrefix + "end"    // serving → subscriber: {"id", "error"?}
	streamCredit = streamPrefix + "credit" // subscriber → serving: {"id", "n", "bytes"}
	streamCancel = streamPrefix + "cancel" // subscriber → serving: {"id"}
)

var (
	// ErrStreamClosed is returned by Sink.Send once the stream has ended;
	// the error also wraps why (ErrUnsubscribed, ErrClosed, ...).
	ErrStreamClosed = errors.New("wsrpc: stream closed")
	// ErrUnsubscribed is why a stream ended when its subscriber
	// unsubscribed (Sink.Err).
	ErrUnsubscribed = errors.New("wsrpc: unsubscribed")
	// ErrStreamOverflow ends a subscription whose buffer was full under
	// OverflowEnd, or whose serving side sent more than it was granted.
	ErrStreamOverflow = errors.New("wsrpc: stream overflow: the subscriber's buffer is full")
)

// Overflow says what a subscription does when values come faster than they
// are taken (SubscribeOptions.Overflow).
type Overflow int

const (
	// OverflowBlock makes the serving side wait: the subscriber grants
	// credit for Buffer values and MaxBytes bytes, and gives it back as
	// values are taken, so Sink.Send blocks (bounded by its ctx) while
	// the subscriber's buffer is full. Backpressure across the socket,
	// and nothing is lost. The default.
	OverflowBlock Overflow = iota
	// OverflowDropOldest lets the serving side send freely; when the
	// buffer is full the oldest value is dropped, counted by
	// Subscription.Dropped.
	OverflowDropOldest
	// OverflowEnd lets the serving side send freely; when the buffer is
	// full the subscription ends with ErrStreamOverflow and unsubscribes.
	OverflowEnd
)

// Defaults of SubscribeOptions.
const (
	DefaultStreamBuffer   = 64
	DefaultStreamMaxBytes = 1 << 20
)

// SubscribeOptions configure a subscription. A nil pointer and every zero
// field mean the default.
type SubscribeOptions struct {
	// Buffer bounds the values received and not yet taken. Default 64.
	Buffer int
	// MaxBytes bounds their bytes (as JSON). Under OverflowBlock it is
	// also the byte credit granted, counted in whole $/stream.next
	// messages, which the serving side may overshoot by one message.
	// Default 1 MiB.
	MaxBytes int64
	// Overflow says what happens when the buffer is full. Default
	// OverflowBlock.
	Overflow Overflow
}

// Stream declares a stream: subscribed to with params P, its values are Ts.
// Declare it once, in a package both sides import:
//
//	var Ticks = wsrpc.NewStream[TickArgs, Tick]("ticks")
//
// The serving side implements it with Register (a function that produces
// the values) or RegisterPush (a sink kept and fed from elsewhere); the
// other side subscribes with Subscribe. Either side of a connection may
// serve streams or subscribe. A Stream is a small value, safe to copy.
type Stream[P, T any] struct {
	name  string
	shape paramsShape
	doc   docs
}

// NewStream declares the stream name. See NewMethod for the checks.
func NewStream[P, T any](name string) Stream[P, T] {
	if name == "" {
		panic("wsrpc: empty method name")
	}
	return Stream[P, T]{name: name, shape: shapeOf[P]()}
}

// Name returns the method name subscriptions are made with.
func (s Stream[P, T]) Name() string { return s.name }

// Doc returns a copy of s with a one-line summary. See Method.Doc.
func (s Stream[P, T]) Doc(summary string) Stream[P, T] {
	s.doc.summary = summary
	return s
}

func (s Stream[P, T]) describe() *MethodInfo {
	mi := info[P, T](s.name)
	mi.Stream, mi.Summary = true, s.doc.summary
	if mi.Result == nil {
		mi.Result = reflect.TypeFor[T]()
	}
	return mi
}

// Register serves the stream on t with fn, which produces the values of
// one subscription: it runs on a goroutine of its own once the
// subscription is answered, sends with sink.Send, and the stream ends when
// it returns, with its error (nil: a normal end; an *Error goes to the
// subscriber as is, anything else as an internal error). Its ctx ends when
// the stream does: the subscriber unsubscribed, or the peer closed. The
// goroutine counts as a handler of the peer: Close waits for it.
//
// Middleware and guards run on the subscribe call, before anything else:
// a refused subscription never reaches fn.
func (s Stream[P, T]) Register(t *Methods, fn func(ctx context.Context, params P, sink *Sink[T]) error, mw ...Middleware) {
	register(t, s.describe(), func(ctx context.Context, params P) (string, error) {
		st, err := newSink(ctx)
		if err != nil {
			return "", err
		}
		p := st.p
		p.mu.Lock()
		launched := p.launch(func() {
			p.enterUser()
			err := fn(st.ctx, params, &Sink[T]{st: st})
			p.leaveUser()
			st.end(err, nil, true)
		})
		p.mu.Unlock()
		if !launched {
			st.end(nil, p.Err(), false)
			return "", p.Err()
		}
		return st.id, nil
	}, mw)
}

// RegisterPush serves the stream on t with fn, which runs inside the
// subscribe call: it checks params, keeps sink (in a room's list, say),
// and returns. An error refuses the subscription. Values are sent later,
// from any goroutine, with sink.Send; the stream lasts until sink.Close,
// the subscriber unsubscribing, or the peer closing (sink.Done tells), and
// holds no goroutine meanwhile. fn must not wait for sink.Send: values go
// out only once the subscriber has the answer to its subscribe call.
func (s Stream[P, T]) RegisterPush(t *Methods, fn func(ctx context.Context, params P, sink *Sink[T]) error, mw ...Middleware) {
	register(t, s.describe(), func(ctx context.Context, params P) (string, error) {
		st, err := newSink(ctx)
		if err != nil {
			return "", err
		}
		if err := fn(ctx, params, &Sink[T]{st: st}); err != nil {
			st.end(nil, err, false)
			return "", err
		}
		return st.id, nil
	}, mw)
}

// Subscribe subscribes to the stream on p's other side with params. ctx
// bounds the subscribe call only; the subscription lasts until it ends
// (the serving side ends it, Close, or the peer closes).
func (s Stream[P, T]) Subscribe(ctx context.Context, p *Peer, params P, opts *SubscribeOptions) (*Subscription[T], error) {
	if p == nil {
		return nil, ErrNoPeer
	}
	var id string
	if err := p.Call(ctx, s.name, s.shape.wire(params), &id); err != nil {
		return nil, err
	}
	st := newSub(p, id, opts)
	p.mu.Lock()
	switch {
	case p.closing:
		p.mu.Unlock()
		return nil, p.Err()
	case p.streams.subs[id] != nil:
		p.mu.Unlock()
		return nil, fmt.Errorf("wsrpc: subscribing to %s: the other side answered an id in use (%q)", s.name, id)
	}
	if p.streams.subs == nil {
		p.streams.subs = map[string]*subState{}
	}
	p.streams.subs[id] = st
	p.mu.Unlock()
	n, bytes := int64(-1), int64(0)
	if st.policy == OverflowBlock {
		n, bytes = int64(st.max), st.maxBytes
	}
	if err := p.write(streamMsg(streamCredit, id, n, bytes)); err != nil {
		return nil, err
	}
	return &Subscription[T]{st: st}, nil
}

// ---- the serving side ----

// A Sink sends the values of one subscription. Its methods are safe for
// concurrent use.
type Sink[T any] struct {
	st *sinkState
}

type sinkState struct {
	p      *Peer
	id     string
	ctx    context.Context // ends with the stream
	cancel context.CancelFunc
	done   chan struct{}

	// Guarded by Peer.mu.
	active bool  // a credit came: the subscriber has the id
	credit int64 // values it may still send; -1: no limit
	bytes  int64 // bytes it may still send (may go below 0 by one message)
	ended  bool
	endErr error         // sent in the end message
	why    error         // Sink.Err
	wake   chan struct{} // closed when credit comes or the stream ends
	// idle ends a stream whose subscriber sends no first credit (it gave
	// up before the answer came) within Limits.MessageTimeout.
	idle *time.Timer
}

// newSink makes the sink of a subscription on the peer of ctx, within
// Limits.MaxStreams.
func newSink(ctx context.Context) (*sinkState, error) {
	p := PeerFromContext(ctx)
	if p == nil {
		return nil, errNoStreamPeer
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, p.err
	}
	if len(p.streams.sinks) >= p.cfg.MaxStreams {
		return nil, errTooManyStreams
	}
	p.streams.next++
	st := &sinkState{p: p, id: "s" + strconv.FormatUint(p.streams.next, 10), done: make(chan struct{})}
	st.ctx, st.cancel = context.WithCancel(p.ctx)
	if p.streams.sinks == nil {
		p.streams.sinks = map[string]*sinkState{}
	}
	p.streams.sinks[st.id] = st
	st.idle = time.AfterFunc(p.cfg.MessageTimeout, func() {
		st.end(nil, fmt.Errorf("%w: no credit within %v of the answer", ErrUnsubscribed, p.cfg.MessageTimeout), false)
	})
	return st, nil
}

var (
	errNoStreamPeer   = &Error{Code: CodeInvalidRequest, Message: "invalid request: streams need a WebSocket connection"}
	errTooManyStreams = &Error{Code: CodeServerBusy, Message: "server busy: too many streams"}
)

// ID returns the subscription's id, as the subscriber knows it.
func (s *Sink[T]) ID() string { return s.st.id }

// Context returns a context that ends when the stream does.
func (s *Sink[T]) Context() context.Context { return s.st.ctx }

// Done returns a channel closed when the stream has ended.
func (s *Sink[T]) Done() <-chan struct{} { return s.st.done }

// Err returns why the stream ended: nil while it runs, and after Close;
// ErrUnsubscribed when the subscriber left; an error wrapping ErrClosed
// when the peer closed.
func (s *Sink[T]) Err() error {
	p := s.st.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.st.why
}

// Send sends v to the subscriber. It waits, bounded by ctx, for the
// subscriber's credit (see OverflowBlock), and for its turn to write. It
// fails with an error wrapping ErrStreamClosed once the stream has ended.
func (s *Sink[T]) Send(ctx context.Context, v T) error {
	st := s.st
	p := st.p
	wb := getBuf()
	defer putBuf(wb)
	wb.b = appendNotificationHead(wb.b[:0], streamNext)
	wb.b = append(wb.b, `,"params":{"id":`...)
	wb.b = appendString(wb.b, st.id)
	wb.b = append(wb.b, `,"value":`...)
	var err error
	if wb.b, err = appendValue(wb.b, v, p.cfg.Codec); err != nil {
		return fmt.Errorf("wsrpc: encoding a value of stream %s: %w", st.id, err)
	}
	wb.b = append(wb.b, "}}"...)
	if int64(len(wb.b)) > p.cfg.MaxMessageSize {
		return fmt.Errorf("%w: stream value of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(wb.b), p.cfg.MaxMessageSize)
	}
	if err := st.take(ctx, int64(len(wb.b))); err != nil {
		return err
	}
	if err := p.writeCtx(ctx.Done(), wb.b); err != nil {
		if err == errWriteAbandoned {
			st.refund(int64(len(wb.b)))
			return ctx.Err()
		}
		return err
	}
	return nil
}

// Close ends the stream; err (nil for a normal end) goes to the
// subscriber: an *Error as is, anything else as an internal error. Later
// calls do nothing.
func (s *Sink[T]) Close(err error) { s.st.end(err, nil, true) }

// take waits for credit to send n bytes and takes it.
func (st *sinkState) take(ctx context.Context, n int64) error {
	p := st.p
	p.mu.Lock()
	for {
		switch {
		case st.ended:
			err := fmt.Errorf("%w: %w", ErrStreamClosed, cmpErr(st.why, io.EOF))
			p.mu.Unlock()
			return err
		case st.active && st.credit < 0:
			p.mu.Unlock()
			return nil
		case st.active && st.credit > 0 && st.bytes > 0:
			st.credit--
			st.bytes -= n
			p.mu.Unlock()
			return nil
		}
		if err := p.await(ctx, &st.wake); err != nil {
			return err
		}
	}
}

// await waits, with p.mu held, until *wake is closed (it makes the channel
// if none waits yet) or ctx ends. p.mu is held again on a nil return, and
// released on ctx's error.
func (p *Peer) await(ctx context.Context, wake *chan struct{}) error {
	if *wake == nil {
		*wake = make(chan struct{})
	}
	w := *wake
	p.mu.Unlock()
	select {
	case <-w:
		p.mu.Lock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// refund gives back the credit of a value not sent after all.
func (st *sinkState) refund(n int64) {
	p := st.p
	p.mu.Lock()
	if st.credit >= 0 {
		st.credit++
		st.bytes += n
	}
	st.wakeLocked()
	p.mu.Unlock()
}

func (st *sinkState) wakeLocked() {
	if st.wake != nil {
		close(st.wake)
		st.wake = nil
	}
}

// end ends the stream, once: endErr is the end message's error, why is
// what Err reports. notify: tell the subscriber (once it has the id; an
// end before that waits for its first credit).
func (st *sinkState) end(endErr, why error, notify bool) {
	p := st.p
	p.mu.Lock()
	if !st.endLocked(why) {
		p.mu.Unlock()
		return
	}
	st.endErr = endErr
	send := notify && st.active
	if !notify || st.active {
		delete(p.streams.sinks, st.id)
	}
	p.mu.Unlock()
	if send {
		p.write(st.endMessage())
	}
}

// endLocked marks the stream ended, why being what Err reports, and wakes
// whatever waits on it; false if it had ended already. Called with p.mu
// held: cancelling a context runs no user code on this goroutine.
func (st *sinkState) endLocked(why error) bool {
	if st.ended {
		return false
	}
	st.ended, st.why = true, why
	st.idle.Stop()
	st.wakeLocked()
	close(st.done)
	st.cancel()
	return true
}

func (st *sinkState) endMessage() []byte {
	b := appendNotificationHead(nil, streamEnd)
	b = append(b, `,"params":{"id":`...)
	b = appendString(b, st.id)
	if st.endErr != nil {
		e := toWireError(st.endErr)
		if e == ErrInternal {
			st.p.cfg.log.Error("wsrpc: stream ended with an error", "stream", st.id, "err", st.endErr)
		}
		b = append(b, `,"error":`...)
		b = appendErrorObject(b, e)
	}
	return append(b, "}}"...)
}

// ---- the subscribing side ----

// A Subscription receives the values of a stream. Next and All take them
// in order; Close unsubscribes. Its methods are safe for concurrent use,
// though values go to one taker each.
type Subscription[T any] struct {
	st *subState
}

type subState struct {
	p        *Peer
	id       string
	policy   Overflow
	max      int
	maxBytes int64

	// Guarded by Peer.mu.
	buf       []streamValue // values received, not yet taken
	bytes     int64         // their bytes (values only: what MaxBytes bounds)
	dropped   uint64
	ended     bool
	err       error // why it ended: io.EOF for a normal end
	wake      chan struct{}
	owedN     int // credit to give back (OverflowBlock)
	owedBytes int64
}

func newSub(p *Peer, id string, opts *SubscribeOptions) *subState {
	st := &subState{p: p, id: id, max: DefaultStreamBuffer, maxBytes: DefaultStreamMaxBytes}
	if opts != nil {
		st.policy = opts.Overflow
		if opts.Buffer > 0 {
			st.max = opts.Buffer
		}
		if opts.MaxBytes > 0 {
			st.maxBytes = opts.MaxBytes
		}
	}
	return st
}

// streamValue is a value received, and the size of the message it came
// in: the credit it takes, and gives back once taken.
type streamValue struct {
	v   []byte
	msg int64
}

// ID returns the subscription's id.
func (s *Subscription[T]) ID() string { return s.st.id }

// Dropped returns how many values OverflowDropOldest has dropped.
func (s *Subscription[T]) Dropped() uint64 {
	p := s.st.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.st.dropped
}

// Next returns the next value, waiting for it as long as ctx allows. Once
// the stream has ended and every value is taken it returns io.EOF for a
// normal end (or after Close), the serving side's *Error, ErrStreamOverflow,
// or an error wrapping ErrClosed. A value that cannot be decoded into a T
// is returned as an error, and Next goes on with the next one.
func (s *Subscription[T]) Next(ctx context.Context) (T, error) {
	var v T
	raw, err := s.st.take(ctx)
	if err != nil {
		return v, err
	}
	if err := decodeValue(raw, &v, s.st.p.cfg.Codec); err != nil {
		return v, fmt.Errorf("wsrpc: decoding a value of stream %s: %w", s.st.id, err)
	}
	return v, nil
}

// All returns an iterator over the values, for range: it ends after the
// last value of a normally ended stream, or after yielding the error that
// ended it. It waits for values without a deadline: Close the
// subscription (from another goroutine) to stop it, or use Next with a
// context.
func (s *Subscription[T]) All() iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			v, err := s.Next(context.Background())
			if err == io.EOF || !yield(v, err) {
				return
			}
			if err != nil && s.st.over() {
				return
			}
		}
	}
}

// Close unsubscribes: the serving side is told, and Next returns io.EOF
// once the values already received are taken. Later calls do nothing.
func (s *Subscription[T]) Close() error {
	st := s.st
	if !st.finish(io.EOF) {
		return nil
	}
	return st.p.write(streamMsg(streamCancel, st.id, 0, 0))
}

// take waits for the next value.
func (st *subState) take(ctx context.Context) ([]byte, error) {
	p := st.p
	p.mu.Lock()
	for len(st.buf) == 0 {
		if st.ended {
			err := st.err
			p.mu.Unlock()
			return nil, err
		}
		if err := p.await(ctx, &st.wake); err != nil {
			return nil, err
		}
	}
	sv := st.buf[0]
	v := sv.v
	st.buf[0] = streamValue{}
	st.buf = st.buf[1:]
	st.bytes -= int64(len(v))
	var credit []byte
	if st.policy == OverflowBlock && !st.ended {
		st.owedN++
		st.owedBytes += sv.msg
		if st.owedN*2 >= st.max || st.owedBytes*2 >= st.maxBytes {
			credit = streamMsg(streamCredit, st.id, int64(st.owedN), st.owedBytes)
			st.owedN, st.owedBytes = 0, 0
		}
	}
	p.mu.Unlock()
	if credit != nil {
		// A failed write closes the peer, which ends the subscription.
		p.write(credit)
	}
	return v, nil
}

// over reports whether the subscription has ended and its values are all
// taken.
func (st *subState) over() bool {
	st.p.mu.Lock()
	defer st.p.mu.Unlock()
	return st.ended && len(st.buf) == 0
}

// finish ends the subscription with err, unless it has ended; it reports
// whether this call ended it.
func (st *subState) finish(err error) bool {
	p := st.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return st.finishLocked(err)
}

func (st *subState) finishLocked(err error) bool {
	if st.ended {
		return false
	}
	st.ended, st.err = true, err
	if st.p.streams.subs[st.id] == st {
		delete(st.p.streams.subs, st.id)
	}
	if st.wake != nil {
		close(st.wake)
		st.wake = nil
	}
	return true
}

// ---- on the reader ----

// streams is a peer's stream state, guarded by Peer.mu.
type streams struct {
	next  uint64                // ids of the sinks
	sinks map[string]*sinkState // served
	subs  map[string]*subState  // subscribed to
}

// endStreams ends every stream of a closing peer. Called with p.mu held.
func (p *Peer) endStreams(cause error) {
	for _, st := range p.streams.sinks {
		st.endLocked(cause)
	}
	for _, st := range p.streams.subs {
		st.finishLocked(cause)
	}
	p.streams.sinks, p.streams.subs = nil, nil
}

// isStream reports whether env is a message of the stream protocol.
func isStream(env *envelope) bool {
	const quoted = `"` + streamPrefix
	return env.id == nil && len(env.method) > len(quoted) && string(env.method[:len(quoted)]) == quoted
}

// streamParams is the params of every stream message.
type streamParams struct {
	ID    string          `json:"id"`
	Value json.RawMessage `json:"value"`
	Error json.RawMessage `json:"error"`
	N     int64           `json:"n"`
	Bytes *int64          `json:"bytes"` // absent: no limit on bytes
}

// streamMessage acts on a stream message, on the reading goroutine: it
// never waits. Messages for unknown ids, and malformed ones, are ignored.
//
// size is the size of the message, which credit counts.
func (p *Peer) streamMessage(env *envelope, size int) {
	var m streamParams
	if json.Unmarshal(env.params, &m) != nil {
		p.cfg.log.Debug("wsrpc: ignored a malformed stream message", "method", env.methodName())
		return
	}
	var after []byte // a message to send once p.mu is released
	var ended *sinkState
	p.mu.Lock()
	switch env.methodName() {
	case streamNext:
		if st := p.streams.subs[m.ID]; st != nil && !st.ended {
			after = st.push(m.Value, int64(size), p.cfg.MaxMessageSize)
		}
	case streamEnd:
		if st := p.streams.subs[m.ID]; st != nil {
			err := error(io.EOF)
			if len(m.Error) > 0 && string(m.Error) != "null" {
				err = decodeRemoteError(m.Error)
			}
			st.finishLocked(err)
		}
	case streamCredit:
		if st := p.streams.sinks[m.ID]; st != nil && st.grant(m.N, m.Bytes) {
			ended = st
		}
	case streamCancel:
		if st := p.streams.sinks[m.ID]; st != nil {
			delete(p.streams.sinks, m.ID)
			st.endLocked(ErrUnsubscribed)
		}
	}
	p.mu.Unlock()
	if ended != nil {
		after = ended.endMessage()
	}
	if after != nil {
		p.offer(after)
	}
}

// push adds a value received, under the subscription's policy. It returns
// a cancel to send when the subscription ends for overflow. Called with
// p.mu held.
func (st *subState) push(v []byte, msg, maxMessage int64) []byte {
	n := int64(len(v))
	full := len(st.buf) >= st.max || len(st.buf) > 0 && st.bytes+n > st.maxBytes
	if full {
		switch st.policy {
		case OverflowDropOldest:
			for len(st.buf) > 0 && (len(st.buf) >= st.max || st.bytes+n > st.maxBytes) {
				st.bytes -= int64(len(st.buf[0].v))
				st.buf[0] = streamValue{}
				st.buf = st.buf[1:]
				st.dropped++
			}
		case OverflowBlock:
			// Within its credit the serving side fills at most max values
			// and maxBytes plus one message: more is a broken promise.
			if len(st.buf) < st.max && st.bytes+n <= st.maxBytes+maxMessage {
				break
			}
			fallthrough
		default:
			st.finishLocked(ErrStreamOverflow)
			return streamMsg(streamCancel, st.id, 0, 0)
		}
	}
	st.buf = append(st.buf, streamValue{v: v, msg: msg})
	st.bytes += n
	if st.wake != nil {
		close(st.wake)
		st.wake = nil
	}
	return nil
}

// grant adds credit from the subscriber; the first one activates the
// sink. It reports a sink that ended before it was active, whose end
// message is now due. Called with p.mu held.
func (st *sinkState) grant(n int64, bytes *int64) (endDue bool) {
	if !st.active {
		st.idle.Stop()
	}
	st.active = true
	switch {
	case n < 0:
		st.credit = -1
	case st.credit >= 0:
		st.credit = min(st.credit+n, 1<<40)
		if bytes == nil {
			st.bytes = 1 << 50
		} else {
			st.bytes = min(st.bytes+max(*bytes, 0), 1<<50)
		}
	}
	st.wakeLocked()
	if st.ended {
		delete(st.p.streams.sinks, st.id)
		return st.why == nil // ended by Close or its producer: say so now
	}
	return false
}

// streamMsg encodes a credit (n, bytes) or cancel message for id.
func streamMsg(method, id string, n, bytes int64) []byte {
	b := appendNotificationHead(nil, method)
	b = append(b, `,"params":{"id":`...)
	b = appendString(b, id)
	if method == streamCredit {
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, n, 10)
		if n >= 0 {
			b = append(b, `,"bytes":`...)
			b = strconv.AppendInt(b, bytes, 10)
		}
	}
	return append(b, "}}"...)
}
