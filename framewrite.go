package wsrpc

import (
	"net"
	"sync"
	"sync/atomic"
)

// This file gathers frame writes into fewer system calls.
//
// coder/websocket masks a client's frame into a 4 KiB bufio.Writer and
// writes it out each time it fills, so a message of a MiB goes out in 256
// writes. On loopback those cost four times the time of the same MiB
// written in 64 KiB pieces, and more than everything else wsrpc does to
// the message. Once the handshake is over (coalesceWrites), a frameConn
// follows the frame headers it writes and holds the bytes of a frame in
// progress, writing them in pieces of up to writeChunk, and always at the
// end of a frame: coder/websocket returns from a frame's write only after
// its last byte has gone to Write, so no byte waits here while wsrpc
// thinks it sent. Frames never interleave (coder/websocket writes one at a
// time). A client's frameConn is under every write once dialed; an
// accepted connection's is too once the 101 response is out
// (hijackRecorder routes coder/websocket's bufio.Writer through it).
//
// Whole frames are also gathered across messages. When writers queue for
// their turn (Peer.writeCtx), the one writing may leave its frame for the
// next to send with its own (setGather): a burst of calls from many
// goroutines, or of broadcasts to one peer (drainOutbound counts as a
// writer while it drains), then goes out in a few system calls rather
// than one each, and the other side reads it in a few. A reader serving
// requests it read together counts as a writer too (Peer.holdAnswers), so
// that their answers go out together once it has served them. Up to
// writeChunk bytes are gathered; any other write (the next message, a
// control frame coder/websocket sends on its own) sends them first, and
// the last writer to leave writeCtx sends what is left (flushGathered),
// so nothing stays here once nobody is writing or holding answers.

// writeChunk is the most a frameConn holds of a frame before writing.
const writeChunk = 64 << 10

var writeChunks = sync.Pool{New: func() any { return new([writeChunk]byte) }}

// frameWriter is a frameConn's write side.
type frameWriter struct {
	on   bool
	held *[writeChunk]byte // from writeChunks while a frame is in progress
	n    int               // bytes in held
	// The frame being written: its header bytes seen so far (hdr, need
	// says how many it has in all, 0 until the second byte is seen), and
	// then the payload bytes still to come (left).
	hdr  [14]byte
	hdrN int
	need int
	left int64

	// Gathered whole frames (gath, gn bytes) and whether the frame being
	// written may join them (gather). gmu orders Write and flushGathered,
	// which run on different goroutines; has mirrors gn > 0 for Peer.
	gmu    sync.Mutex
	gather atomic.Bool
	has    atomic.Bool
	gath   *[writeChunk]byte
	gn     int
}

// coalesceWrites starts gathering writes. Only the goroutine that writes
// may call it, before it writes frames.
func (c *frameConn) coalesceWrites() { c.w.on = true }

// Write writes p, or holds it if p leaves a frame unfinished and there is
// room; see the top of this file.
func (c *frameConn) Write(p []byte) (int, error) {
	w := &c.w
	if !w.on {
		return c.Conn.Write(p)
	}
	w.gmu.Lock()
	defer w.gmu.Unlock()
	atEnd := w.track(p)
	if whole := atEnd && w.n == 0; whole && (w.gn > 0 || w.gather.Load()) {
		if w.gn+len(p) > writeChunk {
			if err := w.flushGathered(c.Conn); err != nil {
				return 0, err
			}
		}
		if len(p) <= writeChunk {
			w.gathered(p)
			if w.gather.Load() {
				return len(p), nil
			}
			// p goes out with the frames gathered before it.
			return len(p), w.flushGathered(c.Conn)
		}
	}
	if err := w.flushGathered(c.Conn); err != nil {
		return 0, err
	}
	if atEnd {
		// Nothing is held once Write returns at the end of a frame.
		defer w.release()
	}
	if w.n+len(p) > writeChunk || w.n == 0 && atEnd {
		if err := w.flush(c.Conn); err != nil {
			return 0, err
		}
		if atEnd || len(p) >= writeChunk {
			return c.Conn.Write(p)
		}
	}
	if w.held == nil {
		w.held = writeChunks.Get().(*[writeChunk]byte)
	}
	w.n += copy(w.held[w.n:], p)
	if atEnd || w.n == writeChunk {
		if err := w.flush(c.Conn); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes what is held, and gives the buffer back if a frame ended.
func (w *frameWriter) flush(c net.Conn) error {
	if w.n == 0 {
		return nil
	}
	_, err := c.Write(w.held[:w.n])
	w.n = 0
	return err
}

// gathered adds the whole frames in p to those gathered.
func (w *frameWriter) gathered(p []byte) {
	if w.gath == nil {
		w.gath = writeChunks.Get().(*[writeChunk]byte)
	}
	w.gn += copy(w.gath[w.gn:], p)
	w.has.Store(true)
}

// flushGathered writes the gathered frames, if any, and gives their
// buffer back. Called with gmu held.
func (w *frameWriter) flushGathered(c net.Conn) error {
	if w.gn == 0 {
		return nil
	}
	_, err := c.Write(w.gath[:w.gn])
	w.gn = 0
	w.has.Store(false)
	writeChunks.Put(w.gath)
	w.gath = nil
	return err
}

// setGather lets the frames written from now on wait for the next write
// (true), or not (false). Only the goroutine whose turn it is to write
// calls it.
func (c *frameConn) setGather(on bool) { c.w.gather.Store(on) }

// hasGathered reports whether frames wait for a write.
func (c *frameConn) hasGathered() bool { return c.w.has.Load() }

// flushGathered writes the frames that wait, if any.
func (c *frameConn) flushGathered() error {
	c.w.gmu.Lock()
	defer c.w.gmu.Unlock()
	return c.w.flushGathered(c.Conn)
}

// release gives the buffer back; nothing is held in it.
func (w *frameWriter) release() {
	if w.held != nil {
		writeChunks.Put(w.held)
		w.held = nil
	}
}

// between reports whether the bytes written so far end with a whole frame.
func (w *frameWriter) between() bool { return w.hdrN == 0 && w.left == 0 }

// track follows the frames in p, and reports whether p ends at the end of
// a frame.
func (w *frameWriter) track(p []byte) bool {
	for len(p) > 0 {
		if w.left > 0 {
			k := min(int64(len(p)), w.left)
			w.left -= k
			p = p[k:]
			continue
		}
		// A header, perhaps split over writes.
		w.hdr[w.hdrN] = p[0]
		w.hdrN++
		p = p[1:]
		if w.hdrN == 2 {
			w.need = 2
			switch w.hdr[1] & 0x7f {
			case 126:
				w.need += 2
			case 127:
				w.need += 8
			}
			if w.hdr[1]&0x80 != 0 {
				w.need += 4 // the masking key
			}
		}
		if w.hdrN < 2 || w.hdrN < w.need {
			continue
		}
		switch n := w.hdr[1] & 0x7f; n {
		case 126:
			w.left = int64(w.hdr[2])<<8 | int64(w.hdr[3])
		case 127:
			for _, b := range w.hdr[2:10] {
				w.left = w.left<<8 | int64(b)
			}
		default:
			w.left = int64(n)
		}
		w.hdrN = 0
	}
	return w.between()
}
