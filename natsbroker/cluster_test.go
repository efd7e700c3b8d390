package natsbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/natsbroker"
)

// TestBroadcastAcrossInstances: 1 000 clients spread over three instances,
// all in the topic "room"; six publishers, one per instance for the topic
// "" (every peer) and one per instance for "room", each publishing a
// numbered sequence. Every client gets every message exactly once, and
// each publisher's messages in the order published. Not parallel: its
// 2 000 connections (both ends in this process) load both cores.
func TestBroadcastAcrossInstances(t *testing.T) {
	const (
		clients    = 1000
		perPub     = 10
		publishers = 6
	)
	_, ins := startCluster(t, 3)

	var all sync.WaitGroup
	all.Add(clients)
	var bad atomic.Value // the first misdelivery
	var mu sync.Mutex
	progress := make([][]int, clients)
	g := new(errgroup.Group)
	g.SetLimit(32)
	for c := range clients {
		next := make([]int, publishers) // the sequence expected of each publisher
		got := 0
		onNews := func(n news) { // one at a time: notifications are in order
			if n.P < 0 || n.P >= publishers || n.S != next[n.P] {
				bad.CompareAndSwap(nil, fmt.Sprintf("client %d: got %+v, want seq %d", c, n, next[min(max(n.P, 0), publishers-1)]))
				return
			}
			next[n.P]++
			mu.Lock()
			progress[c] = slices.Clone(next)
			mu.Unlock()
			if got++; got == publishers*perPub {
				all.Done()
			}
		}
		g.Go(func() error {
			p := dialClient(t, ins[c%3].ws, clientMethods(fmt.Sprint(c), onNews, nil, nil))
			return p.Call(context.Background(), "join", []string{"room"}, nil)
		})
	}
	require.NoError(t, g.Wait())

	for pub := range publishers {
		in, topic := ins[pub%3], []string{"", "room"}[pub/3]
		g.Go(func() error {
			for s := range perPub {
				res, err := in.Publish(context.Background(), topic, "news", news{P: pub, S: s})
				if err != nil {
					return err
				}
				if res.Sent != clients/3 && res.Sent != clients/3+1 {
					return fmt.Errorf("publisher %d: sent to %d local peers", pub, res.Sent)
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	done := make(chan struct{})
	go func() { all.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		mu.Lock()
		hist := map[string]int{}
		for c, p := range progress {
			hist[fmt.Sprint(c%3, p)]++
		}
		mu.Unlock()
		t.Fatalf("incomplete delivery; first misdelivery: %v; %v; warnings %d %d %d", bad.Load(), hist, ins[0].warnings.Load(), ins[1].warnings.Load(), ins[2].warnings.Load())
	}
	require.Nil(t, bad.Load())
}

// TestNamedCallsAcrossInstances: a call from one instance to a peer named
// on another and back (its result, and its *wsrpc.Error as is), a
// notification, CallPeers over names on all three instances, and a
// missing name failing at once with ErrPeerNotFound.
func TestNamedCallsAcrossInstances(t *testing.T) {
	t.Parallel()
	_, ins := startCluster(t, 3)
	ctx := context.Background()
	got := make(chan news, 10)
	var names []string
	for i, in := range ins {
		for j := range 2 {
			name := fmt.Sprintf("c%d%d", i, j)
			p := dialClient(t, in.ws, clientMethods(name, func(n news) { got <- n }, nil, nil))
			login(t, p, name, "")
			names = append(names, name)
		}
	}

	var who string
	require.NoError(t, ins[0].CallPeer(ctx, "c21", "whoami", nil, &who))
	require.Equal(t, "c21", who)
	err := ins[0].CallPeer(ctx, "c20", "fail", nil, nil)
	require.Equal(t, &wsrpc.Error{Code: 7, Message: "no c20"}, err, "the peer's error, as if it were local")

	require.NoError(t, ins[2].NotifyPeer(ctx, "c01", "news", news{P: 1, S: 2}))
	require.Equal(t, news{P: 1, S: 2}, recv(t, got, "a notification by name"))

	answers := map[string]string{}
	for r := range ins[1].CallPeers(ctx, append(names, "gone"), "whoami", nil) {
		if r.Err != nil {
			require.ErrorIs(t, r.Err, wsrpc.ErrPeerNotFound)
			answers[r.Name] = "not found"
			continue
		}
		var s string
		require.NoError(t, json.Unmarshal(r.Result, &s))
		answers[r.Name] = s
	}
	want := map[string]string{"gone": "not found"}
	for _, n := range names {
		want[n] = n
	}
	require.Equal(t, want, answers)

	// No deadline on ctx: only NATS's "no responders" can end this call.
	err = ins[0].CallPeer(ctx, "nobody", "whoami", nil, nil)
	require.ErrorIs(t, err, wsrpc.ErrPeerNotFound)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.NotErrorIs(t, err, wsrpc.ErrBrokerUnavailable)
	require.ErrorIs(t, ins[0].NotifyPeer(ctx, "nobody", "news", news{}), wsrpc.ErrPeerNotFound)
}

// TestTopicsAndNamesAreOneToken: topics and names with dots, spaces,
// wildcards and non-ASCII are each one subject token, so they neither
// overlap nor act as wildcards; an outside NATS client reaches them by
// the subjects Topic and Name print.
func TestTopicsAndNamesAreOneToken(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":            "%",
		"*":           "%2A",
		"t.room":      "t%2Eroom",
		"a b>":        "a%20b%3E",
		"ü":           "%C3%BC",
		"%2A":         "%252A",
		"plain_Name-": "plain_Name-",
	} {
		require.Equal(t, want, natsbroker.Token(in), "Token(%q)", in)
	}

	ns, ins := startCluster(t, 2)
	ctx := context.Background()
	got := make(chan string, 10)
	topics := []string{"a.b", "a", "a.*", "a.>", "a b", "ü"}
	for i, topic := range topics {
		label := fmt.Sprint(i)
		p := dialClient(t, ins[1].ws, clientMethods(label, func(news) { got <- label }, nil, nil))
		login(t, p, "user."+topic, topic)
	}
	for i, topic := range topics {
		_, err := ins[0].Publish(ctx, topic, "news", news{})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), recv(t, got, "the message of "+topic), "only the member of %q", topic)
		var who string
		require.NoError(t, ins[0].CallPeer(ctx, "user."+topic, "whoami", nil, &who))
		require.Equal(t, fmt.Sprint(i), who)
	}
	require.Empty(t, got)

	// From outside wsrpc, by the documented subjects.
	nc, _ := connect(t, ns.ClientURL())
	b := natsbroker.New(nc, nil)
	require.Equal(t, "wsrpc.topic.t%2Ea%2Eb", b.Topic("t.a.b"))
	require.Equal(t, "wsrpc.peer.user%2Ea%20b", b.Name("user.a b"))
	seen := make(chan []byte, 1)
	sub, err := nc.Subscribe(b.Topic("t.a b"), func(m *nats.Msg) { seen <- m.Data })
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())
	_, err = ins[1].Publish(ctx, "a b", "news", news{P: 3})
	require.NoError(t, err)
	require.Contains(t, string(recv(t, seen, "the message on NATS")), `"method":"news"`)
	require.Equal(t, "4", recv(t, got, "the local member"))
	reply, err := nc.Request(b.Name("user.a b"), []byte(`{"method":"whoami"}`), bound)
	require.NoError(t, err)
	require.JSONEq(t, `{"result":"4"}`, string(reply.Data))
}

// TestInstanceStopped: clients connected through Redialers keep calling
// while the instance they are on is stopped. Each client's Redialer has
// its own instance first, then the others (RedialOptions.URLs); those of
// the stopped instance reconnect to another one,
// log in again in OnConnect, and are reachable by name from every
// instance; no call of any client fails.
func TestInstanceStopped(t *testing.T) {
	t.Parallel()
	_, ins := startCluster(t, 3)
	var loops sync.WaitGroup
	defer loops.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before loops.Wait

	type client struct {
		name      string
		home      int
		r         *wsrpc.Redialer
		connected chan struct{}
		calls     atomic.Int64
		progress  chan struct{}
		on        atomic.Value // label of the instance the last ping answered
	}
	var clients []*client
	for i := range 12 {
		c := &client{name: fmt.Sprintf("u%02d", i), home: i % 3, connected: make(chan struct{}, 16), progress: make(chan struct{}, 1)}
		var others []string
		for k := 1; k < len(ins); k++ {
			others = append(others, ins[(c.home+k)%3].ws)
		}
		c.r = wsrpc.Redial(ctx, ins[c.home].ws, &wsrpc.RedialOptions{
			Dial:     wsrpc.DialOptions{Methods: clientMethods(c.name, nil, nil, nil)},
			URLs:     others,
			MinDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
			OnConnect: func(ctx context.Context, p *wsrpc.Peer) error {
				return p.Call(ctx, "login", []string{c.name}, nil)
			},
			OnState: func(s wsrpc.ConnState, _ error) {
				if s == wsrpc.Connected {
					c.connected <- struct{}{}
				}
			},
			Repeatable: func(method string) bool { return method == "ping" },
		})
		t.Cleanup(func() { c.r.Close() })
		clients = append(clients, c)
	}
	for _, c := range clients {
		recv(t, c.connected, "a first connection")
	}
	errs := make(chan error, len(clients))
	for _, c := range clients {
		loops.Go(func() {
			for ctx.Err() == nil {
				var on string
				if err := c.r.Call(ctx, "ping", nil, &on); err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("%s: %w", c.name, err)
					}
					return
				}
				c.on.Store(on)
				c.calls.Add(1)
				select {
				case c.progress <- struct{}{}:
				default:
				}
			}
		})
	}
	waitCalls := func(c *client, n int64) {
		for c.calls.Load() < n {
			select {
			case <-c.progress:
			case err := <-errs:
				t.Fatal(err)
			}
		}
	}
	for _, c := range clients {
		waitCalls(c, 5)
	}

	ins[1].stop(t)
	for _, c := range clients {
		if c.home == 1 {
			recv(t, c.connected, "a reconnection of "+c.name)
		}
	}
	for _, c := range clients {
		waitCalls(c, c.calls.Load()+5)
		if c.home == 1 {
			require.Contains(t, []string{"i0", "i2"}, c.on.Load(), "%s moved", c.name)
		} else {
			require.Equal(t, ins[c.home].label, c.on.Load(), "%s stayed", c.name)
		}
		for _, from := range []int{0, 2} {
			var who string
			require.NoError(t, ins[from].CallPeer(ctx, c.name, "whoami", nil, &who), "%s from %s", c.name, ins[from].label)
			require.Equal(t, c.name, who)
		}
	}
	// A client calls another through its instance and the cluster.
	var who string
	require.NoError(t, clients[1].r.Call(ctx, "relay", []string{clients[3].name}, &who))
	require.Equal(t, clients[3].name, who)
	cancel()
	loops.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestNATSRestarted: the NATS server goes away mid-run and a new one
// starts on the same port. Meanwhile what crosses instances fails at once
// with ErrBrokerUnavailable (a call in flight included), local calls and
// local delivery work, and a name given during the outage is registered
// when NATS is back; after, publishes and named calls work again.
func TestNATSRestarted(t *testing.T) {
	t.Parallel()
	ns, ins := startCluster(t, 3)
	port := ns.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	got := make(chan string, 20)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	for i, in := range ins {
		for j := range 2 {
			name := fmt.Sprintf("c%d%d", i, j)
			p := dialClient(t, in.ws, clientMethods(name, func(news) { got <- name }, entered, release))
			login(t, p, name, map[int]string{0: "room"}[j])
		}
	}
	var who string
	require.NoError(t, ins[0].CallPeer(ctx, "c20", "whoami", nil, &who))

	// A call in flight to another instance when NATS goes.
	inflight := make(chan error, 1)
	go func() { inflight <- ins[0].CallPeer(ctx, "c21", "block", nil, nil) }()
	recv(t, entered, "the blocking call")

	ns.Shutdown()
	ns.WaitForShutdown()
	for _, in := range ins {
		recv(t, in.ev.lost, "the loss of NATS")
	}
	err := recv(t, inflight, "the call in flight to fail")
	require.ErrorIs(t, err, wsrpc.ErrBrokerUnavailable)
	require.ErrorIs(t, err, nats.ErrDisconnected)
	close(release)

	res, err := ins[0].Publish(ctx, "room", "news", news{})
	require.ErrorIs(t, err, wsrpc.ErrBrokerUnavailable)
	require.Equal(t, 1, res.Sent, "the local member got it")
	require.Equal(t, "c00", recv(t, got, "the local delivery"))
	require.ErrorIs(t, ins[0].CallPeer(ctx, "c20", "whoami", nil, nil), wsrpc.ErrBrokerUnavailable)
	require.ErrorIs(t, ins[0].NotifyPeer(ctx, "c10", "news", news{}), wsrpc.ErrBrokerUnavailable)
	require.NoError(t, ins[0].CallPeer(ctx, "c01", "whoami", nil, &who), "a local call")
	require.Equal(t, "c01", who)
	late := dialClient(t, ins[2].ws, clientMethods("late", func(news) { got <- "late" }, nil, nil))
	login(t, late, "late", "room") // registered on the connection, sent when it is back

	startNATS(t, port)
	for _, in := range ins {
		recv(t, in.ev.back, "the reconnection to NATS")
		require.NoError(t, in.nc.Flush()) // the server has every subscription
	}
	_, err = ins[1].Publish(ctx, "room", "news", news{})
	require.NoError(t, err)
	var members []string
	for range 4 {
		members = append(members, recv(t, got, "a member's message"))
	}
	require.ElementsMatch(t, []string{"c00", "c10", "c20", "late"}, members)
	for _, name := range []string{"c20", "late", "c11"} {
		require.NoError(t, ins[0].CallPeer(ctx, name, "whoami", nil, &who))
		require.Equal(t, name, who)
	}
	require.ErrorIs(t, ins[0].CallPeer(ctx, "nobody", "whoami", nil, nil), wsrpc.ErrPeerNotFound)
	require.Empty(t, got)
}
