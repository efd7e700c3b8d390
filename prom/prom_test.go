package prom_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/prom"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type sumArgs struct{ X, Y int }

// serve starts a Server observed by obs and returns its ws:// URL and a
// function that shuts it down (every handler has ended when it returns);
// it also runs at the end of the test.
func serve(t *testing.T, obs wsrpc.Observer, noted chan<- struct{}) (url string, shutdown func()) {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "math.sum", func(_ context.Context, a sumArgs) (int, error) { return a.X + a.Y, nil })
	wsrpc.Register(m, "fail", func(_ context.Context, a struct{ Code int64 }) (any, error) {
		return nil, &wsrpc.Error{Code: a.Code, Message: "no"}
	})
	wsrpc.Register(m, "gauge", func(context.Context, any) (float64, error) { return 0, nil })
	m.HandleRaw("note", func(context.Context, json.RawMessage) (any, error) {
		noted <- struct{}{}
		return nil, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m, Observer: obs})
	hs := httptest.NewServer(srv)
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
	p, err := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{Observer: obs})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestBothSides(t *testing.T) {
	t.Parallel()
	srvM, cliM := prom.New(nil), prom.New(&prom.Options{Namespace: "app"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(srvM, cliM)
	noted := make(chan struct{}, 1)
	url, shutdown := serve(t, srvM, noted)
	client := dial(t, url, cliM)
	ctx := context.Background()

	for range 2 {
		_, err := wsrpc.Call[int](ctx, client, "math.sum", []int{1, 2})
		require.NoError(t, err)
	}
	require.ErrorIs(t, client.Call(ctx, "fail", []int{409}, nil), &wsrpc.Error{Code: 409})
	require.ErrorIs(t, client.Call(ctx, "no.such", nil, nil), wsrpc.ErrMethodNotFound)
	require.NoError(t, client.Notify(ctx, "note", nil))
	<-noted
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, client.Call(cancelled, "math.sum", []int{1, 2}, nil), context.Canceled)
	require.NoError(t, client.Close())
	shutdown()

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP app_wsrpc_handled_total JSON-RPC calls and notifications ended, by method, direction (server: served here; client: sent from here), type (call, notification) and code (OK or the error's).
# TYPE app_wsrpc_handled_total counter
app_wsrpc_handled_total{code="-32601",direction="client",method="no.such",type="call"} 1
app_wsrpc_handled_total{code="409",direction="client",method="fail",type="call"} 1
app_wsrpc_handled_total{code="OK",direction="client",method="math.sum",type="call"} 2
app_wsrpc_handled_total{code="OK",direction="client",method="note",type="notification"} 1
app_wsrpc_handled_total{code="canceled",direction="client",method="math.sum",type="call"} 1
# HELP wsrpc_handled_total JSON-RPC calls and notifications ended, by method, direction (server: served here; client: sent from here), type (call, notification) and code (OK or the error's).
# TYPE wsrpc_handled_total counter
wsrpc_handled_total{code="-32601",direction="server",method="_OTHER",type="call"} 1
wsrpc_handled_total{code="409",direction="server",method="fail",type="call"} 1
wsrpc_handled_total{code="OK",direction="server",method="math.sum",type="call"} 2
wsrpc_handled_total{code="OK",direction="server",method="note",type="notification"} 1
`), "wsrpc_handled_total", "app_wsrpc_handled_total"))

	// Everything ended: nothing in flight.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP wsrpc_in_flight JSON-RPC calls and notifications started and not yet ended, by method and direction.
# TYPE wsrpc_in_flight gauge
wsrpc_in_flight{direction="server",method="_OTHER"} 0
wsrpc_in_flight{direction="server",method="fail"} 0
wsrpc_in_flight{direction="server",method="math.sum"} 0
wsrpc_in_flight{direction="server",method="note"} 0
`), "wsrpc_in_flight"))

	// One histogram per method, direction and type, each with its count.
	require.Equal(t, 4, testutil.CollectAndCount(srvM, "wsrpc_call_duration_seconds"))
	require.Equal(t, 4, testutil.CollectAndCount(cliM, "app_wsrpc_call_duration_seconds"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "wsrpc_call_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			want := uint64(1)
			if labels["method"] == "math.sum" {
				want = 2
			}
			require.Equal(t, want, m.GetHistogram().GetSampleCount(), "%v", labels)
			require.Len(t, m.GetHistogram().GetBucket(), len(prometheus.DefBuckets))
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// A call in progress is in flight.
func TestInFlight(t *testing.T) {
	t.Parallel()
	m := prom.New(nil)
	entered, release := make(chan struct{}), make(chan struct{})
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "wait", func(context.Context, any) (any, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: m})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	client := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	done := make(chan error, 1)
	go func() { done <- client.Call(context.Background(), "wait", nil, nil) }()
	<-entered
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(`
# HELP wsrpc_in_flight JSON-RPC calls and notifications started and not yet ended, by method and direction.
# TYPE wsrpc_in_flight gauge
wsrpc_in_flight{direction="server",method="wait"} 1
`), "wsrpc_in_flight"))
	close(release)
	require.NoError(t, <-done)
}

// A hostile client sending a thousand names the table does not have
// makes one label value.
func TestUnknownMethodsShareOneLabel(t *testing.T) {
	t.Parallel()
	m := prom.New(nil)
	url, shutdown := serve(t, m, nil)
	client := dial(t, url, nil)
	ctx := context.Background()
	for i := range 900 { // one by one...
		require.ErrorIs(t, client.Call(ctx, fmt.Sprintf("hostile.%d", i), nil, nil), wsrpc.ErrMethodNotFound)
	}
	for i := range 100 { // ...and in a batch
		b := client.NewBatch()
		b.Call(fmt.Sprintf("batched.%d", i), nil, nil)
		require.NoError(t, b.Send(ctx))
	}
	require.NoError(t, client.Close())
	shutdown()

	require.Equal(t, 1, testutil.CollectAndCount(m, "wsrpc_handled_total"))
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(`
# HELP wsrpc_handled_total JSON-RPC calls and notifications ended, by method, direction (server: served here; client: sent from here), type (call, notification) and code (OK or the error's).
# TYPE wsrpc_handled_total counter
wsrpc_handled_total{code="-32601",direction="server",method="_OTHER",type="call"} 1000
`), "wsrpc_handled_total"))
	require.Equal(t, 1, testutil.CollectAndCount(m, "wsrpc_call_duration_seconds"))
	require.Equal(t, 1, testutil.CollectAndCount(m, "wsrpc_in_flight"))
}

// Error codes from the other side get at most 64 label values.
func TestErrorCodesAreBounded(t *testing.T) {
	t.Parallel()
	m := prom.New(nil)
	url, _ := serve(t, nil, nil)
	client := dial(t, url, m)
	for code := range int64(100) {
		require.Error(t, client.Call(context.Background(), "fail", []int64{1000 + code}, nil))
	}
	require.Equal(t, 65, testutil.CollectAndCount(m, "wsrpc_handled_total"))
	require.Equal(t, 36.0, counter(t, m, "wsrpc_handled_total", "code", prom.Other))
	require.Equal(t, 1.0, counter(t, m, "wsrpc_handled_total", "code", "1063"))
}

// counter returns the value of the counter name of c whose label is
// value.
func counter(t *testing.T, c prometheus.Collector, name, label, value string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
