package wsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// memBroker is a Broker in memory, for several Servers of one process:
// what the natsbroker module does over NATS, without the network.
type memBroker struct {
	mu     sync.Mutex
	down   bool
	subs   map[string]map[*memSub]struct{}
	served map[string][]*memServe
}

type memSub struct{ deliver func([]byte) }

type memServe struct {
	handle func(context.Context, []byte) []byte
}

var errDown = errors.New("memBroker: down")

func (b *memBroker) Publish(ctx context.Context, topic string, msg []byte) error {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return errDown
	}
	var subs []*memSub
	for s := range b.subs[topic] {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(slices.Clone(msg))
	}
	return nil
}

func (b *memBroker) Subscribe(topic string, deliver func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, errDown
	}
	if b.subs == nil {
		b.subs = map[string]map[*memSub]struct{}{}
	}
	if b.subs[topic] == nil {
		b.subs[topic] = map[*memSub]struct{}{}
	}
	s := &memSub{deliver: deliver}
	b.subs[topic][s] = struct{}{}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs[topic], s)
	}, nil
}

func (b *memBroker) Request(ctx context.Context, name string, msg []byte) ([]byte, error) {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return nil, errDown
	}
	var s *memServe
	if l := b.served[name]; len(l) > 0 {
		s = l[len(l)-1]
	}
	b.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("memBroker: no responders for %q: %w", name, ErrPeerNotFound)
	}
	return s.handle(ctx, msg), nil
}

func (b *memBroker) Serve(name string, handle func(context.Context, []byte) []byte) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, errDown
	}
	if b.served == nil {
		b.served = map[string][]*memServe{}
	}
	s := &memServe{handle: handle}
	b.served[name] = append(b.served[name], s)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.served[name] = slices.DeleteFunc(b.served[name], func(x *memServe) bool { return x == s })
		if len(b.served[name]) == 0 {
			delete(b.served, name)
		}
	}, nil
}

func (b *memBroker) setDown(down bool) {
	b.mu.Lock()
	b.down = down
	b.mu.Unlock()
}

// registrations returns how many names are served and topics subscribed.
func (b *memBroker) registrations() (names, topics int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		topics += len(s)
	}
	return len(b.served), topics
}

// clusterMethods lets a client name itself and join topics, and answers
// calls made to it by name.
func clusterMethods(got chan<- string) *Methods {
	m := NewMethods()
	Register(m, "login", func(ctx context.Context, name string) (bool, error) {
		return true, PeerFromContext(ctx).SetName(name)
	})
	Register(m, "join", func(ctx context.Context, topic string) (bool, error) {
		return true, PeerFromContext(ctx).Join(topic)
	})
	Register(m, "leave", func(ctx context.Context, topic string) (bool, error) {
		PeerFromContext(ctx).Leave(topic)
		return true, nil
	})
	return m
}

// clientMethods is a client's table: it answers "whoami" with its own
// label, and reports notifications "news" on got.
func clientMethods(label string, got chan<- string) *Methods {
	m := NewMethods()
	Register(m, "whoami", func(context.Context, any) (string, error) { return label, nil })
	Register(m, "fail", func(context.Context, any) (any, error) { return nil, &Error{Code: 9, Message: "no " + label} })
	Register(m, "news", func(_ context.Context, s []string) (any, error) {
		got <- label + ":" + s[0]
		return nil, nil
	})
	return m
}

// TestClusterPublishAndNamedCalls: three Servers joined by a Broker; a
// message published on one reaches the members of its topic on all, once
// each; a call by name reaches the peer on whichever instance it is.
func TestClusterPublishAndNamedCalls(t *testing.T) {
	t.Parallel()
	b := &memBroker{}
	var srvs []*appSrv
	gone := make(chan *Peer, 10)
	for range 3 {
		srvs = append(srvs, appServe(t, &options{Methods: clusterMethods(nil), Broker: b, OnDisconnect: func(p *Peer) { gone <- p }}))
	}
	ctx := context.Background()
	got := make(chan string, 100)
	type client struct {
		label string
		p     *Peer
	}
	var clients []client
	for i, srv := range srvs {
		for j := range 2 {
			label := fmt.Sprintf("c%d%d", i, j)
			p := appDial(t, srv.ws, &options{Methods: clientMethods(label, got)})
			require.NoError(t, p.Call(ctx, "login", []string{label}, nil))
			if j == 0 {
				require.NoError(t, p.Call(ctx, "join", []string{"room"}, nil))
			}
			clients = append(clients, client{label, p})
		}
	}

	// A topic: the first client of each instance.
	res, err := srvs[1].Publish(ctx, "room", "news", []string{"hello"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Sent, "the result counts this instance's peers")
	var news []string
	for range 3 {
		news = append(news, <-got)
	}
	slices.Sort(news)
	require.Equal(t, []string{"c00:hello", "c10:hello", "c20:hello"}, news)

	// Everyone, through the topic "".
	_, err = srvs[0].Publish(ctx, "", "news", []string{"all"})
	require.NoError(t, err)
	news = news[:0]
	for range 6 {
		news = append(news, <-got)
	}
	slices.Sort(news)
	require.Equal(t, []string{"c00:all", "c01:all", "c10:all", "c11:all", "c20:all", "c21:all"}, news)
	require.Empty(t, got, "each peer once")

	// By name, across instances.
	var who string
	require.NoError(t, srvs[0].CallPeer(ctx, "c21", "whoami", nil, &who))
	require.Equal(t, "c21", who)
	require.NoError(t, srvs[2].CallPeer(ctx, "c21", "whoami", nil, &who), "a local one")
	require.Equal(t, "c21", who)
	err = srvs[0].CallPeer(ctx, "c11", "fail", nil, nil)
	require.Equal(t, &Error{Code: 9, Message: "no c11"}, err, "its error, as if local")
	require.ErrorIs(t, srvs[0].CallPeer(ctx, "nobody", "whoami", nil, nil), ErrPeerNotFound)
	require.NoError(t, srvs[0].NotifyPeer(ctx, "c10", "news", []string{"direct"}))
	require.Equal(t, "c10:direct", <-got)

	// A call to a list of peers, each answer with its own outcome.
	answers := map[string]string{}
	for r := range srvs[1].CallPeers(ctx, []string{"c00", "c11", "c20", "gone"}, "whoami", nil) {
		switch {
		case r.Err != nil:
			answers[r.Name] = "err"
			require.ErrorIs(t, r.Err, ErrPeerNotFound)
		default:
			var s string
			require.NoError(t, json.Unmarshal(r.Result, &s))
			answers[r.Name] = s
		}
	}
	require.Equal(t, map[string]string{"c00": "c00", "c11": "c11", "c20": "c20", "gone": "err"}, answers)

	// A name taken again on the same instance moves to the newer peer.
	other := appDial(t, srvs[2].ws, &options{Methods: clientMethods("c21-new", got)})
	require.NoError(t, other.Call(ctx, "login", []string{"c21"}, nil))
	require.NoError(t, srvs[0].CallPeer(ctx, "c21", "whoami", nil, &who))
	require.Equal(t, "c21-new", who)

	// A peer that leaves: its name goes with it (the older peer does not
	// get it back), and the Broker forgets this instance's registration.
	names, _ := b.registrations()
	require.Equal(t, 6, names)
	require.NoError(t, other.Close())
	<-gone
	require.ErrorIs(t, srvs[0].CallPeer(ctx, "c21", "whoami", nil, nil), ErrPeerNotFound)
	names, _ = b.registrations()
	require.Equal(t, 5, names)

	// The Broker down: local work goes on, what crosses fails clearly,
	// and all is well again when it is back.
	b.setDown(true)
	res, err = srvs[0].Publish(ctx, "room", "news", []string{"local"})
	require.ErrorIs(t, err, ErrBrokerUnavailable)
	require.Equal(t, 1, res.Sent)
	require.Equal(t, "c00:local", <-got)
	require.NoError(t, srvs[0].CallPeer(ctx, "c01", "whoami", nil, &who))
	require.ErrorIs(t, srvs[0].CallPeer(ctx, "c11", "whoami", nil, &who), ErrBrokerUnavailable)
	b.setDown(false)
	require.NoError(t, srvs[0].CallPeer(ctx, "c11", "whoami", nil, &who))
	require.Equal(t, "c11", who)
}

// TestClusterWithoutBroker: names and topics work on one instance alone.
func TestClusterWithoutBroker(t *testing.T) {
	t.Parallel()
	srv := appServe(t, &options{Methods: clusterMethods(nil)})
	ctx := context.Background()
	got := make(chan string, 10)
	a := appDial(t, srv.ws, &options{Methods: clientMethods("a", got)})
	appDial(t, srv.ws, &options{Methods: clientMethods("b", got)})
	require.NoError(t, a.Call(ctx, "login", []string{"ann"}, nil))
	require.NoError(t, a.Call(ctx, "join", []string{"t"}, nil))
	res, err := srv.Publish(ctx, "t", "news", []string{"x"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Sent)
	require.Equal(t, "a:x", <-got)
	var who string
	require.NoError(t, srv.CallPeer(ctx, "ann", "whoami", nil, &who))
	require.Equal(t, "a", who)
	require.ErrorIs(t, srv.CallPeer(ctx, "bob", "whoami", nil, nil), ErrPeerNotFound)
	require.NoError(t, a.Call(ctx, "leave", []string{"t"}, nil))
	res, err = srv.Publish(ctx, "t", "news", []string{"y"})
	require.NoError(t, err)
	require.Zero(t, res.Sent)

	client, _ := pipePair(t, nil, nil)
	require.ErrorIs(t, client.SetName("x"), ErrNotServed)
	require.ErrorIs(t, client.Join("x"), ErrNotServed)
}
