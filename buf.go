package wsrpc

import "sync"

// This file pools message buffers. Small ones (up to maxPooledBuf) share
// one pool and grow as they are used; large ones are pooled by size, in
// steps of largeStep, so that a message of some MiB is read into, and
// answered from, a buffer used before rather than a fresh allocation: at
// a few MiB a message, fresh buffers were most of the bytes allocated, and
// the garbage collector's lag behind them most of the memory a busy
// server held. In a steady state, pooling costs no allocation: a msgBuf
// that takes a large buffer keeps its small one aside and goes back to
// the small pool with it, and the boxes the large pools hold buffers in
// are pooled too.

// msgBuf is a reusable message buffer.
type msgBuf struct {
	b []byte
	// small is the small buffer b replaced by a large one (grow); it is b
	// again when the msgBuf is recycled.
	small []byte
}

const maxPooledBuf = 1 << 20

var bufPool = sync.Pool{New: func() any { return &msgBuf{b: make([]byte, 0, 512)} }}

func getBuf() *msgBuf { return bufPool.Get().(*msgBuf) }

// putBuf recycles m into the small pool, and a large buffer it holds into
// its size's large pool.
func putBuf(m *msgBuf) {
	if cap(m.b) > maxPooledBuf {
		putLarge(m.b)
		m.b, m.small = m.small, nil
	}
	m.b = m.b[:0]
	bufPool.Put(m)
}

// grow makes room in m.b for n more bytes. A large buffer from the pools
// takes the place of a small one, which m keeps for when it is recycled.
func (m *msgBuf) grow(n int) {
	if cap(m.b)-len(m.b) >= n {
		return
	}
	old := m.b
	m.b = growBuf(m.b, n)
	switch {
	case cap(old) > maxPooledBuf:
		putLarge(old)
	case cap(m.b) > maxPooledBuf && m.small == nil:
		m.small = old[:0]
	}
}

const largeStep = 1 << 20

// largePools[k] holds buffers of k × largeStep bytes, up to 64 MiB, each
// in a box from boxes.
var (
	largePools [65]sync.Pool
	boxes      sync.Pool
)

// largeBuf returns an empty buffer with room for n bytes, n over
// maxPooledBuf: its capacity is n rounded up to a largeStep.
func largeBuf(n int) []byte {
	k := (n + largeStep - 1) / largeStep
	if k < len(largePools) {
		if box, ok := largePools[k].Get().(*[]byte); ok {
			b := *box
			*box = nil
			boxes.Put(box)
			return b
		}
	}
	return make([]byte, 0, k*largeStep)
}

// putLarge recycles b, a buffer over maxPooledBuf, if it has a pool's
// size (largeBuf made it).
func putLarge(b []byte) {
	c := cap(b)
	if c%largeStep != 0 || c/largeStep >= len(largePools) {
		return
	}
	box, _ := boxes.Get().(*[]byte)
	if box == nil {
		box = new([]byte)
	}
	*box = b[:0]
	largePools[c/largeStep].Put(box)
}

// growBuf returns b with room for n more bytes: a large buffer from the
// pools (b's bytes copied) when it needs to be large, as append would
// otherwise grow it by doubling.
func growBuf(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	if need := len(b) + n; need > maxPooledBuf {
		return append(largeBuf(need), b...)
	}
	return append(b[:len(b):len(b)], make([]byte, n)...)[:len(b)]
}
