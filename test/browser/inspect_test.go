package browser_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/inspect"
)

// adminSession is the session cookie /login sets: the identity it stands
// for may inspect the server.
const adminSession = "s3ssion-of-the-admin"

// inspected is a Server with an inspector: its methods guarded by the role
// "admin", which the browser gets from the cookie /login sets, and Go
// clients, with the role "user", from their X-User header.
type inspected struct {
	url, ws string
	in      *inspect.Inspector
}

func newInspected(t *testing.T) *inspected {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "user.get", func(_ context.Context, id int) (map[string]any, error) {
		time.Sleep(time.Duration(id%7) * 300 * time.Microsecond) // some work, for the latencies
		return map[string]any{"id": id, "name": fmt.Sprint("user ", id)}, nil
	})
	wsrpc.Register(m, "math.sum", func(_ context.Context, xs []float64) (float64, error) {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	wsrpc.Register(m, "order.place", func(_ context.Context, n int) (string, error) {
		if n%4 == 0 {
			return "", wsrpc.NewError(409, "out of stock", nil)
		}
		time.Sleep(2 * time.Millisecond)
		return fmt.Sprint("order-", n), nil
	})
	// greet.back calls the caller back: a call out, from the server.
	wsrpc.Register(m, "greet.back", func(ctx context.Context, name string) (string, error) {
		return wsrpc.Call[string](ctx, wsrpc.PeerFromContext(ctx), "client.hello", []string{name})
	})

	in := inspect.New(nil)
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:  m,
		Observer: in,
		Authenticate: func(r *http.Request) (any, error) {
			if c, err := r.Cookie("session"); err == nil && c.Value == adminSession {
				return map[string]string{"user": "root", "role": "admin"}, nil
			}
			if u := r.Header.Get("X-User"); u != "" {
				return map[string]string{"user": u, "role": "user"}, nil
			}
			return nil, nil // anonymous: the inspector's guard refuses it
		},
		OnConnect: func(p *wsrpc.Peer) {
			if id, ok := p.Identity().(map[string]string); ok {
				p.SetName(id["user"])
			}
		},
	})
	in.Register(m, srv, wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin")))

	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	mux.Handle("/debug/wsrpc", in.Handler())
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: adminSession, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/debug/wsrpc", http.StatusSeeOther)
	})
	hs := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		in.Close()
	})
	return &inspected{url: hs.URL, ws: "ws" + strings.TrimPrefix(hs.URL, "http") + "/rpc", in: in}
}

// client dials as user; it answers client.hello.
func (s *inspected) client(t *testing.T, user string) *wsrpc.Peer {
	t.Helper()
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "client.hello", func(_ context.Context, name string) (string, error) {
		return "hello, " + name + ", from " + user, nil
	})
	p, err := wsrpc.Dial(context.Background(), s.ws, &wsrpc.DialOptions{Methods: m, HTTPHeader: http.Header{"X-User": {user}}})
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// traffic makes n rounds of calls from the clients: each round, one
// user.get per client, a math.sum, an order.place (every fourth fails),
// and, every fifth round, a greet.back (a call back out) and a call of a
// method that does not exist.
func traffic(t *testing.T, clients []*wsrpc.Peer, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		c := clients[i%len(clients)]
		for j, c := range clients {
			if _, err := wsrpc.Call[map[string]any](ctx, c, "user.get", []int{i*len(clients) + j}); err != nil {
				t.Fatalf("user.get: %v", err)
			}
		}
		if _, err := wsrpc.Call[float64](ctx, c, "math.sum", []float64{1, 2, float64(i)}); err != nil {
			t.Fatalf("math.sum: %v", err)
		}
		if _, err := wsrpc.Call[string](ctx, c, "order.place", []int{i}); (i%4 == 0) != (err != nil) {
			t.Fatalf("order.place(%d): %v", i, err)
		}
		if i%5 == 0 {
			if _, err := wsrpc.Call[string](ctx, c, "greet.back", []string{"inspector"}); err != nil {
				t.Fatalf("greet.back: %v", err)
			}
			if err := c.Call(ctx, "admin.drop_tables", nil, nil); !errors.Is(err, wsrpc.ErrMethodNotFound) {
				t.Fatalf("admin.drop_tables: %v", err)
			}
		}
	}
}

// TestInspect serves a Server with the inspector at /debug/wsrpc, makes
// calls from Go clients (failures, a call back out, an unknown method
// among them), and opens the page: refused without the admin's cookie,
// then, after /login, it shows the peers, each method's numbers and the
// calls per second, updated live. With WSRPC_SCREENSHOTS=1 it runs some
// more traffic for a fuller chart and writes docs/inspector.png.
func TestInspect(t *testing.T) {
	start := time.Now()
	chromium(t)
	s := newInspected(t)
	clients := []*wsrpc.Peer{s.client(t, "ada"), s.client(t, "bob"), s.client(t, "cy")}
	const rounds = 20
	traffic(t, clients, 0, rounds)

	tab := newBrowser(t)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
	}
	// cell is the text of a cell of the methods table.
	cell := func(method, dir, col string) string {
		return fmt.Sprintf(`document.querySelector('#methods tr[data-method=%q][data-dir=%q] .%s')?.textContent`, method, dir, col)
	}

	// The first run on the tab's context starts the browser (see TestChat).
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1200, 900), chromedp.Navigate(s.url+"/debug/wsrpc")); err != nil {
		t.Fatalf("opening the inspector: %v", err)
	}
	wait("refused without the cookie", `window.inspector?.error?.startsWith("Not authorised") &&
		document.getElementById("error").innerText.includes("unauthorized") &&
		document.getElementById("status").textContent === "refused"`)

	do("logging in", chromedp.Navigate(s.url+"/login"))
	wait("the page live", `window.inspector?.ready === true && document.getElementById("status").textContent === "live"`)

	// The methods table: every method, with its counts. There were 20
	// rounds of 3 user.get, 1 math.sum, 1 order.place (5 failing), and
	// 4 rounds with a greet.back (each calling client.hello back out) and
	// an unknown method.
	want := map[string]string{
		cell("user.get", "in", "calls"):       "60",
		cell("user.get", "in", "errors"):      "0",
		cell("math.sum", "in", "calls"):       "20",
		cell("order.place", "in", "calls"):    "20",
		cell("order.place", "in", "errors"):   "5",
		cell("order.place", "in", "rate"):     "25.0%",
		cell("greet.back", "in", "calls"):     "4",
		cell("client.hello", "out", "calls"):  "4",
		cell(inspect.Unknown, "in", "calls"):  "4",
		cell(inspect.Unknown, "in", "errors"): "4",
	}
	var conds []string
	for expr, v := range want {
		conds = append(conds, fmt.Sprintf("%s === %q", expr, v))
	}
	wait("the methods table", strings.Join(conds, " && "))
	for _, col := range []string{"p50", "p90", "p99", "bytes-in", "bytes-out"} {
		var got string
		run(t, tab, "return "+cell("user.get", "in", col)+";", &got)
		if got == "" || got == "–" {
			t.Errorf("user.get %s: %q", col, got)
		}
	}
	var absent bool
	run(t, tab, `return document.querySelector('#methods tr[data-method="admin.drop_tables"]') === null;`, &absent)
	if !absent {
		t.Errorf("an unknown method has a row of its own, not under %s", inspect.Unknown)
	}

	// The peers table: the three clients and the page itself, watching.
	wait("the peers table", `(() => {
		const rows = [...document.querySelectorAll("#peers tbody tr")];
		const names = rows.map((r) => r.querySelector(".name")?.firstChild?.textContent);
		return rows.length === 4 && ["ada", "bob", "cy", "root"].every((n) => names.includes(n)) &&
			rows.every((r) => r.querySelector(".remote").textContent.startsWith("127.0.0.1:")) &&
			rows.some((r) => r.querySelector(".ident").textContent === "map[role:admin user:root]" && r.querySelector(".tag.watch")) &&
			document.getElementById("peer-total").textContent === "4";
	})()`)

	// The chart: drawn from the updates, over 60 points, with every call
	// made so far (the current second is drawn once it has ended).
	total := rounds*5 + 4*3 // user.get ×3, math.sum, order.place; greet.back, client.hello, unknown
	wait("the chart", fmt.Sprintf(`(() => {
		const c = document.getElementById("chart");
		return c.width > 0 && c.dataset.points === "60" && Number(c.dataset.total) >= %d && window.inspector.updates >= 2;
	})()`, total))

	if os.Getenv("WSRPC_SCREENSHOTS") == "1" {
		screenshot(t, tab, clients, wait)
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// screenshot runs 50 s of traffic, of a rate that rises and falls, and
// writes a PNG of the page to docs/inspector.png.
func screenshot(t *testing.T, tab context.Context, clients []*wsrpc.Peer, wait func(what, expr string)) {
	round := 1000
	for sec := range 50 {
		next := time.Now().Add(time.Second)
		n := 3 + int(4*(1+math.Sin(float64(sec)/4)))
		traffic(t, clients, round, n)
		round += n
		time.Sleep(time.Until(next))
	}
	wait("the chart with the traffic", `Number(document.getElementById("chart").dataset.peak) > 10`)
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join("..", "..", "docs", "inspector.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}
