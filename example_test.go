package wsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	srv := wsrpc.NewServer(&wsrpc.Options{Methods: methods})
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
		peer, err := wsrpc.Accept(w, r, &wsrpc.Options{Methods: methods})
		if err != nil {
			return
		}
		<-peer.Done()
		peer.Close()
		close(done)
	}))
	defer stop()

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, url, &wsrpc.Options{HTTPHeader: http.Header{"X-User": {"ada"}}})
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
	srv := wsrpc.NewServer(&wsrpc.Options{Methods: methods})
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
	srv := wsrpc.NewServer(&wsrpc.Options{Methods: methods})
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
	srv := wsrpc.NewServer(&wsrpc.Options{Methods: server})
	url, stop := serve(srv)
	defer stop()
	defer srv.Shutdown(context.Background())

	client := wsrpc.NewMethods()
	wsrpc.Register(client, "client.name", func(context.Context, any) (string, error) {
		return "gopher", nil
	})
	peer, _ := wsrpc.Dial(context.Background(), url, &wsrpc.Options{Methods: client})
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
	srv := wsrpc.NewServer(&wsrpc.Options{Methods: methods})
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
