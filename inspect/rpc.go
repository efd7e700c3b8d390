package inspect

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/wsrpc/wsrpc"
)

// This file is the Inspector's methods, the Snapshot they return, and the
// goroutine that sends watching peers an update every second.

// Snapshot is what the Inspector knows at one moment: the result of
// inspect.snapshot and inspect.watch, and the params of inspect.update.
type Snapshot struct {
	// Time is when it was taken, by the server's clock.
	Time time.Time `json:"time"`
	// Peers are the connected peers of the Server, by ID (the oldest
	// first), at most Options.MaxPeers of them; PeerCount is how many
	// there are.
	Peers     []PeerInfo `json:"peers"`
	PeerCount int        `json:"peerCount"`
	// Methods are every method counted, in both directions, and the
	// methods of the table not called yet (direction "in"; unless
	// Options.MaxMethods was reached); sorted by name, then direction,
	// Unknown and Other last.
	Methods []MethodStats `json:"methods"`
	// Rate is the calls and notifications ended in each of the last 60
	// seconds.
	Rate Rate `json:"rate"`
}

// PeerInfo is one connected peer.
type PeerInfo struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name,omitempty"`     // Peer.Name
	Identity string `json:"identity,omitempty"` // Options.Identity of Peer.Identity
	Remote   string `json:"remote,omitempty"`   // the upgrade request's RemoteAddr
	// Since is when it connected (Peer.ConnectedAt).
	Since time.Time `json:"since"`
	// Watching: it called inspect.watch (an inspector page).
	Watching bool `json:"watching,omitempty"`
}

// MethodStats are one method's numbers in one direction, since the
// Inspector was made.
type MethodStats struct {
	Method string `json:"method"`
	// Direction is "in" (served here) or "out" (called from here).
	Direction string `json:"direction"`
	// Calls counts calls and notifications ended; Errors those that
	// failed.
	Calls  uint64 `json:"calls"`
	Errors uint64 `json:"errors"`
	// P50, P90 and P99 are percentiles of the durations, in seconds (see
	// the package documentation for their precision); 0 without calls.
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	// BytesIn and BytesOut are the bytes received and sent: incoming, the
	// params and the response messages; outgoing, the request messages
	// and the response messages.
	BytesIn  uint64 `json:"bytesIn"`
	BytesOut uint64 `json:"bytesOut"`
}

// Rate is the calls and notifications ended per second, in each
// direction, over the 60 seconds before Snapshot.Time: In[59] and Out[59]
// are those of the last whole second, which ended at End.
type Rate struct {
	End time.Time `json:"end"`
	In  []uint64  `json:"in"`
	Out []uint64  `json:"out"`
}

// The methods Register adds, and the notification of watchers.
const (
	SnapshotMethod = "inspect.snapshot"
	WatchMethod    = "inspect.watch"
	UpdateMethod   = "inspect.update"
)

// Register adds inspect.snapshot and inspect.watch to m, with middleware
// mw (a guard: see the package documentation), about srv, the Server that
// serves m and observes with this Inspector. It panics when called twice.
func (in *Inspector) Register(m *wsrpc.Methods, srv *wsrpc.Server, mw ...wsrpc.Middleware) {
	if m == nil || srv == nil {
		panic("inspect: Register with a nil method table or Server")
	}
	in.mu.Lock()
	if in.srv != nil {
		in.mu.Unlock()
		panic("inspect: Register called twice")
	}
	in.srv, in.table = srv, m
	in.mu.Unlock()
	// Any params are ignored (json.RawMessage takes them whole).
	wsrpc.Register(m, SnapshotMethod, func(ctx context.Context, _ json.RawMessage) (Snapshot, error) {
		return in.Snapshot(), nil
	}, mw...)
	wsrpc.Register(m, WatchMethod, func(ctx context.Context, _ json.RawMessage) (Snapshot, error) {
		if err := in.watch(wsrpc.PeerFromContext(ctx)); err != nil {
			return Snapshot{}, err
		}
		return in.Snapshot(), nil
	}, mw...)
}

// Snapshot returns what the Inspector knows now. Without Register, it has
// no peers, and only the methods that were called.
func (in *Inspector) Snapshot() Snapshot {
	now := in.now()
	in.mu.Lock()
	srv, tbl := in.srv, in.table
	in.mu.Unlock()
	snap := Snapshot{Time: now, Peers: []PeerInfo{}}
	if srv != nil {
		snap.Peers, snap.PeerCount = in.peers(srv)
	}
	snap.Methods = in.methodStats(tbl)
	last := now.Unix() - 1
	snap.Rate = Rate{End: time.Unix(last+1, 0).UTC(), In: in.rate[0].series(last), Out: in.rate[1].series(last)}
	return snap
}

func (in *Inspector) peers(srv *wsrpc.Server) ([]PeerInfo, int) {
	var ps []*wsrpc.Peer
	for p := range srv.Peers() {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *wsrpc.Peer) int { return cmp.Compare(a.ID(), b.ID()) })
	n := len(ps)
	ps = ps[:min(n, in.maxPeers)]
	in.mu.Lock()
	watching := make([]bool, len(ps))
	for i, p := range ps {
		_, watching[i] = in.watchers[p]
	}
	in.mu.Unlock()
	out := make([]PeerInfo, len(ps))
	for i, p := range ps {
		out[i] = PeerInfo{
			ID: p.ID(), Name: p.Name(), Identity: in.identity(p.Identity()),
			Since: p.ConnectedAt(), Watching: watching[i],
		}
		if r := p.HTTPRequest(); r != nil {
			out[i].Remote = r.RemoteAddr
		}
	}
	return out, n
}

func (in *Inspector) methodStats(tbl *wsrpc.Methods) []MethodStats {
	var out []MethodStats
	seen := map[string]bool{}
	for _, s := range in.methods.all() {
		fixed := s.method == Unknown || s.method == Other
		n := s.calls.Load()
		if fixed && n == 0 {
			continue
		}
		if !s.outgoing && !fixed {
			seen[s.method] = true
		}
		ps := s.percentiles(0.5, 0.9, 0.99)
		out = append(out, MethodStats{
			Method: s.method, Direction: direction(s.outgoing),
			Calls: n, Errors: s.errors.Load(),
			P50: ps[0].Seconds(), P90: ps[1].Seconds(), P99: ps[2].Seconds(),
			BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		})
	}
	// The methods of the table not called yet, unless some count under
	// Other: those may have been.
	if tbl != nil && !in.methods.isFull() {
		for _, name := range tbl.Names() {
			if !seen[name] {
				out = append(out, MethodStats{Method: name, Direction: "in"})
			}
		}
	}
	rank := func(m MethodStats) int {
		switch m.Method {
		case Unknown:
			return 1
		case Other:
			return 2
		}
		return 0
	}
	slices.SortFunc(out, func(a, b MethodStats) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Method, b.Method), cmp.Compare(a.Direction, b.Direction))
	})
	return out
}

func direction(outgoing bool) string {
	if outgoing {
		return "out"
	}
	return "in"
}

// watch makes p a watcher, starting the ticker goroutine if it is the
// first.
func (in *Inspector) watch(p *wsrpc.Peer) error {
	if p == nil {
		return wsrpc.NewError(wsrpc.CodeInvalidRequest, WatchMethod+" needs a WebSocket connection", nil)
	}
	in.mu.Lock()
	srv := in.srv
	in.mu.Unlock()
	if srv.Peer(p.ID()) != p {
		return wsrpc.NewError(wsrpc.CodeInvalidRequest, WatchMethod+": not a peer of the inspected Server", nil)
	}
	// A Broker's error leaves the peer joined here, which is where the
	// updates come from.
	if err := p.Join(in.topic); errors.Is(err, wsrpc.ErrNotServed) {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return wsrpc.NewError(wsrpc.CodeServerBusy, "inspector closed", nil)
	}
	in.watchers[p] = struct{}{}
	if !in.running {
		in.running = true
		t := in.newTicker(time.Second)
		in.wg.Add(1)
		go in.loop(srv, t)
	}
	return nil
}

// loop is the ticker goroutine: every tick, it publishes a Snapshot to the
// watchers. It waits on one watcher's Done at a time, and returns as soon
// as none is left (next drops those that ended), or at Close.
func (in *Inspector) loop(srv *wsrpc.Server, t ticker) {
	defer in.wg.Done()
	defer t.Stop()
	for {
		w := in.next()
		if w == nil {
			return
		}
		select {
		case <-in.ctx.Done():
			return
		case <-w.Done():
		case <-t.C():
			// Publish waits for room in a slow watcher's queue, at most
			// until Close (a watcher that stops reading altogether is
			// closed by the Server's WriteTimeout).
			srv.Publish(in.ctx, in.topic, UpdateMethod, in.Snapshot())
		}
	}
}

// next returns a watcher still connected, dropping those that are not, or
// nil, and then the goroutine is no longer running: the next watch starts
// another.
func (in *Inspector) next() *wsrpc.Peer {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	for p := range in.watchers {
		select {
		case <-p.Done():
			delete(in.watchers, p)
		default:
			return p
		}
	}
	in.running = false
	return nil
}

// ticker is the part of a time.Ticker the loop uses; tests tick by hand.
type ticker interface {
	C() <-chan time.Time
	Stop()
}

type timeTicker struct{ *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.Ticker.C }

func newTimeTicker(d time.Duration) ticker { return timeTicker{time.NewTicker(d)} }

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
