package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type describeArgs struct {
	A    int     `json:"a"`
	B    *string `json:"b"`
	C    []int   `json:"c,omitempty"`
	Skip int     `json:"-"`
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	errOdd := &Error{Code: 1, Message: "odd"}
	NewMethod[describeArgs, string]("d.typed").Doc("a typed method").Errors(errOdd).
		Register(m, func(context.Context, describeArgs) (string, error) { return "", nil })
	Register(m, "d.list", func(context.Context, []int) (int, error) { return 0, nil })
	Register(m, "d.map", func(context.Context, map[string]int) (int, error) { return 0, nil })
	NewNotification[[]string]("d.note").Register(m, func(context.Context, []string) error { return nil })
	m.HandleRaw("d.raw", func(context.Context, json.RawMessage) (any, error) { return nil, nil })
	m.Declare(NewMethod[int, int]("d.declared"))
	m.Calls(NewMethod[int, bool]("d.client"), NewNotification[describeArgs]("d.typed"))
	m.Discover(func(context.Context, *Request) (any, error) { return "doc", nil })

	got := m.Describe()
	var names []string
	for _, mi := range got {
		names = append(names, mi.Name)
	}
	require.Equal(t, []string{"d.client", "d.list", "d.map", "d.note", "d.raw", "d.typed", "d.typed"}, names)

	typed := got[5]
	require.Equal(t, "a typed method", typed.Summary)
	require.Equal(t, []*Error{errOdd}, typed.Errors)
	require.Equal(t, "either", typed.ParamStructure)
	require.Equal(t, reflect.TypeFor[string](), typed.Result)
	require.Equal(t, []Arg{
		{Name: "a", Type: reflect.TypeFor[int](), Required: true},
		{Name: "b", Type: reflect.TypeFor[*string](), Required: false},
		{Name: "c", Type: reflect.TypeFor[[]int](), Required: false},
	}, typed.Args)
	require.False(t, typed.Calls)
	require.True(t, got[6].Calls, "the call declared with the same name sorts after the served one")
	require.True(t, got[6].Notification)

	require.Equal(t, "by-position", got[1].ParamStructure)
	require.Equal(t, "by-name", got[2].ParamStructure)
	require.True(t, got[3].Notification)
	require.Nil(t, got[3].Result)
	require.Equal(t, MethodInfo{Name: "d.raw"}, got[4])
	require.True(t, got[0].Calls)
	require.Equal(t, reflect.TypeFor[bool](), got[0].Result)

	res, err := m.Invoke(context.Background(), &Request{Method: "rpc.discover", Params: nil}, nil)
	require.NoError(t, err)
	require.Equal(t, "doc", res)
	require.Panics(t, func() { m.Discover(func(context.Context, *Request) (any, error) { return nil, nil }) })
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	m.Guard(RequireIdentity("user"))
	Register(m, "sum", func(_ context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})
	m.HandleRaw("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("secret detail") })
	m.HandleRaw("who", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return HTTPRequestFromContext(ctx).Host, nil
	})
	r := &http.Request{Host: "example.test", RemoteAddr: "127.0.0.1:1"}
	ctx := WithHTTPRequest(context.Background(), r, map[string]string{"user": "ada"})

	res, err := m.Invoke(ctx, &Request{Method: "sum", Params: json.RawMessage(`[1,2,3]`)}, nil)
	require.NoError(t, err)
	require.Equal(t, 6, res)
	res, err = m.Invoke(ctx, &Request{Method: "who", Params: nil}, nil)
	require.NoError(t, err)
	require.Equal(t, "example.test", res)

	_, err = m.Invoke(context.Background(), &Request{Method: "sum", Params: json.RawMessage(`[1]`)}, nil)
	require.ErrorIs(t, err, ErrUnauthorized, "the guard sees no identity")
	_, err = m.Invoke(ctx, &Request{Method: "sum", Params: json.RawMessage(`{"x":1}`)}, nil)
	require.ErrorIs(t, err, ErrInvalidParams)
	_, err = m.Invoke(ctx, &Request{Method: "sum", Params: json.RawMessage(`[1,`)}, nil)
	require.ErrorIs(t, err, ErrParse)
	_, err = m.Invoke(ctx, &Request{Method: "nope", Params: nil}, nil)
	require.ErrorIs(t, err, ErrMethodNotFound)
	var logs strings.Builder
	_, err = m.Invoke(ctx, &Request{Method: "fail", Params: nil}, slog.New(slog.NewTextHandler(&logs, nil)))
	require.Equal(t, ErrInternal, err, "a plain error is an internal error, its detail kept back")
	require.Contains(t, logs.String(), "secret detail", "and logged")
}

func TestCheckHostOrigin(t *testing.T) {
	t.Parallel()
	req := func(host, origin string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://"+host+"/x", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	require.NoError(t, CheckHostOrigin(req("api.example", ""), nil))
	require.NoError(t, CheckHostOrigin(req("api.example", "http://api.example"), nil))
	var he *HTTPError
	require.ErrorAs(t, CheckHostOrigin(req("api.example", "http://evil.example"), nil), &he)
	require.Equal(t, &HTTPError{Status: http.StatusForbidden, Message: "origin not allowed"}, he)
	require.NoError(t, CheckHostOrigin(req("api.example", "http://app.example"), &AcceptOptions{OriginPatterns: []string{"*.example"}}))
	require.ErrorAs(t, CheckHostOrigin(req("other.example", ""), &AcceptOptions{AllowedHosts: []string{"api.example"}}), &he)
	require.Equal(t, "host not allowed", he.Message)
	require.Error(t, CheckHostOrigin(req("api.example", "null"), &AcceptOptions{OriginPatterns: []string{"*"}}))
}

// A pointer to a type that decodes itself is that type, not a struct
// without fields (found by the openrpc module's tests).
func TestParamsThatDecodeThemselves(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "when", func(_ context.Context, at *time.Time) (string, error) { return at.UTC().Format(time.DateOnly), nil })
	Register(m, "addr", func(_ context.Context, ip netip.Addr) (string, error) { return ip.String(), nil })
	res, err := m.Invoke(context.Background(), &Request{Method: "when", Params: json.RawMessage(`["2026-11-30T12:00:00Z"]`)}, nil)
	require.NoError(t, err)
	require.Equal(t, "2026-11-30", res)
	res, err = m.Invoke(context.Background(), &Request{Method: "addr", Params: json.RawMessage(`["::1"]`)}, nil)
	require.NoError(t, err)
	require.Equal(t, "::1", res)
}
