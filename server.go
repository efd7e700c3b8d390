package wsrpc

import (
	"context"
	"errors"
	"iter"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// Dial connects to the WebSocket JSON-RPC endpoint at url and returns the
// Peer. ctx bounds the handshake only; the connection outlives it.
func Dial(ctx context.Context, url string, opts *Options) (*Peer, error) {
	cfg := opts.config()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: cfg.HTTPHeader,
		HTTPClient: cfg.HTTPClient,
	})
	if err != nil {
		return nil, err
	}
	p := newPeer(newWSTransport(c, cfg), cfg, nil, nil)
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

// Accept upgrades an HTTP request to a WebSocket connection and returns its
// Peer, started. Before the upgrade it checks, in order: the Host header
// (Options.AllowedHosts; loopback names only on a loopback listener), the
// Origin (same host, Options.OriginPatterns; "null" is refused), and
// Options.Authenticate. A refused request gets a 4xx response and Accept
// returns an error; no Peer is created.
func Accept(w http.ResponseWriter, r *http.Request, opts *Options) (*Peer, error) {
	p, err := accept(w, r, opts.config())
	if err != nil {
		return nil, err
	}
	p.start()
	return p, nil
}

func accept(w http.ResponseWriter, r *http.Request, cfg *config) (*Peer, error) {
	if status, err := checkUpgrade(r, cfg); err != nil {
		http.Error(w, err.Error(), status)
		return nil, err
	}
	var identity any
	if cfg.Authenticate != nil {
		id, err := cfg.Authenticate(r)
		if err != nil {
			status, msg := http.StatusUnauthorized, "unauthorized"
			var he *HTTPError
			if errors.As(err, &he) {
				status, msg = he.Status, he.Message
			}
			http.Error(w, msg, status)
			return nil, err
		}
		identity = id
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:     cfg.OriginPatterns,
		InsecureSkipVerify: cfg.InsecureAllowAnyOrigin,
	})
	if err != nil {
		return nil, err
	}
	return newPeer(newWSTransport(c, cfg), cfg, r, identity), nil
}

var (
	errForbiddenHost   = errors.New("wsrpc: host not allowed")
	errForbiddenOrigin = errors.New("wsrpc: origin not allowed")
)

// checkUpgrade applies the host and origin rules that coder/websocket's own
// origin check does not cover.
func checkUpgrade(r *http.Request, cfg *config) (int, error) {
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
// Options.Methods to each. Mount it at any path. It knows its peers, caps
// their number and shuts them down gracefully.
type Server struct {
	cfg *config

	mu        sync.Mutex
	peers     map[*Peer]struct{}
	upgrading int
	closing   bool
	idle      chan struct{} // closed when closing and no peer is left
}

// NewServer returns a Server configured by opts (nil for defaults).
func NewServer(opts *Options) *Server {
	return &Server{cfg: opts.config(), peers: map[*Peer]struct{}{}}
}

// ServeHTTP upgrades the request and serves the new peer until it ends.
// It answers 503 while shutting down and 429 past Options.MaxConnections.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	case len(s.peers)+s.upgrading >= s.cfg.MaxConnections:
		s.mu.Unlock()
		http.Error(w, "too many connections", http.StatusTooManyRequests)
		return
	}
	s.upgrading++
	s.mu.Unlock()

	p, err := accept(w, r, s.cfg)

	s.mu.Lock()
	s.upgrading--
	if err != nil {
		s.mu.Unlock()
		s.cfg.log.Debug("wsrpc: upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if s.closing {
		s.mu.Unlock()
		p.start()
		p.closeWith(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.peers[p] = struct{}{}
	p.onFinish = s.remove
	s.mu.Unlock()

	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect(p)
	}
	p.start()
}

func (s *Server) remove(p *Peer) {
	s.mu.Lock()
	delete(s.peers, p)
	if s.closing && len(s.peers) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
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
		for _, p := range peers {
			p.fail(ctx.Err())
		}
		<-done
		<-idle
		return ctx.Err()
	}
}
