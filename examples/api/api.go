// Package api is the example server's contract: the methods that
// examples/server serves and examples/client exercises. Both programs, and
// the interoperability tests, use it.
//
// The contract is declared once, as descriptors: the server registers its
// implementations through them (Methods, NewServer) and the client calls
// through them, so neither repeats a method name or a type.
package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wsrpc/wsrpc"
)

// MaxMessageSize is the example server's message limit: large enough for
// 8 MiB echoes.
const MaxMessageSize = 16 << 20

// AdminToken is the bearer token that makes a connection an admin
// (Authorization: Bearer <AdminToken>). A real server checks real
// credentials; this one only shows where.
const AdminToken = "let-me-in"

// SubtractArgs are the params of "subtract": positional [minuend, subtrahend]
// or named {"minuend": m, "subtrahend": s}.
type SubtractArgs struct {
	Minuend    float64 `json:"minuend"`
	Subtrahend float64 `json:"subtrahend"`
}

// PairArgs are the params of "math.sum": [x, y] or {"x": x, "y": y}.
type PairArgs struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// FailArgs are the params of "fail": the error to answer with.
type FailArgs struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// SleepArgs are the params of "sleep".
type SleepArgs struct {
	MS int `json:"ms"`
}

// ReverseArgs are the params of "reverse.call" and "reverse.notify": what to
// call on the calling client.
type ReverseArgs struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// NewsArgs are the params of "news.publish", and of the "news" notification
// it broadcasts.
type NewsArgs struct {
	Text string `json:"text"`
}

// CountdownArgs are the params of the "countdown" stream.
type CountdownArgs struct {
	From int `json:"from"`
}

// Stats is the result of "admin.stats".
type Stats struct {
	Peers   int      `json:"peers"`
	Methods []string `json:"methods"`
}

// The contract.
var (
	// Subtract answers minuend - subtrahend.
	Subtract = wsrpc.NewMethod[SubtractArgs, float64]("subtract")
	// Sum answers the sum of its positional params.
	Sum = wsrpc.NewMethod[[]float64, float64]("sum")
	// MathSum answers x + y.
	MathSum = wsrpc.NewMethod[PairArgs, float64]("math.sum")
	// GetData answers ["hello", 5].
	GetData = wsrpc.NewMethod[json.RawMessage, []any]("get_data")
	// Update, NotifyHello and NotifySum accept anything and do nothing.
	Update      = wsrpc.NewNotification[json.RawMessage]("update")
	NotifyHello = wsrpc.NewNotification[json.RawMessage]("notify_hello")
	NotifySum   = wsrpc.NewNotification[json.RawMessage]("notify_sum")
	// Echo answers its params.
	Echo = wsrpc.NewMethod[json.RawMessage, json.RawMessage]("echo")
	// Fail answers the error its params describe.
	Fail = wsrpc.NewMethod[FailArgs, any]("fail")
	// Sleep waits ms milliseconds (or until the connection closes) and
	// answers ms.
	Sleep = wsrpc.NewMethod[SleepArgs, int]("sleep")
	// ReverseCall calls Method on the calling client with Params and
	// answers what the client answered.
	ReverseCall = wsrpc.NewMethod[ReverseArgs, json.RawMessage]("reverse.call")
	// ReverseNotify sends the calling client the notification Method with
	// Params and answers true.
	ReverseNotify = wsrpc.NewMethod[ReverseArgs, bool]("reverse.notify")

	// NewsPublish broadcasts News to every connected client and answers
	// how many it was sent to.
	NewsPublish = wsrpc.NewMethod[NewsArgs, int]("news.publish")
	// News is the notification NewsPublish broadcasts; clients serve it.
	News = wsrpc.NewNotification[NewsArgs]("news")
	// AdminStats answers the server's numbers; admins only (CodeUnauthorized
	// otherwise).
	AdminStats = wsrpc.NewMethod[any, Stats]("admin.stats")
	// Countdown is a stream: from, from-1, ..., 1, then the end.
	Countdown = wsrpc.NewStream[CountdownArgs, int]("countdown").Doc("Counts down to 1.")

	// Served lists what the server serves (News is the clients').
	Served = []wsrpc.Descriptor{
		Subtract, Sum, MathSum, GetData, Update, NotifyHello, NotifySum, Echo,
		Fail, Sleep, ReverseCall, ReverseNotify, NewsPublish, AdminStats, Countdown,
	}
)

// Methods returns a new table with the example contract, all but the
// methods that need the Server itself (NewsPublish, AdminStats): those are
// declared, and NewServer registers them. News is recorded as a
// notification the server sends (Methods.Calls).
func Methods() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	m.Declare(Served...)
	m.Calls(News) // for discovery documents: the server calls it, clients serve it
	Subtract.Register(m, func(_ context.Context, a SubtractArgs) (float64, error) {
		return a.Minuend - a.Subtrahend, nil
	})
	Sum.Register(m, func(_ context.Context, ns []float64) (float64, error) {
		var s float64
		for _, n := range ns {
			s += n
		}
		return s, nil
	})
	MathSum.Register(m, func(_ context.Context, a PairArgs) (float64, error) {
		return a.X + a.Y, nil
	})
	GetData.Register(m, func(context.Context, json.RawMessage) ([]any, error) {
		return []any{"hello", 5}, nil
	})
	for _, n := range []wsrpc.Notification[json.RawMessage]{Update, NotifyHello, NotifySum} {
		n.Register(m, func(context.Context, json.RawMessage) error { return nil })
	}
	Echo.Register(m, func(_ context.Context, params json.RawMessage) (json.RawMessage, error) {
		return params, nil
	})
	Fail.Register(m, func(_ context.Context, a FailArgs) (any, error) {
		return nil, &wsrpc.Error{Code: a.Code, Message: a.Message, Data: a.Data}
	})
	Sleep.Register(m, func(ctx context.Context, a SleepArgs) (int, error) {
		t := time.NewTimer(time.Duration(a.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return a.MS, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	Countdown.Register(m, func(ctx context.Context, a CountdownArgs, sink *wsrpc.Sink[int]) error {
		for i := a.From; i > 0; i-- {
			if err := sink.Send(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	ReverseCall.Register(m, func(ctx context.Context, a ReverseArgs) (json.RawMessage, error) {
		var res json.RawMessage
		err := wsrpc.PeerFromContext(ctx).Call(ctx, a.Method, params(a.Params), &res)
		return res, err
	})
	ReverseNotify.Register(m, func(ctx context.Context, a ReverseArgs) (bool, error) {
		if err := wsrpc.PeerFromContext(ctx).Notify(ctx, a.Method, params(a.Params)); err != nil {
			return false, err
		}
		return true, nil
	})
	return m
}

// params turns absent or null params into none at all.
func params(raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// NewServer returns a Server of the contract, at /rpc for WebSocket and
// HTTP POST alike. opts may be nil; when zero, its Methods (Methods()),
// MaxMessageSize and Authenticate (AdminToken makes an admin, anyone else
// is a guest) are filled in. The methods that need the Server are
// registered on the table if it declares them unhandled; NewServer panics
// if the table still misses part of the contract.
func NewServer(opts *wsrpc.ServerOptions) *wsrpc.Server {
	var o wsrpc.ServerOptions
	if opts != nil {
		o = *opts
	}
	if o.Methods == nil {
		o.Methods = Methods()
	}
	if o.Limits.MaxMessageSize == 0 {
		o.Limits.MaxMessageSize = MaxMessageSize
	}
	if o.CancelMethod == "" {
		o.CancelMethod = wsrpc.LSPCancel // a client that gives up stops the handler too
	}
	if o.Authenticate == nil {
		o.Authenticate = authenticate
	}
	srv := wsrpc.NewServer(&o)
	m := o.Methods
	unhandled := m.Unhandled()
	if slices.Contains(unhandled, NewsPublish.Name()) {
		NewsPublish.Register(m, func(ctx context.Context, a NewsArgs) (int, error) {
			res, err := News.Broadcast(ctx, srv, a, nil)
			return res.Sent, err
		})
	}
	if slices.Contains(unhandled, AdminStats.Name()) {
		AdminStats.Register(m, func(context.Context, any) (Stats, error) {
			return Stats{Peers: srv.Len(), Methods: m.Names()}, nil
		}, wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin")))
	}
	if u := m.Unhandled(); len(u) > 0 {
		panic("api: no implementation for " + strings.Join(u, ", "))
	}
	return srv
}

// authenticate makes every connection a guest, except those that present
// AdminToken.
func authenticate(r *http.Request) (any, error) {
	if r.Header.Get("Authorization") == "Bearer "+AdminToken {
		return map[string]string{"role": "admin"}, nil
	}
	return map[string]string{"role": "guest"}, nil
}
