package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

func TestBroadcastFilterAndPeerIDs(t *testing.T) {
	t.Parallel()
	connected := make(chan *Peer, 3)
	s := appServe(t, &options{OnConnect: func(p *Peer) { connected <- p }})
	type news struct {
		Seq  int    `json:"seq"`
		Text string `json:"text"`
	}
	got := make([]chan news, 3)
	var ids []uint64
	for i := range got {
		got[i] = make(chan news, 4)
		m := NewMethods()
		ch := got[i]
		Register(m, "news", func(_ context.Context, n news) (any, error) { ch <- n; return nil, nil })
		appDial(t, s.ws, &options{Methods: m, HTTPHeader: http.Header{"X-Index": {string(rune('0' + i))}}})
		p := <-connected
		require.NotZero(t, p.ID())
		require.Same(t, p, s.Peer(p.ID()))
		ids = append(ids, p.ID())
	}
	require.Less(t, ids[0], ids[1], "numbered as they connect")
	require.Less(t, ids[1], ids[2])
	require.Nil(t, s.Peer(0))
	require.Nil(t, s.Peer(ids[2]+1000))
	ctx := context.Background()

	n, err := sentOf(s.Broadcast(ctx, "news", news{Seq: 1, Text: "all"}, nil))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	for _, ch := range got {
		require.Equal(t, news{Seq: 1, Text: "all"}, <-ch)
	}

	// To one peer, by id, through the filter...
	n, err = sentOf(s.Broadcast(ctx, "news", news{Seq: 2, Text: "one"}, func(p *Peer) bool { return p.ID() == ids[1] }))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, news{Seq: 2, Text: "one"}, <-got[1])
	// ...or by the upgrade request.
	n, err = sentOf(s.Broadcast(ctx, "news", news{Seq: 3, Text: "two"}, func(p *Peer) bool {
		return p.HTTPRequest().Header.Get("X-Index") == "2"
	}))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, news{Seq: 3, Text: "two"}, <-got[2])
	// Or directly, waiting for the write.
	require.NoError(t, s.Peer(ids[0]).Notify(ctx, "news", news{Seq: 4, Text: "direct"}))
	require.Equal(t, news{Seq: 4, Text: "direct"}, <-got[0])

	// A closed peer is not counted.
	p0 := s.Peer(ids[0])
	require.NoError(t, p0.Close())
	n, err = sentOf(s.Broadcast(ctx, "news", news{Seq: 5}, func(p *Peer) bool { return p == p0 }))
	require.NoError(t, err)
	require.Zero(t, n)

	// Errors: nothing is sent.
	_, err = sentOf(s.Broadcast(ctx, "news", 42, nil))
	require.ErrorContains(t, err, "array or object")
	_, err = sentOf(s.Broadcast(ctx, "news", []string{strings.Repeat("x", DefaultMaxMessageSize)}, nil))
	require.ErrorIs(t, err, ErrMessageTooBig)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = sentOf(s.Broadcast(cctx, "news", nil, nil))
	require.ErrorIs(t, err, context.Canceled)
	for _, ch := range got[1:] {
		require.Empty(t, ch)
	}
}

// ConnectedAt is when the handshake completed, on both sides, and stays
// the same for the peer's whole life.
func TestPeerConnectedAt(t *testing.T) {
	t.Parallel()
	connected := make(chan *Peer, 1)
	s := appServe(t, &options{OnConnect: func(p *Peer) { connected <- p }})
	before := time.Now()
	client := appDial(t, s.ws, nil)
	p := <-connected
	after := time.Now()
	for _, at := range []time.Time{p.ConnectedAt(), client.ConnectedAt()} {
		require.False(t, at.Before(before), "ConnectedAt before the dial began")
		require.False(t, at.After(after), "ConnectedAt after the peer was connected")
	}
	require.Equal(t, p.ConnectedAt(), p.ConnectedAt())
}

// Once its queue is written, an idle peer is back to its reading goroutine:
// the queue's goroutine exists only while there is something to send.
func TestBroadcastQueueGoroutineEnds(t *testing.T) {
	t.Parallel()
	connected := make(chan *Peer, 1)
	s := appServe(t, &options{OnConnect: func(p *Peer) { connected <- p }})
	got := make(chan int, 100)
	m := NewMethods()
	Register(m, "n", func(_ context.Context, n int) (any, error) { got <- n; return nil, nil })
	appDial(t, s.ws, &options{Methods: m})
	sp := <-connected
	for i := range 100 {
		n, err := sentOf(s.Broadcast(context.Background(), "n", []int{i}, nil))
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	for i := range 100 {
		require.Equal(t, i, <-got, "in order")
	}
	require.Eventually(t, func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return !sp.out.busy && sp.out.q == nil && sp.goroutines <= 1
	}, 5*time.Second, time.Millisecond)
}

// smallBuffers makes accepted connections' kernel send buffers small, so
// that a peer that does not read fills them after a few messages rather
// than after megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// With SlowPeerClose, one peer that stops reading must not hold up a
// broadcast or the other peers: the broadcasts return at once, 999 peers
// receive every one of them in order, and the one that does not read is
// closed with 1008 once its queue overflows.
//
// The clients are plain WebSocket connections: the readers only look at the
// sequence number, so that the test's cost is the server's, and the slow
// one reads nothing at all until the end.
func TestBroadcastSlowPeerDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	const readers = 999
	const queue = 4
	var slowPeer atomic.Pointer[Peer]
	srv := newServer(&options{
		MaxOutbound: queue,
		SlowPeers:   SlowPeerClose,
		// Only the queue bound may close the slow peer here; and a
		// Broadcast that waited for it would take this long.
		Limits: Limits{WriteTimeout: time.Minute},
		OnConnect: func(p *Peer) {
			if p.HTTPRequest().Header.Get("X-Slow") != "" {
				slowPeer.Store(p)
			}
		},
	})
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = smallBuffers{hs.Listener}
	hs.Start()
	defer hs.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
	}()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx := context.Background()

	// The readers: each checks that it gets every broadcast, in order.
	conns := make([]*websocket.Conn, readers)
	var dials sync.WaitGroup
	var next atomic.Int32
	for range 16 {
		dials.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= readers {
					return
				}
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetReadLimit(1 << 20)
				conns[i] = c
			}
		})
	}
	dials.Wait()
	require.False(t, t.Failed())
	received := make(chan int, readers)
	var disorder, lost atomic.Int32
	var reading sync.WaitGroup
	for _, c := range conns {
		reading.Go(func() {
			want := 0
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					if websocket.CloseStatus(err) != -1 {
						lost.Add(1) // the server closed a reader
					}
					return
				}
				seq := tickSeq(msg)
				if seq != want {
					disorder.Add(1)
				}
				want = seq + 1
				received <- seq
			}
		})
	}
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
		reading.Wait()
	}()

	// The one that never reads, with a small receive buffer so that it is
	// full after a few messages rather than after megabytes.
	var slowTCP *net.TCPConn
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
			slowTCP = tc
		}
		return c, err
	}}}
	slow, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"X-Slow": {"1"}}})
	require.NoError(t, err)
	defer slow.CloseNow()
	// A peer is listed (Len) before its OnConnect has run: wait for both.
	require.Eventually(t, func() bool { return srv.Len() == readers+1 && slowPeer.Load() != nil }, 10*time.Second, time.Millisecond)
	sp := slowPeer.Load()
	require.NotNil(t, sp)

	// Broadcast round after round, each waiting for the readers (so that
	// only the slow one falls behind), until the slow one is closed.
	type tick struct {
		Seq     int    `json:"seq"`
		Payload string `json:"payload"`
	}
	payload := strings.Repeat("p", 1<<10)
	// The waits below have no deadline of their own: on a busy machine
	// any would be too short; go test's -timeout bounds them.
	waitRound := func(int) {
		for range readers {
			<-received
		}
	}
	// Once it is closed, the slow client reads at last: what fitted in the
	// socket buffers, then the close frame. Its closing handshake waits
	// for the write stuck on it, so the reading starts at once.
	slowErr := make(chan error, 1)
	readSlow := func() {
		// A buffer smaller than a loopback segment (64 KiB) never
		// reopens the window on its own; the sender would be left
		// probing with a backoff.
		slowTCP.SetReadBuffer(1 << 20)
		slow.SetReadLimit(1 << 20)
		for {
			if _, _, err := slow.Read(ctx); err != nil {
				slowErr <- err
				return
			}
		}
	}
	require.NotNil(t, slowTCP)

	var slowest time.Duration
	rounds := 0
	for overflowed := false; !overflowed; rounds++ {
		require.Less(t, rounds, 500, "the slow peer was never closed")
		start := time.Now()
		n, err := sentOf(srv.Broadcast(ctx, "tick", tick{Seq: rounds, Payload: payload}, nil))
		slowest = max(slowest, time.Since(start))
		require.NoError(t, err)
		if n == readers {
			// The slow peer overflowed, and is being closed.
			overflowed = true
			<-sp.Done() // the peer that overflowed is closed
			go readSlow()
		} else {
			require.Equal(t, readers+1, n)
		}
		waitRound(rounds)
	}
	// One more round after it was closed.
	n, err := sentOf(srv.Broadcast(ctx, "tick", tick{Seq: rounds, Payload: payload}, nil))
	require.NoError(t, err)
	require.Equal(t, readers, n)
	waitRound(rounds)
	rounds++

	t.Logf("%d rounds of %d KiB to %d peers; slowest Broadcast call %v", rounds, len(payload)>>10, readers+1, slowest)
	// Broadcast never waits for a peer: had it waited for the slow one,
	// WriteTimeout would have closed that peer (a write that did not
	// complete), not its queue overflowing, which is checked below.
	require.Zero(t, disorder.Load(), "every reader got every broadcast, in order")
	require.Zero(t, lost.Load(), "no reader was closed")
	require.ErrorContains(t, sp.Err(), "outbound queue overflow")

	// The slow client is told why, 1008, when the close frame gets through:
	// it waits behind the write stuck on that client, which ends when the
	// client, reading again, drains it, or when the closing handshake's
	// own timeout (coder/websocket: 5 s) drops the connection first, as
	// it may on a busy machine. Either way the connection ends.
	err = <-slowErr
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		require.Equal(t, websocket.StatusPolicyViolation, ce.Code)
		require.Contains(t, ce.Reason, "outbound queue overflow")
	} else {
		t.Logf("the slow client's connection was dropped before the close frame got through: %v", err)
	}
}

// tickSeq reads the sequence number of a tick notification without
// decoding its payload.
func tickSeq(msg []byte) int {
	const key = `"seq":`
	i := strings.Index(string(msg[:min(len(msg), 64)]), key)
	if i < 0 {
		return -1
	}
	n := 0
	for _, c := range msg[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// sentOf is the number of peers a broadcast was queued for.
func sentOf(res BroadcastResult, err error) (int, error) { return res.Sent, err }

// TestBroadcastBurstWaitsForReaders: by default (SlowPeerWait) a burst of
// broadcasts is slowed to the pace of the readers, and a client that keeps
// reading gets every one, in order, however small its queue. With
// SlowPeerDrop the broadcasts that find a queue full skip that peer and say
// so. On e64ff61 a burst of 3 000 closed a client that was reading
// continuously with 1008, and the broadcasts after it reported sent = 0
// with a nil error (issue 12, item 5).
func TestBroadcastBurstWaitsForReaders(t *testing.T) {
	t.Parallel()
	for _, policy := range []SlowPeerPolicy{SlowPeerWait, SlowPeerDrop} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			t.Parallel()
			const burst = 3000
			s := appServe(t, &options{MaxOutbound: 8, SlowPeers: policy})
			got := make(chan int, burst)
			cm := NewMethods()
			Register(cm, "n", func(_ context.Context, p [1]int) (any, error) {
				got <- p[0]
				return nil, nil
			})
			c := appDial(t, s.ws, &options{Methods: cm})
			var total BroadcastResult
			for i := range burst {
				res, err := s.Broadcast(context.Background(), "n", []int{i}, nil)
				require.NoError(t, err)
				total.Sent += res.Sent
				total.Dropped += res.Dropped
				total.Closed += res.Closed
			}
			require.Equal(t, burst, total.Sent+total.Dropped)
			require.Zero(t, total.Closed)
			last := -1
			for range total.Sent {
				n := rsWait(t, got, "a broadcast")
				require.Greater(t, n, last, "in order")
				last = n
			}
			require.NoError(t, c.Err(), "a client that reads is never closed")
			if policy == SlowPeerWait {
				require.Equal(t, burst, total.Sent, "every broadcast reaches it")
			}
		})
	}
}

// TestCallsAnsweredDuringBroadcastBurst: while a peer's outbound queue is
// drained, the drainer counts as a writer and every message on that peer
// is gathered, answers included; each still goes out (no later than the
// queue runs dry), and the broadcasts arrive whole and in order.
func TestCallsAnsweredDuringBroadcastBurst(t *testing.T) {
	t.Parallel()
	const burst, calls = 2000, 200
	m := NewMethods()
	Register(m, "sum", func(_ context.Context, p [2]int) (int, error) { return p[0] + p[1], nil })
	s := appServe(t, &options{Methods: m, MaxOutbound: 64})
	got := make(chan int, burst)
	cm := NewMethods()
	Register(cm, "n", func(_ context.Context, p [1]int) (any, error) {
		got <- p[0]
		return nil, nil
	})
	c := appDial(t, s.ws, &options{Methods: cm, Limits: Limits{MaxNotifications: burst}})
	var g errgroup.Group
	g.Go(func() error {
		for i := range burst {
			if _, err := s.Broadcast(context.Background(), "n", []int{i}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range calls {
		g.Go(func() error {
			var r int
			if err := c.Call(context.Background(), "sum", [2]int{i, 1}, &r); err != nil {
				return err
			}
			if r != i+1 {
				return fmt.Errorf("sum %d: got %d", i, r)
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	require.NoError(t, rsWait(t, done, "every call and broadcast"))
	for want := range burst {
		require.Equal(t, want, rsWait(t, got, "a broadcast"))
	}
}
