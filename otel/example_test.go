package otel_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/wsrpc/wsrpc"
	wsotel "github.com/wsrpc/wsrpc/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// New makes an Observer of a TracerProvider and a MeterProvider (nil:
// the global ones); put it in the options of a Server, Dial or
// HTTPClient.
func Example() {
	// An SDK exporting to memory here; in a program, whatever exporters
	// it has set up.
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	obs := wsotel.New(&wsotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})

	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "math.sum", func(_ context.Context, xs []int) (int, error) {
		return xs[0] + xs[1], nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: obs})
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	peer, err := wsrpc.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), &wsrpc.DialOptions{Observer: obs})
	if err != nil {
		panic(err)
	}
	sum, _ := wsrpc.Call[int](ctx, peer, "math.sum", []int{1, 2})
	err = peer.Call(ctx, "no.such.method", nil, nil)
	fmt.Println(sum, err)
	peer.Close()
	srv.Shutdown(ctx) // every handler, and so every span, has ended

	var names []string
	for _, s := range spans.Ended() {
		names = append(names, fmt.Sprintf("%s %s", s.SpanKind(), s.Name()))
	}
	slices.Sort(names)
	fmt.Println(strings.Join(names, "\n"))

	var rm metricdata.ResourceMetrics
	reader.Collect(ctx, &rm)
	var points []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			method, _ := p.Attributes.Value("rpc.method")
			points = append(points, fmt.Sprintf("%s %s %d", m.Name, method.AsString(), p.Count))
		}
	}
	slices.Sort(points)
	fmt.Println(strings.Join(points, "\n"))
	// Output:
	// 3 jsonrpc error -32601: method not found: "no.such.method"
	// client math.sum
	// client no.such.method
	// server jsonrpc
	// server math.sum
	// rpc.client.call.duration math.sum 1
	// rpc.client.call.duration no.such.method 1
	// rpc.server.call.duration _OTHER 1
	// rpc.server.call.duration math.sum 1
}
