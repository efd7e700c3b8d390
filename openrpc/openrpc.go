package openrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/wsrpc/wsrpc"
)

// Version is the version of the OpenRPC specification the documents
// follow: their "openrpc" member.
const Version = "1.3.2"

// The extension fields of a document, besides the OpenRPC ones.
const (
	// DirectionField, on each method, says which side serves it:
	// DirectionServer or DirectionClient.
	DirectionField = "x-wsrpc-direction"
	// VariadicField, true on the last params descriptor, says it stands
	// for any number of params of its schema: the rest of the array
	// (by-position), or any names (by-name).
	VariadicField = "x-wsrpc-variadic"
	// StreamField, true on a stream (wsrpc.NewStream), says the method
	// subscribes: its result is a subscription id (a string), and the
	// stream's values, of the schema StreamValuesField holds, follow as
	// $/stream.next notifications (see the Streams section of package
	// wsrpc).
	StreamField = "x-wsrpc-stream"
	// StreamValuesField holds the content descriptor of a stream's values.
	StreamValuesField = "x-wsrpc-stream-values"
)

// The values of DirectionField.
const (
	// DirectionServer: the side that answered rpc.discover serves the
	// method; the other side calls it.
	DirectionServer = "server"
	// DirectionClient: the side that answered rpc.discover calls the
	// method on the other side, which serves it (wsrpc.Methods.Calls).
	DirectionClient = "client"
)

// Info is what a document says of the service, besides its methods. Its
// JSON form is OpenRPC's info object: Servers are not in it, but in the
// document's own "servers".
type Info struct {
	Title       string   `json:"title"`                 // required by OpenRPC
	Version     string   `json:"version"`               // of the API, required by OpenRPC
	Description string   `json:"description,omitempty"` // may use GitHub Flavored Markdown
	Servers     []Server `json:"-"`                     // where the API is served
}

// Server is one place the API is served, an OpenRPC server object.
type Server struct {
	Name        string `json:"name,omitempty"`
	URL         string `json:"url"` // ws://host/rpc, http://host/rpc
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
}

// Doc is an OpenRPC document. Its Info has no Servers: they are in
// Servers.
type Doc struct {
	OpenRPC string   `json:"openrpc"` // Version
	Info    Info     `json:"info"`
	Servers []Server `json:"servers,omitempty"`
	Methods []Method `json:"methods"` // sorted by name, served before called
}

// Method is an OpenRPC method object.
type Method struct {
	Name    string `json:"name"`
	Summary string `json:"summary,omitempty"` // wsrpc.Method.Doc
	// ParamStructure is "by-name", "by-position" or "either"; empty (for
	// OpenRPC, "either") when the table does not know.
	ParamStructure string              `json:"paramStructure,omitempty"`
	Params         []ContentDescriptor `json:"params"`
	// Result is nil for a notification: OpenRPC reads a method without a
	// result as one that is only notified.
	Result *ContentDescriptor `json:"result,omitempty"`
	Errors []*wsrpc.Error     `json:"errors,omitempty"` // wsrpc.Method.Errors
	// Direction is DirectionServer or DirectionClient (DirectionField).
	Direction string `json:"x-wsrpc-direction"`
	// Stream and Values describe a stream (StreamField,
	// StreamValuesField).
	Stream bool               `json:"x-wsrpc-stream,omitempty"`
	Values *ContentDescriptor `json:"x-wsrpc-stream-values,omitempty"`
}

// ContentDescriptor is an OpenRPC content descriptor: one param, or the
// result.
type ContentDescriptor struct {
	Name     string             `json:"name"`
	Required bool               `json:"required,omitempty"`
	Schema   *jsonschema.Schema `json:"schema"`
	Variadic bool               `json:"x-wsrpc-variadic,omitempty"` // VariadicField
}

// Document builds the OpenRPC document of m (see the package
// documentation for what it holds) with info. It never fails to build
// one: a type that has no JSON Schema (a recursive type, a channel, a map
// whose keys are neither strings nor TextMarshalers) is described as any
// value, and the error names each such type; the document is complete
// all the same.
func Document(m *wsrpc.Methods, info Info) (*Doc, error) {
	return build(m.Describe(), info)
}

// build is Document from the table's description mis.
func build(mis []wsrpc.MethodInfo, info Info) (*Doc, error) {
	d := &Doc{OpenRPC: Version, Info: info, Servers: info.Servers, Methods: make([]Method, 0, len(mis))}
	d.Info.Servers = nil
	var errs []error
	schema := func(what string, mi *wsrpc.MethodInfo, t reflect.Type) *jsonschema.Schema {
		s, err := schemaOf(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("openrpc: %s of %q: %w", what, mi.Name, err))
		}
		return s
	}
	for i := range mis {
		mi := &mis[i]
		me := Method{Name: mi.Name, Summary: mi.Summary, ParamStructure: mi.ParamStructure, Direction: DirectionServer}
		for _, e := range mi.Errors {
			if e != nil {
				me.Errors = append(me.Errors, e)
			}
		}
		if mi.Calls {
			me.Direction = DirectionClient
		}
		me.Params = params(mi, schema)
		switch {
		case mi.Stream:
			me.Stream = true
			me.Result = &ContentDescriptor{Name: "subscription", Schema: &jsonschema.Schema{Type: "string"}}
			me.Values = &ContentDescriptor{Name: "value", Schema: schema("values", mi, mi.Result)}
		case !mi.Notification:
			me.Result = &ContentDescriptor{Name: "result", Schema: schema("result", mi, mi.Result)}
		}
		d.Methods = append(d.Methods, me)
	}
	return d, errors.Join(errs...)
}

// params returns the descriptors of mi's params, as Register maps them.
func params(mi *wsrpc.MethodInfo, schema func(string, *wsrpc.MethodInfo, reflect.Type) *jsonschema.Schema) []ContentDescriptor {
	ps := []ContentDescriptor{}
	t := mi.Params
	if t == nil { // unknown: whatever the handler takes
		return append(ps, ContentDescriptor{Name: "params", Schema: anySchema()})
	}
	et := t
	for et.Kind() == reflect.Pointer {
		et = et.Elem()
	}
	switch mi.ParamStructure {
	case "by-name": // a map: any names
		return append(ps, ContentDescriptor{Name: "args", Schema: schema("params", mi, et.Elem()), Variadic: true})
	case "by-position":
		switch et.Kind() {
		case reflect.Slice: // any number
			return append(ps, ContentDescriptor{Name: "args", Schema: schema("params", mi, et.Elem()), Variadic: true})
		case reflect.Array: // at most Len, each optional
			for i := range et.Len() {
				ps = append(ps, ContentDescriptor{Name: "arg" + strconv.Itoa(i), Schema: schema("params", mi, et.Elem())})
			}
			return ps
		}
		// A single value, sent as a one-element array; a nil pointer is
		// sent as no params.
		return append(ps, ContentDescriptor{Name: "arg", Required: t.Kind() != reflect.Pointer, Schema: schema("params", mi, t)})
	}
	// "either": a struct's fields, by name or in order; or a type that
	// decodes the whole params itself (an interface, a json.Unmarshaler).
	if et.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return append(ps, ContentDescriptor{Name: "params", Schema: schema("params", mi, t)})
	}
	for _, a := range mi.Args {
		ps = append(ps, ContentDescriptor{Name: a.Name, Required: a.Required, Schema: schema("params", mi, a.Type)})
	}
	return ps
}

// Serve serves m's OpenRPC document with info as rpc.discover on m, with
// m's middleware and guards and optional mw (wsrpc.Methods.Discover): a
// guarded table refuses it to callers the guard refuses. The document is
// built on the first call and again only when m's methods have changed
// (wsrpc.Methods.Describe tells), so methods registered while serving are
// listed. Types without a JSON Schema are described as any value (see
// Document). Serve panics if m serves rpc.discover already.
func Serve(m *wsrpc.Methods, info Info, mw ...wsrpc.Middleware) {
	c := &cache{m: m, info: info}
	m.Discover(c.discover, mw...)
}

// cache holds the encoded document and the description it was built from.
type cache struct {
	m    *wsrpc.Methods
	info Info

	mu  sync.Mutex
	mis []wsrpc.MethodInfo
	doc json.RawMessage
}

// discover is the rpc.discover handler.
func (c *cache) discover(context.Context, *wsrpc.Request) (any, error) {
	mis := c.m.Describe()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doc != nil && slices.EqualFunc(mis, c.mis, sameInfo) {
		return c.doc, nil
	}
	d, _ := build(mis, c.info)
	doc, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	c.mis, c.doc = mis, json.RawMessage(doc)
	return c.doc, nil
}

// sameInfo reports whether a and b describe a method alike.
func sameInfo(a, b wsrpc.MethodInfo) bool {
	return a.Name == b.Name && a.Params == b.Params && a.Result == b.Result &&
		a.ParamStructure == b.ParamStructure && a.Notification == b.Notification &&
		a.Summary == b.Summary && a.Calls == b.Calls && slices.Equal(a.Args, b.Args) &&
		slices.EqualFunc(a.Errors, b.Errors, func(x, y *wsrpc.Error) bool {
			return x == y || x != nil && y != nil && x.Code == y.Code && x.Message == y.Message && string(x.Data) == string(y.Data)
		})
}
