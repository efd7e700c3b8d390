package wsrpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// This file is what a Server does beyond its own connections: topics that
// peers join, names the application gives them, and, with a Broker, the
// same across every instance of a service (the natsbroker module). Without
// a Broker all of it is local, and costs nothing until used.

// A Broker carries what crosses Server instances: messages published to a
// topic, and requests for one named peer wherever it is connected. The
// natsbroker module implements it on NATS. Messages are opaque to the
// Broker; wsrpc encodes them.
type Broker interface {
	// Publish sends msg to every instance subscribed to topic, this one
	// included. Messages from one publisher arrive in the order published.
	Publish(ctx context.Context, topic string, msg []byte) error
	// Subscribe calls deliver with each message published to topic, one
	// at a time, until stop is called. deliver may take up to the
	// Server's WriteTimeout (it waits for room in peers' queues, as
	// Broadcast does), so a Broker buffers what arrives meanwhile. stop
	// need not wait for a deliver in progress.
	Subscribe(topic string, deliver func(msg []byte)) (stop func(), err error)
	// Request sends msg to one instance serving name and returns its
	// reply. When no instance serves name it returns at once an error
	// wrapping ErrPeerNotFound.
	Request(ctx context.Context, name string, msg []byte) ([]byte, error)
	// Serve answers the requests for name with handle, until stop is
	// called (which need not wait for a handle in progress). When
	// several instances serve a name, each request goes to one of them.
	// A Serve or Subscribe that fails is not retried: a Broker that can,
	// registers while disconnected and takes effect on reconnecting.
	Serve(name string, handle func(ctx context.Context, msg []byte) []byte) (stop func(), err error)
}

var (
	// ErrPeerNotFound is returned for a call or notification to a name no
	// connected peer has, on any instance.
	ErrPeerNotFound = errors.New("wsrpc: no peer of that name is connected")
	// ErrBrokerUnavailable wraps the errors of a Broker that cannot reach
	// the other instances (its connection is down): local work goes on.
	ErrBrokerUnavailable = errors.New("wsrpc: broker unavailable")
	// ErrNotServed is returned by the naming and topic methods of a Peer
	// that does not belong to a Server.
	ErrNotServed = errors.New("wsrpc: the peer does not belong to a Server")
)

// cluster is a Server's names and topics. names, topics and each peer's
// peerState are guarded by Server.mu; served and subs, this instance's
// registrations on the Broker, by regMu, which is held while the Broker is
// called (never Server.mu: a Broker is user code).
type cluster struct {
	instance string // tags what this instance publishes, to skip it on return
	names    map[string]*Peer
	topics   map[string]map[*Peer]struct{}

	regMu  sync.Mutex
	served map[string]func() // names served on the Broker: their stop
	subs   map[string]func() // topics subscribed on the Broker: their stop

	// ctx ends at Shutdown: it bounds deliveries from the Broker, which
	// wait for room as Broadcast does.
	ctx    context.Context
	cancel context.CancelFunc
}

func newCluster() cluster {
	var b [8]byte
	rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	return cluster{instance: hex.EncodeToString(b[:]), ctx: ctx, cancel: cancel}
}

// peerState is what a Server's cluster keeps on each of its peers,
// guarded by Server.mu.
type peerState struct {
	name   string
	topics map[string]struct{}
}

// Name returns the name the application gave the peer with SetName, or "".
func (p *Peer) Name() string {
	s := p.server
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.cl.name
}

// SetName gives the peer a name the application chooses (a user id, say),
// by which Server.CallPeer and NotifyPeer reach it on any instance. A name
// belongs to one connection: when another peer of the same Server takes
// it, this one loses it (and keeps its connection); across instances the
// application keeps names unique, or a call reaches one of the peers that
// have it. An empty name removes the peer's name. It fails with
// ErrNotServed for a peer that is not a Server's, or with the Broker's
// error (the peer has the name on this instance all the same).
func (p *Peer) SetName(name string) error {
	s := p.server
	if s == nil {
		return ErrNotServed
	}
	s.mu.Lock()
	old := p.cl.name
	if old == name {
		s.mu.Unlock()
		return nil
	}
	s.unnameLocked(p)
	if name != "" && !p.ended() {
		if prev := s.cl.names[name]; prev != nil {
			prev.cl.name = ""
		}
		if s.cl.names == nil {
			s.cl.names = map[string]*Peer{}
		}
		s.cl.names[name] = p
		p.cl.name = name
	}
	s.mu.Unlock()
	s.syncName(old)
	return s.syncName(name)
}

// unnameLocked removes p's name. Called with s.mu held.
func (s *Server) unnameLocked(p *Peer) {
	if name := p.cl.name; name != "" {
		p.cl.name = ""
		if s.cl.names[name] == p {
			delete(s.cl.names, name)
		}
	}
}

// syncName makes this instance serve name on the Broker if and only if one
// of its peers has it.
func (s *Server) syncName(name string) error {
	b := s.cfg.Broker
	if b == nil || name == "" {
		return nil
	}
	return s.syncReg(&s.cl.served, name, func() bool { return s.cl.names[name] != nil }, func() (func(), error) {
		return b.Serve(name, func(ctx context.Context, msg []byte) []byte {
			return s.serveNamed(ctx, name, msg)
		})
	})
}

// syncReg makes regs[key] a registration on the Broker (made by register,
// ended by the stop it returns) if and only if want holds, and the Server
// is not shutting down. want runs with s.mu held; register and stop with
// regMu only.
func (s *Server) syncReg(regs *map[string]func(), key string, want func() bool, register func() (func(), error)) error {
	s.cl.regMu.Lock()
	defer s.cl.regMu.Unlock()
	s.mu.Lock()
	w := want() && !s.closing
	s.mu.Unlock()
	stop := (*regs)[key]
	switch {
	case w && stop == nil:
		stop, err := register()
		if err != nil {
			return brokerError(err)
		}
		if *regs == nil {
			*regs = map[string]func(){}
		}
		(*regs)[key] = stop
	case !w && stop != nil:
		delete(*regs, key)
		stop()
	}
	return nil
}

// ended reports whether the peer has stopped working.
func (p *Peer) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Named returns the peer of this instance that has name, or nil.
func (s *Server) Named(name string) *Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl.names[name]
}

// Join adds the peer to topics, whose Publish messages it then gets. It
// fails with ErrNotServed for a peer that is not a Server's, or with the
// Broker's error (the peer has joined the topics all the same, and gets
// what this instance publishes to them).
func (p *Peer) Join(topics ...string) error {
	s := p.server
	if s == nil {
		return ErrNotServed
	}
	s.mu.Lock()
	if !p.ended() {
		for _, t := range topics {
			if p.cl.topics == nil {
				p.cl.topics = map[string]struct{}{}
			}
			p.cl.topics[t] = struct{}{}
			if s.cl.topics == nil {
				s.cl.topics = map[string]map[*Peer]struct{}{}
			}
			if s.cl.topics[t] == nil {
				s.cl.topics[t] = map[*Peer]struct{}{}
			}
			s.cl.topics[t][p] = struct{}{}
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, s.syncTopic(t))
	}
	return errors.Join(errs...)
}

// Leave removes the peer from topics.
func (p *Peer) Leave(topics ...string) {
	s := p.server
	if s == nil {
		return
	}
	s.mu.Lock()
	for _, t := range topics {
		s.leaveLocked(p, t)
	}
	s.mu.Unlock()
	for _, t := range topics {
		s.syncTopic(t)
	}
}

func (s *Server) leaveLocked(p *Peer, t string) {
	delete(p.cl.topics, t)
	if members := s.cl.topics[t]; members != nil {
		delete(members, p)
		if len(members) == 0 {
			delete(s.cl.topics, t)
		}
	}
}

// forgetLocked removes a peer that has ended from names and topics, and
// returns what it had, for syncForgotten. Called with s.mu held.
func (s *Server) forgetLocked(p *Peer) peerState {
	was := p.cl
	s.unnameLocked(p)
	for t := range was.topics {
		s.leaveLocked(p, t)
	}
	p.cl = peerState{}
	return was
}

// syncForgotten updates the Broker for what a peer that ended had.
func (s *Server) syncForgotten(was peerState) {
	s.syncName(was.name)
	for t := range was.topics {
		s.syncTopic(t)
	}
}

// syncTopic makes this instance subscribe to topic on the Broker if and
// only if one of its peers joined it; the topic "" (every peer) always,
// until Shutdown.
func (s *Server) syncTopic(topic string) error {
	b := s.cfg.Broker
	if b == nil {
		return nil
	}
	return s.syncReg(&s.cl.subs, topic, func() bool { return topic == "" || len(s.cl.topics[topic]) > 0 }, func() (func(), error) {
		return b.Subscribe(busTopic(topic), func(msg []byte) { s.fromBus(topic, msg) })
	})
}

// stopCluster ends this instance's part in the cluster, at Shutdown (once
// s.closing is set): its subscriptions and names on the Broker.
func (s *Server) stopCluster() {
	s.cl.cancel()
	s.cl.regMu.Lock()
	defer s.cl.regMu.Unlock()
	for t, stop := range s.cl.subs {
		delete(s.cl.subs, t)
		stop()
	}
	for n, stop := range s.cl.served {
		delete(s.cl.served, n)
		stop()
	}
}

// brokerError is a Broker's error as wsrpc returns it: wrapping
// ErrBrokerUnavailable, unless it is about the message (ErrMessageTooBig:
// the broker's own limit), which retrying will not mend.
func brokerError(err error) error {
	if errors.Is(err, ErrMessageTooBig) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBrokerUnavailable, err)
}

// busTopic is the Broker topic of a wsrpc topic; "" (every peer) is "*".
func busTopic(topic string) string {
	if topic == "" {
		return "*"
	}
	return "t." + topic
}

// Publish sends the notification method with params to the peers that
// joined topic (with Peer.Join), on this instance and, with a Broker, on
// every instance; the topic "" is every peer. Each peer gets it once, and
// the messages of one publisher in the order published. On this instance
// it is Broadcast to those peers (the result counts them, and
// ServerOptions.SlowPeers applies); other instances deliver it the same
// way, waiting for room at most WriteTimeout. The error is about encoding,
// ctx, or the Broker (wrapping ErrBrokerUnavailable: this instance's peers
// got the message all the same).
func (s *Server) Publish(ctx context.Context, topic, method string, params any) (BroadcastResult, error) {
	msg, err := s.encodeNotification(method, params)
	if err != nil {
		return BroadcastResult{}, err
	}
	res, err := s.publishLocal(ctx, topic, msg)
	if err != nil {
		return res, err
	}
	if b := s.cfg.Broker; b != nil {
		bus := append([]byte(s.cl.instance+"\n"), msg...)
		if err := b.Publish(ctx, busTopic(topic), bus); err != nil {
			return res, brokerError(err)
		}
	}
	return res, nil
}

// encodeNotification encodes the notification method with params, within
// MaxMessageSize.
func (s *Server) encodeNotification(method string, params any) ([]byte, error) {
	msg := appendNotificationHead(nil, method)
	msg, err := appendParams(msg, params, s.cfg.Codec)
	if err != nil {
		return nil, fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	if int64(len(msg)) > s.cfg.MaxMessageSize {
		return nil, fmt.Errorf("%w: notification of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(msg), s.cfg.MaxMessageSize)
	}
	return msg, nil
}

// publishLocal delivers msg to this instance's peers in topic.
func (s *Server) publishLocal(ctx context.Context, topic string, msg []byte) (res BroadcastResult, err error) {
	if topic == "" {
		// Every peer, as Broadcast: those completing their handshake too.
		return s.broadcast(ctx, msg, nil)
	}
	var peers []*Peer
	s.mu.Lock()
	for p := range s.cl.topics[topic] {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		if err := s.deliver(ctx, p, msg, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// fromBus delivers a message another instance published.
func (s *Server) fromBus(topic string, bus []byte) {
	i := 0
	for i < len(bus) && bus[i] != '\n' {
		i++
	}
	if i == len(bus) || string(bus[:i]) == s.cl.instance {
		return // malformed, or ours: delivered already
	}
	ctx, cancel := context.WithTimeout(s.cl.ctx, s.cfg.WriteTimeout)
	defer cancel()
	if _, err := s.publishLocal(ctx, topic, bus[i+1:]); err != nil {
		s.cfg.log.Warn("wsrpc: a published message did not reach every peer", "topic", topic, "err", err)
	}
}

// ---- calls to named peers ----

// busCall is a call or notification for a named peer, as it crosses the
// Broker; busReply its answer.
type busCall struct {
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	Notify  bool            `json:"notify,omitempty"`
	Timeout int64           `json:"timeout_ms,omitempty"` // the caller's deadline, from now
}

type busReply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	// Missing: the instance no longer has the peer.
	Missing bool `json:"missing,omitempty"`
}

// CallPeer calls method on the peer named name (Peer.SetName), on this
// instance or, with a Broker, on any, and decodes its result into result.
// It returns what the peer answered (an *Error, as Peer.Call does), or an
// error wrapping ErrPeerNotFound at once when no peer has that name, or
// ErrBrokerUnavailable. ctx bounds the call on the instance of the peer
// too.
func (s *Server) CallPeer(ctx context.Context, name, method string, params, result any) error {
	raw, err := s.callPeer(ctx, name, method, params, false)
	if err != nil || result == nil {
		return err
	}
	if err := decodeValue(raw, result, s.cfg.Codec); err != nil {
		return fmt.Errorf("wsrpc: decoding result of %s: %w", method, err)
	}
	return nil
}

// NotifyPeer sends the notification method to the peer named name, on
// this instance or, with a Broker, on any. It returns once the peer's
// instance has written it, or with the errors of CallPeer.
func (s *Server) NotifyPeer(ctx context.Context, name, method string, params any) error {
	_, err := s.callPeer(ctx, name, method, params, true)
	return err
}

func (s *Server) callPeer(ctx context.Context, name, method string, params any, notify bool) (json.RawMessage, error) {
	if p := s.Named(name); p != nil {
		raw, err := callLocal(ctx, p, method, params, notify)
		if errors.Is(err, ErrClosed) {
			// As from another instance: the peer went.
			err = fmt.Errorf("%w: %q: %w", ErrPeerNotFound, name, err)
		}
		return raw, err
	}
	b := s.cfg.Broker
	if b == nil {
		return nil, fmt.Errorf("%w: %q", ErrPeerNotFound, name)
	}
	c := busCall{Method: method, Notify: notify}
	if params != nil {
		raw, err := marshalParams(params, s.cfg.Codec)
		if err != nil {
			return nil, fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
		}
		c.Params = raw
	}
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = max(time.Until(d).Milliseconds(), 1)
	}
	msg, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	out, err := b.Request(ctx, name, msg)
	if err != nil {
		if errors.Is(err, ErrPeerNotFound) || ctx.Err() != nil {
			return nil, err
		}
		return nil, brokerError(err)
	}
	var r busReply
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("wsrpc: malformed reply from the instance of %q: %w", name, err)
	}
	switch {
	case r.Missing:
		return nil, fmt.Errorf("%w: %q", ErrPeerNotFound, name)
	case r.Error != nil:
		return nil, r.Error
	}
	return r.Result, nil
}

// marshalParams encodes params as Peer.Call would put them on the wire.
func marshalParams(params any, c Codec) (json.RawMessage, error) {
	b, err := appendParams(nil, params, c)
	if err != nil {
		return nil, err
	}
	// appendParams writes `,"params":<v>}`.
	const head = `,"params":`
	return json.RawMessage(b[len(head) : len(b)-1]), nil
}

// callLocal is a call or notification to a peer of this instance.
func callLocal(ctx context.Context, p *Peer, method string, params any, notify bool) (json.RawMessage, error) {
	if notify {
		return nil, p.Notify(ctx, method, params)
	}
	var raw json.RawMessage
	err := p.Call(ctx, method, params, &raw)
	return raw, err
}

// serveNamed answers a Broker request for a peer of this instance.
func (s *Server) serveNamed(ctx context.Context, name string, msg []byte) []byte {
	var c busCall
	var r busReply
	if err := json.Unmarshal(msg, &c); err != nil {
		r.Error = errorf(CodeInvalidRequest, "invalid request: malformed call from another instance")
		return mustJSON(r)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.Timeout)*time.Millisecond)
		defer cancel()
	}
	var params any
	if len(c.Params) > 0 {
		params = c.Params
	}
	p := s.Named(name)
	if p == nil {
		r.Missing = true
		return mustJSON(r)
	}
	raw, err := callLocal(ctx, p, c.Method, params, c.Notify)
	switch {
	case err == nil:
		r.Result = raw
	case errors.As(err, &r.Error):
	case errors.Is(err, ErrClosed):
		r.Missing = true // it went while we called it
	default:
		r.Error = &Error{Code: CodeInternalError, Message: err.Error()}
	}
	return mustJSON(r)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Reply is one peer's answer to CallPeers.
type Reply struct {
	Name   string          // the peer's name
	Result json.RawMessage // its result, when Err is nil
	Err    error           // as CallPeer returns it
}

// CallPeers calls method on each named peer, on any instance, at once,
// and yields each answer as it arrives, each with its own outcome. At most
// 64 calls are in flight. Stopping the iteration early cancels the calls
// still in flight; ctx bounds them all.
func (s *Server) CallPeers(ctx context.Context, names []string, method string, params any) iter.Seq[Reply] {
	return func(yield func(Reply) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		todo := make(chan string, len(names))
		for _, n := range names {
			todo <- n
		}
		close(todo)
		// Room for every reply: a worker never waits for the consumer,
		// so stopping early only has to wait for calls in flight, which
		// the cancelled ctx ends.
		replies := make(chan Reply, len(names))
		var wg sync.WaitGroup
		defer wg.Wait()
		for range min(len(names), 64) {
			wg.Go(func() {
				for name := range todo {
					raw, err := s.callPeer(ctx, name, method, params, false)
					replies <- Reply{Name: name, Result: raw, Err: err}
				}
			})
		}
		for range names {
			if !yield(<-replies) {
				return
			}
		}
	}
}
