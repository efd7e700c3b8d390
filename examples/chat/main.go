// Command chat is a small web chat on the browser client, wsrpc.js: a page
// served by Go that calls the server and is called by it, over one
// WebSocket.
//
//	go run ./examples/chat -addr 127.0.0.1:8096
//
// then open http://127.0.0.1:8096/ in two browser windows (or
// http://127.0.0.1:8096/?name=ada and ?name=bob) and pick a room.
//
// It shows, in package chat (the server) and chat/index.html (the page):
//
//   - wsrpc.ScriptHandler serving wsrpc.js, which the page imports;
//   - ServerOptions.Authenticate reading the page's token option
//     (?token=name) as the user's name, refusing bad names with a 401
//     that the page sees as a HandshakeError;
//   - a wsrpc.Key holding each connection's state (name, room), set in
//     OnConnect and read by the handlers and in OnDisconnect;
//   - the page calling the server: join, say, rooms;
//   - the server sending notifications to some pages (Peer.Join on the
//     room's topic and Server.Publish: "message") or all
//     (Server.Broadcast: "rooms");
//   - the server calling the pages: "presence", a call that each page in
//     a room answers when someone joins or leaves it;
//   - the page reconnecting by itself and joining its room again (the
//     client's onopen), and a graceful Shutdown on SIGINT.
//
// test/browser/chat_test.go runs it in headless Chromium with two users;
// docs/chat.png is its screenshot.
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

	"github.com/wsrpc/wsrpc/examples/chat/chat"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8096", "listen address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c := chat.New(logger)
	hs := &http.Server{Addr: *addr, Handler: c, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Shutdown(sctx); err != nil {
			logger.Warn("shutdown", "err", err)
		}
		if err := hs.Shutdown(sctx); err != nil {
			logger.Warn("http shutdown", "err", err)
		}
	}()
	logger.Info("serving", "url", "http://"+*addr+"/")
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-done
}
