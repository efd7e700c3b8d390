// Package wsrpc is bidirectional JSON-RPC 2.0 over WebSocket.
//
// # Peers
//
// Both ends of a connection are a [Peer]. Each serves its own method table
// (the Methods of its options) to the other side, keeps its own pending
// calls, and can call, notify and batch. A Peer comes from [Dial] (client),
// [Accept] (inside any http.Handler), a [Server] (an http.Handler that
// accepts and tracks peers), [NewPeer] over an established
// *websocket.Conn, or [Pipe], which connects two peers in memory for tests.
//
// Each role has its own options, as in coder/websocket: [DialOptions],
// [AcceptOptions], [ServerOptions], [PeerOptions] (NewPeer, Pipe) and
// [HTTPClientOptions]. They share [Limits]. A nil pointer and every zero
// field mean the default. A [Key] keeps a typed
// value per connection (a session, a user), set and read on the peer.
//
// # Staying connected, and browsers
//
// [Redial] returns a [Redialer]: a client that dials again with backoff
// when its connection drops (to the next of [RedialOptions].URLs, when
// the service has several addresses), runs [RedialOptions].OnConnect on each new
// connection, and is a [Caller]. A call in flight when the connection
// drops fails with [ErrConnectionLost], unless its method is Repeatable. It
// stops on its context, [Redialer.Close], a 401 or 403, or a close with
// status 1000 or 4000 to 4999.
//
// [ScriptHandler] serves wsrpc.js, the browser client: the same calls,
// notifications, batches and server-to-page calls, with reconnecting.
//
// # Calls and notifications
//
// [Peer.Call] sends a request and waits for its response; [Call] is the
// same with a typed return value. [Peer.Notify] sends a notification and
// returns once it is written. Methods are registered on a [Methods] table
// with [Register] (typed: a JSON array maps to positional arguments, a JSON
// object to named ones, and a missing required argument or an unknown named
// one is an Invalid Params error), [Methods.HandleRaw] (the raw params), or
// [Methods.Handle] (a [Handler] that sees the whole [Request]);
// [Methods.Fallback] serves every name the table lacks. A handler
// reaches its peer with [PeerFromContext] — to call it back, or to read its
// [Peer.Identity] and [Peer.HTTPRequest] (cookies, headers).
//
// # Batches
//
// [Peer.Batch] runs a closure that adds calls and notifications to a
// [Batch]; when it returns, the batch goes out as one JSON array in one
// WebSocket message, and Batch returns when every call has its outcome,
// each in its own [BatchCall]. [Peer.NewBatch] and [Batch.Send] do the same
// without the closure. Incoming batches are served as the specification
// says: items run concurrently, one array answers the items that were not
// notifications, an all-notification batch gets no answer, and an empty one
// gets a single Invalid Request error. A batch may also carry responses to
// this peer's own calls.
//
// # An API declared once
//
// [NewMethod] and [NewNotification] declare a method or notification with
// its params and result types, once, in a package both programs import. The
// same descriptor registers the implementation on one side
// ([Method.Register], signature checked by the compiler) and calls it from
// the other ([Method.Call], [Method.Batch]) over a [Peer] or an
// [HTTPClient]. [Methods.Declare] records descriptors a table is expected to
// serve; [Methods.Unhandled] lists those with no implementation yet.
//
// # Middleware and guards
//
// A [Middleware] wraps a [Handler]; [Methods.Use] applies it to a whole
// table (first added is outermost), and Methods.Handle or Register take
// middleware for one method. [Logging] logs each call with log/slog
// (method, duration, error code; params only if asked); [Recover] is the
// panic and error mapping every handler already runs under.
//
// A [Guard] decides from the call's context whether it may run: the peer's
// identity ([IdentityFromContext], set by [ServerOptions.Authenticate]) and the
// upgrade or POST request ([HTTPRequestFromContext]). [Methods.Guard]
// guards a whole table and [Guarded] one method; a refused call gets
// [CodeUnauthorized] (-32002) and its handler never runs. [RequireIdentity]
// and [AllowHosts] are ready-made guards. Each item of a batch passes
// through middleware and guards on its own.
//
// # Broadcast
//
// A [Server] knows its peers: [Server.Peers], [Server.Peer] by [Peer.ID],
// and [Server.Broadcast], which encodes a notification once and queues it
// for every peer a filter selects, and says in a [BroadcastResult] how many
// got it. Each peer has its own outbound queue, bounded in messages
// ([ServerOptions.MaxOutbound]) and bytes ([Limits.MaxPeerBytes]). When it is
// full, [ServerOptions.SlowPeers] decides: wait for room within Broadcast's
// context (the default), drop the message for that peer, or close it with
// status 1008.
//
// # Names, topics, and several instances
//
// A Server's peers can be given a name the application chooses
// ([Peer.SetName], a user id say) and join topics ([Peer.Join]).
// [Server.Publish] sends a notification to the members of a topic ("" for
// every peer), [Server.CallPeer] and [Server.NotifyPeer] reach a peer by
// name, and [Server.CallPeers] calls a list of names at once, yielding
// each answer as it arrives with its own outcome. A name belongs to one
// connection: a newer peer that takes it takes it from the older one.
//
// With a [Broker] in [ServerOptions] all of that spans every instance of
// the service: a message published on one reaches the topic's members on
// all, once each and in the order published; a call by name goes to the
// instance the peer is on, and fails at once with [ErrPeerNotFound] when
// no instance has it. When the Broker cannot reach the others, local work
// goes on and what crosses fails with [ErrBrokerUnavailable]. The
// natsbroker module implements Broker on NATS. Broadcast, whose filter is
// Go code, stays on its own instance.
//
// # HTTP POST
//
// The same [Server] answers POST requests with Content-Type
// application/json (single calls and batches) from the same method table,
// guards and middleware, under the same limits and the same host, origin
// and Authenticate checks. A handler serving a POST has no peer:
// PeerFromContext returns nil, and calls on a nil *Peer return [ErrNoPeer].
// [HTTPClient] calls such an endpoint with the surface of a Peer.
//
// # Discovery, and other wire formats
//
// [Methods.Describe] says what a table knows of each method: its params
// and result types, its arguments (required or not, by Register's rules),
// the params structures it takes, the summary and errors its descriptor
// declares ([Method.Doc], [Method.Errors]), and, with [Methods.Calls], the
// methods this side calls on the other. The openrpc module builds an
// OpenRPC document from it and serves it as rpc.discover
// ([Methods.Discover], the one reserved name a table may serve; guards
// apply); `wsrpc discover URL` prints it.
//
// [Methods.Invoke] runs a method of a table as a POST would, under its
// middleware and guards, for handlers of other wire formats:
// the weerpc package serves a table to Flask-RPC and Quart-RPC clients,
// with [CheckHostOrigin] refusing what a Server refuses.
//
// # Custom JSON
//
// A Codec in the options replaces encoding/json for params and results (on both
// transports and in descriptors); the envelope is always wsrpc's own.
//
// # Streams
//
// [NewStream] declares a stream: subscribed to with params P, it sends
// values of type T, from either side of a connection to the other.
// [Stream.Register] serves it with a function that produces the values
// (on a goroutine of its own, for as long as it runs) and
// [Stream.RegisterPush] with a function that keeps the [Sink] to feed it
// from elsewhere (no goroutine held). [Stream.Subscribe] returns a
// [Subscription]: range over Subscription.All, or call Next with a
// context; Close unsubscribes. Either end may end a stream, and every
// stream ends when its peer closes. Stream messages are acted on as they
// are read, never queued behind handlers.
//
// Both ends are bounded. The subscriber holds at most
// [SubscribeOptions].Buffer values and MaxBytes bytes (64 and 1 MiB by
// default); its Overflow policy says what happens when they come faster
// than they are taken: [OverflowBlock] (the default) grants the serving
// side credit for that much and gives it back as values are taken, so
// Sink.Send waits, bounded by its context: backpressure across the
// socket, nothing lost. [OverflowDropOldest] drops the oldest value and
// counts it (Subscription.Dropped); [OverflowEnd] ends the subscription
// with [ErrStreamOverflow]. A peer serves at most [Limits].MaxStreams
// streams at once (default 1024); beyond, a subscribe call is answered
// CodeServerBusy.
//
// The wire, for other languages (ids are strings chosen by the serving
// side; "$/stream." names are wsrpc's):
//
//	--> {"jsonrpc":"2.0","id":1,"method":"feed","params":{"count":3}}    subscribe: a call of the stream's name
//	<-- {"jsonrpc":"2.0","id":1,"result":"s1"}                           the subscription id
//	--> {"jsonrpc":"2.0","method":"$/stream.credit","params":{"id":"s1","n":64,"bytes":1048576}}
//	<-- {"jsonrpc":"2.0","method":"$/stream.next","params":{"id":"s1","value":{"n":0}}}
//	<-- {"jsonrpc":"2.0","method":"$/stream.end","params":{"id":"s1"}}  or with "error":{code, message, data}
//	--> {"jsonrpc":"2.0","method":"$/stream.cancel","params":{"id":"s1"}} unsubscribe
//
// The serving side sends nothing, not even the end, before the first
// credit, which the subscriber sends once it has the id: so the answer to
// the subscribe call always comes first. The first credit is all an end
// needs. Credit adds n values and bytes bytes, where a value's bytes are
// the size of the whole $/stream.next message that carries it (the text
// message's payload, which both sides know exactly): the serving side
// spends that much per value, and the subscriber gives back that much once
// the value is taken. The serving side may send while it has a value and
// any bytes left, so it may overshoot by one message. Without "bytes" a
// credit sets no limit on bytes; n = -1 lifts the limit on both (what
// OverflowDropOldest and OverflowEnd send). A subscriber that gets more
// than its buffer holds (more values than Buffer, or more than MaxBytes
// and one message) ends the subscription with ErrStreamOverflow and
// unsubscribes. A stream whose subscriber sends no first credit within
// Limits.MessageTimeout of the answer (it gave up waiting for it) ends,
// and its producer sees ErrUnsubscribed. After $/stream.cancel the serving side sends nothing more
// for that id, not even an end. Messages for unknown ids are ignored, as
// are stream messages inside a batch.
//
// # Observing
//
// An [Observer] in the options (any role, and HTTPClientOptions) sees every
// call, notification and batch item in both directions: Start before, End
// after, with an [Event] (method, direction, kind, peer, duration, error
// code, bytes). Its context reaches the handler, so a tracer's span
// wraps it. Names that no method of the table has are marked
// Unregistered, so that metrics keep a fixed label for them. The otel and
// prom modules of this repository are Observers, and so is package
// inspect, whose page shows the peers, the methods (counts, error rates,
// latency percentiles) and the calls per second, live; without one,
// nothing is measured.
//
// # Concurrency and ordering
//
// One goroutine reads the connection at any time. It routes every response
// to its caller itself, so responses are never stuck behind handlers, and a
// handler may call back the peer that called it, nested to any depth.
//
// Requests run concurrently, at most [Limits.MaxHandlers] at once per peer;
// up to [Limits.MaxQueued] more wait in arrival order, and beyond that a
// request is answered with [CodeServerBusy]. A handler waiting for an
// answer from its own peer keeps its slot and its goroutine; when every
// slot is held by such a handler, those handlers serve the queued requests
// themselves while they wait (one of them may be the very callback they
// wait for), so nested callbacks neither deadlock nor take more goroutines
// than MaxHandlers. Items of a batch run concurrently within the same limit.
//
// Notifications (outside batches) are handled one at a time, in the order
// they arrived: a notification handler may call its peer, and requests keep
// running beside it. There is no ordering between notifications and
// requests.
//
// Cheap work runs on the reading goroutine itself, which saves a goroutine
// hand-off per message: a request, batch or notification whose handler
// returns within about a millisecond never leaves it. Work that runs longer
// (between one and two milliseconds), or calls back its own peer, hands
// reading to another goroutine, so a slow handler delays the messages
// behind it by at most that long.
//
// A caller reads its own answer while no one else reads, so that the
// answer wakes no other goroutine; between its calls nobody reads, and
// after one to two milliseconds of that a reader starts again (up to 8 ms
// at the end of a run of calls less than a few milliseconds apart, during
// which each call reads what came in before it). A caller
// with context.Background may read anything; a caller whose context can
// end reads only where its read can be stopped when the context ends
// without harm to the connection (accepted connections, and dialed ones
// whose HTTP client wsrpc can wrap): whole small messages, handing anything
// else, and the reading, to a reader goroutine. Elsewhere such a caller is
// woken by the reader.
//
// Writes are serialised per connection: every message is written whole.
// Messages that meet on their way out share system calls: those of
// writers waiting for their turn, and the answers to requests that were
// read together, which go out once the reader has served what it read
// (a handler that outlives the inline budget, or calls back its peer,
// lets the answers before it go at once). Many callers sharing one
// connection then cost both sides a fraction of a system call per
// message.
//
// # Cancellation
//
// The context of Call and Batch bounds the wait for the answer. When it
// ends, the call returns ctx.Err() at once, its pending entry is removed,
// a late answer is dropped, and the connection stays up. Contexts never
// reach the socket: github.com/coder/websocket closes a connection whose
// read or write context is cancelled, so wsrpc bounds its writes with its
// own timer instead.
//
// A handler's context is cancelled when its peer closes, and, with a
// CancelMethod in the options, when the caller gives up. CancelMethod names
// a notification whose params are {"id": id}; [LSPCancel],
// "$/cancelRequest", is the Language Server Protocol's, which
// vscode-jsonrpc and x/tools' jsonrpc2 send. It is off by default (the
// name must be agreed by both sides), and then costs nothing. With it on:
//
//   - A call or batch whose context ends sends the notification for each
//     of its ids still unanswered, once, through the peer's outbound queue
//     (so Call returns at once; with the queue full it is dropped). An
//     answered call sends nothing.
//   - An incoming cancel is acted on as it is read, never queued behind
//     other work. A request still queued is answered without running; a
//     running handler's context is cancelled. Either way the request gets
//     exactly one answer: [CodeRequestCancelled] (-32800, "request
//     cancelled"), whatever the handler returns after the cancel. Ids of
//     no request in progress (finished, unknown, null) are ignored, as are
//     cancels inside a batch and for the items of a batch.
//
// # Errors
//
// An [*Error] carries a JSON-RPC error object (code, message, data). A
// handler that returns one sends it as is; any other error, a panic, a nil
// *Error returned as a non-nil error, or a result that cannot be encoded is
// sent as [CodeInternalError] with the message "internal error", and the
// detail goes to the Logger of the peer's options only.
// Errors compare by code with errors.Is: errors.Is(err, ErrMethodNotFound).
// A closed peer fails calls with an error wrapping [ErrClosed] and the
// cause, such as a websocket.CloseError.
//
// Codes wsrpc uses besides the specification's: [CodeServerBusy] (-32000),
// [CodeResponseTooLarge] (-32001), [CodeUnauthorized] (-32002), and LSP's
// [CodeRequestCancelled] (-32800).
//
// # Limits
//
// Every limit has a default, taken when its field is zero. The fields are
// in [Limits], except MaxServerBytes, MaxOutbound and MaxConnections, which
// are the Server's ([ServerOptions]):
//
//   - MaxMessageSize 4 MiB: one incoming message. Past it the connection is
//     closed with status 1009 and pending calls fail with an error wrapping
//     [ErrMessageTooBig]; a frame whose header declares more is refused
//     before its payload is read. Outgoing messages over the limit are refused
//     locally. (The transport's own default, 32 KiB, trips real payloads;
//     tens of MiB invite memory exhaustion.)
//   - MaxPeerBytes 4 × MaxMessageSize: the bytes of inbound messages one
//     peer holds (being read, waiting, being served), and separately the
//     bytes of its outbound queue. Before reading a message the peer
//     reserves its size (known from the frame header on accepted
//     connections); with no room it reads nothing until its handlers give
//     bytes back, so the other side is slowed down by TCP. While a call of
//     this peer awaits an answer the reader cannot stop (the answer would
//     never be read): it reads on, and a request that does not fit is
//     answered [CodeServerBusy].
//   - MaxServerBytes 256 MiB: the bytes all the peers of a [Server] hold
//     together, beyond the first 64 KiB of each (so that peers sending
//     small messages never wait for others), and the bodies of the POST
//     requests in progress. A peer with no room waits before reading a
//     message's payload; a POST gets HTTP 503.
//   - MaxBatch 100 items: a larger batch gets one Invalid Request error that
//     names the limit.
//   - MaxBatchResponse = MaxMessageSize: bytes of one batch answer, error
//     objects included, over WebSocket and HTTP alike; items past it get
//     [CodeResponseTooLarge] with their own id.
//   - MaxHandlers 32 requests running per peer, MaxQueued 256 waiting; more
//     gets [CodeServerBusy], and then the peer reads nothing more until a
//     slot or a place is free, so that a flood costs one refusal rather
//     than one per message. A peer has at most MaxHandlers goroutines
//     serving requests, plus its reader and at most four of its own
//     (notifications, outbound queue, keepalive, closing).
//   - Messages of 1 MiB or more are served one at a time per peer: the
//     peer does not read the payload of another until the answer to the
//     last one is out, so that one client's large messages keep at most one
//     core busy.
//   - MaxNotifications 1024 waiting. At the cap the peer stops reading
//     until the queue is half drained, so a burst is slowed down by TCP;
//     a queue that stays full for WriteTimeout (or fills while its handler
//     waits on this peer) closes the connection with status 1008 (policy
//     violation). Notifications are never dropped silently while the
//     connection lasts; those still waiting when it ends end with it.
//   - MaxPending 256 of this peer's own calls (a batch counts once) awaiting
//     answers; Call waits for a free slot, bounded by its context.
//   - MaxStreams 1024 streams served at once per peer; a subscribe call
//     beyond it is answered [CodeServerBusy].
//   - WriteTimeout 10s: a message that cannot be written in time (the other
//     side stopped reading) closes the connection. This limit and
//     MessageTimeout are checked every eighth of themselves, so they act
//     up to an eighth late; a message costs no timer reset.
//   - PingInterval 20s, PingTimeout 10s: a peer that does not answer a ping
//     in time is closed and its pending calls fail (unless this peer's own
//     reader is paused by its byte budget, which also holds up the pong).
//   - MessageTimeout 30s: from the first byte of a frame's header to the
//     end of its message (or of the control frame), on accepted
//     connections and on dialed ones whose HTTP client wsrpc can wrap;
//     past it the connection is dropped. On a Server, it bounds the body
//     of a POST as well: a body that stalls is answered 408. It also
//     bounds the wait for a stream's first credit: a stream whose
//     subscriber sends none in time ends.
//   - MaxConnections 10000 peers and POST requests in progress per
//     [Server], together; past it, HTTP 429.
//   - Method names are at most [MaxMethodNameLen] bytes; the "rpc." prefix is
//     reserved by the specification and refused at registration.
//
// # WebSocket messages
//
// JSON-RPC travels in text messages. A binary message closes the
// connection with status 1003 (unsupported data), and a text message that
// is not valid UTF-8 with 1007 (RFC 6455 §8.1); any other malformed message
// is answered with a JSON-RPC error and the connection stays up.
//
// # Security
//
// Before upgrading, [Accept] and [Server] check, in order:
//
//   - Host: with AllowedHosts ([AcceptOptions], [ServerOptions]) empty, a
//     server listening on a loopback address accepts only loopback host
//     names (localhost, 127.0.0.1, [::1]), which defeats DNS rebinding;
//     otherwise the Host must be in the list. Refused with 403.
//   - Origin: a browser's cross-origin request is refused (403) unless its
//     host matches OriginPatterns; "Origin: null" is always refused.
//     InsecureAllowAnyOrigin turns the check off.
//   - Authenticate: runs on the upgrade request (cookies, headers,
//     remote address); an error refuses with 401 or the status of an
//     [*HTTPError]. The identity it returns is [Peer.Identity].
//
// No Peer is created, and no hook runs, for a refused request. Responses
// never carry Go type names, file paths, stacks or panic values.
package wsrpc

// A map of the package, for reading its code.
//
// Files, each with one job:
//
//	peer.go       Peer: its state, start, Close and failure, the goroutines it counts (launch, adopt, exit), keepalive
//	role.go       the reading role's state machine: who reads the connection, every move in readRole.step
//	read.go       the reading goroutines: readLoop, a caller's readFor, routing a message (route), lapse and handoff timers,
//	              answers to messages read ahead held back to go out together (holdAnswers)
//	serve.go      inbound work: byte budgets (reserve), admission (admit/decide), queues, handler slots, serveOne, help
//	write.go      the write path: writers take turns, WriteTimeout, the last writer out sends what was gathered
//	call.go       outbound calls: Call, Notify, pending calls and their answers (complete)
//	cancel.go     cancellation on the wire (CancelMethod): incoming cancels, sending them
//	stream.go     typed streams: Stream, Sink, Subscription, their credit, and their messages on the reader
//	batch.go      Batch (building and sending) and serving an incoming batch (serverBatch)
//	answer.go     what WebSocket and HTTP share: parseMessage, dispatch, appendResponse, appendBatchAnswer
//	wire.go       the JSON-RPC envelope: its rules, parsing objects and batches, encoding heads
//	scan.go       the JSON scanner: validation (syntax, UTF-8, depth) and value boundaries
//	values.go     fast paths for basic params and results
//	methods.go    the method table, typed registration, params mapping
//	conn.go       the transport seam: coder/websocket, and an in-memory pipe for tests
//	frameconn.go  a net.Conn under coder/websocket that follows frame headers (first byte, sizes),
//	              and in caller mode returns whole frames only, so a caller's read can stop
//	framewrite.go a frame's writes gathered into up to 64 KiB per system call, and the messages
//	              of writers queued for their turn (or of a broadcast burst, or the answers to
//	              requests read together) gathered into one
//	buf.go        pooled message buffers, large ones by size, without allocating once warm
//	watchdog.go   a timer that fires when one operation outlives its limit, without a reset per operation
//	server.go     Dial, Accept, Server (connections, checks before the upgrade, Shutdown)
//	http.go       JSON-RPC over HTTP POST: the server side and HTTPClient
//	broadcast.go  Server.Broadcast and each peer's outbound queue
//	cluster.go    names, topics, Publish, calls by name, and the Broker that spans instances
//	pipe.go       Pipe: two peers connected in memory (the transport is in conn.go)
//	key.go        Key: typed per-connection values
//	redial.go     Redialer: a client that dials again (its goroutine: run)
//	weerpc/       package weerpc: the same table served to Flask-RPC and Quart-RPC clients (weeRPC over POST)
//	internal/obs  the outcome labels the otel and prom modules share (modules of their own: openrpc, otel,
//	              prom, natsbroker; see the README's Design)
//	internal/relay a loopback TCP relay for tests: cuts connections, or chops the byte stream
//	inspect/      package inspect: an Observer counting per method, inspect.snapshot/watch, and its page (Handler)
//	observe.go    the Observer hook: Event, and where calls start and end both ways
//	describe.go   what a table tells of itself (Describe, rpc.discover) and Invoke for other wire formats
//	script.go     ScriptHandler: serves js/wsrpc.js, the browser client
//	middleware.go, guard.go, descriptor.go, errors.go, options.go: as named
//
// A message in: a reader (read.go: readLoop, or a caller in readFor) calls
// conn.readMessage, which reserves the message's bytes (serve.go: reserve)
// before its payload is read; route parses it (answer.go: parseMessage).
// An answer completes its call (call.go: complete); a cancel notification
// (cancel.go: cancelIncoming) and stream messages (stream.go:
// streamMessage) are acted on there and then. A request, notification
// or batch goes to admit, which queues it, refuses it, or gives it back to
// the reader to serve inline (read.go: handle → serve.go: serveOne →
// answer.go: dispatch, appendResponse → write.go: write).
//
// A call out: Call → send registers the call's id in pending (a batch, as
// one entry in batches, whose ids complete takes one at a time), writes the
// request, and waits: a caller takes the reading role if it is free and
// reads until its answer (readFor; with a context that can end, in caller
// mode, an interrupt armed with context.AfterFunc); a caller that cannot
// read makes sure a reader runs (needReader) and waits for complete to
// signal it.
//
// Goroutines, and what ends each:
//
//	reader         readLoop: returns when the read fails (the peer closes), when its work is handed off
//	               (it finishes the work, serves the queue, returns), or on evReaderIdle; started by launch or a timer
//	handler        a former reader or a batch helper holding a slot: returns when the queue is empty (nextQueued)
//	notifications  a former reader serving notifications: returns when none waits (nextNote)
//	outbound       drainOutbound: returns when the outbound queue (broadcasts, cancels) is empty or the peer closes
//	keepalive      the ping timer's goroutine: returns after one ping
//	producer       a Stream.Register function: its goroutine returns when the function does
//	inspector      inspect's loop: publishes updates while a page watches; returns when none is left, or at Close
//	redialer       Redialer.run: returns when the Redialer stops (ctx, Close, or the server's word)
//	closing        violation on a goroutine of its own (outbound overflow): returns after the close handshake
//	timers         lapse and handoffCheck become the reader (adopt) or return at once
//
// Close waits for all of them: shutdown cancels handler contexts and closes
// the connection, each goroutine's last act is exit, and the last exit
// closes Peer.finished. Close called from a handler waits only for the
// goroutines not running user code (Peer.settled; dispatch brackets user
// code with enterUser and leaveUser), since its own caller is one of the
// others, and not at all once the peer has settled (a second Close, or one
// after the other side left).
//
// Limits, and the function that enforces each: MaxMessageSize in
// coder/websocket (SetReadLimit, conn.go) and send/Notify (call.go);
// MaxPeerBytes and MaxServerBytes in reserve and decide (serve.go) and
// offer (broadcast.go); MaxHandlers and MaxQueued in decide and
// startHelper; MaxNotifications in decide and nextNote; MaxPending in
// acquire (call.go); MaxStreams in newSink, SubscribeOptions' bounds in
// push and take (stream.go); MaxBatch in parseBatch (wire.go); MaxBatchResponse in
// appendBatchAnswer (answer.go); WriteTimeout in writeCtx (write.go) and
// admit; MessageTimeout in conn.go's watchdog (frame hooks) and readBody
// (http.go); MaxConnections in ServeHTTP and enterPOST (server.go,
// http.go); MaxOutbound in offer.
