package wsrpc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// guardCtx is the context a guard sees for a POST from remote with identity.
func guardCtx(remote string, identity any) context.Context {
	r := &http.Request{RemoteAddr: remote}
	return context.WithValue(context.Background(), httpCallKey{}, &httpCall{r: r, identity: identity})
}

func TestRequireIdentity(t *testing.T) {
	t.Parallel()
	admin := RequireIdentity("role", "admin", "root")
	anyUser := RequireIdentity("user")
	type claims = map[string]any
	cases := []struct {
		name     string
		identity any
		guard    Guard
		ok       bool
	}{
		{"none", nil, anyUser, false},
		{"map string", map[string]string{"user": "ada"}, anyUser, true},
		{"map string empty", map[string]string{"user": ""}, anyUser, false},
		{"map string missing", map[string]string{"name": "ada"}, anyUser, false},
		{"role matches", map[string]string{"role": "root"}, admin, true},
		{"role differs", map[string]string{"role": "guest"}, admin, false},
		{"roles list", map[string][]string{"role": {"guest", "admin"}}, admin, true},
		{"roles list without", map[string][]string{"role": {"guest"}}, admin, false},
		{"any string", claims{"role": "admin"}, admin, true},
		{"any []string", claims{"role": []string{"x", "admin"}}, admin, true},
		{"any []any", claims{"role": []any{1, "admin"}}, admin, true},
		{"any number", claims{"role": 1}, admin, false},
		{"http.Header", http.Header{"Role": {"admin"}}, admin, true}, // Get canonicalises
		{"url.Values", url.Values{"user": {"ada"}}, anyUser, true},
		{"unknown type", "ada", anyUser, false},
	}
	for _, c := range cases {
		err := c.guard(guardCtx("127.0.0.1:1", c.identity), &Request{Method: "m"})
		if c.ok {
			require.NoError(t, err, c.name)
			continue
		}
		require.ErrorIs(t, err, ErrUnauthorized, c.name)
		require.NotContains(t, err.Error(), "admin", "%s: the allowed values stay secret", c.name)
	}
}

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	g := AllowHosts("10.0.0.0/8", "192.168.1.7", "localhost")
	for remote, ok := range map[string]bool{
		"10.20.30.40:5555":     true,
		"192.168.1.7:80":       true,
		"192.168.1.8:80":       false,
		"127.0.0.1:9":          true,
		"127.3.4.5:9":          true,
		"[::1]:9":              true,
		"[::ffff:10.1.1.1]:9":  true,
		"[fe80::1%eth0]:9":     false,
		"8.8.8.8:53":           false,
		"not an address":       false,
		"[::ffff:8.8.8.8]:443": false,
	} {
		err := g(guardCtx(remote, nil), &Request{})
		if ok {
			require.NoError(t, err, remote)
		} else {
			require.ErrorIs(t, err, ErrUnauthorized, remote)
		}
	}
	require.ErrorIs(t, g(context.Background(), &Request{}), ErrUnauthorized, "no HTTP request: refused")
	require.Panics(t, func() { AllowHosts("example.com") })
}

func TestGuardErrorMapping(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	var ran atomic.Int32
	h := func(context.Context, any) (int, error) { ran.Add(1); return 1, nil }
	Register(m, "plain", h, Guarded(func(context.Context, *Request) error { return errors.New("internal reason") }))
	Register(m, "own", h, Guarded(func(context.Context, *Request) error { return &Error{Code: -32099, Message: "come back later"} }))
	Register(m, "open", h, Guarded(func(context.Context, *Request) error { return nil }))
	_, raw := rawPeer(t, &options{Methods: m})
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"unauthorized"}}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"plain"}`))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":2,"error":{"code":-32099,"message":"come back later"}}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":2,"method":"own"}`))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":3,"result":1}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":3,"method":"open"}`))
	require.EqualValues(t, 1, ran.Load(), "refused handlers never run")
	require.Panics(t, func() { Guarded(nil) })
}

// A table-wide guard and per-method guards apply to every item of a batch
// on its own.
func TestGuardsApplyInsideBatch(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	m := NewMethods()
	m.Guard(func(_ context.Context, req *Request) error {
		if req.Method == "forbidden" {
			return errors.New("never")
		}
		return nil
	})
	h := func(context.Context, any) (string, error) { ran.Add(1); return "ran", nil }
	Register(m, "open", h)
	Register(m, "forbidden", h)
	Register(m, "admin", h, Guarded(RequireIdentity("role", "admin")))
	a, b := pipePair(t, nil, &options{Methods: m})
	ctx := context.Background()

	run := func() (calls [4]*BatchCall) {
		require.NoError(t, a.Batch(ctx, func(batch *Batch) {
			calls[0] = batch.Call("open", nil, nil)
			calls[1] = batch.Call("admin", nil, nil)
			calls[2] = batch.Call("forbidden", nil, nil)
			calls[3] = batch.Call("open", nil, nil)
		}))
		return calls
	}
	calls := run()
	require.NoError(t, calls[0].Err())
	require.ErrorIs(t, calls[1].Err(), ErrUnauthorized)
	require.ErrorIs(t, calls[2].Err(), ErrUnauthorized)
	require.NoError(t, calls[3].Err())
	require.EqualValues(t, 2, ran.Load())

	b.SetIdentity(map[string]string{"role": "admin"})
	calls = run()
	require.NoError(t, calls[1].Err(), "the same batch item, now allowed")
	require.ErrorIs(t, calls[2].Err(), ErrUnauthorized)
	require.EqualValues(t, 5, ran.Load())
}

// Guards see who is calling over both transports: the identity and the
// remote address of the upgrade request, or of the POST.
func TestGuardsOverBothTransports(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "whoami", func(ctx context.Context, _ any) (string, error) {
		return IdentityFromContext(ctx).(map[string]string)["user"], nil
	}, Guarded(RequireIdentity("user")))
	Register(m, "local", func(context.Context, any) (bool, error) { return true, nil }, Guarded(AllowHosts("localhost")))
	Register(m, "remote", func(context.Context, any) (bool, error) { return true, nil }, Guarded(AllowHosts("10.0.0.0/8")))
	s := appServe(t, &options{Methods: m, Authenticate: func(r *http.Request) (any, error) {
		if u := r.Header.Get("X-User"); u != "" {
			return map[string]string{"user": u}, nil
		}
		return nil, nil // anonymous
	}})
	ctx := context.Background()
	ada := &options{HTTPHeader: http.Header{"X-User": {"ada"}}}

	for name, c := range map[string]struct{ anon, user Caller }{
		"websocket": {appDial(t, s.ws, nil), appDial(t, s.ws, ada)},
		"http":      {newHTTPClient(s.url, nil), newHTTPClient(s.url, ada)},
	} {
		var who string
		require.ErrorIs(t, c.anon.Call(ctx, "whoami", nil, &who), ErrUnauthorized, name)
		require.NoError(t, c.user.Call(ctx, "whoami", nil, &who), name)
		require.Equal(t, "ada", who, name)
		require.NoError(t, c.anon.Call(ctx, "local", nil, nil), name)
		err := c.anon.Call(ctx, "remote", nil, nil)
		require.ErrorIs(t, err, ErrUnauthorized, name)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, "unauthorized: host not allowed", e.Message)
	}
}
