package wsrpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
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

	"github.com/wsrpc/wsrpc/internal/relay"
)

// ---- harness ----

// rsPipePeers returns two started peers connected in memory. Inside a
// bubble, the caller closes them.
func rsPipePeers(a, b *options) (*Peer, *Peer) {
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
func rsNewServer(t *testing.T, opts options) *rsSrv {
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
	s.srv = newServer(&opts)
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

func rsDial(t *testing.T, url string, opts *options) *Peer {
	t.Helper()
	p, err := dial(context.Background(), url, opts)
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

// rsNewProxy starts a loopback TCP relay to target whose connections the
// test can cut (Cut), stopped at the end of the test.
func rsNewProxy(t *testing.T, target string) *relay.Relay {
	r, err := relay.Start(target, nil)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// rsWriteHook is a transport that lets a test act as a message starts being
// written (onWrite), and once it has been, on the goroutine that wrote it
// (after). Either may be nil.
type rsWriteHook struct {
	transport
	onWrite, after func(b []byte)
}

func (h *rsWriteHook) writeMessage(b []byte) error {
	if h.onWrite != nil {
		h.onWrite(b)
	}
	err := h.transport.writeMessage(b)
	if h.after != nil {
		h.after(b)
	}
	return err
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
		r := rsNewRaw(&options{Methods: m}, 64)
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
		a, b := rsPipePeers(&options{Methods: bounce("A"), Limits: Limits{MaxHandlers: 4, MaxQueued: 4}}, &options{Methods: bounce("B"), Limits: Limits{MaxHandlers: 4, MaxQueued: 4}})
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
			opts := func() *options {
				return &options{Methods: mk(), Limits: Limits{MaxHandlers: 2, MaxQueued: 2, MaxPending: 64}}
			}
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
// moments, and three while a 512 KiB message is being written, over a real
// loopback socket: the socket never closes, every other call succeeds with
// its own result, and a call cancelled during its write returns before its
// answer exists (its handler waits for the test, which lets it go only
// after the call has returned). How long cancellations take is logged, not
// bounded: timing belongs in benchmarks.
func TestCancellationIsolation(t *testing.T) {
	// Not parallel: it measures latencies.
	m := NewMethods()
	// "wait" yields a random number of times before answering: timers
	// are too coarse (about 1 ms here) to land cancellations inside a
	// round trip of tens of microseconds.
	Register(m, "wait", func(ctx context.Context, a [2]int) (int, error) {
		for range a[1] {
			runtime.Gosched()
		}
		return a[0], ctx.Err()
	})
	m.Handle("echo", func(_ context.Context, req *Request) (any, error) {
		return json.RawMessage(append([]byte(nil), req.Params...)), nil
	})
	bigRelease := make(chan struct{}, 3)
	m.Handle("big", func(_ context.Context, req *Request) (any, error) {
		<-bigRelease
		return true, nil
	})
	s := rsNewServer(t, options{Methods: m})

	c, _, err := websocket.Dial(context.Background(), s.url, nil)
	require.NoError(t, err)
	cfg := (&options{}).config()
	var bigCancel atomic.Pointer[context.CancelFunc]
	var bigCancelledAt atomic.Int64
	hook := &rsWriteHook{transport: newWSTransport(c, nil, nil, cfg), onWrite: func(b []byte) {
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
	workers := 16
	if raceEnabled {
		workers = 6 // fewer goroutines fighting for 2 CPUs at 10x the cost each
	}
	var next atomic.Int64
	var cancelled, completed, plain atomic.Int64
	var worst atomic.Int64 // ns from cancel to return
	var latMu sync.Mutex
	var lats []time.Duration
	record := func(d time.Duration) {
		latMu.Lock()
		lats = append(lats, d)
		latMu.Unlock()
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
					n, err := Call[int](context.Background(), client, "wait", [2]int{v, rng.IntN(50)})
					if !assertNoErr(t, err) || n != v {
						t.Errorf("plain call: got %d, want %d", n, v)
					}
					plain.Add(1)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var at atomic.Int64
				stop := func() {
					at.Store(time.Now().UnixNano())
					cancel()
				}
				var canceller sync.WaitGroup
				switch k := rng.IntN(10); {
				case k == 0:
					stop() // before the call
				case k < 4:
					canceller.Go(stop) // as soon as it can
				default:
					spins := rng.IntN(3000)
					canceller.Go(func() {
						for range spins {
							runtime.Gosched()
						}
						stop()
					})
				}
				n, err := Call[int](ctx, client, "wait", [2]int{v, rng.IntN(50)})
				end := time.Now().UnixNano()
				canceller.Wait()
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
		err := client.Call(ctx, "big", []string{big}, &res)
		end := time.Now().UnixNano()
		require.ErrorIs(t, err, context.Canceled)
		bigLatency = append(bigLatency, time.Duration(end-bigCancelledAt.Load()))
		bigRelease <- struct{}{} // only now may its answer exist
		cancel()
	}
	wg.Wait()

	slices.Sort(lats)
	over := 0
	for _, d := range lats {
		if d > 10*time.Millisecond {
			over++
		}
	}
	t.Logf("latency p50 %v p99 %v p999 %v max %v; over 10ms: %d", lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)*999/1000], lats[len(lats)-1], over)
	t.Logf("cancelled %d, completed despite a cancellation %d, plain %d; worst cancel-to-return %v; 512 KiB: %v",
		cancelled.Load(), completed.Load(), plain.Load(), time.Duration(worst.Load()), bigLatency)
	require.Equal(t, int64(cancellations), cancelled.Load()+completed.Load())
	require.Greater(t, cancelled.Load(), int64(cancellations/2))

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
	t.Run("cut", func(t *testing.T) {
		const n = 1000
		sb, cb := rsNewBlocker(n), rsNewBlocker(n)
		opts := func(m *Methods) options {
			return options{Methods: m, Limits: Limits{MaxHandlers: n + 10, MaxPending: n + 10}}
		}
		s := rsNewServer(t, opts(sb.methods()))
		proxy := rsNewProxy(t, s.addr)
		co := opts(cb.methods())
		client := rsDial(t, "ws://"+proxy.Addr(), &co)
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
		proxy.Cut()
		var worst time.Duration
		for range 2 * n {
			o := rsWait(t, outcomes, "a call's outcome")
			require.ErrorIs(t, o.err, ErrClosed)
			var ce *closedError
			require.ErrorAs(t, o.err, &ce)
			require.Error(t, ce.cause, "the error must carry the cause")
			worst = max(worst, o.at.Sub(cutAt))
		}
		t.Logf("worst cut-to-error: %v", worst) // timing is logged, not bounded
		for range n {
			rsWait(t, sb.cancelled, "server handler cancellation")
			rsWait(t, cb.cancelled, "client handler cancellation")
		}
		rsWait(t, client.Done(), "client done")
		rsWait(t, server.Done(), "server peer done")
		require.ErrorIs(t, client.Err(), ErrClosed)
		require.ErrorIs(t, server.Err(), ErrClosed)
	})
	// The subtest's cleanups closed the server, the proxy and the client:
	// every goroutine must be gone.
	goleak.VerifyNone(t, base)
}

// TestCloseRace: Close from 8 goroutines, Server.Shutdown and the remote
// close, all at once, with calls and batches in flight both ways: no panic,
// every call exactly one outcome.
func TestCloseRace(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		m := NewMethods()
		Register(m, "work", func(ctx context.Context, n int) (int, error) {
			tm := time.NewTimer(time.Duration(n%500) * time.Microsecond)
			defer tm.Stop()
			select {
			case <-tm.C:
				return n, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		})
		opts := options{Methods: m, Limits: Limits{MaxHandlers: 16, MaxQueued: 64}}
		s := rsNewServer(t, opts)
		client := rsDial(t, s.url, &opts)
		server := s.peer(t)

		const calls = 400
		var ledger sync.Map // id -> *atomic.Int32 outcomes
		var wg sync.WaitGroup
		outcome := func(id int, err error) {
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrServerBusy) {
				t.Errorf("call %d: unexpected error %v", id, err)
			}
			v, _ := ledger.LoadOrStore(id, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
		}
		started := make(chan struct{}, calls)
		for i := range calls {
			p := client
			if i%2 == 1 {
				p = server
			}
			wg.Go(func() {
				started <- struct{}{}
				if i%10 == 0 {
					var bcs []*BatchCall
					err := p.Batch(context.Background(), func(b *Batch) {
						for j := range 3 {
							bcs = append(bcs, b.Call("work", []int{i*10 + j}, nil))
						}
					})
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("batch %d: %v", i, err)
					}
					for j, bc := range bcs {
						outcome(i*10+j, bc.Err())
					}
					return
				}
				_, err := Call[int](context.Background(), p, "work", []int{i * 10})
				outcome(i*10, err)
			})
		}
		for range calls / 2 {
			<-started
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var closers sync.WaitGroup
		gate := make(chan struct{})
		for range 8 {
			closers.Go(func() { <-gate; client.Close() })
		}
		closers.Go(func() { <-gate; s.srv.Shutdown(ctx) })
		closers.Go(func() { <-gate; server.Close() })
		close(gate)
		closers.Wait()
		wg.Wait()
		cancel()

		n := 0
		ledger.Range(func(k, v any) bool {
			n++
			if c := v.(*atomic.Int32).Load(); c != 1 {
				t.Errorf("round %d: call %v has %d outcomes", round, k, c)
			}
			return true
		})
		require.Equal(t, calls-calls/10+calls/10*3, n)
		require.ErrorIs(t, client.Err(), ErrClosed)
		require.ErrorIs(t, server.Err(), ErrClosed)
	}
}

// ---- slow and dead peers ----

// TestWriteTimeoutClosesNonReader: a peer that never reads is closed when a
// write to it does not complete within WriteTimeout; calls pending on the
// writer fail.
func TestWriteTimeoutClosesNonReader(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(&options{Limits: Limits{WriteTimeout: 3 * time.Second, PingInterval: -1}}, 4)
		defer r.p.Close()
		start := time.Now()
		callErr := make(chan error, 1)
		go func() { callErr <- r.p.Call(context.Background(), "never.answered", nil, nil) }()
		// One writer at a time: a goroutine waiting for the write lock
		// (a sync.Mutex) is not durably blocked, so time would not move.
		synctest.Wait()
		notifyErr := make(chan error, 1)
		go func() {
			for {
				if err := r.p.Notify(context.Background(), "n", []int{1}); err != nil {
					notifyErr <- err
					return
				}
			}
		}()
		err := <-notifyErr
		took := time.Since(start)
		require.True(t, took >= 3*time.Second && took <= 3*time.Second*9/8, "closed after %v: WriteTimeout, or up to an eighth later", took)
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorContains(t, err, "write did not complete within 3s")
		err = <-callErr
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorContains(t, err, "write did not complete")
		<-r.end.shared.closed
		require.Equal(t, websocket.StatusAbnormalClosure, websocket.CloseStatus(r.end.shared.err))
	})
}

// TestKeepaliveClosesDeadPeer: a peer that stops answering pings is closed
// after PingInterval+PingTimeout, failing the calls pending on it; a peer
// that answers stays up however long it is idle.
func TestKeepaliveClosesDeadPeer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(&options{Limits: Limits{PingInterval: 2 * time.Second, PingTimeout: time.Second}}, 4)
		defer r.p.Close()
		time.Sleep(time.Hour) // fake time: an hour idle with a live peer
		synctest.Wait()
		require.NoError(t, r.p.Err())

		callErr := make(chan error, 1)
		go func() { callErr <- r.p.Call(context.Background(), "never.answered", nil, nil) }()
		synctest.Wait()
		r.end.deaf.Store(true)
		start := time.Now()
		err := <-callErr
		require.LessOrEqual(t, time.Since(start), 3*time.Second)
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorContains(t, err, "keepalive")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		<-r.p.Done()
		require.ErrorIs(t, r.p.Err(), ErrClosed)
	})
}

// TestNotificationFloodCloses: notifications flooding a handler that does
// not keep up fill the queue up to MaxNotifications, then the peer stops
// reading (backpressure: the queue never holds more); if the queue stays full
// for WriteTimeout, the connection is closed with 1008. A burst the handler
// does absorb is slowed down, not refused.
func TestNotificationFloodCloses(t *testing.T) {
	t.Parallel()
	const limit = 16
	note := func(i int) string { return `{"jsonrpc":"2.0","method":"slow","params":[` + strconv.Itoa(i) + `]}` }
	queued := func(p *Peer) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.notes)
	}
	t.Run("stuck handler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := NewMethods()
			var handled atomic.Int64
			m.Handle("slow", func(ctx context.Context, _ *Request) (any, error) {
				handled.Add(1)
				<-ctx.Done()
				return nil, nil
			})
			r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxNotifications: limit, WriteTimeout: 5 * time.Second, PingInterval: -1}}, 4*limit)
			defer r.p.Close()
			var start time.Time
			for i := range limit + 1 {
				start = time.Now()
				r.send(t, note(i))
				if i == 0 {
					// The handler blocks the reading goroutine for
					// inlineBudget before reading moves on.
					time.Sleep(2 * inlineBudget)
					start = time.Now()
				}
				synctest.Wait()
				require.NoError(t, r.p.Err(), "closed after %d notifications", i+1)
				require.LessOrEqual(t, queued(r.p), limit)
			}
			// The queue is full since start: nothing more is read.
			for i := range 2 * limit {
				r.send(t, note(i))
			}
			synctest.Wait()
			require.Equal(t, limit, queued(r.p), "the queue outgrew its limit")
			require.Equal(t, int64(1), handled.Load())
			<-r.p.Done()
			require.Equal(t, 5*time.Second, time.Since(start))
			require.ErrorIs(t, r.p.Err(), ErrClosed)
			require.ErrorContains(t, r.p.Err(), "notification queue overflow")
			<-r.end.shared.closed
			require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(r.end.shared.err))
			require.Zero(t, queued(r.p), "the queue is dropped on close")
		})
	})
	t.Run("slow handler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := NewMethods()
			var handled atomic.Int64
			m.Handle("slow", func(ctx context.Context, _ *Request) (any, error) {
				handled.Add(1)
				time.Sleep(100 * time.Millisecond)
				return nil, nil
			})
			r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxNotifications: limit, WriteTimeout: 5 * time.Second, PingInterval: -1}}, 8*limit)
			defer r.p.Close()
			for i := range 6 * limit {
				r.send(t, note(i))
			}
			for handled.Load() < 6*limit {
				synctest.Wait()
				require.LessOrEqual(t, queued(r.p), limit)
				require.NoError(t, r.p.Err())
				time.Sleep(50 * time.Millisecond)
			}
			require.NoError(t, r.p.Err())
		})
	})
}

// rsHijacker is an http.ResponseWriter whose connection is one end of a
// net.Pipe, so that websocket.Accept runs inside a synctest bubble.
type rsHijacker struct {
	h    http.Header
	conn net.Conn
	brw  *bufio.ReadWriter
}

func (w *rsHijacker) Header() http.Header         { return w.h }
func (w *rsHijacker) Write(b []byte) (int, error) { return len(b), nil }
func (w *rsHijacker) WriteHeader(code int) {
	fmt.Fprintf(w.brw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	w.h.Write(w.brw)
	w.brw.WriteString("\r\n")
	w.brw.Flush()
}
func (w *rsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.conn, w.brw, nil }

// rsAcceptPipe accepts a peer (started, closed at the end of the test) over
// one end of a net.Pipe, inside a synctest bubble; the test speaks raw
// WebSocket frames on the returned client end.
func rsAcceptPipe(t *testing.T, opts *options) (*Peer, net.Conn, *bufio.Reader) {
	srvConn, cliConn := net.Pipe()
	return rsAcceptOn(t, opts, srvConn, cliConn)
}

// rsAcceptOn is rsAcceptPipe on a given pair of conns (srvConn may wrap one
// end of a net.Pipe).
func rsAcceptOn(t *testing.T, opts *options, srvConn, cliConn net.Conn) (*Peer, net.Conn, *bufio.Reader) {
	t.Cleanup(func() { cliConn.Close() })
	req := httptest.NewRequest("GET", "http://127.0.0.1/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	w := &rsHijacker{h: http.Header{}, conn: srvConn, brw: bufio.NewReadWriter(bufio.NewReader(srvConn), bufio.NewWriter(srvConn))}
	cli := bufio.NewReader(cliConn)
	handshake := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(cli, req)
		if err != nil {
			handshake <- 0
			return
		}
		handshake <- resp.StatusCode
	}()
	p, err := accept(w, req, opts.config(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, <-handshake)
	p.start()
	t.Cleanup(func() { p.Close() })
	return p, cliConn, cli
}

// TestMessageTimeoutClosesTrickler: over a real coder/websocket connection
// (on net.Pipe, in a bubble), a message whose bytes trickle in for longer
// than MessageTimeout closes the peer; a slow message within it is served.
func TestMessageTimeoutClosesTrickler(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		p, cliConn, cli := rsAcceptPipe(t, &options{Methods: rsCountingMethods(&calls), Limits: Limits{MessageTimeout: 5 * time.Second, PingInterval: -1}})

		trickle := func(msg string, gap time.Duration) error {
			f := raFrames(msg) // msg < 126 bytes: a 6-byte header
			if _, err := cliConn.Write(f[:6]); err != nil {
				return err
			}
			for _, c := range f[6:] {
				time.Sleep(gap)
				if _, err := cliConn.Write([]byte{c}); err != nil {
					return err
				}
			}
			return nil
		}
		// 38 bytes, 100 ms apart: 3.8 s, within the limit.
		msg := `{"jsonrpc":"2.0","id":1,"method":"ok"}`
		go trickle(msg, 100*time.Millisecond)
		var b [2]byte
		_, err := io.ReadFull(cli, b[:])
		require.NoError(t, err)
		resp := make([]byte, b[1])
		_, err = io.ReadFull(cli, resp)
		require.NoError(t, err)
		require.Equal(t, `{"jsonrpc":"2.0","id":1,"result":true}`, string(resp))

		// The same message, 1 s a byte: closed 5 s after its first byte
		// (or up to an eighth later: the limit is checked in ticks).
		start := time.Now()
		trickled := make(chan error, 1)
		go func() { trickled <- trickle(msg, time.Second) }()
		<-p.Done()
		took := time.Since(start)
		require.True(t, took >= 5*time.Second && took <= 5*time.Second*9/8, "closed after %v", took)
		require.ErrorIs(t, p.Err(), errMessageTimeout)
		require.Error(t, <-trickled)
		require.Equal(t, int64(1), calls.Load())
	})
}

// TestMessageTimeoutCountsFromHeader: MessageTimeout runs from a frame
// header's first byte, so a header trickled byte by byte is closed like a
// trickled payload. Until e64ff61 only keepalive caught it (here: never,
// keepalive is off), since the timer started once coder/websocket had the
// whole header.
func TestMessageTimeoutCountsFromHeader(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, cliConn, _ := rsAcceptPipe(t, &options{Methods: rsFuzzMethods(false), Limits: Limits{MessageTimeout: 5 * time.Second, PingInterval: -1}})
		// A text frame with a 64-bit length: 2 + 8 + 4 = 14 header bytes,
		// one a second.
		hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2, 3, 4}
		start := time.Now()
		trickled := make(chan error, 1)
		go func() {
			for _, c := range hdr {
				if _, err := cliConn.Write([]byte{c}); err != nil {
					trickled <- err
					return
				}
				time.Sleep(time.Second)
			}
			trickled <- nil
		}()
		<-p.Done()
		took := time.Since(start)
		require.True(t, took >= 5*time.Second && took <= 5*time.Second*9/8, "closed after %v", took)
		require.ErrorIs(t, p.Err(), errMessageTimeout)
		require.Error(t, <-trickled, "the header was sent whole: the peer waited for it")

		// Control frames are timed the same way: a ping header trickled.
		p2, cli2, _ := rsAcceptPipe(t, &options{Methods: rsFuzzMethods(false), Limits: Limits{MessageTimeout: 5 * time.Second, PingInterval: -1}})
		go cli2.Write([]byte{0x89}) // FIN, ping: the rest never comes
		<-p2.Done()
		require.ErrorIs(t, p2.Err(), errMessageTimeout)
	})
}

// ---- limits ----

// TestMessageTooBigCloses1009: a message over the receiver's MaxMessageSize
// closes the connection with 1009; the calls pending on both ends fail with
// an error that says "message too big".
func TestMessageTooBigCloses1009(t *testing.T) {
	t.Parallel()
	sb, cb := rsNewBlocker(1), rsNewBlocker(1)
	sm := sb.methods()
	sm.Handle("echo", func(_ context.Context, req *Request) (any, error) { return true, nil })
	s := rsNewServer(t, options{Methods: sm, Limits: Limits{MaxMessageSize: 64 << 10}})
	client := rsDial(t, s.url, &options{Methods: cb.methods(), Limits: Limits{MaxMessageSize: 1 << 20}})
	server := s.peer(t)

	// Sending more than one's own limit fails locally; the connection stays.
	err := server.Call(context.Background(), "x", []string{strings.Repeat("x", 64<<10)}, nil)
	require.ErrorIs(t, err, ErrMessageTooBig)
	require.NoError(t, server.Err())

	clientPending := make(chan error, 1)
	serverPending := make(chan error, 1)
	go func() { clientPending <- client.Call(context.Background(), "block", nil, nil) }()
	go func() { serverPending <- server.Call(context.Background(), "block", nil, nil) }()
	rsWait(t, sb.started, "server handler")
	rsWait(t, cb.started, "client handler")

	err = client.Call(context.Background(), "echo", []string{strings.Repeat("x", 100<<10)}, nil)
	for _, e := range []error{err, rsWait(t, clientPending, "client pending"), rsWait(t, serverPending, "server pending")} {
		require.ErrorIs(t, e, ErrClosed)
		require.ErrorContains(t, e, "message too big")
	}
	require.ErrorIs(t, server.Err(), ErrMessageTooBig, "the side that detected it")
	require.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(client.Err()))
	rsWait(t, sb.cancelled, "server handler cancelled")
	rsWait(t, cb.cancelled, "client handler cancelled")
}

func TestBatchLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		m := rsCountingMethods(&calls)
		m.Handle("bigError", func(context.Context, *Request) (any, error) {
			return nil, NewError(7, "big", strings.Repeat("d", 4096))
		})
		m.Handle("bigResult", func(context.Context, *Request) (any, error) {
			return strings.Repeat("r", 4096), nil
		})
		const respCap = 600
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxBatch: 5, MaxBatchResponse: respCap, MaxMessageSize: 1024}}, 8)
		defer r.p.Close()
		item := func(id int) string {
			return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"echo","params":["` + strings.Repeat("p", 120) + `"]}`
		}

		// Over MaxBatch: one error naming the limit, nothing runs.
		var items []string
		for i := range 6 {
			items = append(items, item(i))
		}
		got := r.exchange(t, "["+strings.Join(items, ",")+"]")
		require.Len(t, got, 1)
		res := rsDecode(t, got[0])
		require.Equal(t, int64(CodeInvalidRequest), res.Error.Code)
		require.Equal(t, "null", string(res.ID))
		require.Contains(t, res.Error.Message, "6")
		require.Contains(t, res.Error.Message, "limit of 5")
		require.Zero(t, calls.Load())

		// At MaxBatch: served; the response stays within MaxBatchResponse,
		// items past it answered with CodeResponseTooLarge and their own id.
		got = r.exchange(t, "["+strings.Join(items[:5], ",")+"]")
		require.Len(t, got, 1)
		require.LessOrEqual(t, len(got[0]), respCap, got[0])
		var rs []rsResponse
		require.NoError(t, json.Unmarshal([]byte(got[0]), &rs))
		require.Len(t, rs, 5)
		tooLarge := 0
		for i, x := range rs {
			require.Equal(t, strconv.Itoa(i), string(x.ID))
			if x.Error != nil {
				require.Equal(t, int64(CodeResponseTooLarge), x.Error.Code)
				tooLarge++
			} else {
				require.Zero(t, tooLarge, "a result after a too-large item")
			}
		}
		require.NotZero(t, tooLarge)
		require.Less(t, tooLarge, 5)

		// Single responses never exceed MaxMessageSize, errors included.
		for _, method := range []string{"bigResult", "bigError"} {
			got = r.exchange(t, `{"jsonrpc":"2.0","id":"`+method+`","method":"`+method+`"}`)
			require.Len(t, got, 1)
			require.LessOrEqual(t, len(got[0]), 1024, "%s: %.100s", method, got[0])
			res := rsDecode(t, got[0])
			require.Equal(t, `"`+method+`"`, string(res.ID))
			require.Equal(t, int64(CodeResponseTooLarge), res.Error.Code)
		}
		// ... and batch items with big errors respect the cap too.
		got = r.exchange(t, `[{"jsonrpc":"2.0","id":1,"method":"bigError"},{"jsonrpc":"2.0","id":2,"method":"ok"}]`)
		require.Len(t, got, 1)
		require.LessOrEqual(t, len(got[0]), respCap, "%.200s", got[0])
		require.NoError(t, json.Unmarshal([]byte(got[0]), &rs))
		require.Len(t, rs, 2)
		require.Equal(t, int64(CodeResponseTooLarge), rs[0].Error.Code)
		require.Equal(t, "true", string(rs[1].Result))
		require.NoError(t, r.p.Err())
	})
}

// TestServerBusy: a request beyond MaxHandlers+MaxQueued is answered with
// CodeServerBusy, with its own id; then the peer reads nothing more until a
// slot or a place is free (a flood costs one refusal, not one per message),
// the connection stays up, and everything is served in the end.
func TestServerBusy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		m := NewMethods()
		m.Handle("block", func(ctx context.Context, _ *Request) (any, error) {
			<-release
			return "done", nil
		})
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxHandlers: 2, MaxQueued: 3}}, 16)
		defer r.p.Close()
		for i := range 5 {
			require.Empty(t, r.exchange(t, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"method":"block"}`), "request %d", i)
		}
		got := r.exchange(t, `{"jsonrpc":"2.0","id":5,"method":"block"}`)
		require.Len(t, got, 1)
		res := rsDecode(t, got[0])
		require.Equal(t, int64(CodeServerBusy), res.Error.Code)
		require.Equal(t, "5", string(res.ID))
		// Full: the next requests and a batch wait unread.
		require.Empty(t, r.exchange(t, `{"jsonrpc":"2.0","id":6,"method":"block"}`))
		require.Empty(t, r.exchange(t, `{"jsonrpc":"2.0","id":7,"method":"block"}`))
		require.Empty(t, r.exchange(t, `[{"jsonrpc":"2.0","id":"b1","method":"block"},{"jsonrpc":"2.0","id":"b2","method":"block"}]`))
		// (The in-memory pipe hands the reader one message before it waits.)
		require.GreaterOrEqual(t, len(r.end.out), 2, "the peer reads nothing while it is full")
		close(release)
		time.Sleep(time.Second)
		synctest.Wait()
		answers := r.drain()
		require.Len(t, answers, 8, "0-4, 6, 7 and the batch")
		for _, a := range answers {
			require.Contains(t, a, `"result":"done"`)
		}
		require.NoError(t, r.p.Err())
	})
}

// TestMaxPendingWaits: past MaxPending, Call waits for a free slot,
// respecting its context, and sends nothing meanwhile.
func TestMaxPendingWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(&options{Limits: Limits{MaxPending: 2}}, 16)
		defer r.p.Close()
		results := make(chan error, 3)
		for range 2 {
			go func() { results <- r.p.Call(context.Background(), "x", nil, nil) }()
		}
		synctest.Wait()
		require.Len(t, r.drain(), 2)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := r.p.Call(ctx, "x", nil, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, time.Second, time.Since(start))
		synctest.Wait()
		require.Empty(t, r.drain(), "a call waiting for a slot sent something")

		go func() { results <- r.p.Call(context.Background(), "x", nil, nil) }()
		synctest.Wait()
		require.Empty(t, r.drain())
		r.send(t, `{"jsonrpc":"2.0","id":1,"result":null}`)
		require.NoError(t, <-results)
		synctest.Wait()
		got := r.drain()
		require.Len(t, got, 1, "the waiting call goes out once a slot frees")
		require.Equal(t, "3", rsReqID(t, got[0]))
		r.send(t, `{"jsonrpc":"2.0","id":2,"result":null}`)
		r.send(t, `{"jsonrpc":"2.0","id":3,"result":null}`)
		require.NoError(t, <-results)
		require.NoError(t, <-results)
	})
}

// ---- graceful shutdown ----

func TestShutdownGraceful(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	m := NewMethods()
	m.Handle("slow", func(ctx context.Context, _ *Request) (any, error) {
		started <- struct{}{}
		<-release
		return "finished", ctx.Err()
	})
	m.Handle("ok", func(context.Context, *Request) (any, error) { return true, nil })
	s := rsNewServer(t, options{Methods: m})
	client := rsDial(t, s.url, nil)
	server := s.peer(t)

	inflight := make(chan error, 1)
	var res string
	go func() { inflight <- client.Call(context.Background(), "slow", nil, &res) }()
	rsWait(t, started, "handler start")

	shut := make(chan error, 1)
	go func() { shut <- s.srv.Shutdown(context.Background()) }()
	// Wait until the peer drains (no sleep: poll the state Shutdown sets).
	for {
		server.mu.Lock()
		d := server.draining
		server.mu.Unlock()
		if d {
			break
		}
		runtime.Gosched()
	}
	// New upgrades are refused with 503.
	status, _ := (&rsAuthServer{addr: s.addr}).upgrade(t, s.addr, "", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	// New requests on the draining peer are answered busy.
	err := client.Call(context.Background(), "ok", nil, nil)
	require.ErrorIs(t, err, ErrServerBusy)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned before the handler finished: %v", err)
	default:
	}

	close(release)
	require.NoError(t, rsWait(t, inflight, "in-flight call"))
	require.Equal(t, "finished", res)
	require.NoError(t, rsWait(t, shut, "Shutdown"))
	<-client.Done()
	require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(client.Err()), "%v", client.Err())
	require.Zero(t, s.srv.Len())
}

// rsRawWebSocket completes a WebSocket handshake over TCP and then does
// nothing at all: it never reads, so it never answers a close.
func rsRawWebSocket(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return c
}

// TestShutdownDeadline: Shutdown returns by its context's deadline even if
// a peer never answers the close, or a handler ignores its context.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	for _, stuckHandler := range []bool{false, true} {
		t.Run(fmt.Sprintf("stuckHandler=%v", stuckHandler), func(t *testing.T) {
			release := make(chan struct{})
			started := make(chan struct{}, 1)
			m := NewMethods()
			m.Handle("stuck", func(ctx context.Context, _ *Request) (any, error) {
				started <- struct{}{}
				<-release // ignores ctx
				return nil, nil
			})
			s := rsNewServer(t, options{Methods: m})
			defer close(release) // before the server's cleanup waits for it
			rsRawWebSocket(t, s.addr)
			s.peer(t)
			good := rsDial(t, s.url, nil)
			s.peer(t)
			if stuckHandler {
				go good.Call(context.Background(), "stuck", nil, nil)
				rsWait(t, started, "stuck handler")
			}

			const deadline = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			// Shutdown returns when its ctx ends, a stuck handler or not
			// (a hang fails the test); how long after is not bounded here.
			err := s.srv.Shutdown(ctx)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			if !stuckHandler {
				<-good.Done()
				require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(good.Err()), "%v", good.Err())
			}
		})
	}
}

// TestCancelWhileWaitingToWrite: a call whose context ends while another
// write holds the connection (a peer that stopped reading) returns at once,
// without writing, instead of waiting up to WriteTimeout for its turn.
func TestCancelWhileWaitingToWrite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(&options{Limits: Limits{WriteTimeout: 10 * time.Second, PingInterval: -1}}, 1)
		defer r.p.Close()
		require.NoError(t, r.p.Notify(context.Background(), "fills.the.buffer", nil))
		stuck := make(chan error, 1)
		go func() { stuck <- r.p.Notify(context.Background(), "blocks.writing", nil) }()
		synctest.Wait()

		for _, call := range []func(ctx context.Context) error{
			func(ctx context.Context) error { return r.p.Call(ctx, "x", nil, nil) },
			func(ctx context.Context) error { return r.p.Notify(ctx, "n", nil) },
			func(ctx context.Context) error {
				return r.p.Batch(ctx, func(b *Batch) { b.Call("x", nil, nil) })
			},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			start := time.Now()
			err := call(ctx)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Equal(t, 100*time.Millisecond, time.Since(start))
		}
		require.NoError(t, r.p.Err())
		// Nothing of the cancelled calls was written.
		var got []string
		for len(got) < 2 {
			got = append(got, string(<-r.end.in))
		}
		require.NoError(t, <-stuck)
		synctest.Wait()
		require.Empty(t, r.drain())
		require.Equal(t, []string{`{"jsonrpc":"2.0","method":"fills.the.buffer"}`, `{"jsonrpc":"2.0","method":"blocks.writing"}`}, got)
		r.p.mu.Lock()
		require.False(t, r.p.awaiting(), "an abandoned call left a pending id")
		r.p.mu.Unlock()
	})
}

// TestCallPoolSurvivesSynctest: calls made inside a synctest bubble must not
// leave bubble-bound channels in a pool that calls outside it reuse (that is
// a fatal error, not a test failure).
func TestCallPoolSurvivesSynctest(t *testing.T) {
	t.Parallel()
	echo := func() *Methods {
		m := NewMethods()
		Register(m, "echo", func(_ context.Context, n int) (int, error) { return n, nil })
		return m
	}
	synctest.Test(t, func(t *testing.T) {
		a, b := rsPipePeers(&options{Methods: echo()}, &options{Methods: echo()})
		defer a.Close()
		defer b.Close()
		for i := range 100 {
			n, err := Call[int](context.Background(), a, "echo", []int{i})
			require.NoError(t, err)
			require.Equal(t, i, n)
		}
	})
	a, b := rsPipePeers(&options{Methods: echo()}, &options{Methods: echo()})
	defer a.Close()
	defer b.Close()
	for i := range 100 {
		n, err := Call[int](context.Background(), b, "echo", []int{i})
		require.NoError(t, err)
		require.Equal(t, i, n)
	}
}
