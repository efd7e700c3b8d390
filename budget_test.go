package wsrpc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// This file checks the bounds that hold whatever the other side sends:
// bytes held per peer and per Server, and goroutines per peer.

// heldNow returns the bytes p holds and its goroutines.
func heldNow(p *Peer) (held int64, goroutines int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.goroutines
}

// note returns a notification of method whose params hold n bytes.
func bigNote(method string, n int) string {
	return `{"jsonrpc":"2.0","method":"` + method + `","params":["` + strings.Repeat("n", n) + `"]}`
}

// TestPeerBytesBoundNotifications: a notification handler that sleeps,
// then a flood of large notifications. The peer holds at most MaxPeerBytes
// of them and stops reading (the flood waits in the pipe, as it would in
// TCP's buffers); nothing is dropped, and all are served in order once the
// handler wakes. On e64ff61 the queue was bounded by count only: 1 000
// notifications of 4 MiB held 5.1 GiB.
func TestPeerBytesBoundNotifications(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var got []int
		m := NewMethods()
		Register(m, "sleep", func(context.Context, any) (any, error) {
			<-release
			return nil, nil
		})
		Register(m, "n", func(_ context.Context, p []string) (any, error) {
			mu.Lock()
			got = append(got, len(p[0]))
			mu.Unlock()
			return nil, nil
		})
		const size, limit, count = 1000, 8 << 10, 100
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxMessageSize: 2 << 10, MaxPeerBytes: limit, PingInterval: -1}}, 4*count)
		defer r.p.Close()
		r.send(t, `{"jsonrpc":"2.0","method":"sleep"}`)
		for i := range count {
			r.send(t, bigNote("n", size+i))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		held, _ := heldNow(r.p)
		require.LessOrEqual(t, held, int64(limit), "bytes held while the handler sleeps")
		require.Greater(t, len(r.end.out), 0, "the reader must have stopped reading")
		require.NoError(t, r.p.Err())

		close(release)
		synctest.Wait()
		require.NoError(t, r.p.Err())
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, got, count)
		for i, n := range got {
			require.Equal(t, size+i, n, "notification %d out of order", i)
		}
		held, _ = heldNow(r.p)
		require.Zero(t, held, "bytes given back")
	})
}

// TestPeerBytesBoundRequests: requests to a handler that blocks, each large:
// the peer holds at most MaxPeerBytes of them, reads nothing more, and
// refuses nothing (bytes slow the sender down; only MaxQueued refuses).
func TestPeerBytesBoundRequests(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		m := NewMethods()
		Register(m, "hold", func(_ context.Context, p []string) (int, error) {
			<-release
			return len(p[0]), nil
		})
		const size, limit, count = 1500, 6 << 10, 40
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxMessageSize: 2 << 10, MaxPeerBytes: limit, PingInterval: -1}}, 4*count)
		defer r.p.Close()
		for i := range count {
			r.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"hold","params":["%s"]}`, i, strings.Repeat("r", size)))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		held, _ := heldNow(r.p)
		require.LessOrEqual(t, held, int64(limit))
		require.Empty(t, r.drain(), "nothing is refused: the reader waits")

		close(release)
		time.Sleep(time.Minute)
		synctest.Wait()
		answers := r.drain()
		require.Len(t, answers, count)
		for _, a := range answers {
			require.Contains(t, a, `"result":1500`)
		}
	})
}

// TestOverBudgetWhileCalling: a peer with a call of its own in flight
// cannot stop reading (its answer would never be read), so requests that
// do not fit are refused with CodeServerBusy instead, and the call's
// answer still arrives.
func TestOverBudgetWhileCalling(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		m := NewMethods()
		Register(m, "hold", func(_ context.Context, p []string) (int, error) {
			<-release
			return len(p[0]), nil
		})
		const size, limit = 1500, 4 << 10
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxMessageSize: 2 << 10, MaxPeerBytes: limit, PingInterval: -1}}, 64)
		defer r.p.Close()
		defer close(release)
		var result string
		callErr := make(chan error, 1)
		go func() { callErr <- r.p.Call(context.Background(), "ask", nil, &result) }()
		synctest.Wait()
		ask := <-r.end.in
		for i := range 6 {
			r.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"hold","params":["%s"]}`, i, strings.Repeat("r", size)))
		}
		r.send(t, `{"jsonrpc":"2.0","id":`+rsReqID(t, string(ask))+`,"result":"answer"}`)
		time.Sleep(time.Minute)
		synctest.Wait()
		require.NoError(t, <-callErr)
		require.Equal(t, "answer", result)
		busy := 0
		for _, a := range r.drain() {
			res := rsDecode(t, a)
			require.NotNil(t, res.Error, a)
			require.Equal(t, int64(CodeServerBusy), res.Error.Code, a)
			busy++
		}
		require.Positive(t, busy, "requests over the budget are refused")
		held, _ := heldNow(r.p)
		require.LessOrEqual(t, held, int64(limit+size+100), "at most one message over the budget")
	})
}

// TestDeclaredTooBigRefusedOnHeader: a frame whose header declares more
// than MaxMessageSize closes the connection with 1009 at once, before its
// payload. Until this session the payload was read first, uncharged, up
// to the limit: a client that sent such a header and stalled held
// MaxMessageSize of memory until MessageTimeout, outside MaxServerBytes
// (48 stalled clients, 1 MiB limit, 2 MiB MaxServerBytes: 52 MiB of heap).
// Here MessageTimeout is an hour: only a refusal on the header closes the
// connection while the payload stalls.
func TestDeclaredTooBigRefusedOnHeader(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	s := rsNewServer(t, options{Limits: Limits{MaxMessageSize: limit, MessageTimeout: time.Hour, PingInterval: -1}})
	c := rsRawWebSocket(t, s.addr)
	p := s.peer(t)
	// A masked text frame of limit+1 bytes (64-bit length), all-zero mask,
	// and a few bytes of its payload; the rest never comes.
	frame := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(frame[2:10], limit+1)
	_, err := c.Write(append(frame, "[1,2,3]"...))
	require.NoError(t, err)

	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second))) // a hang fails
	var head [4]byte
	_, err = io.ReadFull(c, head[:])
	require.NoError(t, err, "no close frame while the payload stalls")
	require.Equal(t, byte(0x88), head[0], "a close frame")
	require.Equal(t, websocket.StatusMessageTooBig, websocket.StatusCode(binary.BigEndian.Uint16(head[2:])))
	<-p.Done()
	require.ErrorIs(t, p.Err(), ErrMessageTooBig)
	require.ErrorContains(t, p.Err(), "message too big")
}

// TestServerBytesBound: many connections each send one large request to a
// handler that holds it. Together they hold at most MaxServerBytes beyond
// each peer's first peerFloor bytes; the others wait unread, and all are
// answered once the handlers return. On e64ff61 there was no bound across
// connections: 200 connections sending 4 MiB each peaked at 2.14 GB RSS.
func TestServerBytesBound(t *testing.T) {
	t.Parallel()
	const size, conns = 200 << 10, 12
	const limit = 3 * size
	var srv *rsSrv
	var inside, maxUsed atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{}, conns)
	m := NewMethods()
	Register(m, "hold", func(_ context.Context, p []string) (int, error) {
		inside.Add(1)
		srv.srv.pool.mu.Lock()
		used := srv.srv.pool.used
		srv.srv.pool.mu.Unlock()
		for {
			old := maxUsed.Load()
			if used <= old || maxUsed.CompareAndSwap(old, used) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		return len(p[0]), nil
	})
	srv = rsNewServer(t, options{Methods: m, MaxServerBytes: limit, Limits: Limits{MaxMessageSize: 1 << 20, PingInterval: -1}})
	payload := strings.Repeat("s", size)
	results := make(chan error, conns)
	for range conns {
		p := rsDial(t, srv.url, &options{Limits: Limits{PingInterval: -1}})
		go func() {
			n, err := Call[int](context.Background(), p, "hold", []string{payload})
			if err == nil && n != size {
				err = fmt.Errorf("got %d", n)
			}
			results <- err
		}()
	}
	// Those that fit enter; the pool then has no room for another.
	fit := int(limit / (size - peerFloor))
	for range fit {
		rsWait(t, entered, "a handler to start")
	}
	require.LessOrEqual(t, maxUsed.Load(), int64(limit))
	require.Less(t, inside.Load(), int64(conns), "some requests must wait for room")
	close(release)
	for range conns {
		require.NoError(t, rsWait(t, results, "an answer"))
	}
	require.LessOrEqual(t, maxUsed.Load(), int64(limit), "pool use at any handler's start")
	srv.srv.pool.mu.Lock()
	defer srv.srv.pool.mu.Unlock()
	require.Zero(t, srv.srv.pool.used, "every byte given back")
}

// TestGoroutinesBoundedByHandlers: 600 requests whose handlers call back
// the other side, which never answers. The peer runs at most MaxHandlers
// handler goroutines (plus its reader and a few of its own): once every
// slot waits, queued requests run on the waiting goroutines (nested), until
// MaxPending callbacks are outstanding; the rest are refused. On e64ff61 a
// handler waiting on its own peer lent its slot to a new goroutine: 289
// goroutines for one peer.
func TestGoroutinesBoundedByHandlers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := NewMethods()
		Register(m, "reverse.call", func(ctx context.Context, _ any) (json.RawMessage, error) {
			var out json.RawMessage
			err := PeerFromContext(ctx).Call(ctx, "client.method", nil, &out)
			return out, err
		})
		const handlers, queued = 8, 32
		r := rsNewRaw(&options{Methods: m, Limits: Limits{MaxHandlers: handlers, MaxQueued: queued, PingInterval: -1}}, 1024)
		for i := range 600 {
			r.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"reverse.call"}`, i))
			if i%50 == 0 {
				time.Sleep(10 * time.Millisecond)
				synctest.Wait()
				_, g := heldNow(r.p)
				require.LessOrEqual(t, g, handlers+3, "goroutines after %d requests", i)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		_, g := heldNow(r.p)
		require.LessOrEqual(t, g, handlers+3)
		callbacks, busy := 0, 0
		for _, a := range r.drain() {
			switch {
			case strings.Contains(a, `"method":"client.method"`):
				callbacks++
			case strings.Contains(a, `-32000`):
				busy++
			default:
				t.Fatalf("unexpected %s", a)
			}
		}
		r.p.mu.Lock()
		left := len(r.p.queue)
		r.p.mu.Unlock()
		require.LessOrEqual(t, callbacks, DefaultMaxPending)
		require.Greater(t, callbacks, handlers, "queued requests are served by the waiting handlers")
		// Each handler goroutine may hold one more request, waiting for a
		// MaxPending place to call back.
		accounted := callbacks + busy + left
		require.True(t, accounted <= 600 && accounted >= 600-handlers, "%d requests calling back, refused or queued", accounted)
		r.p.Close()
	})
}
