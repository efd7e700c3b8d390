package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// served is a Server observed by an Inspector, on loopback.
type served struct {
	srv *wsrpc.Server
	hs  *httptest.Server
	ws  string // the route's ws:// URL
}

// serve serves m with in as the Observer; the identity of a connection is
// its X-User and X-Role headers, and its name X-User. The server is shut
// down at the end of the test, or by shutdown.
func serve(t *testing.T, m *wsrpc.Methods, in *Inspector) *served {
	t.Helper()
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:  m,
		Observer: in,
		Authenticate: func(r *http.Request) (any, error) {
			if u := r.Header.Get("X-User"); u != "" {
				return map[string]string{"user": u, "role": r.Header.Get("X-Role")}, nil
			}
			return nil, nil
		},
		OnConnect: func(p *wsrpc.Peer) { p.SetName(p.HTTPRequest().Header.Get("X-User")) },
	})
	hs := httptest.NewServer(srv)
	s := &served{srv: srv, hs: hs, ws: "ws" + strings.TrimPrefix(hs.URL, "http")}
	t.Cleanup(s.shutdown)
	return s
}

// shutdown ends every peer, and with them every handler and observation.
func (s *served) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.hs.Close()
}

// dial connects as user with role ("" for no identity), closed at the end
// of the test.
func dial(t *testing.T, url, user, role string, opts *wsrpc.DialOptions) *wsrpc.Peer {
	t.Helper()
	if opts == nil {
		opts = &wsrpc.DialOptions{}
	}
	if user != "" {
		opts.HTTPHeader = http.Header{"X-User": {user}, "X-Role": {role}}
	}
	p, err := wsrpc.Dial(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func arith() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "math.sum", func(_ context.Context, xs []int) (int, error) {
		s := 0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	wsrpc.Register(m, "fail", func(context.Context, any) (any, error) {
		return nil, wsrpc.NewError(409, "conflict", nil)
	})
	wsrpc.Register(m, "boom", func(context.Context, any) (any, error) {
		return nil, errors.New("boom") // sent as CodeInternalError
	})
	wsrpc.Register(m, "log", func(context.Context, []string) (any, error) { return nil, nil })
	return m
}

// find returns the stats of method in direction dir.
func find(t *testing.T, snap Snapshot, method, dir string) MethodStats {
	t.Helper()
	for _, m := range snap.Methods {
		if m.Method == method && m.Direction == dir {
			return m
		}
	}
	t.Fatalf("no %s %q in %+v", dir, method, snap.Methods)
	return MethodStats{}
}

func has(snap Snapshot, method, dir string) bool {
	for _, m := range snap.Methods {
		if m.Method == method && m.Direction == dir {
			return true
		}
	}
	return false
}

// Calls, errors (an *Error, a plain error, an unknown method) and bytes,
// served (in) and sent (out), over a real Server and Dial.
func TestCounts(t *testing.T) {
	t.Parallel()
	in, out := New(nil), New(nil)
	defer in.Close()
	s := serve(t, arith(), in)
	p := dial(t, s.ws, "", "", &wsrpc.DialOptions{Observer: out})
	ctx := context.Background()
	for range 5 {
		n, err := wsrpc.Call[int](ctx, p, "math.sum", []int{1, 2})
		require.NoError(t, err)
		require.Equal(t, 3, n)
	}
	for range 2 {
		require.ErrorIs(t, p.Call(ctx, "fail", nil, nil), &wsrpc.Error{Code: 409})
	}
	require.ErrorIs(t, p.Call(ctx, "boom", nil, nil), wsrpc.ErrInternal)
	for i := range 3 {
		require.ErrorIs(t, p.Call(ctx, fmt.Sprintf("no.such.%d", i), nil, nil), wsrpc.ErrMethodNotFound)
	}
	require.NoError(t, p.Notify(ctx, "log", []string{"a"}))
	require.NoError(t, p.Notify(ctx, "log", []string{"b"}))
	p.Close()
	s.shutdown() // every handler has ended, and been observed

	snap := in.Snapshot()
	sum := find(t, snap, "math.sum", "in")
	require.Equal(t, uint64(5), sum.Calls)
	require.Zero(t, sum.Errors)
	require.Equal(t, uint64(5*len("[1,2]")), sum.BytesIn, "the params")
	require.Equal(t, uint64(5*len(`{"jsonrpc":"2.0","id":1,"result":3}`)), sum.BytesOut, "the responses (ids 1 to 5)")
	require.Positive(t, sum.P50)
	require.LessOrEqual(t, sum.P50, sum.P90)
	require.LessOrEqual(t, sum.P90, sum.P99)
	for _, c := range []struct {
		method        string
		calls, errors uint64
	}{{"fail", 2, 2}, {"boom", 1, 1}, {Unknown, 3, 3}, {"log", 2, 0}} {
		got := find(t, snap, c.method, "in")
		require.Equal(t, c.calls, got.Calls, c.method)
		require.Equal(t, c.errors, got.Errors, c.method)
	}
	require.Zero(t, find(t, snap, "log", "in").BytesOut, "notifications have no response")
	require.False(t, has(snap, "no.such.0", "in"), "unknown names count under %s", Unknown)
	require.False(t, has(snap, Other, "in"))

	// The client side counted what it sent, under the names it used.
	snap = out.Snapshot()
	require.Equal(t, uint64(5), find(t, snap, "math.sum", "out").Calls)
	require.Equal(t, uint64(5*len(`{"jsonrpc":"2.0","id":1,"method":"math.sum","params":[1,2]}`)), find(t, snap, "math.sum", "out").BytesOut)
	require.Equal(t, uint64(5*len("3")), find(t, snap, "math.sum", "out").BytesIn, "the results")
	require.Equal(t, uint64(2), find(t, snap, "fail", "out").Errors)
	require.Equal(t, uint64(1), find(t, snap, "no.such.2", "out").Errors)
	require.Equal(t, uint64(2), find(t, snap, "log", "out").Calls)
	require.Empty(t, snap.Peers, "not registered with a Server")
}

// Past MaxMethods, methods count under Other; unknown names under Unknown
// whatever their number.
func TestMethodBound(t *testing.T) {
	t.Parallel()
	in := New(&Options{MaxMethods: 2})
	defer in.Close()
	m := wsrpc.NewMethods()
	for _, name := range []string{"a", "b", "c", "d"} {
		m.HandleRaw(name, func(context.Context, json.RawMessage) (any, error) { return nil, nil })
	}
	s := serve(t, m, in)
	in.Register(m, s.srv)
	p := dial(t, s.ws, "", "", nil)
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c", "d", "d"} {
		require.NoError(t, p.Call(ctx, name, nil, nil))
	}
	for i := range 100 {
		require.Error(t, p.Call(ctx, fmt.Sprint("hostile.", i), nil, nil))
	}
	snap := in.Snapshot()
	require.Equal(t, uint64(1), find(t, snap, "a", "in").Calls)
	require.Equal(t, uint64(1), find(t, snap, "b", "in").Calls)
	require.Equal(t, uint64(3), find(t, snap, Other, "in").Calls, "c, d, d")
	require.Equal(t, uint64(100), find(t, snap, Unknown, "in").Calls)
	require.False(t, has(snap, "c", "in"), "a full table lists no uncounted method: its calls may be in %s", Other)
	require.Len(t, snap.Methods, 4)
	require.Equal(t, []string{"a", "b", Unknown, Other}, names(snap))
}

func names(snap Snapshot) []string {
	var out []string
	for _, m := range snap.Methods {
		out = append(out, m.Method)
	}
	return out
}

// The percentiles fall in the bucket of the true value, never below it.
func TestPercentiles(t *testing.T) {
	t.Parallel()
	in := New(nil)
	defer in.Close()
	start := time.Unix(1_700_000_000, 0)
	order := rand.Perm(100)
	for _, i := range order {
		in.End(context.Background(), &wsrpc.Event{Method: "m", Start: start, Duration: time.Duration(i+1) * time.Millisecond})
	}
	got := find(t, in.Snapshot(), "m", "in")
	require.Equal(t, uint64(100), got.Calls)
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{got.P50, 50 * time.Millisecond}, {got.P90, 90 * time.Millisecond}, {got.P99, 99 * time.Millisecond}} {
		lo, hi := bucketBounds(bucketOf(c.want))
		d := time.Duration(c.p * float64(time.Second))
		require.GreaterOrEqual(t, d, c.want-time.Microsecond, "never below the true value (%v)", c.want) // float rounding
		require.GreaterOrEqual(t, d, lo-time.Microsecond)
		require.LessOrEqual(t, d, hi+time.Microsecond, "within the bucket [%v, %v) of %v", lo, hi, c.want)
		require.LessOrEqual(t, d, c.want*5/4+time.Microsecond, "at most 25%% above")
	}

	// One call: every percentile is its duration, the longest seen.
	in.End(context.Background(), &wsrpc.Event{Method: "one", Start: start, Duration: 1234567 * time.Nanosecond})
	one := find(t, in.Snapshot(), "one", "in")
	require.Equal(t, []float64{0.001234567, 0.001234567, 0.001234567}, []float64{one.P50, one.P90, one.P99})
}

// Every duration falls in its bucket; the buckets tile the line.
func TestBuckets(t *testing.T) {
	t.Parallel()
	for i := range numBuckets - 1 {
		_, hi := bucketBounds(i)
		lo, _ := bucketBounds(i + 1)
		require.Equal(t, hi, lo, "bucket %d ends where %d begins", i, i+1)
	}
	values := []time.Duration{0, 1, 1023, 1024, 1025, 1279, 1280, time.Millisecond, time.Second, time.Minute, 1 << 38, 1<<38 - 1, time.Duration(1<<63 - 1)}
	for range 10000 {
		values = append(values, time.Duration(rand.Int64N(int64(10*time.Minute))))
	}
	for _, v := range values {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		require.True(t, lo <= v && (v < hi || i == numBuckets-1), "%v in bucket %d [%v, %v)", v, i, lo, hi)
	}
	require.Equal(t, 0, bucketOf(-time.Second))
}

// Recording a call of a method already seen allocates nothing.
func TestEndAllocatesNothing(t *testing.T) {
	in := New(nil)
	defer in.Close()
	e := &wsrpc.Event{Method: "m", Start: time.Now(), Duration: time.Millisecond, Err: wsrpc.ErrInternal, Code: wsrpc.CodeInternalError}
	u := &wsrpc.Event{Method: "attacker-chosen", Unregistered: true, Start: time.Now()}
	in.End(context.Background(), e)
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		in.End(context.Background(), e)
		in.End(context.Background(), u)
	}))
}

// The calls per second of the 60 whole seconds before the snapshot, each
// direction apart; a second too old for its slot does not count.
func TestRate(t *testing.T) {
	t.Parallel()
	in := New(nil)
	defer in.Close()
	t0 := time.Unix(1_700_000_000, 0)
	in.now = func() time.Time { return t0.Add(60*time.Second + 300*time.Millisecond) }
	ctx := context.Background()
	for k := range 60 {
		for range k + 1 {
			in.End(ctx, &wsrpc.Event{Method: "m", Start: t0.Add(time.Duration(k) * time.Second), Duration: 900 * time.Millisecond})
		}
	}
	for range 3 {
		in.End(ctx, &wsrpc.Event{Method: "m", Outgoing: true, Start: t0.Add(10 * time.Second)})
	}
	in.End(ctx, &wsrpc.Event{Method: "m", Start: t0.Add(-61 * time.Second)}) // the slot of t0's second, taken by it
	in.End(ctx, &wsrpc.Event{Method: "m", Start: t0.Add(60 * time.Second)})  // the current second
	r := in.Snapshot().Rate
	require.Equal(t, t0.Add(60*time.Second).UTC(), r.End)
	require.Len(t, r.In, 60)
	require.Len(t, r.Out, 60)
	for k := range 60 {
		require.Equal(t, uint64(k+1), r.In[k], "second %d", k)
		want := uint64(0)
		if k == 10 {
			want = 3
		}
		require.Equal(t, want, r.Out[k], "second %d", k)
	}
}

// inspect.snapshot lists the peers (id, name, identity, remote address,
// connected since, watching) and the methods, called or not.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	in := New(&Options{Identity: func(id any) string { return "id:" + id.(map[string]string)["user"] }})
	defer in.Close()
	m := arith()
	s := serve(t, m, in)
	in.Register(m, s.srv)
	before := time.Now()
	ctx := context.Background()
	ada := dial(t, s.ws, "ada", "admin", nil)
	require.ErrorIs(t, ada.Call(ctx, "no.such", nil, nil), wsrpc.ErrMethodNotFound) // ada is a peer of the Server once answered
	bob := dial(t, s.ws, "bob", "user", nil)
	_, err := wsrpc.Call[int](ctx, bob, "math.sum", []int{1})
	require.NoError(t, err)

	snap, err := wsrpc.Call[Snapshot](ctx, ada, SnapshotMethod, nil)
	require.NoError(t, err)
	require.Equal(t, 2, snap.PeerCount)
	require.Len(t, snap.Peers, 2)
	for i, want := range []string{"ada", "bob"} {
		p := snap.Peers[i]
		require.Equal(t, want, p.Name)
		require.Equal(t, "id:"+want, p.Identity)
		require.True(t, strings.HasPrefix(p.Remote, "127.0.0.1:"), p.Remote)
		require.False(t, p.Since.Before(before), "since %v, dialled at %v", p.Since, before)
		require.False(t, p.Since.After(snap.Time))
		require.False(t, p.Watching)
	}
	require.Less(t, snap.Peers[0].ID, snap.Peers[1].ID, "by id")
	require.NotEqual(t, snap.Peers[0].Remote, snap.Peers[1].Remote)

	require.Equal(t, uint64(1), find(t, snap, "math.sum", "in").Calls)
	require.Zero(t, find(t, snap, "fail", "in").Calls, "a method never called is listed")
	require.Zero(t, find(t, snap, WatchMethod, "in").Calls)
	require.Equal(t, []string{"boom", "fail", SnapshotMethod, WatchMethod, "log", "math.sum", Unknown}, names(snap), "sorted")

	// The default identity, and MaxPeers.
	in2 := New(&Options{MaxPeers: 1})
	defer in2.Close()
	m2 := wsrpc.NewMethods()
	s2 := serve(t, m2, in2)
	in2.Register(m2, s2.srv)
	for _, user := range []string{"dee", "", "cy"} {
		// Each calls, so that the Server has it among its peers.
		snap, err = wsrpc.Call[Snapshot](ctx, dial(t, s2.ws, user, "user", nil), SnapshotMethod, nil)
		require.NoError(t, err)
	}
	require.Equal(t, 3, snap.PeerCount)
	require.Len(t, snap.Peers, 1)
	require.Equal(t, "map[role:user user:dee]", snap.Peers[0].Identity, "the first connected")
	require.Equal(t, "x", cut("x", 1))
	require.Equal(t, "ab…", cut("abé", 3), "cut on a rune boundary")
}

// fakeClock hands the Inspector tickers that tick when the test says.
type fakeClock struct {
	tickers chan *fakeTicker
}

type fakeTicker struct {
	c       chan time.Time
	stopped chan struct{}
}

func (f *fakeTicker) C() <-chan time.Time { return f.c }
func (f *fakeTicker) Stop()               { close(f.stopped) }

func useFakeClock(in *Inspector) *fakeClock {
	c := &fakeClock{tickers: make(chan *fakeTicker, 8)}
	in.newTicker = func(d time.Duration) ticker {
		if d != time.Second {
			panic("ticker of " + d.String())
		}
		f := &fakeTicker{c: make(chan time.Time), stopped: make(chan struct{})}
		c.tickers <- f
		return f
	}
	return c
}

// tick ticks f: the ticker goroutine has received it when tick returns.
func (f *fakeTicker) tick(t *testing.T) {
	t.Helper()
	select {
	case f.c <- time.Time{}:
	case <-f.stopped:
		t.Fatal("tick: the ticker was stopped")
	case <-time.After(10 * time.Second):
		t.Fatal("tick: the ticker goroutine does not receive")
	}
}

// recv returns the next value of ch, failing after 10 s.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// watcher dials a peer that passes the inspect.update notifications it
// gets to the channel returned.
func watcher(t *testing.T, url, user string) (*wsrpc.Peer, <-chan Snapshot) {
	t.Helper()
	got := make(chan Snapshot, 16)
	m := wsrpc.NewMethods()
	wsrpc.Register(m, UpdateMethod, func(_ context.Context, s Snapshot) (any, error) { got <- s; return nil, nil })
	return dial(t, url, user, "admin", &wsrpc.DialOptions{Methods: m}), got
}

// inspect.watch: updates come with each tick, from one goroutine for all
// the watchers, which ends when the last of them leaves (goleak sees no
// goroutine left, the Inspector still open), and starts again with the
// next watcher; Close ends it too. Not parallel: goleak looks at every
// goroutine.
func TestWatch(t *testing.T) {
	base := goleak.IgnoreCurrent()
	in := New(nil)
	clock := useFakeClock(in)
	m := arith()
	s := serve(t, m, in)
	in.Register(m, s.srv)
	ctx := context.Background()

	a, aGot := watcher(t, s.ws, "ada")
	first, err := wsrpc.Call[Snapshot](ctx, a, WatchMethod, nil)
	require.NoError(t, err)
	require.Len(t, first.Peers, 1)
	require.True(t, first.Peers[0].Watching)
	ft := recv(t, clock.tickers, "ticker")
	none(t, aGot, "update before a tick")

	_, err = wsrpc.Call[int](ctx, a, "math.sum", []int{2, 2})
	require.NoError(t, err)
	ft.tick(t)
	u := recv(t, aGot, "update")
	require.Equal(t, uint64(1), find(t, u, "math.sum", "in").Calls)
	require.Equal(t, uint64(1), find(t, u, WatchMethod, "in").Calls)

	// A second watcher shares the goroutine.
	b, bGot := watcher(t, s.ws, "bob")
	_, err = wsrpc.Call[Snapshot](ctx, b, WatchMethod, nil)
	require.NoError(t, err)
	none(t, clock.tickers, "second ticker")
	ft.tick(t)
	require.Len(t, recv(t, aGot, "update").Peers, 2)
	require.Len(t, recv(t, bGot, "update").Peers, 2)

	// The first leaves: the second still gets updates.
	a.Close()
	ft.tick(t)
	recv(t, bGot, "update")

	// The last leaves: the goroutine stops its ticker and ends.
	b.Close()
	recv(t, ft.stopped, "ticker stopped")

	// It starts again with the next watcher, and stops again.
	c, cGot := watcher(t, s.ws, "cy")
	_, err = wsrpc.Call[Snapshot](ctx, c, WatchMethod, nil)
	require.NoError(t, err)
	ft = recv(t, clock.tickers, "second ticker")
	ft.tick(t)
	recv(t, cGot, "update")
	c.Close()
	recv(t, ft.stopped, "second ticker stopped")
	s.shutdown()
	goleak.VerifyNone(t, base) // the Inspector still open: no goroutine of its own
	in.Close()
}

// Close ends the ticker goroutine while a watcher is connected; watch
// fails from then on, snapshot still works.
func TestWatchClose(t *testing.T) {
	t.Parallel()
	in := New(nil)
	clock := useFakeClock(in)
	m := wsrpc.NewMethods()
	s := serve(t, m, in)
	in.Register(m, s.srv)
	ctx := context.Background()
	c, cGot := watcher(t, s.ws, "cy")
	_, err := wsrpc.Call[Snapshot](ctx, c, WatchMethod, nil)
	require.NoError(t, err)
	ft := recv(t, clock.tickers, "ticker")
	ft.tick(t)
	recv(t, cGot, "update")
	in.Close()
	recv(t, ft.stopped, "ticker stopped by Close")
	in.Close()
	require.ErrorIs(t, c.Call(ctx, WatchMethod, nil, nil), wsrpc.ErrServerBusy, "watch after Close")
	none(t, clock.tickers, "ticker after Close")
	_, err = wsrpc.Call[Snapshot](ctx, c, SnapshotMethod, nil)
	require.NoError(t, err, "snapshot after Close")
}

// A guard passed to Register refuses the inspector's methods to callers
// without the identity, over WebSocket and HTTP POST alike, and leaves the
// rest of the table alone; a refused watch starts nothing.
func TestGuard(t *testing.T) {
	t.Parallel()
	in := New(nil)
	clock := useFakeClock(in)
	defer in.Close()
	m := arith()
	s := serve(t, m, in)
	in.Register(m, s.srv, wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin")))
	ctx := context.Background()
	for _, p := range []*wsrpc.Peer{dial(t, s.ws, "bob", "user", nil), dial(t, s.ws, "", "", nil)} {
		require.ErrorIs(t, p.Call(ctx, SnapshotMethod, nil, nil), wsrpc.ErrUnauthorized)
		require.ErrorIs(t, p.Call(ctx, WatchMethod, nil, nil), wsrpc.ErrUnauthorized)
		_, err := wsrpc.Call[int](ctx, p, "math.sum", []int{1})
		require.NoError(t, err, "the rest of the table is not guarded")
	}
	none(t, clock.tickers, "ticker for a refused watch")

	ada := dial(t, s.ws, "ada", "admin", nil)
	snap, err := wsrpc.Call[Snapshot](ctx, ada, SnapshotMethod, nil)
	require.NoError(t, err)
	require.Equal(t, 3, snap.PeerCount)
	refused := find(t, snap, SnapshotMethod, "in")
	require.Equal(t, [2]uint64{2, 2}, [2]uint64{refused.Calls, refused.Errors}, "refusals count as errors")

	// Over HTTP POST: the same guard; watch needs a WebSocket.
	admin := wsrpc.NewHTTPClient(s.hs.URL, &wsrpc.HTTPClientOptions{Header: http.Header{"X-User": {"ada"}, "X-Role": {"admin"}}})
	snap, err = wsrpc.Call[Snapshot](ctx, admin, SnapshotMethod, nil)
	require.NoError(t, err)
	require.Equal(t, 3, snap.PeerCount)
	require.ErrorIs(t, admin.Call(ctx, WatchMethod, nil, nil), wsrpc.ErrInvalidRequest)
	user := wsrpc.NewHTTPClient(s.hs.URL, &wsrpc.HTTPClientOptions{Header: http.Header{"X-User": {"bob"}, "X-Role": {"user"}}})
	require.ErrorIs(t, user.Call(ctx, SnapshotMethod, nil, nil), wsrpc.ErrUnauthorized)
	none(t, clock.tickers, "ticker")
}

// The page: the options in its data block, escaped; a CSP that allows its
// own inline script and style by hash, wsrpc.js and the connection; GET
// and HEAD only.
func TestHandler(t *testing.T) {
	t.Parallel()
	get := func(h http.Handler, method string) (*http.Response, string) {
		t.Helper()
		hs := httptest.NewServer(h)
		defer hs.Close()
		req, err := http.NewRequest(method, hs.URL+"/debug/wsrpc", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	between := func(s, open, close string) string {
		_, s, ok := strings.Cut(s, open)
		require.True(t, ok, "no %s", open)
		s, _, ok = strings.Cut(s, close)
		require.True(t, ok, "no %s", close)
		return s
	}

	title := `prod </title><script>alert(1)</script>`
	in := New(&Options{Script: "https://cdn.example/wsrpc.js", Route: "wss://api.example/rpc", Title: title})
	defer in.Close()
	resp, body := get(in.Handler(), http.MethodGet)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.NotContains(t, body, "<script>alert")
	require.Contains(t, body, "<title>prod &lt;/title&gt;&lt;script&gt;")
	var cfg map[string]string
	require.NoError(t, json.Unmarshal([]byte(between(body, `<script id="config" type="application/json">`, "</script>")), &cfg))
	require.Equal(t, map[string]string{"script": "https://cdn.example/wsrpc.js", "route": "wss://api.example/rpc", "title": title}, cfg)
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "connect-src wss://api.example https://api.example;")
	require.Contains(t, csp, hashOf([]byte(body), `<script type="module">`, "</script>")+" https://cdn.example;")
	require.Contains(t, csp, "style-src "+hashOf([]byte(body), "<style>", "</style>")+";")
	require.Contains(t, csp, "frame-ancestors 'none'")

	// The defaults: wsrpc.js and the route on the page's host.
	in = New(nil)
	defer in.Close()
	resp, body = get(in.Handler(), http.MethodGet)
	require.NoError(t, json.Unmarshal([]byte(between(body, `<script id="config" type="application/json">`, "</script>")), &cfg))
	require.Equal(t, map[string]string{"script": "/wsrpc.js", "route": "/rpc", "title": "wsrpc inspector"}, cfg)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "connect-src 'self';")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "' 'self';") // script-src: the hash, then 'self'

	resp, body = get(in.Handler(), http.MethodHead)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	resp, _ = get(in.Handler(), http.MethodPost)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))

	require.Panics(t, func() { New(&Options{Route: "ftp://example/rpc"}) })
	require.Panics(t, func() { New(&Options{Script: "%zz"}) })
}
