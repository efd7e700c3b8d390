package wsrpc

// A Key names a typed value kept per connection: set it on a peer where
// the connection is set up (ServerOptions.Authenticate's identity aside, in
// OnConnect or a login handler) and read it in any handler of that peer
// with PeerFromContext, without a map of peers kept by hand. Keys compare
// by identity: make each once, with NewKey, usually as a package variable.
type Key[T any] struct {
	id *keyID
}

type keyID struct{ name string }

// NewKey returns a new key for values of type T. name only shows in
// String.
func NewKey[T any](name string) Key[T] { return Key[T]{id: &keyID{name: name}} }

// String returns the key's name.
func (k Key[T]) String() string { return k.id.name }

// Set attaches v to p under k, replacing what was there.
func (k Key[T]) Set(p *Peer, v T) {
	p.mu.Lock()
	if p.values == nil {
		p.values = map[*keyID]any{}
	}
	p.values[k.id] = v
	p.mu.Unlock()
}

// Get returns the value attached to p under k, and whether there is one. A
// nil p (a handler serving HTTP POST has no peer) has none.
func (k Key[T]) Get(p *Peer) (v T, ok bool) {
	if p == nil {
		return v, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok = p.values[k.id].(T)
	return v, ok
}

// Delete removes the value attached to p under k.
func (k Key[T]) Delete(p *Peer) {
	p.mu.Lock()
	delete(p.values, k.id)
	p.mu.Unlock()
}
