package wsrpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
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

// TestFrameWriterGathers: whole frames written while gathering wait, in
// order, for the next write that does not gather, for flushGathered, or
// for writeChunk bytes to fill; a frame in pieces sends them first.
func TestFrameWriterGathers(t *testing.T) {
	t.Parallel()
	rc := &recordConn{}
	fc := newFrameConn(rc, nil, false)
	fc.coalesceWrites()
	small := func(n int) []byte { return fcAppend(nil, fcFrame{fin: true, op: 1, n: n, masked: true}) }
	a, b, c := small(10), small(200), small(3000)

	fc.setGather(true)
	for _, f := range [][]byte{a, b} {
		n, err := fc.Write(f)
		require.NoError(t, err)
		require.Equal(t, len(f), n)
	}
	require.Empty(t, rc.writes, "gathered frames went out")
	require.True(t, fc.hasGathered())
	fc.setGather(false)
	_, err := fc.Write(c)
	require.NoError(t, err)
	require.Equal(t, [][]byte{append(append(bytes.Clone(a), b...), c...)}, rc.writes, "one write for the three")
	require.False(t, fc.hasGathered())
	require.Nil(t, fc.w.gath, "buffer not given back")

	// flushGathered sends what waits, and nothing when nothing does.
	rc.writes, rc.all = nil, nil
	fc.setGather(true)
	_, err = fc.Write(a)
	require.NoError(t, err)
	fc.setGather(false)
	require.NoError(t, fc.flushGathered())
	require.NoError(t, fc.flushGathered())
	require.Equal(t, [][]byte{a}, rc.writes)

	// Gathering stops at writeChunk bytes: what would overflow goes out.
	rc.writes, rc.all = nil, nil
	fc.setGather(true)
	var want []byte
	for range 3 {
		f := small(30000)
		want = append(want, f...)
		_, err = fc.Write(f)
		require.NoError(t, err)
	}
	require.Len(t, rc.writes, 1)
	require.LessOrEqual(t, len(rc.writes[0]), writeChunk)
	// A frame in 4 KiB pieces sends the gathered frames before its first.
	big := fcAppend(nil, fcFrame{fin: true, op: 1, n: 100000, masked: true})
	want = append(want, big...)
	for off := 0; off < len(big); off += 4096 {
		_, err = fc.Write(big[off:min(len(big), off+4096)])
		require.NoError(t, err)
	}
	fc.setGather(false)
	require.NoError(t, fc.flushGathered())
	require.Equal(t, want, rc.all)
}

// TestConcurrentWritersLoseNothing: many goroutines notify at once, some
// giving up while they wait for their turn, so that messages are gathered
// for writers that then leave. Every notification whose Notify returned
// nil arrives, no other does, and nothing stays gathered.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	t.Parallel()
	const goroutines, each = 32, 200
	var got atomic.Int64
	m := NewMethods()
	Register(m, "note", func(_ context.Context, p [1]int) (struct{}, error) {
		got.Add(1)
		return struct{}{}, nil
	})
	Register(m, "sum", func(_ context.Context, p [2]int) (int, error) { return p[0] + p[1], nil })
	s := appServe(t, &options{Methods: m, Limits: Limits{MaxNotifications: goroutines * each}})
	c := appDial(t, s.ws, nil)
	var sent atomic.Int64
	var g errgroup.Group
	for i := range goroutines {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range each {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(40))*time.Microsecond)
				if r.IntN(2) == 0 {
					cancel()
					ctx, cancel = context.WithCancel(context.Background())
				}
				err := c.Notify(ctx, "note", [1]int{i})
				cancel()
				switch {
				case err == nil:
					sent.Add(1)
				case !errors.Is(err, context.DeadlineExceeded):
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Zero(t, c.writers.Load())
	require.False(t, c.conn.hasGathered(), "messages left gathered")
	// One connection keeps order: once a call is answered, the server has
	// read every notification sent before it, and serves them soon after.
	giveUp := time.Now().Add(20 * time.Second) // a failure detector, not a bound
	for got.Load() != sent.Load() {
		var sum int
		require.NoError(t, c.Call(context.Background(), "sum", [2]int{1, 2}, &sum))
		require.LessOrEqual(t, got.Load(), sent.Load(), "more notifications arrived than were sent")
		require.True(t, time.Now().Before(giveUp), "%d of %d notifications arrived", got.Load(), sent.Load())
	}
	require.Greater(t, sent.Load(), int64(goroutines*each/4))
}

// TestLastWriterOutSendsGathered: a message gathered for a writer that then
// leaves without writing goes out when the last writer leaves. The test is
// that writer: it holds the turn while a notification queues behind it,
// lets the notification take the turn while still counted itself (so the
// notification is gathered for it), and leaves only once Notify returned.
func TestLastWriterOutSendsGathered(t *testing.T) {
	t.Parallel()
	got := make(chan int, 1)
	m := NewMethods()
	Register(m, "note", func(_ context.Context, p [1]int) (struct{}, error) {
		got <- p[0]
		return struct{}{}, nil
	})
	s := appServe(t, &options{Methods: m})
	c := appDial(t, s.ws, nil)

	c.writers.Add(1)
	c.writeSem <- struct{}{} // the test's turn
	notified := make(chan error, 1)
	go func() { notified <- c.Notify(context.Background(), "note", [1]int{7}) }()
	for c.writers.Load() != 2 { // the notification waits for its turn
		runtime.Gosched()
	}
	<-c.writeSem
	require.NoError(t, rsWait(t, notified, "Notify"))
	require.True(t, c.conn.hasGathered(), "the notification was not gathered")
	require.NoError(t, c.leaveWriting())
	require.Equal(t, 7, rsWait(t, got, "the notification"))
	require.False(t, c.conn.hasGathered())
}

// TestCloseAnswerGatheredGoesOut: when the other side closes while a
// message is being written with gathering on, coder/websocket's answering
// close frame is gathered too; the last writer out sends it although the
// peer has closed by then, so the other side's Close completes its
// handshake rather than waiting out its timeout.
func TestCloseAnswerGatheredGoesOut(t *testing.T) {
	t.Parallel()
	serverPeer := make(chan *Peer, 1)
	s := appServe(t, &options{OnConnect: func(p *Peer) { serverPeer <- p }})
	c := appDial(t, s.ws, nil)
	sp := rsWait(t, serverPeer, "the server's peer")

	// The test is a writer in the middle of a gathered write.
	c.writers.Add(1)
	c.writeSem <- struct{}{}
	c.conn.setGather(true)
	closed := make(chan error, 1)
	go func() { closed <- sp.Close() }()
	rsWait(t, c.Done(), "the client to see the close")
	require.True(t, c.conn.hasGathered(), "the close frame answering the server's was not gathered")
	c.conn.setGather(false)
	<-c.writeSem
	c.leaveWriting()
	require.False(t, c.conn.hasGathered())
	require.NoError(t, rsWait(t, closed, "the server's Close"))
	var ce websocket.CloseError
	require.ErrorAs(t, c.Err(), &ce)
	require.Equal(t, websocket.StatusNormalClosure, ce.Code)
}

// TestServerWritesFramedOverTLS: a Server behind TLS (wss) routes its
// writes through the frameConn above TLS, and carries messages of every
// size class and a broadcast burst both ways.
func TestServerWritesFramedOverTLS(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]string) (string, error) { return p[0], nil })
	serverPeer := make(chan *Peer, 1)
	srv := appServeOn(t, &options{Methods: m, OnConnect: func(p *Peer) { serverPeer <- p }}, httptest.NewTLSServer)
	got := make(chan int, 100)
	cm := NewMethods()
	Register(cm, "n", func(_ context.Context, p [1]int) (any, error) {
		got <- p[0]
		return nil, nil
	})
	c := appDial(t, srv.ws, &options{Methods: cm, HTTPClient: srv.hc})
	sp := rsWait(t, serverPeer, "the server's peer")
	fc := sp.conn.(*wsTransport).frames
	require.NotNil(t, fc)
	require.True(t, fc.w.on, "the server's writes do not go through its frameConn")
	_, aboveTLS := fc.Conn.(*tls.Conn)
	require.True(t, aboveTLS)

	for _, n := range []int{1, 1000, 5000, 70000, 1 << 20} {
		in := strings.Repeat("z", n)
		var out string
		require.NoError(t, c.Call(context.Background(), "echo", [1]string{in}, &out))
		require.Equal(t, in, out)
	}
	for i := range 100 {
		_, err := srv.Broadcast(context.Background(), "n", [1]int{i}, nil)
		require.NoError(t, err)
	}
	for i := range 100 {
		require.Equal(t, i, rsWait(t, got, "a broadcast"))
	}
}
