package wsrpc

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recorder is an Observer that keeps a copy of every Event it is told
// the end of, and marks the contexts it returns.
type recorder struct {
	mu     sync.Mutex
	events []Event
	starts int
}

type observedKey struct{}

func (r *recorder) Start(ctx context.Context, e *Event) context.Context {
	r.mu.Lock()
	r.starts++
	r.mu.Unlock()
	return context.WithValue(ctx, observedKey{}, e.Method)
}

func (r *recorder) End(ctx context.Context, e *Event) {
	if ctx.Value(observedKey{}) != e.Method {
		panic("End is not given Start's context")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *e
	c.ID = slices.Clone(e.ID) // valid until End returns
	r.events = append(r.events, c)
}

// take returns the events recorded so far, forgetting them, with their
// times cleared for comparison.
func (r *recorder) take(t *testing.T) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	for i := range ev {
		require.False(t, ev[i].Start.IsZero())
		ev[i].Start, ev[i].Duration = time.Time{}, 0
	}
	return ev
}

func observedMethods(seen chan<- any) *Methods {
	m := arith()
	m.HandleRaw("note", func(ctx context.Context, _ json.RawMessage) (any, error) {
		seen <- ctx.Value(observedKey{})
		return nil, nil
	})
	return m
}

func TestObserverSeesBothDirections(t *testing.T) {
	t.Parallel()
	cr, sr := &recorder{}, &recorder{}
	seen := make(chan any, 1)
	client, server := pipePair(t, &options{Observer: cr}, &options{Observer: sr, Methods: observedMethods(seen)})
	ctx := context.Background()

	var sum int
	require.NoError(t, client.Call(ctx, "math.sum", []int{1, 2}, &sum))
	require.ErrorIs(t, client.Call(ctx, "nope", nil, nil), ErrMethodNotFound)
	require.NoError(t, client.Notify(ctx, "note", nil))
	require.Equal(t, "note", <-seen, "the handler runs with the context Start returned")
	require.NoError(t, client.Batch(ctx, func(b *Batch) {
		b.Call("math.sum", []int{3}, nil)
		b.Notify("note", nil)
	}))
	<-seen

	out := cr.take(t)
	require.Len(t, out, 5)
	want := []Event{
		{Method: "math.sum", Outgoing: true, Peer: client, RequestBytes: len(`{"jsonrpc":"2.0","id":1,"method":"math.sum","params":[1,2]}`), ResponseBytes: 1},
		{Method: "nope", Outgoing: true, Peer: client, Code: CodeMethodNotFound, RequestBytes: len(`{"jsonrpc":"2.0","id":2,"method":"nope"}`)},
		{Method: "note", Outgoing: true, Notification: true, Peer: client, RequestBytes: len(`{"jsonrpc":"2.0","method":"note"}`)},
		{Method: "math.sum", Outgoing: true, Batch: true, Peer: client},
		{Method: "note", Outgoing: true, Notification: true, Batch: true, Peer: client},
	}
	for i := range want {
		got := out[i]
		got.Start, got.Err, got.ID = want[i].Start, nil, nil
		require.Equal(t, want[i], got, "outgoing event %d", i)
	}
	require.ErrorIs(t, out[1].Err, ErrMethodNotFound)
	require.Equal(t, "1", string(out[0].ID))
	require.Nil(t, out[2].ID, "a notification has none")

	// The server's events, in whatever order its handlers ended.
	in := sr.take(t)
	require.Len(t, in, 5)
	find := func(method string, requestBytes int) Event {
		for _, e := range in {
			if e.Method == method && e.RequestBytes == requestBytes {
				return e
			}
		}
		t.Fatalf("no incoming %s with %d bytes of params in %+v", method, requestBytes, in)
		return Event{}
	}
	for _, e := range in {
		require.False(t, e.Outgoing)
		require.Same(t, server, e.Peer)
	}
	sum1 := find("math.sum", len(`[1,2]`))
	require.Equal(t, "1", string(sum1.ID))
	require.Equal(t, len(`{"jsonrpc":"2.0","id":1,"result":3}`), sum1.ResponseBytes)
	require.Zero(t, sum1.Code)
	require.False(t, sum1.Unregistered)
	nope := find("nope", 0)
	require.True(t, nope.Unregistered, "an unknown name is marked")
	require.Equal(t, int64(CodeMethodNotFound), nope.Code)
	require.Positive(t, nope.ResponseBytes)
	require.Equal(t, len(`{"jsonrpc":"2.0","id":4,"result":3}`), find("math.sum", len(`[3]`)).ResponseBytes, "a batch item's own answer")
	notes := 0
	for _, e := range in {
		if e.Method == "note" {
			notes++
			require.True(t, e.Notification)
			require.Zero(t, e.ResponseBytes)
		}
	}
	require.Equal(t, 2, notes)
}

func TestObserverOverHTTP(t *testing.T) {
	t.Parallel()
	cr, sr := &recorder{}, &recorder{}
	srv := appServe(t, &options{Observer: sr, Methods: arith()})
	c := newHTTPClient(srv.url, &options{Observer: cr})
	var sum int
	require.NoError(t, c.Call(context.Background(), "math.sum", []int{4, 5}, &sum))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Call(ctx, "math.sum", []int{1}, nil), context.Canceled)

	out := cr.take(t)
	require.Len(t, out, 2)
	require.True(t, out[0].Outgoing)
	require.Nil(t, out[0].Peer)
	require.NoError(t, out[0].Err)
	require.ErrorIs(t, out[1].Err, context.Canceled)
	require.Zero(t, out[1].Code, "not a JSON-RPC error")

	in := sr.take(t)
	require.Len(t, in, 1)
	require.Equal(t, "math.sum", in[0].Method)
	require.Nil(t, in[0].Peer)
	require.Equal(t, len(`{"jsonrpc":"2.0","id":1,"result":9}`), in[0].ResponseBytes)
}

func TestObservers(t *testing.T) {
	t.Parallel()
	a, b := &recorder{}, &recorder{}
	client, _ := pipePair(t, &options{Observer: Observers(a, nil, b)}, &options{Methods: arith()})
	require.NoError(t, client.Call(context.Background(), "math.sum", []int{1}, nil))
	require.Len(t, a.take(t), 1)
	require.Len(t, b.take(t), 1)
}
