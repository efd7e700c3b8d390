package prom_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/prom"
)

// New's Metrics observe a Server (or a Dial, or an HTTPClient) and are
// registered on the registry that /metrics serves.
func Example() {
	metrics := prom.New(nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)

	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "math.sum", func(_ context.Context, xs []int) (int, error) {
		return xs[0] + xs[1], nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: metrics})
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc", nil)
	if err != nil {
		panic(err)
	}
	wsrpc.Call[int](ctx, peer, "math.sum", []int{1, 2})
	wsrpc.Call[int](ctx, peer, "math.sum", []int{3, 4})
	peer.Call(ctx, "no.such.method", nil, nil) // under method="_OTHER"
	peer.Close()
	srv.Shutdown(ctx) // every handler has ended

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "wsrpc_handled_total{") {
			fmt.Println(lines.Text())
		}
	}
	// Output:
	// wsrpc_handled_total{code="-32601",direction="server",method="_OTHER",type="call"} 1
	// wsrpc_handled_total{code="OK",direction="server",method="math.sum",type="call"} 2
}
