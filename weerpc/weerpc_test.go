package weerpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
	"github.com/wsrpc/wsrpc/weerpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- harness ----

// serve starts a loopback server with a Handler configured by opts and
// returns its URL.
func serve(t *testing.T, opts *weerpc.Options) string {
	t.Helper()
	srv := httptest.NewServer(weerpc.NewHandler(opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

// answer is a decoded weeRPC answer, with what came with it.
type answer struct {
	Status  int
	Header  http.Header
	Raw     string
	Fields  map[string]json.RawMessage
	OK      bool
	Message string
	Data    any
}

// post sends body to url as a weeRPC call; edit may change the request
// first (headers, Host, method).
func post(t *testing.T, url, body string, edit ...func(*http.Request)) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for _, e := range edit {
		e(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "answer %s", raw)
	require.NoError(t, json.Unmarshal(raw, &a.Fields), "answer %s", raw)
	require.Len(t, a.Fields, 4, "the four members: %s", raw)
	require.NoError(t, json.Unmarshal(a.Fields["ok"], &a.OK), "ok: %s", raw)
	var msg *string
	require.NoError(t, json.Unmarshal(a.Fields["message"], &msg), "message: %s", raw)
	require.NotNil(t, msg, "message must be a string: %s", raw)
	a.Message = *msg
	require.NoError(t, json.Unmarshal(a.Fields["data"], &a.Data))
	return a
}

// version returns the version member of an answer: its name and value as
// written.
func (a answer) version() string {
	for _, name := range []string{"weerpc", "wrpc", "frpc"} {
		if v, ok := a.Fields[name]; ok {
			return name + ":" + string(v)
		}
	}
	return ""
}

func header(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

// methods is the table the tests serve: the example contract, the
// functions of Flask-RPC's examples, and some of our own.
func methods() *wsrpc.Methods {
	m := api.Methods()
	wsrpc.Register(m, "add_numbers", func(_ context.Context, ns []float64) (float64, error) {
		var s float64
		for _, n := range ns {
			s += n
		}
		return s, nil
	})
	wsrpc.Register(m, "add_string", func(_ context.Context, s string) (string, error) {
		return "Hello " + s + "!", nil
	})
	wsrpc.Register(m, "session", func(ctx context.Context, _ any) (any, error) {
		if s, ok := weerpc.SessionFromContext(ctx).(weerpc.Values); ok {
			return s, nil
		}
		return nil, nil
	})
	wsrpc.Register(m, "zero", func(context.Context, any) (int, error) { return 0, nil })
	wsrpc.Register(m, "no", func(context.Context, any) (bool, error) { return false, nil })
	wsrpc.Register(m, "empty_string", func(context.Context, any) (string, error) { return "", nil })
	wsrpc.Register(m, "empty_list", func(context.Context, any) ([]int, error) { return []int{}, nil })
	wsrpc.Register(m, "empty_object", func(context.Context, any) (map[string]int, error) { return map[string]int{}, nil })
	wsrpc.Register(m, "nothing", func(context.Context, any) (any, error) { return nil, nil })
	wsrpc.Register(m, "crash", func(context.Context, any) (any, error) {
		return nil, errors.New("secret: /etc/passwd at main.go:12")
	})
	wsrpc.Register(m, "panic", func(context.Context, any) (any, error) { panic("secret panic value") })
	wsrpc.Register(m, "unencodable", func(context.Context, any) (any, error) { return make(chan int), nil })
	// params answers the params it was called with, as raw JSON (null for
	// none).
	m.HandleRaw("params", func(_ context.Context, params json.RawMessage) (any, error) {
		if params == nil {
			return "none", nil
		}
		return json.RawMessage(append([]byte(nil), params...)), nil
	})
	return m
}

// ---- transcripts ----

type exchange struct {
	line          int
	request, want string
}

// readTranscript reads the "-->" and "<--" pairs of a file in testdata.
func readTranscript(t *testing.T, path string) []exchange {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []exchange
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "--> "):
			out = append(out, exchange{line: n, request: line[4:]})
		case strings.HasPrefix(line, "<-- "):
			require.NotEmpty(t, out, "%s:%d: an answer without a request", path, n)
			require.Empty(t, out[len(out)-1].want, "%s:%d: two answers", path, n)
			out[len(out)-1].want = line[4:]
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			t.Fatalf("%s:%d: not a transcript line: %q", path, n, line)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestTranscripts replays testdata: the examples of Flask-RPC's and
// Quart-RPC's documentation (docs.txt), and this package's own (ours.txt).
func TestTranscripts(t *testing.T) {
	t.Parallel()
	url := serve(t, &weerpc.Options{Methods: methods()})
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			steps := readTranscript(t, path)
			require.NotEmpty(t, steps)
			for _, s := range steps {
				require.NotEmpty(t, s.want, "%s:%d: no answer", path, s.line)
				got := post(t, url, s.request)
				assert.Equal(t, http.StatusOK, got.Status, "%s:%d", path, s.line)
				var want map[string]any
				require.NoError(t, json.Unmarshal([]byte(s.want), &want), "%s:%d", path, s.line)
				var have map[string]any
				require.NoError(t, json.Unmarshal([]byte(got.Raw), &have))
				if want["ok"] == true {
					// The function's own words in Flask-RPC: see docs.txt.
					assert.IsType(t, "", have["message"], "%s:%d", path, s.line)
					delete(want, "message")
					delete(have, "message")
				}
				assert.Equal(t, want, have, "%s:%d: %s\nwant %s\ngot  %s", path, s.line, s.request, s.want, got.Raw)
			}
		})
	}
}

// ---- the format ----

func TestContractSum(t *testing.T) {
	t.Parallel()
	url := serve(t, &weerpc.Options{Methods: api.Methods()})
	a := post(t, url, `{"weerpc": 1.1, "function": "sum", "data": [1, 2, 3]}`)
	assert.Equal(t, http.StatusOK, a.Status)
	assert.Equal(t, `{"weerpc":1.1,"ok":true,"message":"function 'sum' succeeded","data":6}`+"\n", a.Raw)
}

func TestVersionsAnsweredInKind(t *testing.T) {
	t.Parallel()
	url := serve(t, &weerpc.Options{Methods: methods()})
	for _, tc := range []struct{ body, version string }{
		{`{"weerpc": 1.1, "function": "zero"}`, "weerpc:1.1"},
		{`{"weerpc": 1.10, "function": "zero"}`, "weerpc:1.1"},
		{`{"wrpc": 1.0, "function": "zero"}`, "wrpc:1.0"},
		{`{"wrpc": 1, "function": "zero"}`, "wrpc:1.0"},
		{`{"wrpc": 1e0, "function": "zero"}`, "wrpc:1.0"},
		{`{"frpc": 1.0, "function": "zero"}`, "frpc:1.0"},
		// "weerpc" wins, then "wrpc".
		{`{"wrpc": 1.0, "weerpc": 1.1, "function": "zero"}`, "weerpc:1.1"},
		{`{"frpc": 1.0, "wrpc": 1.0, "function": "zero"}`, "wrpc:1.0"},
	} {
		a := post(t, url, tc.body)
		assert.True(t, a.OK, "%s: %s", tc.body, a.Raw)
		assert.Equal(t, tc.version, a.version(), tc.body)
		assert.Equal(t, 0.0, a.Data, tc.body)
	}
	for _, tc := range []struct{ body, version string }{
		{`{"weerpc": 1.0, "function": "zero"}`, "weerpc:1.1"},
		{`{"weerpc": "1.1", "function": "zero"}`, "weerpc:1.1"},
		{`{"weerpc": null, "function": "zero"}`, "weerpc:1.1"},
		{`{"weerpc": 2, "wrpc": 1.0, "function": "zero"}`, "weerpc:1.1"},
		{`{"wrpc": 1.1, "function": "zero"}`, "wrpc:1.0"},
		{`{"frpc": 2.0, "function": "zero"}`, "frpc:1.0"},
		{`{"Weerpc": 1.1, "function": "zero"}`, "weerpc:1.1"}, // names are exact
		{`{"function": "zero"}`, "weerpc:1.1"},
	} {
		a := post(t, url, tc.body)
		assert.Equal(t, http.StatusOK, a.Status, tc.body)
		assert.False(t, a.OK, tc.body)
		assert.Equal(t, tc.version, a.version(), tc.body)
		assert.Contains(t, a.Message, `send "weerpc": 1.1 or "wrpc": 1.0`, tc.body)
		assert.Nil(t, a.Data, tc.body)
	}
}

func TestDataToParams(t *testing.T) {
	t.Parallel()
	url := serve(t, &weerpc.Options{Methods: methods()})
	for _, tc := range []struct {
		data string // "" for no data member
		want any    // what "params" saw
	}{
		{`[1, "a", null]`, []any{1.0, "a", nil}},
		{`[]`, []any{}},
		{`{"x": 1}`, map[string]any{"x": 1.0}},
		{`{}`, map[string]any{}},
		{`null`, "none"},
		{``, "none"},
		{`42`, []any{42.0}},
		{`0`, []any{0.0}},
		{`"text"`, []any{"text"}},
		{`""`, []any{""}},
		{`true`, []any{true}},
		{`false`, []any{false}},
	} {
		body := `{"weerpc": 1.1, "function": "params"}`
		if tc.data != "" {
			body = `{"weerpc": 1.1, "function": "params", "data": ` + tc.data + `}`
		}
		a := post(t, url, body)
		assert.True(t, a.OK, "%s: %s", body, a.Raw)
		assert.Equal(t, tc.want, a.Data, body)
	}
}

func TestFalsyResults(t *testing.T) {
	t.Parallel()
	url := serve(t, &weerpc.Options{Methods: methods()})
	for fn, want := range map[string]string{
		"zero": `0`, "no": `false`, "empty_string": `""`, "empty_list": `[]`,
		"empty_object": `{}`, "nothing": `null`,
	} {
		for _, v := range []string{`"weerpc": 1.1`, `"wrpc": 1.0`} {
			a := post(t, url, `{`+v+`, "function": "`+fn+`"}`)
			assert.True(t, a.OK, "%s: %s", fn, a.Raw)
			assert.Equal(t, want, string(a.Fields["data"]), fn)
		}
	}
}

// ---- failures ----

func TestFailures(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	url := serve(t, &weerpc.Options{Methods: methods(), Logger: logger})
	const call = `{"weerpc": 1.1, "function": "sum", "data": [1]}`
	for _, tc := range []struct {
		name, body string
		edit       func(*http.Request)
		status     int
		message    string
		data       string
	}{
		{name: "unknown function", body: `{"weerpc": 1.1, "function": "nope"}`, message: `method not found: "nope"`},
		{name: "invalid params", body: `{"weerpc": 1.1, "function": "subtract", "data": {"minuend": 1}}`, message: `invalid params: missing argument "subtrahend"`},
		{name: "invalid params type", body: `{"weerpc": 1.1, "function": "sum", "data": ["x"]}`, message: "invalid params: argument 0 must be a number"},
		{name: "handler error", body: `{"weerpc": 1.1, "function": "fail", "data": {"code": 1, "message": "no", "data": [1, 2]}}`, message: "no", data: `[1, 2]`},
		{name: "plain error", body: `{"weerpc": 1.1, "function": "crash"}`, message: "internal error"},
		{name: "panic", body: `{"weerpc": 1.1, "function": "panic"}`, message: "internal error"},
		{name: "unencodable result", body: `{"weerpc": 1.1, "function": "unencodable"}`, message: "internal error"},
		{name: "malformed JSON", body: `{"weerpc": 1.1, "function": `, message: "request is not valid JSON"},
		{name: "trailing garbage", body: call + `x`, message: "request is not valid JSON"},
		{name: "empty body", body: ``, message: "request is empty: send a JSON object"},
		{name: "not an object", body: `"sum"`, message: "request must be a JSON object"},
		{name: "null", body: `null`, message: "request must be a JSON object"},
		{name: "empty function", body: `{"weerpc": 1.1, "function": ""}`, message: `invalid request: "function" must be a non-empty string`},
		{name: "not JSON", body: call, edit: header("Content-Type", "text/plain"), message: "request must be JSON (Content-Type: application/json)"},
		{name: "no Content-Type", body: call, edit: header("Content-Type", ""), message: "request must be JSON (Content-Type: application/json)"},
		{name: "form", body: call, edit: header("Content-Type", "application/x-www-form-urlencoded"), message: "request must be JSON (Content-Type: application/json)"},
		{name: "GET", edit: func(r *http.Request) { r.Method = http.MethodGet }, status: http.StatusMethodNotAllowed, message: "method GET not allowed: POST a weeRPC call"},
		{name: "PUT", body: call, edit: func(r *http.Request) { r.Method = http.MethodPut }, status: http.StatusMethodNotAllowed, message: "method PUT not allowed: POST a weeRPC call"},
	} {
		var edit []func(*http.Request)
		if tc.edit != nil {
			edit = append(edit, tc.edit)
		}
		a := post(t, url, tc.body, edit...)
		if tc.status == 0 {
			tc.status = http.StatusOK
		}
		assert.Equal(t, tc.status, a.Status, "%s: %s", tc.name, a.Raw)
		assert.False(t, a.OK, tc.name)
		assert.Equal(t, tc.message, a.Message, tc.name)
		if tc.data == "" {
			tc.data = "null"
		}
		assert.Equal(t, tc.data, string(a.Fields["data"]), tc.name)
		assert.Equal(t, "weerpc:1.1", a.version(), tc.name)
		assert.NotContains(t, a.Raw, "secret", tc.name)
		if tc.status == http.StatusMethodNotAllowed {
			assert.Equal(t, http.MethodPost, a.Header.Get("Allow"), tc.name)
		}
	}
	// Application-specific JSON types are JSON, as in Werkzeug.
	a := post(t, url, call, header("Content-Type", "application/vnd.api+json; charset=utf-8"))
	assert.True(t, a.OK, a.Raw)
	// Internal errors are logged, without reaching the caller.
	assert.Contains(t, logs.String(), "cannot encode the result")
	assert.Contains(t, logs.String(), "function=crash")
}

// logBuffer is a log destination that concurrent handlers write to.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	m := methods()
	wsrpc.Register(m, "whoami", func(ctx context.Context, _ any) (any, error) {
		r := wsrpc.HTTPRequestFromContext(ctx)
		return map[string]any{"id": wsrpc.IdentityFromContext(ctx), "agent": r.Header.Get("User-Agent")}, nil
	})
	wsrpc.Register(m, "admin", func(context.Context, any) (string, error) { return "yes", nil },
		wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin")))
	url := serve(t, &weerpc.Options{
		Methods: m,
		Authenticate: func(r *http.Request) (any, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer admin":
				return map[string]string{"role": "admin"}, nil
			case "Bearer guest":
				return map[string]string{"role": "guest"}, nil
			case "Bearer banned":
				return nil, &wsrpc.HTTPError{Status: http.StatusForbidden, Message: "banned"}
			}
			return nil, errors.New("secret reason")
		},
	})
	const who = `{"weerpc": 1.1, "function": "whoami"}`
	a := post(t, url, who, header("Authorization", "Bearer guest"), header("User-Agent", "test/1"))
	assert.True(t, a.OK, a.Raw)
	assert.Equal(t, map[string]any{"id": map[string]any{"role": "guest"}, "agent": "test/1"}, a.Data)

	a = post(t, url, who)
	assert.Equal(t, http.StatusOK, a.Status)
	assert.False(t, a.OK)
	assert.Equal(t, "unauthorized", a.Message)
	assert.NotContains(t, a.Raw, "secret")

	a = post(t, url, who, header("Authorization", "Bearer banned"))
	assert.Equal(t, http.StatusForbidden, a.Status)
	assert.Equal(t, "banned", a.Message)

	const admin = `{"wrpc": 1.0, "function": "admin"}`
	a = post(t, url, admin, header("Authorization", "Bearer guest"))
	assert.False(t, a.OK)
	assert.Equal(t, `unauthorized: requires "role"`, a.Message)
	assert.Equal(t, "wrpc:1.0", a.version())
	a = post(t, url, admin, header("Authorization", "Bearer admin"))
	assert.True(t, a.OK, a.Raw)
	assert.Equal(t, "yes", a.Data)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 100
	url := serve(t, &weerpc.Options{Methods: methods(), MaxBodySize: limit})
	// body is a call of n bytes, padded in a member the Handler ignores.
	body := func(n int) string {
		b := `{"weerpc": 1.1, "function": "zero", "pad": "`
		return b + strings.Repeat("x", n-len(b)-2) + `"}`
	}
	a := post(t, url, body(limit))
	assert.True(t, a.OK, a.Raw)

	a = post(t, url, body(limit+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
	assert.False(t, a.OK)
	assert.Equal(t, "request body exceeds 100 bytes", a.Message)

	// Chunked: no Content-Length to refuse on, the reader stops.
	a = post(t, url, "", func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(body(limit + 50)))
		r.ContentLength = -1
	})
	assert.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
	assert.Equal(t, "request body exceeds 100 bytes", a.Message)

	// The default is the core's message limit.
	url = serve(t, &weerpc.Options{Methods: methods()})
	a = post(t, url, body(wsrpc.DefaultMaxMessageSize))
	assert.True(t, a.OK)
	a = post(t, url, body(wsrpc.DefaultMaxMessageSize+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
}

func TestNilOptions(t *testing.T) {
	t.Parallel()
	url := serve(t, nil)
	a := post(t, url, `{"weerpc": 1.1, "function": "sum"}`)
	assert.False(t, a.OK)
	assert.Equal(t, `method not found: "sum"`, a.Message)
}

// ---- sessions ----

// cookieSession is an Options.Session reading a toy cookie: "k=v&k=v",
// where "true" is the boolean.
func cookieSession(calls *atomic.Int32) func(r *http.Request) weerpc.Session {
	return func(r *http.Request) weerpc.Session {
		if calls != nil {
			calls.Add(1)
		}
		c, err := r.Cookie("session")
		if err != nil {
			return nil
		}
		s := weerpc.Values{}
		for kv := range strings.SplitSeq(c.Value, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if v == "true" {
				s[k] = true
			} else {
				s[k] = v
			}
		}
		return s
	}
}

func session(v string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: v}) }
}

// TestSessionGlobal is Flask-RPC's session_auth for every function, with a
// list of two keys: both must pass.
func TestSessionGlobal(t *testing.T) {
	t.Parallel()
	m := methods()
	m.Guard(weerpc.RequireSession("logged_in", true))
	m.Guard(weerpc.RequireSession("user_type", "admin"))
	url := serve(t, &weerpc.Options{Methods: m, Session: cookieSession(nil)})
	const call = `{"weerpc": 1.1, "function": "add_numbers", "data": [1, 2]}`
	for _, tc := range []struct {
		edit    []func(*http.Request)
		message string
	}{
		{nil, "unauthorized: no session"},
		{[]func(*http.Request){session("user_type=admin")}, `unauthorized: session requires "logged_in"`},
		{[]func(*http.Request){session("logged_in=yes&user_type=admin")}, `unauthorized: session requires "logged_in"`},
		{[]func(*http.Request){session("logged_in=true&user_type=user")}, `unauthorized: session requires "user_type"`},
		{[]func(*http.Request){session("logged_in=true&user_type=admin")}, ""},
	} {
		a := post(t, url, call, tc.edit...)
		assert.Equal(t, http.StatusOK, a.Status)
		if tc.message == "" {
			assert.True(t, a.OK, a.Raw)
			assert.Equal(t, 3.0, a.Data)
			continue
		}
		assert.False(t, a.OK, tc.message)
		assert.Equal(t, tc.message, a.Message)
	}
	// The handler reads the same session.
	a := post(t, url, `{"weerpc": 1.1, "function": "session"}`, session("logged_in=true&user_type=admin"))
	assert.Equal(t, map[string]any{"logged_in": true, "user_type": "admin"}, a.Data)
}

// TestSessionPerFunction is Flask-RPC's session_auth__ on some functions.
func TestSessionPerFunction(t *testing.T) {
	t.Parallel()
	m := methods()
	wsrpc.Register(m, "add_string_auth_session", func(_ context.Context, s string) (string, error) {
		return "Hello " + s + "!", nil
	}, wsrpc.Guarded(weerpc.RequireSession("logged_in", true)))
	var calls atomic.Int32
	url := serve(t, &weerpc.Options{Methods: m, Session: cookieSession(&calls)})

	// Unguarded functions run without a session, and cost no lookup.
	a := post(t, url, `{"weerpc": 1.1, "function": "add_string", "data": "World"}`)
	assert.True(t, a.OK)
	assert.Zero(t, calls.Load(), "the session was looked up for an unguarded function")

	const guarded = `{"weerpc": 1.1, "function": "add_string_auth_session", "data": "World"}`
	a = post(t, url, guarded)
	assert.False(t, a.OK)
	assert.Equal(t, "unauthorized: no session", a.Message)
	a = post(t, url, guarded, session("logged_in=true"))
	assert.True(t, a.OK, a.Raw)
	assert.Equal(t, "Hello World!", a.Data)
	assert.EqualValues(t, 2, calls.Load())
}

// TestSessionOnceAndOnlyHere: the session is looked up once per request,
// and calls that did not come through a Handler have none.
func TestSessionOnceAndOnlyHere(t *testing.T) {
	t.Parallel()
	m := methods()
	m.Guard(weerpc.RequireSession("a"))
	m.Guard(weerpc.RequireSession("b"))
	var calls atomic.Int32
	url := serve(t, &weerpc.Options{Methods: m, Session: cookieSession(&calls)})
	a := post(t, url, `{"weerpc": 1.1, "function": "session"}`, session("a=1&b=2"))
	assert.True(t, a.OK, a.Raw)
	assert.EqualValues(t, 1, calls.Load())

	// The core's POST route serves the same table: no session there.
	srv := httptest.NewServer(wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m}))
	defer srv.Close()
	var res any
	err := wsrpc.NewHTTPClient(srv.URL, nil).Call(context.Background(), "session", nil, &res)
	assert.ErrorIs(t, err, wsrpc.ErrUnauthorized)
	assert.ErrorContains(t, err, "unauthorized: no session")

	// A Handler without Options.Session has none either.
	url = serve(t, &weerpc.Options{Methods: m})
	a = post(t, url, `{"weerpc": 1.1, "function": "session"}`, session("a=1&b=2"))
	assert.Equal(t, "unauthorized: no session", a.Message)
}

func TestRequireSessionValues(t *testing.T) {
	t.Parallel()
	guard := func(s weerpc.Session, key string, values ...any) error {
		m := wsrpc.NewMethods()
		wsrpc.Register(m, "f", func(context.Context, any) (bool, error) { return true, nil },
			wsrpc.Guarded(weerpc.RequireSession(key, values...)))
		h := weerpc.NewHandler(&weerpc.Options{Methods: m, Session: func(*http.Request) weerpc.Session { return s }})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"weerpc": 1.1, "function": "f"}`))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		var a struct {
			OK      bool
			Message string
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		if a.OK {
			return nil
		}
		return errors.New(a.Message)
	}
	s := weerpc.Values{
		"int": 1, "float": 1.0, "uint": uint8(1), "true": true, "false": false, "zero": 0,
		"str": "admin", "empty": "", "nil": nil, "list": []string{"x"}, "nolist": []string{},
		"map": map[string]int{"a": 1}, "struct": struct{ A int }{},
	}
	allow := []struct {
		key    string
		values []any
	}{
		{"int", []any{1}}, {"int", []any{1.0}}, {"float", []any{int64(1)}}, {"uint", []any{1}},
		{"true", []any{true}}, {"str", []any{"user", "admin"}}, {"false", []any{false}},
		{"zero", []any{0}}, {"nil", []any{nil}},
		{"int", nil}, {"true", nil}, {"str", nil}, {"list", nil}, {"map", nil}, {"struct", nil},
	}
	for _, c := range allow {
		assert.NoError(t, guard(s, c.key, c.values...), "%s %v", c.key, c.values)
	}
	refuse := []struct {
		key    string
		values []any
	}{
		{"int", []any{2}}, {"int", []any{"1"}}, {"int", []any{true}}, {"true", []any{1}},
		{"str", []any{"Admin"}}, {"list", []any{[]string{"x"}}}, {"map", []any{"a"}},
		{"missing", nil}, {"missing", []any{nil}},
		{"false", nil}, {"zero", nil}, {"empty", nil}, {"nil", nil}, {"nolist", nil},
	}
	for _, c := range refuse {
		err := guard(s, c.key, c.values...)
		if assert.Error(t, err, "%s %v", c.key, c.values) {
			assert.Equal(t, `unauthorized: session requires "`+c.key+`"`, err.Error())
		}
	}
	// A SessionFunc adapts a store.
	f := weerpc.SessionFunc(func(k string) (any, bool) { return k == "ok", k == "ok" })
	assert.NoError(t, guard(f, "ok", true))
	assert.Error(t, guard(f, "other"))
}

// ---- hosts ----

// TestRequireHost is Flask-RPC's host_auth: the Host header, port included.
func TestRequireHost(t *testing.T) {
	t.Parallel()
	m := methods()
	wsrpc.Register(m, "add_string_auth_host", func(_ context.Context, s string) (string, error) {
		return "Hello " + s + "!", nil
	}, wsrpc.Guarded(weerpc.RequireHost("127.0.0.1:5000", "Example.COM", "[::1]:8080")))
	url := serve(t, &weerpc.Options{Methods: m, AllowedHosts: []string{"127.0.0.1", "example.com", "::1", "other.org"}})
	host := func(h string) func(*http.Request) { return func(r *http.Request) { r.Host = h } }
	const call = `{"weerpc": 1.1, "function": "add_string_auth_host", "data": "you"}`
	for h, ok := range map[string]bool{
		"127.0.0.1:5000": true, "127.0.0.1:5001": false, "127.0.0.1": false,
		"example.com": true, "example.com:443": true, "EXAMPLE.com:8443": true,
		"[::1]:8080": true, "[::1]:8081": false, "other.org": false,
	} {
		a := post(t, url, call, host(h))
		assert.Equal(t, http.StatusOK, a.Status, h)
		assert.Equal(t, ok, a.OK, "%s: %s", h, a.Raw)
		if !ok {
			assert.Equal(t, "unauthorized: host not allowed", a.Message, h)
		}
	}
	// Other functions are not restricted.
	a := post(t, url, `{"weerpc": 1.1, "function": "zero"}`, host("other.org"))
	assert.True(t, a.OK)
}

// TestAllowHostsRemote: the core's AllowHosts guard sees the POST's remote
// address.
func TestAllowHostsRemote(t *testing.T) {
	t.Parallel()
	m := methods()
	wsrpc.Register(m, "local", func(context.Context, any) (int, error) { return 1, nil }, wsrpc.Guarded(wsrpc.AllowHosts("localhost")))
	wsrpc.Register(m, "lan", func(context.Context, any) (int, error) { return 2, nil }, wsrpc.Guarded(wsrpc.AllowHosts("10.0.0.0/8")))
	url := serve(t, &weerpc.Options{Methods: m})
	a := post(t, url, `{"weerpc": 1.1, "function": "local"}`)
	assert.True(t, a.OK, a.Raw)
	a = post(t, url, `{"weerpc": 1.1, "function": "lan"}`)
	assert.False(t, a.OK)
	assert.Equal(t, "unauthorized: host not allowed", a.Message)
}

// TestHostOrigin: the checks before the call, answered 403.
func TestHostOrigin(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	url := serve(t, &weerpc.Options{Methods: methods(), Logger: logger})
	const call = `{"weerpc": 1.1, "function": "zero"}`
	for range 2 {
		a := post(t, url, call, func(r *http.Request) { r.Host = "rebound.example" })
		assert.Equal(t, http.StatusForbidden, a.Status)
		assert.False(t, a.OK)
		assert.Equal(t, "host not allowed", a.Message)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "rebound.example"), "warned once: %s", logs.String())

	a := post(t, url, call, header("Origin", "https://evil.example"))
	assert.Equal(t, http.StatusForbidden, a.Status)
	assert.Equal(t, "origin not allowed", a.Message)
	a = post(t, url, call, header("Origin", "null"))
	assert.Equal(t, http.StatusForbidden, a.Status)
	a = post(t, url, call, header("Origin", url)) // same origin
	assert.True(t, a.OK, a.Raw)

	url = serve(t, &weerpc.Options{Methods: methods(), OriginPatterns: []string{"*.example"}})
	a = post(t, url, call, header("Origin", "https://app.example"))
	assert.True(t, a.OK, a.Raw)
	url = serve(t, &weerpc.Options{Methods: methods(), InsecureAllowAnyOrigin: true})
	a = post(t, url, call, header("Origin", "https://evil.example"))
	assert.True(t, a.OK, a.Raw)
}

// TestHostOriginAsCore holds the Handler's Host and Origin checks to the
// decisions of wsrpc.Server's, which they repeat.
func TestHostOriginAsCore(t *testing.T) {
	t.Parallel()
	type opts struct {
		hosts, patterns []string
		anyOrigin       bool
	}
	for _, o := range []opts{
		{},
		{hosts: []string{"api.example", "127.0.0.1"}},
		{patterns: []string{"*.example", "http://dev.test:*"}},
		{anyOrigin: true},
	} {
		core := httptest.NewServer(wsrpc.NewServer(&wsrpc.ServerOptions{
			Methods: methods(), AllowedHosts: o.hosts, OriginPatterns: o.patterns, InsecureAllowAnyOrigin: o.anyOrigin,
		}))
		url := serve(t, &weerpc.Options{
			Methods: methods(), AllowedHosts: o.hosts, OriginPatterns: o.patterns, InsecureAllowAnyOrigin: o.anyOrigin,
		})
		for _, host := range []string{"", "localhost", "LOCALHOST:1", "127.0.0.1", "[::1]:9", "api.example", "API.example:443", "evil.example"} {
			for _, origin := range []string{"", "null", "http://" + host, "https://app.example", "http://dev.test:3000", "https://dev.test:3000", "http://evil.example", "::bad"} {
				edit := func(r *http.Request) {
					if host != "" {
						r.Host = host
					}
					if origin != "" {
						r.Header.Set("Origin", origin)
					}
				}
				req, err := http.NewRequest(http.MethodPost, core.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"zero"}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				edit(req)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()

				a := post(t, url, `{"weerpc": 1.1, "function": "zero"}`, edit)
				assert.Equal(t, resp.StatusCode == http.StatusForbidden, a.Status == http.StatusForbidden,
					"%+v: Host %q, Origin %q: core %d, weerpc %d", o, host, origin, resp.StatusCode, a.Status)
			}
		}
		core.Close()
	}
}
