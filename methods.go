package wsrpc

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MaxMethodNameLen bounds the length of a registered method name.
const MaxMethodNameLen = 256

// A Request is one call or notification as a Handler sees it.
type Request struct {
	// Method is the method name.
	Method string
	// Params is the raw params member (nil when absent). It is only valid
	// until the handler returns; copy it to keep it.
	Params json.RawMessage
	// ID is the raw id, byte for byte as the caller sent it; nil for a
	// notification. Valid only until the handler returns.
	ID json.RawMessage

	peer  *Peer
	codec Codec
	// trusted is a params copy the typed decoder made; a result that is
	// this very slice needs no second validation.
	trusted []byte
	// scanned is Params as the envelope scanner validated it. A middleware
	// may replace Params; the typed decoder then validates it again.
	scanned []byte
	// obs is the Observer's view of the request, ended with its answer.
	obs *observation
}

// IsNotification reports whether the caller expects no response.
func (r *Request) IsNotification() bool { return r.ID == nil }

// Peer returns the peer the request arrived on, or nil for a request that
// came over HTTP POST.
func (r *Request) Peer() *Peer { return r.peer }

// A Handler serves one method. Its result is encoded as the response's
// result. An *Error it returns is sent as is; any other error is sent as
// CodeInternalError with a generic message, and logged locally. So is a nil
// *Error returned as a (non-nil) error, Go's nil-interface trap: return a
// plain nil for success.
//
// ctx is cancelled when the peer closes. PeerFromContext(ctx) returns the
// calling peer.
type Handler func(ctx context.Context, req *Request) (result any, err error)

// Middleware wraps a Handler. See Methods.Use for the order in which
// middleware runs.
type Middleware func(next Handler) Handler

// Methods is a table of methods served to the other side of a connection. A
// Peer or a Server uses one; one table may serve many peers. Its methods are
// safe for concurrent use, and methods may be added while it is serving.
//
// The zero Methods is an empty table ready to use.
type Methods struct {
	mu    sync.RWMutex
	table map[string]*method
	// served is what lookup reads, without a lock: the implemented
	// methods of table, republished whole (never changed in place) by
	// every change under mu. Tables change at start-up; they are read
	// by every call.
	served     atomic.Pointer[map[string]*method]
	fallback   *method // serves the names not in table (Fallback)
	middleware []Middleware
	calls      map[string]*MethodInfo // methods called on the other side (Calls)
}

type method struct {
	name     string
	declared bool // declared with a descriptor but not implemented yet
	handler  Handler
	info     *MethodInfo // types and docs, when registered typed
	local    []Middleware
	chain    Handler // middleware applied
}

// NewMethods returns an empty method table.
func NewMethods() *Methods { return &Methods{} }

// checkName panics on names that may not be registered: empty, longer than
// MaxMethodNameLen, or in the "rpc." namespace the specification reserves.
func checkName(name string) {
	switch {
	case name == "":
		panic("wsrpc: empty method name")
	case len(name) > MaxMethodNameLen:
		panic("wsrpc: method name longer than " + strconv.Itoa(MaxMethodNameLen) + " bytes")
	case strings.HasPrefix(name, "rpc."):
		panic("wsrpc: method names beginning with \"rpc.\" are reserved: " + name)
	}
}

// Handle registers h for name, with optional middleware that applies to this
// method only. It panics if the name is invalid (empty, too long, or in the
// reserved "rpc." namespace) or already registered, as http.ServeMux does:
// these are programming errors.
func (m *Methods) Handle(name string, h Handler, mw ...Middleware) {
	checkName(name)
	m.register(name, h, nil, mw)
}

// register is Handle without the name check, with what is known of the
// method for Describe.
func (m *Methods) register(name string, h Handler, mi *MethodInfo, mw []Middleware) {
	if h == nil {
		panic("wsrpc: nil handler for " + name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.table == nil {
		m.table = map[string]*method{}
	}
	if old := m.table[name]; old != nil && !old.declared {
		panic("wsrpc: method registered twice: " + name)
	}
	me := &method{name: name, handler: h, info: mi, local: mw}
	me.chain = m.compose(me)
	m.table[name] = me
	m.publish()
}

// publish republishes served from table. Called with m.mu held.
func (m *Methods) publish() {
	t := make(map[string]*method, len(m.table))
	for name, me := range m.table {
		if !me.declared {
			t[name] = me
		}
	}
	m.served.Store(&t)
}

// HandleRaw registers a handler that takes the params as raw JSON (nil when
// absent). The slice is only valid until fn returns.
func (m *Methods) HandleRaw(name string, fn func(ctx context.Context, params json.RawMessage) (any, error), mw ...Middleware) {
	m.Handle(name, func(ctx context.Context, req *Request) (any, error) {
		return fn(ctx, req.Params)
	}, mw...)
}

// Fallback registers h for every method name the table has no handler
// for, instead of answering CodeMethodNotFound: a proxy, or a tool that
// prints whatever it is sent. h sees the name in Request.Method, and runs
// under the table's middleware and mw, as a method does; it may return
// ErrMethodNotFound itself. Fallback panics if h is nil or one is set
// already.
func (m *Methods) Fallback(h Handler, mw ...Middleware) {
	if h == nil {
		panic("wsrpc: nil fallback handler")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fallback != nil {
		panic("wsrpc: fallback registered twice")
	}
	me := &method{handler: h, local: mw}
	me.chain = m.compose(me)
	m.fallback = me
}

// Use adds middleware that wraps every method of the table, those already
// registered and those to come. Middleware runs in the order it was added:
// the first added is the outermost. Table-wide middleware runs before the
// middleware given to Handle for one method. Use is safe while the table
// serves: a call in progress keeps the chain it started with.
func (m *Methods) Use(mw ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.middleware = append(m.middleware, mw...)
	// New methods with the new chains: a call in progress keeps the one
	// it looked up.
	for name, me := range m.table {
		if !me.declared {
			cp := *me
			cp.chain = m.compose(&cp)
			m.table[name] = &cp
		}
	}
	if m.fallback != nil {
		cp := *m.fallback
		cp.chain = m.compose(&cp)
		m.fallback = &cp
	}
	m.publish()
}

func (m *Methods) compose(me *method) Handler {
	h := me.handler
	for i := len(me.local) - 1; i >= 0; i-- {
		h = me.local[i](h)
	}
	for i := len(m.middleware) - 1; i >= 0; i-- {
		h = m.middleware[i](h)
	}
	return h
}

// lookup returns the method registered for name, or nil.
func (m *Methods) lookup(name []byte) *method {
	if m == nil {
		return nil
	}
	t := m.served.Load()
	if t == nil {
		return nil
	}
	return (*t)[string(name)]
}

// fallbackMethod returns the Fallback handler, or nil.
func (m *Methods) fallbackMethod() *method {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.fallback
}

// Names returns the names of the methods the table serves, sorted.
func (m *Methods) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var names []string
	for n, me := range m.table {
		if !me.declared {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Register adds a typed method to m. The params are decoded into P:
//
//   - a JSON object maps to named arguments: the fields of a struct P by
//     their json tags (or the keys of a map P);
//   - a JSON array maps to positional arguments: the exported fields of a
//     struct P in declaration order, the elements of a slice or array P,
//     or, for any other P, the single element of a one-element array (a
//     type that decodes itself from a JSON string, such as time.Time, is
//     such a single value; any other json.Unmarshaler gets the params
//     whole);
//   - absent params leave P its zero value (a nil pointer), unless P is a
//     struct (not a pointer to one) with required fields.
//
// The arguments of a struct P are checked as a Python or JavaScript
// callee would: a field is required unless it is a pointer, its json tag
// has omitempty or omitzero, or its wsrpc tag says optional
// (`wsrpc:"optional"`); a missing required argument, and a named argument
// the struct has no field for, are answered with CodeInvalidParams naming
// it. A struct that takes unknown named arguments (and ignores them) says
// so with a blank field tagged `wsrpc:"extra"`: `_ struct{} "wsrpc:\"extra\""`.
// A struct with embedded fields is checked for its own fields only.
//
// Params of the wrong shape or type are answered with CodeInvalidParams and
// a message naming the offending argument, never a Go type. The result R is
// encoded with encoding/json (or the peer's Codec). All reflection happens
// here, once.
//
// Register panics under the same conditions as Methods.Handle.
func Register[P, R any](m *Methods, name string, fn func(ctx context.Context, params P) (R, error), mw ...Middleware) {
	register(m, info[P, R](name), fn, mw)
}

// register is Register with the method's description.
func register[P, R any](m *Methods, mi *MethodInfo, fn func(ctx context.Context, params P) (R, error), mw []Middleware) {
	checkName(mi.Name)
	dec := newParamsDecoder[P]()
	// The decoder needs a *P, which would escape to the heap on every
	// call: the P values decoded into are pooled instead, and emptied
	// before they go back, so that they hold nothing of a call.
	var values sync.Pool
	m.register(mi.Name, func(ctx context.Context, req *Request) (any, error) {
		if dec.basic != nil && dec.basicFits(req) {
			// Basic values are written in place, through a pointer
			// that does not escape: no pool needed.
			var p P
			if err := dec.basic.decode(req.Params, unsafe.Pointer(&p)); err != nil {
				return nil, err
			}
			return fn(ctx, p)
		}
		pp, _ := values.Get().(*P)
		if pp == nil {
			pp = new(P)
		}
		err := dec.decode(req, pp)
		p := *pp
		var zero P
		*pp = zero
		values.Put(pp)
		if err != nil {
			return nil, err
		}
		return fn(ctx, p)
	}, mi, mw)
}

// paramsDecoder maps JSON params onto a P, following the rules of Register.
type paramsDecoder[P any] struct {
	shape  shape
	fields []string       // json names of a struct's positional fields
	types  []reflect.Type // their types (for Methods.Describe)
	// required[i]: fields[i] must be given; extra: unknown named
	// arguments are accepted (a struct opted in, or has embedded fields).
	required  []bool
	fieldKeys [][]byte // fields, as bytes to compare keys with
	needed    bool     // some field is required
	extra     bool
	arrLen    int           // length of a Go array P
	raw       bool          // P is json.RawMessage
	basic     *basicDecoder // P is a basic value or a list of them
}

type shape int

const (
	shapeAny    shape = iota // interface: whatever the JSON is
	shapeStruct              // object by name, array by position
	shapeList                // slice or array: array only
	shapeMap                 // map: object only
	shapeScalar              // single value: one-element array
)

var rawMessageType = reflect.TypeFor[json.RawMessage]()
var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// textual reports whether a *t decodes itself from a JSON string
// (encoding.TextUnmarshaler): a single value, given positionally as a
// one-element array.
func textual(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func newParamsDecoder[P any]() *paramsDecoder[P] {
	d := &paramsDecoder[P]{}
	t := reflect.TypeFor[P]()
	if t == rawMessageType {
		d.raw = true
		return d
	}
	if textual(t) {
		d.shape = shapeScalar // time.Time, netip.Addr: a JSON string
		return d
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return d // shapeAny: the type decides for itself
	}
	d.basic = newBasicDecoder(t)
	et := t
	for et.Kind() == reflect.Pointer {
		et = et.Elem()
	}
	if textual(et) {
		d.shape = shapeScalar // *time.Time, as time.Time
		return d
	}
	if reflect.PointerTo(et).Implements(unmarshalerType) {
		return d // as the type it points to
	}
	switch et.Kind() {
	case reflect.Interface:
		d.shape = shapeAny
	case reflect.Struct:
		d.shape = shapeStruct
		d.fields, d.types, d.required, d.extra = structFields(et)
		d.needed = slices.Contains(d.required, true)
		for _, f := range d.fields {
			d.fieldKeys = append(d.fieldKeys, []byte(f))
		}
	case reflect.Slice:
		d.shape = shapeList
		d.arrLen = -1
	case reflect.Array:
		d.shape = shapeList
		d.arrLen = et.Len()
	case reflect.Map:
		d.shape = shapeMap
	default:
		d.shape = shapeScalar
	}
	return d
}

// structFields lists the json names of t's exported fields in declaration
// order, as encoding/json would name them, their types, whether each is a required
// argument, and whether t accepts named arguments it has no field for.
func structFields(t reflect.Type) (names []string, types []reflect.Type, required []bool, extra bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		wtag := f.Tag.Get("wsrpc")
		if f.Name == "_" && wtag == "extra" {
			extra = true
		}
		if f.Anonymous {
			extra = true // promoted fields: not checked
		}
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, optional := f.Name, f.Type.Kind() == reflect.Pointer || wtag == "optional"
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, opts, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
			for o := range strings.SplitSeq(opts, ",") {
				optional = optional || o == "omitempty" || o == "omitzero"
			}
		}
		names = append(names, name)
		types = append(types, f.Type)
		required = append(required, !optional)
	}
	return names, types, required, extra
}

// checkNamed checks the named arguments of the JSON object obj against a
// struct's fields: each must name a field (matched as encoding/json
// matches, case folded), unless extra, and every required field must be
// named.
func (d *paramsDecoder[P]) checkNamed(obj []byte) error {
	var given [64]bool
	seen := given[:0]
	if len(d.fields) > len(given) {
		seen = make([]bool, 0, len(d.fields))
	}
	seen = seen[:len(d.fields)]
	err := eachMember(obj, func(key []byte) error {
		for i, f := range d.fieldKeys {
			if bytes.Equal(f, key) || bytes.EqualFold(f, key) {
				seen[i] = true
				return nil
			}
		}
		if d.extra {
			return nil
		}
		return &Error{Code: CodeInvalidParams, Message: "invalid params: unknown argument " + strconv.Quote(string(key))}
	})
	if err != nil {
		return err
	}
	for i, req := range d.required {
		if req && !seen[i] {
			return missingArgument(d.fields[i])
		}
	}
	return nil
}

func missingArgument(name string) error {
	return &Error{Code: CodeInvalidParams, Message: "invalid params: missing argument " + strconv.Quote(name)}
}

// checkNone is the check for absent params: an error if an argument is
// required.
func (d *paramsDecoder[P]) checkNone() error {
	if d.shape == shapeStruct && d.needed && reflect.TypeFor[P]().Kind() != reflect.Pointer {
		return missingArgument(d.fields[slices.Index(d.required, true)])
	}
	return nil
}

// basicFits reports whether req's params take the basic decoder: an array,
// already validated, for the default codec.
func (d *paramsDecoder[P]) basicFits(req *Request) bool {
	params := req.Params
	return len(params) > 0 && params[0] == '[' && req.codec == nil && sameSlice(params, req.scanned)
}

var errParamsShape = &Error{Code: CodeInvalidParams, Message: "invalid params"}

func (d *paramsDecoder[P]) decode(req *Request, p *P) error {
	params := req.Params
	if len(params) == 0 || string(params) == "null" {
		return d.checkNone()
	}
	if !sameSlice(params, req.scanned) && !validJSON(params) {
		return errParamsShape
	}
	codec := req.codec
	if d.raw {
		cp := append(json.RawMessage(nil), params...)
		req.trusted = cp
		*p = any(cp).(P)
		return nil
	}
	isArray := params[0] == '['
	if d.basic != nil && isArray && codec == nil {
		return d.basic.decode(params, unsafe.Pointer(p))
	}
	switch d.shape {
	case shapeStruct:
		if isArray {
			return d.decodePositional(params, p, codec)
		}
		if params[0] == '{' {
			if err := d.checkNamed(params); err != nil {
				return err
			}
		}
	case shapeList:
		if !isArray {
			return &Error{Code: CodeInvalidParams, Message: "invalid params: expected an array of arguments"}
		}
		if d.arrLen >= 0 {
			if n := countElems(params); n > d.arrLen {
				return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: expected at most %d arguments, got %d", d.arrLen, n)}
			}
		}
	case shapeMap:
		if isArray {
			return &Error{Code: CodeInvalidParams, Message: "invalid params: expected named arguments (an object)"}
		}
	case shapeScalar:
		if !isArray {
			return &Error{Code: CodeInvalidParams, Message: "invalid params: expected an array of one argument"}
		}
		var elems [1][]byte
		n := 0
		eachElem(params, func(i int, tok []byte) error {
			if i == 0 {
				elems[0] = tok
			}
			n++
			return nil
		})
		if n != 1 {
			return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: expected 1 argument, got %d", n)}
		}
		params = elems[0]
	}
	return paramsError(decodeValue(params, p, codec))
}

// decodePositional maps a JSON array onto a struct's fields in order by
// rewriting it as the equivalent object: one decode, no reflection per call.
func (d *paramsDecoder[P]) decodePositional(params []byte, p *P, codec Codec) error {
	elems := splitArray(make([][]byte, 0, len(d.fields)), params)
	if len(elems) > len(d.fields) {
		return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: expected at most %d arguments, got %d", len(d.fields), len(elems))}
	}
	for i := len(elems); i < len(d.required); i++ {
		if d.required[i] {
			return missingArgument(d.fields[i])
		}
	}
	obj := make([]byte, 0, len(params)+16*len(elems))
	obj = append(obj, '{')
	for i, e := range elems {
		if i > 0 {
			obj = append(obj, ',')
		}
		obj = appendString(obj, d.fields[i])
		obj = append(obj, ':')
		obj = append(obj, e...)
	}
	obj = append(obj, '}')
	return paramsError(decodeValue(obj, p, codec))
}

// paramsError turns a decoding error into CodeInvalidParams with a message
// that names the argument and the JSON kind received, never a Go type.
func paramsError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		msg := "invalid params: wrong type"
		if te.Field != "" {
			msg += " for " + strconv.Quote(te.Field)
		}
		if te.Value != "" {
			msg += " (got " + te.Value + ")"
		}
		return &Error{Code: CodeInvalidParams, Message: msg}
	}
	return errParamsShape
}
