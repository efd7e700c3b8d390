package wsrpc

// This file is the reading role: which goroutine reads the connection, and
// how that duty moves between goroutines. It is a small state machine,
// changed only by readRole.step, so that one invariant can be read off one
// function:
//
//	While the peer is open, either a goroutine is reading the connection
//	(or serving work inline with the handoff timer armed to move reading
//	on), or nobody is and the lapse timer is armed to start a reader.
//
// The holders of the role:
//
//	                 evNeedReader, evLapse(due)
//	   ┌──────────────────────────────────────────────┐
//	   │                                              ▼
//	 none ──evCallerWants──▶ caller ──evCallerDone──▶ reader ◀─┐ evHandoff
//	   ▲                       │     (calls pending)  │  │    │ (new goroutine)
//	   │                       │  evCallerWork ───────┘  └────┘
//	   └────evCallerDone───────┘
//	   └────evReaderIdle────────────────────────────── reader
//	        (no call pending)
//
//	any ──evClose──▶ closed (final)
//
// reader: a goroutine of the peer (readLoop). It serves cheap inbound
// work inline; work that outlives inlineBudget, or calls back this peer,
// hands reading to a new goroutine (evHandoff), and the old one finishes
// the work as an ordinary handler.
//
// caller: a goroutine of the user, waiting in Call or Batch with a context
// that cannot be cancelled (context.Background), reads the connection
// itself until its answer arrives: the answer then wakes no other
// goroutine, which is most of the cost of a call on a quiet connection. A
// caller never serves inbound work: work it reads goes, with the role, to
// a new reader (evCallerWork). A caller whose context can end cannot read:
// coder/websocket closes a connection whose read is interrupted.
//
// none: nobody reads. The role is left free when the last pending call has
// been answered to a caller who may read (evCallerDone, evReaderIdle), so
// that its next call reads for itself. The lapse timer gives the role to a
// new reader after between one and two readLapse periods of quiet, so that
// requests and pings from the other side are read within that time (a
// period that doubles, up to 4 ms, while callers keep taking the role
// back first: see readLapse); a caller that cannot read starts a reader at
// once (evNeedReader).
//
// Every transition that leaves the role free arms the lapse timer in the
// same step, and every transition out of caller or reader names the next
// holder: no path gives the role up without handing it on.

// roleHolder says who has the reading role.
type roleHolder uint8

const (
	roleNone   roleHolder = iota // nobody reads; the lapse timer is armed
	roleReader                   // a goroutine of the peer
	roleCaller                   // a caller reading for its own answer
	roleClosed                   // the peer has closed; nobody reads again
)

// roleEvent is an input of the reading role's state machine.
type roleEvent uint8

const (
	// evStart: the peer starts; its first reader is started.
	evStart roleEvent = iota
	// evCallerWants: a caller that may read asks for the role.
	evCallerWants
	// evCallerDone: the reading caller has its answer.
	evCallerDone
	// evCallerWork: the reading caller read inbound work, which a new
	// reader must serve.
	evCallerWork
	// evNeedReader: someone who cannot read (a caller with a cancellable
	// context, a handler calling back, a ping) waits for the other side.
	evNeedReader
	// evReaderIdle: the reader answered the last pending call, made by a
	// caller who may read; it steps aside so that the next call reads
	// for itself.
	evReaderIdle
	// evLapse: the lapse timer fired.
	evLapse
	// evInlineBegin and evInlineEnd: the reader serves work inline, and is
	// done with it.
	evInlineBegin
	evInlineEnd
	// evHandoffCheck: the handoff timer fired.
	evHandoffCheck
	// evHandoff: a handler calls back this peer; if it is the work the
	// reader serves inline, reading must move on now, and if nobody
	// reads, someone must.
	evHandoff
	// evClose: the peer closed.
	evClose
)

// roleAction is what step asks of the goroutine that reported the event,
// to do after releasing the peer's lock.
type roleAction uint8

const (
	actNone roleAction = iota
	// actRead: the caller reporting evCallerWants now reads.
	actRead
	// actSpawn: start a new reader goroutine (with the work, if any).
	actSpawn
	// actBecome: the reporting goroutine (a timer's) becomes the reader.
	actBecome
	// actExit: the reporting reader goroutine is no longer the reader:
	// it stops reading (after finishing its work, if any).
	actExit
	// actContinue: the reporting reader goroutine is still the reader and
	// goes on reading.
	actContinue
)

// readRole is the state of the reading role. The Peer keeps it under its
// mutex; step is its only writer.
type readRole struct {
	holder roleHolder
	// gen numbers reader goroutines: each one that takes the role gets the
	// next number, so a goroutine that has handed reading off can tell.
	gen uint32
	// inline: the reader serves work instead of reading.
	inline bool

	// armLapse and armHandoff ask the Peer to arm a timer, after step.
	armLapse, armHandoff bool

	// The timers are armed lazily and check by numbering, not by reading
	// the clock (about 100 ns here, on every message): freeSeq counts the
	// times the role was left free and inlineSeq the pieces of inline
	// work; a timer acts when the number it saw last has not moved, that
	// is after between one and two periods.
	lapseArmed, handoffArmed bool
	freeSeq, lapseSeen       uint64
	inlineSeq, inlineSeen    uint64
	// lapseShift doubles the lapse period (readLapse << lapseShift) each
	// time the lapse timer finds the role taken, or freed again, since it
	// last looked, up to maxLapseShift; it is zero again once the timer
	// finds the role left free for a whole period.
	lapseShift uint8
}

// step applies ev and returns what the reporting goroutine must do. gen is
// the reporting reader goroutine's number (evReaderIdle, evInline*);
// pending is whether calls of this peer await answers (evCallerDone,
// evReaderIdle). Once a call awaits its answer the role cannot become free
// until it is answered, which is what lets a caller look at the role
// without the lock (Peer.roleFree) after registering its call.
func (r *readRole) step(ev roleEvent, gen uint32, pending bool) roleAction {
	if r.holder == roleClosed {
		if ev == evLapse {
			r.lapseArmed = false
		}
		if ev == evHandoffCheck {
			r.handoffArmed = false
		}
		return actExit
	}
	switch ev {
	case evStart:
		return r.toReader(actSpawn)
	case evClose:
		r.holder = roleClosed
		r.inline = false
		return actNone
	case evCallerWants:
		if r.holder == roleNone {
			r.holder = roleCaller
			return actRead
		}
	case evCallerDone:
		if pending {
			return r.toReader(actSpawn)
		}
		r.free()
	case evCallerWork:
		return r.toReader(actSpawn)
	case evNeedReader:
		if r.holder == roleNone {
			return r.toReader(actSpawn)
		}
	case evReaderIdle:
		// pending again: a call came in between the answer and now.
		if r.holder == roleReader && r.gen == gen && !r.inline && !pending {
			r.free()
			return actExit
		}
		return actContinue
	case evLapse:
		switch {
		case r.holder != roleNone:
			r.lapseArmed = false
			r.lapseLonger()
		case r.freeSeq != r.lapseSeen:
			// Left free again since the last look: wait a full period.
			r.lapseSeen = r.freeSeq
			r.armLapse = true
			r.lapseLonger()
		default:
			r.lapseArmed = false
			r.lapseShift = 0
			return r.toReader(actBecome)
		}
	case evInlineBegin:
		r.inline = true
		r.inlineSeq++
		if !r.handoffArmed {
			r.handoffArmed, r.armHandoff = true, true
			r.inlineSeen = r.inlineSeq
		}
	case evInlineEnd:
		if r.holder == roleReader && r.gen == gen {
			r.inline = false
			return actContinue
		}
		return actExit
	case evHandoffCheck:
		switch {
		case r.holder != roleReader || !r.inline:
			r.handoffArmed = false
		case r.inlineSeq != r.inlineSeen:
			r.inlineSeen = r.inlineSeq
			r.armHandoff = true
		default:
			r.handoffArmed = false
			return r.toReader(actBecome)
		}
	case evHandoff:
		if r.holder == roleReader && r.inline || r.holder == roleNone {
			return r.toReader(actSpawn)
		}
	}
	return actNone
}

// lapseLonger doubles the lapse period, up to maxLapseShift doublings.
func (r *readRole) lapseLonger() {
	if r.lapseShift < maxLapseShift {
		r.lapseShift++
	}
}

// toReader gives the role to a new reader goroutine, started as act says.
func (r *readRole) toReader(act roleAction) roleAction {
	r.holder = roleReader
	r.gen++
	r.inline = false
	return act
}

// free leaves the role free and makes sure the lapse timer will look.
func (r *readRole) free() {
	r.holder = roleNone
	r.freeSeq++
	if !r.lapseArmed {
		r.lapseArmed, r.armLapse = true, true
		r.lapseSeen = r.freeSeq
	}
}
