package wsrpc

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file checks the reading role's state machine (role.go) by brute
// force: a model of the goroutines that report its events (readers,
// callers, handlers, the two timers) drives readRole.step through every
// interleaving of those events, up to a depth, and after every step checks
// the invariant the package's liveness rests on: the role is never lost
// and never shared.

// rmReader is a reader goroutine of the model.
type rmReader struct {
	gen    uint32
	inline bool // serving work inline (else reading)
	// idle: it answered the last pending call, made by a caller who may
	// read, and has yet to report it (evReaderIdle): calls may come in
	// meanwhile.
	idle bool
}

// rmCall is a call awaiting its answer.
type rmCall struct {
	selfRead bool // made with a context that cannot end
	reading  bool // its caller reads (holds the role as caller)
	answered bool
}

// rmState is the whole model: the role, the goroutines, the timers and the
// calls.
type rmState struct {
	role    readRole
	readers []rmReader
	calls   []rmCall
	// lapse and handoff say a timer is scheduled (armed by a step).
	lapse, handoff bool
}

func (s rmState) clone() rmState {
	s.readers = slices.Clone(s.readers)
	s.calls = slices.Clone(s.calls)
	return s
}

func (s rmState) key() string {
	r := s.role
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d/%v/%v/%v/%v/%v|", r.holder, r.gen, r.inline, r.lapseArmed, r.handoffArmed, s.lapse, s.handoff)
	// Sequence numbers matter only as "moved since the timer looked".
	fmt.Fprintf(&b, "%v/%v|", r.freeSeq == r.lapseSeen, r.inlineSeq == r.inlineSeen)
	for _, rd := range s.readers {
		fmt.Fprintf(&b, "r%d%v%v,", rd.gen, rd.inline, rd.idle)
	}
	for _, c := range s.calls {
		fmt.Fprintf(&b, "c%v%v%v,", c.selfRead, c.reading, c.answered)
	}
	return b.String()
}

// pending is what the Peer passes as step's pending: calls unanswered.
func (s *rmState) pending() bool {
	for _, c := range s.calls {
		if !c.answered {
			return true
		}
	}
	return false
}

// step applies ev as reported by the reader with gen (if any) and carries
// out the action in the model, as the Peer's code does.
func (s *rmState) step(ev roleEvent, gen uint32) roleAction {
	act := s.role.step(ev, gen, s.pending())
	if s.role.armLapse {
		s.role.armLapse = false
		s.lapse = true
	}
	if s.role.armHandoff {
		s.role.armHandoff = false
		s.handoff = true
	}
	switch act {
	case actSpawn, actBecome:
		s.readers = append(s.readers, rmReader{gen: s.role.gen})
	}
	return act
}

func (s *rmState) dropReader(i int) { s.readers = slices.Delete(s.readers, i, i+1) }

// check returns what is wrong with s, or "".
func (s *rmState) check() string {
	r := s.role
	readingReaders := 0 // a reader not serving inline reads
	current := 0
	for _, rd := range s.readers {
		if rd.gen == r.gen {
			current++
		}
		if !rd.inline {
			readingReaders++
			if rd.gen != r.gen || r.holder != roleReader {
				return fmt.Sprintf("reader %d reads without the role", rd.gen)
			}
		}
	}
	readingCallers := 0
	for _, c := range s.calls {
		if c.reading {
			readingCallers++
		}
	}
	switch {
	case r.lapseArmed != s.lapse:
		return "lapseArmed does not match a scheduled lapse timer"
	case r.handoffArmed != s.handoff:
		return "handoffArmed does not match a scheduled handoff timer"
	case r.holder == roleNone && !s.lapse:
		return "the role is free and no timer will give it to a reader: lost hand-over"
	case r.holder == roleNone && s.pending():
		return "a call awaits its answer and nobody reads: it waits for the lapse timer"
	case r.holder == roleReader && current != 1:
		return fmt.Sprintf("the role is a reader's, but %d goroutines have its number", current)
	case r.holder == roleReader && r.inline && !s.handoff:
		return "the reader serves work inline and no timer will move reading on"
	case r.holder == roleCaller && readingCallers != 1:
		return fmt.Sprintf("the role is a caller's, but %d callers read", readingCallers)
	case r.holder != roleCaller && readingCallers != 0:
		return "a caller reads without the role"
	case readingReaders+readingCallers > 1:
		return "two goroutines read the connection"
	}
	return ""
}

// moves lists every event some goroutine of s may report next, each as a
// function applying it to a clone.
func (s rmState) moves() []func(rmState) (rmState, string) {
	var out []func(rmState) (rmState, string)
	add := func(name string, f func(*rmState)) {
		out = append(out, func(s rmState) (rmState, string) {
			s = s.clone()
			f(&s)
			return s, name
		})
	}
	// A new call, if fewer than two are in flight: a caller whose context
	// cannot end asks for the role; another (or a handler) needs a reader.
	if len(s.calls) < 2 {
		add("call(bg)", func(s *rmState) {
			s.calls = append(s.calls, rmCall{selfRead: true})
			if s.step(evCallerWants, 0) == actRead {
				s.calls[len(s.calls)-1].reading = true
			}
		})
		add("call(ctx)", func(s *rmState) {
			s.calls = append(s.calls, rmCall{})
			s.step(evNeedReader, 0)
		})
		add("call(handler)", func(s *rmState) {
			s.calls = append(s.calls, rmCall{})
			s.step(evHandoff, 0)
		})
	}
	// The goroutine that reads receives an answer or inbound work.
	for i, c := range s.calls {
		if c.answered {
			continue
		}
		if c.reading {
			// The reading caller gets its own answer, or reads work.
			add(fmt.Sprintf("caller%d answered", i), func(s *rmState) {
				s.calls = slices.Delete(s.calls, i, i+1)
				s.step(evCallerDone, 0)
			})
			add(fmt.Sprintf("caller%d reads work", i), func(s *rmState) {
				s.calls[i].reading = false
				s.step(evCallerWork, 0)
			})
			continue
		}
		for j, rd := range s.readers {
			if rd.gen != s.role.gen || rd.inline || s.role.holder != roleReader {
				continue
			}
			add(fmt.Sprintf("reader%d answers call%d", rd.gen, i), func(s *rmState) {
				self := s.calls[i].selfRead
				s.calls = slices.Delete(s.calls, i, i+1)
				if self && !s.pending() {
					s.readers[j].idle = true
				}
			})
		}
		// An answer read by a reading caller for another call.
		for k, o := range s.calls {
			if k != i && o.reading {
				add(fmt.Sprintf("caller%d answers call%d", k, i), func(s *rmState) {
					s.calls[i].answered = true
				})
			}
		}
	}
	// Answered calls (by a reading caller) leave.
	for i, c := range s.calls {
		if c.answered {
			add(fmt.Sprintf("call%d returns", i), func(s *rmState) { s.calls = slices.Delete(s.calls, i, i+1) })
		}
	}
	for j, rd := range s.readers {
		if rd.idle {
			add(fmt.Sprintf("reader%d reports idle", rd.gen), func(s *rmState) {
				s.readers[j].idle = false
				if s.step(evReaderIdle, rd.gen) == actExit {
					s.dropReader(j)
				}
			})
			continue
		}
		switch {
		case rd.gen == s.role.gen && s.role.holder == roleReader && !rd.inline:
			add(fmt.Sprintf("reader%d serves inline", rd.gen), func(s *rmState) {
				s.readers[j].inline = true
				s.step(evInlineBegin, rd.gen)
			})
		case rd.inline:
			add(fmt.Sprintf("reader%d done inline", rd.gen), func(s *rmState) {
				s.readers[j].inline = false
				if s.step(evInlineEnd, rd.gen) == actExit {
					s.dropReader(j)
				}
			})
		}
	}
	if s.lapse {
		add("lapse fires", func(s *rmState) {
			s.lapse = false
			s.step(evLapse, 0)
		})
	}
	if s.handoff {
		add("handoff fires", func(s *rmState) {
			s.handoff = false
			s.step(evHandoffCheck, 0)
		})
	}
	return out
}

// TestReadRoleInterleavings explores every interleaving of the events the
// peer's goroutines report, to a depth, and fails on the first state where
// the role is lost (nobody reads and no timer will start a reader), shared
// (two goroutines read), or its timers disagree with what is scheduled.
func TestReadRoleInterleavings(t *testing.T) {
	t.Parallel()
	const depth = 12
	start := rmState{}
	start.step(evStart, 0)
	type node struct {
		s    rmState
		path []string
	}
	seen := map[string]bool{start.key(): true}
	stack := []node{{s: start}}
	states := 0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		states++
		if len(n.path) >= depth {
			continue
		}
		for _, mv := range n.s.moves() {
			next, name := mv(n.s)
			path := append(slices.Clone(n.path), name)
			if msg := next.check(); msg != "" {
				t.Fatalf("%s\nafter: %s\nstate: %s", msg, strings.Join(path, " → "), next.key())
			}
			if k := next.key(); !seen[k] {
				seen[k] = true
				stack = append(stack, node{s: next, path: path})
			}
		}
	}
	t.Logf("%d states explored to depth %d", states, depth)
	if states < 1000 {
		t.Fatalf("only %d states: the model does not reach far", states)
	}
}

// TestReadRoleClosed: once closed, the role never comes back to life, and
// the timers only disarm.
func TestReadRoleClosed(t *testing.T) {
	t.Parallel()
	for ev := evStart; ev <= evClose; ev++ {
		var r readRole
		r.step(evStart, 0, false)
		r.lapseArmed, r.handoffArmed = true, true
		r.step(evClose, 0, false)
		act := r.step(ev, r.gen, true)
		if r.holder != roleClosed || act == actSpawn || act == actBecome || act == actRead || r.armLapse || r.armHandoff {
			t.Fatalf("event %d after close: holder %d, action %d", ev, r.holder, act)
		}
	}
}

// TestLapseLengthensWhileCallersRead: each time the lapse timer finds the
// role taken, or freed again, since it last looked, the next period is
// twice as long, up to readLapse << maxLapseShift; once it finds the role
// left free for a whole period it gives the role to a reader and the
// period is readLapse again.
func TestLapseLengthensWhileCallersRead(t *testing.T) {
	t.Parallel()
	var r readRole
	r.step(evStart, 0, false)
	r.step(evReaderIdle, r.gen, false) // the role is free; the lapse is armed
	require.True(t, r.armLapse)
	r.armLapse = false
	var shifts []uint8
	for range maxLapseShift + 2 {
		// A caller takes the role and frees it again before the timer
		// looks, then takes it again: the timer finds it taken.
		r.step(evCallerWants, 0, false)
		r.step(evCallerDone, 0, false)
		r.step(evCallerWants, 0, false)
		r.step(evLapse, 0, false)
		shifts = append(shifts, r.lapseShift)
		r.step(evCallerDone, 0, false) // frees the role: arms the lapse again
		require.True(t, r.armLapse)
		r.armLapse = false
	}
	require.Equal(t, []uint8{1, 2, 2, 2}, shifts)

	// Freed again since the last look: one more period, and longer.
	r.lapseShift = 0
	r.step(evCallerWants, 0, false)
	r.step(evCallerDone, 0, false)
	require.Equal(t, actNone, r.step(evLapse, 0, false))
	require.Equal(t, uint8(1), r.lapseShift)
	require.True(t, r.armLapse)
	r.armLapse = false

	// Left free for a whole period: a reader, and the short period.
	require.Equal(t, actBecome, r.step(evLapse, 0, false))
	require.Equal(t, roleReader, r.holder)
	require.Zero(t, r.lapseShift)
}
