package wsrpc

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/coder/websocket"
)

// This file sends to a Server's peers without waiting for any of them. A
// broadcast is encoded once; the same bytes go into a bounded outbound queue
// per peer, which a goroutine drains with the peer's ordinary writes (so
// Options.WriteTimeout holds). The goroutine exists only while its queue is
// not empty: an idle peer keeps its one reading goroutine and nothing more.
// A peer whose queue overflows does not read fast enough: it is closed with
// status 1008, and the other peers never wait for it.

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

// Broadcast sends the notification method with params to every connected
// peer for which filter returns true (every peer when filter is nil), and
// returns how many it was queued for. It never waits for a peer: params are
// encoded once (with Options.Codec), and the same message is added to each
// peer's outbound queue, which the peer sends on its own, in order. A peer
// that already has Options.MaxOutbound messages waiting is closed with
// status 1008 (policy violation) instead, and is not counted; so are
// peers that are closing.
//
// Broadcasts reach each peer in the order they were made; they are not
// ordered with the peer's other messages (calls, Notify). filter runs on
// the calling goroutine, once per peer, with no lock held. A connection
// whose handshake is completing as Broadcast runs gets the message too,
// once its peer exists (filter then runs on the goroutine serving the
// upgrade), and is not counted in sent. The error is about encoding (the
// message is sent to nobody), or ctx ending, which stops the broadcast
// part way.
func (s *Server) Broadcast(ctx context.Context, method string, params any, filter func(*Peer) bool) (sent int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	msg := appendNotificationHead(nil, method)
	if msg, err = appendParams(msg, params, s.cfg.Codec); err != nil {
		return 0, fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	if int64(len(msg)) > s.cfg.MaxMessageSize {
		return 0, fmt.Errorf("%w: notification of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(msg), s.cfg.MaxMessageSize)
	}
	s.mu.Lock()
	peers := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	// Connections whose handshake is completing get it once connected:
	// their clients may have seen the handshake complete already.
	for u := range s.upgrades {
		if len(u.pending) < s.cfg.MaxOutbound {
			u.pending = append(u.pending, pendingBroadcast{msg, filter})
		}
	}
	s.mu.Unlock()
	for _, p := range peers {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		if filter != nil && !filter(p) {
			continue
		}
		if p.enqueue(msg) {
			sent++
		}
	}
	return sent, nil
}

// outbound is a peer's queue of broadcast messages, guarded by Peer.mu.
type outbound struct {
	q        [][]byte // messages waiting, shared with other peers
	bytes    int64    // their total size
	busy     bool     // a goroutine is draining q
	overflow bool     // q overflowed: the peer is being closed
}

// drop empties the queue of a closing peer.
func (o *outbound) drop() { o.q, o.bytes = nil, 0 }

// enqueue adds msg to the peer's outbound queue, starting the goroutine that
// drains it if none runs. msg is shared with other peers: nobody may modify
// it. It reports whether msg was queued: a queue over Options.MaxOutbound
// messages or Options.MaxPeerBytes bytes closes the peer instead.
func (p *Peer) enqueue(msg []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.out
	if p.closing || o.overflow {
		return false
	}
	if len(o.q) >= p.cfg.MaxOutbound || o.bytes > 0 && o.bytes+int64(len(msg)) > p.cfg.MaxPeerBytes {
		// violation waits for the closing handshake, which waits for a
		// writer stuck on this very peer: do it on a goroutine of the
		// peer's own, which Close waits for.
		o.overflow = true
		p.launch(func() {
			p.violation(websocket.StatusPolicyViolation, "outbound queue overflow: not reading fast enough")
		})
		return false
	}
	o.q = append(o.q, msg)
	o.bytes += int64(len(msg))
	if !o.busy {
		o.busy = p.launch(p.drainOutbound)
	}
	return true
}

// drainOutbound writes the outbound queue until it is empty or the peer
// closes, then returns.
func (p *Peer) drainOutbound() {
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
		p.mu.Unlock()
		// A failed write closes the peer; the next turn sees it.
		p.write(msg)
	}
}
