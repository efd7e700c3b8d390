package wsrpc

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
)

// This file is what a table tells about itself, for discovery documents
// (rpc.discover, built by the openrpc module), and the door through which
// other wire formats (the weerpc package) run its methods.

// MethodInfo describes one method: what Register or a descriptor knows of
// it. Methods.Describe returns them.
type MethodInfo struct {
	// Name is the method name.
	Name string
	// Params is the Go type the params are decoded into, and Result the
	// type of the result: nil when not known (Handle, HandleRaw,
	// Fallback).
	Params reflect.Type
	Result reflect.Type
	// Args are the arguments of a struct Params, in positional order, as
	// Register maps them.
	Args []Arg
	// ParamStructure is how params may be given: "by-name" (an object),
	// "by-position" (an array) or "either", as OpenRPC spells them.
	ParamStructure string
	// Notification: declared as a Notification; no result is expected.
	Notification bool
	// Stream: declared as a Stream; the call answers a subscription id,
	// and Result is the type of the stream's values.
	Stream bool
	// Summary and Errors are what the descriptor declared (Method.Doc,
	// Method.Errors).
	Summary string
	Errors  []*Error
	// Calls: a method this side calls on the other (Methods.Calls), not
	// one it serves.
	Calls bool
}

// Arg is one argument of a struct's params.
type Arg struct {
	Name     string       // the name in a JSON object (the json tag)
	Type     reflect.Type // the field's type
	Required bool         // by Register's rules: see Register
}

// info builds the MethodInfo of a method whose params are a P and result an
// R.
func info[P, R any](name string) *MethodInfo {
	mi := &MethodInfo{Name: name, Params: reflect.TypeFor[P](), Result: reflect.TypeFor[R]()}
	d := newParamsDecoder[P]()
	switch {
	case d.raw:
		mi.Params, mi.ParamStructure = nil, "either"
	case d.shape == shapeStruct:
		mi.ParamStructure = "either"
		for i, f := range d.fields {
			mi.Args = append(mi.Args, Arg{Name: f, Type: d.types[i], Required: d.required[i]})
		}
	case d.shape == shapeMap:
		mi.ParamStructure = "by-name"
	case d.shape == shapeAny:
		mi.ParamStructure = "either"
	default:
		mi.ParamStructure = "by-position"
	}
	if mi.Result == reflect.TypeFor[any]() {
		mi.Result = nil
	}
	return mi
}

// Describe returns what the table knows of each method it serves, and of
// those declared with Calls, sorted by name (Calls after served methods
// of the same name). Methods registered with Handle, HandleRaw or Fallback
// have only a name; rpc.discover itself is left out.
func (m *Methods) Describe() []MethodInfo {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []MethodInfo
	for name, me := range m.table {
		if me.declared || name == discoverName {
			continue
		}
		mi := MethodInfo{Name: name}
		if me.info != nil {
			mi = *me.info
		}
		out = append(out, mi)
	}
	for _, mi := range m.calls {
		out = append(out, *mi)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return !out[i].Calls && out[j].Calls
	})
	return out
}

// Calls records methods and notifications this side calls on the other, so
// that Describe (and a discovery document) can list them. They are not
// served. Calling it again with a name already recorded replaces it.
func (m *Methods) Calls(descs ...Descriptor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls == nil {
		m.calls = map[string]*MethodInfo{}
	}
	for _, d := range descs {
		mi := *d.describe()
		mi.Calls = true
		m.calls[mi.Name] = &mi
	}
}

// discoverName is the one name of the reserved "rpc." namespace a table
// may serve, with Discover.
const discoverName = "rpc.discover"

// Discover serves h as rpc.discover, the OpenRPC service discovery method,
// with the table's middleware and guards and optional mw. The openrpc
// module builds h from Describe. Discover panics if one is set already.
func (m *Methods) Discover(h Handler, mw ...Middleware) {
	if h == nil {
		panic("wsrpc: nil rpc.discover handler")
	}
	m.register(discoverName, h, nil, mw)
}

// Invoke runs the method req.Method of the table with req.Params (raw
// JSON; nil for none), as a call arriving over HTTP POST runs: under the
// table's middleware and guards, with the Fallback for an unknown name,
// and under the recovery every handler runs under, so that the error is an
// *Error (CodeInternalError for anything a handler returns that is not
// one, whose detail goes to log; nil logs nothing). req.ID is what
// middleware sees (nil makes the call a notification to them); the rest of
// req is ignored. It lets other wire formats serve the same table (see the
// weerpc package). Give ctx the caller's HTTP request and identity with
// WithHTTPRequest for the guards to see.
func (m *Methods) Invoke(ctx context.Context, req *Request, log *slog.Logger) (any, error) {
	if log == nil {
		log = discard
	}
	r := &Request{Method: req.Method, Params: req.Params, ID: req.ID}
	me := m.lookup([]byte(r.Method))
	if me == nil {
		if me = m.fallbackMethod(); me == nil {
			return nil, methodNotFound(r.Method)
		}
	}
	if len(r.Params) > 0 && !validJSON(r.Params) {
		return nil, errParse
	}
	r.scanned = r.Params
	res, err := recovered(ctx, me.chain, r, log)
	if err != nil {
		return nil, toWireError(err)
	}
	return res, nil
}

// discard is the logger of Invoke when it is given none.
var discard = slog.New(slog.DiscardHandler)

// WithHTTPRequest returns a copy of ctx that carries r and identity to the
// handlers and guards that Methods.Invoke runs with it: what
// HTTPRequestFromContext and IdentityFromContext return there, as for a
// call over HTTP POST.
func WithHTTPRequest(ctx context.Context, r *http.Request, identity any) context.Context {
	return context.WithValue(ctx, httpCallKey{}, &httpCall{r: r, identity: identity})
}
