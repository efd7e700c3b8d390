package wsrpc

import (
	"context"
	"sync/atomic"

	"github.com/coder/websocket"
)

// This file sends to a Server's peers. A broadcast is encoded once; the
// same bytes go into a bounded outbound queue per peer
// (ServerOptions.MaxOutbound messages, Limits.MaxPeerBytes bytes), which a
// goroutine drains with the peer's ordinary writes (so Limits.WriteTimeout
// holds). The goroutine exists only while its queue is not empty: an idle
// peer keeps its one reading goroutine and nothing more. When a peer's
// queue is full, ServerOptions.SlowPeers decides: Broadcast waits for room
// (the default), drops the message for that peer, or closes it with status
// 1008.

// peerIDs numbers peers, process-wide.
var peerIDs atomic.Uint64

// ID returns the peer's number: unique among the peers of this process,
// never 0, and the same for the peer's whole life. A Server's peers get
// theirs when they connect, in order; other peers when ID is first called.
// Server.Peer finds a peer by it.
func (p *Peer) ID() uint64 {
	if id := p.id.Load(); id != 0 {
		return id
	}
	p.id.CompareAndSwap(0, peerIDs.Add(1))
	return p.id.Load()
}

// Peer returns the connected peer whose ID is id, or nil. It looks through
// every peer, so its cost grows with their number.
func (s *Server) Peer(id uint64) *Peer {
	if id == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.peers {
		if p.id.Load() == id {
			return p
		}
	}
	return nil
}

// SlowPeerPolicy says what Broadcast does for a peer whose outbound queue
// is full (ServerOptions.SlowPeers).
type SlowPeerPolicy int

const (
	// SlowPeerWait waits for room in the peer's queue, bounded by
	// Broadcast's context: a burst of broadcasts is slowed down to the
	// pace of the slowest reader instead of cutting it off. A peer that
	// stops reading altogether is closed by Limits.WriteTimeout, and
	// Broadcast goes on. The default.
	SlowPeerWait SlowPeerPolicy = iota
	// SlowPeerDrop leaves that peer out of this broadcast (counted in
	// BroadcastResult.Dropped); it gets the next ones that fit.
	SlowPeerDrop
	// SlowPeerClose closes that peer with status 1008 (policy violation),
	// counted in BroadcastResult.Closed.
	SlowPeerClose
)

// BroadcastResult says what a Broadcast did.
type BroadcastResult struct {
	Sent    int // peers the message was queued for
	Dropped int // peers it was not queued for, their queues full (SlowPeerDrop)
	Closed  int // peers closed, their queues full (SlowPeerClose)
}

// Broadcast sends the notification method with params to every connected
// peer for which filter returns true (every peer when filter is nil).
// params are encoded once (with ServerOptions.Codec), and the same message is
// added to each peer's outbound queue, which the peer sends on its own, in
// order; Broadcast returns when the message is queued, not written. A peer
// whose queue is full is treated as ServerOptions.SlowPeers says: by default
// Broadcast waits for room, as long as ctx allows. Peers that are closing
// are skipped.
//
// Broadcasts reach each peer in the order they were made; they are not
// ordered with the peer's other messages (calls, Notify). filter runs on
// the calling goroutine, once per peer, with no lock held. A connection
// whose handshake is completing as Broadcast starts gets the message too:
// Broadcast waits for it to become a peer (or fail), as long as ctx
// allows. The error is about encoding (the message is sent to nobody), or
// ctx ending, which stops the broadcast part way: the result counts the
// peers done by then.
func (s *Server) Broadcast(ctx context.Context, method string, params any, filter func(*Peer) bool) (res BroadcastResult, err error) {
	if err := ctx.Err(); err != nil {
		return res, err
	}
	msg, err := s.encodeNotification(method, params)
	if err != nil {
		return res, err
	}
	return s.broadcast(ctx, msg, filter)
}

// broadcast queues msg for the peers filter selects (all for nil), and for
// the connections completing their handshake, which it waits for.
func (s *Server) broadcast(ctx context.Context, msg []byte, filter func(*Peer) bool) (res BroadcastResult, err error) {
	s.mu.Lock()
	peers := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	// Connections whose handshake is completing get it once they are
	// peers: their clients may have seen the handshake complete already.
	upgrades := make([]*upgrade, 0, len(s.upgrades))
	for u := range s.upgrades {
		upgrades = append(upgrades, u)
	}
	s.mu.Unlock()
	send := func(p *Peer) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if filter != nil && !filter(p) {
			return nil
		}
		return s.deliver(ctx, p, msg, &res)
	}
	for _, p := range peers {
		if err := send(p); err != nil {
			return res, err
		}
	}
	// The handshakes end within WriteTimeout (the 101 response's write
	// deadline), so that a client that does not read it holds up
	// broadcasts no longer than one that stops reading as a peer.
	for _, u := range upgrades {
		select {
		case <-u.done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		if u.peer != nil {
			if err := send(u.peer); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// deliver queues msg for p, following ServerOptions.SlowPeers if p's queue is
// full, and counts the outcome in res. It fails only when ctx ends while it
// waits for room.
func (s *Server) deliver(ctx context.Context, p *Peer, msg []byte, res *BroadcastResult) error {
	for {
		queued, room := p.offer(msg)
		switch {
		case queued:
			res.Sent++
		case room == nil: // closing
		case s.cfg.SlowPeers == SlowPeerDrop:
			res.Dropped++
		case s.cfg.SlowPeers == SlowPeerClose:
			p.closeSlow()
			res.Closed++
		default:
			select {
			case <-room:
				continue
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
}

// outbound is a peer's queue of broadcast messages, guarded by Peer.mu.
type outbound struct {
	q     [][]byte // messages waiting, shared with other peers
	bytes int64    // their total size
	busy  bool     // a goroutine is draining q
	// room is closed when drainOutbound takes a message, for broadcasts
	// waiting for room; made when one waits.
	room   chan struct{}
	closed bool // closeSlow ran
}

// drop empties the queue of a closing peer.
func (o *outbound) drop() {
	o.q, o.bytes = nil, 0
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

// offer adds msg to the peer's outbound queue if there is room, starting
// the goroutine that drains it if none runs, and reports it (queued). If
// the queue is full (ServerOptions.MaxOutbound messages or Limits.MaxPeerBytes
// bytes) it returns a channel closed when there may be room; if the peer
// is closing, neither. msg is shared with other peers: nobody may modify
// it.
func (p *Peer) offer(msg []byte) (queued bool, room <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.out
	if p.closing {
		return false, nil
	}
	if len(o.q) >= p.cfg.MaxOutbound || o.bytes > 0 && o.bytes+int64(len(msg)) > p.cfg.MaxPeerBytes {
		if o.room == nil {
			o.room = make(chan struct{})
		}
		return false, o.room
	}
	o.q = append(o.q, msg)
	o.bytes += int64(len(msg))
	if !o.busy {
		o.busy = p.launch(p.drainOutbound)
	}
	return true, nil
}

// closeSlow closes a peer whose outbound queue is full (SlowPeerClose).
func (p *Peer) closeSlow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.closed || p.closing {
		return
	}
	p.out.closed = true
	// violation waits for the closing handshake, which waits for the
	// write in progress: on a goroutine of the peer's own, which Close
	// waits for.
	p.launch(func() {
		p.violation(websocket.StatusPolicyViolation, "outbound queue overflow: not reading fast enough")
	})
}

// drainOutbound writes the outbound queue until it is empty or the peer
// closes, then returns. It counts as a writer for as long as it drains, so
// that a burst of broadcasts goes out gathered (framewrite.go), as few
// system calls as fit, and leaving sends what is left.
func (p *Peer) drainOutbound() {
	p.writers.Add(1)
	defer p.leaveWriting()
	for {
		p.mu.Lock()
		o := &p.out
		if p.closing || len(o.q) == 0 {
			o.q = nil // an idle peer holds no memory for broadcasts
			o.busy = false
			p.mu.Unlock()
			return
		}
		msg := o.q[0]
		o.q[0] = nil
		o.q = o.q[1:]
		o.bytes -= int64(len(msg))
		if o.room != nil {
			close(o.room)
			o.room = nil
		}
		p.mu.Unlock()
		// A failed write closes the peer; the next turn sees it.
		p.write(msg)
	}
}
