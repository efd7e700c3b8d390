// Package relay is a loopback TCP relay for tests: it forwards every
// connection it accepts to a target address, copying each direction with a
// function the test chooses, and can cut every connection at once, as a
// network failure would.
package relay

import (
	"io"
	"net"
	"sync"
)

// Relay forwards the connections made to Addr to its target.
type Relay struct {
	ln     net.Listener
	target string
	pipe   func(dst, src net.Conn)
	mu     sync.Mutex
	conns  []net.Conn
	closed bool           // Close has begun: relay nothing more
	wg     sync.WaitGroup // the accept loop and every pipe
}

// Start listens on a loopback port and forwards each connection to target.
// pipe copies one direction, from src to dst, and returns when src ends or
// either fails; nil copies with io.Copy and then closes both. Close stops
// it; every goroutine it started has returned once Close has.
func Start(target string, pipe func(dst, src net.Conn)) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if pipe == nil {
		pipe = func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
	}
	r := &Relay{ln: ln, target: target, pipe: pipe}
	r.wg.Go(r.accept)
	return r, nil
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.closed {
			// Accepted just before Close: Close's Cut has run already
			// and would not see these, so their pipes could outlive it.
			r.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		r.conns = append(r.conns, c, u)
		r.wg.Go(func() { r.pipe(u, c) })
		r.wg.Go(func() { r.pipe(c, u) })
		r.mu.Unlock()
	}
}

// Cut resets every connection relayed so far, both ends: the peers see the
// connection fail, not close.
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, not a graceful FIN
		}
		c.Close()
	}
	r.conns = nil
}

// Close stops accepting, cuts every connection and waits for the relay's
// goroutines.
func (r *Relay) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.ln.Close()
	r.Cut()
	r.wg.Wait()
}
