package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

// attackNames are the hostile clients of the fair mode, in report order.
var attackNames = []string{"echo-flood", "batch-sleep", "no-read"}

const (
	callTimeout  = 5 * time.Second // the healthy client's per-call timeout
	dialTimeout  = 5 * time.Second // every client's dial timeout
	redialPause  = 50 * time.Millisecond
	noReadString = 64 << 10 // the no-read attack's echo string
	batchItems   = 100      // items of one batch-sleep batch
)

// window is what the healthy client saw during one measured window.
type window struct {
	d       time.Duration
	ok      int
	lat     []time.Duration // of the successful calls, sorted
	failed  counts          // failed calls and dials, by error
	redials int
	// CPU time used during the window by the server child and by this
	// process (the healthy client and the attacks).
	serverCPU, clientCPU time.Duration
}

// mean is the mean latency of the successful calls.
func (w *window) mean() time.Duration {
	if len(w.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range w.lat {
		sum += l
	}
	return sum / time.Duration(len(w.lat))
}

// rate is successful calls per second.
func (w *window) rate() float64 { return float64(w.ok) / w.d.Seconds() }

// healthy is the well-behaved client: one wsrpc peer, redialled after any
// failure.
type healthy struct {
	url  string
	peer *wsrpc.Peer
}

// measure makes lock-step Sum calls for d and returns what it saw. Only
// calls that succeed within the window count.
func (h *healthy) measure(d time.Duration, srv *server) *window {
	w := &window{d: d, failed: counts{}}
	ctx := context.Background()
	srvCPU, ownCPU := srv.cpuTime(), selfCPU()
	defer func() {
		w.serverCPU = srv.cpuTime() - srvCPU
		w.clientCPU = selfCPU() - ownCPU
	}()
	end := time.Now().Add(d)
	for time.Now().Before(end) && srv.alive() {
		if h.peer == nil {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			p, err := wsrpc.Dial(dctx, h.url, nil)
			cancel()
			if err != nil {
				w.failed["dial: "+errKey(err)]++
				time.Sleep(redialPause)
				continue
			}
			h.peer = p
			w.redials++
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		t0 := time.Now()
		sum, err := api.Sum.Call(cctx, h.peer, []float64{1, 2})
		done := time.Now()
		cancel()
		if err == nil && sum != 3 {
			err = fmt.Errorf("wrong sum %v", sum)
		}
		if err != nil {
			w.failed["call: "+errKey(err)]++
			_ = h.peer.Close()
			h.peer = nil
			continue
		}
		if done.Before(end) {
			w.ok++
			w.lat = append(w.lat, done.Sub(t0))
		}
	}
	slices.Sort(w.lat)
	return w
}

// close closes the peer, if any.
func (h *healthy) close() {
	if h.peer != nil {
		_ = h.peer.Close()
		h.peer = nil
	}
}

// attackStats is what one attack did.
type attackStats struct {
	name      string
	conns     atomic.Int64 // connections opened
	sent      atomic.Int64 // messages written
	sentBytes atomic.Int64
	answers   atomic.Int64 // messages read
	ansBytes  atomic.Int64

	mu   sync.Mutex
	ends counts // how its connections ended (dial failures included)
}

// end records how a connection (or a dial) ended.
func (s *attackStats) end(what string) {
	s.mu.Lock()
	s.ends[what]++
	s.mu.Unlock()
}

// runAttack runs the named attack until ctx ends, redialling whenever the
// server drops it.
func runAttack(ctx context.Context, name, url string, st *attackStats) {
	var session func(context.Context, *websocket.Conn, *attackStats) error
	switch name {
	case "echo-flood":
		msg := newEcho(api.MaxMessageSize - 100)
		session = func(ctx context.Context, c *websocket.Conn, st *attackStats) error {
			return flood(ctx, c, st, msg, true)
		}
	case "no-read":
		msg := newEcho(noReadString)
		session = func(ctx context.Context, c *websocket.Conn, st *attackStats) error {
			return flood(ctx, c, st, msg, false)
		}
	case "batch-sleep":
		session = batchSleep
	}
	for ctx.Err() == nil {
		c, err := dialRaw(ctx, url, dialTimeout)
		if err != nil {
			if ctx.Err() == nil {
				st.end("dial: " + errKey(err))
				sleepCtx(ctx, redialPause)
			}
			continue
		}
		st.conns.Add(1)
		err = session(ctx, c, st)
		c.CloseNow()
		if ctx.Err() == nil {
			st.end(describeEnd(err))
		}
	}
}

// flood writes msg, with a new id each time, as fast as the connection
// takes it, until a write fails. With read, another goroutine reads and
// discards the answers; the error returned is then the reader's if it
// failed first (it carries the server's close status).
func flood(ctx context.Context, c *websocket.Conn, st *attackStats, msg *message, read bool) error {
	var readErr chan error
	if read {
		readErr = make(chan error, 1)
		go func() { readErr <- discard(ctx, c, st) }()
	}
	var err error
	for id := int64(1); ; id++ {
		msg.setID(id)
		if err = c.Write(ctx, websocket.MessageText, msg.b); err != nil {
			break
		}
		st.sent.Add(1)
		st.sentBytes.Add(int64(len(msg.b)))
	}
	if !read {
		return err
	}
	c.CloseNow()
	if rerr := <-readErr; websocket.CloseStatus(rerr) != -1 {
		return rerr
	}
	return err
}

// batchSleep writes batches of sleep requests as fast as the connection
// takes them, reading and discarding the answers on another goroutine.
func batchSleep(ctx context.Context, c *websocket.Conn, st *attackStats) error {
	readErr := make(chan error, 1)
	go func() { readErr <- discard(ctx, c, st) }()
	var err error
	var b []byte
	for id := int64(1); ; {
		b = append(b[:0], '[')
		for i := range batchItems {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"jsonrpc":"2.0","id":`...)
			b = strconv.AppendInt(b, id, 10)
			b = append(b, `,"method":"sleep","params":{"ms":50}}`...)
			id++
		}
		b = append(b, ']')
		if err = c.Write(ctx, websocket.MessageText, b); err != nil {
			break
		}
		st.sent.Add(1)
		st.sentBytes.Add(int64(len(b)))
	}
	c.CloseNow()
	if rerr := <-readErr; websocket.CloseStatus(rerr) != -1 {
		return rerr
	}
	return err
}

// discard reads and drops messages until a read fails.
func discard(ctx context.Context, c *websocket.Conn, st *attackStats) error {
	for {
		_, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return err
		}
		st.answers.Add(1)
		st.ansBytes.Add(n)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runFair measures the healthy client alone, then under the attacks.
func runFair(cfg config, srv *server) (*result, error) {
	h := &healthy{url: srv.url()}
	defer h.close()
	fmt.Printf("fair: windows of %v, attacks %s starting %v before the second\n",
		cfg.d, strings.Join(cfg.attacks, ","), cfg.warmup)

	solo := h.measure(cfg.d, srv)
	soloMem := srv.memory()
	printWindow("solo", solo)

	att, err := startAttacker(srv.url(), cfg.attacks)
	if err != nil {
		return nil, err
	}
	time.Sleep(cfg.warmup)
	attCPU := att.cpuTime()
	attacked := h.measure(cfg.d, srv)
	attCPU = att.cpuTime() - attCPU
	reports := att.stop()
	printWindow("under attack", attacked)
	fmt.Printf("%-13s CPU used by the attacker process: %.2f cores\n", "", time.Duration(attCPU).Seconds()/attacked.d.Seconds())

	ratio := 0.0
	if solo.rate() > 0 {
		ratio = attacked.rate() / solo.rate()
	}
	fmt.Printf("ratio (under attack / solo): %.3f\n", ratio)
	if len(attacked.failed) > 0 {
		fmt.Println("failures under attack:")
		attacked.failed.print("  ")
	}
	fmt.Println("attacks (in a process of their own):")
	for _, st := range reports {
		fmt.Printf("  %-11s conns %d, sent %d msgs (%s), read %d answers (%s)\n",
			st.Name, st.Conns, st.Sent, mib(st.SentBytes), st.Answers, mib(st.AnsBytes))
		if len(st.Ends) > 0 {
			fmt.Println("    connections ended during the attack:")
			st.Ends.print("    ")
		}
	}
	m := srv.memory()
	fmt.Printf("server: peak RSS %s (%s after the solo window), peak fds %d\n",
		mib(m.peakHWM), mib(soloMem.peakHWM), m.peakFDs)

	res := newResult("fair")
	res.add("attacks", strings.Join(cfg.attacks, ","))
	res.add("d", cfg.d)
	res.add("solo_cps", solo.rate())
	res.add("attacked_cps", attacked.rate())
	res.add("ratio", ratio)
	res.add("solo_failed", solo.failed.total())
	res.add("attacked_failed", attacked.failed.total())
	res.add("solo_p99_ms", ms(percentile(solo.lat, 0.99)))
	res.add("attacked_p50_ms", ms(percentile(attacked.lat, 0.50)))
	res.add("attacked_p99_ms", ms(percentile(attacked.lat, 0.99)))
	res.add("attacked_max_ms", ms(percentile(attacked.lat, 1)))
	res.add("solo_peak_rss_mib", mibNum(soloMem.peakHWM))
	res.add("attacked_server_cores", attacked.serverCPU.Seconds()/attacked.d.Seconds())
	res.add("attacked_client_cores", attacked.clientCPU.Seconds()/attacked.d.Seconds())
	res.add("attacker_cores", time.Duration(attCPU).Seconds()/attacked.d.Seconds())
	return res, nil
}

// printWindow reports one window of the healthy client.
func printWindow(label string, w *window) {
	fmt.Printf("%-13s %9.0f calls/s  (%d ok, %d failed)  latency mean %v p50 %v p99 %v max %v\n",
		label+":", w.rate(), w.ok, w.failed.total(), w.mean().Round(time.Microsecond),
		percentile(w.lat, 0.50).Round(time.Microsecond),
		percentile(w.lat, 0.99).Round(time.Microsecond),
		percentile(w.lat, 1).Round(time.Microsecond))
	fmt.Printf("%-13s CPU used: server %.2f cores, client process %.2f cores\n", "",
		w.serverCPU.Seconds()/w.d.Seconds(), w.clientCPU.Seconds()/w.d.Seconds())
}

// ms is a duration in milliseconds, for RESULT lines.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
