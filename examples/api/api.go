// Package api is the example server's contract: the methods that
// examples/server serves and examples/client exercises. Both programs, and
// the interoperability tests, use it.
package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/wsrpc/wsrpc"
)

// MaxMessageSize is the example server's message limit: large enough for
// 8 MiB echoes.
const MaxMessageSize = 16 << 20

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

// Methods returns a new table with the example contract.
func Methods() *wsrpc.Methods {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "subtract", func(_ context.Context, a SubtractArgs) (float64, error) {
		return a.Minuend - a.Subtrahend, nil
	})
	wsrpc.Register(m, "sum", func(_ context.Context, ns []float64) (float64, error) {
		var s float64
		for _, n := range ns {
			s += n
		}
		return s, nil
	})
	wsrpc.Register(m, "math.sum", func(_ context.Context, a PairArgs) (float64, error) {
		return a.X + a.Y, nil
	})
	wsrpc.Register(m, "get_data", func(context.Context, json.RawMessage) ([]any, error) {
		return []any{"hello", 5}, nil
	})
	for _, name := range []string{"update", "notify_hello", "notify_sum"} {
		wsrpc.Register(m, name, func(context.Context, json.RawMessage) (any, error) {
			return nil, nil
		})
	}
	wsrpc.Register(m, "echo", func(_ context.Context, params json.RawMessage) (json.RawMessage, error) {
		return params, nil
	})
	wsrpc.Register(m, "fail", func(_ context.Context, a FailArgs) (any, error) {
		return nil, &wsrpc.Error{Code: a.Code, Message: a.Message, Data: a.Data}
	})
	wsrpc.Register(m, "sleep", func(ctx context.Context, a SleepArgs) (int, error) {
		t := time.NewTimer(time.Duration(a.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return a.MS, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	wsrpc.Register(m, "reverse.call", func(ctx context.Context, a ReverseArgs) (json.RawMessage, error) {
		var res json.RawMessage
		err := wsrpc.PeerFromContext(ctx).Call(ctx, a.Method, params(a.Params), &res)
		return res, err
	})
	wsrpc.Register(m, "reverse.notify", func(ctx context.Context, a ReverseArgs) (bool, error) {
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

// NewServer returns a Server of the contract. opts may be nil; its Methods
// and MaxMessageSize are filled in when zero.
func NewServer(opts *wsrpc.Options) *wsrpc.Server {
	var o wsrpc.Options
	if opts != nil {
		o = *opts
	}
	if o.Methods == nil {
		o.Methods = Methods()
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = MaxMessageSize
	}
	return wsrpc.NewServer(&o)
}
