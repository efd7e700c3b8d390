// Package natsbroker implements wsrpc.Broker on NATS, so that several
// wsrpc Servers (instances of one service, on one machine or many) share
// topics and peer names: a Server.Publish on one instance reaches the
// topic's members on all, and Server.CallPeer reaches a named peer on
// whichever instance it is connected to.
//
//	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
//	...
//	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Broker: natsbroker.New(nc, nil), ...})
//
// # Subjects
//
// With the default prefix "wsrpc":
//
//	wsrpc.topic.<topic>   Publish and Subscribe (core NATS, every instance)
//	wsrpc.peer.<name>     Request and Serve (a queue group: one instance answers)
//
// <topic> and <name> are one subject token each, whatever they contain:
// the bytes A-Z a-z 0-9 _ and - stay as they are, every other byte
// becomes % and two upper-case hex digits, and the empty string is "%".
// So wsrpc's bus topics "*" (every peer) and "t.room" are the subjects
// wsrpc.topic.%2A and wsrpc.topic.t%2Eroom: no dot inside a topic or name
// splits it into tokens, and no topic or name is a wildcard. The mapping
// is one to one, and another client of the same NATS account can publish
// to a topic or call a name by applying it (Topic and Name print the
// subjects).
//
// # Failure
//
// nats.go reconnects on its own when it loses the server (configure it
// with nats.MaxReconnects(-1) to keep trying), and subscriptions, queue
// subscriptions included, come back with the connection. Meanwhile:
//
//   - Publish and Request fail at once with an error wrapping
//     nats.ErrDisconnected (nats.ErrConnectionClosed once the connection is
//     closed for good); wsrpc wraps it in wsrpc.ErrBrokerUnavailable. A
//     Request in flight when the connection drops fails the same way at
//     once instead of waiting for a reply that may never come.
//   - Subscribe and Serve succeed: the subscription is registered with
//     the connection and sent to the server when it is back. Names given
//     and topics joined during the outage work after it.
//   - Messages published elsewhere during the outage are not delivered
//     here: core NATS keeps nothing for a subscriber that is away.
//
// Delivery is at most once, as in core NATS: a subscriber that falls
// behind by more than its pending limits (Options.PendingMsgs and
// PendingBytes) loses messages, reported to the connection's error
// handler (nats.ErrSlowConsumer). A message larger than the server's
// max_payload (1 MiB by default) fails Publish or Request with an error
// wrapping nats.ErrMaxPayload and wsrpc.ErrMessageTooBig.
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wsrpc/wsrpc"
)

// Options configure a Broker. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// Prefix starts every subject the Broker uses: one or more tokens
	// without wildcards. Instances share topics and names only when they
	// have the same Prefix. Default "wsrpc".
	Prefix string
	// Queue is the queue group of Serve's subscriptions. Default: Prefix.
	Queue string
	// MaxHandlers bounds the requests for named peers this Broker answers
	// at once, over every name it serves. Each runs on a goroutine of its
	// own; when MaxHandlers run, the next waits (in NATS's pending buffer
	// for that name) until one returns. Default 256.
	MaxHandlers int
	// PendingMsgs and PendingBytes are the pending limits of every
	// subscription (nats.Subscription.SetPendingLimits): what NATS holds
	// for a subscriber that falls behind before it drops messages for it.
	// Defaults: nats.DefaultSubPendingMsgsLimit and
	// nats.DefaultSubPendingBytesLimit.
	PendingMsgs, PendingBytes int
	// FlushTimeout bounds how long Subscribe and Serve wait for the
	// server to confirm a new subscription (a round trip, so that a
	// message published or a call made elsewhere right after sees it).
	// Default 5s.
	FlushTimeout time.Duration
}

// Default options.
const (
	DefaultPrefix       = "wsrpc"
	DefaultMaxHandlers  = 256
	DefaultFlushTimeout = 5 * time.Second
)

// A Broker is a wsrpc.Broker over one NATS connection. It does not own the
// connection: the caller closes it, after shutting down the Servers that
// use the Broker. A Broker keeps one goroutine, which watches the
// connection's status and ends when the connection is closed.
type Broker struct {
	nc   *nats.Conn
	opts Options
	sem  chan struct{} // a slot per request being answered

	// link is done once the connection is lost, and replaced when it is
	// back: it fails the requests in flight when the connection drops.
	mu   sync.Mutex
	link context.Context
	drop context.CancelFunc
}

var _ wsrpc.Broker = (*Broker)(nil)

// New returns a Broker on nc. See Options for the defaults of a nil opts.
func New(nc *nats.Conn, opts *Options) *Broker {
	b := &Broker{nc: nc}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Prefix == "" {
		b.opts.Prefix = DefaultPrefix
	}
	if b.opts.Queue == "" {
		b.opts.Queue = b.opts.Prefix
	}
	if b.opts.MaxHandlers <= 0 {
		b.opts.MaxHandlers = DefaultMaxHandlers
	}
	if b.opts.PendingMsgs == 0 {
		b.opts.PendingMsgs = nats.DefaultSubPendingMsgsLimit
	}
	if b.opts.PendingBytes == 0 {
		b.opts.PendingBytes = nats.DefaultSubPendingBytesLimit
	}
	if b.opts.FlushTimeout <= 0 {
		b.opts.FlushTimeout = DefaultFlushTimeout
	}
	b.sem = make(chan struct{}, b.opts.MaxHandlers)
	b.link, b.drop = context.WithCancel(context.Background())
	status := nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	if nc.IsClosed() {
		// Closed before the listener was registered: no CLOSED will come.
		nc.RemoveStatusListener(status)
		b.drop()
		return b
	}
	go b.watch(status)
	return b
}

// watch follows the connection's status until it is closed.
func (b *Broker) watch(status chan nats.Status) {
	defer b.nc.RemoveStatusListener(status)
	for s := range status {
		b.mu.Lock()
		switch s {
		case nats.CONNECTED:
			if b.link.Err() != nil {
				b.link, b.drop = context.WithCancel(context.Background())
			}
		default:
			b.drop()
		}
		b.mu.Unlock()
		if s == nats.CLOSED {
			return
		}
	}
}

// Topic returns the subject of a Broker topic (wsrpc's bus topic: "*" for
// every peer, "t.<topic>" for a topic).
func (b *Broker) Topic(topic string) string { return b.opts.Prefix + ".topic." + Token(topic) }

// Name returns the subject of the requests for a named peer.
func (b *Broker) Name(name string) string { return b.opts.Prefix + ".peer." + Token(name) }

// Token encodes s as one NATS subject token: A-Z a-z 0-9 _ and - as they
// are, every other byte as % and two upper-case hex digits, "" as "%".
func Token(s string) string {
	if s == "" {
		return "%"
	}
	const hex = "0123456789ABCDEF"
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		out = append(out, '%', hex[c>>4], hex[c&15])
	}
	if out == nil {
		return s
	}
	return string(out)
}

// errNotConnected is what Publish and Request return while the connection
// is down.
func (b *Broker) errNotConnected() error {
	if b.nc.IsClosed() {
		return fmt.Errorf("natsbroker: %w", nats.ErrConnectionClosed)
	}
	return fmt.Errorf("natsbroker: %w", nats.ErrDisconnected)
}

// natsErr wraps an error of nats.go for wsrpc.
func natsErr(err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("natsbroker: %w (%w)", wsrpc.ErrMessageTooBig, err)
	}
	return fmt.Errorf("natsbroker: %w", err)
}

// Publish sends msg to the subject of topic. It returns once the message is
// queued on the connection (nats.go writes it soon after, in order), or at
// once with an error while the connection is down.
func (b *Broker) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return b.errNotConnected()
	}
	if err := b.nc.Publish(b.Topic(topic), msg); err != nil {
		return natsErr(err)
	}
	return nil
}

// Subscribe calls deliver with each message published to topic, on the
// subscription's own goroutine (nats.go's): one at a time, in the order
// received. stop unsubscribes and returns at once; a deliver already
// running finishes, and none starts after.
func (b *Broker) Subscribe(topic string, deliver func(msg []byte)) (stop func(), err error) {
	var stopped atomic.Bool
	sub, err := b.nc.Subscribe(b.Topic(topic), func(m *nats.Msg) {
		if !stopped.Load() {
			deliver(m.Data)
		}
	})
	if err != nil {
		return nil, natsErr(err)
	}
	return b.subscribed(sub, func() {
		stopped.Store(true)
		sub.Unsubscribe()
	})
}

// subscribed sets sub's pending limits and, when connected, waits for the
// server to have it (otherwise it is sent on reconnect). stop ends it.
func (b *Broker) subscribed(sub *nats.Subscription, stop func()) (func(), error) {
	if err := sub.SetPendingLimits(b.opts.PendingMsgs, b.opts.PendingBytes); err != nil {
		stop()
		return nil, natsErr(err)
	}
	if b.nc.IsConnected() {
		// A lost connection or a timeout only delays the subscription
		// until the connection is back: not an error.
		b.nc.FlushTimeout(b.opts.FlushTimeout)
	}
	return stop, nil
}

// Request sends msg to one instance serving name and returns its reply. It
// fails at once with an error wrapping wsrpc.ErrPeerNotFound when no
// instance serves name (NATS has no responders), and with a plain error
// while the connection is down or when it drops before the reply; ctx's
// own error when ctx ends first.
func (b *Broker) Request(ctx context.Context, name string, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !b.nc.IsConnected() {
		return nil, b.errNotConnected()
	}
	b.mu.Lock()
	link := b.link
	b.mu.Unlock()
	rctx := ctx
	if link.Err() == nil {
		// Fail this request when the connection drops. (A link done
		// while the connection is up is the watcher being late to see a
		// reconnection: go without.)
		var cancel context.CancelCauseFunc
		rctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(link, func() { cancel(nats.ErrDisconnected) })()
	}
	m, err := b.nc.RequestWithContext(rctx, b.Name(name), msg)
	switch {
	case err == nil:
		return m.Data, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case rctx.Err() != nil:
		return nil, fmt.Errorf("natsbroker: request for %q: %w", name, context.Cause(rctx))
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: %q (natsbroker: %w)", wsrpc.ErrPeerNotFound, name, err)
	}
	return nil, natsErr(err)
}

// Serve answers the requests for name, in the queue group Options.Queue so
// that one instance serving name gets each. Each request runs handle on a
// goroutine of its own, at most Options.MaxHandlers at once per Broker
// (beyond, requests wait in NATS's pending buffer for name); handle's ctx
// has no deadline of its own (wsrpc bounds its call with the caller's
// deadline, and the peer's life). stop drains the subscription: the
// server sends no more requests for name here, and those already on
// their way are still answered (wsrpc answers that the name is gone, so
// the caller gets ErrPeerNotFound rather than a wait); it returns at once.
// While the connection is down, stop unsubscribes instead.
func (b *Broker) Serve(name string, handle func(ctx context.Context, msg []byte) []byte) (stop func(), err error) {
	sub, err := b.nc.QueueSubscribe(b.Name(name), b.opts.Queue, func(m *nats.Msg) {
		b.sem <- struct{}{}
		go func() {
			defer func() { <-b.sem }()
			// A reply that cannot be sent (the connection closed) is
			// lost: the caller's request fails or times out.
			m.Respond(handle(context.Background(), m.Data))
		}()
	})
	if err != nil {
		return nil, natsErr(err)
	}
	return b.subscribed(sub, func() {
		if !b.nc.IsConnected() || sub.Drain() != nil {
			sub.Unsubscribe()
		}
	})
}
