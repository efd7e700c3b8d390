package wsrpc

import (
	"sync/atomic"
	"time"
)

// watchdog calls fire once when an operation (a message write, a message
// read) runs longer than its limit: after at least limit, at most an eighth
// more.
//
// It costs an operation two atomic additions, no clock read and no timer
// reset. A timer reset per message is earlier than any other timer, so it
// woke the runtime's network poller for every message, and a clock read is
// about 100 ns on a virtual machine. Instead the watchdog's timer ticks
// every eighth of the limit while operations happen, and stops after a
// quiet tick: it fires when it sees the same operation running for nine
// ticks in a row.
type watchdog struct {
	tick  time.Duration
	fire  func()
	timer *time.Timer
	// ops counts begins and ends: odd while an operation runs, so each
	// operation has its own odd value.
	ops atomic.Uint64
	// armed is true while the timer is scheduled, and for good once the
	// watchdog has fired or been stopped.
	armed   atomic.Bool
	stopped atomic.Bool
	// held: the operation waits on our side, not the other's; it does
	// not count against the limit meanwhile.
	held atomic.Bool
	// Owned by check.
	seen  uint64 // ops at the last tick
	ticks int    // ticks for which the operation seen has been running
}

// watchdogTicks is the number of ticks in a limit.
const watchdogTicks = 8

func newWatchdog(limit time.Duration, fire func()) *watchdog {
	w := &watchdog{tick: max(limit/watchdogTicks, 1), fire: fire}
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// begin starts an operation. Operations do not overlap.
func (w *watchdog) begin() {
	w.ops.Add(1)
	if !w.armed.Load() && w.armed.CompareAndSwap(false, true) {
		w.timer.Reset(w.tick)
	}
}

// end ends the operation begin started.
func (w *watchdog) end() { w.ops.Add(1) }

// hold stops counting the running operation's time against the limit
// (true) until it is called again with false.
func (w *watchdog) hold(on bool) {
	w.held.Store(on)
	if !on {
		w.ops.Add(2) // a new value: the ticks start again from zero
	}
}

// stop disarms the watchdog for good. (A check already running may still
// schedule one more tick, which then does nothing.)
func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.armed.Store(true)
	w.timer.Stop()
}

// check runs at every tick.
func (w *watchdog) check() {
	if w.stopped.Load() {
		return
	}
	ops := w.ops.Load()
	switch {
	case w.held.Load():
		w.seen, w.ticks = ops, 0
	case ops%2 == 1 && ops == w.seen:
		// The same operation as at the last tick: it has run for one
		// more tick at least.
		if w.ticks++; w.ticks >= watchdogTicks {
			w.fire() // armed stays true: the watchdog is spent
			return
		}
	case ops == w.seen:
		// Quiet since the last tick: stop ticking. An operation that
		// begins from here on arms the timer again; one that began
		// between the load and the store saw it armed, so look again.
		w.armed.Store(false)
		if w.ops.Load() == ops || !w.armed.CompareAndSwap(false, true) {
			return
		}
		w.seen, w.ticks = w.ops.Load(), 0
	default:
		w.seen, w.ticks = ops, 0
	}
	w.timer.Reset(w.tick)
}
