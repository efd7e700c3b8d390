package natsbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/natsbroker"
)

// The shared harness of this package's tests and benchmarks: an embedded
// NATS server on a loopback port, wsrpc instances joined by a natsbroker
// on httptest servers, and clients. Everything started is stopped in
// t.Cleanup (clients, then instances, then NATS connections, then the
// NATS server), so goleak sees no goroutine of ours, nats.go's or
// nats-server's left.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long any one wait of a test may take before it fails: a
// bound on a hang, not a measure of speed.
const bound = 60 * time.Second

// startNATS starts an embedded NATS server on port (-1: a free one) and
// shuts it down at the end of the test, unless the test did.
func startNATS(t testing.TB, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// natsEvents reports a connection's losses and recoveries, from the
// handlers nats.go calls.
type natsEvents struct {
	lost, back chan struct{}
}

// connect connects to the NATS server at url, reconnecting forever and
// quickly, and closes the connection at the end of the test.
func connect(t testing.TB, url string) (*nats.Conn, natsEvents) {
	t.Helper()
	ev := natsEvents{lost: make(chan struct{}, 16), back: make(chan struct{}, 16)}
	nc, err := nats.Connect(url,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { ev.lost <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { ev.back <- struct{}{} }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fmt.Fprintf(os.Stderr, "nats: %v\n", err)
		}),
	)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc, ev
}

// instance is one wsrpc Server of the cluster, on its own NATS
// connection, served by its own httptest server.
type instance struct {
	*wsrpc.Server
	label string
	nc    *nats.Conn
	ev    natsEvents
	hs    *httptest.Server
	ws    string // ws:// URL of the endpoint
	addr  string // host:port

	stopped  bool
	warnings atomic.Int64 // what its logger got at Warn and above
}

// warnCounter is a slog.Handler that counts records at Warn and above,
// and prints them to stderr.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h warnCounter) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return h.Handler.Handle(ctx, r)
}

// stop shuts the instance down (its peers are closed with 1001, so
// Redialers dial again) and closes its listener.
func (in *instance) stop(t testing.TB) {
	in.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	require.NoError(t, in.Shutdown(ctx))
	in.hs.Close()
}

// startInstance starts an instance labelled label, with the cluster's
// methods, on a NATS connection of its own to natsURL.
func startInstance(t testing.TB, label, natsURL string) *instance {
	t.Helper()
	nc, ev := connect(t, natsURL)
	in := &instance{label: label, nc: nc, ev: ev}
	in.Server = wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods: instanceMethods(in),
		Broker:  natsbroker.New(nc, nil),
		Logger:  slog.New(warnCounter{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), &in.warnings}),
	})
	in.hs = httptest.NewServer(in.Server)
	in.ws = "ws" + strings.TrimPrefix(in.hs.URL, "http")
	in.addr = in.hs.Listener.Addr().String()
	t.Cleanup(func() {
		if !in.stopped {
			in.stop(t)
		}
	})
	return in
}

// startCluster starts an embedded NATS server and n instances on it.
func startCluster(t testing.TB, n int) (*server.Server, []*instance) {
	t.Helper()
	ns := startNATS(t, -1)
	var ins []*instance
	for i := range n {
		ins = append(ins, startInstance(t, fmt.Sprintf("i%d", i), ns.ClientURL()))
	}
	return ns, ins
}

// instanceMethods is what a client may call on an instance: name itself,
// join a topic, ask which instance it is on, and reach another client by
// name through the cluster.
func instanceMethods(in *instance) *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "login", func(ctx context.Context, a struct{ Name string }) (bool, error) {
		return true, wsrpc.PeerFromContext(ctx).SetName(a.Name)
	})
	wsrpc.Register(m, "join", func(ctx context.Context, a struct{ Topic string }) (bool, error) {
		return true, wsrpc.PeerFromContext(ctx).Join(a.Topic)
	})
	wsrpc.Register(m, "ping", func(context.Context, any) (string, error) { return in.label, nil })
	wsrpc.Register(m, "relay", func(ctx context.Context, a struct{ Name string }) (string, error) {
		var who string
		err := in.CallPeer(ctx, a.Name, "whoami", nil, &who)
		return who, err
	})
	return m
}

// news is the params of the notification "news": publisher and sequence.
type news struct{ P, S int }

// clientMethods is a client's table: "whoami" answers its label, "fail"
// an *wsrpc.Error, "block" waits for release (after telling entered), and
// each "news" goes to onNews, in the order received.
func clientMethods(label string, onNews func(news), entered, release chan struct{}) *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "whoami", func(context.Context, any) (string, error) { return label, nil })
	wsrpc.Register(m, "fail", func(context.Context, any) (any, error) {
		return nil, &wsrpc.Error{Code: 7, Message: "no " + label}
	})
	wsrpc.Register(m, "block", func(ctx context.Context, _ any) (bool, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	})
	wsrpc.Register(m, "news", func(_ context.Context, n news) (any, error) {
		if onNews != nil {
			onNews(n)
		}
		return nil, nil
	})
	return m
}

// dialClient connects a client to url and closes it at the end of the
// test.
func dialClient(t testing.TB, url string, methods *wsrpc.Methods) *wsrpc.Peer {
	t.Helper()
	p, err := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{Methods: methods})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// login calls login and, with topic, join on p.
func login(t testing.TB, p wsrpc.Caller, name, topic string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, p.Call(ctx, "login", []string{name}, nil))
	if topic != "" {
		require.NoError(t, p.Call(ctx, "join", []string{topic}, nil))
	}
}

// recv waits for one value on ch, within bound.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s within %v", what, bound)
		panic("unreachable")
	}
}
