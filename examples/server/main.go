// Command server serves the example contract (package examples/api) over
// WebSocket JSON-RPC at /rpc.
//
//	go run ./examples/server -addr 127.0.0.1:8095
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
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8095", "listen address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := api.NewServer(&wsrpc.Options{
		Logger: logger,
		OnConnect: func(p *wsrpc.Peer) {
			logger.Info("connected", "remote", p.HTTPRequest().RemoteAddr)
		},
		OnDisconnect: func(p *wsrpc.Peer) {
			logger.Info("disconnected", "remote", p.HTTPRequest().RemoteAddr, "why", p.Err())
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/rpc", srv)
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
	logger.Info("serving", "url", "ws://"+*addr+"/rpc")
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
