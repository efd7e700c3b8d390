package wsrpc

// Pipe returns two peers connected in memory and started, configured by
// aOpts and bOpts (nil for defaults): the same peers as over WebSocket,
// with their method tables, middleware, limits and callbacks, but no
// socket, so that handlers and the calls they make back can be tested
// without a server. Messages travel whole, as text messages; one over the
// receiver's MaxMessageSize closes the pipe with status 1009, as
// coder/websocket would. Closing either peer closes the pipe; close both
// to wait for all their goroutines.
func Pipe(aOpts, bOpts *PeerOptions) (a, b *Peer) {
	return pipe(aOpts.options(), bOpts.options())
}

func pipe(aOpts, bOpts *options) (a, b *Peer) {
	ea, eb := newPipe(64)
	ca, cb := aOpts.config(), bOpts.config()
	ea.maxMsg, eb.maxMsg = ca.MaxMessageSize, cb.MaxMessageSize
	a, b = newPeer(ea, ca, nil, nil), newPeer(eb, cb, nil, nil)
	a.start()
	b.start()
	return a, b
}
