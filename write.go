package wsrpc

import (
	"errors"
	"time"
)

// This file is the writing side of a Peer: writers take turns, each
// message is written whole, and a write that does not finish within
// Limits.WriteTimeout closes the connection (the other side stopped
// reading). A caller's context never reaches the socket: it only bounds
// the wait for a turn.

// write sends one message.
func (p *Peer) write(b []byte) error { return p.writeCtx(nil, b) }

// errWriteAbandoned is writeCtx giving up before its turn to write came.
var errWriteAbandoned = errors.New("wsrpc: write abandoned")

// writeCtx is write for a caller that stops waiting for its turn when done
// is closed (nil: never), returning errWriteAbandoned with nothing written.
// A write that has begun is never interrupted.
func (p *Peer) writeCtx(done <-chan struct{}, b []byte) error {
	p.writers.Add(1)
	select {
	case p.writeSem <- struct{}{}:
	default:
		select {
		case p.writeSem <- struct{}{}:
		case <-done:
			p.leaveWriting()
			return errWriteAbandoned
		case <-p.done:
			p.leaveWriting()
			return p.Err()
		}
	}
	select {
	case <-p.done:
		// Closed: nothing but the closing handshake goes out any more,
		// not even an answer whose handler returned after Close began.
		<-p.writeSem
		p.leaveWriting()
		return p.Err()
	default:
	}
	// With another writer waiting for its turn, b may go out with that
	// writer's message: one system call for both (framewrite.go).
	gather := p.writers.Load() > 1
	if gather {
		p.conn.setGather(true)
	}
	p.writeWatch.begin()
	err := p.conn.writeMessage(b)
	p.writeWatch.end()
	if gather {
		p.conn.setGather(false)
	}
	<-p.writeSem
	if err != nil {
		p.writers.Add(-1)
		return p.writeFailed(err)
	}
	return p.leaveWriting()
}

// leaveWriting counts a writer out of writeCtx (or out of holding answers,
// or out of draining a broadcast queue). The last one out sends the frames
// gathered for a writer that was waiting then (and has written since, or
// given up): its turn comes at once, unless a new writer has taken it, and
// that one is then the last out, or writes them with its own. It does so
// on a closed peer too: what was gathered may include the close frame
// coder/websocket sent, on its own, in answer to the other side's while a
// message was being written.
func (p *Peer) leaveWriting() error {
	if p.writers.Add(-1) != 0 || !p.conn.hasGathered() {
		return nil
	}
	select {
	case p.writeSem <- struct{}{}:
	default:
		return nil
	}
	p.writeWatch.begin()
	err := p.conn.flushGathered()
	p.writeWatch.end()
	<-p.writeSem
	if err != nil {
		return p.writeFailed(err)
	}
	return nil
}

// writeFailed fails the peer after a write failed with err.
func (p *Peer) writeFailed(err error) error {
	// The reader may know better why the connection ended: the other
	// side's close frame (1009, say) is often already queued when the
	// reset it sent right after fails this write. Give the reader a
	// moment to report it before settling for the write error.
	grace := time.NewTimer(writeErrGrace)
	select {
	case <-p.done:
	case <-grace.C:
	}
	grace.Stop()
	p.fail(err)
	return p.Err()
}

// writeErrGrace is how long a failed write waits for the reader to report
// why the connection ended.
const writeErrGrace = 20 * time.Millisecond

// replyError answers a message that could not be served with e.
func (p *Peer) replyError(id []byte, e *Error) {
	p.cfg.log.Debug("wsrpc: refused message", "code", e.Code, "message", e.Message)
	wb := getBuf()
	wb.b = appendErrorResponse(wb.b[:0], id, e)
	p.write(wb.b)
	putBuf(wb)
}

// replyBusy answers work that was not admitted.
func (p *Peer) replyBusy(in *inbound, e *Error) {
	if in.batch == nil {
		p.replyError(in.env.id, e)
		return
	}
	in.batch.replyAll(p, e)
}
