package inspect

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsrpc/wsrpc"
)

// This file is what the Inspector counts: per method and direction, calls,
// errors, bytes and a latency histogram, all atomic counters; the table of
// methods, read without a lock; and the calls of each second, for the last
// minute. Recording a call allocates nothing.

// The latency histogram has fixed buckets, log-linear: below 2^minOctave
// ns (about 1 µs) one bucket, then each power of two from 2^minOctave to
// 2^(maxOctave+1) ns (about 275 s) split into four equal buckets, then one
// for everything longer. A percentile is thus known within a quarter of
// its power of two: at most 25% above the true value (see percentile).
const (
	minOctave  = 10
	maxOctave  = 37
	subBuckets = 4
	numBuckets = 1 + (maxOctave-minOctave+1)*subBuckets + 1
)

// bucketOf returns the histogram bucket of d.
func bucketOf(d time.Duration) int {
	if d < 1<<minOctave {
		return 0
	}
	v := uint64(d)
	k := bits.Len64(v) - 1
	if k > maxOctave {
		return numBuckets - 1
	}
	return 1 + (k-minOctave)*subBuckets + int(v>>(k-2)&(subBuckets-1))
}

// bucketBounds returns the durations bucket i holds: from lo, included,
// to hi, excluded.
func bucketBounds(i int) (lo, hi time.Duration) {
	switch {
	case i <= 0:
		return 0, 1 << minOctave
	case i >= numBuckets-1:
		return 1 << (maxOctave + 1), math.MaxInt64
	}
	k := minOctave + (i-1)/subBuckets
	sub := time.Duration((i - 1) % subBuckets)
	lo = 1<<k + sub<<(k-2)
	return lo, lo + 1<<(k-2)
}

// stats are one method's numbers in one direction. Every field is updated
// atomically, on its own: a snapshot may see a call in calls and not yet
// in the histogram, never a torn number.
type stats struct {
	method   string
	outgoing bool

	calls    atomic.Uint64
	errors   atomic.Uint64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	max      atomic.Int64 // the longest duration seen, in ns
	hist     [numBuckets]atomic.Uint64
}

// record counts one ended call or notification.
func (s *stats) record(e *wsrpc.Event) {
	s.calls.Add(1)
	if e.Err != nil || e.Code != 0 {
		s.errors.Add(1)
	}
	in, out := e.RequestBytes, e.ResponseBytes // incoming: the request came in
	if e.Outgoing {
		in, out = out, in
	}
	if in > 0 {
		s.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		s.bytesOut.Add(uint64(out))
	}
	d := max(e.Duration, 0)
	s.hist[bucketOf(d)].Add(1)
	for {
		m := s.max.Load()
		if int64(d) <= m || s.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// percentiles returns the durations under which fall the fractions qs of
// the calls counted: for each, the upper bound of the bucket it falls in,
// or the longest duration seen when that is shorter. So a percentile is
// never below the true value, and at most a quarter of a power of two
// above it. Zero when nothing was counted.
func (s *stats) percentiles(qs ...float64) []time.Duration {
	var counts [numBuckets]uint64
	var n uint64
	for i := range counts {
		counts[i] = s.hist[i].Load()
		n += counts[i]
	}
	out := make([]time.Duration, len(qs))
	if n == 0 {
		return out
	}
	longest := time.Duration(s.max.Load())
	for j, q := range qs {
		rank := uint64(math.Ceil(q * float64(n)))
		rank = min(max(rank, 1), n)
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				_, hi := bucketBounds(i)
				out[j] = min(hi, longest)
				break
			}
		}
	}
	return out
}

// Unknown is the method name under which the Inspector counts the calls
// for names the method table does not have (Event.Unregistered): they come
// from the network, and a hostile client could send a new one with every
// request.
const Unknown = "(unknown)"

// Other is the method name under which the Inspector counts the methods
// past Options.MaxMethods.
const Other = "(other)"

// key names a method in one direction.
type key struct {
	method   string
	outgoing bool
}

// table is the stats of each method and direction. Lookups read an
// immutable map through an atomic pointer, without a lock; a new method
// copies it, under mu. There are at most max methods besides the fixed
// Unknown and Other entries, so the copies cost O(max²) over the
// Inspector's life, and nothing once the table is full.
type table struct {
	m    atomic.Pointer[map[key]*stats]
	full atomic.Bool // max reached: misses go to Other without the lock

	mu    sync.Mutex
	named int
	max   int
	// The fixed entries, [incoming, outgoing].
	unknown, other [2]*stats
}

func newTable(max int) *table {
	t := &table{max: max}
	m := map[key]*stats{}
	for i, out := range []bool{false, true} {
		t.unknown[i] = &stats{method: Unknown, outgoing: out}
		t.other[i] = &stats{method: Other, outgoing: out}
	}
	t.m.Store(&m)
	return t
}

func dir(outgoing bool) int {
	if outgoing {
		return 1
	}
	return 0
}

// get returns the stats of e's method and direction.
func (t *table) get(e *wsrpc.Event) *stats {
	if e.Unregistered {
		return t.unknown[dir(e.Outgoing)]
	}
	if s := (*t.m.Load())[key{e.Method, e.Outgoing}]; s != nil {
		return s
	}
	if t.full.Load() {
		return t.other[dir(e.Outgoing)]
	}
	return t.add(e.Method, e.Outgoing)
}

// add adds the method to the table, or returns Other's stats when it is
// full.
func (t *table) add(method string, outgoing bool) *stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.m.Load()
	if s := old[key{method, outgoing}]; s != nil {
		return s
	}
	if t.named >= t.max {
		t.full.Store(true)
		return t.other[dir(outgoing)]
	}
	m := make(map[key]*stats, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	s := &stats{method: method, outgoing: outgoing}
	m[key{method, outgoing}] = s
	t.named++
	t.m.Store(&m)
	return s
}

// isFull reports whether methods past the bound count under Other.
func (t *table) isFull() bool { return t.full.Load() }

// all returns every entry: the methods, then Unknown and Other.
func (t *table) all() []*stats {
	m := *t.m.Load()
	out := make([]*stats, 0, len(m)+4)
	for _, s := range m {
		out = append(out, s)
	}
	return append(out, t.unknown[0], t.unknown[1], t.other[0], t.other[1])
}

// window is the number of seconds the call rate covers.
const window = 60

// rate counts calls per second, for the last window seconds and the
// current one: a ring of slots, one per second (its Unix time modulo
// window+1), each holding that second (high 32 bits) and its count (low
// 32 bits), so that a slot last used a minute ago starts again from zero,
// and an add is one compare-and-swap.
type rate [window + 1]atomic.Uint64

// add counts one call ended at the Unix time sec, unless its slot holds a
// later second: calls end in about the order of their end times.
func (r *rate) add(sec int64) {
	s := &r[sec%(window+1)]
	tag := uint64(uint32(sec)) << 32
	for {
		v := s.Load()
		var nv uint64
		switch held := uint32(v >> 32); {
		case v == 0:
			nv = tag | 1
		case held == uint32(sec):
			nv = v + 1
		case int32(held-uint32(sec)) > 0:
			return // a later second has the slot: too old to count
		default:
			nv = tag | 1
		}
		if s.CompareAndSwap(v, nv) {
			return
		}
	}
}

// series returns the counts of the window seconds ending with last,
// oldest first.
func (r *rate) series(last int64) []uint64 {
	out := make([]uint64, window)
	for i := range out {
		sec := last - window + 1 + int64(i)
		if sec < 0 {
			continue
		}
		v := r[sec%(window+1)].Load()
		if v>>32 == uint64(uint32(sec)) {
			out[i] = v & 0xFFFFFFFF
		}
	}
	return out
}
