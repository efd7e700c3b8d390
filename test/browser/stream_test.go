package browser_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsrpc/wsrpc"
)

// Streams both ways between the page and Go: the page subscribes to feed,
// served by the fixture, and Go subscribes to streams the page serves.

type feedArgs struct {
	Count int    `json:"count"`
	Size  int    `json:"size,omitempty"` // bytes of each value's text
	Fail  bool   `json:"fail,omitempty"` // end with an *Error
	Hold  bool   `json:"hold,omitempty"` // after Count values, wait for the end of the stream
	Tag   string `json:"tag"`            // names the run for feed.sent and feed.done
}

type feedItem struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

var feed = wsrpc.NewStream[feedArgs, feedItem]("feed")

// feedRun is what the test knows of one run of the feed producer.
type feedRun struct {
	sent atomic.Int32  // values sent
	done chan struct{} // closed when the producer returned
	why  error         // sink.Err() then: nil, ErrUnsubscribed, ErrClosed...
}

type feedRuns struct {
	mu   sync.Mutex
	runs map[string]*feedRun
}

func (r *feedRuns) get(tag string) *feedRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]*feedRun{}
	}
	if r.runs[tag] == nil {
		r.runs[tag] = &feedRun{done: make(chan struct{})}
	}
	return r.runs[tag]
}

type tagArgs struct {
	Tag string `json:"tag"`
}

// registerStreams adds to m: the stream feed; feed.sent, how many values
// the run tag has sent; feed.done, which waits for the run tag to end and
// says why ("" for its own end, "unsubscribed", "closed" with its peer);
// peer.hand, which hands the caller's Peer to the test (f.peers); and
// reverse.subscribe, which subscribes to a stream of the page, takes one
// value, and leaves the subscription to end with the connection.
func (f *fixture) registerStreams(m *wsrpc.Methods) {
	// RegisterPush and a producer goroutine of the fixture's (waited for
	// at cleanup), not Register: Register starts its producer with
	// Peer.launch without holding Peer.mu (stream.go), a data race that
	// -race reports here in about one run in five.
	feed.RegisterPush(m, func(_ context.Context, a feedArgs, sink *wsrpc.Sink[feedItem]) error {
		run := f.feeds.get(a.Tag)
		f.producers.Go(func() {
			err := produce(a, sink, run)
			run.why = sink.Err()
			sink.Close(err)
			close(run.done)
		})
		return nil
	})
	wsrpc.Register(m, "feed.sent", func(ctx context.Context, a tagArgs) (int32, error) {
		return f.feeds.get(a.Tag).sent.Load(), nil
	})
	wsrpc.Register(m, "feed.done", func(ctx context.Context, a tagArgs) (string, error) {
		run := f.feeds.get(a.Tag)
		select {
		case <-run.done:
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Second):
			return "", wsrpc.NewError(1, "feed "+a.Tag+" never ended", nil)
		}
		switch {
		case run.why == nil:
			return "", nil
		case errors.Is(run.why, wsrpc.ErrUnsubscribed):
			return "unsubscribed", nil
		case errors.Is(run.why, wsrpc.ErrClosed):
			return "closed", nil
		}
		return run.why.Error(), nil
	})
	wsrpc.Register(m, "peer.hand", func(ctx context.Context, _ any) (any, error) {
		select {
		case f.peers <- wsrpc.PeerFromContext(ctx):
			return nil, nil
		default:
			return nil, wsrpc.NewError(1, "a peer is already waiting", nil)
		}
	})
	wsrpc.Register(m, "reverse.subscribe", func(ctx context.Context, _ any) (pageItem, error) {
		sub, err := pageTicks.Subscribe(ctx, wsrpc.PeerFromContext(ctx), pageArgs{}, &wsrpc.SubscribeOptions{Buffer: 1})
		if err != nil {
			return pageItem{}, err
		}
		return sub.Next(ctx)
	})
}

// produce sends the values of a feed and returns the error to end it with.
func produce(a feedArgs, sink *wsrpc.Sink[feedItem], run *feedRun) error {
	ctx := sink.Context()
	for i := range a.Count {
		if err := sink.Send(ctx, feedItem{N: i, Text: strings.Repeat("x", a.Size)}); err != nil {
			return err
		}
		run.sent.Add(1)
	}
	if a.Hold {
		<-ctx.Done()
		return ctx.Err()
	}
	if a.Fail {
		return wsrpc.NewError(42, "feed failed", map[string]string{"at": "end"})
	}
	return nil
}

type pageArgs struct {
	From  int  `json:"from"`
	Count int  `json:"count"`
	Fail  bool `json:"fail,omitempty"`
}

type pageItem struct {
	N    int    `json:"n"`
	Text string `json:"text,omitempty"`
}

// The streams the page serves.
var (
	pageCount = wsrpc.NewStream[pageArgs, pageItem]("page.count")
	pageTicks = wsrpc.NewStream[pageArgs, pageItem]("page.ticks")
)

// testStreamSubscribe: the page subscribes to feed with a buffer of 4 and
// reads 20 values of 1 KiB in order, the producer never more than 4 ahead,
// then the *Error the stream ends with; a stream that ends normally ends
// the loop; leaving a loop early unsubscribes (the producer sees it); and
// values beyond the credit granted end the subscription, while those for an
// unknown id are ignored.
func testStreamSubscribe(t *testing.T, tab context.Context) {
	var res struct {
		N, Lens, Ahead []int
		End            errInfo
		Small          []int
		First          int
		Why            string
		Injected       []int
		Overflow       errInfo
		HeldWhy        string
	}
	run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  const out = {N: [], Lens: [], Ahead: [], Small: [], Injected: []};
  const sub = await c.subscribe("feed", {count: 20, size: 1024, fail: true, tag: "a"}, {buffer: 4});
  try {
    for await (const v of sub) {
      out.N.push(v.n);
      out.Lens.push(v.text.length);
      if (out.N.length % 3 === 1) out.Ahead.push((await c.call("feed.sent", {tag: "a"})) - out.N.length);
    }
  } catch (e) { out.End = errInfo(e); }

  for await (const v of await c.subscribe("feed", {count: 3, tag: "b"})) out.Small.push(v.n);

  for await (const v of await c.subscribe("feed", {count: 1000, tag: "c"}, {buffer: 2})) { out.First = v.n; break; }
  out.Why = await c.call("feed.done", {tag: "c"});

  // A stream that sends nothing, and values the server's notify slips in:
  // one for an unknown id, then three for a credit of two.
  const held = await c.subscribe("feed", {count: 0, hold: true, tag: "held"}, {buffer: 2});
  for (const [i, id] of ["s999", held.id, held.id, held.id].entries()) {
    await c.call("reverse.notify", {method: "$/stream.next", params: {id, value: {n: 100 + i}}});
  }
  try { for await (const v of held) out.Injected.push(v.n); } catch (e) { out.Overflow = errInfo(e); }
  out.HeldWhy = await c.call("feed.done", {tag: "held"});
  return out;
} finally { c.close(); }`, &res)

	want := make([]int, 20)
	for i := range want {
		want[i] = i
	}
	if !reflect.DeepEqual(res.N, want) {
		t.Errorf("values %v, want 0 to 19 in order", res.N)
	}
	for i, n := range res.Lens {
		if n != 1024 {
			t.Errorf("value %d: %d bytes of text, want 1024", i, n)
		}
	}
	if len(res.Ahead) == 0 {
		t.Error("feed.sent was never asked")
	}
	// (The producer counts a value once Send returns, after the page may
	// have it: so only the upper bound holds.)
	for _, a := range res.Ahead {
		if a > 4 {
			t.Errorf("the producer was %d values ahead of the page (of %v), more than the buffer of 4", a, res.Ahead)
		}
	}
	if !res.End.RPC || res.End.code() != 42 || res.End.Message != "feed failed" || !reflect.DeepEqual(res.End.Data, map[string]any{"at": "end"}) {
		t.Errorf("the end: %+v, want RPCError 42 feed failed", res.End)
	}
	if !reflect.DeepEqual(res.Small, []int{0, 1, 2}) {
		t.Errorf("a normal end: %v, want [0 1 2] and the loop done", res.Small)
	}
	if res.First != 0 || res.Why != "unsubscribed" {
		t.Errorf("break: first %d, producer ended with %q; want 0, unsubscribed", res.First, res.Why)
	}
	if !reflect.DeepEqual(res.Injected, []int{101, 102}) || res.Overflow.Name != "StreamOverflowError" {
		t.Errorf("beyond the credit: %v then %+v; want [101 102] then a StreamOverflowError", res.Injected, res.Overflow)
	}
	if res.HeldWhy != "unsubscribed" {
		t.Errorf("the overflowed subscription's producer ended with %q, want unsubscribed", res.HeldWhy)
	}
}

// testStreamOverflow: under "dropOldest" a page that reads only after the
// producer has sent all 10 values gets the last 3, and 7 counted dropped;
// under "end" it gets the first 3, then a StreamOverflowError.
func testStreamOverflow(t *testing.T, tab context.Context) {
	var res struct {
		Kept    []int
		Dropped int
		DropWhy string
		Got     []int
		Err     errInfo
	}
	run(t, tab, `
const c = wsrpc.connect("/rpc");
try {
  const out = {Kept: [], Got: []};
  const drop = await c.subscribe("feed", {count: 10, tag: "drop"}, {buffer: 3, overflow: "dropOldest"});
  out.DropWhy = await c.call("feed.done", {tag: "drop"}); // answered after the 10 values
  for await (const v of drop) out.Kept.push(v.n);
  out.Dropped = drop.dropped;

  const end = await c.subscribe("feed", {count: 10, tag: "end"}, {buffer: 3, overflow: "end"});
  await c.call("feed.done", {tag: "end"});
  try { for await (const v of end) out.Got.push(v.n); } catch (e) { out.Err = errInfo(e); }
  return out;
} finally { c.close(); }`, &res)
	if !reflect.DeepEqual(res.Kept, []int{7, 8, 9}) || res.Dropped != 7 || res.DropWhy != "" {
		t.Errorf("dropOldest: kept %v, dropped %d, producer %q; want [7 8 9], 7, a normal end", res.Kept, res.Dropped, res.DropWhy)
	}
	if !reflect.DeepEqual(res.Got, []int{0, 1, 2}) || res.Err.Name != "StreamOverflowError" || res.Err.RPC {
		t.Errorf("end: %v then %+v; want [0 1 2] then a StreamOverflowError", res.Got, res.Err)
	}
}

// testStreamServe: Go subscribes to streams the page serves. page.count
// sends 50 values of 200 bytes through a buffer of 3 and 500 bytes, in
// order, then ends with the RPCError its handler throws; page.ticks sends
// forever, held to Go's credit; Go unsubscribes after 5 values, and the
// page's sink.closed resolves "unsubscribed", its pending send rejects and
// its signal aborts.
func testStreamServe(t *testing.T, f *fixture, tab context.Context) {
	var ok bool
	run(t, tab, `
const c = wsrpc.connect("/rpc");
const s = window.served = {c, sent: 0};
c.stream("page.count", async ({from, count, fail}, sink) => {
  for (let i = 0; i < count; i++) await sink.send({n: from + i, text: "é".repeat(100)});
  if (fail) throw new wsrpc.RPCError(4002, "page count failed", {at: count});
});
c.stream("page.ticks", ({from}, sink) => {
  s.closed = sink.closed;
  return s.finished = (async () => {
    try {
      for (let i = from; ; i++) { await sink.send({n: i}); s.sent++; }
    } catch (e) {
      s.sendErr = errInfo(e);
      s.aborted = sink.signal.aborted;
      throw e;
    }
  })();
});
await c.call("peer.hand");
return true;`, &ok)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var peer *wsrpc.Peer
	select {
	case peer = <-f.peers:
	case <-ctx.Done():
		t.Fatal("the page's peer never came")
	}

	sub, err := pageCount.Subscribe(ctx, peer, pageArgs{From: 5, Count: 50, Fail: true}, &wsrpc.SubscribeOptions{Buffer: 3, MaxBytes: 500})
	if err != nil {
		t.Fatalf("subscribing to page.count: %v", err)
	}
	var got []int
	var last error
	for {
		v, err := sub.Next(ctx)
		if err != nil {
			last = err
			break
		}
		if len([]rune(v.Text)) != 100 {
			t.Errorf("value %d: text %q", v.N, v.Text)
		}
		got = append(got, v.N)
	}
	want := make([]int, 50)
	for i := range want {
		want[i] = 5 + i
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("page.count: %v, want 5 to 54 in order", got)
	}
	var e *wsrpc.Error
	if !errors.As(last, &e) || e.Code != 4002 || e.Message != "page count failed" || string(e.Data) != `{"at":50}` {
		t.Errorf("page.count ended with %v, want the page's RPCError 4002", last)
	}

	ticks, err := pageTicks.Subscribe(ctx, peer, pageArgs{From: 10}, &wsrpc.SubscribeOptions{Buffer: 2})
	if err != nil {
		t.Fatalf("subscribing to page.ticks: %v", err)
	}
	got = got[:0]
	for v, err := range ticks.All() {
		if err != nil {
			t.Fatalf("page.ticks: %v", err)
		}
		got = append(got, v.N)
		if len(got) == 5 {
			break
		}
	}
	if err := ticks.Close(); err != nil {
		t.Fatalf("unsubscribing: %v", err)
	}
	if !reflect.DeepEqual(got, []int{10, 11, 12, 13, 14}) {
		t.Errorf("page.ticks: %v, want 10 to 14", got)
	}

	var res struct {
		Reason  string
		SendErr errInfo
		Aborted bool
		Sent    int
	}
	run(t, tab, `
const s = window.served;
try {
  const reason = await s.closed;
  await s.finished.catch(() => {});
  return {Reason: reason, SendErr: s.sendErr, Aborted: s.aborted, Sent: s.sent};
} finally { s.c.close(); }`, &res)
	if res.Reason != "unsubscribed" || res.SendErr.Name != "StreamClosedError" || !res.Aborted {
		t.Errorf("after Go unsubscribed, the page's sink: %+v", res)
	}
	// Go granted 2 values, and one more for each of the 5 it took.
	if res.Sent < 5 || res.Sent > 7 {
		t.Errorf("the page sent %d values, want 5 to 7: held to Go's credit", res.Sent)
	}
}

// testStreamConnectionLost: when the connection drops, a subscription
// throws the ConnectionLostError after its values, a stream the page
// serves ends with sink.closed resolving "lost", the Go producer ends with
// its peer, and the page subscribes again in onopen.
func testStreamConnectionLost(t *testing.T, tab context.Context) {
	var res struct {
		Got       int
		Err       errInfo
		SinkFirst pageItem
		Closed    string
		After     []int
		Why       string
	}
	run(t, tab, `
let opens = 0, reopened;
const again = new Promise((resolve) => { reopened = resolve; });
const c = wsrpc.connect("/rpc", {
  minDelay: 20, maxDelay: 200,
  onopen: async (client) => { if (++opens === 2) reopened(await client.subscribe("feed", {count: 2, tag: "re"})); },
});
let closed;
c.stream("page.ticks", async (_, sink) => {
  closed = sink.closed;
  await sink.send({n: 1});
  return sink.closed; // fed from nowhere else: it lasts until it ends
});
try {
  const out = {Got: 0, After: []};
  const sub = await c.subscribe("feed", {count: 100, hold: true, tag: "lost"}, {buffer: 2});
  out.SinkFirst = await c.call("reverse.subscribe"); // Go holds a subscription to page.ticks
  await c.call("kick").catch(() => {}); // the server closes this connection
  try { for await (const v of sub) out.Got++; } catch (e) { out.Err = errInfo(e); }
  out.Closed = await closed;
  for await (const v of await again) out.After.push(v.n);
  out.Why = await c.call("feed.done", {tag: "lost"});
  return out;
} finally { c.close(); }`, &res)
	if !res.Err.Lost || res.Err.Name != "ConnectionLostError" || res.Err.code() != 1000 {
		t.Errorf("the subscription ended with %+v, want a ConnectionLostError with code 1000", res.Err)
	}
	if res.Got > 2 {
		t.Errorf("%d values before the loss, more than the buffer of 2", res.Got)
	}
	if res.SinkFirst.N != 1 {
		t.Errorf("Go's subscription to page.ticks took %+v", res.SinkFirst)
	}
	if res.Closed != "lost" {
		t.Errorf("the page's sink closed with %q, want lost", res.Closed)
	}
	if !reflect.DeepEqual(res.After, []int{0, 1}) {
		t.Errorf("resubscribed in onopen: %v, want [0 1]", res.After)
	}
	if res.Why != "closed" {
		t.Errorf("the Go producer ended with %q, want closed (its peer)", res.Why)
	}
}
