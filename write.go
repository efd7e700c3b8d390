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
	select {
	case p.writeSem <- struct{}{}:
	default:
		select {
		case p.writeSem <- struct{}{}:
		case <-done:
			return errWriteAbandoned
		case <-p.done:
			return p.Err()
		}
	}
	select {
	case <-p.done:
		// Closed: nothing but the closing handshake goes out any more,
		// not even an answer whose handler returned after Close began.
		<-p.writeSem
		return p.Err()
	default:
	}
	p.writeWatch.begin()
	err := p.conn.writeMessage(b)
	p.writeWatch.end()
	<-p.writeSem
	if err != nil {
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
	return nil
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
