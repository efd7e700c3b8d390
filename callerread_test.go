package wsrpc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// This file checks callers that read their own answers with a context that
// can end (caller mode, frameconn.go): they stop reading at once when the
// context ends, and leave to a reader every frame they may not read.

// rawServer serves one WebSocket connection with handle, which speaks raw
// frames through coder/websocket, and returns its ws:// URL.
func rawServer(t *testing.T, handle func(ctx context.Context, c *websocket.Conn)) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		handle(r.Context(), c)
		// Read on, so that the other side's close handshake completes.
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// readRequest reads one request and returns its raw id.
func readRequest(ctx context.Context, t *testing.T, c *websocket.Conn) string {
	_, b, err := c.Read(ctx)
	require.NoError(t, err)
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	require.NoError(t, json.Unmarshal(b, &req))
	return string(req.ID)
}

// waitHolder waits until p's reading role is held as want.
func waitHolder(t *testing.T, p *Peer, want roleHolder) {
	guard := time.Now().Add(time.Minute) // against a hang, not a bound on speed
	for time.Now().Before(guard) {
		p.mu.Lock()
		h := p.role.holder
		p.mu.Unlock()
		if h == want {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("the reading role never became %d", want)
}

// TestCallerReadStopsWhenContextEnds: a caller with a cancellable context
// reads its own answer (the role is a caller's), and when the context ends
// its read stops at once, the call returns ctx.Err(), the connection stays
// up, and a reader reads the late answer and what follows.
func TestCallerReadStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 2)
	answer := make(chan struct{})
	url := rawServer(t, func(ctx context.Context, c *websocket.Conn) {
		warm := readRequest(ctx, t, c)
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+warm+`,"result":"warm"}`))
		first := readRequest(ctx, t, c)
		ids <- first
		<-answer
		// The late answer, then the answer to the next call.
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+first+`,"result":"late"}`))
		next := readRequest(ctx, t, c)
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+next+`,"result":"next"}`))
	})
	p := rsDial(t, url, &options{Limits: Limits{PingInterval: -1}})
	// No reader may take the free role back between the two calls, which
	// on a busy machine can be more than the lapse apart.
	p.mu.Lock()
	p.lapseAfter = time.Hour
	p.mu.Unlock()
	// The first answer is read by the reader the peer starts with, which
	// then steps aside: the next call reads its own.
	_, err := Call[string](context.Background(), p, "warm", nil)
	require.NoError(t, err)
	// A call made before that reader reports idle is read by it (which is
	// right, but not what this test is about): wait for the free role.
	waitHolder(t, p, roleNone)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		var s string
		errc <- p.Call(ctx, "slow", nil, &s)
	}()
	<-ids
	waitHolder(t, p, roleCaller)
	cancel()
	require.ErrorIs(t, rsWait(t, errc, "the cancelled call"), context.Canceled)
	require.NoError(t, p.Err())
	close(answer)
	got, err := Call[string](context.Background(), p, "next", nil)
	require.NoError(t, err)
	require.Equal(t, "next", got)
}

// TestCallerLeavesLargeAndFragmentedFrames: answers a caller may not read
// in caller mode (over callerFrameMax, or in several frames) go to a
// reader, and arrive whole; so do a ping and a notification between them.
func TestCallerLeavesLargeAndFragmentedFrames(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 3*callerFrameMax)
	url := rawServer(t, func(ctx context.Context, c *websocket.Conn) {
		id := readRequest(ctx, t, c) // answered to the peer's first reader
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+id+`,"result":"warm"}`))
		id = readRequest(ctx, t, c)
		go c.Ping(ctx) // answered by whoever reads on the other side
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"note","params":["`+big+`"]}`))
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+id+`,"result":"`+big+`"}`))
		id = readRequest(ctx, t, c)
		w, err := c.Writer(ctx, websocket.MessageText)
		require.NoError(t, err)
		w.Write([]byte(`{"jsonrpc":"2.0","id":` + id))
		w.Write([]byte(`,"result":"fragmented"}`))
		w.Close()
		id = readRequest(ctx, t, c)
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+id+`,"result":"small"}`))
	})
	notes := make(chan int, 1)
	m := NewMethods()
	Register(m, "note", func(_ context.Context, p [1]string) (any, error) {
		notes <- len(p[0])
		return nil, nil
	})
	p := rsDial(t, url, &options{Methods: m, Limits: Limits{PingInterval: -1}})
	for _, want := range []string{"warm", big, "fragmented", "small"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		got, err := Call[string](ctx, p, "get", nil)
		cancel()
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.Equal(t, len(big), rsWait(t, notes, "the notification"))
	require.NoError(t, p.Err())
}

// TestLapseAfterRunOfCalls: while a peer's callers keep reading for
// themselves, the lapse period grows, but a notification that arrives
// after the last call of a long run is still read within two of the
// longest periods; and the next quiet spell is back to readLapse.
func TestLapseAfterRunOfCalls(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		got := make(chan time.Time, 2)
		cm := NewMethods()
		Register(cm, "note", func(context.Context, any) (any, error) {
			got <- time.Now()
			return nil, nil
		})
		sm := NewMethods()
		Register(sm, "ping", func(context.Context, any) (bool, error) { return true, nil })
		noPing := Limits{PingInterval: -1}
		cli, srv := rsPipePeers(&options{Methods: cm, Limits: noPing}, &options{Methods: sm, Limits: noPing})
		defer srv.Close()
		defer cli.Close()

		ctx := context.Background() // so that each call reads for itself
		// 30 ms of calls 100 µs apart: the lapse timer keeps finding the
		// role taken or freed again.
		for range 300 {
			_, err := Call[bool](ctx, cli, "ping", nil)
			require.NoError(t, err)
			time.Sleep(100 * time.Microsecond)
		}
		cli.mu.Lock()
		shift := cli.role.lapseShift
		cli.mu.Unlock()
		require.Equal(t, uint8(maxLapseShift), shift, "the period after a run of calls")

		sent := time.Now()
		require.NoError(t, srv.Notify(ctx, "note", nil))
		wait := (<-got).Sub(sent)
		require.LessOrEqual(t, wait, 2*readLapse<<maxLapseShift, "a notification after the run")
		synctest.Wait()

		// A reader took the role and keeps it: the next notification is
		// read at once, and the period is short again.
		sent = time.Now()
		require.NoError(t, srv.Notify(ctx, "note", nil))
		require.Zero(t, (<-got).Sub(sent))
		cli.mu.Lock()
		shift = cli.role.lapseShift
		cli.mu.Unlock()
		require.Zero(t, shift)
	})
}

// TestCallerReadsBetweenLargeNotifications: a dialed client calls with
// contexts that can end (so it reads its answers in caller mode) while the
// server sends it notifications of 8 KiB, longer than coder/websocket's
// read buffer. Every call gets its own answer and every notification
// arrives. Until this session the client parsed the middle of such a
// frame as a header and failed within a few calls ("received header with
// unexpected rsv bits set"); with context.Background it did not.
func TestCallerReadsBetweenLargeNotifications(t *testing.T) {
	t.Parallel()
	const notes, size = 600, 8 << 10
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]int) (int, error) { return p[0], nil })
	connected := make(chan *Peer, 1)
	s := appServe(t, &options{Methods: m, OnConnect: func(p *Peer) { connected <- p }})
	got := make(chan int, notes)
	cm := NewMethods()
	Register(cm, "tick", func(_ context.Context, p [2]any) (struct{}, error) {
		got <- int(p[0].(float64))
		return struct{}{}, nil
	})
	c := appDial(t, s.ws, &options{Methods: cm})
	sp := rsWait(t, connected, "the server's peer")
	sent := make(chan error, 1)
	go func() {
		pad := strings.Repeat("x", size)
		for i := range notes {
			if err := sp.Notify(context.Background(), "tick", [2]any{i, pad}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n, err := Call[int](ctx, c, "echo", [1]int{i})
		cancel()
		require.NoError(t, err, "call %d", i)
		require.Equal(t, i, n)
		if i >= 50 && len(sent) > 0 {
			break
		}
	}
	require.NoError(t, <-sent)
	for i := range notes {
		require.Equal(t, i, rsWait(t, got, "a notification"))
	}
}
