package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipePair returns two started peers connected in memory, closed at the end
// of the test.
func pipePair(t testing.TB, a, b *options) (*Peer, *Peer) {
	t.Helper()
	ea, eb := newPipe(64)
	pa := newPeer(ea, a.config(), nil, nil)
	pb := newPeer(eb, b.config(), nil, nil)
	pa.start()
	pb.start()
	t.Cleanup(func() {
		pa.Close()
		pb.Close()
	})
	return pa, pb
}

// rawPeer returns a started peer serving m, and the raw other end of its
// connection, for tests that speak the wire protocol by hand.
func rawPeer(t testing.TB, opts *options) (*Peer, *pipeEnd) {
	t.Helper()
	ea, eb := newPipe(64)
	p := newPeer(ea, opts.config(), nil, nil)
	p.start()
	t.Cleanup(func() { p.Close() })
	return p, eb
}

// exchange writes msg to the raw end and returns the next message back.
func exchange(t testing.TB, raw *pipeEnd, msg string) string {
	t.Helper()
	require.NoError(t, raw.writeMessage([]byte(msg)))
	return readRaw(t, raw)
}

func readRaw(t testing.TB, raw *pipeEnd) string {
	t.Helper()
	m, err := raw.readMessage(noReserve)
	require.NoError(t, err)
	defer putBuf(m)
	return string(m.b)
}

func arith() *Methods {
	m := NewMethods()
	Register(m, "math.sum", func(_ context.Context, p []int) (int, error) {
		s := 0
		for _, n := range p {
			s += n
		}
		return s, nil
	})
	type sub struct {
		Minuend    int `json:"minuend"`
		Subtrahend int `json:"subtrahend"`
	}
	Register(m, "subtract", func(_ context.Context, p sub) (int, error) {
		return p.Minuend - p.Subtrahend, nil
	})
	Register(m, "echo", func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
		return p, nil
	})
	return m
}

func TestCallBothDirections(t *testing.T) {
	t.Parallel()
	a, b := pipePair(t, &options{Methods: arith()}, &options{Methods: arith()})
	ctx := context.Background()

	var r int
	require.NoError(t, a.Call(ctx, "math.sum", []int{1, 2, 3}, &r))
	require.Equal(t, 6, r)
	r, err := Call[int](ctx, b, "subtract", map[string]int{"minuend": 42, "subtrahend": 23})
	require.NoError(t, err)
	require.Equal(t, 19, r)
	r, err = Call[int](ctx, b, "subtract", []int{42, 23})
	require.NoError(t, err)
	require.Equal(t, 19, r)
}

func TestParamsMapping(t *testing.T) {
	t.Parallel()
	type args struct {
		Name  string `json:"name"`
		Count int    `json:"count,omitempty"`
		skip  int
		Other bool  `json:"-"`
		Last  []int `wsrpc:"optional"`
	}
	m := NewMethods()
	Register(m, "s", func(_ context.Context, a args) (string, error) {
		return fmt.Sprintf("%s/%d/%v", a.Name, a.Count, a.Last), nil
	})
	Register(m, "scalar", func(_ context.Context, n int) (int, error) { return n * 2, nil })
	Register(m, "arr", func(_ context.Context, n [2]int) (int, error) { return n[0] + n[1], nil })
	Register(m, "map", func(_ context.Context, kv map[string]int) (int, error) { return kv["a"], nil })
	_, raw := rawPeer(t, &options{Methods: m})

	cases := []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"s","params":["x",3,[1]]}`, `{"jsonrpc":"2.0","id":1,"result":"x/3/[1]"}`},
		{`{"jsonrpc":"2.0","id":2,"method":"s","params":{"name":"y"}}`, `{"jsonrpc":"2.0","id":2,"result":"y/0/[]"}`},
		{`{"jsonrpc":"2.0","id":3,"method":"s","params":{"Name":"z","last":[2]}}`, `{"jsonrpc":"2.0","id":3,"result":"z/0/[2]"}`},
		{`{"jsonrpc":"2.0","id":4,"method":"s","params":["x"]}`, `{"jsonrpc":"2.0","id":4,"result":"x/0/[]"}`},
		{`{"jsonrpc":"2.0","id":5,"method":"scalar","params":[21]}`, `{"jsonrpc":"2.0","id":5,"result":42}`},
		{`{"jsonrpc":"2.0","id":6,"method":"arr","params":[1,2]}`, `{"jsonrpc":"2.0","id":6,"result":3}`},
		{`{"jsonrpc":"2.0","id":7,"method":"map","params":{"a":7}}`, `{"jsonrpc":"2.0","id":7,"result":7}`},
	}
	for _, c := range cases {
		require.JSONEq(t, c.want, exchange(t, raw, c.in), c.in)
	}

	bad := []string{
		`{"jsonrpc":"2.0","id":1,"method":"s","params":["x",3,[1],4]}`,          // too many
		`{"jsonrpc":"2.0","id":1,"method":"s","params":[5]}`,                    // wrong type
		`{"jsonrpc":"2.0","id":1,"method":"s","params":{"name":5}}`,             // wrong type
		`{"jsonrpc":"2.0","id":1,"method":"scalar","params":{"n":1}}`,           // object for positional
		`{"jsonrpc":"2.0","id":1,"method":"scalar","params":[1,2]}`,             // too many
		`{"jsonrpc":"2.0","id":1,"method":"arr","params":[1,2,3]}`,              // too many
		`{"jsonrpc":"2.0","id":1,"method":"arr","params":{"a":1}}`,              // object for list
		`{"jsonrpc":"2.0","id":1,"method":"map","params":[1]}`,                  // array for named
		`{"jsonrpc":"2.0","id":1,"method":"s"}`,                                 // "name" missing
		`{"jsonrpc":"2.0","id":1,"method":"s","params":[]}`,                     // "name" missing
		`{"jsonrpc":"2.0","id":1,"method":"s","params":{}}`,                     // "name" missing
		`{"jsonrpc":"2.0","id":1,"method":"s","params":{"count":1}}`,            // "name" missing
		`{"jsonrpc":"2.0","id":1,"method":"s","params":{"name":"x","bogus":1}}`, // unknown
	}
	for _, in := range bad {
		out := exchange(t, raw, in)
		var resp struct {
			Error *Error `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &resp), out)
		require.NotNil(t, resp.Error, in)
		require.Equal(t, int64(CodeInvalidParams), resp.Error.Code, in)
		for _, goType := range []string{"int", "string", "wsrpc", "struct", "main."} {
			require.NotContains(t, resp.Error.Message, goType, "message names a Go type: %s", out)
		}
	}
}

func TestWireFidelity(t *testing.T) {
	t.Parallel()
	_, raw := rawPeer(t, &options{Methods: arith()})
	cases := []struct{ in, want string }{
		// ids of every kind come back byte for byte
		{`{"jsonrpc":"2.0","id":"a\"b","method":"math.sum","params":[1]}`, `{"jsonrpc":"2.0","id":"a\"b","result":1}`},
		{`{"jsonrpc":"2.0","id":18446744073709551616123,"method":"math.sum","params":[1]}`, `{"jsonrpc":"2.0","id":18446744073709551616123,"result":1}`},
		{`{"jsonrpc":"2.0","id":-5,"method":"math.sum","params":[1]}`, `{"jsonrpc":"2.0","id":-5,"result":1}`},
		{`{"jsonrpc":"2.0","id":null,"method":"math.sum","params":[1]}`, `{"jsonrpc":"2.0","id":null,"result":1}`},
		{`{"jsonrpc":"2.0","id":1.5e3,"method":"math.sum","params":[1]}`, `{"jsonrpc":"2.0","id":1.5e3,"result":1}`},
		// echo is byte-exact, big integers included
		{`{"jsonrpc":"2.0","id":1,"method":"echo","params":[18446744073709551615, 1.000]}`, `{"jsonrpc":"2.0","id":1,"result":[18446744073709551615, 1.000]}`},
		// errors keep the connection open
		{`{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`},
		{`{"jsonrpc":"1.0","id":9,"method":"math.sum"}`, `{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"invalid request: \"jsonrpc\" must be \"2.0\""}}`},
		{`{"jsonrpc":"2.0","id":9,"method":"math.sum","params":5}`, `{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"invalid request: \"params\" must be an array or an object"}}`},
		{`{"jsonrpc":"2.0","id":{"a":1},"method":"math.sum"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: \"id\" must be a string, a number or null"}}`},
		{`{"jsonrpc":"2.0","id":3,"method":1}`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"invalid request: \"method\" must be a string"}}`},
		{`[]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: empty batch"}}`},
		{`5`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: not an object or array"}}`},
		{`{"jsonrpc":"2.0","id":1,"method":"nope"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found: \"nope\""}}`},
	}
	for _, c := range cases {
		got := exchange(t, raw, c.in)
		require.JSONEq(t, c.want, got, c.in)
		if strings.Contains(c.want, `"result"`) || strings.HasPrefix(c.in, `{"jsonrpc":"2.0","id":`) {
			// the id's bytes, not just its value
			id := c.in[strings.Index(c.in, `"id":`)+5:]
			id = id[:strings.Index(id, `,"method"`)]
			if validID([]byte(id)) {
				require.Contains(t, got, `"id":`+id+`,`, c.in)
			}
		}
	}
}

func TestBatchServing(t *testing.T) {
	t.Parallel()
	m := arith()
	var mu sync.Mutex
	var notes []string
	Register(m, "note", func(_ context.Context, p []string) (any, error) {
		mu.Lock()
		notes = append(notes, p...)
		mu.Unlock()
		return nil, nil
	})
	_, raw := rawPeer(t, &options{Methods: m, Limits: Limits{MaxBatch: 5}})

	got := exchange(t, raw, `[
		{"jsonrpc":"2.0","method":"math.sum","params":[1,2,4],"id":"1"},
		{"jsonrpc":"2.0","method":"note","params":["a"]},
		{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"2"},
		{"foo":"boo"},
		{"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"}
	]`)
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(got), &items))
	require.Len(t, items, 4)
	require.JSONEq(t, `{"jsonrpc":"2.0","id":"1","result":7}`, string(items[0]))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":"2","result":19}`, string(items[1]))
	require.Contains(t, string(items[2]), `"code":-32600`)
	require.Contains(t, string(items[3]), `"code":-32601`)

	require.JSONEq(t, `[{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: not an object"}}]`, exchange(t, raw, `[1]`))
	require.Contains(t, exchange(t, raw, `[1,2,3,4,5,6]`), "exceeds the limit of 5")

	// An all-notification batch gets no reply: the next reply is the
	// next call's.
	require.NoError(t, raw.writeMessage([]byte(`[{"jsonrpc":"2.0","method":"note","params":["b"]},{"jsonrpc":"2.0","method":"note","params":["c"]}]`)))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":7,"result":1}`, exchange(t, raw, `{"jsonrpc":"2.0","id":7,"method":"math.sum","params":[1]}`))
}

func TestBatchClient(t *testing.T) {
	t.Parallel()
	m := arith()
	noted := make(chan string, 1)
	Register(m, "note", func(_ context.Context, p []string) (any, error) {
		noted <- p[0]
		return nil, nil
	})
	a, _ := pipePair(t, nil, &options{Methods: m})
	ctx := context.Background()

	var s1, s2 int
	var c1, c2, c3 *BatchCall
	err := a.Batch(ctx, func(b *Batch) {
		c1 = b.Call("math.sum", []int{1, 2}, &s1)
		b.Notify("note", []string{"hi"})
		c2 = b.Call("subtract", []int{10, 4}, &s2)
		c3 = b.Call("missing", nil, nil)
	})
	require.NoError(t, err)
	require.NoError(t, c1.Err())
	require.NoError(t, c2.Err())
	require.ErrorIs(t, c3.Err(), ErrMethodNotFound)
	require.Equal(t, 3, s1)
	require.Equal(t, 6, s2)
	require.Equal(t, "hi", <-noted)

	// Without the closure, and notifications only.
	b := a.NewBatch()
	b.Notify("note", []string{"only"})
	require.NoError(t, b.Send(ctx))
	require.Equal(t, "only", <-noted)
	require.Error(t, b.Send(ctx), "a batch is sent once")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "typed", func(context.Context, any) (any, error) {
		return nil, &Error{Code: 42, Message: "custom", Data: json.RawMessage(`{"k":[1]}`)}
	})
	Register(m, "plain", func(context.Context, any) (any, error) {
		return nil, fmt.Errorf("secret detail %T", m)
	})
	Register(m, "panics", func(context.Context, any) (any, error) {
		panic("/home/secret/path.go")
	})
	Register(m, "unencodable", func(context.Context, any) (chan int, error) {
		return make(chan int), nil
	})
	a, _ := pipePair(t, nil, &options{Methods: m})
	ctx := context.Background()

	err := a.Call(ctx, "typed", nil, nil)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, int64(42), e.Code)
	require.Equal(t, "custom", e.Message)
	require.JSONEq(t, `{"k":[1]}`, string(e.Data))

	for _, name := range []string{"plain", "panics", "unencodable"} {
		err := a.Call(ctx, name, nil, nil)
		require.ErrorIs(t, err, ErrInternal, name)
		require.ErrorAs(t, err, &e)
		require.Equal(t, "internal error", e.Message, name)
		require.Empty(t, e.Data, name)
	}
	require.ErrorIs(t, a.Call(ctx, "nope", nil, nil), ErrMethodNotFound)
	require.NotErrorIs(t, a.Call(ctx, "nope", nil, nil), ErrInvalidParams)
}

func TestNestedCallbacks(t *testing.T) {
	t.Parallel()
	for _, handlers := range []int{1, 2, 32} {
		t.Run(fmt.Sprint(handlers), func(t *testing.T) {
			t.Parallel()
			bounce := func() *Methods {
				m := NewMethods()
				Register(m, "bounce", func(ctx context.Context, depth int) (int, error) {
					if depth == 0 {
						return 0, nil
					}
					n, err := Call[int](ctx, PeerFromContext(ctx), "bounce", []int{depth - 1})
					return n + 1, err
				})
				return m
			}
			a, _ := pipePair(t, &options{Methods: bounce(), Limits: Limits{MaxHandlers: handlers}}, &options{Methods: bounce(), Limits: Limits{MaxHandlers: handlers}})
			n, err := Call[int](context.Background(), a, "bounce", []int{8})
			require.NoError(t, err)
			require.Equal(t, 8, n)
		})
	}
}

func TestCancelLeavesConnectionUp(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	release := make(chan struct{})
	Register(m, "block", func(ctx context.Context, _ any) (int, error) {
		<-release
		return 1, nil
	})
	Register(m, "ok", func(context.Context, any) (int, error) { return 2, nil })
	a, _ := pipePair(t, nil, &options{Methods: m})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Call(ctx, "block", nil, nil) }()
	// Wait until the call is pending, then cancel it.
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.pending) == 1
	}, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	a.mu.Lock()
	require.Empty(t, a.pending, "the pending entry is removed")
	a.mu.Unlock()
	close(release) // the late reply arrives and is dropped

	n, err := Call[int](context.Background(), a, "ok", nil)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, a.Err())
}

func TestCloseFailsPendingAndCancelsHandlers(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	started := make(chan struct{})
	cancelled := make(chan struct{})
	Register(m, "wait", func(ctx context.Context, _ any) (int, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return 0, ctx.Err()
	})
	a, b := pipePair(t, nil, &options{Methods: m})
	errc := make(chan error, 1)
	go func() { errc <- a.Call(context.Background(), "wait", nil, nil) }()
	<-started
	require.NoError(t, b.Close())
	<-cancelled
	err := <-errc
	require.ErrorIs(t, err, ErrClosed)
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, websocket.StatusNormalClosure, ce.Code)
	<-a.Done()
	require.ErrorIs(t, a.Err(), ErrClosed)
	require.ErrorIs(t, a.Call(context.Background(), "wait", nil, nil), ErrClosed)
	require.ErrorIs(t, a.Notify(context.Background(), "wait", nil), ErrClosed)
	require.NoError(t, b.Close(), "Close is idempotent")
}

func TestNotificationOrder(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	const n = 500
	got := make(chan int, n)
	Register(m, "seq", func(_ context.Context, p []int) (any, error) {
		got <- p[0]
		return nil, nil
	})
	a, _ := pipePair(t, nil, &options{Methods: m})
	for i := range n {
		require.NoError(t, a.Notify(context.Background(), "seq", []int{i}))
	}
	for i := range n {
		require.Equal(t, i, <-got)
	}
}

func TestRequestsRunConcurrently(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	const n = 8
	var arrived sync.WaitGroup
	arrived.Add(n)
	Register(m, "meet", func(context.Context, any) (int, error) {
		arrived.Done()
		arrived.Wait() // returns only if all n run at once
		return 1, nil
	})
	a, _ := pipePair(t, nil, &options{Methods: m})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := Call[int](context.Background(), a, "meet", nil)
			require.NoError(t, err)
		})
	}
	wg.Wait()

	// Items of one batch run concurrently too.
	arrived.Add(n)
	var calls []*BatchCall
	require.NoError(t, a.Batch(context.Background(), func(b *Batch) {
		for range n {
			calls = append(calls, b.Call("meet", nil, nil))
		}
	}))
	for _, c := range calls {
		require.NoError(t, c.Err())
	}
}

func TestRegisterRefusesBadNames(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	h := func(context.Context, any) (any, error) { return nil, nil }
	require.Panics(t, func() { Register(m, "", h) })
	require.Panics(t, func() { Register(m, "rpc.discover", h) })
	require.Panics(t, func() { Register(m, strings.Repeat("x", MaxMethodNameLen+1), h) })
	Register(m, "math.sum", h)
	require.Panics(t, func() { Register(m, "math.sum", h) })
	require.Equal(t, []string{"math.sum"}, m.Names())
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &Error{Code: CodeMethodNotFound, Message: "other text"})
	require.ErrorIs(t, err, ErrMethodNotFound)
	require.False(t, errors.Is(err, ErrInvalidParams))
}

// TestHandoffKeepsOneReader guards the inline-serving hand-off: handlers
// that outlive the inline budget, mixed with quick ones, must never leave
// two goroutines reading the socket (which corrupts the frame stream).
func TestHandoffKeepsOneReader(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "work", func(ctx context.Context, us []int) (int, error) {
		if us[0] > 0 {
			timer := time.NewTimer(time.Duration(us[0]) * time.Microsecond)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		return us[0], nil
	})
	srv := newServer(&options{Methods: m})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	p, err := dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http"), &options{Methods: m})
	require.NoError(t, err)
	defer p.Close()

	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				us := (g*7 + i*13) % 5 * int(inlineBudget/time.Microsecond) / 2 // both sides of the budget
				n, err := Call[int](context.Background(), p, "work", []int{us})
				if err != nil || n != us {
					t.Errorf("call: %d, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.Err())
}

// TestNothingWrittenAfterClose: once Close has begun, a handler that
// returns because its context ended must not get its answer out ahead of
// the close frame (the caller must see ErrClosed, not that answer).
func TestNothingWrittenAfterClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := NewMethods()
		started := make(chan struct{})
		Register(m, "wait", func(ctx context.Context, _ any) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		})
		p, raw := rawPeer(t, &options{Methods: m})
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"wait"}`)))
		<-started
		p.shutdown(nil) // Close's first step: handler contexts end
		synctest.Wait() // the handler returns and tries to answer
		select {
		case msg := <-raw.in:
			t.Fatalf("written after Close began: %s", msg)
		default:
		}
		p.conn.close(websocket.StatusNormalClosure, "") // Close's second step
	})
}

// TestInlineBatchGivesBackItsSlot: a batch served on the reading goroutine
// returns its handler slot, so a draining peer drains (Server.Shutdown
// waits for exactly that).
func TestInlineBatchGivesBackItsSlot(t *testing.T) {
	t.Parallel()
	p, raw := rawPeer(t, &options{Methods: arith()})
	for range 3 {
		exchange(t, raw, `[{"jsonrpc":"2.0","id":1,"method":"math.sum","params":[1]},{"jsonrpc":"2.0","id":2,"method":"math.sum","params":[2]}]`)
	}
	select {
	case <-p.drain():
	case <-time.After(10 * time.Second):
		t.Fatal("the peer never drained: a handler slot leaked")
	}
}

// noReserve is a transport's reserve for tests that read a raw end.
func noReserve(int64) error { return nil }

// TestFallback: Fallback serves every name the table lacks, with the name
// in Request.Method, under the table's middleware (added before or after
// it), for calls and notifications, over WebSocket and POST alike; the
// names the table has still go to their own handlers, and a fallback may
// answer method not found itself.
func TestFallback(t *testing.T) {
	t.Parallel()
	notes := make(chan string, 1)
	m := NewMethods()
	Register(m, "known", func(context.Context, any) (string, error) { return "known", nil })
	m.Fallback(func(_ context.Context, req *Request) (any, error) {
		switch {
		case req.Method == "nobody":
			return nil, ErrMethodNotFound
		case req.IsNotification():
			notes <- req.Method
			return nil, nil
		}
		return "fallback:" + req.Method + ":" + string(req.Params), nil
	})
	var seen atomic.Int32
	m.Use(func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			seen.Add(1)
			return next(ctx, req)
		}
	})
	require.Panics(t, func() { m.Fallback(func(context.Context, *Request) (any, error) { return nil, nil }) })

	s := appServe(t, &options{Methods: m})
	ws := appDial(t, s.ws, nil)
	post := newHTTPClient(s.url, nil)
	for _, c := range []Caller{ws, post} {
		got, err := Call[string](context.Background(), c, "any.thing", []int{1})
		require.NoError(t, err)
		require.Equal(t, "fallback:any.thing:[1]", got)
		got, err = Call[string](context.Background(), c, "known", nil)
		require.NoError(t, err)
		require.Equal(t, "known", got)
		_, err = Call[string](context.Background(), c, "nobody", nil)
		require.ErrorIs(t, err, ErrMethodNotFound)
		require.NoError(t, c.Notify(context.Background(), "note.x", nil))
		require.Equal(t, "note.x", rsWait(t, notes, "the notification"))
	}
	require.Equal(t, int32(8), seen.Load(), "middleware wraps the fallback and the methods")
}
