package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/internal/relay"
)

// This file runs a connection the way deployments carry it: through an
// HTTP reverse proxy (net/http/httputil, which forwards the upgrade and
// then copies bytes), and through a TCP relay that cuts the byte stream
// into pieces of a few bytes, so that no frame header or message arrives
// in the read that the sender's write made.

// proxied is a client connected to a Server through a front.
type proxied struct {
	client *wsrpc.Peer
	srv    *wsrpc.Server
	bye    chan error // the server peer's Err once it has stopped
	ticks  chan int   // the client's "tick" notifications
}

// proxiedMethods are the server's methods: echo, a call back to the client,
// and bye, which closes the caller's connection from its own handler.
func proxiedMethods() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "echo", func(_ context.Context, s []string) (string, error) { return s[0], nil })
	wsrpc.Register(m, "whoCalls", func(ctx context.Context, _ any) (string, error) {
		return wsrpc.Call[string](ctx, wsrpc.PeerFromContext(ctx), "client.name", nil)
	})
	wsrpc.Register(m, "bye", func(ctx context.Context, _ any) (any, error) {
		return nil, wsrpc.PeerFromContext(ctx).Close()
	})
	return m
}

// startBehind starts a Server behind the front that front returns for the
// backend's address, and dials the client through it.
func startBehind(t *testing.T, front func(t *testing.T, backend string) string) *proxied {
	t.Helper()
	connected := make(chan *wsrpc.Peer, 1)
	pr := &proxied{bye: make(chan error, 1), ticks: make(chan int, burst)}
	pr.srv = wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:   proxiedMethods(),
		OnConnect: func(p *wsrpc.Peer) { connected <- p },
		OnDisconnect: func(p *wsrpc.Peer) {
			pr.bye <- p.Err()
		},
	})
	backend := httptest.NewServer(pr.srv)
	addr := front(t, backend.URL)

	cm := wsrpc.NewMethods()
	wsrpc.Register(cm, "client.name", func(context.Context, any) (string, error) { return "through the front", nil })
	wsrpc.Register(cm, "tick", func(_ context.Context, n []int) (any, error) {
		pr.ticks <- n[0]
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := wsrpc.Dial(ctx, "ws://"+addr+"/", &wsrpc.DialOptions{Methods: cm})
	require.NoError(t, err)
	pr.client = client
	<-connected // the Server holds the peer: a broadcast reaches it
	t.Cleanup(func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pr.srv.Shutdown(ctx)
		backend.Close()
	})
	return pr
}

// reverseProxy fronts backend with httputil's reverse proxy.
func reverseProxy(t *testing.T, backend string) string {
	u, err := url.Parse(backend)
	require.NoError(t, err)
	fs := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(fs.Close)
	return fs.Listener.Addr().String()
}

// choppingRelay fronts backend with a TCP relay that forwards every read
// in pieces of 1 to 7 bytes, each its own write.
func choppingRelay(t *testing.T, backend string) string {
	u, err := url.Parse(backend)
	require.NoError(t, err)
	var seed atomic.Uint64
	r, err := relay.Start(u.Host, func(dst, src net.Conn) { chop(dst, src, seed.Add(1)) })
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r.Addr()
}

// chop copies from src to dst in writes of 1 to 7 bytes, and closes dst's
// writing side (or dst) once src ends.
func chop(dst, src net.Conn, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 32<<10)
	defer func() {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	for {
		n, err := src.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			k := min(len(b), 1+rng.IntN(7))
			if _, werr := dst.Write(b[:k]); werr != nil {
				return
			}
			b = b[k:]
		}
		if err != nil {
			return
		}
	}
}

// burst is how many notifications the server sends at once.
const burst = 500

func TestBehindProxies(t *testing.T) {
	fronts := []struct {
		name  string
		front func(t *testing.T, backend string) string
		sizes []int
	}{
		{"httputil.ReverseProxy", reverseProxy, []int{0, 1 << 10, 64 << 10, 1 << 20}},
		// Every byte is its own handful of system calls here: a MiB
		// would take long on a busy machine and says nothing more.
		{"chopping relay", choppingRelay, []int{0, 1 << 10, 64 << 10}},
	}
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			pr := startBehind(t, f.front)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			// Calls with a deadline, kilobytes to a megabyte each way.
			for _, n := range f.sizes {
				s := strings.Repeat("x", n)
				got, err := wsrpc.Call[string](ctx, pr.client, "echo", []string{s})
				require.NoError(t, err, "echo of %d bytes", n)
				require.Equal(t, len(s), len(got))
				require.Equal(t, s, got)
			}

			// Concurrent callers and a batch share the connection.
			var g sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				g.Add(1)
				go func() {
					defer g.Done()
					want := strings.Repeat(string(rune('a'+i)), 100*i)
					got, err := wsrpc.Call[string](ctx, pr.client, "echo", []string{want})
					if err == nil && got != want {
						err = errors.New("an answer went to the wrong caller")
					}
					errs <- err
				}()
			}
			var results [20]string
			require.NoError(t, pr.client.Batch(ctx, func(b *wsrpc.Batch) {
				for i := range results {
					b.Call("echo", []string{strings.Repeat("b", i)}, &results[i])
				}
			}))
			g.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			for i, r := range results {
				require.Equal(t, strings.Repeat("b", i), r)
			}

			// A handler calls back the client on the same connection.
			who, err := wsrpc.Call[string](ctx, pr.client, "whoCalls", nil)
			require.NoError(t, err)
			require.Equal(t, "through the front", who)

			// A burst of server-to-client notifications arrives whole
			// and in order.
			for i := range burst {
				_, err := pr.srv.Broadcast(ctx, "tick", []int{i}, nil)
				require.NoError(t, err)
			}
			for i := range burst {
				select {
				case n := <-pr.ticks:
					require.Equal(t, i, n)
				case <-ctx.Done():
					t.Fatalf("%d of %d notifications arrived", i, burst)
				}
			}

			// The server's handler closes its own connection: the call
			// fails, and the closing handshake reaches the client through
			// the front with status 1000.
			err = pr.client.Call(ctx, "bye", nil, nil)
			require.Error(t, err)
			select {
			case <-pr.client.Done():
			case <-ctx.Done():
				t.Fatal("the client did not see the server close")
			}
			var ce websocket.CloseError
			require.ErrorAs(t, pr.client.Err(), &ce, "client: %v", pr.client.Err())
			require.Equal(t, websocket.StatusNormalClosure, ce.Code)
			select {
			case serr := <-pr.bye:
				require.ErrorIs(t, serr, wsrpc.ErrClosed)
			case <-ctx.Done():
				t.Fatal("the server peer did not finish")
			}
		})
	}
}
