package wsrpc

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Defaults for the zero fields of Limits and ServerOptions. See the Limits
// section of the package documentation for why each was chosen.
const (
	DefaultMaxMessageSize   = 4 << 20
	DefaultMaxBatch         = 100
	DefaultMaxHandlers      = 32
	DefaultMaxQueued        = 256
	DefaultMaxNotifications = 1024
	DefaultMaxPending       = 256
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPingInterval     = 20 * time.Second
	DefaultPingTimeout      = 10 * time.Second
	DefaultMessageTimeout   = 30 * time.Second
	DefaultMaxConnections   = 10000
	DefaultMaxOutbound      = 1024
	DefaultMaxStreams       = 1024
	DefaultMaxServerBytes   = 256 << 20
	// DefaultMaxPeerBytes, times MaxMessageSize, is the default of
	// MaxPeerBytes.
	DefaultMaxPeerBytes = 4
)

// Codec marshals and unmarshals params and results. The JSON-RPC envelope
// itself is always written and read by wsrpc. Marshal must produce valid
// JSON.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// Options are given per role, as coder/websocket's DialOptions and
// AcceptOptions are: each role's struct holds only what applies to it.
//
//	PeerOptions        NewPeer, Pipe           methods, codec, logger, Limits
//	DialOptions        Dial                    the same, and the handshake's HTTP
//	AcceptOptions      Accept                  the same, and the checks before the upgrade
//	ServerOptions      NewServer               Accept's, and what is server-wide
//	HTTPClientOptions  NewHTTPClient           codec, size limit, HTTP
//
// A nil pointer, and every zero field, means the default. Options must not
// be modified after use.

// Limits bound what one peer reads, holds, runs and waits for. Every zero
// field means its default (the Default constants; see the Limits section
// of the package documentation for why each was chosen). The same Limits
// apply to a Server's POST requests where they make sense.
type Limits struct {
	// MaxMessageSize bounds one incoming message, and the messages this
	// peer agrees to send. A peer that sends more is closed with status
	// 1009: on the frame header that declares it, when the frames are
	// followed (always on accepted connections), before the payload is
	// read. Default 4 MiB.
	MaxMessageSize int64
	// MaxBatch bounds the items of one incoming batch; a larger batch is
	// answered with one CodeInvalidRequest error. Default 100.
	MaxBatch int
	// MaxBatchResponse bounds the bytes of one batch response; items past
	// it are answered with CodeResponseTooLarge. Default MaxMessageSize.
	MaxBatchResponse int
	// MaxHandlers bounds the requests (single or batch) served at once by
	// one peer. Default 32.
	MaxHandlers int
	// MaxQueued bounds the requests waiting for a handler slot; a request
	// beyond it is answered with CodeServerBusy. Default 256.
	MaxQueued int
	// MaxNotifications bounds the notifications waiting to be handled. At
	// the bound the peer stops reading until half of them are handled; if
	// the queue stays full for WriteTimeout, or fills while the
	// notification handler waits on this peer, the connection is closed
	// with status 1008. Default 1024.
	MaxNotifications int
	// MaxPending bounds this peer's own calls awaiting a response; Call
	// waits for a free slot (respecting its ctx). Default 256.
	MaxPending int
	// MaxPeerBytes bounds the bytes of the inbound messages one peer
	// holds: the one being read, and the requests, notifications and
	// batches waiting or being served. At the bound the peer reads
	// nothing more until its handlers give bytes back (TCP backpressure),
	// except while a call of its own awaits an answer: then it reads on,
	// and answers CodeServerBusy to a request that does not fit. It bounds
	// the outbound queue's bytes as well (Server.Broadcast). Default 4 ×
	// MaxMessageSize; never less than MaxMessageSize.
	MaxPeerBytes int64
	// MaxStreams bounds the streams this peer serves at once (Stream);
	// a subscribe call beyond it is answered CodeServerBusy. Default
	// 1024.
	MaxStreams int

	// WriteTimeout bounds one message write; a peer that does not read
	// is closed when it passes (checked every eighth of it, so within an
	// eighth more). Default 10s.
	WriteTimeout time.Duration
	// PingInterval is the time between keepalive pings; a negative value
	// disables them. Default 20s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the connection is
	// considered dead and closed. Default 10s.
	PingTimeout time.Duration
	// MessageTimeout bounds the time from the first to the last byte of
	// one incoming message (checked every eighth of it, so within an
	// eighth more), the body of a POST request, and the wait for a
	// stream's first credit (see Stream). Default 30s.
	MessageTimeout time.Duration
}

// PeerOptions configure a Peer made by NewPeer or Pipe.
type PeerOptions struct {
	// Methods is the table served to the other side. Nil serves nothing:
	// every request is answered with CodeMethodNotFound.
	Methods *Methods
	// Codec encodes params and results. Nil uses encoding/json.
	Codec Codec
	// Logger receives what must not go on the wire: handler errors that
	// are not *Error, recovered panics, protocol violations of the other
	// side. Nil logs nothing.
	Logger *slog.Logger
	// Limits bound the peer; zero fields are defaults.
	Limits Limits
	// CancelMethod names the notification that cancels a request on the
	// other side (see the Cancellation section of the package
	// documentation); empty, the default, sends and honours none.
	// LSPCancel is the name LSP and vscode-jsonrpc use.
	CancelMethod string
	// Observer sees every call and notification, both ways (metrics,
	// tracing). Nil: none.
	Observer Observer
}

// LSPCancel is the cancel notification of the Language Server Protocol,
// "$/cancelRequest" with params {"id": id}: what vscode-jsonrpc and
// x/tools' jsonrpc2 send. Set it as CancelMethod to speak with them.
const LSPCancel = "$/cancelRequest"

// DialOptions configure Dial: the peer, and the handshake.
type DialOptions struct {
	// Methods, Codec, Logger, Limits, CancelMethod and Observer are as
	// in PeerOptions.
	Methods      *Methods
	Codec        Codec
	Logger       *slog.Logger
	Limits       Limits
	CancelMethod string
	Observer     Observer

	// HTTPHeader is sent with the handshake (e.g. Authorization).
	HTTPHeader http.Header
	// HTTPClient performs the handshake. Nil uses http.DefaultClient; its
	// Timeout must be zero, as for coder/websocket.
	HTTPClient *http.Client
}

// AcceptOptions configure Accept: the peer, and the checks an upgrade
// request passes first.
type AcceptOptions struct {
	// Methods, Codec, Logger, Limits, CancelMethod and Observer are as
	// in PeerOptions.
	Methods      *Methods
	Codec        Codec
	Logger       *slog.Logger
	Limits       Limits
	CancelMethod string
	Observer     Observer

	// OriginPatterns lists the origins (host patterns, as in
	// github.com/coder/websocket's AcceptOptions) that may connect from a
	// browser besides the request's own host.
	OriginPatterns []string
	// InsecureAllowAnyOrigin disables the Origin check, which exposes every
	// user's browser to cross-site WebSocket hijacking.
	InsecureAllowAnyOrigin bool
	// AllowedHosts lists the Host header values accepted. When empty and
	// the server listens on a loopback address, only loopback host names
	// are accepted, which defeats DNS rebinding.
	AllowedHosts []string
	// Authenticate runs on the upgrade request before the upgrade. A
	// non-nil error refuses the connection (401, or the status of an
	// *HTTPError); the returned identity is available to every handler as
	// Peer.Identity.
	Authenticate func(r *http.Request) (identity any, err error)
}

// ServerOptions configure a Server: its peers, the checks before each
// upgrade or POST, and what the server bounds as a whole.
type ServerOptions struct {
	// Methods, Codec, Logger, Limits, CancelMethod and Observer are as
	// in PeerOptions, for every peer and every POST request.
	Methods      *Methods
	Codec        Codec
	Logger       *slog.Logger
	Limits       Limits
	CancelMethod string
	Observer     Observer

	// OriginPatterns, InsecureAllowAnyOrigin and AllowedHosts are as in
	// AcceptOptions, for upgrades and POST requests alike.
	OriginPatterns         []string
	InsecureAllowAnyOrigin bool
	AllowedHosts           []string
	// Authenticate is as in AcceptOptions. It runs on each POST too, whose
	// handlers see the identity with IdentityFromContext.
	Authenticate func(r *http.Request) (identity any, err error)

	// MaxConnections caps the peers and the POST requests served at once,
	// together; over it, requests get HTTP 429. Default 10000.
	MaxConnections int
	// MaxServerBytes bounds the bytes of inbound messages that all the
	// peers hold together, beyond the first 64 KiB of each (so that small
	// messages never wait for the bytes of others), and the bodies of the
	// POST requests in progress. A peer with no room waits before reading
	// a message's payload; a POST with no room gets HTTP 503. Default 256
	// MiB.
	MaxServerBytes int64
	// MaxOutbound bounds the messages waiting in a peer's outbound queue
	// (Server.Broadcast), and Limits.MaxPeerBytes their bytes; SlowPeers
	// says what happens to a broadcast that finds it full. The messages
	// are shared by the peers they go to, so memory grows with the
	// broadcasts in flight, not with the peers. Default 1024.
	MaxOutbound int
	// SlowPeers says what Broadcast does for a peer whose outbound queue
	// is full: wait for room (the default, SlowPeerWait), drop the message
	// for it (SlowPeerDrop) or close it (SlowPeerClose).
	SlowPeers SlowPeerPolicy
	// OnConnect runs when a peer is connected. The peer reads already, so
	// OnConnect may call it (with any context) to ask who it is; the
	// requests and notifications the other side sends wait until
	// OnConnect has returned, in their queues. Past MaxQueued requests
	// are answered CodeServerBusy and reading goes on; past
	// MaxNotifications reading stops, so an answer sent after more
	// notifications than that does not arrive while OnConnect waits: its
	// call ends with its context, or after WriteTimeout the connection is
	// closed with 1008 (see MaxNotifications). Give OnConnect's calls a
	// deadline.
	OnConnect func(p *Peer)
	// OnDisconnect runs when a peer has ended and all its goroutines have
	// returned.
	OnDisconnect func(p *Peer)
	// Broker joins this Server to the other instances of the service:
	// Publish and calls to named peers reach every instance (see
	// cluster.go's Broker; the natsbroker module implements it on NATS).
	// Nil: this instance alone.
	Broker Broker
}

// HTTPClientOptions configure an HTTPClient.
type HTTPClientOptions struct {
	// Codec encodes params and results. Nil uses encoding/json.
	Codec Codec
	// MaxMessageSize bounds the requests the client sends and the
	// responses it accepts. Default 4 MiB.
	MaxMessageSize int64
	// Header is sent with every request (e.g. Authorization).
	Header http.Header
	// Client performs the requests. Nil uses http.DefaultClient.
	Client *http.Client
	// Observer sees every call and notification (Outgoing). Nil: none.
	Observer Observer
}

// options is every role's options in one flat struct: what config is
// made of. The roles' structs convert to it below.
type options struct {
	Methods      *Methods
	Logger       *slog.Logger
	Codec        Codec
	CancelMethod string
	Observer     Observer

	Limits

	OriginPatterns         []string
	InsecureAllowAnyOrigin bool
	AllowedHosts           []string
	Authenticate           func(r *http.Request) (identity any, err error)

	MaxConnections int
	MaxServerBytes int64
	MaxOutbound    int
	SlowPeers      SlowPeerPolicy
	OnConnect      func(p *Peer)
	OnDisconnect   func(p *Peer)
	Broker         Broker

	HTTPHeader http.Header
	HTTPClient *http.Client
}

// peerOptions is the part every role with a peer shares.
func peerOptions(m *Methods, c Codec, log *slog.Logger, l Limits, cancel string, obs Observer) *options {
	return &options{Methods: m, Codec: c, Logger: log, Limits: l, CancelMethod: cancel, Observer: obs}
}

func (o *PeerOptions) options() *options {
	if o == nil {
		return nil
	}
	return peerOptions(o.Methods, o.Codec, o.Logger, o.Limits, o.CancelMethod, o.Observer)
}

func (o *DialOptions) options() *options {
	if o == nil {
		return nil
	}
	opts := peerOptions(o.Methods, o.Codec, o.Logger, o.Limits, o.CancelMethod, o.Observer)
	opts.HTTPHeader, opts.HTTPClient = o.HTTPHeader, o.HTTPClient
	return opts
}

func (o *AcceptOptions) options() *options {
	if o == nil {
		return nil
	}
	opts := peerOptions(o.Methods, o.Codec, o.Logger, o.Limits, o.CancelMethod, o.Observer)
	opts.OriginPatterns, opts.InsecureAllowAnyOrigin = o.OriginPatterns, o.InsecureAllowAnyOrigin
	opts.AllowedHosts, opts.Authenticate = o.AllowedHosts, o.Authenticate
	return opts
}

func (o *ServerOptions) options() *options {
	if o == nil {
		return nil
	}
	opts := (&AcceptOptions{
		Methods: o.Methods, Codec: o.Codec, Logger: o.Logger, Limits: o.Limits, CancelMethod: o.CancelMethod, Observer: o.Observer,
		OriginPatterns: o.OriginPatterns, InsecureAllowAnyOrigin: o.InsecureAllowAnyOrigin,
		AllowedHosts: o.AllowedHosts, Authenticate: o.Authenticate,
	}).options()
	opts.MaxConnections, opts.MaxServerBytes = o.MaxConnections, o.MaxServerBytes
	opts.MaxOutbound, opts.SlowPeers = o.MaxOutbound, o.SlowPeers
	opts.OnConnect, opts.OnDisconnect = o.OnConnect, o.OnDisconnect
	opts.Broker = o.Broker
	return opts
}

func (o *HTTPClientOptions) options() *options {
	if o == nil {
		return nil
	}
	return &options{Codec: o.Codec, Limits: Limits{MaxMessageSize: o.MaxMessageSize}, HTTPHeader: o.Header, HTTPClient: o.Client, Observer: o.Observer}
}

// config is options with the defaults filled in.
type config struct {
	options
	log *slog.Logger
	// smallMessage: messages under it are not charged to the byte
	// budgets (see serve.go).
	smallMessage int64
	// warned: the refusal causes logged already (server.go: warnRefusal).
	warned *warnedSet
}

type warnedSet struct {
	mu  sync.Mutex
	set map[string]struct{}
}

func (o *options) config() *config {
	c := &config{}
	if o != nil {
		c.options = *o
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	def(&c.MaxBatch, DefaultMaxBatch)
	def(&c.MaxBatchResponse, int(c.MaxMessageSize))
	def(&c.MaxHandlers, DefaultMaxHandlers)
	def(&c.MaxQueued, DefaultMaxQueued)
	def(&c.MaxNotifications, DefaultMaxNotifications)
	def(&c.MaxPending, DefaultMaxPending)
	def(&c.MaxStreams, DefaultMaxStreams)
	if c.MaxPeerBytes < c.MaxMessageSize {
		if c.MaxPeerBytes <= 0 {
			c.MaxPeerBytes = DefaultMaxPeerBytes * c.MaxMessageSize
		} else {
			c.MaxPeerBytes = c.MaxMessageSize
		}
	}
	if c.MaxServerBytes <= 0 {
		c.MaxServerBytes = DefaultMaxServerBytes
	}
	c.smallMessage = min(smallMessage, c.MaxPeerBytes/64)
	c.warned = &warnedSet{set: map[string]struct{}{}}
	def(&c.MaxConnections, DefaultMaxConnections)
	def(&c.MaxOutbound, DefaultMaxOutbound)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.PingTimeout, DefaultPingTimeout)
	defDur(&c.MessageTimeout, DefaultMessageTimeout)
	c.log = c.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}
