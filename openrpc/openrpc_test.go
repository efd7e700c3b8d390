package openrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

// The types of a table with every kind of method.
type (
	point struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	}
	inner struct {
		A int  `json:"a"`
		B *int `json:"b"`
	}
	nested struct {
		Name  string            `json:"name" jsonschema:"who"`
		Note  *string           `json:"note"`
		Tags  []string          `json:"tags,omitempty"`
		Opt   int               `json:"opt" wsrpc:"optional"`
		At    time.Time         `json:"at"`
		Blob  []byte            `json:"blob"`
		Raw   json.RawMessage   `json:"raw"`
		PRaw  *json.RawMessage  `json:"praw"`
		Addr  netip.Addr        `json:"addr"`
		Inner inner             `json:"inner"`
		M     map[string]point  `json:"m"`
		Skip  int               `json:"-"`
		Mixed map[string]*inner `json:"mixed,omitzero"`
	}
	findArgs struct {
		P     point   `json:"p"`
		N     *nested `json:"n"`
		Limit int     `json:"limit,omitempty"`
	}
	tree struct {
		Kids []tree `json:"kids"`
	}
)

var errNotFound = &wsrpc.Error{Code: 4004, Message: "not found", Data: json.RawMessage(`{"hint":"look elsewhere"}`)}

// everyKind returns a table with a method of every kind: typed with struct,
// list, array, scalar, map, interface and raw params, a notification,
// HandleRaw and Handle, methods called on the other side (one of them
// with a name also served), and a recursive type.
func everyKind() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.NewMethod[findArgs, []point]("shapes.find").Doc("Finds shapes near a point.").Errors(errNotFound, nil).
		Register(m, func(context.Context, findArgs) ([]point, error) { return nil, nil })
	wsrpc.Register(m, "sum", func(context.Context, []float64) (float64, error) { return 0, nil })
	wsrpc.Register(m, "pair", func(context.Context, [2]int) (int, error) { return 0, nil })
	wsrpc.Register(m, "scale", func(context.Context, float64) (float64, error) { return 0, nil })
	wsrpc.Register(m, "kv", func(context.Context, map[string]int) (bool, error) { return false, nil })
	wsrpc.Register(m, "anything", func(context.Context, any) (any, error) { return nil, nil })
	wsrpc.Register(m, "empty", func(context.Context, struct{}) (string, error) { return "", nil })
	wsrpc.Register(m, "when", func(context.Context, time.Time) (time.Time, error) { return time.Time{}, nil })
	wsrpc.Register(m, "grow", func(context.Context, tree) (tree, error) { return tree{}, nil })
	wsrpc.NewMethod[json.RawMessage, json.RawMessage]("echo").
		Register(m, func(_ context.Context, p json.RawMessage) (json.RawMessage, error) { return p, nil })
	wsrpc.NewNotification[point]("moved").Doc("The pointer moved.").
		Register(m, func(context.Context, point) error { return nil })
	wsrpc.NewStream[[]string, point]("track").Doc("Where the named pointers go.").
		RegisterPush(m, func(context.Context, []string, *wsrpc.Sink[point]) error { return nil })
	m.HandleRaw("raw", func(context.Context, json.RawMessage) (any, error) { return nil, nil })
	m.Handle("handled", func(context.Context, *wsrpc.Request) (any, error) { return nil, nil })
	m.Calls(wsrpc.NewMethod[point, bool]("client.confirm").Doc("Asks the user."),
		wsrpc.NewNotification[string]("client.tick"),
		wsrpc.NewNotification[point]("moved"))
	return m
}

// encode returns d as JSON.
func encode(t *testing.T, d *Doc) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonOf returns v as compact JSON.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// method returns the method of d named name in direction dir.
func method(t *testing.T, d *Doc, name, dir string) Method {
	t.Helper()
	for _, me := range d.Methods {
		if me.Name == name && me.Direction == dir {
			return me
		}
	}
	t.Fatalf("no %s method %q", dir, name)
	return Method{}
}

// equal fails t unless got == want.
func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestDocumentEveryKind(t *testing.T) {
	t.Parallel()
	info := Info{Title: "every kind", Version: "0.1.0", Description: "A test.",
		Servers: []Server{{Name: "local", URL: "ws://127.0.0.1:8095/rpc"}}}
	d, err := Document(everyKind(), info)
	if err == nil || !strings.Contains(err.Error(), `"grow"`) || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("the recursive type of grow is reported: %v", err)
	}
	b := encode(t, d)
	validate(t, b)

	var names []string
	for _, me := range d.Methods {
		names = append(names, me.Name+"/"+me.Direction)
	}
	equal(t, "methods", strings.Join(names, " "), "anything/server client.confirm/client client.tick/client echo/server "+
		"empty/server grow/server handled/server kv/server moved/server moved/client pair/server raw/server "+
		"scale/server shapes.find/server sum/server track/server when/server")
	equal(t, "head", jsonOf(t, map[string]any{"openrpc": d.OpenRPC, "info": d.Info, "servers": d.Servers}),
		`{"info":{"title":"every kind","version":"0.1.0","description":"A test."},"openrpc":"1.3.2","servers":[{"name":"local","url":"ws://127.0.0.1:8095/rpc"}]}`)

	for _, c := range []struct{ name, dir, want string }{
		{"sum", DirectionServer, `{"name":"sum","paramStructure":"by-position","params":[{"name":"args","schema":{"type":"number"},"x-wsrpc-variadic":true}],` +
			`"result":{"name":"result","schema":{"type":"number"}},"x-wsrpc-direction":"server"}`},
		{"pair", DirectionServer, `{"name":"pair","paramStructure":"by-position","params":[{"name":"arg0","schema":{"type":"integer"}},{"name":"arg1","schema":{"type":"integer"}}],` +
			`"result":{"name":"result","schema":{"type":"integer"}},"x-wsrpc-direction":"server"}`},
		{"scale", DirectionServer, `{"name":"scale","paramStructure":"by-position","params":[{"name":"arg","required":true,"schema":{"type":"number"}}],` +
			`"result":{"name":"result","schema":{"type":"number"}},"x-wsrpc-direction":"server"}`},
		{"kv", DirectionServer, `{"name":"kv","paramStructure":"by-name","params":[{"name":"args","schema":{"type":"integer"},"x-wsrpc-variadic":true}],` +
			`"result":{"name":"result","schema":{"type":"boolean"}},"x-wsrpc-direction":"server"}`},
		{"anything", DirectionServer, `{"name":"anything","paramStructure":"either","params":[{"name":"params","schema":true}],` +
			`"result":{"name":"result","schema":true},"x-wsrpc-direction":"server"}`},
		{"empty", DirectionServer, `{"name":"empty","paramStructure":"either","params":[],` +
			`"result":{"name":"result","schema":{"type":"string"}},"x-wsrpc-direction":"server"}`},
		{"when", DirectionServer, `{"name":"when","paramStructure":"by-position","params":[{"name":"arg","required":true,"schema":{"type":"string","format":"date-time"}}],` +
			`"result":{"name":"result","schema":{"type":"string","format":"date-time"}},"x-wsrpc-direction":"server"}`},
		{"grow", DirectionServer, `{"name":"grow","paramStructure":"either","params":[{"name":"kids","required":true,"schema":true}],` +
			`"result":{"name":"result","schema":true},"x-wsrpc-direction":"server"}`},
		{"echo", DirectionServer, `{"name":"echo","paramStructure":"either","params":[{"name":"params","schema":true}],` +
			`"result":{"name":"result","schema":true},"x-wsrpc-direction":"server"}`},
		{"raw", DirectionServer, `{"name":"raw","params":[{"name":"params","schema":true}],"result":{"name":"result","schema":true},"x-wsrpc-direction":"server"}`},
		{"handled", DirectionServer, `{"name":"handled","params":[{"name":"params","schema":true}],"result":{"name":"result","schema":true},"x-wsrpc-direction":"server"}`},
		{"moved", DirectionServer, `{"name":"moved","summary":"The pointer moved.","paramStructure":"either","params":[` +
			`{"name":"x","required":true,"schema":{"type":"number"}},{"name":"y","required":true,"schema":{"type":"number"}}],"x-wsrpc-direction":"server"}`},
		{"moved", DirectionClient, `{"name":"moved","paramStructure":"either","params":[` +
			`{"name":"x","required":true,"schema":{"type":"number"}},{"name":"y","required":true,"schema":{"type":"number"}}],"x-wsrpc-direction":"client"}`},
		{"client.confirm", DirectionClient, `{"name":"client.confirm","summary":"Asks the user.","paramStructure":"either","params":[` +
			`{"name":"x","required":true,"schema":{"type":"number"}},{"name":"y","required":true,"schema":{"type":"number"}}],` +
			`"result":{"name":"result","schema":{"type":"boolean"}},"x-wsrpc-direction":"client"}`},
		{"track", DirectionServer, `{"name":"track","summary":"Where the named pointers go.","paramStructure":"by-position","params":[{"name":"args","schema":{"type":"string"},"x-wsrpc-variadic":true}],` +
			`"result":{"name":"subscription","schema":{"type":"string"}},"x-wsrpc-direction":"server","x-wsrpc-stream":true,` +
			`"x-wsrpc-stream-values":{"name":"value","schema":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}}}`},
		{"client.tick", DirectionClient, `{"name":"client.tick","paramStructure":"by-position","params":[{"name":"arg","required":true,"schema":{"type":"string"}}],"x-wsrpc-direction":"client"}`},
	} {
		equal(t, c.name+" "+c.dir, jsonOf(t, method(t, d, c.name, c.dir)), c.want)
	}

	find := method(t, d, "shapes.find", DirectionServer)
	equal(t, "shapes.find summary", find.Summary, "Finds shapes near a point.")
	equal(t, "shapes.find errors (the nil one left out)", jsonOf(t, find.Errors), `[{"code":4004,"message":"not found","data":{"hint":"look elsewhere"}}]`)
	equal(t, "shapes.find result", jsonOf(t, find.Result),
		`{"name":"result","schema":{"type":["null","array"],"items":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}}}`)
	if len(find.Params) != 3 {
		t.Fatalf("shapes.find params: %s", jsonOf(t, find.Params))
	}
	equal(t, "p", jsonOf(t, find.Params[0]),
		`{"name":"p","required":true,"schema":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}}`)
	equal(t, "limit", jsonOf(t, find.Params[2]), `{"name":"limit","schema":{"type":"integer"}}`)
	n := find.Params[1]
	equal(t, "n: a pointer, not required", n.Name+" "+jsonOf(t, n.Required), "n false")
	props := n.Schema.Properties
	for name, want := range map[string]string{
		"name":  `{"type":"string","description":"who"}`,
		"at":    `{"type":"string","format":"date-time"}`,
		"blob":  `{"type":["null","string"],"contentEncoding":"base64"}`,
		"raw":   `true`,
		"praw":  `true`,
		"addr":  `{"type":"string"}`,
		"inner": `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":["null","integer"]}},"required":["a"],"additionalProperties":false}`,
		"m":     `{"type":"object","additionalProperties":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}}`,
		"mixed": `{"type":"object","additionalProperties":{"type":["null","object"],"properties":{"a":{"type":"integer"},"b":{"type":["null","integer"]}},"required":["a"],"additionalProperties":false}}`,
	} {
		equal(t, "n."+name, jsonOf(t, props[name]), want)
	}
	equal(t, "n: the core's rule for required fields, nested", strings.Join(n.Schema.Required, " "), "name at blob raw addr inner m")
	if _, ok := props["Skip"]; ok {
		t.Error(`a field tagged "-" is described`)
	}
}

func TestDocumentExampleContract(t *testing.T) {
	t.Parallel()
	m := api.Methods()
	d, err := Document(m, Info{Title: "example", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, encode(t, d))
	// Declared but not yet registered (NewServer registers them): not
	// served, so not listed.
	var names []string
	for _, me := range d.Methods {
		names = append(names, me.Name)
	}
	equal(t, "methods", strings.Join(names, " "), "countdown echo fail get_data math.sum news notify_hello notify_sum reverse.call reverse.notify sleep subtract sum update")
	equal(t, "subtract", jsonOf(t, method(t, d, "subtract", DirectionServer)),
		`{"name":"subtract","paramStructure":"either","params":[{"name":"minuend","required":true,"schema":{"type":"number"}},`+
			`{"name":"subtrahend","required":true,"schema":{"type":"number"}}],"result":{"name":"result","schema":{"type":"number"}},"x-wsrpc-direction":"server"}`)
	equal(t, "news", jsonOf(t, method(t, d, "news", DirectionClient)),
		`{"name":"news","paramStructure":"either","params":[{"name":"text","required":true,"schema":{"type":"string"}}],"x-wsrpc-direction":"client"}`)
}

// discover calls rpc.discover on m as a call over HTTP would, with
// identity.
func discover(t *testing.T, m *wsrpc.Methods, identity any) (json.RawMessage, error) {
	t.Helper()
	ctx := wsrpc.WithHTTPRequest(context.Background(), &http.Request{Host: "127.0.0.1", RemoteAddr: "127.0.0.1:1"}, identity)
	res, err := m.Invoke(ctx, &wsrpc.Request{Method: "rpc.discover"}, nil)
	if err != nil {
		return nil, err
	}
	doc, ok := res.(json.RawMessage)
	if !ok {
		t.Fatalf("rpc.discover answered a %T", res)
	}
	return doc, nil
}

func TestServeCache(t *testing.T) {
	t.Parallel()
	m := everyKind()
	info := Info{Title: "cache", Version: "1"}
	Serve(m, info)
	first, err := discover(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, first)
	want, _ := Document(m, info)
	equal(t, "the served document is Document's", string(first), string(encode(t, want)))

	again, err := discover(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(again) != unsafe.SliceData(first) {
		t.Fatal("the document was built again with no change to the table")
	}

	// A method registered while serving is listed at the next call.
	wsrpc.Register(m, "late", func(context.Context, []string) (int, error) { return 0, nil })
	third, err := discover(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(third) == unsafe.SliceData(first) || !strings.Contains(string(third), `"name":"late"`) {
		t.Fatalf("the new method is not in the document: %s", third)
	}
	validate(t, third)
	fourth, _ := discover(t, m, nil)
	if unsafe.SliceData(fourth) != unsafe.SliceData(third) {
		t.Fatal("the rebuilt document is not kept")
	}

	// So is one declared with Calls, and a new summary of a method.
	m.Calls(wsrpc.NewNotification[int]("client.later"))
	fifth, _ := discover(t, m, nil)
	if !strings.Contains(string(fifth), `"name":"client.later"`) {
		t.Fatalf("the new call is not in the document: %s", fifth)
	}
	m.Calls(wsrpc.NewNotification[int]("client.later").Doc("Later."))
	sixth, _ := discover(t, m, nil)
	if !strings.Contains(string(sixth), `"summary":"Later."`) {
		t.Fatalf("the new summary is not in the document: %s", sixth)
	}
}

func TestServeGuarded(t *testing.T) {
	t.Parallel()
	m := api.Methods()
	m.Guard(wsrpc.RequireIdentity("role", "admin"))
	Serve(m, Info{Title: "guarded", Version: "1"})
	if _, err := discover(t, m, nil); !errors.Is(err, wsrpc.ErrUnauthorized) {
		t.Fatalf("without identity: %v, want CodeUnauthorized", err)
	}
	if _, err := discover(t, m, map[string]string{"role": "guest"}); !errors.Is(err, wsrpc.ErrUnauthorized) {
		t.Fatalf("as a guest: %v, want CodeUnauthorized", err)
	}
	doc, err := discover(t, m, map[string]string{"role": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
}

func TestServeTwicePanics(t *testing.T) {
	t.Parallel()
	m := wsrpc.NewMethods()
	Serve(m, Info{Title: "t", Version: "1"})
	defer func() {
		if recover() == nil {
			t.Fatal("a second Serve on one table did not panic")
		}
	}()
	Serve(m, Info{Title: "t", Version: "1"})
}

// TestDiscoverWebSocket serves the example contract with a wsrpc.Server,
// dials it and calls rpc.discover, as a client would, and over HTTP POST;
// a guard refuses the document to a peer without the identity it wants.
func TestDiscoverWebSocket(t *testing.T) {
	t.Parallel()
	m := api.Methods()
	Serve(m, Info{Title: "example", Version: "1.0.0", Servers: []Server{{URL: "ws://127.0.0.1/rpc"}}},
		wsrpc.Guarded(wsrpc.RequireIdentity("role")))
	srv := api.NewServer(&wsrpc.ServerOptions{Methods: m})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
	})
	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(ts.URL, "http")

	p, err := wsrpc.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var doc json.RawMessage
	if err := p.Call(ctx, "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	validate(t, doc)
	var d Doc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	// NewServer registered the rest of the contract after Serve: listed.
	method(t, &d, "admin.stats", DirectionServer)
	method(t, &d, "news.publish", DirectionServer)
	method(t, &d, "news", DirectionClient)

	hc := wsrpc.NewHTTPClient(ts.URL, nil)
	var viaPOST json.RawMessage
	if err := hc.Call(ctx, "rpc.discover", nil, &viaPOST); err != nil {
		t.Fatal(err)
	}
	equal(t, "over HTTP POST", string(viaPOST), string(doc))

	// The server's Authenticate makes every peer a guest; without it
	// there is no identity, and the guard Serve was given refuses.
	bare := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m})
	ts2 := httptest.NewServer(bare)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bare.Shutdown(ctx)
		ts2.Close()
	})
	p2, err := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(ts2.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := p2.Call(ctx, "rpc.discover", nil, &doc); !errors.Is(err, wsrpc.ErrUnauthorized) {
		t.Fatalf("without identity: %v, want CodeUnauthorized", err)
	}
}
