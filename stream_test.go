package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

type feedArgs struct {
	Count int  `json:"count"`
	Size  int  `json:"size,omitempty"` // bytes of each value's text
	Fail  bool `json:"fail,omitempty"`
}

type feedItem struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

var feed = NewStream[feedArgs, feedItem]("feed").Doc("count up")

// feedMethods serves feed as a producer: Count items, then the end (with an
// *Error if Fail).
func feedMethods() *Methods {
	m := NewMethods()
	feed.Register(m, func(ctx context.Context, a feedArgs, sink *Sink[feedItem]) error {
		if a.Count < 0 {
			return &Error{Code: 7, Message: "negative"}
		}
		for i := range a.Count {
			if err := sink.Send(ctx, feedItem{N: i, Text: strings.Repeat("x", a.Size)}); err != nil {
				return err
			}
		}
		if a.Fail {
			return &Error{Code: 42, Message: "feed failed", Data: []byte(`{"at":"end"}`)}
		}
		return nil
	})
	return m
}

// collect ranges over sub and returns the values and the error it ended
// with.
func collect(sub *Subscription[feedItem]) (got []feedItem, last error) {
	for v, err := range sub.All() {
		if err != nil {
			return got, err
		}
		got = append(got, v)
	}
	return got, nil
}

// TestStreamOverWebSocket: a producer's values arrive in order and whole,
// kilobytes to a megabyte each, through a buffer smaller than the stream,
// and the end (normal or with an *Error) reaches the subscriber.
func TestStreamOverWebSocket(t *testing.T) {
	t.Parallel()
	srv := appServe(t, &options{Methods: feedMethods()})
	client := appDial(t, srv.ws, nil)
	ctx := context.Background()

	for _, c := range []struct {
		args feedArgs
		opts *SubscribeOptions
	}{
		{feedArgs{Count: 200}, &SubscribeOptions{Buffer: 3}},
		{feedArgs{Count: 40, Size: 64 << 10}, &SubscribeOptions{Buffer: 2, MaxBytes: 100 << 10}},
		{feedArgs{Count: 4, Size: 1 << 20}, nil},
		{feedArgs{Count: 5, Fail: true}, nil},
		{feedArgs{Count: 0}, nil}, // ends before the subscriber's credit
	} {
		sub, err := feed.Subscribe(ctx, client, c.args, c.opts)
		require.NoError(t, err)
		got, last := collect(sub)
		require.Len(t, got, c.args.Count)
		for i, v := range got {
			require.Equal(t, i, v.N, "in order")
			require.Len(t, v.Text, c.args.Size)
		}
		if c.args.Fail {
			var e *Error
			require.ErrorAs(t, last, &e)
			require.Equal(t, &Error{Code: 42, Message: "feed failed", Data: []byte(`{"at":"end"}`)}, e)
		} else {
			require.NoError(t, last)
		}
		_, err = sub.Next(ctx)
		require.Equal(t, err == io.EOF, !c.args.Fail, "Next after the end repeats it")
	}

	// A producer that fails at once: the subscription is answered, and
	// ends with the error.
	sub, err := feed.Subscribe(ctx, client, feedArgs{Count: -1}, nil)
	require.NoError(t, err)
	_, last := collect(sub)
	require.ErrorIs(t, last, &Error{Code: 7})
}

// streamPair is a pipe pair in a synctest bubble: server serves m.
func streamPair(t *testing.T, m *Methods, lim Limits) (client, server *Peer) {
	lim.PingInterval = -1
	return pipePair(t, &options{Limits: lim}, &options{Methods: m, Limits: lim})
}

// settle lets every goroutine of the bubble run until all are blocked,
// fake time included: a peer's reader stands aside between calls and comes
// back on a timer (see readRole).
func settle() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// TestStreamBackpressure: under OverflowBlock the producer is held to the
// subscriber's credit: Buffer values ahead of what was taken, never more.
func TestStreamBackpressure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var sent atomic.Int32
		m := NewMethods()
		feed.Register(m, func(ctx context.Context, a feedArgs, sink *Sink[feedItem]) error {
			for i := range a.Count {
				if err := sink.Send(ctx, feedItem{N: i}); err != nil {
					return err
				}
				sent.Add(1)
			}
			return nil
		})
		client, _ := streamPair(t, m, Limits{})
		ctx := context.Background()
		sub, err := feed.Subscribe(ctx, client, feedArgs{Count: 20}, &SubscribeOptions{Buffer: 4})
		require.NoError(t, err)
		settle()
		require.Equal(t, int32(4), sent.Load(), "the credit is the buffer")
		for want := range 20 {
			v, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, want, v.N)
			settle()
			// Credit goes back two values at a time (half the buffer).
			require.LessOrEqual(t, sent.Load(), int32(want+1+4))
			require.GreaterOrEqual(t, sent.Load(), min(int32(want+1+4-1), 20))
		}
		_, err = sub.Next(ctx)
		require.Equal(t, io.EOF, err)
	})
}

// TestStreamDropOldest: with the buffer full the oldest values go, and
// are counted.
func TestStreamDropOldest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		client, _ := streamPair(t, feedMethods(), Limits{})
		sub, err := feed.Subscribe(context.Background(), client, feedArgs{Count: 10}, &SubscribeOptions{Buffer: 3, Overflow: OverflowDropOldest})
		require.NoError(t, err)
		settle()
		got, last := collect(sub)
		require.NoError(t, last)
		require.Equal(t, []feedItem{{N: 7}, {N: 8}, {N: 9}}, got)
		require.Equal(t, uint64(7), sub.Dropped())
	})
}

// TestStreamOverflowEnd: under OverflowEnd a full buffer ends the
// subscription with ErrStreamOverflow, and the producer learns it was
// unsubscribed.
func TestStreamOverflowEnd(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan error, 1)
		m := NewMethods()
		feed.Register(m, func(ctx context.Context, a feedArgs, sink *Sink[feedItem]) error {
			for i := 0; ; i++ {
				if err := sink.Send(ctx, feedItem{N: i}); err != nil {
					ended <- sink.Err()
					require.ErrorIs(t, err, ErrStreamClosed)
					require.ErrorIs(t, err, ErrUnsubscribed)
					return err
				}
			}
		})
		client, _ := streamPair(t, m, Limits{})
		sub, err := feed.Subscribe(context.Background(), client, feedArgs{}, &SubscribeOptions{Buffer: 3, Overflow: OverflowEnd})
		require.NoError(t, err)
		require.ErrorIs(t, <-ended, ErrUnsubscribed)
		got, last := collect(sub)
		require.Equal(t, []feedItem{{N: 0}, {N: 1}, {N: 2}}, got)
		require.ErrorIs(t, last, ErrStreamOverflow)
	})
}

// TestStreamPush: a pushed stream holds no goroutine while idle, ends
// when the subscriber unsubscribes (the sink sees it), and its refusals
// and limits answer the subscribe call.
func TestStreamPush(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sinks []*Sink[feedItem]
		m := NewMethods()
		feed.RegisterPush(m, func(_ context.Context, a feedArgs, sink *Sink[feedItem]) error {
			if a.Fail {
				return &Error{Code: 3, Message: "no"}
			}
			mu.Lock()
			sinks = append(sinks, sink)
			mu.Unlock()
			return nil
		})
		client, server := streamPair(t, m, Limits{MaxStreams: 50})
		ctx := context.Background()
		settle()
		_, idle := heldNow(server)

		_, err := feed.Subscribe(ctx, client, feedArgs{Fail: true}, nil)
		require.ErrorIs(t, err, &Error{Code: 3}, "fn's error refuses")
		var subs []*Subscription[feedItem]
		for range 50 {
			sub, err := feed.Subscribe(ctx, client, feedArgs{}, nil)
			require.NoError(t, err)
			subs = append(subs, sub)
		}
		_, err = feed.Subscribe(ctx, client, feedArgs{}, nil)
		require.ErrorIs(t, err, ErrServerBusy, "MaxStreams")
		settle()
		_, g := heldNow(server)
		require.Equal(t, idle, g, "no goroutine per idle stream")
		_, g = heldNow(client)
		require.LessOrEqual(t, g, 1, "none on the subscriber either")

		for i, s := range sinks {
			require.NoError(t, s.Send(ctx, feedItem{N: i}))
		}
		for i, sub := range subs {
			v, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, i, v.N)
		}

		require.NoError(t, subs[0].Close())
		<-sinks[0].Done()
		require.ErrorIs(t, sinks[0].Err(), ErrUnsubscribed)
		require.ErrorIs(t, sinks[0].Send(ctx, feedItem{}), ErrStreamClosed)
		_, err = subs[0].Next(ctx)
		require.Equal(t, io.EOF, err)
		_, err = feed.Subscribe(ctx, client, feedArgs{}, nil)
		require.NoError(t, err, "the unsubscribed stream's place is free")

		sinks[1].Close(nil)
		_, err = subs[1].Next(ctx)
		require.Equal(t, io.EOF, err, "Close ends the stream normally")

		// Both ends close with the peer.
		server.Close()
		_, err = subs[2].Next(ctx)
		require.ErrorIs(t, err, ErrClosed)
		<-sinks[2].Done()
		require.ErrorIs(t, sinks[2].Err(), ErrClosed)
	})
}

// TestStreamWire: the stream protocol as another language speaks it, and
// a serving side that breaks its credit.
func TestStreamWire(t *testing.T) {
	t.Parallel()
	client, raw := rawPeer(t, &options{})
	ctx := context.Background()
	subscribed := make(chan *Subscription[feedItem], 1)
	go func() {
		sub, err := feed.Subscribe(ctx, client, feedArgs{Count: 1}, &SubscribeOptions{Buffer: 2, MaxBytes: 1000})
		if err != nil {
			panic(err)
		}
		subscribed <- sub
	}()
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"method":"feed","params":{"count":1}}`, readRaw(t, raw))
	require.JSONEq(t, `{"jsonrpc":"2.0","method":"$/stream.credit","params":{"id":"x","n":2,"bytes":1000}}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":1,"result":"x"}`))
	sub := <-subscribed
	for _, junk := range []string{
		`{"jsonrpc":"2.0","method":"$/stream.next","params":{"id":"other","value":{"n":9}}}`,
		`{"jsonrpc":"2.0","method":"$/stream.next","params":[1,2]}`,
		`{"jsonrpc":"2.0","method":"$/stream.credit","params":{"id":"x","n":5}}`,
		`{"jsonrpc":"2.0","method":"$/stream.bogus","params":{"id":"x"}}`,
	} {
		require.NoError(t, raw.writeMessage([]byte(junk)))
	}
	for i := range 3 {
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"$/stream.next","params":{"id":"x","value":{"n":`+string(rune('0'+i))+`,"text":""}}}`)))
	}
	require.JSONEq(t, `{"jsonrpc":"2.0","method":"$/stream.cancel","params":{"id":"x"}}`, readRaw(t, raw),
		"a third value beyond a credit of two ends the subscription")
	got, last := collect(sub)
	require.Equal(t, []feedItem{{N: 0}, {N: 1}}, got)
	require.ErrorIs(t, last, ErrStreamOverflow)
	require.NoError(t, client.Err())
	var e *Error
	require.False(t, errors.As(last, &e))
	_ = json.Valid
}

// TestStreamByteCreditKeepsFlowing: the serving side spends, and the
// subscriber gives back, the size of whole $/stream.next messages. When the
// subscriber gave back only the values' bytes the credit drained away and
// a stream of small values stopped for good (after 28 values with MaxBytes
// 2000; found by the Node implementation in test/interop).
func TestStreamByteCreditKeepsFlowing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		client, _ := streamPair(t, feedMethods(), Limits{})
		sub, err := feed.Subscribe(context.Background(), client, feedArgs{Count: 2000}, &SubscribeOptions{Buffer: 8, MaxBytes: 2000})
		require.NoError(t, err)
		got, last := collect(sub)
		require.NoError(t, last)
		require.Len(t, got, 2000)
	})
}

// TestStreamWithoutCredit: a subscriber that never sends its first credit
// (it gave up before the answer came) does not hold the stream, nor its
// producer, beyond MessageTimeout.
func TestStreamWithoutCredit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan error, 1)
		m := NewMethods()
		feed.Register(m, func(ctx context.Context, a feedArgs, sink *Sink[feedItem]) error {
			err := sink.Send(ctx, feedItem{})
			ended <- err
			return err
		})
		_, raw := rawPeer(t, &options{Methods: m, Limits: Limits{PingInterval: -1, MessageTimeout: time.Minute, MaxStreams: 1}})
		require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"result":"s1"}`,
			exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"feed","params":{"count":1}}`))
		require.Contains(t, exchange(t, raw, `{"jsonrpc":"2.0","id":2,"method":"feed","params":{"count":1}}`), "too many streams")
		time.Sleep(time.Minute)
		err := <-ended
		require.ErrorIs(t, err, ErrStreamClosed)
		require.ErrorIs(t, err, ErrUnsubscribed)
		require.JSONEq(t, `{"jsonrpc":"2.0","id":3,"result":"s2"}`,
			exchange(t, raw, `{"jsonrpc":"2.0","id":3,"method":"feed","params":{"count":1}}`), "its place is free")
	})
}
