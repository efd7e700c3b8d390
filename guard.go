package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
)

// A Guard decides whether a call or notification may run. It returns nil to
// allow it. Any error refuses it: the handler does not run, and the caller
// gets an *Error. A Guard may return its own *Error (a code and a message
// for the caller); any other error is answered with CodeUnauthorized and
// the message "unauthorized", its text staying local (middleware such as
// Logging sees it).
//
// A Guard sees the request (req.Method, req.Params) and, through ctx, who
// is calling: IdentityFromContext, HTTPRequestFromContext, PeerFromContext.
// It works the same over WebSocket and HTTP POST, and for each item of a
// batch. Like a handler, it must not block the peer for long.
//
// A nil *Error returned as a (non-nil) error refuses, with CodeUnauthorized.
type Guard func(ctx context.Context, req *Request) error

// Guarded returns middleware that runs g before the handlers it wraps: pass
// it to Handle or Register to guard one method, or to Methods.Use.
func Guarded(g Guard) Middleware {
	if g == nil {
		panic("wsrpc: nil guard")
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			if err := g(ctx, req); err != nil {
				return nil, refusal(err)
			}
			return next(ctx, req)
		}
	}
}

// Guard guards every method of the table, those registered and those to
// come. It is m.Use(Guarded(g)): it runs in the order middleware was added,
// so add Logging before it to have refusals logged.
func (m *Methods) Guard(g Guard) { m.Use(Guarded(g)) }

// refusal is what a refused call is answered with.
func refusal(err error) error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return err
	}
	return fmt.Errorf("%w: %w", &Error{Code: CodeUnauthorized, Message: "unauthorized"}, err)
}

func unauthorized(msg string) *Error {
	return &Error{Code: CodeUnauthorized, Message: "unauthorized: " + msg}
}

// Claims is an identity that holds named values. http.Header and url.Values
// are Claims; so is any type with a Get method. See RequireIdentity.
type Claims interface {
	// Get returns the value of key, "" if it has none.
	Get(key string) string
}

// RequireIdentity returns a Guard that allows a call only if the caller's
// identity (IdentityFromContext: what ServerOptions.Authenticate returned, or
// Peer.SetIdentity set) has a non-empty value for key, and, when values
// are given, one of them. The identity may be:
//
//   - a map[string]string;
//   - a map[string][]string, or a map[string]any whose value is a string
//     or a []string: any one of the values may match (a list of roles);
//   - a Claims (http.Header, url.Values, your own type): Get(key).
//
// Any other identity, or none, is refused with CodeUnauthorized; the
// message names key, never the values allowed.
func RequireIdentity(key string, values ...string) Guard {
	values = slices.Clone(values)
	return func(ctx context.Context, _ *Request) error {
		id := IdentityFromContext(ctx)
		if id == nil {
			return unauthorized("not authenticated")
		}
		for _, v := range identityValues(id, key) {
			if v != "" && (len(values) == 0 || slices.Contains(values, v)) {
				return nil
			}
		}
		return unauthorized("requires " + strconv.Quote(key))
	}
}

// identityValues returns the values an identity holds for key.
func identityValues(id any, key string) []string {
	switch v := id.(type) {
	case map[string]string:
		if s, ok := v[key]; ok {
			return []string{s}
		}
	case map[string][]string:
		return v[key]
	case map[string]any:
		switch x := v[key].(type) {
		case string:
			return []string{x}
		case []string:
			return x
		case []any:
			var out []string
			for _, e := range x {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
	case Claims:
		return []string{v.Get(key)}
	}
	return nil
}

// AllowHosts returns a Guard that allows a call only from the listed remote
// addresses: IP addresses ("10.1.2.3", "::1"), networks in CIDR notation
// ("10.0.0.0/8") and "localhost" (every loopback address). The address is
// the remote address of the HTTP request: the upgrade request of a
// WebSocket peer, or the POST. Behind a reverse proxy that is the proxy's
// address; use a Guard of your own that trusts its headers then. A call
// with no HTTP request (on a dialed peer) is refused.
//
// AllowHosts panics on an entry it cannot parse.
func AllowHosts(hosts ...string) Guard {
	var allowed []netip.Prefix
	for _, h := range hosts {
		switch {
		case h == "localhost":
			allowed = append(allowed, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		default:
			if p, err := netip.ParsePrefix(h); err == nil {
				allowed = append(allowed, p.Masked())
			} else if a, err := netip.ParseAddr(h); err == nil {
				allowed = append(allowed, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			} else {
				panic("wsrpc: AllowHosts: not an IP address, a CIDR network or \"localhost\": " + strconv.Quote(h))
			}
		}
	}
	return func(ctx context.Context, _ *Request) error {
		r := HTTPRequestFromContext(ctx)
		if r == nil {
			return unauthorized("host not allowed")
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return unauthorized("host not allowed")
		}
		a = a.Unmap().WithZone("")
		for _, p := range allowed {
			if p.Contains(a) {
				return nil
			}
		}
		return unauthorized("host not allowed")
	}
}

// httpCallKey is the context key of the request a handler serves over HTTP
// POST.
type httpCallKey struct{}

// httpCall is what a handler serving an HTTP POST knows of its caller.
type httpCall struct {
	r        *http.Request
	identity any
}

// HTTPRequestFromContext returns the HTTP request behind the handler or
// guard running with ctx: the upgrade request of its WebSocket peer (see
// Peer.HTTPRequest), or the POST request. It returns nil on a dialed peer
// and outside handlers.
func HTTPRequestFromContext(ctx context.Context) *http.Request {
	if p := PeerFromContext(ctx); p != nil {
		return p.HTTPRequest()
	}
	if c, _ := ctx.Value(httpCallKey{}).(*httpCall); c != nil {
		return c.r
	}
	return nil
}

// IdentityFromContext returns the identity of the caller of the handler or
// guard running with ctx: Peer.Identity of its WebSocket peer, or what
// ServerOptions.Authenticate returned for the POST request. Nil when there is
// none.
func IdentityFromContext(ctx context.Context) any {
	if p := PeerFromContext(ctx); p != nil {
		return p.Identity()
	}
	if c, _ := ctx.Value(httpCallKey{}).(*httpCall); c != nil {
		return c.identity
	}
	return nil
}
