package main

// wsrpc: github.com/wsrpc/wsrpc (this repository, through the replace
// directive in go.mod) as a user would write it, over coder/websocket.
//
//   - Server: wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m}) mounted as the
//     http.Handler of serveLoopback; every other option at its default
//     (so keepalive timers run, 20s ping interval; MaxBatch 100 etc.). No
//     OnConnect hook: the Server tracks its peers itself, and Close uses
//     Server.Shutdown (2s) to close them all.
//   - Methods are registered with the typed wsrpc.Register:
//     sum  params [2]int    -> int
//     echo params [1]string -> string   (typed decode, not a json.RawMessage
//     passthrough: this is what the typical user writes; a passthrough
//     would skip one decode and one encode of the echoed string)
//     (wsrpc-rawecho differs only here: its echo is a wsrpc.HandleRaw
//     passthrough that answers with the params' element as raw JSON, which
//     Methods.HandleRaw lets alias the message. It exists to measure that
//     option side by side; it is not the wsrpc row.)
//     note params [1]int    -> struct{} (a notification; calls svc.Note())
//     grab no params        -> bool     (hands wsrpc.PeerFromContext(ctx)
//     to Reverse)
//   - Client: wsrpc.Dial with DialOptions{Methods: {sum}} (the client serves sum
//     for reverse), defaults otherwise. Sum is p.Call(ctx, "sum", [2]int{a,b},
//     &r) and Echo p.Call(ctx, "echo", [1]string{s}, &r), with the ctx the
//     scenario passes (Background, or in seqctx/parctx a fresh 10s timeout
//     ctx cancelled after the call); SumBatch is p.Batch with one b.Call per
//     item, results checked; Notify is p.Notify; Reverse calls sum on the
//     server-side *wsrpc.Peer.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wsrpc/wsrpc"
)

func init() {
	register(20, wsrpcContender{})
	register(21, wsrpcContender{rawEcho: true})
}

type wsrpcContender struct{ rawEcho bool }

func (c wsrpcContender) Name() string {
	if c.rawEcho {
		return "wsrpc-rawecho"
	}
	return "wsrpc"
}

type wsrpcServer struct {
	rpc  *wsrpc.Server
	http *loopbackHTTP
	svc  *Service
	grab *grabSlot[*wsrpc.Peer]
}

func sumMethod(svc *Service) func(context.Context, [2]int) (int, error) {
	return func(_ context.Context, p [2]int) (int, error) { return svc.Sum(p[0], p[1]), nil }
}

func (c wsrpcContender) Listen(svc *Service) (Server, error) {
	s := &wsrpcServer{svc: svc, grab: newGrabSlot[*wsrpc.Peer]()}
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "sum", sumMethod(svc))
	if c.rawEcho {
		m.HandleRaw("echo", rawEcho)
	} else {
		wsrpc.Register(m, "echo", func(_ context.Context, p [1]string) (string, error) {
			return svc.Echo(p[0]), nil
		})
	}
	wsrpc.Register(m, "note", func(_ context.Context, _ [1]int) (struct{}, error) {
		svc.Note()
		return struct{}{}, nil
	})
	wsrpc.Register(m, "grab", func(ctx context.Context, _ struct{}) (bool, error) {
		s.grab.put(wsrpc.PeerFromContext(ctx))
		return true, nil
	})
	s.rpc = wsrpc.NewServer(&wsrpc.ServerOptions{Methods: m})
	h, err := serveLoopback(s.rpc)
	if err != nil {
		return nil, err
	}
	s.http = h
	return s, nil
}

// rawEcho answers params [x] with x, undecoded. wsrpc validates the params
// before the handler runs and a raw result before it is sent, so trimming
// the brackets is all that is left to do.
func rawEcho(_ context.Context, params json.RawMessage) (any, error) {
	p := bytes.TrimSpace(params)
	if len(p) < 2 || p[0] != '[' || p[len(p)-1] != ']' {
		return nil, &wsrpc.Error{Code: wsrpc.CodeInvalidParams, Message: "want [s]"}
	}
	return json.RawMessage(bytes.TrimSpace(p[1 : len(p)-1])), nil
}

func (s *wsrpcServer) Close() error {
	err := s.http.Close() // stop accepting; WebSocket conns are hijacked
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if serr := s.rpc.Shutdown(ctx); err == nil {
		err = serr
	}
	return err
}

func (s *wsrpcServer) Dial(ctx context.Context, _ DialOptions) (Conn, error) {
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "sum", sumMethod(s.svc))
	p, err := wsrpc.Dial(ctx, s.http.URL, &wsrpc.DialOptions{Methods: m})
	if err != nil {
		return nil, err
	}
	return &wsrpcConn{p: p, s: s}, nil
}

type wsrpcConn struct {
	p *wsrpc.Peer
	s *wsrpcServer
}

func (c *wsrpcConn) Sum(ctx context.Context, a, b int) (int, error) {
	var r int
	err := c.p.Call(ctx, "sum", [2]int{a, b}, &r)
	return r, err
}

func (c *wsrpcConn) Echo(ctx context.Context, s string) (string, error) {
	var r string
	err := c.p.Call(ctx, "echo", [1]string{s}, &r)
	return r, err
}

func (c *wsrpcConn) SumBatch(ctx context.Context, n int) error {
	res := make([]int, n)
	calls := make([]*wsrpc.BatchCall, n)
	err := c.p.Batch(ctx, func(b *wsrpc.Batch) {
		for i := range n {
			calls[i] = b.Call("sum", [2]int{i, 2}, &res[i])
		}
	})
	if err != nil {
		return err
	}
	for i, bc := range calls {
		if err := bc.Err(); err != nil {
			return err
		}
		if res[i] != i+2 {
			return fmt.Errorf("wsrpc batch: got %d want %d", res[i], i+2)
		}
	}
	return nil
}

func (c *wsrpcConn) Notify(ctx context.Context) error {
	return c.p.Notify(ctx, "note", [1]int{1})
}

func (c *wsrpcConn) Reverse(ctx context.Context) (func(context.Context) (int, error), error) {
	if err := c.p.Call(ctx, "grab", nil, nil); err != nil {
		return nil, err
	}
	var sp *wsrpc.Peer
	select {
	case sp = <-c.s.grab.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return func(ctx context.Context) (int, error) {
		var r int
		err := sp.Call(ctx, "sum", [2]int{1, 2}, &r)
		return r, err
	}, nil
}

func (c *wsrpcConn) Close() error { return c.p.Close() }
