// Package e2e tests wsrpc end to end through its public API only, over
// real loopback sockets: both directions, nesting, cancellation, a dropped
// connection, and a connection through a reverse proxy and through a relay
// that cuts the byte stream into pieces.
package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// side is one end's methods: arithmetic, a notification sink, a nested
// bounce that calls back the other side, and a blocking wait.
type side struct {
	methods *wsrpc.Methods
	notes   chan string
	waiting atomic.Int64
	wake    chan struct{} // closed: every nap returns
}

func newSide() *side {
	s := &side{methods: wsrpc.NewMethods(), notes: make(chan string, 16), wake: make(chan struct{})}
	wsrpc.Register(s.methods, "math.sum", func(_ context.Context, n []int) (int, error) {
		t := 0
		for _, v := range n {
			t += v
		}
		return t, nil
	})
	wsrpc.Register(s.methods, "note", func(_ context.Context, p []string) (any, error) {
		s.notes <- p[0]
		return nil, nil
	})
	wsrpc.Register(s.methods, "bounce", func(ctx context.Context, depth int) (int, error) {
		if depth == 0 {
			return 0, nil
		}
		n, err := wsrpc.Call[int](ctx, wsrpc.PeerFromContext(ctx), "bounce", []int{depth - 1})
		return n + 1, err
	})
	// nap outlives any caller's deadline, until the test wakes every nap:
	// JSON-RPC has no cancellation, so a caller giving up does not stop
	// the handler.
	wsrpc.Register(s.methods, "nap", func(ctx context.Context, _ any) (int, error) {
		select {
		case <-s.wake:
		case <-ctx.Done():
		}
		return 0, nil
	})
	wsrpc.Register(s.methods, "wait", func(ctx context.Context, _ any) (int, error) {
		s.waiting.Add(1)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	return s
}

// pair connects a client to a Server over loopback TCP and returns the
// client peer and the server's peer for that connection. cut drops the TCP
// connection under both.
type pair struct {
	client, server *wsrpc.Peer
	cut            func()
}

func newPair(t *testing.T, cs, ss *side, limits wsrpc.Limits) *pair {
	t.Helper()
	connected := make(chan *wsrpc.Peer, 1)
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:   ss.methods,
		Limits:    limits,
		OnConnect: func(p *wsrpc.Peer) { connected <- p },
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	hs := &http.Server{Handler: srv, ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}}
	go hs.Serve(ln)

	client, err := wsrpc.Dial(context.Background(), "ws://"+ln.Addr().String()+"/", &wsrpc.DialOptions{Methods: cs.methods, Limits: limits})
	require.NoError(t, err)
	server := <-connected
	t.Cleanup(func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return &pair{client: client, server: server, cut: func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}}
}

func TestBothDirections(t *testing.T) {
	t.Parallel()
	cs, ss := newSide(), newSide()
	p := newPair(t, cs, ss, wsrpc.Limits{})
	ctx := context.Background()

	for _, dir := range []struct {
		name     string
		from     *wsrpc.Peer
		receiver *side
	}{{"client to server", p.client, ss}, {"server to client", p.server, cs}} {
		t.Run(dir.name, func(t *testing.T) {
			n, err := wsrpc.Call[int](ctx, dir.from, "math.sum", []int{1, 2, 3})
			require.NoError(t, err)
			require.Equal(t, 6, n)

			require.NoError(t, dir.from.Notify(ctx, "note", []string{"hello"}))
			require.Equal(t, "hello", <-dir.receiver.notes)

			var a, b int
			var missing *wsrpc.BatchCall
			require.NoError(t, dir.from.Batch(ctx, func(bt *wsrpc.Batch) {
				bt.Call("math.sum", []int{1, 1}, &a)
				bt.Notify("note", []string{"batched"})
				bt.Call("math.sum", []int{2, 2}, &b)
				missing = bt.Call("nope", nil, nil)
			}))
			require.Equal(t, 2, a)
			require.Equal(t, 4, b)
			require.ErrorIs(t, missing.Err(), wsrpc.ErrMethodNotFound)
			require.Equal(t, "batched", <-dir.receiver.notes)
		})
	}
}

func TestNestedCallbacks8Deep(t *testing.T) {
	t.Parallel()
	for _, handlers := range []int{1, 4, 32} {
		p := newPair(t, newSide(), newSide(), wsrpc.Limits{MaxHandlers: handlers})
		n, err := wsrpc.Call[int](context.Background(), p.client, "bounce", []int{8})
		require.NoError(t, err, "MaxHandlers %d", handlers)
		require.Equal(t, 8, n)
	}
}

func TestCancellationLeavesSocketUp(t *testing.T) {
	t.Parallel()
	ss := newSide()
	p := newPair(t, newSide(), ss, wsrpc.Limits{})
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		// nap answers only once woken: the call can only end by its
		// deadline, however the machine schedules it.
		err := p.client.Call(ctx, "nap", nil, nil)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	// The naps hold every handler slot (and more wait): wake them, and
	// their late answers are dropped while the next call is served.
	close(ss.wake)
	n, err := wsrpc.Call[int](context.Background(), p.client, "math.sum", []int{40, 2})
	require.NoError(t, err)
	require.Equal(t, 42, n)
	require.NoError(t, p.client.Err())
}

func TestDropWithThousandCallsInFlight(t *testing.T) {
	t.Parallel()
	cs, ss := newSide(), newSide()
	p := newPair(t, cs, ss, wsrpc.Limits{MaxPending: 1000, MaxHandlers: 1000})
	const n = 500 // each way
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		from := p.client
		if i%2 == 1 {
			from = p.server
		}
		go func() { errs <- from.Call(context.Background(), "wait", nil, nil) }()
	}
	require.Eventually(t, func() bool {
		return cs.waiting.Load() == n && ss.waiting.Load() == n
	}, 10*time.Second, time.Millisecond, "all calls in flight")

	p.cut()
	deadline := time.After(5 * time.Second)
	for range 2 * n {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, wsrpc.ErrClosed)
		case <-deadline:
			t.Fatal("a call did not fail after the connection dropped")
		}
	}
	<-p.client.Done()
	<-p.server.Done()
	require.True(t, errors.Is(p.client.Err(), wsrpc.ErrClosed))
}
