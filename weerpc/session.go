package weerpc

import (
	"context"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wsrpc/wsrpc"
)

// This file holds what Flask-RPC's session_auth and host_auth do: a
// caller's session, and the guards RequireSession and RequireHost.

// Session is a caller's session: what Flask's session is to a Flask-RPC
// function. Options.Session finds it for a request (in a cookie, a
// session store); guards and handlers read it with SessionFromContext.
// Values and SessionFunc are Sessions.
type Session interface {
	// Get returns the value stored under key, and whether there is one.
	Get(key string) (value any, ok bool)
}

// Values is a Session held in a map.
type Values map[string]any

// Get returns v[key].
func (v Values) Get(key string) (any, bool) {
	x, ok := v[key]
	return x, ok
}

// SessionFunc is a function that is a Session: an adapter for a session
// store, as http.HandlerFunc is for handlers.
type SessionFunc func(key string) (value any, ok bool)

// Get returns f(key).
func (f SessionFunc) Get(key string) (any, bool) { return f(key) }

// sessionKey is the context key of a call's sessionState.
type sessionKey struct{}

// sessionState finds a request's session when it is first asked for.
type sessionState struct {
	get func() Session
}

func newSessionState(find func(*http.Request) Session, r *http.Request) *sessionState {
	return &sessionState{get: sync.OnceValue(func() Session { return find(r) })}
}

// SessionFromContext returns the session of the caller of the guard or
// handler running with ctx: what Options.Session returned for the weeRPC
// request. It is nil when there is none: Options.Session is nil or found
// none, or the call did not come through a Handler (WebSocket, the core's
// POST route).
func SessionFromContext(ctx context.Context) Session {
	st, _ := ctx.Value(sessionKey{}).(*sessionState)
	if st == nil {
		return nil
	}
	return st.get()
}

// RequireSession returns a Guard that allows a call only if the caller's
// session (SessionFromContext) holds key, with one of values when any are
// given, and otherwise with a value that is set: not nil, false, a zero
// number, or an empty string, slice or map. Numbers compare by value
// whatever their Go types (int 1 matches float64 1); other values with ==.
// It is Flask-RPC's session_auth: add it with Methods.Guard for every
// function of a table, or with wsrpc.Guarded on one.
//
// A call without a session, and a call over WebSocket or the core's POST
// route (which have none), is refused with CodeUnauthorized; the message
// names key, never the values allowed.
func RequireSession(key string, values ...any) wsrpc.Guard {
	values = slices.Clone(values)
	return func(ctx context.Context, _ *wsrpc.Request) error {
		s := SessionFromContext(ctx)
		if s == nil {
			return unauthorized("no session")
		}
		v, ok := s.Get(key)
		if ok {
			if len(values) == 0 && isSet(v) {
				return nil
			}
			for _, want := range values {
				if equal(v, want) {
					return nil
				}
			}
		}
		return unauthorized("session requires " + strconv.Quote(key))
	}
}

func unauthorized(msg string) *wsrpc.Error {
	return &wsrpc.Error{Code: wsrpc.CodeUnauthorized, Message: "unauthorized: " + msg}
}

// isSet reports whether v is a value RequireSession accepts when it is
// given no values to compare with.
func isSet(v any) bool {
	if v == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return rv.Len() > 0
	case reflect.Struct:
		return true
	}
	return !rv.IsZero() // false, 0, a nil pointer, func or channel
}

// equal compares a session value with an allowed one: numbers by value,
// anything else with == when its type is comparable.
func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	ta := reflect.TypeOf(a)
	if ta == nil || reflect.TypeOf(b) == nil {
		return a == nil && b == nil
	}
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// number returns v as a float64 if it is a Go number whose value a float64
// holds exactly; integers beyond 2^53 compare as their nearest float64,
// which is good enough for session flags and ids of that size only.
func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

// RequireHost returns a Guard that allows a call only if the Host header of
// its HTTP request (wsrpc.HTTPRequestFromContext: the weeRPC POST, or the
// upgrade request of a WebSocket peer) is one of hosts. An entry with a
// port ("127.0.0.1:5000") matches that host and port only, as Flask-RPC's
// host_auth compares request.host; an entry without ("example.com") matches
// the host with any port or none. Names compare without regard to case;
// IPv6 addresses are written in brackets ("[::1]:5000").
//
// The Host header is what the client says it called: it sets apart the
// names a server answers to, it does not say who calls. To allow callers by
// their address, use wsrpc.AllowHosts. A call with no HTTP request (on a
// dialed peer) is refused with CodeUnauthorized.
func RequireHost(hosts ...string) wsrpc.Guard {
	type entry struct{ host, port string } // port "" matches any
	var allowed []entry
	for _, h := range hosts {
		if host, port, err := net.SplitHostPort(h); err == nil {
			allowed = append(allowed, entry{host, port})
		} else {
			allowed = append(allowed, entry{strings.Trim(h, "[]"), ""})
		}
	}
	return func(ctx context.Context, _ *wsrpc.Request) error {
		r := wsrpc.HTTPRequestFromContext(ctx)
		if r == nil {
			return unauthorized("host not allowed")
		}
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil {
			host, port = strings.Trim(r.Host, "[]"), ""
		}
		for _, e := range allowed {
			if strings.EqualFold(e.host, host) && (e.port == "" || e.port == port) {
				return nil
			}
		}
		return unauthorized("host not allowed")
	}
}
