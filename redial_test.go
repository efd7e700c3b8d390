package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// restartable is a Server on a fixed loopback address that a test can kill
// (abruptly, or with a graceful Shutdown) and start again.
type restartable struct {
	t     *testing.T
	addr  string
	opts  func(going <-chan struct{}) *ServerOptions
	mu    sync.Mutex
	srv   *Server
	hs    *http.Server
	going chan struct{} // closed when this server is being killed
	ln    net.Listener
	conns []net.Conn
	runs  sync.WaitGroup
}

func newRestartable(t *testing.T, opts func(going <-chan struct{}) *ServerOptions) *restartable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &restartable{t: t, addr: ln.Addr().String(), opts: opts}
	r.serve(ln)
	t.Cleanup(func() { r.kill(true); r.runs.Wait() })
	return r
}

func (r *restartable) url() string { return "ws://" + r.addr + "/" }

func (r *restartable) serve(ln net.Listener) {
	going := make(chan struct{})
	srv := NewServer(r.opts(going))
	hs := &http.Server{Handler: srv, ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
		}
	}}
	r.mu.Lock()
	r.srv, r.hs, r.going, r.ln = srv, hs, going, ln
	r.mu.Unlock()
	r.runs.Go(func() { hs.Serve(ln) })
}

// current returns the going channel of the server running now.
func (r *restartable) current() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.going
}

// start listens on the same address again.
func (r *restartable) start() {
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(r.t, err)
	r.serve(ln)
}

// kill stops the server: gracefully (its peers closed with 1001), or by
// cutting every connection, as a crash would.
func (r *restartable) kill(graceful bool) {
	r.mu.Lock()
	srv, hs, conns, going, ln := r.srv, r.hs, r.conns, r.going, r.ln
	r.srv, r.hs, r.conns = nil, nil, nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	close(going)
	ln.Close() // now, not when Serve gets to it: start binds the address next
	hs.Close()
	if !graceful {
		for _, c := range conns {
			c.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a hang guard
	defer cancel()
	srv.Shutdown(ctx)
}

// TestRedialSurvivesRestarts: callers keep calling while the server is
// killed and restarted, gracefully and abruptly. Every call ends once:
// a repeatable call always succeeds (its method ran, perhaps twice); a call
// that is not repeatable succeeds or fails with ErrConnectionLost, which
// also matches ErrClosed; nothing else. OnConnect runs on every connection
// before the calls that waited for it, and nothing is left running after
// Close.
func TestRedialSurvivesRestarts(t *testing.T) {
	t.Parallel()
	// Calls with a token block the first time the server sees the token,
	// until the server is killed: they are in flight when it goes.
	var seen sync.Map
	var ran atomic.Int64
	blocked := make(chan (<-chan struct{}), 1000) // the going channel of the server a call blocks on
	stop := make(chan struct{})                   // the test is over: nothing blocks
	opts := func(going <-chan struct{}) *ServerOptions {
		m := NewMethods()
		block := func(ctx context.Context, token string) {
			if _, again := seen.LoadOrStore(token, true); !again && token != "" {
				blocked <- going
				select { // until the server goes
				case <-going:
				case <-ctx.Done():
				case <-stop:
				}
			}
		}
		Register(m, "rep", func(ctx context.Context, p [1]string) (string, error) {
			block(ctx, p[0])
			ran.Add(1)
			return "ok", nil
		})
		Register(m, "once", func(ctx context.Context, p [1]string) (string, error) {
			block(ctx, p[0])
			return "ok", nil
		})
		Register(m, "whoami", func(ctx context.Context, _ any) (string, error) { return "you", nil })
		return &ServerOptions{Methods: m}
	}
	srv := newRestartable(t, opts)

	var connects atomic.Int64
	var states sync.Map
	r := Redial(context.Background(), srv.url(), &RedialOptions{
		MinDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond,
		OnConnect: func(ctx context.Context, p *Peer) error {
			connects.Add(1)
			var s string
			return p.Call(ctx, "whoami", nil, &s)
		},
		OnState:    func(s ConnState, _ error) { states.Store(s, true) },
		Repeatable: func(method string) bool { return method == "rep" },
	})

	const callers, rounds = 4, 6
	var ok, lost atomic.Int64
	var wg sync.WaitGroup
	finish := sync.OnceFunc(func() { close(stop) })
	defer wg.Wait()
	defer finish() // on failure too: the callers end
	for c := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				method := []string{"rep", "once"}[i%2]
				token := ""
				if i%3 == 0 {
					token = fmt.Sprintf("%d-%d", c, i)
				}
				var s string
				err := r.Call(context.Background(), method, []string{token}, &s)
				switch {
				case err == nil:
					require.Equal(t, "ok", s)
					ok.Add(1)
				case method == "once" && errors.Is(err, ErrConnectionLost):
					require.ErrorIs(t, err, ErrClosed)
					lost.Add(1)
				default:
					t.Errorf("%s call %d: %v", method, i, err)
					return
				}
			}
		})
	}
	for i := range rounds {
		// A call is in flight on this server (not on one killed before).
		for g := <-blocked; g != srv.current(); g = <-blocked {
		}
		srv.kill(i%2 == 0)
		srv.start()
	}
	finish()
	wg.Wait()
	require.NoError(t, r.Close())
	require.ErrorIs(t, r.Err(), ErrClosed)
	require.GreaterOrEqual(t, connects.Load(), int64(rounds))
	for _, s := range []ConnState{Connecting, Connected, Disconnected, Stopped} {
		_, saw := states.Load(s)
		require.True(t, saw, "state %v never reported", s)
	}
	t.Logf("%d calls succeeded, %d lost, %d connections, rep ran %d times", ok.Load(), lost.Load(), connects.Load(), ran.Load())
}

// TestRedialStops: a refused handshake (401), a close with an application
// status, and the context ending stop a Redialer for good, and calls
// waiting for a connection get the reason; other refusals are retried.
func TestRedialStops(t *testing.T) {
	t.Parallel()
	t.Run("401", func(t *testing.T) {
		var tries atomic.Int64
		s := appServe(t, &options{Authenticate: func(r *http.Request) (any, error) {
			if tries.Add(1) < 3 {
				return nil, &HTTPError{Status: http.StatusServiceUnavailable, Message: "not yet"}
			}
			return nil, &HTTPError{Status: http.StatusUnauthorized, Message: "bad token"}
		}})
		r := Redial(context.Background(), s.ws, &RedialOptions{MinDelay: time.Millisecond})
		defer r.Close()
		err := r.Call(context.Background(), "x", nil, nil)
		var he *HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, http.StatusUnauthorized, he.Status)
		<-r.Done()
		require.ErrorAs(t, r.Err(), &he)
		require.Equal(t, int64(3), tries.Load(), "503 is retried, 401 is not")
	})
	t.Run("4000", func(t *testing.T) {
		m := NewMethods()
		Register(m, "kick", func(ctx context.Context, _ any) (any, error) {
			PeerFromContext(ctx).closeWith(4001, "kicked")
			return nil, nil
		})
		s := appServe(t, &options{Methods: m})
		r := Redial(context.Background(), s.ws, &RedialOptions{MinDelay: time.Millisecond})
		defer r.Close()
		err := r.Call(context.Background(), "kick", nil, nil)
		require.ErrorIs(t, err, ErrConnectionLost)
		<-r.Done()
		require.ErrorIs(t, r.Err(), ErrClosed)
		_, err = r.Peer(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
	t.Run("ctx", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close() // nothing listens: every dial fails
		ctx, cancel := context.WithCancel(context.Background())
		connecting := make(chan struct{}, 1)
		r := Redial(ctx, "ws://"+addr+"/", &RedialOptions{MinDelay: time.Millisecond, OnState: func(s ConnState, _ error) {
			if s == Connecting {
				select {
				case connecting <- struct{}{}:
				default:
				}
			}
		}})
		// A call waits for a connection, bounded by its own context.
		callCtx, callCancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- r.Call(callCtx, "x", nil, nil) }()
		<-connecting
		callCancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		cancel()
		<-r.Done()
		require.ErrorIs(t, r.Err(), context.Canceled)
		require.NoError(t, r.Close())
	})
}

// TestRedialOnConnectFirst: calls made before the connection wait for it,
// and go out after OnConnect's own call; the method table serves the
// server's calls on every connection.
func TestRedialOnConnectFirst(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	m := NewMethods()
	for _, name := range []string{"login", "work"} {
		Register(m, name, func(ctx context.Context, _ any) (string, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if name == "work" {
				// Call the client back: its table is there.
				return Call[string](ctx, PeerFromContext(ctx), "client.name", nil)
			}
			return "", nil
		})
	}
	s := appServe(t, &options{Methods: m})
	cm := NewMethods()
	Register(cm, "client.name", func(context.Context, any) (string, error) { return "ada", nil })
	gate := make(chan struct{})
	r := Redial(context.Background(), s.ws, &RedialOptions{
		Dial: DialOptions{Methods: cm},
		OnConnect: func(ctx context.Context, p *Peer) error {
			<-gate // whenever the call below starts, it waits for this
			return p.Call(ctx, "login", nil, nil)
		},
	})
	defer r.Close()
	errc := make(chan error, 1)
	var got string
	go func() { errc <- r.Call(context.Background(), "work", nil, &got) }()
	close(gate)
	require.NoError(t, <-errc)
	require.Equal(t, "ada", got)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"login", "work"}, order)
}

// TestRedialMovesToTheNextURL: with URLs, a dropped connection's next dial
// goes to the next address, in turn.
func TestRedialMovesToTheNextURL(t *testing.T) {
	t.Parallel()
	var srvs []*appSrv
	var urls []string
	for i := range 3 {
		m := NewMethods()
		Register(m, "whoami", func(context.Context, any) (int, error) { return i, nil })
		srv := appServe(t, &options{Methods: m})
		srvs = append(srvs, srv)
		urls = append(urls, srv.ws)
	}
	connected := make(chan struct{}, 10)
	r := Redial(context.Background(), urls[0], &RedialOptions{
		URLs:     urls[1:],
		MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond,
		OnState: func(s ConnState, _ error) {
			if s == Connected {
				connected <- struct{}{}
			}
		},
	})
	defer r.Close()
	ctx := context.Background()
	for i := range 3 {
		<-connected
		who, err := Call[int](ctx, r, "whoami", nil)
		require.NoError(t, err)
		require.Equal(t, i, who)
		require.NoError(t, srvs[i].Shutdown(ctx)) // drops the connection
	}
}
