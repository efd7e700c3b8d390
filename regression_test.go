package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// This file holds one test per bug found in wsrpc by using it as an
// application would (issue 12), named after what it guards.

// TestTypedNilErrorIsInternal: a handler, guard or middleware that returns
// a nil *Error as its error (Go's nil-interface trap) gets CodeInternalError
// (a guard: CodeUnauthorized), over WebSocket and HTTP POST, alone and in a
// batch; the process does not crash. On e64ff61 errors.As accepted the
// typed nil and the encoder dereferenced it: SIGSEGV.
func TestTypedNilErrorIsInternal(t *testing.T) {
	t.Parallel()
	nilErr := func() error {
		var e *Error
		return e
	}
	m := NewMethods()
	Register(m, "handler", func(context.Context, any) (int, error) { return 0, nilErr() })
	Register(m, "guarded", func(context.Context, any) (int, error) { return 1, nil },
		Guarded(func(context.Context, *Request) error { return nilErr() }))
	Register(m, "middleware", func(context.Context, any) (int, error) { return 1, nil },
		func(next Handler) Handler {
			return func(ctx context.Context, req *Request) (any, error) { return nil, nilErr() }
		})
	Register(m, "ok", func(context.Context, any) (int, error) { return 7, nil })
	s := appServe(t, &options{Methods: m})
	peer := appDial(t, s.ws, nil)
	client := newHTTPClient(s.url, nil)
	want := map[string]int64{"handler": CodeInternalError, "guarded": CodeUnauthorized, "middleware": CodeInternalError}
	for name, c := range map[string]Caller{"websocket": peer, "http": client} {
		for method, code := range want {
			var e *Error
			require.ErrorAs(t, c.Call(context.Background(), method, nil, nil), &e, "%s %s", name, method)
			require.NotNil(t, e, "%s %s", name, method)
			require.Equal(t, code, e.Code, "%s %s", name, method)
		}
	}
	// In a batch, beside a call that succeeds.
	var n int
	var bad *BatchCall
	require.NoError(t, peer.Batch(context.Background(), func(b *Batch) {
		bad = b.Call("handler", nil, nil)
		b.Call("ok", nil, &n)
	}))
	require.ErrorIs(t, bad.Err(), ErrInternal)
	require.Equal(t, 7, n)
	status, body := post(t, s.url, "application/json", `[{"jsonrpc":"2.0","id":1,"method":"handler"},{"jsonrpc":"2.0","id":2,"method":"ok"}]`)
	require.Equal(t, http.StatusOK, status)
	require.True(t, strings.Contains(body, `"code":-32603`) && strings.Contains(body, `"result":7`), body)
	require.NoError(t, peer.Err())
	// The nil *Error itself is safe to print and compare.
	require.NotPanics(t, func() { _ = nilErr().Error() })
	require.False(t, (*Error)(nil).Is(ErrInternal))
}

// TestCloseFromOwnHandler: a handler (a request's, a notification's, or
// middleware's) that closes its own peer returns; the peer is removed from
// its Server and OnDisconnect runs once, and Shutdown then has nothing to
// wait for. On e64ff61 Close waited for every goroutine of the peer, the
// calling handler's included: Len stayed 1, OnDisconnect never ran, and
// Shutdown hit its deadline.
func TestCloseFromOwnHandler(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"request", "notification", "middleware"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			returned := make(chan error, 1)
			logout := func(ctx context.Context, _ any) (bool, error) {
				err := PeerFromContext(ctx).Close()
				returned <- err
				return true, err
			}
			m := NewMethods()
			switch how {
			case "middleware":
				Register(m, "logout", func(context.Context, any) (bool, error) { return true, nil },
					func(next Handler) Handler {
						return func(ctx context.Context, req *Request) (any, error) { return logout(ctx, nil) }
					})
			default:
				Register(m, "logout", logout)
			}
			disconnects := make(chan *Peer, 2)
			s := appServe(t, &options{Methods: m, OnDisconnect: func(p *Peer) { disconnects <- p }})
			c := appDial(t, s.ws, nil)
			if how == "notification" {
				require.NoError(t, c.Notify(context.Background(), "logout", nil))
			} else {
				c.Call(context.Background(), "logout", nil, nil) // the answer may or may not get out first
			}
			require.NoError(t, rsWait(t, returned, "Close to return in the handler"))
			rsWait(t, disconnects, "OnDisconnect")
			rsWait(t, c.Done(), "the client to see the close")
			require.Zero(t, s.Len())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, s.Shutdown(ctx))
			select {
			case p := <-disconnects:
				t.Fatalf("OnDisconnect ran twice, for %d", p.ID())
			default:
			}
		})
	}
}

// TestCloseAgainFromHandler: a handler may close its peer when the peer is
// already closing, because it closed it before or because the other side
// left while it ran; Close returns at once. On ae53e7e such a Close waited
// for every goroutine of the peer to return, its own caller's included,
// and never returned.
func TestCloseAgainFromHandler(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"twice", "after the other side left"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{})
			returned := make(chan error, 1)
			m := NewMethods()
			Register(m, "logout", func(ctx context.Context, _ any) (bool, error) {
				p := PeerFromContext(ctx)
				if how == "twice" {
					p.Close()
				} else {
					close(started)
					<-ctx.Done() // the peer has stopped
				}
				err := p.Close()
				returned <- err
				return true, err
			})
			s := appServe(t, &options{Methods: m})
			c := appDial(t, s.ws, nil)
			if how == "twice" {
				c.Call(context.Background(), "logout", nil, nil) // the answer may or may not get out first
			} else {
				require.NoError(t, c.Notify(context.Background(), "logout", nil))
				rsWait(t, started, "the handler to start")
				c.Close()
			}
			require.NoError(t, rsWait(t, returned, "Close to return in the handler"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, s.Shutdown(ctx))
		})
	}
}

// TestCallFromOnConnect: OnConnect may call the new peer with any context
// (here one with a deadline) to ask who it is, and a request the client
// sends at once waits until OnConnect has returned, so its handler sees
// what OnConnect set. On e64ff61 OnConnect ran before the peer read
// anything: such a call blocked the upgrade until its context ended
// (context.Background only worked through a special path).
func TestCallFromOnConnect(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "hello", func(ctx context.Context, _ any) (string, error) {
		name, _ := PeerFromContext(ctx).Identity().(string)
		return "hello, " + name, nil
	})
	onConnectErr := make(chan error, 8)
	s := appServe(t, &options{Methods: m, OnConnect: func(p *Peer) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		name, err := Call[string](ctx, p, "client.name", nil)
		p.SetIdentity(name)
		onConnectErr <- err
	}})
	for i := range 5 {
		cm := NewMethods()
		Register(cm, "client.name", func(context.Context, any) (string, error) { return "ada", nil })
		c := appDial(t, s.ws, &options{Methods: cm})
		got, err := Call[string](context.Background(), c, "hello", nil)
		require.NoError(t, err, "round %d", i)
		require.Equal(t, "hello, ada", got, "round %d: the request ran before OnConnect returned", i)
		require.NoError(t, rsWait(t, onConnectErr, "OnConnect's call"))
	}
}

// TestOnConnectAnswerBehindNotifications: the client answers OnConnect's
// call after more notifications than MaxNotifications. They wait for
// OnConnect in their queue, which fills, so reading stops before the
// answer: OnConnect's call ends with its context (as OnConnect's
// doc says), and then the connection goes on: every notification is
// served, in order, and the client's next call is answered. (Reported by
// a hostile-client test this session as a deadlock; with a context
// without deadline the connection is closed with 1008 after WriteTimeout,
// as MaxNotifications says.)
func TestOnConnectAnswerBehindNotifications(t *testing.T) {
	t.Parallel()
	const queue, sent = 4, 6
	served := make(chan int, sent)
	m := NewMethods()
	Register(m, "n", func(_ context.Context, p [1]int) (struct{}, error) {
		served <- p[0]
		return struct{}{}, nil
	})
	Register(m, "hello", func(context.Context, any) (string, error) { return "hello", nil })
	onConnectErr := make(chan error, 1)
	s := appServe(t, &options{Methods: m, Limits: Limits{MaxNotifications: queue}, OnConnect: func(p *Peer) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := Call[string](ctx, p, "client.name", nil)
		onConnectErr <- err
	}})
	cm := NewMethods()
	Register(cm, "client.name", func(ctx context.Context, _ any) (string, error) {
		for i := range sent {
			if err := PeerFromContext(ctx).Notify(ctx, "n", [1]int{i}); err != nil {
				return "", err
			}
		}
		return "ada", nil
	})
	c := appDial(t, s.ws, &options{Methods: cm})
	require.ErrorIs(t, rsWait(t, onConnectErr, "OnConnect's call"), context.DeadlineExceeded)
	for i := range sent {
		require.Equal(t, i, rsWait(t, served, "a notification"))
	}
	got, err := Call[string](context.Background(), c, "hello", nil)
	require.NoError(t, err)
	require.Equal(t, "hello", got)
}

// TestBroadcastReachesJustConnected: a client whose handshake has completed
// gets every broadcast started after that, even one that races the
// server's bookkeeping of the new peer. On e64ff61 the 101 went out before
// the peer joined the server's set: a broadcast right after another
// client's Dial returned skipped it in 3 of 35 rounds.
func TestBroadcastReachesJustConnected(t *testing.T) {
	t.Parallel()
	// A burst of four queues' worth: broadcasts that find the connection
	// still completing its handshake wait for its peer as for room, and
	// are counted like the others.
	const burst = 16
	gone := make(chan struct{}, 1)
	s := appServe(t, &options{MaxOutbound: burst / 4, OnDisconnect: func(*Peer) { gone <- struct{}{} }})
	for round := range 50 {
		got := make(chan int, burst)
		cm := NewMethods()
		Register(cm, "news", func(_ context.Context, p [1]int) (any, error) {
			got <- p[0]
			return nil, nil
		})
		c := appDial(t, s.ws, &options{Methods: cm})
		for i := range burst {
			res, err := s.Broadcast(context.Background(), "news", []int{i}, nil)
			require.NoError(t, err)
			require.Equal(t, BroadcastResult{Sent: 1}, res, "round %d, broadcast %d", round, i)
		}
		for i := range burst {
			require.Equal(t, i, rsWait(t, got, "the broadcast"), "round %d", round)
		}
		c.Close()
		rsWait(t, gone, "the server to see the client go") // the next round counts one peer
	}
}

// TestDialRefusalIsHTTPError: a handshake the server refuses returns an
// error that errors.As matches as an *HTTPError, with the status and the
// refusal's text, and a server that is down does not: a reconnect loop
// stops on a bad token and retries on a network error. On e64ff61 the
// dialer got only the string "expected handshake response status code
// 101 but got 401".
func TestDialRefusalIsHTTPError(t *testing.T) {
	t.Parallel()
	s := appServe(t, &options{Authenticate: func(r *http.Request) (any, error) {
		if r.Header.Get("Authorization") != "Bearer good" {
			return nil, &HTTPError{Status: http.StatusUnauthorized, Message: "bad token"}
		}
		return "ok", nil
	}})
	_, err := dial(context.Background(), s.ws, &options{HTTPHeader: http.Header{"Authorization": {"Bearer bad"}}})
	var he *HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, http.StatusUnauthorized, he.Status)
	require.Equal(t, "bad token", he.Message)
	p := appDial(t, s.ws, &options{HTTPHeader: http.Header{"Authorization": {"Bearer good"}}})
	require.NoError(t, p.Err())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = dial(context.Background(), "ws://"+addr+"/", nil)
	require.Error(t, err)
	require.False(t, errors.As(err, &he), "a network failure is not a refusal: %v", err)
}

// TestPipe: Pipe's peers behave as over WebSocket, limits included: a
// message over the receiver's MaxMessageSize closes the pipe with 1009,
// and calls fail with ErrMessageTooBig. (Issue 12, item 9: users had to
// open sockets to test their handlers.)
func TestPipe(t *testing.T) {
	t.Parallel()
	c, s := pipe(nil, &options{Methods: arith(), Limits: Limits{MaxMessageSize: 1 << 10}})
	defer s.Close()
	defer c.Close()
	n, err := Call[int](context.Background(), c, "math.sum", []int{1, 2})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	err = c.Call(context.Background(), "echo", []string{strings.Repeat("x", 2<<10)}, nil)
	require.ErrorIs(t, err, ErrClosed)
	<-s.Done() // the client may see the pipe closed before the server has ended
	require.ErrorIs(t, s.Err(), ErrMessageTooBig)
}

// TestKeyPerPeer: values under a Key belong to one peer; two keys of the
// same type do not share them; a nil peer (HTTP POST) has none. (Issue 12,
// item 10: an application kept a map[*Peer]*session by hand.)
func TestKeyPerPeer(t *testing.T) {
	t.Parallel()
	a, b := pipe(nil, nil)
	defer a.Close()
	defer b.Close()
	user, role := NewKey[string]("user"), NewKey[string]("role")
	user.Set(a, "ada")
	got, ok := user.Get(a)
	require.True(t, ok)
	require.Equal(t, "ada", got)
	_, ok = user.Get(b)
	require.False(t, ok, "another peer")
	_, ok = role.Get(a)
	require.False(t, ok, "another key of the same type")
	_, ok = user.Get(nil)
	require.False(t, ok)
	user.Delete(a)
	_, ok = user.Get(a)
	require.False(t, ok)
	require.Equal(t, "user", user.String())
}

// TestRefusalsLoggedOnce: a Host or Origin refusal, on an upgrade or a
// POST, is logged at Warn once per cause, naming the option that would
// allow it. On e64ff61 upgrades were refused at Debug only and POSTs
// silently, so a server behind a reverse proxy answered 403 to everything
// with nothing in its log.
func TestRefusalsLoggedOnce(t *testing.T) {
	t.Parallel()
	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(b)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := appServe(t, &options{Methods: arith(), Logger: logger})
	for range 3 {
		req, err := http.NewRequest("POST", s.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"math.sum","params":[1,2]}`))
		require.NoError(t, err)
		req.Host = "chat.example.com" // as a reverse proxy forwards it
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		_, err = dial(context.Background(), s.ws, &options{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
		require.Error(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	out := logged.String()
	require.Equal(t, 1, strings.Count(out, "chat.example.com"), out)
	require.Contains(t, out, "AllowedHosts")
	require.Equal(t, 1, strings.Count(out, "localhost:3000\n")+strings.Count(out, "origin=http://localhost:3000 "), out)
	require.Contains(t, out, "OriginPatterns")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestStrictArguments: a struct's arguments are checked as a Python or
// JavaScript callee would: a missing required argument and an unknown named
// one get CodeInvalidParams naming it; pointers, omitempty and
// `wsrpc:"optional"` fields are optional; a blank `wsrpc:"extra"` field
// lets unknown names through. On e64ff61 subtract [42] answered 42, and []
// or {} answered 0 (issue 12, item 6).
func TestStrictArguments(t *testing.T) {
	t.Parallel()
	type sub struct {
		Minuend    float64 `json:"minuend"`
		Subtrahend float64 `json:"subtrahend"`
	}
	type opts struct {
		_     struct{} `wsrpc:"extra"`
		Need  int      `json:"need"`
		Ptr   *int     `json:"ptr"`
		Empty string   `json:"empty,omitempty"`
		Opt   bool     `json:"opt" wsrpc:"optional"`
	}
	m := NewMethods()
	Register(m, "subtract", func(_ context.Context, a sub) (float64, error) { return a.Minuend - a.Subtrahend, nil })
	Register(m, "opts", func(_ context.Context, a opts) (int, error) { return a.Need, nil })
	c, s := pipe(nil, &options{Methods: m})
	defer s.Close()
	defer c.Close()
	ctx := context.Background()
	for params, want := range map[string]string{
		`[42]`:                         `missing argument "subtrahend"`,
		`[]`:                           `missing argument "minuend"`,
		`{}`:                           `missing argument "minuend"`,
		"":                             `missing argument "minuend"`, // no params
		`{"minuend":42}`:               `missing argument "subtrahend"`,
		`{"minuend":42,"bogus":1}`:     `unknown argument "bogus"`,
		`{"minuend":1,"subtrahend":2}`: "",
		`[5,3]`:                        "",
	} {
		var got float64
		var p any
		if params != "" {
			p = json.RawMessage(params)
		}
		err := c.Call(ctx, "subtract", p, &got)
		if want == "" {
			require.NoError(t, err, params)
			continue
		}
		var e *Error
		require.ErrorAs(t, err, &e, params)
		require.Equal(t, int64(CodeInvalidParams), e.Code, params)
		require.Contains(t, e.Message, want, params)
	}
	n, err := Call[int](ctx, c, "opts", json.RawMessage(`{"need":3,"anything":true}`))
	require.NoError(t, err, "optional fields may be left out; extra lets unknown names through")
	require.Equal(t, 3, n)
	_, err = Call[int](ctx, c, "opts", json.RawMessage(`{"ptr":1}`))
	require.ErrorContains(t, err, `missing argument "need"`)
}

// TestInlineBatchHandoffAfterOldReader: a reader that handed reading off
// while it served a request, and finishes only once the next reader serves
// a batch inline, must not make that batch invisible to the handoff: its
// items wait for each other, so only helpers started by the handoff let
// them finish. Found by TestRequestsRunConcurrently hanging once in a few
// hundred runs under -cpu 2: on 48b8392 the old reader cleared the batch
// the handoff looks for, whoever's it was.
func TestInlineBatchHandoffAfterOldReader(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var meet sync.WaitGroup
		meet.Add(2)
		started := make(chan struct{}, 2)
		m := NewMethods()
		Register(m, "hold", func(context.Context, any) (int, error) {
			<-release
			return 1, nil
		})
		Register(m, "meet", func(context.Context, any) (int, error) {
			started <- struct{}{}
			meet.Done()
			meet.Wait() // returns only once both items run
			return 2, nil
		})

		answered, proceed := make(chan struct{}), make(chan struct{})
		var once sync.Once
		ea, eb := newPipe(64)
		server := newPeer(&rsWriteHook{transport: ea, after: func(b []byte) {
			if strings.Contains(string(b), `"id":1,`) {
				once.Do(func() {
					close(answered)
					<-proceed // the old reader, between its answer and the rest
				})
			}
		}}, (&options{Methods: m, Limits: Limits{PingInterval: -1}}).config(), nil, nil)
		client := newPeer(eb, (&options{Limits: Limits{PingInterval: -1}}).config(), nil, nil)
		server.start()
		client.start()
		defer func() {
			client.Close()
			server.Close()
		}()

		ctx := context.Background()
		held := make(chan error, 1)
		go func() { held <- client.Call(ctx, "hold", nil, nil) }()
		// "hold" is served inline; past the inline budget reading moves
		// to another goroutine.
		time.Sleep(3 * inlineBudget)
		synctest.Wait()
		close(release)
		<-answered
		require.NoError(t, <-held)

		batched := make(chan error, 1)
		go func() {
			batched <- client.Batch(ctx, func(b *Batch) {
				b.Call("meet", nil, nil)
				b.Call("meet", nil, nil)
			})
		}()
		<-started // the new reader serves the batch inline
		close(proceed)
		synctest.Wait() // the old reader has finished
		require.NoError(t, <-batched)
	})
}
