package wsrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"

	"github.com/wsrpc/wsrpc"
)

type SumArgs struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// serve starts a test server for the handler and returns its ws:// URL.
func serve(h http.Handler) (url string, stop func()) {
	hs := httptest.NewServer(h)
	return "ws" + strings.TrimPrefix(hs.URL, "http"), hs.Close
}

// A Server serves a method table; Dial connects a Peer to it.
func Example() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "math.sum", func(_ context.Context, a SumArgs) (int, error) {
		return a.X + a.Y, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, url, nil)
	if err != nil {
		panic(err)
	}
	defer peer.Close()

	// Positional params map to the struct's fields in order...
	sum, err := wsrpc.Call[int](ctx, peer, "math.sum", []int{1, 2})
	fmt.Println(sum, err)
	// ...named params to its json tags.
	var named int
	err = peer.Call(ctx, "math.sum", map[string]int{"x": 3, "y": 4}, &named)
	fmt.Println(named, err)
	// Output:
	// 3 <nil>
	// 7 <nil>
}

// Accept turns a request inside any http.Handler into a Peer.
func ExampleAccept() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "whoami", func(ctx context.Context, _ any) (string, error) {
		// The handler reaches its peer, and the upgrade request.
		return wsrpc.PeerFromContext(ctx).HTTPRequest().Header.Get("X-User"), nil
	})
	done := make(chan struct{})
	url, stop := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := wsrpc.Accept(w, r, &wsrpc.AcceptOptions{Methods: methods})
		if err != nil {
			return
		}
		<-peer.Done()
		peer.Close()
		close(done)
	}))
	defer stop()

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, url, &wsrpc.DialOptions{HTTPHeader: http.Header{"X-User": {"ada"}}})
	if err != nil {
		panic(err)
	}
	name, _ := wsrpc.Call[string](ctx, peer, "whoami", nil)
	fmt.Println(name)
	peer.Close()
	<-done
	// Output: ada
}

// Notify sends a notification: no response, no id.
func ExamplePeer_Notify() {
	got := make(chan string, 1)
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "log", func(_ context.Context, lines []string) (any, error) {
		got <- lines[0]
		return nil, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	peer, _ := wsrpc.Dial(context.Background(), url, nil)
	defer peer.Close()
	peer.Notify(context.Background(), "log", []string{"hello"})
	fmt.Println(<-got)
	// Output: hello
}

// Batch sends its calls and notifications in one message when the closure
// returns; each call has its own outcome.
func ExamplePeer_Batch() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	peer, _ := wsrpc.Dial(context.Background(), url, nil)
	defer peer.Close()

	var a, b int
	var missing *wsrpc.BatchCall
	err := peer.Batch(context.Background(), func(batch *wsrpc.Batch) {
		batch.Call("double", []int{1}, &a)
		batch.Call("double", []int{21}, &b)
		missing = batch.Call("triple", []int{1}, nil)
		batch.Notify("double", []int{0})
	})
	fmt.Println(a, b, err)
	fmt.Println(errors.Is(missing.Err(), wsrpc.ErrMethodNotFound))
	// Output:
	// 2 42 <nil>
	// true
}

// A handler can call back the peer that called it, over the same socket.
func ExamplePeerFromContext() {
	server := wsrpc.NewMethods()
	wsrpc.Register(server, "greet", func(ctx context.Context, _ any) (string, error) {
		name, err := wsrpc.Call[string](ctx, wsrpc.PeerFromContext(ctx), "client.name", nil)
		return "hello, " + name, err
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: server})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	client := wsrpc.NewMethods()
	wsrpc.Register(client, "client.name", func(context.Context, any) (string, error) {
		return "gopher", nil
	})
	peer, _ := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{Methods: client})
	defer peer.Close()
	greeting, _ := wsrpc.Call[string](context.Background(), peer, "greet", nil)
	fmt.Println(greeting)
	// Output: hello, gopher
}

// Errors travel with their code, message and data, and match by code.
func ExampleError() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "withdraw", func(_ context.Context, amount []int) (int, error) {
		return 0, wsrpc.NewError(-32010, "insufficient funds", map[string]int{"balance": 5})
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	peer, _ := wsrpc.Dial(context.Background(), url, nil)
	defer peer.Close()
	err := peer.Call(context.Background(), "withdraw", []int{10}, nil)
	var e *wsrpc.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Message, string(e.Data))
	}
	fmt.Println(errors.Is(peer.Call(context.Background(), "deposit", nil, nil), wsrpc.ErrMethodNotFound))
	// Output:
	// -32010 insufficient funds {"balance":5}
	// true
}

// ---- application API: descriptors, middleware and guards, broadcast, HTTP ----

// The API, declared once in a package that the server and its clients
// share.
var (
	Add   = wsrpc.NewMethod[SumArgs, int]("math.add")
	Twice = wsrpc.NewMethod[int, int]("math.twice") // a scalar travels as [n]
	Audit = wsrpc.NewNotification[[]string]("audit")
	API   = []wsrpc.Descriptor{Add, Twice, Audit}
)

// A Method declares a method once; the server registers it and clients
// call it, over WebSocket or HTTP, with the types checked by the compiler.
func ExampleMethod() {
	methods := wsrpc.NewMethods()
	Add.Register(methods, func(_ context.Context, a SumArgs) (int, error) { return a.X + a.Y, nil })
	Twice.Register(methods, func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer peer.Close()
	sum, err := Add.Call(ctx, peer, SumArgs{X: 1, Y: 2})
	fmt.Println(sum, err)

	// The same descriptor over HTTP POST, on the same route.
	client := wsrpc.NewHTTPClient(hs.URL, nil)
	n, err := Twice.Call(ctx, client, 21)
	fmt.Println(n, err)

	// And in a batch.
	var a, b int
	err = peer.Batch(ctx, func(batch *wsrpc.Batch) {
		Add.Batch(batch, SumArgs{X: 2, Y: 3}, &a)
		Twice.Batch(batch, 4, &b)
	})
	fmt.Println(a, b, err)
	// Output:
	// 3 <nil>
	// 42 <nil>
	// 5 8 <nil>
}

// Declare lists the API a table is meant to serve; Unhandled tells what is
// still missing, at start-up or in a test.
func ExampleMethods_Declare() {
	methods := wsrpc.NewMethods()
	methods.Declare(API...)
	Add.Register(methods, func(_ context.Context, a SumArgs) (int, error) { return a.X + a.Y, nil })
	fmt.Println("unhandled:", methods.Unhandled())
	fmt.Println("served:", methods.Names())
	// Output:
	// unhandled: [audit math.twice]
	// served: [math.add]
}

// Guards decide who may call what. The identity comes from
// ServerOptions.Authenticate, over WebSocket and HTTP alike.
func ExampleGuarded() {
	methods := wsrpc.NewMethods()
	methods.Guard(wsrpc.AllowHosts("localhost")) // every method: loopback callers only
	wsrpc.Register(methods, "admin.reset", func(context.Context, any) (string, error) {
		return "done", nil
	}, wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin"))) // this one: admins only
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods: methods,
		Authenticate: func(r *http.Request) (any, error) {
			// A real server checks a token or a session cookie here.
			if r.Header.Get("Authorization") == "Bearer s3cret" {
				return map[string]string{"role": "admin"}, nil
			}
			return map[string]string{"role": "guest"}, nil
		},
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	ctx := context.Background()

	guest := wsrpc.NewHTTPClient(hs.URL, nil)
	_, err := wsrpc.Call[string](ctx, guest, "admin.reset", nil) // an HTTPClient is a Caller too
	fmt.Println(errors.Is(err, wsrpc.ErrUnauthorized), err)

	admin, _ := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), &wsrpc.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer s3cret"}},
	})
	defer admin.Close()
	res, err := wsrpc.Call[string](ctx, admin, "admin.reset", nil)
	fmt.Println(res, err)
	// Output:
	// true jsonrpc error -32002: unauthorized: requires "role"
	// done <nil>
}

// Logging logs one record per call; Recover inside it maps panics to the
// code they are answered with.
func ExampleLogging() {
	// Times and addresses vary: leave them out of this example's output.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" || a.Key == "remote" {
				return slog.Attr{}
			}
			return a
		},
	}))
	methods := wsrpc.NewMethods()
	methods.Use(wsrpc.Logging(logger), wsrpc.Recover(slog.New(slog.DiscardHandler)))
	Twice.Register(methods, func(_ context.Context, n int) (int, error) {
		if n < 0 {
			panic("negative")
		}
		return 2 * n, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	client := wsrpc.NewHTTPClient(hs.URL, nil)
	Twice.Call(context.Background(), client, 2)
	Twice.Call(context.Background(), client, -1)
	// Output:
	// level=INFO msg="wsrpc: served" method=math.twice
	// level=ERROR msg="wsrpc: served" method=math.twice code=-32603 err="jsonrpc error -32603: internal error"
}

// Broadcast sends one notification to many peers without waiting for any
// of them; a filter picks the peers.
func ExampleServer_Broadcast() {
	connected := make(chan *wsrpc.Peer, 3)
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{OnConnect: func(p *wsrpc.Peer) { connected <- p }})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx := context.Background()

	got := make(chan string, 3)
	for _, name := range []string{"ann", "bob", "cid"} {
		methods := wsrpc.NewMethods()
		Audit.Register(methods, func(_ context.Context, lines []string) error {
			got <- name + ": " + lines[0]
			return nil
		})
		peer, err := wsrpc.Dial(ctx, url, &wsrpc.DialOptions{Methods: methods, HTTPHeader: http.Header{"X-Name": {name}}})
		if err != nil {
			panic(err)
		}
		defer peer.Close()
		<-connected // the server has registered the peer
	}

	res, err := srv.Broadcast(ctx, Audit.Name(), []string{"to all"}, nil)
	fmt.Println(res.Sent, err)
	var lines []string
	for range 3 {
		lines = append(lines, <-got)
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "; "))

	res, _ = srv.Broadcast(ctx, Audit.Name(), []string{"to bob"}, func(p *wsrpc.Peer) bool {
		return p.HTTPRequest().Header.Get("X-Name") == "bob"
	})
	fmt.Println(res.Sent, <-got)
	// Output:
	// 3 <nil>
	// ann: to all; bob: to all; cid: to all
	// 1 bob: to bob
}

// An HTTPClient posts JSON-RPC to a Server's route: calls, notifications
// and batches, each one POST.
func ExampleHTTPClient() {
	methods := wsrpc.NewMethods()
	Add.Register(methods, func(_ context.Context, a SumArgs) (int, error) { return a.X + a.Y, nil })
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	ctx := context.Background()

	client := wsrpc.NewHTTPClient(hs.URL, nil)
	var sum int
	err := client.Call(ctx, "math.add", []int{1, 2}, &sum)
	fmt.Println(sum, err)

	var a int
	var missing *wsrpc.BatchCall
	err = client.Batch(ctx, func(b *wsrpc.HTTPBatch) {
		Add.Batch(b, SumArgs{X: 20, Y: 22}, &a)
		missing = b.Call("math.mul", []int{2, 3}, nil)
	})
	fmt.Println(a, err, errors.Is(missing.Err(), wsrpc.ErrMethodNotFound))

	// A plain POST works too: 200 with the answer, 204 for notifications.
	resp, err := http.Post(hs.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"math.add","params":{"x":1,"y":1}}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// 3 <nil>
	// 42 <nil> true
	// 200 OK
}

// Pipe connects two peers in memory, to unit-test handlers and the calls
// they make back without a server or a socket.
func ExamplePipe() {
	server := wsrpc.NewMethods()
	wsrpc.Register(server, "greet", func(ctx context.Context, _ any) (string, error) {
		// A handler calling back the peer that called it.
		name, err := wsrpc.Call[string](ctx, wsrpc.PeerFromContext(ctx), "client.name", nil)
		return "hello, " + name, err
	})
	client := wsrpc.NewMethods()
	wsrpc.Register(client, "client.name", func(context.Context, any) (string, error) { return "ada", nil })

	c, s := wsrpc.Pipe(&wsrpc.PeerOptions{Methods: client}, &wsrpc.PeerOptions{Methods: server})
	defer s.Close()
	defer c.Close()
	greeting, err := wsrpc.Call[string](context.Background(), c, "greet", nil)
	fmt.Println(greeting, err)
	// Output: hello, ada <nil>
}

// A Key keeps a typed value per connection: here the user a login handler
// found, read by the handlers that come after it on the same connection.
func ExampleKey() {
	user := wsrpc.NewKey[string]("user")
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "login", func(ctx context.Context, name [1]string) (bool, error) {
		user.Set(wsrpc.PeerFromContext(ctx), name[0])
		return true, nil
	})
	wsrpc.Register(m, "whoami", func(ctx context.Context, _ any) (string, error) {
		u, ok := user.Get(wsrpc.PeerFromContext(ctx))
		if !ok {
			return "", wsrpc.NewError(wsrpc.CodeUnauthorized, "log in first", nil)
		}
		return u, nil
	})
	c, s := wsrpc.Pipe(nil, &wsrpc.PeerOptions{Methods: m})
	defer s.Close()
	defer c.Close()
	ctx := context.Background()
	_, err := wsrpc.Call[string](ctx, c, "whoami", nil)
	fmt.Println(err)
	wsrpc.Call[bool](ctx, c, "login", []string{"ada"})
	who, _ := wsrpc.Call[string](ctx, c, "whoami", nil)
	fmt.Println(who)
	// Output:
	// jsonrpc error -32002: log in first
	// ada
}

// Redial keeps a client connected: its calls wait for a connection, and
// OnConnect runs on each new one before they go out.
func ExampleRedial() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "hello", func(context.Context, any) (string, error) { return "hello", nil })
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	r := wsrpc.Redial(context.Background(), url, &wsrpc.RedialOptions{
		OnConnect: func(ctx context.Context, p *wsrpc.Peer) error {
			fmt.Println("connected")
			return nil
		},
		Repeatable: func(method string) bool { return method == "hello" },
	})
	defer r.Close()
	var s string
	err := r.Call(context.Background(), "hello", nil, &s)
	fmt.Println(s, err)
	// Output:
	// connected
	// hello <nil>
}

// With a CancelMethod on both sides, a caller that gives up stops the
// handler on the other side too: its ctx is cancelled, and the request is
// answered CodeRequestCancelled.
func ExamplePeerOptions_cancelMethod() {
	started, stopped := make(chan struct{}), make(chan error, 1)
	methods := wsrpc.NewMethods()
	methods.HandleRaw("report.build", func(ctx context.Context, _ json.RawMessage) (any, error) {
		close(started)
		<-ctx.Done() // a long job that watches its ctx
		stopped <- ctx.Err()
		return nil, ctx.Err()
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, CancelMethod: wsrpc.LSPCancel})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	peer, err := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{CancelMethod: wsrpc.LSPCancel})
	if err != nil {
		panic(err)
	}
	defer peer.Close()

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel() // the user closed the report
	}()
	fmt.Println("caller:", peer.Call(ctx, "report.build", nil, nil))
	fmt.Println("handler:", <-stopped)
	// Output:
	// caller: context canceled
	// handler: context canceled
}

type TickArgs struct {
	Count int `json:"count"`
}

// Ticks is a stream: subscribed to with TickArgs, it sends ints.
var Ticks = wsrpc.NewStream[TickArgs, int]("ticks")

// A stream sends values from the side that serves it to the side that
// subscribes, with backpressure: the producer waits while the subscriber's
// buffer is full.
func ExampleStream() {
	methods := wsrpc.NewMethods()
	Ticks.Register(methods, func(ctx context.Context, a TickArgs, sink *wsrpc.Sink[int]) error {
		for i := range a.Count {
			if err := sink.Send(ctx, i*i); err != nil {
				return err // the subscriber left, or the peer closed
			}
		}
		return nil // the stream ends
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, url, nil)
	if err != nil {
		panic(err)
	}
	defer peer.Close()

	sub, err := Ticks.Subscribe(ctx, peer, TickArgs{Count: 5}, &wsrpc.SubscribeOptions{Buffer: 2})
	if err != nil {
		panic(err)
	}
	for v, err := range sub.All() {
		if err != nil {
			panic(err)
		}
		fmt.Print(v, " ")
	}
	fmt.Println("end")
	// Output: 0 1 4 9 16 end
}

// Describe tells what a table serves and calls, from its registrations and
// descriptors: the openrpc module builds rpc.discover's document from it.
func ExampleMethods_Describe() {
	type MoveArgs struct {
		X     float64 `json:"x"`
		Y     float64 `json:"y"`
		Label *string `json:"label"` // a pointer: optional
	}
	methods := wsrpc.NewMethods()
	wsrpc.NewMethod[MoveArgs, bool]("move").Doc("Moves the cursor.").
		Register(methods, func(context.Context, MoveArgs) (bool, error) { return true, nil })
	Ticks.Register(methods, func(context.Context, TickArgs, *wsrpc.Sink[int]) error { return nil })
	methods.Calls(wsrpc.NewNotification[string]("client.toast")) // this side calls it on the other

	for _, mi := range methods.Describe() {
		fmt.Printf("%s calls=%v stream=%v structure=%s summary=%q\n", mi.Name, mi.Calls, mi.Stream, mi.ParamStructure, mi.Summary)
		for _, a := range mi.Args {
			fmt.Printf("  %s %v required=%v\n", a.Name, a.Type, a.Required)
		}
	}
	// Output:
	// client.toast calls=true stream=false structure=by-position summary=""
	// move calls=false stream=false structure=either summary="Moves the cursor."
	//   x float64 required=true
	//   y float64 required=true
	//   label *string required=false
	// ticks calls=false stream=true structure=either summary=""
	//   count int required=true
}

// Invoke runs a method of a table as a POST would, guards included: how
// another wire format serves the same table (see the weerpc package).
func ExampleMethods_Invoke() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "sum", func(_ context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})
	r, _ := http.NewRequest(http.MethodPost, "http://localhost/custom", nil)
	ctx := wsrpc.WithHTTPRequest(context.Background(), r, nil) // what guards see
	res, err := methods.Invoke(ctx, &wsrpc.Request{Method: "sum", Params: json.RawMessage(`[1,2,3]`)}, nil)
	fmt.Println(res, err)
	_, err = methods.Invoke(ctx, &wsrpc.Request{Method: "nope"}, nil)
	fmt.Println(err)
	// Output:
	// 6 <nil>
	// jsonrpc error -32601: method not found: "nope"
}
