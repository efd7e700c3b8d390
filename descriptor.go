package wsrpc

import (
	"context"
	"reflect"
	"sort"
)

// This file lets an application declare its API once, as typed values that
// both sides share: the server registers implementations through them, the
// client calls through them, and neither repeats a method name or a type.

// Descriptor is a declared method or notification: a Method or a
// Notification. Methods.Declare takes them.
type Descriptor interface {
	Name() string
	describe() *MethodInfo
}

// Caller is what a descriptor calls through: a *Peer (over WebSocket) or an
// *HTTPClient (over HTTP POST). A nil *Peer, as PeerFromContext returns for
// a request that came over HTTP, fails with ErrNoPeer.
type Caller interface {
	Call(ctx context.Context, method string, params, result any) error
	Notify(ctx context.Context, method string, params any) error
}

// Batcher is what a descriptor adds its calls to: a *Batch or an
// *HTTPBatch.
type Batcher interface {
	Call(method string, params, result any) *BatchCall
	Notify(method string, params any)
}

// Method declares a method whose params are a P and whose result is an R.
// Declare it once, in a package both sides import:
//
//	var Subtract = wsrpc.NewMethod[SubtractArgs, float64]("subtract")
//
// The server implements it with Register, the client calls it with Call or
// adds it to a batch with Batch. Params are sent as Register decodes them: a
// struct as an object (named arguments), a slice or array as an array, any
// other non-nil value as a one-element array; a nil pointer, slice, map or
// interface sends no params. A Method is a small value, safe to copy and to
// use concurrently.
type Method[P, R any] struct {
	name  string
	shape paramsShape
	doc   docs
}

// docs are what a descriptor says of itself for discovery documents.
type docs struct {
	summary string
	errors  []*Error
}

// Notification declares a notification whose params are a P. See Method.
type Notification[P any] struct {
	name  string
	shape paramsShape
	doc   docs
}

// paramsShape says how a descriptor puts its P on the wire, worked out once
// when the descriptor is declared.
type paramsShape struct {
	wrap   bool // a scalar: sent as a one-element array
	canNil bool // a pointer, slice, map or interface: nil sends no params
}

func shapeOf[P any]() paramsShape {
	t := reflect.TypeFor[P]()
	var s paramsShape
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		s.canNil = true
	}
	// Register's decoder is the reference: a P it reads from a one-element
	// array is a P we must send as one.
	s.wrap = newParamsDecoder[P]().shape == shapeScalar
	return s
}

// wire returns params as Peer.Call expects them.
func (s paramsShape) wire(params any) any {
	if s.canNil {
		if v := reflect.ValueOf(params); !v.IsValid() || v.IsNil() {
			return nil
		}
	}
	if s.wrap {
		return []any{params}
	}
	return params
}

// NewMethod declares the method name. It panics if name is empty, as
// Methods.Handle does; the other checks of Handle (length, the reserved
// "rpc." prefix) apply when the method is registered, so a client may still
// declare a method it only calls.
func NewMethod[P, R any](name string) Method[P, R] {
	if name == "" {
		panic("wsrpc: empty method name")
	}
	return Method[P, R]{name: name, shape: shapeOf[P]()}
}

// Name returns the method name.
func (m Method[P, R]) Name() string { return m.name }

// Doc returns a copy of m with a one-line summary, for discovery
// documents (Methods.Describe, rpc.discover).
func (m Method[P, R]) Doc(summary string) Method[P, R] {
	m.doc.summary = summary
	return m
}

// Errors returns a copy of m that declares the errors its implementation
// may return, for discovery documents. Only Code, Message and Data are
// used; the implementation may return others all the same.
func (m Method[P, R]) Errors(errs ...*Error) Method[P, R] {
	m.doc.errors = append(m.doc.errors[:len(m.doc.errors):len(m.doc.errors)], errs...)
	return m
}

func (m Method[P, R]) describe() *MethodInfo {
	mi := info[P, R](m.name)
	mi.Summary, mi.Errors = m.doc.summary, m.doc.errors
	return mi
}

// Register implements the method on t with fn, and optional middleware for
// this method only. It is Register(t, m.Name(), fn, mw...), and panics
// under the same conditions (among them: already implemented). It replaces
// a declaration made with Methods.Declare.
func (m Method[P, R]) Register(t *Methods, fn func(ctx context.Context, params P) (R, error), mw ...Middleware) {
	register(t, m.describe(), fn, mw)
}

// Call calls the method through c (a *Peer or an *HTTPClient) and returns
// its result. Errors are those of Peer.Call: an *Error from the other side,
// ctx.Err(), an error wrapping ErrClosed; ErrNoPeer for a nil peer.
func (m Method[P, R]) Call(ctx context.Context, c Caller, params P) (R, error) {
	var r R
	if c == nil {
		return r, ErrNoPeer
	}
	err := c.Call(ctx, m.name, m.shape.wire(params), &r)
	return r, err
}

// Batch adds a call of the method to b (a *Batch or an *HTTPBatch). Its
// result is decoded into result (nil to discard it) when the batch's answer
// arrives; the returned BatchCall holds the call's own error.
func (m Method[P, R]) Batch(b Batcher, params P, result *R) *BatchCall {
	var out any
	if result != nil {
		out = result
	}
	return b.Call(m.name, m.shape.wire(params), out)
}

// NewNotification declares the notification name. See NewMethod.
func NewNotification[P any](name string) Notification[P] {
	if name == "" {
		panic("wsrpc: empty method name")
	}
	return Notification[P]{name: name, shape: shapeOf[P]()}
}

// Name returns the notification's method name.
func (n Notification[P]) Name() string { return n.name }

// Doc returns a copy of n with a one-line summary. See Method.Doc.
func (n Notification[P]) Doc(summary string) Notification[P] {
	n.doc.summary = summary
	return n
}

func (n Notification[P]) describe() *MethodInfo {
	mi := info[P, any](n.name)
	mi.Notification, mi.Summary = true, n.doc.summary
	return mi
}

// Register implements the notification on t with fn. Should the other side
// send it as a call instead, it gets a null result, or fn's error. It panics
// under the same conditions as Methods.Handle.
func (n Notification[P]) Register(t *Methods, fn func(ctx context.Context, params P) error, mw ...Middleware) {
	register(t, n.describe(), func(ctx context.Context, params P) (any, error) {
		return nil, fn(ctx, params)
	}, mw)
}

// Notify sends the notification through c (a *Peer or an *HTTPClient).
func (n Notification[P]) Notify(ctx context.Context, c Caller, params P) error {
	if c == nil {
		return ErrNoPeer
	}
	return c.Notify(ctx, n.name, n.shape.wire(params))
}

// Broadcast sends the notification with params to the peers of s that
// filter selects (all when nil): Server.Broadcast for a declared
// notification.
func (n Notification[P]) Broadcast(ctx context.Context, s *Server, params P, filter func(*Peer) bool) (BroadcastResult, error) {
	return s.Broadcast(ctx, n.name, n.shape.wire(params), filter)
}

// Batch adds the notification to b (a *Batch or an *HTTPBatch).
func (n Notification[P]) Batch(b Batcher, params P) {
	b.Notify(n.name, n.shape.wire(params))
}

// Declare records methods the table is meant to serve, so that Unhandled can
// report those still without an implementation, typically in a test or at
// start-up. A declared method is not served: until it is registered, calls
// to it get CodeMethodNotFound, and Names leaves it out. Declaring a method
// already registered or declared does nothing. Declare panics on names that
// Handle would refuse.
func (m *Methods) Declare(descs ...Descriptor) {
	for _, d := range descs {
		checkName(d.Name())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.table == nil {
		m.table = map[string]*method{}
	}
	for _, d := range descs {
		name := d.Name()
		if m.table[name] == nil {
			m.table[name] = &method{name: name, declared: true}
		}
	}
}

// Unhandled returns, sorted, the names declared with Declare that have no
// implementation yet; none once the table serves its whole API.
func (m *Methods) Unhandled() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var names []string
	for n, me := range m.table {
		if me.declared {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
