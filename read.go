package wsrpc

import (
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// This file is the reading side of a Peer: the goroutines that hold the
// reading role (role.go), reading one message at a time and routing it.
// Answers complete their calls right here (call.go: complete), so they
// never wait behind handlers; requests and notifications go to admission
// (serve.go: admit), which may give them back to be served inline.

// readLapse is how long the reading role may stay free before a reader
// takes it back (see readRole: between one and two of these). While it is
// free, requests and pings from the other side wait at most that long.
//
// While callers keep taking the role back before the lapse timer finds it
// free, the period doubles, up to maxLapseShift doublings (4 ms): the
// timer then fires a quarter as often. Each firing starts a goroutine and
// wakes a thread, and at one per millisecond that cost a lock-step caller
// of 1 KiB echoes about 5 % of its throughput. Nothing waits on the longer
// period meanwhile, since each call reads what came in before it; the
// first message after the last call of such a run waits at most two
// periods, 8 ms, and a timer that finds the role left free goes back to
// readLapse.
const readLapse = time.Millisecond

// maxLapseShift caps the doublings of the lapse period (readLapse).
const maxLapseShift = 2

// inlineBudget is how long work may run on the reading goroutine before
// reading moves to another goroutine (between one and two of these: see
// readRole). It bounds the delay a slow handler imposes on the messages
// behind it.
const inlineBudget = time.Millisecond

// roleStep applies ev to the reading role and does what the step asks
// that can be done under the lock: it starts a new reader (actSpawn),
// which serves work first if work is not nil, or releases work if the peer
// has closed. It returns the action, and for actBecome the number of the
// reader the calling goroutine becomes.
func (p *Peer) roleStep(ev roleEvent, gen uint32, work *inbound) (roleAction, uint32) {
	p.mu.Lock()
	act := p.roleStepLocked(ev, gen, p.awaiting())
	next := p.role.gen
	switch act {
	case actSpawn:
		first := work
		if p.launch(func() { p.readLoop(next, first) }) {
			work = nil
		}
	case actBecome:
		if !p.adopt() {
			act = actNone
		}
	}
	p.mu.Unlock()
	if work != nil {
		p.releaseIn(work) // the peer has closed
	}
	return act, next
}

// roleStepLocked is roleStep's state change, with p.mu held: it arms the
// timers that the step asks for.
func (p *Peer) roleStepLocked(ev roleEvent, gen uint32, pending bool) roleAction {
	act := p.role.step(ev, gen, pending)
	p.roleFree.Store(p.role.holder == roleNone)
	if p.role.armLapse {
		p.role.armLapse = false
		p.lapseTimer.Reset(p.lapseAfter << p.role.lapseShift)
	}
	if p.role.armHandoff {
		p.role.armHandoff = false
		p.handoffTimer.Reset(inlineBudget)
	}
	return act
}

// readLoop is a reader: it reads and routes messages while it holds the
// role as reader number gen. It serves first, if not nil, work that a
// caller or a handoff passed on with the role.
func (p *Peer) readLoop(gen uint32, first *inbound) {
	// What a reader held back goes out when it stops reading, and when
	// another goroutine takes reading over from it (it serves inline
	// work that may wait for anything, an answer from this peer among
	// them).
	p.sendAnswers()
	defer p.sendAnswers()
	if first != nil && !p.handle(gen, first) {
		return
	}
	for {
		in, idle, st := p.readOne()
		if st == readFailed {
			return
		}
		// More messages read ahead: their answers go out with this one's.
		ahead := p.conn.wholeAhead()
		if in != nil {
			if ahead {
				p.holdAnswers()
			}
			if !p.handle(gen, in) {
				return
			}
		}
		if !ahead {
			p.sendAnswers() // before the next read waits
		}
		if idle {
			if act, _ := p.roleStep(evReaderIdle, gen, nil); act == actExit {
				return
			}
		}
	}
}

// holdAnswers makes the reader count as a writer, so that the answers to
// what it serves wait to go out together (framewrite.go) until
// sendAnswers: it has read several requests at once, and serves them one
// after the other.
func (p *Peer) holdAnswers() {
	if p.holding.CompareAndSwap(false, true) {
		p.writers.Add(1)
	}
}

// sendAnswers ends holdAnswers: it sends what waits, unless another writer
// still writes, which then does. readLoop calls it before a read may wait,
// and when a goroutine starts or stops reading. Whoever calls it first
// ends the hold; a later call does nothing, so it may run on any goroutine
// at any time.
func (p *Peer) sendAnswers() {
	if p.holding.Load() && p.holding.CompareAndSwap(true, false) {
		p.leaveWriting()
	}
}

// readFor reads the connection on a caller's goroutine until c is
// answered: the caller holds the role (roleCaller). It serves nothing:
// inbound work goes, with the role, to a new reader. interruptible: the
// caller's context can end, and the caller has put the transport in
// caller mode, whose reads stop when it ends (or before a frame a caller
// may not read); readFor leaves caller mode before the role moves on.
func (p *Peer) readFor(c *call, interruptible bool) {
	var work *inbound
	for c.remaining.Load() != 0 {
		in, _, st := p.readOne()
		if st != readOK {
			break
		}
		if in != nil {
			work = in
			break
		}
	}
	if interruptible {
		p.conn.callerMode(false) // before anyone else reads
	}
	if work != nil {
		p.roleStep(evCallerWork, 0, work)
		return
	}
	p.roleStep(evCallerDone, 0, nil)
}

// readStatus is how readOne went.
type readStatus uint8

const (
	readOK      readStatus = iota
	readFailed             // the connection failed: the peer has failed
	readStopped            // a caller's read stopped (errReadStopped); nothing was read
)

// readOne reads one message and routes it. It returns the request,
// notification or batch it carried (nil if none), for the reader to admit,
// and whether it answered the last pending call of a caller who may read
// (idle). The message's buffer goes back to the pool unless the message
// keeps it.
func (p *Peer) readOne() (in *inbound, idle bool, st readStatus) {
	buf, err := p.conn.readMessage(p.reserveFn)
	if err != nil {
		p.unreserve()
		if errReadStopped(err) {
			return nil, false, readStopped
		}
		p.readFailed(err)
		return nil, false, readFailed
	}
	in, kept, idle := p.route(buf)
	if in != nil {
		in.size, in.over = p.takeReserved()
	} else {
		p.unreserve()
	}
	if !kept {
		putBuf(buf)
	}
	return in, idle, readOK
}

// handle admits in and, if admission gives it to this goroutine, serves it
// inline. It reports whether this goroutine is still reader number gen; if
// not, it has served the work and whatever queued behind it, and the
// caller returns.
func (p *Peer) handle(gen uint32, in *inbound) bool {
	if !p.admit(in) {
		return true
	}
	note := isNote(in)
	var sb *serverBatch
	if in.batch != nil {
		sb = prepareBatch(in) // before handoffCheck can see it
	}
	p.mu.Lock()
	p.roleStepLocked(evInlineBegin, gen, false)
	p.inlineSB = sb
	p.mu.Unlock()

	if sb != nil {
		p.runItems(sb, false)
	} else {
		p.serveOne(in, false)
	}

	p.mu.Lock()
	if sb != nil && p.inlineSB == sb {
		// Only this work's own batch: reading may have moved on, and the
		// reader since then may be serving a batch inline that a handoff
		// still has to find.
		p.inlineSB = nil
	}
	if p.role.gen == gen && p.queuedBehind(note) {
		// Work queued behind this (rare: the reader reads nothing while
		// it serves): serve it here, and read elsewhere.
		if p.roleStepLocked(evHandoff, 0, false) == actSpawn {
			next := p.role.gen
			p.launch(func() { p.readLoop(next, nil) })
		}
	}
	if p.roleStepLocked(evInlineEnd, gen, false) == actContinue {
		p.unadmit(note)
		p.mu.Unlock()
		return true
	}
	p.mu.Unlock()
	// Reading moved on while this was served: this goroutine is now an
	// ordinary handler, and serves the queue behind its work.
	if note {
		p.serveNotes(nil)
	} else {
		p.serveQueue(nil)
	}
	return false
}

// lapse runs when the lapse timer fires: it makes its goroutine the reader
// if the role has been free long enough.
func (p *Peer) lapse() {
	if act, gen := p.roleStep(evLapse, 0, nil); act == actBecome {
		defer p.exit()
		p.readLoop(gen, nil)
	}
}

// handoffCheck runs when the handoff timer fires: work served inline for
// too long keeps its goroutine, and the timer's goroutine reads instead.
// It also sends the answers the reader holds back (holdAnswers), which
// therefore wait for inline work, however many pieces of it, for at most
// about two inline budgets.
func (p *Peer) handoffCheck() {
	p.sendAnswers()
	p.mu.Lock()
	sb := p.inlineSB
	act := p.roleStepLocked(evHandoffCheck, 0, false)
	gen := p.role.gen
	if act == actBecome && !p.adopt() {
		act = actNone
	}
	if act == actBecome && sb != nil {
		p.inlineSB = nil
		sb.workers.Add(1) // keeps the batch alive while helpers start
	} else {
		sb = nil
	}
	p.mu.Unlock()
	if act != actBecome {
		return
	}
	defer p.exit()
	if sb != nil {
		// The rest of an inline batch runs beside its first items.
		p.startHelpers(sb)
		sb.leave()
	}
	p.readLoop(gen, nil)
}

// needReader makes sure someone reads for a goroutine that waits for an
// answer but cannot read itself. handler: it is a handler of this peer,
// which may be the work the reader serves inline; then reading moves on at
// once rather than after the inline budget.
func (p *Peer) needReader(handler bool) {
	ev := evNeedReader
	if handler {
		ev = evHandoff
	}
	p.mu.Lock()
	sb := p.inlineSB
	act := p.roleStepLocked(ev, 0, false)
	gen := p.role.gen
	if act == actSpawn && handler && sb != nil {
		p.inlineSB = nil
		sb.workers.Add(1)
	} else {
		sb = nil
	}
	if act == actSpawn {
		p.launch(func() {
			if sb != nil {
				p.startHelpers(sb)
				sb.leave()
			}
			p.readLoop(gen, nil)
		})
	}
	p.mu.Unlock()
}

// route handles one message. Answers complete their calls here; a request,
// notification or batch is returned for admission, owning buf (kept); a
// message that cannot be served is answered with an error. idle: an answer
// was the last pending one, to a caller who may read.
func (p *Peer) route(buf *msgBuf) (work *inbound, kept, idle bool) {
	var sb *serverBatch
	if i := skipSpace(buf.b, 0); i < len(buf.b) && buf.b[i] == '[' {
		sb = getBatch(p)
	}
	in := inboundPool.Get().(*inbound)
	kind, refusal := parseMessage(buf.b, p.cfg.MaxBatch, &in.env, sb, func(es []envelope, to []takenID) {
		if p.completeAll(es, to) {
			idle = true
		}
	})
	switch kind {
	case msgSingle:
		switch {
		case in.env.invalid != "":
			p.replyError(readableID(&in.env), invalidError(&in.env))
		case !in.env.isRequest():
			kept, idle = p.complete(&in.env, buf)
		case isStream(&in.env):
			p.streamMessage(&in.env, len(buf.b))
		case p.isCancel(&in.env):
			p.cancelIncoming(in.env.params)
		default:
			in.msg = buf
			return in, true, false
		}
	case msgBatch:
		in.msg, in.batch = buf, sb
		return in, true, idle
	case msgRefused:
		if refusal == errParse && !utf8.Valid(buf.b) {
			// RFC 6455 §8.1: a text message that is not UTF-8 fails
			// the connection.
			p.violation(websocket.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message")
		} else {
			p.replyError(nil, refusal)
		}
	}
	if sb != nil {
		sb.release()
	}
	in.release()
	return nil, kept, idle
}

// readFailed ends the peer after a failed read.
func (p *Peer) readFailed(err error) {
	if v, ok := err.(*protocolError); ok {
		p.violate(v.code, v.reason, v)
		return
	}
	p.fail(err)
}
