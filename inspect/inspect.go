// Package inspect is a live view of a wsrpc Server, in a page it serves:
// the connected peers, each method's calls, errors, latency percentiles
// and bytes, and the calls per second of the last minute.
//
// An Inspector is a [wsrpc.Observer] that counts what it sees, a pair of
// methods the page calls, and the page:
//
//	in := inspect.New(nil)
//	defer in.Close()
//	methods := wsrpc.NewMethods()
//	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: in})
//	in.Register(methods, srv, wsrpc.Guarded(wsrpc.RequireIdentity("role", "admin")))
//	mux.Handle("/rpc", srv)
//	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
//	mux.Handle("/debug/wsrpc", in.Handler())
//
// With other Observers (the otel and prom modules), combine them:
// Observer: wsrpc.Observers(in, metrics).
//
// # Methods
//
// Register adds two methods to the table, which the page calls over its
// WebSocket connection:
//
//	inspect.snapshot  returns a Snapshot: peers, methods, calls per second
//	inspect.watch     returns a Snapshot, and from then on sends the calling
//	                  peer the notification inspect.update, with a new
//	                  Snapshot, once a second until it disconnects
//
// A Snapshot shows the peers' identities and remote addresses, and the
// traffic of the whole service: guard these methods, by passing a guard to
// Register as above, or with Methods.Guard on a table of their own. The
// page itself holds no data, and is served to anyone who reaches its path.
//
// # What it counts
//
// Each method in each direction (in: served here; out: called from here)
// has its calls and notifications ended, its errors (an Event with an Err
// or a Code), the bytes of requests and responses, and a histogram of
// durations with fixed buckets, from which come p50, p90 and p99: each is
// the upper bound of its bucket (or the longest call seen), never below
// the true value and at most 25% above it. Names the method table does not
// have count under [Unknown], and the methods past Options.MaxMethods under
// [Other], so that no client can grow the Inspector's memory. Recording a
// call takes no lock and allocates nothing.
//
// # Goroutines
//
// One, while any peer watches: started by the first inspect.watch, it
// publishes a Snapshot every second to the peers watching (a topic of the
// Server, Server.Publish), and returns when the last of them has
// disconnected, or at Close.
package inspect

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsrpc/wsrpc"
)

// Options configure New. A nil *Options takes every default.
type Options struct {
	// MaxMethods bounds the methods counted, each direction counting
	// apart; the calls of the others count under Other. Default 1024.
	MaxMethods int
	// MaxPeers bounds the peers a Snapshot lists (those connected
	// longest); Snapshot.PeerCount has their number. Default 1000.
	MaxPeers int
	// Identity turns a peer's identity (what Authenticate returned) into
	// what the page shows. Default: fmt.Sprint of it, cut to 200 bytes.
	// Set it when identities hold secrets, such as tokens.
	Identity func(identity any) string
	// Script is the URL the page imports wsrpc.js from, where the
	// application serves wsrpc.ScriptHandler. Default "/wsrpc.js".
	Script string
	// Route is the URL of the Server the page connects to: a path of the
	// page's host ("/rpc", the default), or a ws:, wss:, http: or https:
	// URL.
	Route string
	// Title is the page's title. Default "wsrpc inspector".
	Title string
}

// Inspector counts the calls it observes, serves them with its methods,
// and serves the page that shows them. Its methods are safe for
// concurrent use. One Inspector observes any number of peers, but
// registers its methods for one Server.
type Inspector struct {
	methods  *table
	rate     [2]rate // [incoming, outgoing]
	maxPeers int
	identity func(any) string
	page     page

	topic string // the Server topic watchers join: this Inspector's own

	// ctx ends at Close; it bounds the publishing of updates.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards what follows.
	mu       sync.Mutex
	srv      *wsrpc.Server
	table    *wsrpc.Methods
	watchers map[*wsrpc.Peer]struct{}
	running  bool // the ticker goroutine runs (see loop)
	closed   bool
	wg       sync.WaitGroup // the ticker goroutine

	// The clock, which tests replace.
	now       func() time.Time
	newTicker func(time.Duration) ticker
}

var _ wsrpc.Observer = (*Inspector)(nil)

// New returns an Inspector configured by opts (nil for defaults). It
// panics if Options.Script or Options.Route is not a URL.
func New(opts *Options) *Inspector {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxMethods <= 0 {
		o.MaxMethods = 1024
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = 1000
	}
	if o.Identity == nil {
		o.Identity = identityString
	}
	if o.Script == "" {
		o.Script = "/wsrpc.js"
	}
	if o.Route == "" {
		o.Route = "/rpc"
	}
	if o.Title == "" {
		o.Title = "wsrpc inspector"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Inspector{
		methods:   newTable(o.MaxMethods),
		maxPeers:  o.MaxPeers,
		identity:  o.Identity,
		page:      newPage(o.Script, o.Route, o.Title),
		topic:     "wsrpc.inspect." + randomID(),
		ctx:       ctx,
		cancel:    cancel,
		watchers:  map[*wsrpc.Peer]struct{}{},
		now:       time.Now,
		newTicker: newTimeTicker,
	}
}

// Start returns ctx: the Inspector counts calls when they end.
func (in *Inspector) Start(ctx context.Context, _ *wsrpc.Event) context.Context { return ctx }

// End counts e.
func (in *Inspector) End(_ context.Context, e *wsrpc.Event) {
	in.methods.get(e).record(e)
	in.rate[dir(e.Outgoing)].add(e.Start.Add(e.Duration).Unix())
}

// Close stops the updates to watching peers and waits for the goroutine
// that sends them to return; the watching peers stay connected.
// inspect.watch fails from then on. The Inspector goes on counting what it
// observes, and answering inspect.snapshot. Close may be called any
// number of times.
func (in *Inspector) Close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	watchers := in.watchers
	in.watchers = map[*wsrpc.Peer]struct{}{}
	in.mu.Unlock()
	in.cancel()
	in.wg.Wait()
	for p := range watchers {
		p.Leave(in.topic)
	}
}

// identityString is the default Options.Identity.
func identityString(id any) string {
	if id == nil {
		return ""
	}
	return cut(fmt.Sprint(id), 200)
}

// cut returns s cut to at most n bytes, on a rune boundary, with an
// ellipsis when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
