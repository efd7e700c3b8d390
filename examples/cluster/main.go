// Command cluster runs the chat of examples/chat as three instances joined
// by NATS, in one process: an embedded NATS server and three wsrpc
// servers on three loopback ports, each serving the chat page.
//
//	go run ./examples/cluster
//
// prints three URLs; open each in a window (add ?name=ada, ?name=bob...),
// pick the same room, and what is typed on one port's page shows on the
// others. Ctrl-C stops everything.
//
// Each instance has its own NATS connection and a natsbroker.Broker in its
// wsrpc.ServerOptions (chat.NewWithBroker): a message said in a room is
// Server.Publish'ed to the topic room.<room>, which reaches the room's
// members on every instance. Member lists, presence and room counts stay
// each instance's own, as in examples/chat.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsrpc/wsrpc/examples/chat/chat"
	"github.com/wsrpc/wsrpc/natsbroker"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1:8097,127.0.0.1:8098,127.0.0.1:8099", "listen addresses of the instances, comma-separated")
	natsPort := flag.Int("nats-port", -1, "port of the embedded NATS server on 127.0.0.1 (-1: any free one)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := Run(ctx, Config{Addrs: strings.Split(*addrs, ","), NATSPort: *natsPort, Logger: logger}, func(urls []string) {
		fmt.Println("chat cluster: open these in separate windows (add ?name=ada), Ctrl-C stops")
		for _, u := range urls {
			fmt.Println("  " + u)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Config is what Run starts.
type Config struct {
	Addrs    []string     // one listen address per instance ("127.0.0.1:0": any port)
	NATSPort int          // the embedded NATS server's port on 127.0.0.1; -1: any
	Logger   *slog.Logger // nil: nowhere
}

// Run starts an embedded NATS server and one chat instance per address,
// calls ready with the instances' page URLs, and serves until ctx ends;
// then it shuts everything down (the instances, gracefully, within 5 s)
// and returns.
func Run(ctx context.Context, cfg Config, ready func(urls []string)) (err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: cfg.NATSPort, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("cluster: the NATS server did not start")
	}

	type instance struct {
		nc   *nats.Conn
		chat *chat.Chat
		hs   *http.Server
		done chan error
	}
	var ins []*instance
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, in := range ins {
			if in.chat != nil {
				in.chat.Shutdown(sctx)
			}
			if in.hs != nil {
				in.hs.Shutdown(sctx)
				if serr := <-in.done; !errors.Is(serr, http.ErrServerClosed) {
					err = errors.Join(err, serr)
				}
			}
			in.nc.Close()
		}
	}()
	var urls []string
	for i, addr := range cfg.Addrs {
		in := &instance{done: make(chan error, 1)}
		if in.nc, err = nats.Connect(ns.ClientURL(), nats.Name(fmt.Sprintf("chat-%d", i+1)), nats.MaxReconnects(-1)); err != nil {
			return err
		}
		ins = append(ins, in)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		in.chat = chat.NewWithBroker(cfg.Logger.With("instance", i+1), natsbroker.New(in.nc, nil))
		in.hs = &http.Server{Handler: in.chat, ReadHeaderTimeout: 10 * time.Second}
		go func() { in.done <- in.hs.Serve(ln) }()
		urls = append(urls, "http://"+ln.Addr().String()+"/")
	}
	if ready != nil {
		ready(urls)
	}
	<-ctx.Done()
	return nil
}
