package wsrpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// ---- helpers shared by security_test.go, reliability_test.go and
// fuzz_test.go (prefixed rs to stay out of the way of other test files) ----

// rsRaw is a started peer on one end of an in-memory pipe; the test drives
// the other end byte for byte.
type rsRaw struct {
	p   *Peer
	end *pipeEnd
}

// rsNewRaw must be called inside the synctest bubble (or test) that uses
// it. The caller closes r.p.
func rsNewRaw(opts *options, buffer int) *rsRaw {
	a, b := newPipe(buffer)
	p := newPeer(a, opts.config(), nil, nil)
	p.start()
	return &rsRaw{p: p, end: b}
}

func (r *rsRaw) send(t testing.TB, msg string) {
	t.Helper()
	require.NoError(t, r.end.writeMessage([]byte(msg)))
}

// drain returns the messages the peer has written so far, without waiting.
// Inside a bubble, call it after synctest.Wait.
func (r *rsRaw) drain() []string {
	var out []string
	for {
		select {
		case m := <-r.end.in:
			out = append(out, string(m))
		default:
			return out
		}
	}
}

// rsExchange sends msg, waits for the peer to settle and returns what it
// answered.
func (r *rsRaw) exchange(t testing.TB, msg string) []string {
	t.Helper()
	r.send(t, msg)
	// A handler that blocks holds the reading goroutine for up to
	// inlineBudget before reading moves on (see serveInline); let that much
	// fake time pass so the peer has read everything it can.
	time.Sleep(2 * inlineBudget)
	synctest.Wait()
	return r.drain()
}

type rsWireError struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

type rsResponse struct {
	Version string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *rsWireError    `json:"error"`
}

func rsDecode(t testing.TB, raw string) rsResponse {
	t.Helper()
	require.True(t, json.Valid([]byte(raw)), "response is not valid JSON: %q", raw)
	var r rsResponse
	require.NoError(t, json.Unmarshal([]byte(raw), &r), raw)
	require.Equal(t, "2.0", r.Version, raw)
	return r
}

// rsCountingMethods serves "m", "echo" and "ok", counting every call.
func rsCountingMethods(n *atomic.Int64) *Methods {
	m := NewMethods()
	for _, name := range []string{"m", "echo", "ok"} {
		m.Handle(name, func(_ context.Context, req *Request) (any, error) {
			n.Add(1)
			if req.Method == "echo" {
				return json.RawMessage(append([]byte(nil), req.Params...)), nil
			}
			return true, nil
		})
	}
	return m
}

// ---- envelope strictness ----

func TestEnvelopeStrictness(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		msg  string
		code int64
		id   string // expected raw id of the error response
	}{
		// Invalid UTF-8 closes the connection instead: TestInvalidUTF8Closes1007.
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"m"`, CodeParseError, "null"},
		{"trailing garbage", `{"jsonrpc":"2.0","id":1,"method":"m"} x`, CodeParseError, "null"},
		{"two objects", `{"jsonrpc":"2.0","id":1,"method":"m"}{"jsonrpc":"2.0","id":2,"method":"m"}`, CodeParseError, "null"},
		{"empty message", ``, CodeParseError, "null"},
		{"garbage", `hello`, CodeParseError, "null"},
		{"bad escape", `{"jsonrpc":"2.0","id":1,"method":"m\q"}`, CodeParseError, "null"},
		{"control character", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\x01\"}", CodeParseError, "null"},
		{"too deep", `{"jsonrpc":"2.0","id":1,"method":"m","params":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, CodeParseError, "null"},

		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"m","method":"m"}`, CodeInvalidRequest, "1"},
		{"duplicate escaped method", `{"jsonrpc":"2.0","id":1,"method":"m","\u006dethod":"m"}`, CodeInvalidRequest, "1"},
		{"duplicate jsonrpc", `{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"duplicate params", `{"jsonrpc":"2.0","id":1,"method":"echo","params":[1],"params":[2]}`, CodeInvalidRequest, "1"},
		{"case variant beside", `{"jsonrpc":"2.0","id":1,"method":"m","Method":"m"}`, CodeInvalidRequest, "1"},
		{"case variant alone", `{"jsonrpc":"2.0","id":1,"METHOD":"m"}`, CodeInvalidRequest, "1"},
		{"case variant id", `{"jsonrpc":"2.0","Id":1,"method":"m"}`, CodeInvalidRequest, "null"},
		{"case variant jsonrpc", `{"JSONRPC":"2.0","id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"id object", `{"jsonrpc":"2.0","id":{"a":1},"method":"m"}`, CodeInvalidRequest, "null"},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"m"}`, CodeInvalidRequest, "null"},
		{"id true", `{"jsonrpc":"2.0","id":true,"method":"m"}`, CodeInvalidRequest, "null"},
		{"id false", `{"jsonrpc":"2.0","id":false,"method":"m"}`, CodeInvalidRequest, "null"},
		{"no jsonrpc", `{"id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"jsonrpc number", `{"jsonrpc":2.0,"id":1,"method":"m"}`, CodeInvalidRequest, "1"},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":1}`, CodeInvalidRequest, "1"},
		{"method null", `{"jsonrpc":"2.0","id":1,"method":null}`, CodeInvalidRequest, "1"},
		{"params string", `{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}`, CodeInvalidRequest, "1"},
		{"params number", `{"jsonrpc":"2.0","id":1,"method":"m","params":3}`, CodeInvalidRequest, "1"},
		{"request with result", `{"jsonrpc":"2.0","id":1,"method":"m","result":1}`, CodeInvalidRequest, "1"},
		{"empty object", `{}`, CodeInvalidRequest, "null"},
		{"number", `5`, CodeInvalidRequest, "null"},
		{"string", `"m"`, CodeInvalidRequest, "null"},
		{"null", `null`, CodeInvalidRequest, "null"},
	}
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		r := rsNewRaw(&options{Methods: rsCountingMethods(&calls)}, 8)
		defer r.p.Close()
		for _, c := range cases {
			got := r.exchange(t, c.msg)
			require.Len(t, got, 1, "%s: want exactly one response", c.name)
			res := rsDecode(t, got[0])
			require.NotNil(t, res.Error, "%s: %s", c.name, got[0])
			require.Equal(t, c.code, res.Error.Code, "%s: %s", c.name, got[0])
			require.Equal(t, c.id, string(res.ID), "%s: %s", c.name, got[0])
			require.Zero(t, calls.Load(), "%s: a handler ran", c.name)
			require.NoError(t, r.p.Err(), "%s: the connection must stay open", c.name)

			// The connection still serves.
			got = r.exchange(t, `{"jsonrpc":"2.0","id":"after","method":"ok"}`)
			require.Equal(t, []string{`{"jsonrpc":"2.0","id":"after","result":true}`}, got, c.name)
			calls.Store(0)
		}
	})
}

// TestEnvelopeIDEcho checks that every valid id is echoed byte for byte.
func TestEnvelopeIDEcho(t *testing.T) {
	t.Parallel()
	ids := []string{
		`0`, `7`, `-1`, `-0`, `18446744073709551615`, `18446744073709551616`,
		`123456789012345678901234567890`, `-123456789012345678901234567890`,
		`1.5`, `1e3`, `1E+3`, `-2.50e-7`, `10.0`,
		`""`, `"a"`, `"7"`, `"a\"b\\c\/d\u00e9\n\t\u0000"`, `"\ud83d\ude00"`, `"\uD83D"`, `"é😀"`,
		`null`,
	}
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		r := rsNewRaw(&options{Methods: rsCountingMethods(&calls)}, 8)
		defer r.p.Close()
		for _, id := range ids {
			for _, ws := range []string{"", " \n\t"} {
				got := r.exchange(t, `{"jsonrpc":"2.0","id":`+ws+id+ws+`,"method":"ok"}`)
				require.Equal(t, []string{`{"jsonrpc":"2.0","id":` + id + `,"result":true}`}, got, "id %s", id)
				// an error response echoes it too
				got = r.exchange(t, `{"jsonrpc":"2.0","id":`+ws+id+ws+`,"method":"nope"}`)
				require.Len(t, got, 1)
				require.True(t, strings.HasPrefix(got[0], `{"jsonrpc":"2.0","id":`+id+`,"error":{"code":-32601,`), got[0])
				// and so does an invalid request whose id is readable
				got = r.exchange(t, `{"jsonrpc":"2.0","id":`+ws+id+ws+`,"method":"ok","params":1}`)
				require.Len(t, got, 1)
				require.True(t, strings.HasPrefix(got[0], `{"jsonrpc":"2.0","id":`+id+`,"error":{"code":-32600,`), got[0])
			}
			// in a batch
			got := r.exchange(t, `[{"jsonrpc":"2.0","id":`+id+`,"method":"ok"},{"jsonrpc":"2.0","id":`+id+`,"method":"nope"}]`)
			require.Len(t, got, 1)
			require.True(t, strings.HasPrefix(got[0], `[{"jsonrpc":"2.0","id":`+id+`,"result":true},{"jsonrpc":"2.0","id":`+id+`,"error":`), got[0])
		}
		require.Equal(t, int64(len(ids)*3), calls.Load())
	})
}

// ---- error hygiene ----

type rsPanickyResult struct{}

func (rsPanickyResult) MarshalJSON() ([]byte, error) {
	panic("marshal exploded in /home/build/secret/result.go:17")
}

type rsFailingResult struct{}

func (rsFailingResult) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("open /etc/wsrpc/secret.key: %w", os.ErrPermission)
}

type rsTypedParams struct {
	Count int               `json:"count"`
	Name  string            `json:"name"`
	Tags  map[string]uint8  `json:"tags"`
	When  struct{ At uint } `json:"when"`
}

// rsLeaks lists what must never appear on the wire: Go type names, file
// paths, stacks, panic values, Go error texts.
var rsLeaks = []string{
	"wsrpc.", "rsTyped", "rsPanicky", "rsFailing", "struct", "chan ", "func(", "map[", "*os.", "os.",
	"/home", "/etc", "/var", ".go", "goroutine", "runtime", "panic", "exploded", "secret",
	"json: ", "cannot unmarshal", "Go value", "reflect", "uint8", "int64", "permission denied",
}

func TestErrorHygiene(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	m.Handle("panic.string", func(context.Context, *Request) (any, error) {
		panic("boom in /home/build/secret/handler.go:42")
	})
	m.Handle("panic.error", func(context.Context, *Request) (any, error) {
		panic(&os.PathError{Op: "open", Path: "/etc/wsrpc/secret.key", Err: os.ErrPermission})
	})
	m.Handle("panic.nil", func(context.Context, *Request) (any, error) {
		var mp map[string]int
		mp["x"]++ // runtime error: assignment to entry in nil map
		return nil, nil
	})
	m.Handle("fmt.error", func(context.Context, *Request) (any, error) {
		return nil, fmt.Errorf("handler %T failed reading /var/lib/wsrpc/secret: %w", rsTypedParams{}, os.ErrPermission)
	})
	m.Handle("wrapped.pathError", func(context.Context, *Request) (any, error) {
		_, err := os.Open("/nonexistent/secret/file.go")
		return nil, err
	})
	m.Handle("result.chan", func(context.Context, *Request) (any, error) { return make(chan int), nil })
	m.Handle("result.func", func(context.Context, *Request) (any, error) { return func() {}, nil })
	m.Handle("result.marshalError", func(context.Context, *Request) (any, error) { return rsFailingResult{}, nil })
	m.Handle("result.marshalPanic", func(context.Context, *Request) (any, error) { return rsPanickyResult{}, nil })
	m.Handle("result.badRaw", func(context.Context, *Request) (any, error) { return json.RawMessage(`{"a":`), nil })
	Register(m, "typed", func(_ context.Context, p rsTypedParams) (int, error) { return p.Count, nil })
	Register(m, "typed.int", func(_ context.Context, n int) (int, error) { return n, nil })
	Register(m, "typed.list", func(_ context.Context, l [2]uint8) (int, error) { return int(l[0]), nil })
	Register(m, "typed.map", func(_ context.Context, mp map[string]int) (int, error) { return len(mp), nil })

	reqs := []struct{ method, params string }{
		{"panic.string", ``},
		{"panic.error", ``},
		{"panic.nil", ``},
		{"fmt.error", ``},
		{"wrapped.pathError", ``},
		{"result.chan", ``},
		{"result.func", ``},
		{"result.marshalError", ``},
		{"result.marshalPanic", ``},
		{"result.badRaw", ``},
		{"typed", `{"count":"many"}`},
		{"typed", `{"count":1.5}`},
		{"typed", `{"tags":{"a":300}}`},
		{"typed", `{"tags":[1]}`},
		{"typed", `{"when":{"At":-1}}`},
		{"typed", `{"name":{}}`},
		{"typed", `[1,"x",{},{},5]`},
		{"typed", `["x"]`},
		{"typed.int", `["x"]`},
		{"typed.int", `{"a":1}`},
		{"typed.int", `[1,2]`},
		{"typed.int", `[1e400]`},
		{"typed.list", `[1,2,3]`},
		{"typed.list", `[1,-2]`},
		{"typed.list", `{"a":1}`},
		{"typed.map", `[1]`},
		{"typed.map", `{"a":"b"}`},
	}
	synctest.Test(t, func(t *testing.T) {
		r := rsNewRaw(&options{Methods: m}, 8)
		defer r.p.Close()
		var batch []string
		for i, q := range reqs {
			msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q`, i, q.method)
			if q.params != "" {
				msg += `,"params":` + q.params
			}
			msg += "}"
			batch = append(batch, msg)
			got := r.exchange(t, msg)
			require.Len(t, got, 1, msg)
			res := rsDecode(t, got[0])
			require.NotNil(t, res.Error, "%s -> %s", msg, got[0])
			require.Nil(t, res.Result, got[0])
			for _, leak := range rsLeaks {
				require.NotContains(t, got[0], leak, "%s -> %s", msg, got[0])
			}
			require.NoError(t, r.p.Err())
		}
		// The same, as one batch.
		got := r.exchange(t, "["+strings.Join(batch, ",")+"]")
		require.Len(t, got, 1)
		var items []rsResponse
		require.NoError(t, json.Unmarshal([]byte(got[0]), &items))
		require.Len(t, items, len(reqs))
		for _, leak := range rsLeaks {
			require.NotContains(t, got[0], leak)
		}
	})
}

// ---- method names ----

func TestMethodNameRegistration(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *Request) (any, error) { return nil, nil }
	bad := []string{"", "rpc.x", "rpc.", "rpc.discover", strings.Repeat("a", MaxMethodNameLen+1)}
	for _, name := range bad {
		m := NewMethods()
		require.Panics(t, func() { m.Handle(name, h) }, "Handle(%.20q)", name)
		require.Panics(t, func() {
			Register(m, name, func(context.Context, int) (int, error) { return 0, nil })
		}, "Register(%.20q)", name)
		require.Panics(t, func() {
			m.HandleRaw(name, func(context.Context, json.RawMessage) (any, error) { return nil, nil })
		}, "HandleRaw(%.20q)", name)
		require.Empty(t, m.Names())
	}
	m := NewMethods()
	for _, name := range []string{"x", "rpc", "rpcx", "RPC.x", "x.rpc.y", strings.Repeat("a", MaxMethodNameLen)} {
		require.NotPanics(t, func() { m.Handle(name, h) }, name)
	}
	require.Len(t, m.Names(), 6)
}

// ---- origin, host and authentication ----

type rsAuthServer struct {
	srv        *Server
	url        string
	addr       string
	auths      atomic.Int64
	connects   atomic.Int64
	identities chan any
}

func rsNewAuthServer(t *testing.T, opts options) *rsAuthServer {
	s := &rsAuthServer{identities: make(chan any, 1)}
	m := NewMethods()
	m.Handle("whoami", func(ctx context.Context, _ *Request) (any, error) {
		return PeerFromContext(ctx).Identity(), nil
	})
	opts.Methods = m
	opts.Authenticate = func(r *http.Request) (any, error) {
		s.auths.Add(1)
		switch tok := r.Header.Get("Authorization"); tok {
		case "Bearer alice":
			return "alice", nil
		case "Bearer teapot":
			return nil, &HTTPError{Status: http.StatusTeapot, Message: "no coffee"}
		default:
			return nil, errors.New("bad token " + tok + " checked by /srv/auth.go")
		}
	}
	opts.OnConnect = func(*Peer) { s.connects.Add(1) }
	s.srv = newServer(&opts)
	hs := httptest.NewServer(s.srv)
	t.Cleanup(func() {
		require.NoError(t, s.srv.Shutdown(context.Background()))
		hs.Close()
	})
	s.url = hs.URL
	s.addr = hs.Listener.Addr().String()
	return s
}

// upgrade sends a WebSocket upgrade request over a fresh TCP connection and
// returns the status line's code and the body. host and origin are sent as
// given ("" for none).
func (s *rsAuthServer) upgrade(t *testing.T, host, origin, auth string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer c.Close()
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: " + host + "\r\n")
	b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	if origin != "" {
		b.WriteString("Origin: " + origin + "\r\n")
	}
	if auth != "" {
		b.WriteString("Authorization: " + auth + "\r\n")
	}
	b.WriteString("\r\n")
	_, err = c.Write([]byte(b.String()))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body string
	if resp.StatusCode != http.StatusSwitchingProtocols {
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		body = string(buf[:n])
	}
	return resp.StatusCode, body
}

func TestUpgradeRefusals(t *testing.T) {
	t.Parallel()
	s := rsNewAuthServer(t, options{OriginPatterns: []string{"trusted.example"}})
	_, port, _ := net.SplitHostPort(s.addr)
	good := "Bearer alice"
	cases := []struct {
		name, host, origin, auth string
		status                   int
		authRuns                 bool
	}{
		{"cross origin", s.addr, "https://evil.example", good, http.StatusForbidden, false},
		{"cross origin, same host other port", s.addr, "http://127.0.0.1:1", good, http.StatusForbidden, false},
		{"origin null", s.addr, "null", good, http.StatusForbidden, false},
		{"origin garbage", s.addr, "::not a url", good, http.StatusForbidden, false},
		{"rebinding host", "evil.example", "", good, http.StatusForbidden, false},
		{"rebinding host with port", "evil.example:" + port, "", good, http.StatusForbidden, false},
		{"rebinding host, matching origin", "evil.example:" + port, "http://evil.example:" + port, good, http.StatusForbidden, false},
		{"localhost-looking host", "localhost.evil.example:" + port, "", good, http.StatusForbidden, false},
		{"loopback-looking host", "127.0.0.1.nip.io:" + port, "", good, http.StatusForbidden, false},
		{"no auth", s.addr, "", "", http.StatusUnauthorized, true},
		{"bad auth", s.addr, "", "Bearer mallory", http.StatusUnauthorized, true},
		{"hook status", s.addr, "", "Bearer teapot", http.StatusTeapot, true},
	}
	for _, c := range cases {
		before := s.auths.Load()
		status, body := s.upgrade(t, c.host, c.origin, c.auth)
		require.Equal(t, c.status, status, "%s: %s", c.name, body)
		require.NotContains(t, body, "/srv/auth.go", c.name)
		if c.authRuns {
			require.Equal(t, before+1, s.auths.Load(), "%s: Authenticate must run", c.name)
		} else {
			require.Equal(t, before, s.auths.Load(), "%s: Authenticate must not run before the host and origin checks", c.name)
		}
		require.Zero(t, s.connects.Load(), c.name)
		require.Zero(t, s.srv.Len(), c.name)
	}

	// Allowed: same origin, a trusted origin, no origin, localhost.
	for _, c := range []struct{ host, origin string }{
		{s.addr, ""},
		{s.addr, "http://" + s.addr},
		{s.addr, "https://trusted.example"},
		{"localhost:" + port, ""},
		{"[::1]:" + port, ""},
	} {
		status, body := s.upgrade(t, c.host, c.origin, good)
		require.Equal(t, http.StatusSwitchingProtocols, status, "%+v: %s", c, body)
	}
}

func TestAuthenticatedIdentityReachesHandlers(t *testing.T) {
	t.Parallel()
	s := rsNewAuthServer(t, options{})
	ctx := t.Context()
	p, err := dial(ctx, "ws"+strings.TrimPrefix(s.url, "http"), &options{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}}})
	require.NoError(t, err)
	defer p.Close()
	who, err := Call[string](ctx, p, "whoami", nil)
	require.NoError(t, err)
	require.Equal(t, "alice", who)
	require.Equal(t, int64(1), s.connects.Load())

	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http"), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, int64(1), s.connects.Load())
}
