package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

// hangGuard bounds every run of the binary and every wait of a test, only
// so that a bug fails the test instead of hanging it.
const hangGuard = 2 * time.Minute

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// build compiles the command into a temporary directory of t.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wsrpc")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serve starts srv behind an httptest server on 127.0.0.1 at /rpc and
// returns its ws:// and http:// URLs. It shuts both down when t ends.
func serve(t *testing.T, srv *wsrpc.Server) (wsURL, httpURL string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/rpc", ts.URL + "/rpc"
}

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// exe runs the binary with args and stdin, and waits for it.
func exe(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("wsrpc %q: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// expect fails t unless r exited with code and its stdout is stdout.
func expect(t *testing.T, r result, code int, stdout string) {
	t.Helper()
	if r.code != code || r.stdout != stdout {
		t.Fatalf("got exit %d, stdout %q (stderr %q); want exit %d, stdout %q",
			r.code, r.stdout, r.stderr, code, stdout)
	}
}

// expectStderr fails t unless r exited with code and its stderr holds
// every one of parts.
func expectStderr(t *testing.T, r result, code int, parts ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit %d (stdout %q, stderr %q); want %d", r.code, r.stdout, r.stderr, code)
	}
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Fatalf("stderr %q does not contain %q", r.stderr, p)
		}
	}
}

// closedPort returns the address of a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listening is a running "wsrpc listen".
type listening struct {
	t      *testing.T
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan string
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listen starts "wsrpc listen args...", its stdout lines going to a
// channel.
func listen(t *testing.T, bin string, args ...string) *listening {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	cmd := exec.CommandContext(ctx, bin, append([]string{"listen"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l := &listening{t: t, cmd: cmd, cancel: cancel, lines: make(chan string, 64), stderr: &syncBuffer{}}
	cmd.Stderr = l.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(l.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		// Only if the test failed part way: end the process.
		cancel()
		for range l.lines {
		}
		cmd.Wait()
	})
	return l
}

// next returns the next line the listener printed.
func (l *listening) next() string {
	l.t.Helper()
	line, ok := <-l.lines
	if !ok {
		l.t.Fatalf("listen ended early; stderr %q", l.stderr.String())
	}
	return line
}

// wait waits for the listener to end, and returns its exit status and the
// lines it printed that were not read yet.
func (l *listening) wait() (int, []string) {
	l.t.Helper()
	var rest []string
	for line := range l.lines {
		rest = append(rest, line)
	}
	err := l.cmd.Wait()
	l.cancel()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), rest
	case err != nil:
		l.t.Fatal(err)
	}
	return 0, rest
}

// lineOf decodes a line of listen output.
func lineOf(t *testing.T, line string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

// connected returns the peer a server's OnConnect hands over.
func connected(t *testing.T, peers <-chan *wsrpc.Peer, l *listening) *wsrpc.Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	select {
	case p := <-peers:
		return p
	case <-ctx.Done():
		t.Fatalf("the listener never connected; stderr %q", l.stderr.String())
		return nil
	}
}

func TestCLI(t *testing.T) {
	bin := build(t)
	ws, post := serve(t, api.NewServer(nil))

	t.Run("call array params", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", ws, "subtract", "[42, 23]"), 0, "19\n")
	})
	t.Run("call object params", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", ws, "subtract", `{"minuend": 42, "subtrahend": 23}`), 0, "19\n")
	})
	t.Run("call no params", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", ws, "get_data"), 0, "[\n  \"hello\",\n  5\n]\n")
	})
	t.Run("call params from file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "params.json")
		if err := os.WriteFile(file, []byte("[10,\n 4]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		expect(t, exe(t, bin, "", "call", ws, "subtract", "@"+file), 0, "6\n")
	})
	t.Run("call params from missing file", func(t *testing.T) {
		t.Parallel()
		expectStderr(t, exe(t, bin, "", "call", ws, "subtract", "@"+filepath.Join(t.TempDir(), "none")), 2, "reading params")
	})
	t.Run("call params from stdin", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, `{"minuend": 1, "subtrahend": 3}`+"\n", "call", ws, "subtract", "-"), 0, "-2\n")
	})
	t.Run("call indented and raw", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", ws, "echo", `{"a":[1,2],"b":"<&>"}`), 0,
			"{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"<&>\"\n}\n")
		expect(t, exe(t, bin, "", "call", "-i", ws, "echo", `{"a":[1,2],"b":"<&>"}`), 0, `{"a":[1,2],"b":"<&>"}`+"\n")
	})
	t.Run("call flags after arguments", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", ws, "echo", `[1, 2]`, "-i", "-timeout", "1m"), 0, "[1, 2]\n")
	})
	t.Run("call headers", func(t *testing.T) {
		t.Parallel()
		expectStderr(t, exe(t, bin, "", "call", ws, "admin.stats"), 1, "-32002")
		r := exe(t, bin, "", "call", "-H", "Authorization: Bearer "+api.AdminToken, "-H", "X-Other: 1", ws, "admin.stats")
		if r.code != 0 || !strings.Contains(r.stdout, `"peers"`) {
			t.Fatalf("admin.stats with the token: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("call JSON-RPC error", func(t *testing.T) {
		t.Parallel()
		r := exe(t, bin, "", "call", ws, "fail", `{"code": 4001, "message": "out of coffee", "data": {"cups": 0}}`)
		expect(t, r, 1, "")
		expectStderr(t, r, 1, "4001", "out of coffee", `{"cups":0}`)
		expectStderr(t, exe(t, bin, "", "call", ws, "no.such.method"), 1, "-32601")
		expectStderr(t, exe(t, bin, "", "call", ws, "subtract", `["a", 1]`), 1, "-32602")
	})
	t.Run("call over HTTP POST", func(t *testing.T) {
		t.Parallel()
		expect(t, exe(t, bin, "", "call", post, "subtract", "[42, 23]"), 0, "19\n")
		expectStderr(t, exe(t, bin, "", "call", post, "no.such.method", "[]"), 1, "-32601")
		expectStderr(t, exe(t, bin, "", "call", "-H", "Authorization: Bearer nope", post, "admin.stats"), 1, "-32002")
	})
	t.Run("refused connection", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		expectStderr(t, exe(t, bin, "", "call", "ws://"+addr+"/rpc", "subtract", "[1, 2]"), 3)
		expectStderr(t, exe(t, bin, "", "call", "http://"+addr+"/rpc", "subtract", "[1, 2]"), 3)
		expectStderr(t, exe(t, bin, "", "batch", "ws://"+addr+"/rpc"), 2) // no calls: usage first
		expectStderr(t, exe(t, bin, "sum [1]\n", "batch", "ws://"+addr+"/rpc"), 3)
		expectStderr(t, exe(t, bin, "", "listen", "ws://"+addr+"/rpc"), 3)
	})
	t.Run("HTTP refusal", func(t *testing.T) {
		t.Parallel()
		expectStderr(t, exe(t, bin, "", "call", "-origin", "http://evil.example", ws, "subtract", "[1, 2]"), 3, "403")
		expectStderr(t, exe(t, bin, "", "call", "-origin", "http://evil.example", post, "subtract", "[1, 2]"), 3, "403")
		expectStderr(t, exe(t, bin, "", "call", strings.TrimSuffix(post, "/rpc")+"/nowhere", "subtract", "[1, 2]"), 3, "404")
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		expectStderr(t, exe(t, bin, "", "call", "-timeout", "50ms", ws, "sleep", `{"ms": 600000}`), 3, "deadline")
	})
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{},
			{"bogus"},
			{"call"},
			{"call", ws},
			{"call", ws, "subtract", "[1]", "extra"},
			{"call", "ftp://example.com/rpc", "subtract"},
			{"call", ws, "subtract", "not json"},
			{"call", ws, "subtract", "5"},
			{"call", "-nosuchflag", ws, "subtract"},
			{"call", "-H", "no colon", ws, "subtract"},
			{"notify", ws},
			{"batch"},
			{"listen", post},
			{"listen", ws, "-reply", "x=not json"},
		} {
			if r := exe(t, bin, "", args...); r.code != 2 {
				t.Errorf("wsrpc %q: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
			}
		}
		expectStderr(t, exe(t, bin, "x\n{nope\n", "batch", ws), 2, "line 2")
	})
	t.Run("help", func(t *testing.T) {
		t.Parallel()
		r := exe(t, bin, "", "-h")
		for _, s := range []string{"wsrpc call ", "wsrpc notify ", "wsrpc batch ", "wsrpc listen ", "Exit status"} {
			if r.code != 0 || !strings.Contains(r.stdout, s) {
				t.Fatalf("help: exit %d, no %q in %q", r.code, s, r.stdout)
			}
		}
		if r := exe(t, bin, "", "listen", "-h"); r.code != 0 || !strings.Contains(r.stdout, "-exec") {
			t.Fatalf("listen -h: exit %d, stdout %q", r.code, r.stdout)
		}
	})
	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		in := strings.Join([]string{
			"# a comment, then a blank line",
			"",
			"sum [1, 2, 4]",
			`{"method": "update", "params": [7], "notify": true}`,
			"no.such.method",
			"notify_hello\t[1]",
			`{"method": "subtract", "params": {"minuend": 42, "subtrahend": 23}}`,
			`fail {"code": 7, "message": "seven", "data": "x"}`,
		}, "\n")
		want := `{"method":"sum","result":7}` + "\n" +
			`{"method":"no.such.method","error":{"code":-32601,"message":"method not found: \"no.such.method\""}}` + "\n" +
			`{"method":"notify_hello","result":null}` + "\n" +
			`{"method":"subtract","result":19}` + "\n" +
			`{"method":"fail","error":{"code":7,"message":"seven","data":"x"}}` + "\n"
		expect(t, exe(t, bin, in, "batch", ws), 1, want)
		expect(t, exe(t, bin, in, "batch", post), 1, want)
		expect(t, exe(t, bin, "sum [1, 2]\nget_data\n", "batch", post), 0,
			`{"method":"sum","result":3}`+"\n"+`{"method":"get_data","result":["hello",5]}`+"\n")
		expect(t, exe(t, bin, `{"method": "update", "notify": true}`, "batch", ws), 0, "")
	})
	t.Run("listen calls the server", func(t *testing.T) {
		t.Parallel()
		l := listen(t, bin, "-reply", `client.greet="hello"`,
			"-call", `reverse.call {"method": "client.greet", "params": ["you"]}`,
			"-call", `reverse.call {"method": "client.unknown"}`, ws)
		in := lineOf(t, l.next())
		if string(in["method"]) != `"client.greet"` || string(in["params"]) != `["you"]` || in["id"] == nil {
			t.Fatalf("incoming call line: %v", in)
		}
		if got, want := l.next(), `{"method":"reverse.call","result":"hello"}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		// The unknown method's call is printed too, then answered -32601.
		if got := l.next(); !strings.Contains(got, `"method":"client.unknown"`) {
			t.Fatalf("the call of an unknown method, as received: %s", got)
		}
		if got := l.next(); !strings.Contains(got, `"code":-32601`) {
			t.Fatalf("the call of an unknown method: %s", got)
		}
		l.cmd.Process.Signal(os.Interrupt)
		if code, rest := l.wait(); code != 0 || len(rest) != 0 {
			t.Fatalf("after SIGINT: exit %d, lines %q, stderr %q", code, rest, l.stderr.String())
		}
	})
	t.Run("listen reply", func(t *testing.T) {
		t.Parallel()
		testListenReply(t, bin)
	})
	t.Run("listen exec", func(t *testing.T) {
		t.Parallel()
		testListenExec(t, bin)
	})
	t.Run("notify", func(t *testing.T) {
		t.Parallel()
		testNotify(t, bin)
	})
	t.Run("discover", func(t *testing.T) {
		t.Parallel()
		testDiscover(t, bin, ws)
	})
}

// testDiscover runs "wsrpc discover" against a server whose rpc.discover
// answers a fixed document (the openrpc module builds real ones; the
// core module cannot import it), and against one without rpc.discover
// (noDiscover).
func testDiscover(t *testing.T, bin, noDiscover string) {
	const doc = `{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[{"name":"m","params":[]}]}`
	m := wsrpc.NewMethods()
	m.Discover(func(context.Context, *wsrpc.Request) (any, error) { return json.RawMessage(doc), nil })
	ws, post := serve(t, wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m}))
	indented := "{\n  \"openrpc\": \"1.3.2\",\n  \"info\": {\n    \"title\": \"t\",\n    \"version\": \"1\"\n  },\n" +
		"  \"methods\": [\n    {\n      \"name\": \"m\",\n      \"params\": []\n    }\n  ]\n}\n"
	expect(t, exe(t, bin, "", "discover", ws), 0, indented)
	expect(t, exe(t, bin, "", "discover", post), 0, indented)
	expect(t, exe(t, bin, "", "discover", "-i", ws), 0, doc+"\n")
	expectStderr(t, exe(t, bin, "", "discover", noDiscover), 1, "-32601", "rpc.discover")
	expectStderr(t, exe(t, bin, "", "discover"), 2)
	expectStderr(t, exe(t, bin, "", "discover", ws, "extra"), 2)
	expectStderr(t, exe(t, bin, "", "discover", "ftp://example.com/rpc"), 2)
	if r := exe(t, bin, "", "-h"); !strings.Contains(r.stdout, "wsrpc discover ") {
		t.Fatalf("help does not list discover: %q", r.stdout)
	}
}

// testListenReply has a server call and notify "wsrpc listen -reply".
func testListenReply(t *testing.T, bin string) {
	peers := make(chan *wsrpc.Peer, 1)
	ws, _ := serve(t, wsrpc.NewServer(&wsrpc.ServerOptions{OnConnect: func(p *wsrpc.Peer) { peers <- p }}))
	l := listen(t, bin, "-reply", `greet={"hi": "there"}`, "-method", "tick", ws)
	p := connected(t, peers, l)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	var res json.RawMessage
	if err := p.Call(ctx, "greet", []string{"gopher"}, &res); err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"hi":"there"}` {
		t.Fatalf("greet answered %s", res)
	}
	if err := p.Notify(ctx, "tick", []int{1}); err != nil {
		t.Fatal(err)
	}
	// A call to a name the listener was not told about is printed, and
	// answered method not found.
	if err := p.Call(ctx, "other", nil, nil); !errors.Is(err, wsrpc.ErrMethodNotFound) {
		t.Fatalf("other: %v", err)
	}
	// -method without -exec answers null.
	if err := p.Call(ctx, "tick", []int{2}, &res); err != nil || string(res) != "null" {
		t.Fatalf("tick as a call: %s, %v", res, err)
	}

	// A notification and a call have no order between them.
	want := map[string]bool{
		`{"jsonrpc":"2.0","method":"greet","params":["gopher"],"id":ID}`: true,
		`{"jsonrpc":"2.0","method":"tick","params":[1]}`:                 true,
		`{"jsonrpc":"2.0","method":"tick","params":[2],"id":ID}`:         true,
		`{"jsonrpc":"2.0","method":"other","id":ID}`:                     true,
	}
	for len(want) > 0 {
		line := l.next()
		m := lineOf(t, line)
		if id := m["id"]; id != nil {
			line = strings.Replace(line, `"id":`+string(id), `"id":ID`, 1)
		}
		if !want[line] {
			t.Fatalf("unexpected line %s", line)
		}
		delete(want, line)
	}
	l.cmd.Process.Signal(os.Interrupt)
	if code, rest := l.wait(); code != 0 || len(rest) != 0 {
		t.Fatalf("after SIGINT: exit %d, lines %q, stderr %q", code, rest, l.stderr.String())
	}
}

// execScript is the -exec command of testListenExec.
const execScript = `case "$WSRPC_METHOD" in
fail) echo oops >&2; exit 3;;
custom) echo '{"code": 4002, "message": "custom says no", "data": [1]}'; exit 1;;
garbage) echo 'not json';;
empty) exit 0;;
esac
printf '{"method": "%s", "id": %s, "params": %s}' "$WSRPC_METHOD" "$WSRPC_ID" "$(cat)"`

// testListenExec has a server call "wsrpc listen -exec", then close the
// connection, which ends the listener.
func testListenExec(t *testing.T, bin string) {
	peers := make(chan *wsrpc.Peer, 1)
	ws, _ := serve(t, wsrpc.NewServer(&wsrpc.ServerOptions{OnConnect: func(p *wsrpc.Peer) { peers <- p }}))
	args := []string{"-exec", execScript}
	for _, m := range []string{"add", "fail", "custom", "garbage", "empty"} {
		args = append(args, "-method", m)
	}
	l := listen(t, bin, append(args, ws)...)
	p := connected(t, peers, l)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	var res struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
		Params json.RawMessage `json:"params"`
	}
	if err := p.Call(ctx, "add", []int{1, 2}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Method != "add" || string(res.Params) != "[1,2]" || len(res.ID) == 0 {
		t.Fatalf("add answered %+v", res)
	}

	var rpcErr *wsrpc.Error
	err := p.Call(ctx, "fail", map[string]int{"x": 1}, nil)
	if !errors.As(err, &rpcErr) || rpcErr.Code != codeExecFailed ||
		!strings.Contains(string(rpcErr.Data), `"status":3`) || !strings.Contains(string(rpcErr.Data), `"stderr":"oops"`) {
		t.Fatalf("fail: %v (data %s)", err, dataOf(rpcErr))
	}
	err = p.Call(ctx, "custom", nil, nil)
	if !errors.As(err, &rpcErr) || rpcErr.Code != 4002 || rpcErr.Message != "custom says no" || string(rpcErr.Data) != "[1]" {
		t.Fatalf("custom: %v (data %s)", err, dataOf(rpcErr))
	}
	err = p.Call(ctx, "garbage", nil, nil)
	if !errors.Is(err, wsrpc.ErrInternal) {
		t.Fatalf("garbage: %v", err)
	}
	var empty json.RawMessage
	if err := p.Call(ctx, "empty", nil, &empty); err != nil || string(empty) != "null" {
		t.Fatalf("empty: %s, %v", empty, err)
	}

	seen := map[string]bool{}
	for range 5 {
		var m struct{ Method string }
		json.Unmarshal([]byte(l.next()), &m)
		seen[m.Method] = true
	}
	if len(seen) != 5 {
		t.Fatalf("lines for %v, want one for each of the 5 methods", seen)
	}
	if !strings.Contains(l.stderr.String(), "oops") {
		t.Fatalf("the command's stderr was not passed on: %q", l.stderr.String())
	}

	// The server closes the connection: the listener ends.
	p.Close()
	if code, rest := l.wait(); code != 0 || len(rest) != 0 || !strings.Contains(l.stderr.String(), "connection closed") {
		t.Fatalf("after the server closed: exit %d, lines %q, stderr %q", code, rest, l.stderr.String())
	}
}

// dataOf returns the data of e, if any.
func dataOf(e *wsrpc.Error) string {
	if e == nil {
		return ""
	}
	return string(e.Data)
}

// testNotify checks that notify delivers its params: over HTTP POST to a
// Server, whose handler has run when the POST is answered; over WebSocket
// to a bare WebSocket endpoint that records the message. (A wsrpc Server
// may drop a notification still queued when the connection closes, and
// notify closes as soon as the message is written, so a Server's handler
// is no reliable witness of the WebSocket case.)
func testNotify(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	got := make(chan string, 4)
	m := wsrpc.NewMethods()
	m.HandleRaw("note", func(_ context.Context, params json.RawMessage) (any, error) {
		got <- string(compact(params))
		return nil, nil
	})
	_, post := serve(t, wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m}))
	expect(t, exe(t, bin, "", "notify", post, "note", `{"n": [1, 2, 3]}`), 0, "")
	select {
	case params := <-got:
		if params != `{"n":[1,2,3]}` {
			t.Fatalf("note got %s", params)
		}
	case <-ctx.Done():
		t.Fatal("the notification never arrived")
	}

	messages := make(chan []byte, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			close(messages)
			return
		}
		defer c.CloseNow()
		_, msg, err := c.Read(r.Context())
		if err != nil {
			close(messages)
			return
		}
		messages <- msg
		c.Read(r.Context()) // answers the client's close
	}))
	defer ts.Close()
	expect(t, exe(t, bin, "", "notify", "ws"+strings.TrimPrefix(ts.URL, "http"), "note", `{"n": [1, 2, 3]}`), 0, "")
	var note struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
		ID      json.RawMessage `json:"id"`
	}
	var msg []byte
	select {
	case msg = <-messages:
	case <-ctx.Done():
		t.Fatal("the WebSocket endpoint never got a message")
	}
	if err := json.Unmarshal(msg, &note); err != nil {
		t.Fatalf("%q: %v", msg, err)
	}
	if note.JSONRPC != "2.0" || note.Method != "note" || string(compact(note.Params)) != `{"n":[1,2,3]}` || note.ID != nil {
		t.Fatalf("the notification sent: %+v", note)
	}
}
