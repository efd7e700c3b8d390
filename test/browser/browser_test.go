// Package browser_test runs the browser client, js/wsrpc.js, in a headless
// Chromium against a wsrpc.Server, driven with chromedp.
//
// Chromium is Debian's: apt-get install -y chromium (or set $CHROMIUM to a
// Chrome or Chromium binary). Without it the tests skip, except under
// CI=true, where they fail. No browser is ever downloaded.
package browser_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/weerpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if skipped != "" {
			// go test prints only "ok" for a passing package: say it
			// where it is seen, the terminal, and in -v output.
			notice := "wsrpc/test/browser: browser tests SKIPPED: " + skipped + "\n"
			fmt.Fprint(os.Stderr, notice)
			if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
				fmt.Fprint(tty, notice)
				tty.Close()
			}
		}
		os.Exit(code)
	}))
}

// skipped says why the browser tests skipped, for TestMain to report.
var skipped string

// page is the test page: it imports the client from the handler under test
// and leaves it, and a helper describing errors, on window.
const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsrpc browser test</title>
<style>body{font:16px sans-serif;margin:2em} pre{background:#eee;padding:1em;white-space:pre-wrap}</style></head>
<body><h1>wsrpc browser test</h1><pre id="log">loading /wsrpc.js…</pre>
<script type="module">
import * as wsrpc from "/wsrpc.js";
window.wsrpc = wsrpc;
// errInfo describes an error as plain JSON for the Go side.
window.errInfo = (e) => ({
  name: e?.name, message: e?.message, code: e?.code, data: e?.data, status: e?.status,
  rpc: e instanceof wsrpc.RPCError, lost: e instanceof wsrpc.ConnectionLostError,
});
document.getElementById("log").textContent = "wsrpc.js loaded; exports: " + Object.keys(wsrpc).sort().join(", ");
window.loaded = true;
</script></body></html>`

// chromium returns the browser's path, or skips (fails under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("no Chromium at %s (%v): install it with `apt-get install -y chromium`, or set $CHROMIUM", p, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		skipped = msg
		t.Skip("SKIPPED: " + msg)
	}
	return p
}

// fixture is the server side: one httptest server with the page, the
// script, an open endpoint (/rpc), one that authenticates (/secure), and
// the open endpoint's table over weeRPC (/weerpc, and /weerpc-elsewhere,
// which refuses this server's host).
type fixture struct {
	url       string
	notes     chan string   // "note" notifications received
	release   chan struct{} // ends "hang" handlers
	connects  atomic.Int32
	peers     chan *wsrpc.Peer // from peer.hand
	feeds     feedRuns
	producers sync.WaitGroup // of feed
}

type subtractArgs struct {
	Minuend    float64 `json:"minuend"`
	Subtrahend float64 `json:"subtrahend"`
}

type reverseArgs struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{notes: make(chan string, 16), release: make(chan struct{}), peers: make(chan *wsrpc.Peer, 1)}
	m := wsrpc.NewMethods()
	f.registerStreams(m)
	wsrpc.Register(m, "subtract", func(ctx context.Context, a subtractArgs) (float64, error) {
		return a.Minuend - a.Subtrahend, nil
	})
	m.HandleRaw("echo", func(ctx context.Context, params json.RawMessage) (any, error) {
		return json.RawMessage(append([]byte(nil), params...)), nil
	})
	wsrpc.Register(m, "fail", func(ctx context.Context, _ any) (any, error) {
		return nil, wsrpc.NewError(1234, "custom failure", map[string]any{"why": "because", "n": 7})
	})
	wsrpc.Register(m, "hang", func(ctx context.Context, _ any) (any, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.release:
			return "released", nil
		}
	})
	wsrpc.Register(m, "kick", func(ctx context.Context, _ any) (any, error) {
		// Close from a handler: it does not wait for the handlers still
		// running (this one, "hang").
		wsrpc.PeerFromContext(ctx).Close()
		return nil, nil
	})
	wsrpc.Register(m, "note", func(ctx context.Context, a []string) (any, error) {
		for _, s := range a {
			f.notes <- s
		}
		return nil, nil
	})
	// notes.next answers the next "note" received: notifications and
	// requests are not ordered, so wait for it.
	wsrpc.Register(m, "notes.next", func(ctx context.Context, _ any) (string, error) {
		select {
		case s := <-f.notes:
			return s, nil
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Second):
			return "", wsrpc.NewError(1, "no note", nil)
		}
	})
	// reverse.call calls the page back and answers what it answered,
	// error objects included.
	wsrpc.Register(m, "reverse.call", func(ctx context.Context, a reverseArgs) (json.RawMessage, error) {
		var params any
		if a.Params != nil {
			params = a.Params
		}
		var res json.RawMessage
		err := wsrpc.PeerFromContext(ctx).Call(ctx, a.Method, params, &res)
		return res, err
	})
	wsrpc.Register(m, "reverse.notify", func(ctx context.Context, a reverseArgs) (any, error) {
		return nil, wsrpc.PeerFromContext(ctx).Notify(ctx, a.Method, a.Params)
	})
	wsrpc.Register(m, "whoami", func(ctx context.Context, _ any) (any, error) {
		return wsrpc.IdentityFromContext(ctx), nil
	})

	open := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:      m,
		Authenticate: func(r *http.Request) (any, error) { return "anonymous", nil },
		OnConnect:    func(p *wsrpc.Peer) { f.connects.Add(1) },
	})
	secure := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods: m,
		// Browsers send cookies with the handshake and cannot set headers:
		// a session cookie, or a token in the query. Authorization serves
		// POST requests, where fetch can set it.
		Authenticate: func(r *http.Request) (any, error) {
			if c, err := r.Cookie("session"); err == nil && c.Value == "s3cret" {
				return "cookie:alice", nil
			}
			if r.URL.Query().Get("token") == "t0ken" || r.Header.Get("Authorization") == "Bearer t0ken" {
				return "token:bob", nil
			}
			return nil, errors.New("who are you?")
		},
	})

	mux := http.NewServeMux()
	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	mux.Handle("/rpc", open)
	mux.Handle("/secure", secure)
	mux.Handle("/weerpc", weerpc.NewHandler(&weerpc.Options{Methods: m}))
	mux.Handle("/weerpc-elsewhere", weerpc.NewHandler(&weerpc.Options{Methods: m, AllowedHosts: []string{"elsewhere.example"}}))
	// /gone accepts and closes at once with 4000, an application's "do not
	// come back" (a wsrpc Peer closes with 1000 only).
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Close(4000, "go away")
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1
	f.url = srv.URL + "/"
	t.Cleanup(func() {
		close(f.release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []*wsrpc.Server{open, secure} {
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
		f.producers.Wait() // their streams ended with their peers
		srv.Close()
	})
	return f
}

// newBrowser starts a headless Chromium with its own profile and returns a
// tab's context; the browser ends with the test.
func newBrowser(t *testing.T) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil { // closes the browser gracefully
			t.Logf("closing the browser: %v", err)
		}
		cancelTab()
		cancelAlloc() // waits for its process
	})
	return ctx
}

// run evaluates the body of an async function in the page and decodes what
// it returns into res.
func run(t *testing.T, tab context.Context, body string, res any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte]("(async () => {\n"+body+"\n})()", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate: %v\n%s", err, body)
	}
	if err := json.Unmarshal(raw, res); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
}

// errInfo is window.errInfo's description of an error.
type errInfo struct {
	Name    string         `json:"name"`
	Message string         `json:"message"`
	Code    *int           `json:"code"`
	Data    map[string]any `json:"data"`
	Status  int            `json:"status"`
	RPC     bool           `json:"rpc"`
	Lost    bool           `json:"lost"`
}

func (e errInfo) code() int {
	if e.Code == nil {
		return 0
	}
	return *e.Code
}

func TestBrowser(t *testing.T) {
	start := time.Now()
	path := chromium(t)
	f := newFixture(t)
	tab := newBrowser(t)
	if err := chromedp.Do(tab,
		chromedp.Navigate(f.url),
		chromedp.Poll[chromedp.Void]("window.loaded === true", chromedp.WithPollingTimeout(15*time.Second)),
	); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	t.Logf("%s: page loaded in %v", path, time.Since(start).Round(time.Millisecond))

	t.Run("Call", func(t *testing.T) {
		var res struct {
			Array, Object float64
			Echo          any
			Invalid       errInfo
		}
		run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  return {
    Array: await c.call("subtract", [42, 23]),
    Object: await c.call("subtract", {minuend: 42, subtrahend: 23}),
    Echo: await c.call("echo", {a: [1, "x", null, {b: true}]}),
    Invalid: await c.call("subtract", {minuend: 1}).catch(errInfo),
  };
} finally { c.close(); }`, &res)
		if res.Array != 19 || res.Object != 19 {
			t.Errorf("subtract: %v, %v; want 19, 19", res.Array, res.Object)
		}
		want := map[string]any{"a": []any{1.0, "x", nil, map[string]any{"b": true}}}
		if !reflect.DeepEqual(res.Echo, want) {
			t.Errorf("echo: %#v", res.Echo)
		}
		if !res.Invalid.RPC || res.Invalid.code() != wsrpc.CodeInvalidParams {
			t.Errorf("missing argument: %+v", res.Invalid)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		var res struct{ Fail, NotFound errInfo }
		run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  return {
    Fail: await c.call("fail").catch(errInfo),
    NotFound: await c.call("no.such.method", [1]).catch(errInfo),
  };
} finally { c.close(); }`, &res)
		if !res.Fail.RPC || res.Fail.Name != "RPCError" || res.Fail.code() != 1234 || res.Fail.Message != "custom failure" ||
			!reflect.DeepEqual(res.Fail.Data, map[string]any{"why": "because", "n": 7.0}) {
			t.Errorf("fail: %+v", res.Fail)
		}
		if !res.NotFound.RPC || res.NotFound.code() != wsrpc.CodeMethodNotFound {
			t.Errorf("method not found: %+v", res.NotFound)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		var res struct {
			Frames   int
			Sum      float64
			Fail     errInfo
			NotFound errInfo
			Settled  []string
			Note     string
		}
		run(t, tab, `
let frames = 0;
class CountingSocket extends WebSocket {
  send(data) { frames++; return super.send(data); }
}
const c = wsrpc.connect("/rpc", {WebSocket: CountingSocket});
try {
  await c.ready();
  let p1, p2, p3;
  const settled = await c.batch((b) => {
    p1 = b.call("subtract", [5, 3]);
    p2 = b.call("fail");
    b.notify("note", ["from a batch"]);
    p3 = b.call("nope");
  });
  return {
    Frames: frames,
    Sum: await p1,
    Fail: await p2.catch(errInfo),
    NotFound: await p3.catch(errInfo),
    Settled: settled.map((s) => s.status),
    Note: await c.call("notes.next"),
  };
} finally { c.close(); }`, &res)
		if res.Frames != 1 {
			t.Errorf("the batch took %d WebSocket messages, want 1", res.Frames)
		}
		if res.Sum != 2 || res.Fail.code() != 1234 || res.NotFound.code() != wsrpc.CodeMethodNotFound {
			t.Errorf("batch results: %+v", res)
		}
		if !reflect.DeepEqual(res.Settled, []string{"fulfilled", "rejected", "rejected"}) {
			t.Errorf("settled: %v", res.Settled)
		}
		if res.Note != "from a batch" {
			t.Errorf("the batch's notification: %q", res.Note)
		}
	})

	t.Run("Notify", func(t *testing.T) {
		var note string
		run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  await c.notify("note", ["hello"]);
  return await c.call("notes.next");
} finally { c.close(); }`, &note)
		if note != "hello" {
			t.Errorf("note: %q", note)
		}
	})

	t.Run("ServerCallsPage", func(t *testing.T) {
		var res struct {
			Add, Named      float64
			Fail, Crash, NF errInfo
			Logged          []string
			News            map[string]any
		}
		run(t, tab, `
const logged = [];
const c = wsrpc.connect("/rpc", {logger: {error: (...a) => logged.push(String(a[0])), warn() {}}});
c.register("page.add", async ([a, b]) => a + b);
c.register("page.named", ({x, y}, ctx) => ctx.method === "page.named" ? x * y : -1);
c.register("page.fail", () => { throw new wsrpc.RPCError(4001, "page says no", {n: 1}); });
c.register("page.crash", () => { throw new Error("secret detail"); });
const news = new Promise((resolve) => c.on("page.news", (p) => resolve(p)));
try {
  const out = {
    Add: await c.call("reverse.call", {method: "page.add", params: [2, 3]}),
    Named: await c.call("reverse.call", {method: "page.named", params: {x: 4, y: 5}}),
    Fail: await c.call("reverse.call", {method: "page.fail"}).catch(errInfo),
    Crash: await c.call("reverse.call", {method: "page.crash"}).catch(errInfo),
    NF: await c.call("reverse.call", {method: "page.nothing", params: []}).catch(errInfo),
  };
  await c.call("reverse.notify", {method: "page.news", params: {text: "hi"}});
  out.News = await news;
  out.Logged = logged;
  return out;
} finally { c.close(); }`, &res)
		if res.Add != 5 || res.Named != 20 {
			t.Errorf("page.add %v, page.named %v", res.Add, res.Named)
		}
		if res.Fail.code() != 4001 || res.Fail.Message != "page says no" || !reflect.DeepEqual(res.Fail.Data, map[string]any{"n": 1.0}) {
			t.Errorf("page.fail: %+v", res.Fail)
		}
		if res.Crash.code() != wsrpc.CodeInternalError || res.Crash.Message != "internal error" {
			t.Errorf("page.crash: %+v", res.Crash)
		}
		if len(res.Logged) != 1 {
			t.Errorf("logged: %q; want the crash logged in the page", res.Logged)
		}
		if res.NF.code() != wsrpc.CodeMethodNotFound {
			t.Errorf("page.nothing: %+v", res.NF)
		}
		if !reflect.DeepEqual(res.News, map[string]any{"text": "hi"}) {
			t.Errorf("news: %v", res.News)
		}
	})

	t.Run("AbortAndTimeout", func(t *testing.T) {
		var res struct {
			Aborted, PreAborted, Timeout errInfo
			After                        float64
		}
		run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  const ac = new AbortController();
  const p = c.call("hang", [], {signal: ac.signal});
  ac.abort();
  return {
    Aborted: await p.catch(errInfo),
    PreAborted: await c.call("hang", [], {signal: AbortSignal.abort(new Error("custom reason"))}).catch(errInfo),
    Timeout: await c.call("hang", [], {timeout: 50}).catch(errInfo),
    After: await c.call("subtract", [3, 1]),
  };
} finally { c.close(); }`, &res)
		if res.Aborted.Name != "AbortError" || res.Aborted.RPC || res.Aborted.Lost {
			t.Errorf("aborted: %+v", res.Aborted)
		}
		if res.PreAborted.Message != "custom reason" {
			t.Errorf("aborted before the call: %+v", res.PreAborted)
		}
		if res.Timeout.Name != "TimeoutError" {
			t.Errorf("timeout: %+v", res.Timeout)
		}
		if res.After != 2 {
			t.Errorf("a call after them: %v (the connection should have stayed up)", res.After)
		}
	})

	t.Run("Reconnect", func(t *testing.T) {
		before := f.connects.Load()
		var res struct {
			Lost   errInfo
			Again  float64
			Opens  int
			Closes []struct {
				Code         int
				Opened       bool
				Reconnecting bool
				Error        string
			}
			State string
		}
		run(t, tab, `
let opens = 0;
const closes = [];
const c = wsrpc.connect("/rpc", {
  minDelay: 20, maxDelay: 200,
  onopen: async (client) => { opens++; await client.call("subtract", [0, 0]); },
  onclose: (i) => closes.push({Code: i.code, Opened: i.opened, Reconnecting: i.reconnecting, Error: i.error.name}),
});
try {
  await c.ready();
  const hang = c.call("hang");
  c.call("kick").catch(() => {}); // the server closes this connection
  const lost = await hang.catch(errInfo);
  const again = await c.call("subtract", [10, 1]); // waits for the next connection
  return {Lost: lost, Again: again, Opens: opens, Closes: closes.slice(), State: c.state};
} finally { c.close(); }`, &res)
		if !res.Lost.Lost || res.Lost.Name != "ConnectionLostError" || res.Lost.code() != 1000 {
			t.Errorf("the pending call: %+v, want a ConnectionLostError with code 1000", res.Lost)
		}
		if res.Again != 9 || res.Opens != 2 || res.State != "open" {
			t.Errorf("after reconnecting: %+v", res)
		}
		if len(res.Closes) != 1 || !res.Closes[0].Opened || !res.Closes[0].Reconnecting || res.Closes[0].Error != "ConnectionLostError" {
			t.Errorf("onclose: %+v", res.Closes)
		}
		if n := f.connects.Load() - before; n != 2 {
			t.Errorf("the server saw %d connections, want 2", n)
		}
	})

	t.Run("StopOn4000", func(t *testing.T) {
		var res struct {
			Ready  errInfo
			State  string
			Closes []bool
		}
		run(t, tab, `
const closes = [];
let closed;
const ended = new Promise((resolve) => { closed = resolve; });
const c = wsrpc.connect("/gone", {minDelay: 20, onclose: (i) => { closes.push(i.reconnecting); closed(); }});
await ended; // the connection opened, then the server closed it
return {Ready: await c.ready().catch(errInfo), State: c.state, Closes: closes.slice()};`, &res)
		if res.Ready.Name != "ConnectionLostError" || res.Ready.code() != 4000 || res.State != "closed" || !reflect.DeepEqual(res.Closes, []bool{false}) {
			t.Errorf("after a close with 4000: %+v; want no reconnecting", res)
		}
	})

	t.Run("AuthRefused", func(t *testing.T) {
		var res struct {
			Ready, Call, BadToken errInfo
			State                 string
			Closes                int
		}
		run(t, tab, `
let closes = 0;
const c = wsrpc.connect("/secure", {minDelay: 20, onclose: () => closes++});
const ready = await c.ready().catch(errInfo);
const bad = wsrpc.connect("/secure", {token: "wrong"});
const badToken = await bad.call("whoami").catch(errInfo);
return {Ready: ready, Call: await c.call("whoami").catch(errInfo), BadToken: badToken, State: c.state, Closes: closes};`, &res)
		for _, e := range []errInfo{res.Ready, res.Call, res.BadToken} {
			if e.Name != "HandshakeError" || e.Status != http.StatusUnauthorized || !e.Lost {
				t.Errorf("refused: %+v, want a HandshakeError with status 401", e)
			}
		}
		if res.State != "closed" || res.Closes != 1 {
			t.Errorf("state %q after %d closes; want closed, without reconnecting", res.State, res.Closes)
		}
	})

	t.Run("AuthCookie", func(t *testing.T) {
		var who string
		run(t, tab, `
document.cookie = "session=s3cret; path=/; SameSite=Strict";
const c = wsrpc.connect("/secure");
try { return await c.call("whoami"); }
finally { c.close(); document.cookie = "session=; path=/; max-age=0"; }`, &who)
		if who != "cookie:alice" {
			t.Errorf("whoami: %q", who)
		}
	})

	t.Run("AuthToken", func(t *testing.T) {
		var who string
		run(t, tab, `
const c = wsrpc.connect("/secure", {token: async () => "t0ken"});
try { return await c.call("whoami"); } finally { c.close(); }`, &who)
		if who != "token:bob" {
			t.Errorf("whoami: %q", who)
		}
	})

	t.Run("Post", func(t *testing.T) {
		var res struct {
			Sum           float64
			Fail, Refused errInfo
			Who           string
			Batch         []any
			Settled       []string
			OnlyNotes     int
		}
		run(t, tab, `
let p1, p2;
const settled = await wsrpc.postBatch("/rpc", (b) => {
  p1 = b.call("subtract", {minuend: 8, subtrahend: 1});
  b.notify("note", ["posted"]);
  p2 = b.call("nope");
});
const notes = await wsrpc.postBatch("/rpc", (b) => b.notify("note", ["posted again"]));
return {
  Sum: await wsrpc.post("/rpc", "subtract", [10, 4]),
  Fail: await wsrpc.post("/rpc", "fail").catch(errInfo),
  Refused: await wsrpc.post("/secure", "whoami").catch(errInfo),
  Who: await wsrpc.post("/secure", "whoami", undefined, {headers: {Authorization: "Bearer t0ken"}}),
  Batch: [await p1, await p2.catch(errInfo)],
  Settled: settled.map((s) => s.status),
  OnlyNotes: notes.length,
};`, &res)
		if res.Sum != 6 || res.Fail.code() != 1234 || !res.Fail.RPC || res.Who != "token:bob" {
			t.Errorf("post: %+v", res)
		}
		if res.Refused.Name != "HTTPError" || res.Refused.Status != http.StatusUnauthorized {
			t.Errorf("refused post: %+v", res.Refused)
		}
		if len(res.Batch) != 2 || res.Batch[0] != 7.0 || res.Batch[1].(map[string]any)["code"] != float64(wsrpc.CodeMethodNotFound) {
			t.Errorf("postBatch: %v", res.Batch)
		}
		if !reflect.DeepEqual(res.Settled, []string{"fulfilled", "rejected"}) || res.OnlyNotes != 0 {
			t.Errorf("postBatch settled %v, notifications only %d", res.Settled, res.OnlyNotes)
		}
		for _, want := range []string{"posted", "posted again"} {
			select {
			case got := <-f.notes:
				if got != want {
					t.Errorf("note %q, want %q", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("note %q never arrived", want)
			}
		}
	})

	t.Run("Weerpc", func(t *testing.T) {
		var res struct {
			Positional, Named float64
			Empty             []any
			Fail, NotFound    errInfo
			Refused           errInfo
		}
		run(t, tab, `
return {
  Positional: await wsrpc.weerpc("/weerpc", "subtract", [10, 4]),
  Named: await wsrpc.weerpc("/weerpc", "subtract", {minuend: 8, subtrahend: 1}),
  Empty: await wsrpc.weerpc("/weerpc", "echo", []),
  Fail: await wsrpc.weerpc("/weerpc", "fail").catch(errInfo),
  NotFound: await wsrpc.weerpc("/weerpc", "nope", 1).catch(errInfo),
  Refused: await wsrpc.weerpc("/weerpc-elsewhere", "echo", 1).catch(errInfo),
};`, &res)
		if res.Positional != 6 || res.Named != 7 || res.Empty == nil || len(res.Empty) != 0 {
			t.Errorf("weerpc: %+v", res)
		}
		if res.Fail.Name != "WeeRPCError" || res.Fail.Message != "custom failure" ||
			!reflect.DeepEqual(res.Fail.Data, map[string]any{"why": "because", "n": 7.0}) {
			t.Errorf("fail: %+v", res.Fail)
		}
		if res.NotFound.Name != "WeeRPCError" || res.NotFound.Message != `method not found: "nope"` {
			t.Errorf("not found: %+v", res.NotFound)
		}
		if res.Refused.Name != "HTTPError" || res.Refused.Status != http.StatusForbidden || res.Refused.Message != "host not allowed" {
			t.Errorf("refused: %+v", res.Refused)
		}
	})

	t.Run("StreamSubscribe", func(t *testing.T) { testStreamSubscribe(t, tab) })
	t.Run("StreamOverflow", func(t *testing.T) { testStreamOverflow(t, tab) })
	t.Run("StreamServe", func(t *testing.T) { testStreamServe(t, f, tab) })
	t.Run("StreamConnectionLost", func(t *testing.T) { testStreamConnectionLost(t, tab) })

	t.Run("Screenshot", func(t *testing.T) {
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if len(png) < 8 || string(png[1:4]) != "PNG" {
			t.Fatalf("not a PNG: %d bytes", len(png))
		}
		file := filepath.Join(t.TempDir(), "page.png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s, %d bytes", file, len(png))
		if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" { // to look at it
			if err := os.WriteFile(filepath.Join(dir, "wsrpc-browser-test.png"), png, 0o644); err != nil {
				t.Error(err)
			}
		}
	})

	t.Logf("browser tests took %v", time.Since(start).Round(time.Millisecond))
}
