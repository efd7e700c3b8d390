package wsrpc

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordConn records what is written to it.
type recordConn struct {
	net.Conn
	writes [][]byte
	all    []byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.writes = append(r.writes, bytes.Clone(p))
	r.all = append(r.all, p...)
	return len(p), nil
}

// TestFrameWriterCoalesces writes random frames (every length encoding,
// masked or not, control frames between data frames) in random pieces, as
// coder/websocket's bufio.Writer would, through a client frameConn: every
// byte goes out, in order; none is held once a frame has ended; no write
// is larger than writeChunk unless it was one piece; and a large frame
// written in 4 KiB pieces goes out in writeChunk pieces.
func TestFrameWriterCoalesces(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	lengths := []int{0, 1, 125, 126, 127, 4096, 65535, 65536, 70000, 300000}
	for round := range 200 {
		rc := &recordConn{}
		fc := newFrameConn(rc, nil, false)
		fc.coalesceWrites()
		var stream []byte
		var ends []int // offsets in stream where a frame ends
		for range 1 + r.IntN(6) {
			f := fcFrame{fin: true, op: 1, n: lengths[r.IntN(len(lengths))], masked: r.IntN(4) > 0, form: []int{0, 0, 16, 64}[r.IntN(4)]}
			if f.n <= 125 && r.IntN(3) == 0 {
				f.op = 9 // a ping between data frames
			}
			if f.form == 16 && f.n > 0xffff {
				f.form = 0
			}
			stream = fcAppend(stream, f)
			ends = append(ends, len(stream))
		}
		for off := 0; off < len(stream); {
			piece := []int{1, 3, 4096, 4096, 4096, 70000}[r.IntN(6)]
			next := min(len(stream), off+piece)
			n, err := fc.Write(stream[off:next])
			require.NoError(t, err)
			require.Equal(t, next-off, n)
			off = next
			for _, e := range ends {
				if e == off {
					require.Equal(t, stream[:off], rc.all, "round %d: bytes held after a frame ended at %d", round, off)
				}
			}
			require.LessOrEqual(t, len(stream[:off])-len(rc.all), writeChunk, "round %d: more than writeChunk held", round)
		}
		require.Equal(t, stream, rc.all, "round %d", round)
		require.Nil(t, fc.w.held, "round %d: buffer not given back", round)
	}

	// A MiB in 4 KiB pieces: 16 writes of writeChunk, not 256.
	rc := &recordConn{}
	fc := newFrameConn(rc, nil, false)
	fc.coalesceWrites()
	stream := fcAppend(nil, fcFrame{fin: true, op: 1, n: 1 << 20, masked: true})
	for off := 0; off < len(stream); off += 4096 {
		_, err := fc.Write(stream[off:min(len(stream), off+4096)])
		require.NoError(t, err)
	}
	require.Equal(t, stream, rc.all)
	require.LessOrEqual(t, len(rc.writes), (len(stream)+writeChunk-1)/writeChunk+1)
}
