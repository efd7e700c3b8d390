// Package otel turns the calls of wsrpc peers into OpenTelemetry spans
// and metrics: New returns a [wsrpc.Observer] to put in the options of a
// Server, Dial, Accept, NewPeer or HTTPClient.
//
// It follows the OpenTelemetry semantic conventions for RPC and for
// JSON-RPC at version 1.43.0 (the schema URL
// https://opentelemetry.io/schemas/1.43.0, the package
// go.opentelemetry.io/otel/semconv/v1.43.0), in which they are still a
// release candidate (RPC) or in development (JSON-RPC): names may change
// in later versions.
//
// # Spans
//
// Every call, notification and batch item gets a span: kind Server for
// what arrived and a handler of this side served, kind Client for what
// this side sent. Its name is the method, or "jsonrpc" for a method the
// table does not have. Its attributes:
//
//	rpc.system.name           "jsonrpc"
//	rpc.method                the method, or "_OTHER" when the table does not have it
//	rpc.method_original       the name the other side sent, when rpc.method is "_OTHER"
//	                          (made valid UTF-8 and cut to 128 bytes)
//	jsonrpc.protocol.version  "2.0"
//	jsonrpc.request.id        the request's id (a string's without its quotes; none for a
//	                          notification, an outgoing batch item or an HTTPClient call)
//	rpc.response.status_code  the code of the JSON-RPC error, as a decimal string
//	error.type                the same code; without one, "canceled", "deadline_exceeded",
//	                          "closed", "message_too_big", or the Go type of the error
//	server.address, server.port, client.address, client.port,
//	network.peer.address, network.peer.port
//	                          incoming over WebSocket: from the upgrade request
//	                          (Host, RemoteAddr)
//	wsrpc.notification        true for a notification (no answer expected)
//	wsrpc.batch               true for an item of a batch this side sent
//
// A call that failed (a JSON-RPC error, or, outgoing, a context's or the
// transport's error) has status Error with the error's message (its
// first 256 bytes). A span covers what the [wsrpc.Event] measures: the
// handler's run (incoming) or the wait for the answer (outgoing).
//
// The span goes into the context the handler runs with (incoming) or the
// call waits with (outgoing): a handler's trace.SpanFromContext is its
// server span, and a call the handler makes back to its peer is a child
// of it. A WebSocket connection lives long, and the contexts of its
// handlers come from its upgrade request: so that its calls are not all
// children of one connection-long span (one trace, one sampling decision),
// an incoming span over WebSocket starts a new trace, linked to the span
// of the upgrade request when there is one. Over HTTP POST the POST's
// span is the parent. No trace context crosses the wire: JSON-RPC has no
// place for it.
//
// # Metrics
//
// Two histograms, in seconds, with the conventions' buckets:
// rpc.server.call.duration (incoming) and rpc.client.call.duration
// (outgoing), with the attributes rpc.system.name, rpc.method,
// rpc.response.status_code and error.type as on spans, and
// wsrpc.notification (true) for notifications. A notification is
// measured like a call (its handler's run, or, outgoing, its sending);
// the attribute tells them apart.
//
// # Cardinality
//
// Method names that the table does not have come from the network: a
// hostile client could send a new one with every request. They are all
// recorded under rpc.method "_OTHER", as the conventions ask. Error codes
// from the other side (the answers to this side's calls) are chosen by
// it too: the first 64 distinct codes keep their value in metrics, later
// ones are recorded as "_OTHER" (spans always carry the real code).
package otel
