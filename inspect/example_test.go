package inspect_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/inspect"
)

// An Inspector observes a Server, answers inspect.snapshot and
// inspect.watch (guarded here: local callers only), and serves its page.
func Example() {
	in := inspect.New(nil)
	defer in.Close()
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "math.sum", func(_ context.Context, xs []int) (int, error) {
		return xs[0] + xs[1], nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: in})
	in.Register(methods, srv, wsrpc.Guarded(wsrpc.AllowHosts("localhost")))
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	mux.Handle("/debug/wsrpc", in.Handler()) // the page
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc", nil)
	if err != nil {
		panic(err)
	}
	defer peer.Close()
	wsrpc.Call[int](ctx, peer, "math.sum", []int{1, 2})
	peer.Call(ctx, "no.such.method", nil, nil)

	snap, err := wsrpc.Call[inspect.Snapshot](ctx, peer, inspect.SnapshotMethod, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("peers:", snap.PeerCount)
	for _, m := range snap.Methods {
		fmt.Printf("%s %s: %d calls, %d errors\n", m.Method, m.Direction, m.Calls, m.Errors)
	}
	// Output:
	// peers: 1
	// inspect.snapshot in: 0 calls, 0 errors
	// inspect.watch in: 0 calls, 0 errors
	// math.sum in: 1 calls, 0 errors
	// (unknown) in: 1 calls, 1 errors
}
