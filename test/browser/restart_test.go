package browser_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsrpc/wsrpc"
)

// restartServer serves the test page, /wsrpc.js and a wsrpc endpoint (/rpc)
// on a fixed loopback address, and can be killed abruptly (every connection
// cut, as a crash would) and started again on the same address.
type restartServer struct {
	t        *testing.T
	addr     string
	inflight chan struct{} // a "slow" call reached its handler
	connects atomic.Int32  // connections, over every run of the server

	mu    sync.Mutex
	srv   *wsrpc.Server
	hs    *http.Server
	ln    net.Listener
	going chan struct{} // closed when this run of the server is being killed
	conns []net.Conn
	runs  sync.WaitGroup
}

func newRestartServer(t *testing.T) *restartServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartServer{t: t, addr: ln.Addr().String(), inflight: make(chan struct{}, 16)}
	r.serve(ln)
	t.Cleanup(func() { r.kill(); r.runs.Wait() })
	return r
}

func (r *restartServer) url() string { return "http://" + r.addr + "/" }

func (r *restartServer) serve(ln net.Listener) {
	going := make(chan struct{})
	m := wsrpc.NewMethods()
	// slow blocks until this run of the server is being killed.
	wsrpc.Register(m, "slow", func(ctx context.Context, _ any) (string, error) {
		r.inflight <- struct{}{}
		select {
		case <-going:
			return "too late", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	wsrpc.Register(m, "ping", func(ctx context.Context, _ any) (string, error) { return "pong", nil })
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:   m,
		OnConnect: func(*wsrpc.Peer) { r.connects.Add(1) },
	})
	mux := http.NewServeMux()
	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	mux.Handle("/rpc", srv)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	hs := &http.Server{Handler: mux, ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
		}
	}}
	r.mu.Lock()
	r.srv, r.hs, r.ln, r.going = srv, hs, ln, going
	r.mu.Unlock()
	r.runs.Go(func() { hs.Serve(ln) })
}

// start listens on the same address again.
func (r *restartServer) start() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listening on %s again: %v", r.addr, err)
	}
	r.serve(ln)
}

// kill stops the server abruptly: the listener closes and every connection,
// hijacked WebSocket ones included, is cut without a close frame.
func (r *restartServer) kill() {
	r.mu.Lock()
	srv, hs, ln, going, conns := r.srv, r.hs, r.ln, r.going, r.conns
	r.srv, r.hs, r.ln, r.conns = nil, nil, nil, nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	ln.Close() // now: start binds the address next
	hs.Close()
	for _, c := range conns {
		c.Close()
	}
	// Only then end the handlers: their answers must not get out.
	close(going)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a hang guard
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		r.t.Errorf("shutdown: %v", err)
	}
}

type closeInfo struct {
	Code         int
	Opened       bool
	Reconnecting bool
	Status       *int
	Error        string
	At           float64 // ms since the client was made
}

// TestBrowserServerRestart kills the server under a connected page, twice,
// with a call in flight, and starts it again on the same port: the call in
// flight rejects with ConnectionLostError, calls made while the server is
// down reject when the next connection attempt fails, a call made while the
// client waits to reconnect goes out on the new connection, and the client
// reconnects by itself (onopen again, state "open").
func TestBrowserServerRestart(t *testing.T) {
	start := time.Now()
	s := newRestartServer(t)
	tab := newBrowser(t)
	if err := chromedp.Do(tab,
		chromedp.Navigate(s.url()),
		chromedp.Poll[chromedp.Void]("window.loaded === true", chromedp.WithPollingTimeout(15*time.Second)),
	); err != nil {
		t.Fatalf("loading the page: %v", err)
	}

	// The browser's console and log: the failed connection attempts and the
	// probe's failed fetches land there. Subscribe once the tab exists, or
	// it would belong to cctx.
	var (
		consoleMu sync.Mutex
		console   []string
	)
	cctx, stopConsole := context.WithCancel(tab)
	messages := chromedp.Console(cctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			consoleMu.Lock()
			console = append(console, m.String())
			consoleMu.Unlock()
		}
	}()
	t.Cleanup(func() { stopConsole(); <-consoleDone })

	var opens int
	run(t, tab, `
const t0 = performance.now();
window.rt = {opens: 0, closes: [], sockets: [], probes: []};
// Time each WebSocket from its construction to its close event, and each
// probe (the client's GET of /rpc after a failed attempt).
class TimedSocket extends WebSocket {
  constructor(...a) {
    super(...a);
    const t = performance.now();
    this.addEventListener("close", () => rt.sockets.push(performance.now() - t));
  }
}
const fetch0 = window.fetch;
window.fetch = async (...a) => {
  const t = performance.now();
  try { return await fetch0(...a); } finally { rt.probes.push(performance.now() - t); }
};
rt.c = wsrpc.connect("/rpc", {
  minDelay: 10, maxDelay: 100, WebSocket: TimedSocket,
  onopen: () => { rt.opens++; },
  onclose: (i) => rt.closes.push({Code: i.code, Opened: i.opened, Reconnecting: i.reconnecting,
    Status: i.status ?? null, Error: i.error?.name, At: performance.now() - t0}),
});
// settled resolves with the client's state once it is not "connecting":
// an attempt in progress may have started before the server came back.
rt.settled = () => new Promise((resolve) => {
  const check = () => rt.c.state === "connecting" ? setTimeout(check, 1) : resolve(rt.c.state);
  check();
});
await rt.c.ready();
return rt.opens;`, &opens)
	if opens != 1 {
		t.Fatalf("onopen ran %d times on connecting, want 1", opens)
	}

	queued := 0
	for round := 1; round <= 2; round++ {
		roundStart := time.Now()
		var closesBefore int
		run(t, tab, `rt.slow = rt.c.call("slow").then((v) => ({Value: v}), (e) => ({Err: errInfo(e)})); return rt.closes.length;`, &closesBefore)
		select {
		case <-s.inflight:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the slow call never reached the server", round)
		}
		s.kill()

		// The call in flight is lost with the connection.
		var slow struct {
			Value *string
			Err   errInfo
		}
		run(t, tab, `return await rt.slow;`, &slow)
		if slow.Value != nil || !slow.Err.Lost || slow.Err.Name != "ConnectionLostError" || slow.Err.code() != 1006 {
			t.Errorf("round %d: the call in flight: %+v, want a ConnectionLostError with code 1006", round, slow)
		}

		// While the server is down, a call waits for the next connection
		// attempt only, and rejects when it fails: connection refused, then
		// the probe's fetch fails too, so no HTTP status (not a HandshakeError).
		var down struct {
			State   string
			Err     errInfo
			Waited  float64
			StateAt string
			Closes  []closeInfo
		}
		run(t, tab, `
const state = rt.c.state;
const t0 = performance.now();
const err = await rt.c.call("ping").then(() => ({}), errInfo);
return {State: state, Err: err, Waited: performance.now() - t0, StateAt: rt.c.state};`, &down)
		if down.State == "open" || down.State == "closed" {
			t.Errorf("round %d: state %q right after the server went, want connecting or waiting", round, down.State)
		}
		if !down.Err.Lost || down.Err.Name != "ConnectionLostError" || down.Err.code() != 1006 || down.Err.Status != 0 {
			t.Errorf("round %d: a call while the server is down: %+v, want a ConnectionLostError with code 1006", round, down.Err)
		}

		// The client keeps trying, backing off: the lost connection, then
		// failedAttempts attempts refused.
		const failedAttempts = 5
		want := closesBefore + 1 + failedAttempts
		if err := chromedp.Do(tab, chromedp.Poll[chromedp.Void](fmt.Sprintf("rt.closes.length >= %d", want),
			chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("round %d: waiting for %d failed attempts: %v", round, failedAttempts, err)
		}
		run(t, tab, fmt.Sprintf("return rt.closes.slice(%d, %d);", closesBefore, want), &down.Closes)
		if c := down.Closes[0]; !c.Opened || c.Code != 1006 || !c.Reconnecting || c.Error != "ConnectionLostError" || c.Status != nil {
			t.Errorf("round %d: onclose of the lost connection: %+v", round, c)
		}
		for i, c := range down.Closes[1:] {
			if c.Opened || c.Code != 1006 || !c.Reconnecting || c.Error != "ConnectionLostError" || c.Status != nil {
				t.Errorf("round %d: onclose of a failed attempt: %+v, want 1006, no HTTP status, reconnecting", round, c)
			}
			// Attempt i+1 waited at least half of min(maxDelay, minDelay*2^i)
			// (more if the backoff did not start over: a connection that
			// lasted less than maxDelay), plus the attempt and the probe.
			floor := float64(min(100, 10<<i)) / 2
			if gap := c.At - down.Closes[i].At; gap < floor-1 {
				t.Errorf("round %d: attempt %d came %.1f ms after the previous end, want at least %.0f ms", round, i+1, gap, floor)
			}
		}
		t.Logf("round %d: a call made while down (state %s) rejected after %.1f ms; onclose: %s",
			round, down.State, down.Waited, describeCloses(down.Closes))

		s.start()

		// Once no attempt from before the restart is in progress, a call
		// made while the client waits for its next attempt is queued and
		// goes out on the new connection.
		var back struct {
			StateAtCall string
			Queued      string
			Ping        string
			State       string
			Opens       int
			Closes      []closeInfo
		}
		run(t, tab, `
const st = await rt.settled();
const queued = rt.c.call("ping").catch((e) => "rejected: " + e.name);
await rt.c.ready();
return {StateAtCall: st, Queued: await queued, Ping: await rt.c.call("ping"), State: rt.c.state,
  Opens: rt.opens, Closes: rt.closes.slice(`+fmt.Sprint(closesBefore)+`)};`, &back)
		if back.StateAtCall == "waiting" {
			queued++
		}
		if back.Queued != "pong" || back.Ping != "pong" {
			t.Errorf("round %d: after the restart: queued call %q (made in state %q), ping %q; want pong", round, back.Queued, back.StateAtCall, back.Ping)
		}
		if back.State != "open" || back.Opens != round+1 {
			t.Errorf("round %d: state %q, onopen ran %d times; want open, %d", round, back.State, back.Opens, round+1)
		}
		if n := s.connects.Load(); n != int32(round+1) {
			t.Errorf("round %d: the server saw %d connections, want %d", round, n, round+1)
		}
		t.Logf("round %d: reconnected in %v; the queued call was made in state %q; %d failed attempts in all: %s",
			round, time.Since(roundStart).Round(time.Millisecond), back.StateAtCall, len(back.Closes)-1, describeCloses(back.Closes))
	}

	var final struct {
		State   string
		Sockets []float64
		Probes  []float64
	}
	run(t, tab, `rt.c.close(); return {State: rt.c.state, Sockets: rt.sockets, Probes: rt.probes};`, &final)
	if final.State != "closed" {
		t.Errorf("state after close(): %q", final.State)
	}
	t.Logf("WebSocket lifetimes (ms): %.1f", final.Sockets)
	t.Logf("probe fetches (ms): %.1f", final.Probes)
	consoleMu.Lock()
	var refused, wsFailed int
	for _, m := range console {
		if strings.Contains(m, "ERR_CONNECTION_REFUSED") {
			refused++
		}
		if strings.Contains(m, "WebSocket connection to") {
			wsFailed++
		}
	}
	t.Logf("browser console: %d messages, %d with ERR_CONNECTION_REFUSED, %d failed WebSocket connections; first: %q",
		len(console), refused, wsFailed, console[:min(len(console), 3)])
	consoleMu.Unlock()
	t.Logf("%d of 2 post-restart calls were queued while waiting; took %v", queued, time.Since(start).Round(time.Millisecond))
}

// describeCloses shows onclose calls as their code and the time since the
// previous one: "1006/opened@53ms +7.1ms:1006 ...".
func describeCloses(cs []closeInfo) string {
	var b strings.Builder
	for i, c := range cs {
		if i == 0 {
			fmt.Fprintf(&b, "%d", c.Code)
		} else {
			fmt.Fprintf(&b, " +%.1fms:%d", c.At-cs[i-1].At, c.Code)
		}
		if c.Opened {
			b.WriteString("/opened")
		}
		if i == 0 {
			fmt.Fprintf(&b, "@%.0fms", c.At)
		}
	}
	return b.String()
}
