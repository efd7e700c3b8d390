// Package interop_test checks wsrpc against third-party JSON-RPC 2.0 peers:
// the json-rpc-2.0 npm package over ws, in both directions, the
// vscode-jsonrpc npm package for wire cancellation (cancel_test.go), and the
// request and response examples of the JSON-RPC 2.0 specification.
//
// The Node side needs `npm ci` in this directory (CI runs
// `npm ci --prefix test/interop`). Without node or node_modules the Node tests
// skip, except under CI=true, where they fail.
package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		reportSkips()
		os.Exit(code)
	}))
}

// skipped records why Node tests skipped, for reportSkips.
var skipped struct {
	sync.Mutex
	why   string
	count int
}

// reportSkips makes skipped Node tests visible. go test prints only "ok"
// for a passing package, whatever the tests wrote, so the notice goes to the
// terminal when there is one, and to stderr (seen with -v, or on failure)
// in any case.
func reportSkips() {
	skipped.Lock()
	defer skipped.Unlock()
	if skipped.count == 0 {
		return
	}
	notice := fmt.Sprintf("wsrpc/test/interop: %d Node interop tests SKIPPED: %s\n", skipped.count, skipped.why)
	fmt.Fprint(os.Stderr, notice)
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(tty, notice)
		tty.Close()
	}
}

// requireNode returns the path of node, or skips the test (fails it under
// CI=true) when node or the npm dependencies are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	var missing string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node not installed"
	} else {
		for _, pkg := range []string{"json-rpc-2.0", "vscode-jsonrpc", "ws"} {
			if _, err := os.Stat(filepath.Join("node_modules", pkg, "package.json")); err != nil {
				missing = "node_modules/" + pkg + " missing"
				break
			}
		}
	}
	if missing != "" {
		msg := missing + "; install Node.js and run `npm ci` in test/interop (from the repository root: npm ci --prefix test/interop)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		skipped.Lock()
		skipped.why, skipped.count = msg, skipped.count+1
		skipped.Unlock()
		t.Skip(msg)
	}
	return node
}

// startGoServer serves the example server at /rpc on a loopback port and
// returns its ws:// URL. Everything is shut down in t.Cleanup.
func startGoServer(t *testing.T) string {
	t.Helper()
	return serveGo(t, api.NewServer(nil))
}

// serveGo serves srv at /rpc on a loopback port and returns its ws:// URL.
// Everything is shut down in t.Cleanup.
func serveGo(t *testing.T, srv *wsrpc.Server) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx), "wsrpc server shutdown")
		require.NoError(t, hs.Shutdown(ctx), "http server shutdown")
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	return "ws://" + ln.Addr().String() + "/rpc"
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNodeClientAgainstGoServer runs client.mjs (json-rpc-2.0 over ws)
// against the example server and requires every one of its checks to pass.
func TestNodeClientAgainstGoServer(t *testing.T) {
	node := requireNode(t)
	url := startGoServer(t)

	out := strings.TrimRight(runNodeScript(t, node, "client.mjs", url), "\n")
	lines := strings.Split(out, "\n")
	for _, line := range lines {
		t.Log(line)
	}
	require.NotEmpty(t, lines)
	last := lines[len(lines)-1]
	require.Regexp(t, `^[1-9][0-9]* passed, 0 failed$`, last, "summary line")
	for _, line := range lines[:len(lines)-1] {
		require.True(t, strings.HasPrefix(line, "ok - "), "unexpected line: %s", line)
	}
}

// runNodeScript runs `node script args...` to its end, within a minute,
// requires it to succeed, and returns what it printed.
func runNodeScript(t *testing.T, node, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr lockedBuffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	runErr := cmd.Run() // waits for the process, also when ctx kills it
	if s := stderr.String(); s != "" {
		t.Logf("node %s stderr:\n%s", script, s)
	}
	require.NoError(t, runErr, "node %s; stdout:\n%s", script, stdout.String())
	return stdout.String()
}

// nodeServer is a running `node server.mjs` (or another script that prints
// "LISTENING <port>" first and exits when its stdin closes).
type nodeServer struct {
	port    int
	stdin   io.WriteCloser
	exited  chan struct{}
	waitErr error // valid once exited is closed
	stderr  *lockedBuffer
	stop    sync.Once
}

// startNodeServer starts script (server.mjs, vscode_server.mjs, streams.mjs
// serve) with args and reads the port from its first line. The process is
// stopped (stdin closed, then killed if it lingers) and waited for in
// t.Cleanup.
func startNodeServer(t *testing.T, node, script string, args ...string) *nodeServer {
	t.Helper()
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	ns := &nodeServer{stdin: stdin, exited: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = ns.stderr
	require.NoError(t, cmd.Start())

	first := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-readDone // all reads from the pipe are done before Wait
		ns.waitErr = cmd.Wait()
		close(ns.exited)
	}()

	t.Cleanup(func() {
		if !ns.stopAndWait(10 * time.Second) {
			_ = cmd.Process.Kill()
			<-ns.exited
			t.Errorf("node %s did not exit after its stdin was closed; killed it", script)
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, ns.stderr.String())
		}
	})

	select {
	case line, ok := <-first:
		require.True(t, ok, "node %s printed nothing; stderr:\n%s", script, ns.stderr.String())
		m := regexp.MustCompile(`^LISTENING ([0-9]+)$`).FindStringSubmatch(line)
		require.NotNil(t, m, "first line of node %s: %q", script, line)
		ns.port, err = strconv.Atoi(m[1])
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not print its port in 20s; stderr:\n%s", script, ns.stderr.String())
	}
	return ns
}

// stopAndWait closes the server's stdin, which makes it exit, and reports
// whether it exited within d.
func (ns *nodeServer) stopAndWait(d time.Duration) bool {
	ns.stop.Do(func() { _ = ns.stdin.Close() })
	select {
	case <-ns.exited:
		return true
	case <-time.After(d):
		return false
	}
}

type mulParams struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// TestGoClientAgainstNodeServer dials server.mjs (json-rpc-2.0 over ws) with
// a wsrpc peer that also serves methods, which Node calls back over the same
// socket.
func TestGoClientAgainstNodeServer(t *testing.T) {
	node := requireNode(t)
	ns := startNodeServer(t, node, "server.mjs")

	notes := make(chan json.RawMessage, 8)
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "go.mul", func(_ context.Context, p mulParams) (float64, error) {
		return p.A * p.B, nil
	})
	wsrpc.Register(methods, "go.fail", func(_ context.Context, _ json.RawMessage) (any, error) {
		return nil, &wsrpc.Error{Code: -32077, Message: "nope"}
	})
	wsrpc.Register(methods, "go.fail.data", func(_ context.Context, _ json.RawMessage) (any, error) {
		return nil, &wsrpc.Error{Code: -32078, Message: "nope, with data", Data: json.RawMessage(`{"why":"go says no","n":[1,2]}`)}
	})
	wsrpc.Register(methods, "go.note", func(_ context.Context, p json.RawMessage) (any, error) {
		notes <- p
		return nil, nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer, err := wsrpc.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", ns.port), &wsrpc.DialOptions{Methods: methods})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = peer.Close()
		}
	})

	t.Run("add positional", func(t *testing.T) {
		var sum int
		require.NoError(t, peer.Call(ctx, "add", []int{2, 3}, &sum))
		require.Equal(t, 5, sum)
	})

	t.Run("greet named", func(t *testing.T) {
		var s string
		require.NoError(t, peer.Call(ctx, "greet", map[string]string{"name": "wsrpc"}, &s))
		require.Equal(t, "hello wsrpc", s)
	})

	t.Run("echo", func(t *testing.T) {
		in := map[string]any{"text": "ünïcødé \u2028 \"q\" \\ 😀", "list": []any{1.5, true, nil, "x"}}
		var out map[string]any
		require.NoError(t, peer.Call(ctx, "echo", in, &out))
		require.Equal(t, in, out)
	})

	t.Run("boom error", func(t *testing.T) {
		err := peer.Call(ctx, "boom", nil, nil)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.EqualValues(t, -32042, e.Code)
		require.Equal(t, "boom", e.Message)
		require.JSONEq(t, `{"detail":"kaboom","n":42}`, string(e.Data))
	})

	t.Run("unknown method", func(t *testing.T) {
		err := peer.Call(ctx, "no.such.method", []int{1}, nil)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.EqualValues(t, wsrpc.CodeMethodNotFound, e.Code)
	})

	t.Run("batch and notifications", func(t *testing.T) {
		// Two calls: json-rpc-2.0 wrongly answers a batch that yields a
		// single response with a bare object instead of a one-element array,
		// so a one-call batch is not sent to it.
		var sum int
		var greeting string
		var calls []*wsrpc.BatchCall
		err := peer.Batch(ctx, func(b *wsrpc.Batch) {
			calls = append(calls, b.Call("add", []int{40, 2}, &sum))
			b.Notify("log", map[string]string{"msg": "from batch"})
			calls = append(calls, b.Call("greet", map[string]string{"name": "batch"}, &greeting))
		})
		require.NoError(t, err)
		for i, c := range calls {
			require.NoError(t, c.Err(), "batch call %d", i)
		}
		require.Equal(t, 42, sum)
		require.Equal(t, "hello batch", greeting)

		// A single notification; Node handles messages in arrival order, so
		// getlog sees both.
		require.NoError(t, peer.Notify(ctx, "log", map[string]string{"msg": "single"}))
		var log []string
		require.NoError(t, peer.Call(ctx, "getlog", nil, &log))
		require.Equal(t, []string{"from batch", "single"}, log)
	})

	t.Run("node calls go method positional", func(t *testing.T) {
		var r float64
		require.NoError(t, peer.Call(ctx, "callme", map[string]any{"method": "go.mul", "params": []int{6, 7}}, &r))
		require.Equal(t, 42.0, r)
	})

	t.Run("node calls go method named", func(t *testing.T) {
		var r float64
		require.NoError(t, peer.Call(ctx, "callme", map[string]any{"method": "go.mul", "params": map[string]int{"a": 2, "b": 21}}, &r))
		require.Equal(t, 42.0, r)
	})

	t.Run("node calls go method that fails", func(t *testing.T) {
		err := peer.Call(ctx, "callme", map[string]any{"method": "go.fail", "params": []int{}}, nil)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.EqualValues(t, -32077, e.Code)
		require.Equal(t, "nope", e.Message)
		require.Empty(t, e.Data)
	})

	t.Run("node calls go method that fails with data", func(t *testing.T) {
		err := peer.Call(ctx, "callme", map[string]any{"method": "go.fail.data", "params": map[string]any{}}, nil)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.EqualValues(t, -32078, e.Code)
		require.Equal(t, "nope, with data", e.Message)
		require.JSONEq(t, `{"why":"go says no","n":[1,2]}`, string(e.Data))
	})

	t.Run("node calls missing go method", func(t *testing.T) {
		err := peer.Call(ctx, "callme", map[string]any{"method": "go.missing", "params": []int{1}}, nil)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.EqualValues(t, wsrpc.CodeMethodNotFound, e.Code)
	})

	t.Run("node calls go concurrently", func(t *testing.T) {
		const n = 8
		results := make([]float64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = peer.Call(ctx, "callme", map[string]any{"method": "go.mul", "params": []int{i, 10}}, &results[i])
			})
		}
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, float64(i*10), results[i], "call %d", i)
		}
	})

	t.Run("node notifies go", func(t *testing.T) {
		var ok bool
		require.NoError(t, peer.Call(ctx, "notifyme", map[string]any{"method": "go.note", "params": map[string]int{"seq": 1}}, &ok))
		require.True(t, ok)
		select {
		case p := <-notes:
			require.JSONEq(t, `{"seq":1}`, string(p))
		case <-ctx.Done():
			t.Fatal("go.note notification never arrived")
		}
	})

	closed = true
	require.NoError(t, peer.Close())
	require.True(t, ns.stopAndWait(10*time.Second), "node server.mjs did not exit after its stdin was closed")
	require.NoError(t, ns.waitErr, "node server.mjs exit status; stderr:\n%s", ns.stderr.String())
}

// A transcript step: one request frame and the reply expected for it, or no
// reply at all when reply is nil.
type step struct {
	line    int
	request string
	reply   []byte
}

// readTranscript parses a transcript: "--> <text>" lines are sent as they are
// (they may be invalid JSON on purpose), "<-- <json>" lines are the expected
// reply to the request before them. Blank lines and lines starting with "#"
// are ignored.
func readTranscript(t *testing.T, path string) []step {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var steps []step
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "--> "):
			steps = append(steps, step{line: i + 1, request: strings.TrimPrefix(line, "--> ")})
		case strings.HasPrefix(line, "<-- "):
			require.NotEmpty(t, steps, "%s:%d: reply before any request", path, i+1)
			last := &steps[len(steps)-1]
			require.Nil(t, last.reply, "%s:%d: second reply for one request", path, i+1)
			reply := []byte(strings.TrimPrefix(line, "<-- "))
			require.True(t, json.Valid(reply), "%s:%d: expected reply is not valid JSON", path, i+1)
			last.reply = reply
		default:
			t.Fatalf("%s:%d: line must start with \"--> \", \"<-- \" or \"#\": %q", path, i+1, line)
		}
	}
	require.NotEmpty(t, steps, "%s: no requests", path)
	return steps
}

// canonical decodes a JSON text for comparison: numbers become exact
// rationals, and the message of an error with a code reserved by the
// specification (-32768 to -32000) is reduced to "<non-empty>" when it is a
// non-empty string, since the specification fixes those codes but not the
// wording of their messages. A top-level array (a batch reply) is sorted,
// because batch replies may come in any order.
func canonical(t *testing.T, text []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "decode %s", text)
	require.False(t, dec.More(), "trailing data after %s", text)
	v = normalize(v)
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			reduceReservedMessage(e)
		}
		slices.SortFunc(arr, func(a, b any) int {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return bytes.Compare(ja, jb)
		})
	} else {
		reduceReservedMessage(v)
	}
	return v
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return "bad number " + string(x)
		}
		return "number:" + r.RatString()
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

func reduceReservedMessage(resp any) {
	obj, ok := resp.(map[string]any)
	if !ok {
		return
	}
	e, ok := obj["error"].(map[string]any)
	if !ok {
		return
	}
	code, ok := e["code"].(string)
	if !ok || !strings.HasPrefix(code, "number:") {
		return
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(code, "number:"), 10, 64)
	if err != nil || n < -32768 || n > -32000 {
		return
	}
	if msg, ok := e["message"].(string); ok && msg != "" {
		e["message"] = "<non-empty>"
	}
}

// TestSpecTranscripts replays every request/response example of the JSON-RPC
// 2.0 specification (testdata/spec) over a raw WebSocket against the example
// server, comparing replies semantically.
func TestSpecTranscripts(t *testing.T) {
	url := startGoServer(t)
	files, err := filepath.Glob(filepath.Join("testdata", "spec", "*.txt"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 12, "spec transcripts missing")

	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			steps := readTranscript(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, url, nil)
			require.NoError(t, err)
			defer c.CloseNow()
			c.SetReadLimit(16 << 20)

			read := func() []byte {
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				defer rcancel()
				typ, data, err := c.Read(rctx)
				require.NoError(t, err, "waiting for a reply")
				require.Equal(t, websocket.MessageText, typ, "reply frame type")
				return data
			}

			// ping sends a get_data request and reads frames until its reply;
			// it returns every other frame read meanwhile (replies that
			// should not have been sent).
			pings := 0
			ping := func() (strays []string) {
				pings++
				id := fmt.Sprintf("interop-ping-%d", pings)
				req := fmt.Sprintf(`{"jsonrpc":"2.0","method":"get_data","id":%q}`, id)
				want := fmt.Sprintf(`{"jsonrpc":"2.0","result":["hello",5],"id":%q}`, id)
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(req)))
				for range 100 {
					got := read()
					var probe struct {
						ID json.RawMessage `json:"id"`
					}
					if json.Unmarshal(got, &probe) == nil && string(probe.ID) == strconv.Quote(id) {
						require.Equal(t, canonical(t, []byte(want)), canonical(t, got), "reply to %s", req)
						return strays
					}
					strays = append(strays, string(got))
				}
				t.Fatalf("no reply to %s among 100 frames", req)
				return nil
			}

			for _, s := range steps {
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(s.request)), "%s:%d: send", path, s.line)
				t.Logf("--> %s", s.request)
				if s.reply != nil {
					got := read()
					t.Logf("<-- %s", got)
					require.Equal(t, canonical(t, s.reply), canonical(t, got),
						"%s:%d: reply to %s\nwant %s\ngot  %s", path, s.line, s.request, s.reply, got)
					continue
				}
				// No reply expected: a follow-up request's reply must be the
				// next frame.
				require.Empty(t, ping(), "%s:%d: expected no reply to %s", path, s.line, s.request)
			}
			// One more round trip catches a reply that should not have been
			// sent but came late (the server handles requests concurrently).
			require.Empty(t, ping(), "%s: unexpected frames at the end", path)
			require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
		})
	}
}
