package wsrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	neturl "net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Dial connects to the WebSocket JSON-RPC endpoint at url and returns the
// Peer. ctx bounds the handshake only; the connection outlives it. A
// server that refuses the handshake (Authenticate, Host or Origin checks,
// 429, 503) makes Dial return an error wrapping an *HTTPError with the
// status and the server's message, which errors.As tells apart from a
// network failure: a reconnect loop stops on 401 and retries on the rest.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Peer, error) {
	return dial(ctx, url, opts.options())
}

func dial(ctx context.Context, url string, opts *options) (*Peer, error) {
	cfg := opts.config()
	client, frames := cfg.HTTPClient, func() *frameConn { return nil }
	if u, err := neturl.Parse(url); err == nil {
		if fc, conn, ok := framedClient(client, u); ok {
			client, frames = fc, conn
		}
	}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: cfg.HTTPHeader,
		HTTPClient: client,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("wsrpc: dial %s: HTTP %d: %w", url, resp.StatusCode, refusalOf(resp))
		}
		return nil, err
	}
	fc := frames()
	if fc != nil {
		fc.coalesceWrites() // the handshake is over: what follows is frames
	}
	p := newPeer(newWSTransport(c, nil, fc, cfg), cfg, nil, nil)
	p.start()
	return p, nil
}

// HTTPError is an error with the HTTP status an Authenticate hook wants the
// refused upgrade to get (401 if the hook returns any other error).
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string { return e.Message }

// refusalOf makes an *HTTPError of a refused request's response: its status
// and the start of its body (coder/websocket keeps the first KiB).
func refusalOf(resp *http.Response) *HTTPError {
	var b []byte
	if resp.Body != nil {
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
	}
	return newHTTPError(resp.StatusCode, b)
}

// newHTTPError is the *HTTPError for a response with status and body: the
// body, trimmed and cut to 200 bytes, or the status text.
func newHTTPError(status int, body []byte) *HTTPError {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &HTTPError{Status: status, Message: msg}
}

// Accept upgrades an HTTP request to a WebSocket connection and returns its
// Peer, started. Before the upgrade it checks, in order: the Host header
// (AcceptOptions.AllowedHosts; loopback names only on a loopback listener), the
// Origin (same host, AcceptOptions.OriginPatterns; "null" is refused), and
// AcceptOptions.Authenticate. A refused request gets a 4xx response and Accept
// returns an error; no Peer is created.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Peer, error) {
	p, err := accept(w, r, opts.options().config(), nil)
	if err != nil {
		return nil, err
	}
	p.start()
	return p, nil
}

// accept is Accept without starting the peer. beforeUpgrade, if not nil,
// runs once the request is accepted, just before the 101 response goes
// out.
func accept(w http.ResponseWriter, r *http.Request, cfg *config, beforeUpgrade func()) (*Peer, error) {
	if status, err := checkUpgrade(r, cfg); err != nil {
		http.Error(w, err.Error(), status)
		return nil, err
	}
	identity, err := authenticate(w, r, cfg)
	if err != nil {
		return nil, err
	}
	hr := &hijackRecorder{ResponseWriter: w, before: beforeUpgrade, writeTimeout: cfg.WriteTimeout}
	c, err := websocket.Accept(hr, r, &websocket.AcceptOptions{
		OriginPatterns:     cfg.OriginPatterns,
		InsecureSkipVerify: cfg.InsecureAllowAnyOrigin,
	})
	if err != nil {
		return nil, err
	}
	hr.conn.SetWriteDeadline(time.Time{}) // coder/websocket times writes from here on
	return newPeer(newWSTransport(c, hr.conn, hr.frames, cfg), cfg, r, identity), nil
}

// hijackRecorder keeps the connection websocket.Accept hijacks, so that the
// peer can drop it at once even while a closing handshake is in progress
// (coder/websocket's CloseNow waits for a Close in progress, up to its own
// timeouts of several seconds), and puts a frameConn under the WebSocket.
type hijackRecorder struct {
	http.ResponseWriter
	conn   net.Conn
	frames *frameConn
	before func() // runs before the hijack flushes the 101 response
	// writeTimeout bounds the write of the 101 response, which is not
	// under coder/websocket's write timeouts yet.
	writeTimeout time.Duration
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h.before != nil {
		h.before()
	}
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	h.conn = c
	c.SetWriteDeadline(time.Now().Add(h.writeTimeout))
	h.frames, brw, err = hijackFrames(c, brw)
	if err == nil && brw.Writer.Buffered() == 0 {
		// net/http has written the 101 response; what coder/websocket
		// writes from here on are frames, and they go through frames,
		// to be gathered (framewrite.go). It writes none before Accept
		// returns.
		brw.Writer.Reset(h.frames)
		h.frames.coalesceWrites()
	}
	return h.frames, brw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// authenticate runs the Authenticate option on r. On refusal it answers with
// 401, or the status of an *HTTPError, and returns the error.
func authenticate(w http.ResponseWriter, r *http.Request, cfg *config) (identity any, err error) {
	if cfg.Authenticate == nil {
		return nil, nil
	}
	if identity, err = cfg.Authenticate(r); err != nil {
		status, msg := http.StatusUnauthorized, "unauthorized"
		var he *HTTPError
		if errors.As(err, &he) {
			status, msg = he.Status, he.Message
		}
		http.Error(w, msg, status)
	}
	return identity, err
}

var (
	errForbiddenHost   = errors.New("wsrpc: host not allowed")
	errForbiddenOrigin = errors.New("wsrpc: origin not allowed")
)

// checkUpgrade applies the host and origin rules that coder/websocket's own
// origin check does not cover.
//
// A refusal is logged at Warn, once per host or origin and config, with the
// option that would allow it: behind a reverse proxy or a dev server,
// everything is refused until AllowedHosts or OriginPatterns say so, and
// the client sees only a 403.
func checkUpgrade(r *http.Request, cfg *config) (int, error) {
	status, err := checkHostOrigin(r, cfg)
	if err != nil {
		cfg.warnRefusal(r, err)
	}
	return status, err
}

// CheckHostOrigin applies the Host and Origin checks that Accept and a
// Server make before anything else (see Security in the package
// documentation) to r, configured by the AllowedHosts, OriginPatterns and
// InsecureAllowAnyOrigin fields of opts (nil for the defaults). It returns
// nil, or an *HTTPError with status 403 saying which check refused; it
// logs nothing. Handlers of other wire formats (the weerpc package) use it
// to refuse the same requests.
func CheckHostOrigin(r *http.Request, opts *AcceptOptions) error {
	c := &config{}
	if o := opts.options(); o != nil {
		c.options = *o
	}
	if _, err := checkHostOrigin(r, c); err != nil {
		return &HTTPError{Status: http.StatusForbidden, Message: strings.TrimPrefix(err.Error(), "wsrpc: ")}
	}
	return nil
}

// checkHostOrigin is checkUpgrade's decision.
func checkHostOrigin(r *http.Request, cfg *config) (int, error) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if len(cfg.AllowedHosts) > 0 {
		ok := false
		for _, h := range cfg.AllowedHosts {
			if strings.EqualFold(h, host) {
				ok = true
				break
			}
		}
		if !ok {
			return http.StatusForbidden, errForbiddenHost
		}
	} else if onLoopback(r) && !isLoopbackName(host) {
		return http.StatusForbidden, errForbiddenHost
	}
	if !cfg.InsecureAllowAnyOrigin {
		if o := r.Header.Get("Origin"); o == "null" || (o != "" && !originAllowed(r, o, cfg.OriginPatterns)) {
			return http.StatusForbidden, errForbiddenOrigin
		}
	}
	return 0, nil
}

// warnRefusal logs a host or origin refusal, once per host or origin (at
// most maxWarned of them per config, since they come from the network).
func (c *config) warnRefusal(r *http.Request, err error) {
	var what, value, hint string
	switch err {
	case errForbiddenHost:
		what, value = "host", r.Host
		hint = "AllowedHosts (ServerOptions, AcceptOptions) lists the Host values to accept; behind a reverse proxy, the public host names it forwards (a loopback listener accepts only loopback names by default)"
	case errForbiddenOrigin:
		what, value = "origin", r.Header.Get("Origin")
		hint = "OriginPatterns (ServerOptions, AcceptOptions) lists the browser origins to accept besides the request's own host, such as a dev server's \"localhost:3000\""
	default:
		return
	}
	if c.warned == nil {
		return
	}
	c.warned.mu.Lock()
	_, seen := c.warned.set[what+" "+value]
	full := len(c.warned.set) >= maxWarned
	if !seen && !full {
		c.warned.set[what+" "+value] = struct{}{}
	}
	c.warned.mu.Unlock()
	if !seen && !full {
		c.log.Warn("wsrpc: refused a request: "+what+" not allowed", what, value, "remote", r.RemoteAddr, "method", r.Method, "allow it with", hint)
	}
}

// maxWarned bounds the refusal causes a config remembers having logged.
const maxWarned = 100

// originAllowed applies coder/websocket's origin rule (same host, or a
// match of OriginPatterns) here, so that a cross-origin request is refused
// before Authenticate runs rather than after.
func originAllowed(r *http.Request, origin string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, pat := range patterns {
		target := u.Host
		if strings.Contains(pat, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(pat), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// onLoopback reports whether r arrived on a loopback listener.
func onLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is an http.Handler that accepts WebSocket connections and serves
// ServerOptions.Methods to each. Mount it at any path. It knows its peers, caps
// their number and shuts them down gracefully.
type Server struct {
	cfg  *config
	pool *pool // ServerOptions.MaxServerBytes, shared by peers and POSTs

	mu        sync.Mutex
	peers     map[*Peer]struct{}
	upgrades  map[*upgrade]struct{} // connections whose 101 is going out
	upgrading int
	posting   int // POST requests in progress
	closing   bool
	idle      chan struct{} // closed when closing and no peer is left
	cl        cluster       // cluster.go: names, topics, the Broker
}

// NewServer returns a Server configured by opts (nil for defaults).
func NewServer(opts *ServerOptions) *Server {
	return newServer(opts.options())
}

func newServer(opts *options) *Server {
	cfg := opts.config()
	return &Server{cfg: cfg, pool: &pool{limit: cfg.MaxServerBytes}, peers: map[*Peer]struct{}{}, upgrades: map[*upgrade]struct{}{}, cl: newCluster()}
}

// ServeHTTP serves the route. A GET is a WebSocket upgrade: the new peer
// is served until it ends. Peers and POST requests in progress count
// together against ServerOptions.MaxConnections; past it, 429.
//
// A POST with Content-Type application/json carries one JSON-RPC request,
// notification or batch, served with the same methods, middleware, guards,
// limits and checks (Host, Origin, Authenticate) as the peers; handlers
// see no peer (PeerFromContext returns nil) but HTTPRequestFromContext and
// IdentityFromContext. The answer comes with 200, error objects included,
// or 204 when there is nothing to answer. The request itself may be
// refused: 403 and 401 as an upgrade would be, 413 for a body over
// MaxMessageSize, 415 for another Content-Type, 503 when
// ServerOptions.MaxServerBytes has no room for its body, and 408 when its body
// does not arrive within Limits.MessageTimeout; a refused body is not read
// to its end: the connection is closed after the answer.
//
// Other methods get 405, and every request 503 while shutting down. POST
// requests in progress are not waited for by Shutdown; http.Server's
// Shutdown does that.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		s.servePOST(w, r)
		return
	case http.MethodGet:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	case len(s.peers)+s.upgrading+s.posting >= s.cfg.MaxConnections:
		s.mu.Unlock()
		http.Error(w, "too many connections", http.StatusTooManyRequests)
		return
	}
	s.upgrading++
	s.mu.Unlock()

	// From just before the 101 goes out, a broadcast waits for this
	// connection (u) to become a peer, so that it gets every broadcast
	// started after its client saw the handshake complete.
	u := &upgrade{done: make(chan struct{})}
	p, err := accept(w, r, s.cfg, func() {
		s.mu.Lock()
		s.upgrades[u] = struct{}{}
		s.mu.Unlock()
	})

	s.mu.Lock()
	s.upgrading--
	delete(s.upgrades, u)
	if err != nil {
		s.mu.Unlock()
		close(u.done)
		s.cfg.log.Debug("wsrpc: upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if s.closing {
		s.mu.Unlock()
		close(u.done)
		p.start()
		p.closeWith(websocket.StatusGoingAway, "server shutting down")
		return
	}
	p.pool = s.pool
	p.ID() // numbered as it connects, before anyone can look it up
	s.peers[p] = struct{}{}
	p.server = s
	p.onFinish = s.remove
	u.peer = p
	s.mu.Unlock()
	close(u.done)
	if err := s.syncTopic(""); err != nil {
		s.cfg.log.Warn("wsrpc: cannot subscribe to what other instances publish to every peer; retrying with the next connection", "err", err)
	}

	// The peer reads from the start, so that calls made in OnConnect get
	// their answers; what the other side sends waits until OnConnect has
	// returned. Without OnConnect nothing waits: a gate would hold, and a
	// close right behind them would drop, the notifications of a client
	// that sends some and closes at once.
	if s.cfg.OnConnect == nil {
		p.start()
		return
	}
	p.gate(true)
	p.start()
	s.cfg.OnConnect(p)
	p.gate(false)
}

// upgrade is a connection completing its handshake, which broadcasts
// wait for.
type upgrade struct {
	done chan struct{} // closed when the handshake has ended
	peer *Peer         // set before done is closed, if it became a peer
}

func (s *Server) remove(p *Peer) {
	s.mu.Lock()
	delete(s.peers, p)
	was := s.forgetLocked(p)
	if s.closing && len(s.peers) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
	s.syncForgotten(was)
	if s.cfg.OnDisconnect != nil {
		s.cfg.OnDisconnect(p)
	}
}

// Peers returns the connected peers, in no particular order, as of the
// moment it is called.
func (s *Server) Peers() iter.Seq[*Peer] {
	s.mu.Lock()
	ps := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	return func(yield func(*Peer) bool) {
		for _, p := range ps {
			if !yield(p) {
				return
			}
		}
	}
}

// Len returns the number of connected peers.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

// Shutdown stops accepting connections, lets the handlers in progress
// finish (new requests are answered with CodeServerBusy meanwhile), then
// closes every peer with status 1001 (going away). When ctx ends first,
// the remaining connections are dropped at once. Shutdown returns when
// every peer has ended, or ctx.Err() if that took longer than ctx allowed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	idle := make(chan struct{})
	if len(s.peers) == 0 {
		close(idle)
	} else {
		s.idle = idle
	}
	peers := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	s.stopCluster()

	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			select {
			case <-p.drain():
			case <-ctx.Done():
			}
			stop := context.AfterFunc(ctx, func() { p.fail(ctx.Err()) })
			p.closeWith(websocket.StatusGoingAway, "server shutting down")
			stop()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		<-idle
		return nil
	case <-ctx.Done():
		// Drop every connection now. A handler that ignores its context
		// may still be running: like http.Server.Shutdown, do not wait
		// for it past the deadline.
		for _, p := range peers {
			p.fail(ctx.Err())
		}
		return ctx.Err()
	}
}
