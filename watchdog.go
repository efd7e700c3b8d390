package wsrpc

import (
	"sync/atomic"
	"time"
)

// watchdog calls fire once when an operation (a message write, a message
// read) runs longer than limit.
//
// Resetting a timer for every message costs more than it looks: a timer
// earlier than any other wakes the runtime's network poller, a syscall and
// often a thread wake-up per message. A watchdog's operation costs one
// clock read instead. Its timer is armed by the first operation after an
// idle spell and, when it fires, re-arms itself only while an operation is
// running, so a busy connection pays at most one timer wake-up per limit.
type watchdog struct {
	limit time.Duration
	fire  func()
	timer *time.Timer
	base  time.Time
	// since is when the running operation began, in nanoseconds after
	// base plus one; zero when none runs.
	since atomic.Int64
	// armed is true while the timer is scheduled, and for good once the
	// watchdog has fired or been stopped.
	armed   atomic.Bool
	stopped atomic.Bool
}

func newWatchdog(limit time.Duration, fire func()) *watchdog {
	w := &watchdog{limit: limit, fire: fire, base: time.Now()}
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// begin starts timing an operation. Operations do not overlap.
func (w *watchdog) begin() {
	w.since.Store(int64(time.Since(w.base)) + 1)
	if !w.armed.Load() && w.armed.CompareAndSwap(false, true) {
		w.timer.Reset(w.limit)
	}
}

// end ends the operation begin started.
func (w *watchdog) end() { w.since.Store(0) }

// stop disarms the watchdog for good. (A check already running may still
// schedule one more; it then finds nothing to do, or fires on a connection
// that is closed anyway.)
func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.armed.Store(true)
	w.timer.Stop()
}

// check runs when the timer fires.
func (w *watchdog) check() {
	for !w.stopped.Load() {
		s := w.since.Load()
		if s != 0 {
			if el := time.Since(w.base) - time.Duration(s-1); el < w.limit {
				w.timer.Reset(w.limit - el)
			} else {
				w.fire() // armed stays true: the watchdog is spent
			}
			return
		}
		w.armed.Store(false)
		// An operation that began between the load and the store saw the
		// timer armed and left it to us.
		if w.since.Load() == 0 || !w.armed.CompareAndSwap(false, true) {
			return
		}
	}
}
