package wsrpc

import (
	"context"
	"encoding/json"
	"strconv"
)

// This file is cancellation on the wire (Options.CancelMethod, LSP's
// $/cancelRequest): a caller that gives up tells the other side, and a
// request the other side gives up on has its handler's context cancelled
// and is answered CodeRequestCancelled. Without a CancelMethod none of it
// runs, and a request costs no context of its own.

// isCancel reports whether env is the cancel notification.
func (p *Peer) isCancel(env *envelope) bool {
	name := p.cfg.CancelMethod
	if name == "" || env.id != nil || !env.isRequest() {
		return false
	}
	if !env.methodEscaped {
		return string(env.method[1:len(env.method)-1]) == name
	}
	return env.methodName() == name
}

// cancelIncoming acts on a cancel notification, on the reading goroutine:
// it must not wait behind the notification it may be cancelling, nor
// behind any other. The request it names, running or queued, is marked;
// a running handler's context is cancelled. Unknown ids are ignored, as
// are params without an id.
func (p *Peer) cancelIncoming(params []byte) {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(params, &v) != nil || len(v.ID) == 0 || !validID(v.ID) {
		p.cfg.log.Debug("wsrpc: ignored a cancel notification without an id", "params", string(params))
		return
	}
	id := v.ID // compared raw, as the request's id was recorded
	p.mu.Lock()
	in := p.tracked(id)
	var cancel context.CancelFunc
	if in != nil {
		in.cancelled = true
		cancel = in.cancel
	}
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// dispatchCancellable runs a request under a context of its own, which a
// cancel notification cancels. A request cancelled before it runs never
// runs; one cancelled while it runs is answered CodeRequestCancelled,
// whatever its handler returns.
func (p *Peer) dispatchCancellable(in *inbound) (any, error) {
	ctx, cancel := context.WithCancel(p.slotCtx)
	defer cancel()
	p.mu.Lock()
	early := in.cancelled
	in.cancel = cancel
	p.mu.Unlock()
	if early {
		in.req = Request{ID: in.env.id, Method: in.env.methodName()}
		return nil, ErrRequestCancelled
	}
	res, err := p.dispatch(ctx, &in.env, &in.req)
	p.mu.Lock()
	late := in.cancelled
	in.cancel = nil
	p.mu.Unlock()
	if late {
		return nil, ErrRequestCancelled
	}
	return res, err
}

// cancelOutgoing tells the other side that the caller of ids gave up. The
// notifications go through the peer's outbound queue, so that the caller
// returns at once; with the queue full they are dropped (the answers,
// when they come, are dropped anyway).
func (p *Peer) cancelOutgoing(ids []uint64) {
	for _, id := range ids {
		msg := appendNotificationHead(nil, p.cfg.CancelMethod)
		msg = append(msg, `,"params":{"id":`...)
		msg = strconv.AppendUint(msg, id, 10)
		msg = append(msg, "}}"...)
		if queued, _ := p.offer(msg); !queued {
			p.cfg.log.Debug("wsrpc: cancel notification dropped: outbound queue full", "id", id)
		}
	}
}
