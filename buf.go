package wsrpc

import "sync"

// This file pools message buffers. Small ones (up to maxPooledBuf) share
// one pool and grow as they are used; large ones are pooled by size, in
// steps of largeStep, so that a message of some MiB is read into, and
// answered from, a buffer used before rather than a fresh allocation: at
// a few MiB a message, fresh buffers were most of the bytes allocated, and
// the garbage collector's lag behind them most of the memory a busy
// server held.

// msgBuf is a reusable message buffer.
type msgBuf struct{ b []byte }

const maxPooledBuf = 1 << 20

var bufPool = sync.Pool{New: func() any { return &msgBuf{b: make([]byte, 0, 512)} }}

func getBuf() *msgBuf { return bufPool.Get().(*msgBuf) }

// putBuf recycles m, into the small pool or its size's large pool.
func putBuf(m *msgBuf) {
	c := cap(m.b)
	switch {
	case c <= maxPooledBuf:
		m.b = m.b[:0]
		bufPool.Put(m)
	case c%largeStep == 0 && c/largeStep < len(largePools):
		b := m.b[:0]
		largePools[c/largeStep].Put(&b)
	}
}

const largeStep = 1 << 20

// largePools[k] holds buffers of k × largeStep bytes, up to 64 MiB.
var largePools [65]sync.Pool

// largeBuf returns an empty buffer with room for n bytes, n over
// maxPooledBuf: its capacity is n rounded up to a largeStep.
func largeBuf(n int) []byte {
	k := (n + largeStep - 1) / largeStep
	if k < len(largePools) {
		if b, ok := largePools[k].Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, 0, k*largeStep)
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
