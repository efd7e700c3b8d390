package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// ---- harness ----

// rsPipePeers returns two started peers connected in memory. Inside a
// bubble, the caller closes them.
func rsPipePeers(a, b *Options) (*Peer, *Peer) {
	ea, eb := newPipe(64)
	pa := newPeer(ea, a.config(), nil, nil)
	pb := newPeer(eb, b.config(), nil, nil)
	pa.start()
	pb.start()
	return pa, pb
}

type rsSrv struct {
	srv         *Server
	hs          *httptest.Server
	url         string // ws://
	addr        string
	peers       chan *Peer // each peer, as it connects
	disconnects atomic.Int64
}

// rsNewServer serves a Server over loopback HTTP; it is shut down at the
// end of the test.
func rsNewServer(t *testing.T, opts Options) *rsSrv {
	s := &rsSrv{peers: make(chan *Peer, 64)}
	prevC, prevD := opts.OnConnect, opts.OnDisconnect
	opts.OnConnect = func(p *Peer) {
		if prevC != nil {
			prevC(p)
		}
		select {
		case s.peers <- p:
		default:
		}
	}
	opts.OnDisconnect = func(p *Peer) {
		s.disconnects.Add(1)
		if prevD != nil {
			prevD(p)
		}
	}
	s.srv = NewServer(&opts)
	s.hs = httptest.NewServer(s.srv)
	s.url = "ws" + strings.TrimPrefix(s.hs.URL, "http")
	s.addr = s.hs.Listener.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.srv.Shutdown(ctx))
		s.hs.Close()
	})
	return s
}

func (s *rsSrv) peer(t *testing.T) *Peer {
	t.Helper()
	select {
	case p := <-s.peers:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no peer connected")
		return nil
	}
}

func rsDial(t *testing.T, url string, opts *Options) *Peer {
	t.Helper()
	p, err := Dial(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// rsWait receives from ch, failing the test if nothing comes within a
// generous bound (a guard against hangs, not a synchronisation).
func rsWait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// rsProxy is a loopback TCP proxy whose connections the test can cut.
type rsProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func rsNewProxy(t *testing.T, target string) *rsProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &rsProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *rsProxy) url() string { return "ws://" + p.ln.Addr().String() }

func (p *rsProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(u, c) })
		p.wg.Go(func() { pipe(c, u) })
	}
}

// cut closes every proxied connection at once, as a network failure.
func (p *rsProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, not a graceful FIN
		}
		c.Close()
	}
	p.conns = nil
}

func (p *rsProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// rsWriteHook is a transport that lets a test act as a message starts being
// written.
type rsWriteHook struct {
	transport
	onWrite func(b []byte)
}

func (h *rsWriteHook) writeMessage(b []byte) error {
	h.onWrite(b)
	return h.transport.writeMessage(b)
}

func rsReqID(t testing.TB, raw string) string {
	t.Helper()
	var r struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &r), raw)
	return string(r.ID)
}

// ---- response routing ----

func TestResponseRouting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(nil, 64)
		defer r.p.Close()
		type outcome struct {
			v   string
			err error
		}
		call := func() (chan outcome, string) {
			ch := make(chan outcome, 2)
			go func() {
				var v string
				err := r.p.Call(context.Background(), "x", nil, &v)
				ch <- outcome{v, err}
			}()
			synctest.Wait()
			reqs := r.drain()
			require.Len(t, reqs, 1)
			return ch, rsReqID(t, reqs[0])
		}
		pending := func(ch chan outcome) {
			t.Helper()
			synctest.Wait()
			select {
			case o := <-ch:
				t.Fatalf("call completed by a response that was not its own: %+v", o)
			default:
			}
		}

		ch1, id1 := call()
		require.Equal(t, "1", id1)
		for _, msg := range []string{
			`{"jsonrpc":"2.0","id":999,"result":"unknown"}`,
			`{"jsonrpc":"2.0","id":0,"result":"never issued"}`,
			`{"jsonrpc":"2.0","id":"1","result":"string id"}`,
			`{"jsonrpc":"2.0","id":1.0,"result":"fraction"}`,
			`{"jsonrpc":"2.0","id":1e0,"result":"exponent"}`,
			`{"jsonrpc":"2.0","id":-1,"result":"negative"}`,
			`{"jsonrpc":"2.0","id":01,"result":"leading zero"}`,
			`{"jsonrpc":"2.0","id":18446744073709551617,"result":"overflow"}`,
			`{"jsonrpc":"2.0","id":null,"result":"null"}`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`,
			`{"jsonrpc":"2.0","id":1,"result":"both","error":{"code":1,"message":"x"}}`,
			`{"jsonrpc":"2.0","id":1}`,
			`{"jsonrpc":"2.0","id":1,"Result":"case"}`,
			`{"jsonrpc":"2.0","id":1,"result":"dup","result":"dup"}`,
			`{"jsonrpc":"2.0","id":1,"id":2,"result":"dup id"}`,
			`{"jsonrpc":"1.0","id":1,"result":"version"}`,
			`{"id":1,"result":"no version"}`,
			`{"jsonrpc":"2.0","id":1,"error":"not an object"}`,
			`[{"jsonrpc":"2.0","id":"1","result":"batched string id"}]`,
		} {
			r.send(t, msg)
			pending(ch1)
			r.drain() // error replies to the invalid ones
		}
		require.NoError(t, r.p.Err())

		r.send(t, `{"jsonrpc":"2.0","id":1,"result":"first"}`)
		o := rsWait(t, ch1, "call 1")
		require.NoError(t, o.err)
		require.Equal(t, "first", o.v)

		// A second response to an id already answered completes nothing,
		// in particular not the next call.
		r.send(t, `{"jsonrpc":"2.0","id":1,"result":"second"}`)
		ch2, id2 := call()
		require.Equal(t, "2", id2)
		r.send(t, `{"jsonrpc":"2.0","id":1,"result":"third"}`)
		pending(ch2)
		r.send(t, `{"jsonrpc":"2.0","id":2,"error":{"code":-5,"message":"no"}}`)
		o = rsWait(t, ch2, "call 2")
		var e *Error
		require.ErrorAs(t, o.err, &e)
		require.Equal(t, int64(-5), e.Code)
		r.send(t, `{"jsonrpc":"2.0","id":2,"result":"late"}`)
		synctest.Wait()
		require.Empty(t, r.drain())

		// A batch: ids 3, 4, 5. Responses in a mixed array with unknown
		// and repeated ids complete each call once, with its first answer.
		bres := make(chan error, 1)
		var b1, b2, b3 string
		var c1, c2, c3 *BatchCall
		go func() {
			bres <- r.p.Batch(context.Background(), func(b *Batch) {
				c1 = b.Call("x", nil, &b1)
				c2 = b.Call("x", nil, &b2)
				c3 = b.Call("x", nil, &b3)
			})
		}()
		synctest.Wait()
		require.Len(t, r.drain(), 1)
		r.send(t, `[{"jsonrpc":"2.0","id":4,"result":"four"},{"jsonrpc":"2.0","id":4,"result":"four again"},{"jsonrpc":"2.0","id":"3","result":"bad"},{"jsonrpc":"2.0","id":77,"result":"unknown"}]`)
		synctest.Wait()
		select {
		case <-bres:
			t.Fatal("batch completed early")
		default:
		}
		r.send(t, `{"jsonrpc":"2.0","id":5,"result":"five"}`)
		r.send(t, `[{"jsonrpc":"2.0","id":3,"result":"three"},{"jsonrpc":"2.0","id":5,"result":"five again"}]`)
		require.NoError(t, rsWait(t, bres, "batch"))
		require.NoError(t, c1.Err())
		require.NoError(t, c2.Err())
		require.NoError(t, c3.Err())
		require.Equal(t, []string{"three", "four", "five"}, []string{b1, b2, b3})
		synctest.Wait()
		require.Empty(t, r.drain(), "valid responses are never answered")
		require.NoError(t, r.p.Err())
	})
}

// TestDuplicateInflightIDs: a request whose id is already in progress is
// refused, and the first one carries on, uncancelled.
func TestDuplicateInflightIDs(t *testing.T) {
	t.Parallel()
	ids := []string{`7`, `0`, `"x"`, `"7"`, `-3`, `1.5`, `123456789012345678901234567890`, `"a\"b"`}
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var started, cancelled atomic.Int64
		m := NewMethods()
		m.Handle("block", func(ctx context.Context, _ *Request) (any, error) {
			started.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				cancelled.Add(1)
			}
			return "done", nil
		})
		r := rsNewRaw(&Options{Methods: m}, 64)
		defer r.p.Close()
		for _, id := range ids {
			req := `{"jsonrpc":"2.0","id":` + id + `,"method":"block"}`
			require.Empty(t, r.exchange(t, req))
			got := r.exchange(t, req)
			require.Len(t, got, 1, "id %s: the duplicate must be refused", id)
			res := rsDecode(t, got[0])
			require.Equal(t, id, string(res.ID))
			require.NotNil(t, res.Error, "id %s: %s", id, got[0])
			require.Equal(t, int64(CodeInvalidRequest), res.Error.Code)
		}
		require.Equal(t, int64(len(ids)), started.Load(), "a duplicate must not run")
		close(release)
		synctest.Wait()
		got := r.drain()
		require.Len(t, got, len(ids))
		for _, g := range got {
			require.Contains(t, g, `"result":"done"`)
		}
		require.Zero(t, cancelled.Load(), "the duplicate cancelled the first")

		// Once answered, an id may be used again.
		for _, id := range ids {
			got := r.exchange(t, `{"jsonrpc":"2.0","id":`+id+`,"method":"block"}`)
			require.Equal(t, []string{`{"jsonrpc":"2.0","id":` + id + `,"result":"done"}`}, got)
		}
	})
}

// ---- re-entrancy and saturation ----

func TestReentrantCallbacks8Deep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		bounce := func(side string) *Methods {
			m := NewMethods()
			Register(m, "bounce", func(ctx context.Context, n int) (string, error) {
				if n == 0 {
					return side, nil
				}
				var s string
				err := PeerFromContext(ctx).Call(ctx, "bounce", []int{n - 1}, &s)
				return side + s, err
			})
			return m
		}
		// 4 handler slots per side: an 8-deep chain holds all of them.
		a, b := rsPipePeers(&Options{Methods: bounce("A"), MaxHandlers: 4, MaxQueued: 4}, &Options{Methods: bounce("B"), MaxHandlers: 4, MaxQueued: 4})
		defer a.Close()
		defer b.Close()
		s, err := Call[string](context.Background(), a, "bounce", []int{8})
		require.NoError(t, err)
		require.Equal(t, "BABABABAB", s)
		s, err = Call[string](context.Background(), b, "bounce", []int{8})
		require.NoError(t, err)
		require.Equal(t, "ABABABABA", s)
	})
}

// TestSaturatedBothWays: every handler slot and queue place of both peers
// taken, every handler calling back the other side. Every call ends, with a
// result or CodeServerBusy; none hangs (a hang is a deadlocked bubble).
func TestSaturatedBothWays(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		synctest.Test(t, func(t *testing.T) {
			var slow chan struct{} = make(chan struct{})
			mk := func() *Methods {
				m := NewMethods()
				Register(m, "ping", func(ctx context.Context, n int) (int, error) {
					if n == 0 {
						<-slow
						return 0, nil
					}
					var r int
					err := PeerFromContext(ctx).Call(ctx, "ping", []int{n - 1}, &r)
					return r + 1, err
				})
				return m
			}
			opts := func() *Options { return &Options{Methods: mk(), MaxHandlers: 2, MaxQueued: 2, MaxPending: 64} }
			a, b := rsPipePeers(opts(), opts())
			defer a.Close()
			defer b.Close()
			var ok, busy atomic.Int64
			var wg sync.WaitGroup
			for i := range 24 {
				p := a
				if i%2 == 1 {
					p = b
				}
				depth := 1 + (i+round)%4
				wg.Go(func() {
					n, err := Call[int](context.Background(), p, "ping", []int{depth})
					switch {
					case err == nil:
						require.Equal(t, depth, n)
						ok.Add(1)
					case errors.Is(err, ErrServerBusy):
						busy.Add(1)
					default:
						t.Errorf("unexpected outcome: %v", err)
					}
				})
			}
			// Blocked handlers hand reading on after inlineBudget of
			// (fake) time; let enough pass for every request to land.
			time.Sleep(time.Second)
			synctest.Wait()
			close(slow)
			wg.Wait()
			require.Equal(t, int64(24), ok.Load()+busy.Load())
			require.NotZero(t, busy.Load(), "the peers were never saturated")
			require.NoError(t, a.Err())
			require.NoError(t, b.Err())
		})
	}
}

// ---- cancellation isolation ----

// TestCancellationIsolation: 10 000 caller-side cancellations at random
// moments, one of them while a 512 KiB message is being written, over a real
// loopback socket: the socket never closes, each cancelled call returns
// within 10 ms of its cancellation, every other call succeeds with its own
// result.
func TestCancellationIsolation(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "wait", func(ctx context.Context, a [2]int) (int, error) {
		if a[1] > 0 {
			tm := time.NewTimer(time.Duration(a[1]) * time.Microsecond)
			defer tm.Stop()
			select {
			case <-tm.C:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return a[0], nil
	})
	m.Handle("echo", func(_ context.Context, req *Request) (any, error) {
		return json.RawMessage(append([]byte(nil), req.Params...)), nil
	})
	s := rsNewServer(t, Options{Methods: m})

	c, _, err := websocket.Dial(context.Background(), s.url, nil)
	require.NoError(t, err)
	cfg := (&Options{}).config()
	var bigCancel atomic.Pointer[context.CancelFunc]
	var bigCancelledAt atomic.Int64
	hook := &rsWriteHook{transport: newWSTransport(c, cfg), onWrite: func(b []byte) {
		if len(b) >= 512<<10 {
			if f := bigCancel.Swap(nil); f != nil {
				bigCancelledAt.Store(time.Now().UnixNano())
				(*f)()
			}
		}
	}}
	client := newPeer(hook, cfg, nil, nil)
	client.start()
	defer client.Close()
	server := s.peer(t)

	const cancellations = 10000
	const workers = 16
	var next atomic.Int64
	var cancelled, completed, plain atomic.Int64
	var worst atomic.Int64 // ns from cancel to return
	record := func(d time.Duration) {
		for {
			w := worst.Load()
			if int64(d) <= w || worst.CompareAndSwap(w, int64(d)) {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				i := int(next.Add(1))
				if i > cancellations {
					return
				}
				v := i*1000 + w
				if i%4 == 0 {
					// A call nobody cancels, among the cancelled ones.
					n, err := Call[int](context.Background(), client, "wait", [2]int{v, rng.IntN(300)})
					if !assertNoErr(t, err) || n != v {
						t.Errorf("plain call: got %d, want %d", n, v)
					}
					plain.Add(1)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var at atomic.Int64
				var tm *time.Timer
				switch k := rng.IntN(10); {
				case k == 0:
					at.Store(time.Now().UnixNano())
					cancel() // before the call
				default:
					tm = time.AfterFunc(time.Duration(rng.IntN(400))*time.Microsecond, func() {
						at.Store(time.Now().UnixNano())
						cancel()
					})
				}
				n, err := Call[int](ctx, client, "wait", [2]int{v, rng.IntN(400)})
				end := time.Now().UnixNano()
				if tm != nil {
					tm.Stop()
				}
				cancel()
				switch {
				case err == nil:
					if n != v {
						t.Errorf("call %d got the result of another call: %d", v, n)
					}
					completed.Add(1)
				case errors.Is(err, context.Canceled):
					record(time.Duration(end - at.Load()))
					cancelled.Add(1)
				default:
					t.Errorf("call %d: %v", v, err)
				}
			}
		})
	}

	// The 512 KiB message, cancelled as it starts being written, while the
	// workers run.
	var bigLatency []time.Duration
	big := strings.Repeat("x", 512<<10)
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		bigCancel.Store(&cancel)
		var res json.RawMessage
		err := client.Call(ctx, "echo", []string{big}, &res)
		end := time.Now().UnixNano()
		require.ErrorIs(t, err, context.Canceled)
		bigLatency = append(bigLatency, time.Duration(end-bigCancelledAt.Load()))
		cancel()
	}
	wg.Wait()

	t.Logf("cancelled %d, completed despite a cancellation %d, plain %d; worst cancel-to-return %v; 512 KiB: %v",
		cancelled.Load(), completed.Load(), plain.Load(), time.Duration(worst.Load()), bigLatency)
	require.Equal(t, int64(cancellations), cancelled.Load()+completed.Load())
	require.Greater(t, cancelled.Load(), int64(cancellations/2))
	require.Less(t, time.Duration(worst.Load()), 10*time.Millisecond, "a cancelled call took too long to return")
	for _, d := range bigLatency {
		require.Less(t, d, 10*time.Millisecond, "the call cancelled during its 512 KiB write took too long to return")
	}

	require.NoError(t, client.Err())
	require.NoError(t, server.Err())
	require.Zero(t, s.disconnects.Load())
	n, err := Call[int](context.Background(), client, "wait", [2]int{42, 0})
	require.NoError(t, err)
	require.Equal(t, 42, n)
	var echoed []string
	require.NoError(t, client.Call(context.Background(), "echo", []string{big}, &echoed))
	require.Equal(t, []string{big}, echoed)
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// ---- disconnects ----

// rsBlocker serves "block": it reports its start, waits for its context to
// be cancelled, and reports that.
type rsBlocker struct {
	started, cancelled chan struct{}
}

func rsNewBlocker(n int) *rsBlocker {
	return &rsBlocker{started: make(chan struct{}, n), cancelled: make(chan struct{}, n)}
}

func (b *rsBlocker) methods() *Methods {
	m := NewMethods()
	m.Handle("block", func(ctx context.Context, _ *Request) (any, error) {
		b.started <- struct{}{}
		<-ctx.Done()
		b.cancelled <- struct{}{}
		return nil, ctx.Err()
	})
	return m
}

// TestDisconnectWithCallsInFlight cuts the TCP connection under 1 000 calls
// in flight each way.
func TestDisconnectWithCallsInFlight(t *testing.T) {
	// Not parallel: it checks that goroutines return to their baseline.
	base := goleak.IgnoreCurrent()
	func() {
		const n = 1000
		sb, cb := rsNewBlocker(n), rsNewBlocker(n)
		opts := func(m *Methods) Options {
			return Options{Methods: m, MaxHandlers: n + 10, MaxPending: n + 10}
		}
		s := rsNewServer(t, opts(sb.methods()))
		proxy := rsNewProxy(t, s.addr)
		co := opts(cb.methods())
		client := rsDial(t, proxy.url(), &co)
		server := s.peer(t)

		type outcome struct {
			err error
			at  time.Time
		}
		outcomes := make(chan outcome, 2*n)
		for i := range 2 * n {
			p := client
			if i%2 == 1 {
				p = server
			}
			go func() {
				err := p.Call(context.Background(), "block", nil, nil)
				outcomes <- outcome{err, time.Now()}
			}()
		}
		for range n {
			rsWait(t, sb.started, "server handler start")
			rsWait(t, cb.started, "client handler start")
		}
		cutAt := time.Now()
		proxy.cut()
		var worst time.Duration
		for range 2 * n {
			o := rsWait(t, outcomes, "a call's outcome")
			require.ErrorIs(t, o.err, ErrClosed)
			var ce *closedError
			require.ErrorAs(t, o.err, &ce)
			require.Error(t, ce.cause, "the error must carry the cause")
			worst = max(worst, o.at.Sub(cutAt))
		}
		t.Logf("worst cut-to-error: %v", worst)
		require.Less(t, worst, 100*time.Millisecond)
		for range n {
			rsWait(t, sb.cancelled, "server handler cancellation")
			rsWait(t, cb.cancelled, "client handler cancellation")
		}
		rsWait(t, client.Done(), "client done")
		rsWait(t, server.Done(), "server peer done")
		require.ErrorIs(t, client.Err(), ErrClosed)
		require.ErrorIs(t, server.Err(), ErrClosed)
	}()
	// The cleanups (server shutdown, proxy close) have not run yet: close
	// what the test owns, then every goroutine must be gone.
	goleak.VerifyNone(t, base, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"))
}
