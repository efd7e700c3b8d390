// Command client walks through wsrpc's features against the example server.
//
//	go run ./examples/client                           # starts a server in-process
//	go run ./examples/client -url ws://127.0.0.1:8095/rpc
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

func main() {
	url := flag.String("url", "", "server URL (default: start the example server in-process)")
	flag.Parse()
	if err := run(*url); err != nil {
		log.Fatal(err)
	}
}

func run(url string) error {
	ctx := context.Background()
	if url == "" {
		stop, u, err := startServer()
		if err != nil {
			return err
		}
		defer stop()
		url = u
		fmt.Println("started the example server at", url)
	}

	// The client serves methods too: the server calls them back over the
	// same socket.
	mine := wsrpc.NewMethods()
	wsrpc.Register(mine, "client.greet", func(_ context.Context, who []string) (string, error) {
		return "hello, " + who[0] + ", from the client", nil
	})
	wsrpc.Register(mine, "client.refuse", func(context.Context, any) (any, error) {
		return nil, &wsrpc.Error{Code: -32050, Message: "the client says no"}
	})
	notified := make(chan string, 1)
	wsrpc.Register(mine, "client.news", func(_ context.Context, p []string) (any, error) {
		notified <- p[0]
		return nil, nil
	})
	// The contract's own notification, served through its descriptor.
	news := make(chan api.NewsArgs, 1)
	api.News.Register(mine, func(_ context.Context, n api.NewsArgs) error {
		news <- n
		return nil
	})

	peer, err := wsrpc.Dial(ctx, url, &wsrpc.DialOptions{Methods: mine, CancelMethod: wsrpc.LSPCancel})
	if err != nil {
		return err
	}
	defer peer.Close()

	step("call with positional params: subtract [42, 23]")
	var diff float64
	if err := peer.Call(ctx, "subtract", []int{42, 23}, &diff); err != nil {
		return err
	}
	fmt.Println("   =", diff)

	step("call with named params: subtract {minuend: 42, subtrahend: 23}")
	diff, err = wsrpc.Call[float64](ctx, peer, "subtract", api.SubtractArgs{Minuend: 42, Subtrahend: 23})
	if err != nil {
		return err
	}
	fmt.Println("   =", diff)

	step("dotted method name: math.sum [1.5, 2]")
	total, err := wsrpc.Call[float64](ctx, peer, "math.sum", []float64{1.5, 2})
	if err != nil {
		return err
	}
	fmt.Println("   =", total)

	step("notification: update [1, 2, 3] (no response)")
	if err := peer.Notify(ctx, "update", []int{1, 2, 3}); err != nil {
		return err
	}
	fmt.Println("   sent")

	step("batch in a closure: three calls and a notification in one message")
	var sum float64
	var data []any
	var calls [3]*wsrpc.BatchCall
	err = peer.Batch(ctx, func(b *wsrpc.Batch) {
		calls[0] = b.Call("sum", []int{1, 2, 4}, &sum)
		b.Notify("notify_hello", []int{7})
		calls[1] = b.Call("get_data", nil, &data)
		calls[2] = b.Call("no.such.method", nil, nil)
	})
	if err != nil {
		return err
	}
	fmt.Printf("   sum = %v (err %v)\n   get_data = %v (err %v)\n   no.such.method: %v\n",
		sum, calls[0].Err(), data, calls[1].Err(), calls[2].Err())

	step("an error with code, message and data: fail")
	err = peer.Call(ctx, "fail", api.FailArgs{Code: 4001, Message: "out of coffee", Data: json.RawMessage(`{"cups":0}`)}, nil)
	var rpcErr *wsrpc.Error
	if !errors.As(err, &rpcErr) {
		return fmt.Errorf("expected a JSON-RPC error, got %v", err)
	}
	fmt.Printf("   code %d, message %q, data %s\n", rpcErr.Code, rpcErr.Message, rpcErr.Data)

	step("wrong params: subtract [\"a\", 1]")
	err = peer.Call(ctx, "subtract", []any{"a", 1}, nil)
	fmt.Printf("   %v (errors.Is ErrInvalidParams: %v)\n", err, errors.Is(err, wsrpc.ErrInvalidParams))

	step("the server calls the client back: reverse.call client.greet [\"gopher\"]")
	var greeting string
	if err := peer.Call(ctx, "reverse.call", api.ReverseArgs{Method: "client.greet", Params: json.RawMessage(`["gopher"]`)}, &greeting); err != nil {
		return err
	}
	fmt.Println("   =", greeting)

	step("a client error travels back through the server: reverse.call client.refuse")
	err = peer.Call(ctx, "reverse.call", api.ReverseArgs{Method: "client.refuse"}, nil)
	fmt.Println("   ", err)

	step("the server notifies the client: reverse.notify client.news")
	if err := peer.Call(ctx, "reverse.notify", api.ReverseArgs{Method: "client.news", Params: json.RawMessage(`["extra! extra!"]`)}, nil); err != nil {
		return err
	}
	fmt.Println("   the client received:", <-notified)

	step("concurrent calls share the socket: 5 x sleep 100ms")
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range 5 {
		g.Go(func() error { return peer.Call(gctx, "sleep", api.SleepArgs{MS: 100}, nil) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Printf("   all 5 done in %v\n", time.Since(start).Round(10*time.Millisecond))

	step("cancelling a call returns at once, stops the server's handler ($/cancelRequest), and leaves the connection up")
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	err = peer.Call(cctx, "sleep", api.SleepArgs{MS: 1000}, nil)
	cancel()
	fmt.Println("   sleep 1000ms with a 20ms deadline:", err)
	var echoed json.RawMessage
	if err := peer.Call(ctx, "echo", json.RawMessage(`[18446744073709551615, "still here"]`), &echoed); err != nil {
		return err
	}
	fmt.Println("   then echo:", string(echoed))

	step("a stream: countdown from 5 through a buffer of 2 (the server waits while the client's buffer is full)")
	sub, err := api.Countdown.Subscribe(ctx, peer, api.CountdownArgs{From: 5}, &wsrpc.SubscribeOptions{Buffer: 2})
	if err != nil {
		return err
	}
	fmt.Print("  ")
	for v, err := range sub.All() {
		if err != nil {
			return err
		}
		fmt.Print(" ", v)
	}
	fmt.Println(" (end)")

	step("the API declared once: api.MathSum.Call(ctx, peer, api.PairArgs{X: 1.5, Y: 2})")
	total, err = api.MathSum.Call(ctx, peer, api.PairArgs{X: 1.5, Y: 2})
	if err != nil {
		return err
	}
	fmt.Println("   =", total, "(the compiler checked the params and the result)")

	step("a guarded method: admin.stats as a guest")
	_, err = api.AdminStats.Call(ctx, peer, nil)
	fmt.Printf("   %v (errors.Is ErrUnauthorized: %v)\n", err, errors.Is(err, wsrpc.ErrUnauthorized))

	step("admin.stats on a connection that presents the admin token")
	admin, err := wsrpc.Dial(ctx, url, &wsrpc.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + api.AdminToken}},
	})
	if err != nil {
		return err
	}
	defer admin.Close()
	stats, err := api.AdminStats.Call(ctx, admin, nil)
	if err != nil {
		return err
	}
	fmt.Printf("   %d peers connected, %d methods served\n", stats.Peers, len(stats.Methods))

	step("a broadcast: news.publish sends \"news\" to every connected client")
	sent, err := api.NewsPublish.Call(ctx, peer, api.NewsArgs{Text: "extra! broadcast!"})
	if err != nil {
		return err
	}
	fmt.Printf("   sent to %d clients; this one received %q\n", sent, (<-news).Text)

	step("HTTP POST on the same route: the same descriptors through an HTTPClient")
	hc := wsrpc.NewHTTPClient(httpURL(url), &wsrpc.HTTPClientOptions{MaxMessageSize: api.MaxMessageSize})
	diff, err = api.Subtract.Call(ctx, hc, api.SubtractArgs{Minuend: 42, Subtrahend: 23})
	if err != nil {
		return err
	}
	fmt.Println("   subtract =", diff)
	var pair float64
	var unknown *wsrpc.BatchCall
	err = hc.Batch(ctx, func(b *wsrpc.HTTPBatch) {
		api.Sum.Batch(b, []float64{1, 2, 4}, &sum)
		api.MathSum.Batch(b, api.PairArgs{X: 20, Y: 22}, &pair)
		unknown = b.Call("no.such.method", nil, nil)
	})
	if err != nil {
		return err
	}
	fmt.Printf("   a batch in one POST: sum = %v, math.sum = %v, no.such.method: %v\n", sum, pair, unknown.Err())
	_, err = api.AdminStats.Call(ctx, hc, nil)
	fmt.Println("   guards hold over HTTP too:", err)

	step("close")
	if err := admin.Close(); err != nil {
		return err
	}
	if err := peer.Close(); err != nil {
		return err
	}
	fmt.Println("   closed:", peer.Err())
	return nil
}

// httpURL is the http(s):// URL of the same route as the ws(s):// url.
func httpURL(url string) string {
	if rest, ok := strings.CutPrefix(url, "ws"); ok {
		return "http" + rest
	}
	return url
}

var n int

func step(s string) {
	n++
	fmt.Printf("\n%2d. %s\n", n, s)
}

// startServer runs the example server on a free loopback port.
func startServer() (stop func(), url string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := api.NewServer(nil)
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Shutdown(ctx)
	}, "ws://" + ln.Addr().String() + "/rpc", nil
}
