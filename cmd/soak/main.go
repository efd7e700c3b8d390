// Command soak is a load and fault soak of wsrpc: closed-loop calls, 64 in
// flight, from clients that reach the server through a fault-injecting
// loopback TCP proxy (connection resets, stalls, frames cut in the middle),
// with hostile clients alongside (garbage, oversized messages, notification
// and request floods, trickled frames, clients that never read).
//
// Every call gets an id in a ledger; each outcome the caller sees is
// counted against it, and so is a result that names another call (a
// misrouted response). At the end every id must have exactly one outcome.
// Every few seconds and at the end, soak prints calls/s, latency p50/p99,
// goroutines, heap, the outcome breakdown and the ledger check.
//
// Usage:
//
//	go run ./cmd/soak -d 2m
//
// It exits with status 1 if any call had zero or two outcomes, or got a
// result that was not its own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsrpc/wsrpc"
)

const (
	inFlight      = 64
	connections   = 8
	maxDuration   = 10 * time.Minute
	callTimeout   = 5 * time.Second
	reportEvery   = 10 * time.Second
	bigEcho       = 64 << 10
	maxMessage    = 1 << 20
	faultMeanLife = 2 * time.Second // mean life of a proxied connection before its fault
	stallFor      = 3 * time.Second
)

func main() {
	d := flag.Duration("d", 30*time.Second, "how long to run (at most 10m)")
	flag.Parse()
	if *d <= 0 || *d > maxDuration {
		fmt.Fprintf(os.Stderr, "soak: -d must be in (0, %v]\n", maxDuration)
		os.Exit(2)
	}
	baseline := runtime.NumGoroutine()
	ok := run(*d, baseline)
	if !ok {
		os.Exit(1)
	}
}

// ---- ledger and stats ----

// ledger counts the outcomes of each call id, in chunks allocated as ids
// are issued.
type ledger struct {
	mu     sync.Mutex
	chunks [][]atomic.Int32
	next   atomic.Int64
}

const chunkBits = 16

func (l *ledger) issue() int64 {
	id := l.next.Add(1)
	c := int(id >> chunkBits)
	l.mu.Lock()
	for len(l.chunks) <= c {
		l.chunks = append(l.chunks, make([]atomic.Int32, 1<<chunkBits))
	}
	l.mu.Unlock()
	return id
}

func (l *ledger) slot(id int64) *atomic.Int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := int(id >> chunkBits)
	if id <= 0 || c >= len(l.chunks) {
		return nil
	}
	return &l.chunks[c][id&(1<<chunkBits-1)]
}

// outcome records one outcome of call id; a call id not issued is a
// misrouted result too.
func (l *ledger) outcome(id int64) bool {
	if id <= 0 || id > l.next.Load() {
		return false
	}
	l.slot(id).Add(1)
	return true
}

// check returns the ids issued so far with zero and with more than one
// outcome.
func (l *ledger) check() (issued, zero, many int64) {
	n := l.next.Load()
	for id := int64(1); id <= n; id++ {
		switch l.slot(id).Load() {
		case 0:
			zero++
		case 1:
		default:
			many++
		}
	}
	return n, zero, many
}

type stats struct {
	ok, remoteErr, busy, closed, timeout, other, mismatch atomic.Int64
	reconnects, faults, hostile                           atomic.Int64

	mu      sync.Mutex
	lat     []time.Duration // a reservoir sample of this interval
	seen    int
	all     []time.Duration // a reservoir sample of the whole run
	allSeen int
	lastOK  int64
	lastAt  time.Time
	started time.Time
}

func (s *stats) latency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat, s.seen = sample(s.lat, s.seen, d)
	s.all, s.allSeen = sample(s.all, s.allSeen, d)
}

// sample adds d to a reservoir of at most 100 000 samples of seen values.
func sample(r []time.Duration, seen int, d time.Duration) ([]time.Duration, int) {
	seen++
	if len(r) < 100000 {
		r = append(r, d)
	} else if i := rand.IntN(seen); i < len(r) {
		r[i] = d
	}
	return r, seen
}

func (s *stats) report(final bool, l *ledger) {
	s.mu.Lock()
	lat := slices.Clone(s.lat)
	if final {
		lat = slices.Clone(s.all)
	}
	s.lat, s.seen = s.lat[:0], 0
	now := time.Now()
	okN := s.ok.Load()
	rate := float64(okN-s.lastOK) / now.Sub(s.lastAt).Seconds()
	if final {
		rate = float64(okN) / now.Sub(s.started).Seconds()
	}
	s.lastOK, s.lastAt = okN, now
	s.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	label := fmt.Sprintf("t=%-4s", now.Sub(s.started).Round(time.Second))
	if final {
		label = "TOTAL "
	}
	fmt.Printf("%s calls/s %7.0f  p50 %-9v p99 %-9v goroutines %5d  heap %6.1f MiB  ok %d err %d busy %d closed %d timeout %d other %d mismatch %d  reconnects %d faults %d hostile %d\n",
		label, rate, pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
		runtime.NumGoroutine(), float64(ms.HeapInuse)/(1<<20),
		okN, s.remoteErr.Load(), s.busy.Load(), s.closed.Load(), s.timeout.Load(), s.other.Load(), s.mismatch.Load(),
		s.reconnects.Load(), s.faults.Load(), s.hostile.Load())
}

// ---- the server ----

func serverMethods() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "echo", func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
		return p, nil
	})
	wsrpc.Register(m, "sleep", func(ctx context.Context, a [2]int64) (int64, error) {
		t := time.NewTimer(time.Duration(a[1]) * time.Microsecond)
		defer t.Stop()
		select {
		case <-t.C:
			return a[0], nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	wsrpc.Register(m, "fail", func(_ context.Context, a [1]int64) (any, error) {
		return nil, wsrpc.NewError(-1234, "asked to fail", a[0])
	})
	// reverse calls the caller back and checks it got its own answer.
	wsrpc.Register(m, "reverse", func(ctx context.Context, a [1]int64) (int64, error) {
		n, err := wsrpc.Call[int64](ctx, wsrpc.PeerFromContext(ctx), "ping", []int64{a[0]})
		if err != nil {
			return 0, err
		}
		if n != a[0] {
			return 0, wsrpc.NewError(-999, "reverse call misrouted", []int64{a[0], n})
		}
		return n, nil
	})
	m.Handle("slow.note", func(ctx context.Context, _ *wsrpc.Request) (any, error) {
		t := time.NewTimer(time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return nil, nil
	})
	return m
}

func serverOptions() *wsrpc.ServerOptions {
	return &wsrpc.ServerOptions{Methods: serverMethods(), Limits: wsrpc.Limits{
		MaxMessageSize:   maxMessage,
		MaxHandlers:      64,
		MaxQueued:        256,
		MaxNotifications: 64,
		MaxPending:       256,
		WriteTimeout:     2 * time.Second,
		PingInterval:     500 * time.Millisecond,
		PingTimeout:      500 * time.Millisecond,
		MessageTimeout:   2 * time.Second,
	}}
}

// ---- the fault-injecting proxy ----

type proxy struct {
	ln     net.Listener
	target string
	st     *stats
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newProxy(target string, st *stats) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, st: st, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.conns == nil {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) accept() {
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
		if !p.track(c, true) || !p.track(u, true) {
			c.Close()
			u.Close()
			return
		}
		p.wg.Go(func() { p.serve(c, u) })
	}
}

// link is one proxied connection and its fault.
type link struct {
	c, u    net.Conn
	mu      sync.Mutex
	stalled chan struct{} // non-nil while stalled
	cut     bool          // the next chunk is cut short, then both ends closed
	once    sync.Once
}

func (l *link) close(reset bool) {
	l.once.Do(func() {
		for _, x := range []net.Conn{l.c, l.u} {
			if tc, ok := x.(*net.TCPConn); ok && reset {
				tc.SetLinger(0)
			}
			x.Close()
		}
	})
}

func (p *proxy) serve(c, u net.Conn) {
	l := &link{c: c, u: u}
	life := time.Duration(rand.ExpFloat64() * float64(faultMeanLife))
	fault := time.AfterFunc(life, func() {
		p.st.faults.Add(1)
		switch rand.IntN(3) {
		case 0: // reset
			l.close(true)
		case 1: // stall, then carry on (the peers have probably given up)
			ch := make(chan struct{})
			l.mu.Lock()
			l.stalled = ch
			l.mu.Unlock()
			time.AfterFunc(stallFor, func() {
				l.mu.Lock()
				l.stalled = nil
				l.mu.Unlock()
				close(ch)
			})
		case 2: // cut a frame in the middle
			l.mu.Lock()
			l.cut = true
			l.mu.Unlock()
		}
	})
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(l, u, c) })
	wg.Go(func() { p.pipe(l, c, u) })
	wg.Wait()
	fault.Stop()
	l.close(false)
	p.track(c, false)
	p.track(u, false)
}

func (p *proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			stalled, cut := l.stalled, l.cut
			l.mu.Unlock()
			if stalled != nil {
				<-stalled
			}
			if cut {
				dst.Write(buf[:rand.IntN(n+1)])
				l.close(false)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close(false)
				return
			}
		}
		if err != nil {
			l.close(false)
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// ---- the well-behaved clients ----

type client struct {
	url string
	st  *stats
	led *ledger

	mu   sync.Mutex
	peer *wsrpc.Peer
}

func clientMethods() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "ping", func(_ context.Context, a [1]int64) (int64, error) { return a[0], nil })
	return m
}

// get returns a live peer, dialing a new one if needed.
func (c *client) get(ctx context.Context) (*wsrpc.Peer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer != nil && c.peer.Err() == nil {
		return c.peer, nil
	}
	if c.peer != nil {
		go c.peer.Close()
		c.st.reconnects.Add(1)
	}
	c.peer = nil
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p, err := wsrpc.Dial(dctx, c.url, &wsrpc.DialOptions{Methods: clientMethods(), Limits: wsrpc.Limits{
		MaxMessageSize: maxMessage,
		WriteTimeout:   2 * time.Second,
		PingInterval:   500 * time.Millisecond,
		PingTimeout:    500 * time.Millisecond,
		MessageTimeout: 2 * time.Second,
	}})
	if err != nil {
		return nil, err
	}
	c.peer = p
	return p, nil
}

func (c *client) closeAll() {
	c.mu.Lock()
	p := c.peer
	c.peer = nil
	c.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// classify counts the outcome of a call that did not return its result.
func (st *stats) classify(err error) {
	var e *wsrpc.Error
	switch {
	case errors.Is(err, wsrpc.ErrServerBusy):
		st.busy.Add(1)
	case errors.Is(err, wsrpc.ErrClosed):
		st.closed.Add(1)
	case errors.Is(err, context.DeadlineExceeded):
		st.timeout.Add(1)
	case errors.As(err, &e) && e.Code == -999:
		st.mismatch.Add(1)
	case errors.As(err, &e):
		st.remoteErr.Add(1)
	default:
		st.other.Add(1)
	}
}

var big = strings.Repeat("x", bigEcho)

// one makes one call (or batch) of a random kind and records its outcome.
func (c *client) one(ctx context.Context, rng *rand.Rand) {
	p, err := c.get(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t := time.NewTimer(10 * time.Millisecond) // back off from a failed dial
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	start := time.Now()
	k := rng.IntN(100)
	if k < 5 {
		c.batch(cctx, p, start)
		return
	}
	id := c.led.issue()
	var res json.RawMessage
	var want string
	switch {
	case k < 60:
		err = p.Call(cctx, "echo", []int64{id}, &res)
		want = "[" + strconv.FormatInt(id, 10) + "]"
	case k < 70:
		err = p.Call(cctx, "echo", []any{id, big}, &res)
		want = `[` + strconv.FormatInt(id, 10) + `,"` + big + `"]`
	case k < 80:
		err = p.Call(cctx, "sleep", []int64{id, rng.Int64N(2000)}, &res)
		want = strconv.FormatInt(id, 10)
	case k < 90:
		err = p.Call(cctx, "reverse", []int64{id}, &res)
		want = strconv.FormatInt(id, 10)
	default:
		err = p.Call(cctx, "fail", []int64{id}, &res)
		var e *wsrpc.Error
		if errors.As(err, &e) && e.Code == -1234 && string(e.Data) == strconv.FormatInt(id, 10) {
			c.led.outcome(id)
			c.st.remoteErr.Add(1)
			return
		}
	}
	c.led.outcome(id)
	if err != nil {
		c.st.classify(err)
		return
	}
	if string(res) != want {
		c.st.mismatch.Add(1)
		// A result that is another call's is a second outcome for it.
		var other []int64
		if json.Unmarshal(res, &other) == nil && len(other) > 0 {
			c.led.outcome(other[0])
		} else if n, err := strconv.ParseInt(string(res), 10, 64); err == nil {
			c.led.outcome(n)
		}
		return
	}
	c.st.ok.Add(1)
	c.st.latency(time.Since(start))
}

func (c *client) batch(ctx context.Context, p *wsrpc.Peer, start time.Time) {
	var ids []int64
	var res [5]json.RawMessage
	var bcs []*wsrpc.BatchCall
	err := p.Batch(ctx, func(b *wsrpc.Batch) {
		for i := range res {
			id := c.led.issue()
			ids = append(ids, id)
			bcs = append(bcs, b.Call("echo", []int64{id}, &res[i]))
		}
		b.Notify("slow.note", nil)
	})
	for i, bc := range bcs {
		e := bc.Err()
		if e != nil && e.Error() == "wsrpc: batch not sent yet" {
			continue // no outcome: the ledger will show it
		}
		c.led.outcome(ids[i])
		switch {
		case e != nil:
			c.st.classify(e)
		case string(res[i]) != "["+strconv.FormatInt(ids[i], 10)+"]":
			c.st.mismatch.Add(1)
			var other []int64
			if json.Unmarshal(res[i], &other) == nil && len(other) > 0 {
				c.led.outcome(other[0])
			}
		default:
			c.st.ok.Add(1)
			c.st.latency(time.Since(start))
		}
	}
	_ = err // each item's outcome says it all
}

// ---- hostile clients ----

func hostile(ctx context.Context, addr string, st *stats, kind int) {
	url := "ws://" + addr
	for ctx.Err() == nil {
		st.hostile.Add(1)
		switch kind {
		case 0:
			garbage(ctx, url)
		case 1:
			flood(ctx, url)
		case 2:
			trickle(ctx, addr)
		case 3:
			nonReader(ctx, url)
		}
	}
}

func dialRaw(ctx context.Context, url string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(-1)
	return c, nil
}

// drain reads and discards until the connection ends.
func drain(c *websocket.Conn) {
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			return
		}
	}
}

var garbageMessages = []string{
	`{`, `}`, `[]`, `[1,2,3]`, `null`, "\xff\xfe", `{"jsonrpc":"2.0","id":{},"method":"echo"}`,
	`{"jsonrpc":"2.0","id":1,"method":"echo","method":"x"}`, `{"jsonrpc":"2.0","id":1,"Method":"echo"}`,
	`{"jsonrpc":"2.0","id":1,"result":1}`, `{"jsonrpc":"2.0","id":"x","error":{"code":1}}`,
	strings.Repeat("[", 20000), `{"jsonrpc":"2.0","id":1,"method":"echo","params":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}`,
	`[` + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"echo"},`, 200) + `1]`,
}

// garbage sends malformed and hostile messages, then one too big.
func garbage(ctx context.Context, url string) {
	c, err := dialRaw(ctx, url)
	if err != nil {
		return
	}
	defer c.CloseNow()
	go drain(c)
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		m := garbageMessages[rand.IntN(len(garbageMessages))]
		if rand.IntN(4) == 0 {
			b := make([]byte, rand.IntN(300))
			for j := range b {
				b[j] = byte(rand.IntN(256))
			}
			m = string(b)
		}
		if c.Write(ctx, websocket.MessageText, []byte(m)) != nil {
			return
		}
	}
	// Over the limit: the server closes with 1009.
	c.Write(ctx, websocket.MessageText, make([]byte, maxMessage+1))
}

// flood sends notifications to a slow handler until the server closes the
// connection (1008), and requests past the busy limit.
func flood(ctx context.Context, url string) {
	c, err := dialRaw(ctx, url)
	if err != nil {
		return
	}
	defer c.CloseNow()
	go drain(c)
	for i := 0; i < 5000 && ctx.Err() == nil; i++ {
		m := `{"jsonrpc":"2.0","method":"slow.note"}`
		if i%2 == 1 {
			m = `{"jsonrpc":"2.0","id":` + strconv.Itoa(i) + `,"method":"sleep","params":[1,100000]}`
		}
		if c.Write(ctx, websocket.MessageText, []byte(m)) != nil {
			return
		}
	}
}

// trickle sends a frame header, then its bytes too slowly: the server's
// MessageTimeout closes the connection.
func trickle(ctx context.Context, addr string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		return
	}
	if _, err := c.Write([]byte{0x81, 0x80 | 100, 1, 2, 3, 4}); err != nil {
		return
	}
	for i := 0; i < 100; i++ {
		t := time.NewTimer(300 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			return // closed by the server, as it should
		}
	}
}

// nonReader asks for big answers and never reads them: the server's
// WriteTimeout closes the connection.
func nonReader(ctx context.Context, url string) {
	c, err := dialRaw(ctx, url)
	if err != nil {
		return
	}
	defer c.CloseNow()
	params, _ := json.Marshal([]string{big})
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		m := `{"jsonrpc":"2.0","id":` + strconv.Itoa(i) + `,"method":"echo","params":` + string(params) + `}`
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := c.Write(wctx, websocket.MessageText, []byte(m))
		cancel()
		if err != nil {
			return
		}
	}
}

// ---- the run ----

func run(d time.Duration, baseline int) bool {
	st := &stats{started: time.Now(), lastAt: time.Now()}
	led := &ledger{}

	srv := wsrpc.NewServer(serverOptions())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return false
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 2 * time.Second}
	go hs.Serve(ln)
	px, err := newProxy(ln.Addr().String(), st)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return false
	}
	fmt.Printf("soak: %v, %d calls in flight over %d connections through a fault proxy, 4 hostile clients; server %s\n",
		d, inFlight, connections, ln.Addr())

	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	var wg sync.WaitGroup
	clients := make([]*client, connections)
	for i := range clients {
		clients[i] = &client{url: "ws://" + px.ln.Addr().String(), st: st, led: led}
	}
	for w := range inFlight {
		c := clients[w%connections]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				c.one(ctx, rng)
			}
		})
	}
	for kind := range 4 {
		wg.Go(func() { hostile(ctx, ln.Addr().String(), st, kind) })
	}

	tick := time.NewTicker(reportEvery)
	for done := false; !done; {
		select {
		case <-tick.C:
			st.report(false, led)
		case <-ctx.Done():
			done = true
		}
	}
	tick.Stop()

	// Wind down: every worker returns (each call is bounded by its
	// timeout), then every connection is closed.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(callTimeout + 10*time.Second):
		fmt.Println("soak: FAIL: workers did not return after the end")
		return false
	}
	for _, c := range clients {
		c.closeAll()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	serr := srv.Shutdown(sctx)
	cancel()
	hs.Close()
	px.close()

	st.report(true, led)
	issued, zero, many := led.check()
	fmt.Printf("ledger: %d calls issued, %d with zero outcomes, %d with two or more; %d results that were not the call's own\n",
		issued, zero, many, st.mismatch.Load())
	if serr != nil {
		fmt.Println("soak: server shutdown:", serr)
	}

	// Goroutines return to the baseline.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g := runtime.NumGoroutine()
	fmt.Printf("goroutines: %d at start, %d at the end\n", baseline, g)

	ok := zero == 0 && many == 0 && st.mismatch.Load() == 0 && g <= baseline
	if ok {
		fmt.Println("soak: PASS")
	} else {
		fmt.Println("soak: FAIL")
		if g > baseline {
			buf := make([]byte, 1<<20)
			fmt.Printf("%s\n", buf[:runtime.Stack(buf, true)])
		}
	}
	return ok
}
