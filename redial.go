package wsrpc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// This file keeps a client connected: a Redialer dials again, with backoff,
// whenever its connection drops, until it is told to stop or the server
// says it should. One goroutine (run) owns the connection's life; callers
// only wait for the connection it publishes.

// ErrConnectionLost is returned by a Redialer's calls that were in flight
// when the connection dropped and are not safe to repeat
// (RedialOptions.Repeatable). The error also matches ErrClosed.
var ErrConnectionLost = errors.New("wsrpc: connection lost")

// ConnState is the state of a Redialer's connection.
type ConnState int

const (
	// Connecting: dialing, or waiting to dial again.
	Connecting ConnState = iota
	// Connected: a peer is up, and its OnConnect has returned.
	Connected
	// Disconnected: the connection dropped; a dial follows.
	Disconnected
	// Stopped: for good (Close, the context, or the server's word); Err
	// says why.
	Stopped
)

func (s ConnState) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// Defaults of RedialOptions.
const (
	DefaultRedialMinDelay = 100 * time.Millisecond
	DefaultRedialMaxDelay = 5 * time.Second
)

// RedialOptions configure a Redialer. A nil *RedialOptions, and every zero
// field, means the default.
type RedialOptions struct {
	// Dial configures every connection: the method table (kept across
	// connections), limits, headers.
	Dial DialOptions

	// MinDelay and MaxDelay bound the wait between dials: it doubles from
	// MinDelay to MaxDelay while dials fail, each wait a random time
	// between half of it and all of it, and starts again from MinDelay
	// after a connection. Defaults 100ms and 5s.
	MinDelay, MaxDelay time.Duration

	// OnConnect runs on every new connection, before calls waiting for a
	// connection go out: re-authenticate, resubscribe. It calls through p:
	// the Redialer's own calls would wait for OnConnect to return. ctx ends
	// when the Redialer stops. An error closes that connection, and the
	// Redialer dials again after the usual wait.
	OnConnect func(ctx context.Context, p *Peer) error

	// OnState is told of every change of state, on the Redialer's own
	// goroutine, so it must return promptly and not call Close (which
	// waits for that goroutine); err is why it disconnected or stopped.
	OnState func(s ConnState, err error)

	// URLs are more addresses of the same service (instances joined by a
	// Broker, say). A dial that fails, and a connection that drops, move
	// the next dial to the next address in turn, url first.
	URLs []string

	// Repeatable reports whether a call of method may be sent again on
	// the next connection when the connection drops before its answer
	// (it is idempotent). Nil: no call is repeated.
	Repeatable func(method string) bool
}

// A Redialer is a client that stays connected: it dials url, and dials
// again with backoff whenever the connection drops. It is a Caller: Call,
// Notify and Batch wait, within their context, for a connection if there is
// none. It stops for good when its context ends, when Close is called, when
// the server closes the connection normally (status 1000) or with an
// application status (4000 to 4999), or when the server refuses the
// handshake with 401 or 403 (an *HTTPError); other dial failures, refusals
// (429, 503) and drops (a server restarting closes with 1001) are retried.
//
// A call in flight when the connection drops fails at once with an error
// matching ErrConnectionLost and ErrClosed, unless RedialOptions.Repeatable
// says its method is safe to repeat: then it is sent again on the next
// connection, within its context. A call that a wsrpc server refused
// because it is shutting down (CodeServerBusy, "server busy: shutting
// down") did not run, and is sent again on the next connection whatever
// its method.
type Redialer struct {
	url  string
	opts RedialOptions
	ctx  context.Context
	stop context.CancelCauseFunc

	mu    sync.Mutex
	cur   *redialConn   // the connection callers use; nil while there is none
	ready chan struct{} // closed when cur is set or the Redialer stops
	err   error         // why it stopped
	done  chan struct{} // closed when run has returned
}

// redialConn is one connection of a Redialer.
type redialConn struct {
	peer *Peer
	gone chan struct{} // closed when the Redialer has let go of it
}

// Redial returns a Redialer connecting to url, and starts dialing. It does
// not wait for the first connection: calls do. ctx bounds the Redialer's
// whole life.
func Redial(ctx context.Context, url string, opts *RedialOptions) *Redialer {
	r := &Redialer{url: url, ready: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.MinDelay <= 0 {
		r.opts.MinDelay = DefaultRedialMinDelay
	}
	if r.opts.MaxDelay < r.opts.MinDelay {
		r.opts.MaxDelay = max(DefaultRedialMaxDelay, r.opts.MinDelay)
	}
	r.ctx, r.stop = context.WithCancelCause(ctx)
	go r.run()
	return r
}

// run is the Redialer's goroutine: dial, serve, wait for the drop, and
// again, until it stops. It returns after the last peer has closed.
func (r *Redialer) run() {
	defer close(r.done)
	var err error
	urls := append([]string{r.url}, r.opts.URLs...)
	next := 0 // the address of the next dial
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err = r.wait(attempt); err != nil {
				break
			}
		}
		r.state(Connecting, nil)
		var p *Peer
		url := urls[next%len(urls)]
		if p, err = Dial(r.ctx, url, &r.opts.Dial); err != nil {
			if r.ctx.Err() != nil || final(err) {
				break
			}
			next++
			continue
		}
		if err = r.connect(p); err != nil {
			p.Close()
			if r.ctx.Err() != nil {
				break
			}
			continue
		}
		attempt = 0
		select {
		case <-p.Done():
		case <-r.ctx.Done():
		}
		p.Close()
		r.mu.Lock()
		c := r.cur
		r.cur = nil
		r.ready = make(chan struct{})
		r.mu.Unlock()
		close(c.gone)
		if err = p.Err(); r.ctx.Err() != nil || final(err) {
			break
		}
		next++
		r.state(Disconnected, err)
	}
	if r.ctx.Err() != nil {
		err = fmt.Errorf("wsrpc: redialer stopped: %w", context.Cause(r.ctx))
	}
	r.mu.Lock()
	r.err = err
	close(r.ready)
	r.mu.Unlock()
	r.stop(err)
	r.state(Stopped, err)
}

// connect runs OnConnect on p, then publishes p to callers.
func (r *Redialer) connect(p *Peer) error {
	if f := r.opts.OnConnect; f != nil {
		if err := f(r.ctx, p); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.cur = &redialConn{peer: p, gone: make(chan struct{})}
	close(r.ready)
	r.mu.Unlock()
	r.state(Connected, nil)
	return nil
}

// wait sleeps before dial number attempt (1 and up): MinDelay doubled for
// each failed dial, up to MaxDelay, jittered down to half.
func (r *Redialer) wait(attempt int) error {
	d := r.opts.MinDelay << min(attempt-1, 30)
	if d <= 0 || d > r.opts.MaxDelay {
		d = r.opts.MaxDelay
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// final reports whether err, a dial's or a dropped peer's, ends the
// Redialer: the server refused us (401, 403) or closed normally or with an
// application status.
func final(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden
	}
	switch s := websocket.CloseStatus(err); {
	case s == websocket.StatusNormalClosure:
		return true
	case s >= 4000 && s <= 4999:
		return true
	}
	return false
}

func (r *Redialer) state(s ConnState, err error) {
	if f := r.opts.OnState; f != nil {
		f(s, err)
	}
}

// Peer waits, within ctx, for a connection and returns its peer. The peer
// may drop at any time after; the Redialer's own calls handle that.
func (r *Redialer) Peer(ctx context.Context) (*Peer, error) {
	c, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.peer, nil
}

// conn waits, within ctx, for a connection.
func (r *Redialer) conn(ctx context.Context) (*redialConn, error) {
	for {
		r.mu.Lock()
		c, ready, err := r.cur, r.ready, r.err
		r.mu.Unlock()
		switch {
		case c != nil:
			return c, nil
		case err != nil:
			return nil, err
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Call calls method on the current connection, waiting for one within ctx;
// see Redialer for what a drop does to it.
func (r *Redialer) Call(ctx context.Context, method string, params, result any) error {
	return r.do(ctx, method, func(p *Peer) error { return p.Call(ctx, method, params, result) })
}

// Notify sends a notification on the current connection, waiting for one
// within ctx. A notification is never sent twice.
func (r *Redialer) Notify(ctx context.Context, method string, params any) error {
	p, err := r.Peer(ctx)
	if err != nil {
		return err
	}
	return p.Notify(ctx, method, params)
}

// Batch sends a batch built by build on the current connection, waiting for
// one within ctx. A batch dropped before its answers is repeated only if
// every method in it is Repeatable; build then runs again.
func (r *Redialer) Batch(ctx context.Context, build func(b *Batch)) error {
	return r.do(ctx, "", func(p *Peer) error {
		var methods []string
		err := p.Batch(ctx, func(b *Batch) {
			build(b)
			for _, it := range b.items {
				methods = append(methods, it.method)
			}
		})
		if err != nil && r.repeatable(methods...) {
			return errRepeat{err}
		}
		return err
	})
}

// errRepeat marks a batch's failure as one that may be repeated.
type errRepeat struct{ error }

func (e errRepeat) Unwrap() error { return e.error }

func (r *Redialer) repeatable(methods ...string) bool {
	if r.opts.Repeatable == nil || len(methods) == 0 {
		return false
	}
	for _, m := range methods {
		if !r.opts.Repeatable(m) {
			return false
		}
	}
	return true
}

// do runs send on a connection, and again on the next one while the
// connection drops under a call that may be repeated.
func (r *Redialer) do(ctx context.Context, method string, send func(p *Peer) error) error {
	for {
		c, err := r.conn(ctx)
		if err != nil {
			return err
		}
		err = send(c.peer)
		switch {
		case err == nil || ctx.Err() != nil:
			return unrepeat(err)
		case refusedShuttingDown(err):
			// It never ran, and the connection is going: whatever the
			// method, it goes out again on the next one.
		case !errors.Is(err, ErrClosed):
			return unrepeat(err)
		default:
			// The connection dropped under the call.
			var again errRepeat
			if !errors.As(err, &again) && (method == "" || !r.repeatable(method)) {
				return &lostError{cause: unrepeat(err)}
			}
		}
		// Again on the next connection, once run has let go of this one.
		select {
		case <-c.gone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// refusedShuttingDown reports whether err is the answer of a wsrpc server
// that refused the call because it is shutting down (errShutting): the
// call did not run, and the server closes the connection next.
func refusedShuttingDown(err error) bool {
	var e *Error
	return errors.As(err, &e) && e != nil && e.Code == errShutting.Code && e.Message == errShutting.Message
}

func unrepeat(err error) error {
	var e errRepeat
	if errors.As(err, &e) {
		return e.error
	}
	return err
}

// lostError is ErrConnectionLost with the peer's closing error.
type lostError struct{ cause error }

func (e *lostError) Error() string   { return ErrConnectionLost.Error() + ": " + e.cause.Error() }
func (e *lostError) Unwrap() []error { return []error{ErrConnectionLost, e.cause} }

// Close stops the Redialer: it closes the connection, fails the calls
// waiting for one, and returns when its goroutine has.
func (r *Redialer) Close() error {
	r.stop(ErrClosed)
	<-r.done
	return nil
}

// Done is closed when the Redialer has stopped for good.
func (r *Redialer) Done() <-chan struct{} { return r.done }

// Err returns why the Redialer stopped, or nil while it runs.
func (r *Redialer) Err() error {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	default:
		return nil
	}
}
