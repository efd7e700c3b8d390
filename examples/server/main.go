// Command server serves the example contract (package examples/api) at
// /rpc: WebSocket JSON-RPC, and HTTP POST on the same route; and at
// /weerpc to Flask-RPC and Quart-RPC clients (package weerpc); and the
// inspector's page at /debug/inspect, its data for local callers only.
//
//	go run ./examples/server -addr 127.0.0.1:8095
//	curl -H 'Content-Type: application/json' \
//	     -d '{"jsonrpc":"2.0","id":1,"method":"subtract","params":[42,23]}' \
//	     http://127.0.0.1:8095/rpc
//	curl -H 'Content-Type: application/json' \
//	     -d '{"weerpc":1.1,"function":"sum","data":[1,2,3]}' \
//	     http://127.0.0.1:8095/weerpc
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
	"github.com/wsrpc/wsrpc/inspect"
	"github.com/wsrpc/wsrpc/openrpc"
	"github.com/wsrpc/wsrpc/weerpc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8095", "listen address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// One record per call (method, duration, error code), then the panic
	// and error mapping inside it so that those records carry the code
	// the caller got.
	methods := api.Methods()
	methods.Use(wsrpc.Logging(logger), wsrpc.Recover(logger))
	openrpc.Serve(methods, openrpc.Info{Title: "wsrpc example", Version: "1.0.0", Servers: []openrpc.Server{{URL: "ws://" + *addr + "/rpc"}}})
	insp := inspect.New(nil)
	defer insp.Close()
	srv := api.NewServer(&wsrpc.ServerOptions{
		Methods:  methods,
		Logger:   logger,
		Observer: insp,
		OnConnect: func(p *wsrpc.Peer) {
			logger.Info("connected", "peer", p.ID(), "remote", p.HTTPRequest().RemoteAddr)
		},
		OnDisconnect: func(p *wsrpc.Peer) {
			logger.Info("disconnected", "peer", p.ID(), "remote", p.HTTPRequest().RemoteAddr, "why", p.Err())
		},
	})
	// The inspector's methods tell who is connected: local callers only.
	insp.Register(methods, srv, wsrpc.Guarded(wsrpc.AllowHosts("localhost")))
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	mux.Handle("/debug/inspect", insp.Handler())
	// The same table over weeRPC, with its middleware and guards.
	mux.Handle("/weerpc", weerpc.NewHandler(&weerpc.Options{Methods: methods, Logger: logger}))
	hs := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		hs.Shutdown(sctx)
	}()
	logger.Info("serving", "url", "ws://"+*addr+"/rpc", "post", "http://"+*addr+"/rpc")
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
