package otel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wsrpc/wsrpc"
	wsotel "github.com/wsrpc/wsrpc/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// side is one end's telemetry: its spans and its metrics.
type side struct {
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	obs     wsrpc.Observer
}

func newSide() *side {
	s := &side{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader()}
	s.obs = wsotel.New(&wsotel.Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.metrics)),
	})
	return s
}

// span returns the one ended span named name of kind.
func (s *side) span(t *testing.T, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, sp := range s.spans.Ended() {
		if sp.Name() == name && sp.SpanKind() == kind {
			found = append(found, sp)
		}
	}
	require.Len(t, found, 1, "%s spans named %q", kind, name)
	return found[0]
}

// histogram returns the data points of the histogram named name.
func (s *side) histogram(t *testing.T, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, s.metrics.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, wsotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			if m.Name == name {
				require.Equal(t, "s", m.Unit)
				return m.Data.(metricdata.Histogram[float64]).DataPoints
			}
		}
	}
	return nil
}

// count returns how many measurements the points have whose attributes
// are exactly want.
func count(points []metricdata.HistogramDataPoint[float64], want ...attribute.KeyValue) uint64 {
	set := attribute.NewSet(want...)
	for _, p := range points {
		if p.Attributes.Equals(&set) {
			return p.Count
		}
	}
	return 0
}

func attrs(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

type sumArgs struct{ X, Y int }

// serve starts a Server observed by obs with the test's methods, wrapped
// in wrap when not nil, and returns its ws:// URL; it shuts down at the
// end of the test. Every handler has ended when Shutdown returns.
func serve(t *testing.T, obs wsrpc.Observer, wrap func(http.Handler) http.Handler, noted chan<- struct{}) (url string, shutdown func()) {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "math.sum", func(_ context.Context, a sumArgs) (int, error) { return a.X + a.Y, nil })
	wsrpc.Register(m, "fail", func(context.Context, any) (any, error) {
		return nil, &wsrpc.Error{Code: 409, Message: "busy"}
	})
	wsrpc.Register(m, "span", func(ctx context.Context, _ any) (string, error) {
		sc := trace.SpanFromContext(ctx).SpanContext()
		return sc.SpanID().String(), nil
	})
	wsrpc.Register(m, "callback", func(ctx context.Context, _ any) (string, error) {
		return wsrpc.Call[string](ctx, wsrpc.PeerFromContext(ctx), "client.echo", []string{"hi"})
	})
	m.HandleRaw("note", func(context.Context, json.RawMessage) (any, error) {
		noted <- struct{}{}
		return nil, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m, Observer: obs})
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	hs := httptest.NewServer(h)
	done := false
	shutdown = func() {
		if !done {
			done = true
			require.NoError(t, srv.Shutdown(context.Background()))
			hs.Close()
		}
	}
	t.Cleanup(shutdown)
	return "ws" + strings.TrimPrefix(hs.URL, "http"), shutdown
}

func dial(t *testing.T, url string, obs wsrpc.Observer) *wsrpc.Peer {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "client.echo", func(_ context.Context, s []string) (string, error) { return s[0], nil })
	p, err := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{Methods: m, Observer: obs})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestBothSides(t *testing.T) {
	t.Parallel()
	srvSide, cliSide := newSide(), newSide()
	noted := make(chan struct{}, 1)
	url, shutdown := serve(t, srvSide.obs, nil, noted)
	client := dial(t, url, cliSide.obs)
	ctx := context.Background()

	sum, err := wsrpc.Call[int](ctx, client, "math.sum", []int{1, 2})
	require.NoError(t, err)
	require.Equal(t, 3, sum)
	require.ErrorIs(t, client.Call(ctx, "fail", nil, nil), &wsrpc.Error{Code: 409})
	require.ErrorIs(t, client.Call(ctx, "no.such", nil, nil), wsrpc.ErrMethodNotFound)
	spanID, err := wsrpc.Call[string](ctx, client, "span", nil)
	require.NoError(t, err)
	echo, err := wsrpc.Call[string](ctx, client, "callback", nil)
	require.NoError(t, err)
	require.Equal(t, "hi", echo)
	require.NoError(t, client.Notify(ctx, "note", nil))
	<-noted
	require.NoError(t, client.Close())
	shutdown()

	// The server: one span per incoming call.
	sum1 := srvSide.span(t, "math.sum", trace.SpanKindServer)
	a := attrs(sum1)
	require.Equal(t, "jsonrpc", a["rpc.system.name"].AsString())
	require.Equal(t, "math.sum", a["rpc.method"].AsString())
	require.Equal(t, "2.0", a["jsonrpc.protocol.version"].AsString())
	require.Equal(t, "1", a["jsonrpc.request.id"].AsString())
	require.Equal(t, "127.0.0.1", a["server.address"].AsString())
	require.NotZero(t, a["server.port"].AsInt64())
	require.Equal(t, "127.0.0.1", a["network.peer.address"].AsString())
	require.NotContains(t, a, attribute.Key("error.type"))
	require.NotContains(t, a, attribute.Key("rpc.response.status_code"))
	require.Equal(t, codes.Unset, sum1.Status().Code)
	require.False(t, sum1.Parent().IsValid(), "no span in the upgrade request: a root")

	fail := srvSide.span(t, "fail", trace.SpanKindServer)
	a = attrs(fail)
	require.Equal(t, "409", a["rpc.response.status_code"].AsString())
	require.Equal(t, "409", a["error.type"].AsString())
	require.Equal(t, codes.Error, fail.Status().Code)
	require.Equal(t, "jsonrpc error 409: busy", fail.Status().Description)

	unknown := srvSide.span(t, "jsonrpc", trace.SpanKindServer)
	a = attrs(unknown)
	require.Equal(t, wsotel.Other, a["rpc.method"].AsString())
	require.Equal(t, "no.such", a["rpc.method_original"].AsString())
	require.Equal(t, "-32601", a["rpc.response.status_code"].AsString())
	require.Equal(t, codes.Error, unknown.Status().Code)

	require.Equal(t, spanID, srvSide.span(t, "span", trace.SpanKindServer).SpanContext().SpanID().String(),
		"the handler's context carries its server span")

	callback := srvSide.span(t, "callback", trace.SpanKindServer)
	echoOut := srvSide.span(t, "client.echo", trace.SpanKindClient)
	require.Equal(t, callback.SpanContext().SpanID(), echoOut.Parent().SpanID(), "a call back is a child of the handler's span")
	require.Equal(t, callback.SpanContext().TraceID(), echoOut.SpanContext().TraceID())

	note := srvSide.span(t, "note", trace.SpanKindServer)
	require.True(t, attrs(note)["wsrpc.notification"].AsBool())

	// The client: one span per outgoing call, and one for the call back
	// it served.
	sumOut := cliSide.span(t, "math.sum", trace.SpanKindClient)
	require.Equal(t, "math.sum", attrs(sumOut)["rpc.method"].AsString())
	require.Equal(t, codes.Unset, sumOut.Status().Code)
	failOut := cliSide.span(t, "fail", trace.SpanKindClient)
	require.Equal(t, "409", attrs(failOut)["rpc.response.status_code"].AsString())
	require.Equal(t, codes.Error, failOut.Status().Code)
	nosuch := cliSide.span(t, "no.such", trace.SpanKindClient)
	require.Equal(t, "no.such", attrs(nosuch)["rpc.method"].AsString(), "this side's own names are kept")
	require.Equal(t, "-32601", attrs(nosuch)["error.type"].AsString())
	require.True(t, attrs(cliSide.span(t, "note", trace.SpanKindClient))["wsrpc.notification"].AsBool())
	cliSide.span(t, "client.echo", trace.SpanKindServer)

	// Metrics, both sides.
	sys := attribute.String("rpc.system.name", "jsonrpc")
	in := srvSide.histogram(t, "rpc.server.call.duration")
	require.Equal(t, uint64(1), count(in, sys, attribute.String("rpc.method", "math.sum")))
	require.Equal(t, uint64(1), count(in, sys, attribute.String("rpc.method", "fail"),
		attribute.String("rpc.response.status_code", "409"), attribute.String("error.type", "409")))
	require.Equal(t, uint64(1), count(in, sys, attribute.String("rpc.method", "_OTHER"),
		attribute.String("rpc.response.status_code", "-32601"), attribute.String("error.type", "-32601")))
	require.Equal(t, uint64(1), count(in, sys, attribute.String("rpc.method", "note"), attribute.Bool("wsrpc.notification", true)))
	require.Len(t, in, 6, "math.sum, fail, _OTHER, span, callback, note")
	require.Equal(t, uint64(1), count(srvSide.histogram(t, "rpc.client.call.duration"), sys, attribute.String("rpc.method", "client.echo")))

	out := cliSide.histogram(t, "rpc.client.call.duration")
	require.Equal(t, uint64(1), count(out, sys, attribute.String("rpc.method", "math.sum")))
	require.Equal(t, uint64(1), count(out, sys, attribute.String("rpc.method", "no.such"),
		attribute.String("rpc.response.status_code", "-32601"), attribute.String("error.type", "-32601")))
	require.Equal(t, uint64(1), count(cliSide.histogram(t, "rpc.server.call.duration"), sys, attribute.String("rpc.method", "client.echo")))
}

// A hostile client sending a new name with every request makes one
// series, and one span name.
func TestUnknownMethodsShareOneValue(t *testing.T) {
	t.Parallel()
	srvSide := newSide()
	url, shutdown := serve(t, srvSide.obs, nil, nil)
	client := dial(t, url, nil)
	ctx := context.Background()
	const n = 200
	for i := range n {
		require.ErrorIs(t, client.Call(ctx, fmt.Sprintf("x%d", i), nil, nil), wsrpc.ErrMethodNotFound)
	}
	require.ErrorIs(t, client.Call(ctx, strings.Repeat("é", 100), nil, nil), wsrpc.ErrMethodNotFound)
	require.NoError(t, client.Close())
	shutdown()

	in := srvSide.histogram(t, "rpc.server.call.duration")
	require.Len(t, in, 1)
	require.Equal(t, uint64(n+1), in[0].Count)
	names := map[string]bool{}
	for _, sp := range srvSide.spans.Ended() {
		names[sp.Name()] = true
		orig := attrs(sp)["rpc.method_original"].AsString()
		require.LessOrEqual(t, len(orig), 128)
		require.True(t, strings.ToValidUTF8(orig, "") == orig)
	}
	require.Equal(t, map[string]bool{"jsonrpc": true}, names)
}

// The error codes the other side answers with are bounded in metrics,
// not in spans.
func TestErrorCodesFromTheOtherSideAreBounded(t *testing.T) {
	t.Parallel()
	srvSide := newSide()
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "fail", func(_ context.Context, a struct{ Code int64 }) (any, error) {
		return nil, &wsrpc.Error{Code: a.Code, Message: "no"}
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	client, err := wsrpc.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), &wsrpc.DialOptions{Observer: srvSide.obs})
	require.NoError(t, err)
	defer client.Close()
	for code := range int64(100) {
		require.Error(t, client.Call(context.Background(), "fail", []int64{1000 + code}, nil))
	}
	out := srvSide.histogram(t, "rpc.client.call.duration")
	require.Len(t, out, 65, "64 codes and _OTHER")
	require.Equal(t, uint64(36), count(out, attribute.String("rpc.system.name", "jsonrpc"), attribute.String("rpc.method", "fail"),
		attribute.String("rpc.response.status_code", "_OTHER"), attribute.String("error.type", "_OTHER")))
	last := srvSide.spans.Ended()[99]
	require.Equal(t, "1099", attrs(last)["rpc.response.status_code"].AsString())
}

// An incoming span over WebSocket starts a trace of its own, linked to
// the upgrade request's span; over HTTP POST the POST's span is its
// parent.
func TestConnectionSpanIsALinkNotAParent(t *testing.T) {
	t.Parallel()
	srvSide := newSide()
	outer := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(outer)).Tracer("http")
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, span := tracer.Start(r.Context(), r.Method)
			defer span.End()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	url, shutdown := serve(t, srvSide.obs, wrap, nil)
	client := dial(t, url, nil)
	ctx := context.Background()
	_, err := wsrpc.Call[int](ctx, client, "math.sum", []int{1, 2})
	require.NoError(t, err)
	require.NoError(t, client.Close())

	post := wsrpc.NewHTTPClient("http"+strings.TrimPrefix(url, "ws"), nil)
	_, err = wsrpc.Call[string](ctx, post, "span", nil)
	require.NoError(t, err)
	shutdown()

	var get, postSpan sdktrace.ReadOnlySpan
	for _, sp := range outer.Ended() {
		switch sp.Name() {
		case "GET":
			get = sp
		case "POST":
			postSpan = sp
		}
	}
	require.NotNil(t, get)
	require.NotNil(t, postSpan)

	overWS := srvSide.span(t, "math.sum", trace.SpanKindServer)
	require.False(t, overWS.Parent().IsValid())
	require.Len(t, overWS.Links(), 1)
	require.Equal(t, get.SpanContext().SpanID(), overWS.Links()[0].SpanContext.SpanID())

	overPOST := srvSide.span(t, "span", trace.SpanKindServer)
	require.Equal(t, postSpan.SpanContext().SpanID(), overPOST.Parent().SpanID())
	require.Empty(t, overPOST.Links())
}
