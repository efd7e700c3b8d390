package wsrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// logBuf is a concurrency-safe buffer for slog records.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON records written so far.
func (l *logBuf) records(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		out = append(out, r)
	}
	return out
}

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func TestInvokeRecoversWithoutMiddleware(t *testing.T) {
	t.Parallel()
	logger, logs := newLog()
	m := NewMethods()
	m.HandleRaw("boom", func(context.Context, json.RawMessage) (any, error) { panic("secret /etc/passwd") })
	m.HandleRaw("plain", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("secret detail") })
	_, raw := rawPeer(t, &options{Methods: m, Logger: logger})
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal error"}}`
	require.JSONEq(t, want, exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"boom"}`))
	require.JSONEq(t, want, exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"plain"}`))
	recs := logs.records(t)
	require.Len(t, recs, 2)
	require.Equal(t, "wsrpc: handler panicked", recs[0]["msg"])
	require.Contains(t, recs[0]["stack"], "middleware.go")
	require.Equal(t, "wsrpc: handler failed", recs[1]["msg"])
	require.Equal(t, "secret detail", recs[1]["err"])
}

func TestRecoverMiddlewareMapsOnce(t *testing.T) {
	t.Parallel()
	peerLog, peerLogs := newLog()
	userLog, userLogs := newLog()
	var outer []error
	m := NewMethods()
	// Outer middleware sees what goes on the wire; inner sees the handler's
	// own error.
	m.Use(func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			res, err := next(ctx, req)
			outer = append(outer, err)
			return res, err
		}
	}, Recover(userLog))
	var inner error
	m.HandleRaw("plain", func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("disk full")
	}, func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			res, err := next(ctx, req)
			inner = err
			return res, err
		}
	})
	m.HandleRaw("boom", func(context.Context, json.RawMessage) (any, error) { panic(42) })
	m.HandleRaw("mine", func(context.Context, json.RawMessage) (any, error) {
		return nil, &Error{Code: 7, Message: "mine"}
	})
	_, raw := rawPeer(t, &options{Methods: m, Logger: peerLog})
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal error"}}`
	require.JSONEq(t, want, exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"plain"}`))
	require.JSONEq(t, want, exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"boom"}`))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"error":{"code":7,"message":"mine"}}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"mine"}`))

	require.EqualError(t, inner, "disk full")
	require.Len(t, outer, 3)
	require.Same(t, ErrInternal, outer[0])
	require.Same(t, ErrInternal, outer[1])
	require.ErrorIs(t, outer[2], &Error{Code: 7})

	require.Len(t, userLogs.records(t), 2, "Recover logs the error and the panic")
	require.Empty(t, peerLogs.records(t), "and the peer does not log them again")
}

func TestLogging(t *testing.T) {
	t.Parallel()
	logger, logs := newLog()
	m := NewMethods()
	m.Use(Logging(logger), Recover(logger))
	Register(m, "login", func(_ context.Context, p map[string]string) (string, error) { return "ok", nil })
	m.HandleRaw("boom", func(context.Context, json.RawMessage) (any, error) { panic("x") })
	m.HandleRaw("refuse", func(context.Context, json.RawMessage) (any, error) {
		return nil, &Error{Code: CodeInvalidParams, Message: "no"}
	})
	Register(m, "verbose", func(_ context.Context, p map[string]string) (string, error) { return "ok", nil },
		LoggingWith(logger, LogOptions{Params: true, Level: slog.LevelDebug}))
	a, _ := pipePair(t, nil, &options{Methods: m})
	ctx := context.Background()

	_, err := Call[string](ctx, a, "login", map[string]string{"password": "hunter2"})
	require.NoError(t, err)
	require.Error(t, a.Call(ctx, "boom", nil, nil))
	require.Error(t, a.Call(ctx, "refuse", nil, nil))
	_, err = Call[string](ctx, a, "verbose", map[string]string{"k": "v"})
	require.NoError(t, err)

	var served []map[string]any
	for _, r := range logs.records(t) {
		if r["msg"] == "wsrpc: served" {
			served = append(served, r)
		}
	}
	require.Len(t, served, 5) // verbose is logged by both
	login := served[0]
	require.Equal(t, "login", login["method"])
	require.Equal(t, "INFO", login["level"])
	require.Contains(t, login, "duration")
	require.NotContains(t, login, "code")
	require.NotContains(t, login, "params", "params are off by default")

	boom := served[1]
	require.Equal(t, "boom", boom["method"])
	require.Equal(t, "ERROR", boom["level"])
	require.EqualValues(t, CodeInternalError, boom["code"])

	refuse := served[2]
	require.Equal(t, "INFO", refuse["level"])
	require.EqualValues(t, CodeInvalidParams, refuse["code"])

	verbose := served[3]
	require.Equal(t, "verbose", verbose["method"])
	require.Equal(t, "DEBUG", verbose["level"])
	require.Equal(t, `{"k":"v"}`, verbose["params"])
}

func TestMiddlewareOrder(t *testing.T) {
	t.Parallel()
	var order []string
	mark := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, req *Request) (any, error) {
				order = append(order, name)
				return next(ctx, req)
			}
		}
	}
	m := NewMethods()
	m.Use(mark("table1"))
	Register(m, "f", func(context.Context, any) (int, error) {
		order = append(order, "handler")
		return 1, nil
	}, mark("method1"), mark("method2"))
	m.Use(mark("table2")) // applies to methods already registered too
	a, _ := pipePair(t, nil, &options{Methods: m})
	_, err := Call[int](context.Background(), a, "f", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"table1", "table2", "method1", "method2", "handler"}, order)
}

// TestUseWhileServing adds middleware while calls run: each call runs under
// the chain it looked up, before or after the change, and the race
// detector has nothing to say (a chain is never changed in place).
func TestUseWhileServing(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "sum", func(_ context.Context, p [2]int) (int, error) { return p[0] + p[1], nil })
	a, _ := pipePair(t, nil, &options{Methods: m})
	done := make(chan error, 1)
	go func() {
		for i := range 200 {
			var r int
			if err := a.Call(context.Background(), "sum", [2]int{i, 1}, &r); err != nil || r != i+1 {
				done <- fmt.Errorf("call %d: %d, %v", i, r, err)
				return
			}
		}
		done <- nil
	}()
	var added atomic.Int32
	uses := 0
	for err := error(nil); ; uses++ {
		select {
		case err = <-done:
		default:
			if uses < 300 {
				m.Use(func(next Handler) Handler {
					return func(ctx context.Context, req *Request) (any, error) {
						added.Add(1)
						return next(ctx, req)
					}
				})
				continue
			}
			err = <-done
		}
		require.NoError(t, err)
		break
	}
	var r int
	before := added.Load()
	require.NoError(t, a.Call(context.Background(), "sum", [2]int{1, 1}, &r))
	require.Equal(t, int32(uses), added.Load()-before, "a call after the last Use runs them all")
}
