package interop_test

// Streams against streams.mjs, a Node implementation of wsrpc's stream
// protocol written from the Streams section of doc.go alone (plain ws,
// hand-rolled JSON-RPC messages): these tests check that the documented wire
// is enough for another language, in both directions.
//
// Node subscribes to a Go stream (TestNodeSubscribesToGoStream): with a
// window of 8 values it gets all 500 values of 1 KiB in order and a normal
// end, or the end carrying the producer's *wsrpc.Error (code, message,
// data); it never holds more than the window, and never gets a value it did
// not grant by the doc's rule (credit n values and bytes bytes, sent while a
// value and any bytes are left); a byte window bounds what it holds to the
// bytes plus one message; n = -1 lifts the limit. When Node unsubscribes
// after K values, the Go sink's Done closes with Err ErrUnsubscribed, the
// producer's Send fails with ErrStreamClosed, the producer never sent more
// than Node granted, and a normal call on the same connection still works.
//
// Go subscribes to Node (TestGoSubscribesToNodeStream): with Buffer 4 and
// OverflowBlock it gets all values in order and io.EOF, or the Node end's
// error as a *wsrpc.Error; Node reports that it held its values back until
// the first credit, sent nothing before it, never went past the credit, and
// had at most 4 values unacknowledged. Closing the subscription stops Node.
// With OverflowDropOldest, Node sends everything at once: once Node has
// answered a call made after the subscription (so the Go reader has
// processed every value and the end before that answer), Dropped counts the
// values dropped and the last Buffer values are the ones kept.
//
// No sleeps: waits are on answers, process exits and channels; the
// contexts' deadlines are safety nets.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wsrpc/wsrpc"
)

// feedValue is a value of the feed streams: n counts from 0, text has the
// size asked for.
type feedValue struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

// feedParams subscribes to the Go feed: count values of size characters,
// then the end (with feedFailure when fail).
type feedParams struct {
	Count int  `json:"count"`
	Size  int  `json:"size"`
	Fail  bool `json:"fail,omitempty"`
}

var goFeed = wsrpc.NewStream[feedParams, feedValue]("feed")

var feedFailure = &wsrpc.Error{Code: -32044, Message: "feed failed", Data: json.RawMessage(`{"after":"all values","n":[1,2]}`)}

// textOf is the text of a value of size characters, as streams.mjs makes it.
func textOf(size int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	for i := range size {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// producerEnd is how a Go producer ended: the values it sent and its Send
// error.
type producerEnd struct {
	sent int
	err  error
}

// feedServer is a Go server of the feed stream and a "ping" method.
type feedServer struct {
	url   string
	sinks chan *wsrpc.Sink[feedValue] // each subscription's sink, as its producer starts
	ends  chan producerEnd            // each producer's end
}

func serveFeed(t *testing.T) *feedServer {
	t.Helper()
	f := &feedServer{sinks: make(chan *wsrpc.Sink[feedValue], 1), ends: make(chan producerEnd, 1)}
	methods := wsrpc.NewMethods()
	goFeed.Register(methods, func(ctx context.Context, p feedParams, sink *wsrpc.Sink[feedValue]) error {
		f.sinks <- sink
		text := textOf(p.Size)
		end := producerEnd{}
		for i := range p.Count {
			if end.err = sink.Send(ctx, feedValue{N: i, Text: text}); end.err != nil {
				break
			}
			end.sent++
		}
		f.ends <- end
		switch {
		case end.err != nil:
			return end.err
		case p.Fail:
			return feedFailure
		}
		return nil
	})
	wsrpc.Register(methods, "ping", func(context.Context, json.RawMessage) (string, error) {
		return "pong", nil
	})
	f.url = serveGo(t, wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Logger: testLogger(t, "wsrpc server")}))
	return f
}

// subscriberConfig is the config of `streams.mjs subscribe`.
type subscriberConfig struct {
	Method      string     `json:"method"`
	Params      feedParams `json:"params"`
	Credit      string     `json:"credit"` // "block" or "unlimited"
	Window      int        `json:"window,omitempty"`
	WindowBytes int        `json:"windowBytes,omitempty"`
	CancelAfter *int       `json:"cancelAfter,omitempty"`
	After       *afterCall `json:"after,omitempty"`
}

type afterCall struct {
	Method string `json:"method"`
}

// subscriberReport is what `streams.mjs subscribe` prints.
type subscriberReport struct {
	ID               string          `json:"id"`
	Values           int             `json:"values"`
	OrderOK          bool            `json:"orderOk"`
	TextOK           bool            `json:"textOk"`
	Ended            bool            `json:"ended"`
	EndError         *wsrpc.Error    `json:"endError"`
	MaxHeld          int             `json:"maxHeld"`
	MaxHeldBytes     int             `json:"maxHeldBytes"`
	Exceeded         bool            `json:"exceeded"`
	NextBeforeAnswer bool            `json:"nextBeforeAnswer"`
	Late             int             `json:"late"`
	Credits          int             `json:"credits"`
	GrantedN         int             `json:"grantedN"`
	SubscribeError   any             `json:"subscribeError"`
	After            json.RawMessage `json:"after"`
	AfterError       *wsrpc.Error    `json:"afterError"`
}

// runSubscriber runs `streams.mjs subscribe url cfg` to its end and returns
// its report.
func runSubscriber(t *testing.T, node, url string, cfg subscriberConfig) subscriberReport {
	t.Helper()
	arg, err := json.Marshal(cfg)
	require.NoError(t, err)
	out := strings.TrimSpace(runNodeScript(t, node, "streams.mjs", "subscribe", url, string(arg)))
	t.Logf("node report: %s", out)
	var rep subscriberReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "report line")
	require.Nil(t, rep.SubscribeError, "subscribe call failed")
	require.NotEmpty(t, rep.ID, "subscription id")
	require.False(t, rep.NextBeforeAnswer, "a value came before the answer to the subscribe call")
	return rep
}

var ping = &afterCall{Method: "ping"}

// requirePong checks that Node's call after the stream was answered "pong".
func requirePong(t *testing.T, rep subscriberReport) {
	t.Helper()
	require.Nil(t, rep.AfterError, "call after the stream")
	require.JSONEq(t, `"pong"`, string(rep.After), "call after the stream")
}

func TestNodeSubscribesToGoStream(t *testing.T) {
	t.Parallel()
	node := requireNode(t)

	// waitEnd returns the producer's end; ctx is the safety net.
	waitEnd := func(t *testing.T, f *feedServer) producerEnd {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		recv(ctx, t, f.sinks, "the producer's start")
		return recv(ctx, t, f.ends, "the producer's end")
	}

	t.Run("window 8, normal end", func(t *testing.T) {
		t.Parallel()
		f := serveFeed(t)
		rep := runSubscriber(t, node, f.url, subscriberConfig{
			Method: "feed", Params: feedParams{Count: 500, Size: 1024},
			Credit: "block", Window: 8, WindowBytes: 1 << 20, After: ping,
		})
		require.Equal(t, 500, rep.Values)
		require.True(t, rep.OrderOK, "values in order")
		require.True(t, rep.TextOK, "texts of 1024 characters")
		require.True(t, rep.Ended, "end message")
		require.Nil(t, rep.EndError, "a normal end has no error")
		require.False(t, rep.Exceeded, "Go sent a value Node had no credit for")
		// Node takes values only when it holds a full window: Go filled it
		// and never went past it.
		require.Equal(t, 8, rep.MaxHeld, "most values held by Node")
		require.Greater(t, rep.Credits, 500/8, "credit given back in batches")
		requirePong(t, rep)
		end := waitEnd(t, f)
		require.NoError(t, end.err)
		require.Equal(t, 500, end.sent)
		require.LessOrEqual(t, end.sent, rep.GrantedN, "Go sent more than Node granted")
	})

	t.Run("window 8, producer fails", func(t *testing.T) {
		t.Parallel()
		f := serveFeed(t)
		rep := runSubscriber(t, node, f.url, subscriberConfig{
			Method: "feed", Params: feedParams{Count: 500, Size: 1024, Fail: true},
			Credit: "block", Window: 8, WindowBytes: 1 << 20, After: ping,
		})
		require.Equal(t, 500, rep.Values)
		require.True(t, rep.OrderOK, "values in order")
		require.True(t, rep.Ended, "end message")
		require.NotNil(t, rep.EndError, "the end carries the producer's error")
		require.Equal(t, feedFailure.Code, rep.EndError.Code)
		require.Equal(t, feedFailure.Message, rep.EndError.Message)
		require.JSONEq(t, string(feedFailure.Data), string(rep.EndError.Data))
		require.False(t, rep.Exceeded, "Go sent a value Node had no credit for")
		require.Equal(t, 8, rep.MaxHeld, "most values held by Node")
		requirePong(t, rep)
		require.NoError(t, waitEnd(t, f).err)
	})

	t.Run("byte window", func(t *testing.T) {
		t.Parallel()
		f := serveFeed(t)
		const window = 4096
		rep := runSubscriber(t, node, f.url, subscriberConfig{
			Method: "feed", Params: feedParams{Count: 100, Size: 1024},
			Credit: "block", Window: 64, WindowBytes: window,
		})
		require.Equal(t, 100, rep.Values)
		require.True(t, rep.OrderOK, "values in order")
		require.True(t, rep.Ended, "end message")
		require.False(t, rep.Exceeded, "Go sent a value Node had no credit for")
		// A message is 1024 characters of text and under 100 bytes of
		// envelope: Go fills the byte window and overshoots it by less than
		// one message.
		require.Less(t, rep.MaxHeld, 64, "the bytes, not n, bound the window")
		require.GreaterOrEqual(t, rep.MaxHeldBytes, window)
		require.Less(t, rep.MaxHeldBytes, window+1024+100)
		require.NoError(t, waitEnd(t, f).err)
	})

	t.Run("n = -1", func(t *testing.T) {
		t.Parallel()
		f := serveFeed(t)
		rep := runSubscriber(t, node, f.url, subscriberConfig{
			Method: "feed", Params: feedParams{Count: 500, Size: 1024}, Credit: "unlimited",
		})
		require.Equal(t, 500, rep.Values)
		require.True(t, rep.OrderOK, "values in order")
		require.True(t, rep.Ended, "end message")
		require.Nil(t, rep.EndError)
		require.Equal(t, 1, rep.Credits, "one credit lifts the limit")
		end := waitEnd(t, f)
		require.NoError(t, end.err)
		require.Equal(t, 500, end.sent)
	})

	t.Run("unsubscribe after K values", func(t *testing.T) {
		t.Parallel()
		f := serveFeed(t)
		k := 20
		rep := runSubscriber(t, node, f.url, subscriberConfig{
			Method: "feed", Params: feedParams{Count: 1000, Size: 1024},
			Credit: "block", Window: 8, WindowBytes: 1 << 20, CancelAfter: &k, After: ping,
		})
		require.Equal(t, k, rep.Values)
		require.True(t, rep.OrderOK, "values in order")
		require.False(t, rep.Ended, "no end after a cancel")
		require.False(t, rep.Exceeded, "Go sent a value Node had no credit for")
		requirePong(t, rep) // the connection is still up

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sink := recv(ctx, t, f.sinks, "the producer's start")
		recv(ctx, t, sink.Done(), "the sink's end")
		require.ErrorIs(t, sink.Err(), wsrpc.ErrUnsubscribed)
		end := recv(ctx, t, f.ends, "the producer's end")
		require.ErrorIs(t, end.err, wsrpc.ErrStreamClosed)
		require.ErrorIs(t, end.err, wsrpc.ErrUnsubscribed)
		require.GreaterOrEqual(t, end.sent, k)
		require.LessOrEqual(t, end.sent, rep.GrantedN, "Go sent more than Node granted")
	})
}

// nodeFeedParams subscribes to streams.mjs's feed: count values of size
// characters, then the end, with error if given.
type nodeFeedParams struct {
	Count int          `json:"count"`
	Size  int          `json:"size"`
	Error *wsrpc.Error `json:"error,omitempty"`
}

var nodeFeed = wsrpc.NewStream[nodeFeedParams, feedValue]("feed")

// nodeStats is streams.mjs's record of one stream it served.
type nodeStats struct {
	Sent             int  `json:"sent"`
	EndSent          bool `json:"endSent"`
	Cancelled        bool `json:"cancelled"`
	HeldBack         int  `json:"heldBack"`         // times it had something to send before the first credit
	SentBeforeCredit bool `json:"sentBeforeCredit"` // a value went out before the first credit
	Exceeded         bool `json:"exceeded"`         // a value went out with no credit left
	Unlimited        bool `json:"unlimited"`
	GrantedN         int  `json:"grantedN"`
	Credits          int  `json:"credits"`
	MaxUnacked       int  `json:"maxUnacked"` // most values sent and not yet given credit back for
}

func TestGoSubscribesToNodeStream(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	ns := startNodeServer(t, node, "streams.mjs", "serve")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	peer, err := wsrpc.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", ns.port), &wsrpc.DialOptions{Logger: testLogger(t, "wsrpc peer")})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = peer.Close()
		}
	})

	// stats asks Node for its record of stream id, which it gives once the
	// stream has ended or been cancelled. Node reads in order, so the answer
	// also comes after everything it sent for the stream.
	stats := func(t *testing.T, id string) nodeStats {
		t.Helper()
		var s nodeStats
		require.NoError(t, peer.Call(ctx, "stats", map[string]string{"id": id}, &s))
		t.Logf("node stats of %s: %+v", id, s)
		require.Positive(t, s.HeldBack, "Node had the stream to send before the first credit")
		require.False(t, s.SentBeforeCredit, "Node sent before the first credit")
		require.False(t, s.Exceeded, "Node went past its credit")
		return s
	}

	// takeAll takes values until Next fails, checking their order, and
	// returns how many and the error.
	takeAll := func(t *testing.T, sub *wsrpc.Subscription[feedValue], size int) (int, error) {
		t.Helper()
		text := textOf(size)
		for i := 0; ; i++ {
			v, err := sub.Next(ctx)
			if err != nil {
				return i, err
			}
			require.Equal(t, feedValue{N: i, Text: text}, v, "value %d", i)
		}
	}

	block := &wsrpc.SubscribeOptions{Buffer: 4, Overflow: wsrpc.OverflowBlock}

	t.Run("block, normal end", func(t *testing.T) {
		sub, err := nodeFeed.Subscribe(ctx, peer, nodeFeedParams{Count: 200, Size: 64}, block)
		require.NoError(t, err)
		defer sub.Close()
		n, err := takeAll(t, sub, 64)
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, 200, n)
		s := stats(t, sub.ID())
		require.Equal(t, 200, s.Sent)
		require.True(t, s.EndSent)
		require.False(t, s.Unlimited)
		require.Equal(t, 4, s.MaxUnacked, "Node filled the buffer's credit and no more")
	})

	t.Run("block, end with error", func(t *testing.T) {
		want := &wsrpc.Error{Code: -32051, Message: "node feed failed", Data: json.RawMessage(`{"why":"told to","n":[3]}`)}
		sub, err := nodeFeed.Subscribe(ctx, peer, nodeFeedParams{Count: 10, Size: 8, Error: want}, block)
		require.NoError(t, err)
		defer sub.Close()
		n, err := takeAll(t, sub, 8)
		require.Equal(t, 10, n)
		var e *wsrpc.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, want.Code, e.Code)
		require.Equal(t, want.Message, e.Message)
		require.JSONEq(t, string(want.Data), string(e.Data))
		s := stats(t, sub.ID())
		require.Equal(t, 10, s.Sent)
		require.True(t, s.EndSent)
		require.LessOrEqual(t, s.MaxUnacked, 4)
	})

	t.Run("block, unsubscribe", func(t *testing.T) {
		sub, err := nodeFeed.Subscribe(ctx, peer, nodeFeedParams{Count: 1000, Size: 8}, block)
		require.NoError(t, err)
		for i := range 2 {
			v, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, i, v.N)
		}
		require.NoError(t, sub.Close())
		s := stats(t, sub.ID())
		require.True(t, s.Cancelled, "Node saw the cancel")
		require.False(t, s.EndSent)
		require.Less(t, s.Sent, 1000, "Node stopped")
		require.LessOrEqual(t, s.Sent, s.GrantedN)
		require.LessOrEqual(t, s.MaxUnacked, 4)
	})

	t.Run("drop oldest", func(t *testing.T) {
		const m, buffer = 50, 4
		sub, err := nodeFeed.Subscribe(ctx, peer, nodeFeedParams{Count: m, Size: 8},
			&wsrpc.SubscribeOptions{Buffer: buffer, Overflow: wsrpc.OverflowDropOldest})
		require.NoError(t, err)
		defer sub.Close()
		// Node answers stats after it has sent every value and the end, and
		// the Go reader acts on stream messages as it reads them: once the
		// answer is here, so are they.
		s := stats(t, sub.ID())
		require.True(t, s.Unlimited, "OverflowDropOldest grants n = -1")
		require.Equal(t, m, s.Sent)
		require.True(t, s.EndSent)
		require.EqualValues(t, m-buffer, sub.Dropped())
		text := textOf(8)
		for i := m - buffer; i < m; i++ {
			v, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, feedValue{N: i, Text: text}, v, "the last values are kept")
		}
		_, err = sub.Next(ctx)
		require.ErrorIs(t, err, io.EOF)
		require.EqualValues(t, m-buffer, sub.Dropped())
	})

	closed = true
	require.NoError(t, peer.Close())
	require.True(t, ns.stopAndWait(10*time.Second), "node streams.mjs did not exit after its stdin was closed")
	require.NoError(t, ns.waitErr, "node streams.mjs exit status; stderr:\n%s", ns.stderr.String())
}
