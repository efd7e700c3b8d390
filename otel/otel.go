package otel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/internal/obs"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/wsrpc/wsrpc/otel"

// Other is the value of rpc.method for the names that the method table
// does not have, and of rpc.response.status_code and error.type in
// metrics for the codes past the first 64.
const Other = obs.Other

// Attributes of this package beside the conventions'.
const (
	// NotificationKey is true on the spans and measurements of
	// notifications; absent for calls.
	NotificationKey = attribute.Key("wsrpc.notification")
	// BatchKey is true on the spans of the items of a batch sent.
	BatchKey = attribute.Key("wsrpc.batch")
)

// Options configure New. A nil *Options uses the global providers.
type Options struct {
	// TracerProvider makes the tracer of the spans. Nil uses the global
	// one (go.opentelemetry.io/otel.GetTracerProvider), which follows a
	// provider set later with SetTracerProvider.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the meter of the histograms. Nil uses the
	// global one, as for TracerProvider.
	MeterProvider metric.MeterProvider
}

// New returns an Observer that records a span and a duration for every
// call, notification and batch item (see the package documentation for
// their names and attributes). One Observer may serve any number of
// peers and servers at once.
func New(opts *Options) wsrpc.Observer {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	meter := o.MeterProvider.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	server, err := rpcconv.NewServerCallDuration(meter)
	if err != nil {
		otel.Handle(err)
	}
	client, err := rpcconv.NewClientCallDuration(meter)
	if err != nil {
		otel.Handle(err)
	}
	return &observer{
		tracer: o.TracerProvider.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		server: server,
		client: client,
	}
}

type observer struct {
	tracer trace.Tracer
	server rpcconv.ServerCallDuration
	client rpcconv.ClientCallDuration
	codes  obs.CodeSet
}

const jsonrpc = "jsonrpc"

// Start starts the span of e and puts it in the context it returns.
func (o *observer) Start(ctx context.Context, e *wsrpc.Event) context.Context {
	method, name := e.Method, e.Method
	if e.Unregistered {
		method, name = Other, jsonrpc
	}
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		semconv.RPCSystemNameJSONRPC,
		semconv.RPCMethod(method),
		semconv.JSONRPCProtocolVersion("2.0"),
	)
	if e.Unregistered {
		attrs = append(attrs, semconv.RPCMethodOriginal(clip(e.Method, 128)))
	}
	if e.Notification {
		attrs = append(attrs, NotificationKey.Bool(true))
	}
	if e.Batch {
		attrs = append(attrs, BatchKey.Bool(true))
	}
	if e.ID != nil {
		// A string id without its quotes, as the conventions ask.
		attrs = append(attrs, semconv.JSONRPCRequestID(clip(strings.Trim(string(e.ID), `"`), 128)))
	}
	kind := trace.SpanKindClient
	if !e.Outgoing {
		kind = trace.SpanKindServer
		if e.Peer != nil {
			attrs = appendRequest(attrs, e.Peer.HTTPRequest())
		}
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(kind),
		trace.WithTimestamp(e.Start),
		trace.WithAttributes(attrs...),
	}
	if !e.Outgoing && e.Peer != nil {
		// The handler's context comes from the connection's: a new trace
		// per call, linked to the connection's span.
		opts = append(opts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, _ = o.tracer.Start(ctx, name, opts...)
	return ctx
}

// End ends the span of e with its outcome and records its duration.
func (o *observer) End(ctx context.Context, e *wsrpc.Event) {
	span := trace.SpanFromContext(ctx)
	method := e.Method
	if e.Unregistered {
		method = Other
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, semconv.RPCMethod(method))
	if e.Notification {
		attrs = append(attrs, NotificationKey.Bool(true))
	}
	if e.Err != nil {
		if code, ok := statusCode(e.Err); ok {
			span.SetAttributes(semconv.RPCResponseStatusCode(code), semconv.ErrorTypeKey.String(code))
			code = o.codes.Label(code)
			attrs = append(attrs, semconv.RPCResponseStatusCode(code), semconv.ErrorTypeKey.String(code))
		} else {
			kind := errorKind(e.Err)
			span.SetAttributes(semconv.ErrorTypeKey.String(kind))
			attrs = append(attrs, semconv.ErrorTypeKey.String(kind))
		}
		span.SetStatus(codes.Error, clip(e.Err.Error(), 256))
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))

	seconds := e.Duration.Seconds()
	if e.Outgoing {
		o.client.Record(ctx, seconds, rpcconv.SystemNameJSONRPC, attrs...)
	} else {
		o.server.Record(ctx, seconds, rpcconv.SystemNameJSONRPC, attrs...)
	}
}

// statusCode returns the code of err as a decimal string when err is a
// JSON-RPC error.
func statusCode(err error) (string, bool) {
	if we := (*wsrpc.Error)(nil); errors.As(err, &we) && we != nil {
		return strconv.FormatInt(we.Code, 10), true
	}
	return "", false
}

// errorKind names an error that is not a JSON-RPC error, with few
// values: the context's and wsrpc's own, else the Go type of err.
func errorKind(err error) string {
	if k, ok := obs.ErrorKind(err); ok {
		return k
	}
	return semconv.ErrorType(err).Value.AsString()
}

// appendRequest adds the addresses of an accepted peer's upgrade request.
func appendRequest(attrs []attribute.KeyValue, r *http.Request) []attribute.KeyValue {
	if r == nil {
		return attrs
	}
	if host, port := splitHostPort(r.Host); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port == 0 {
			port = 80
			if r.TLS != nil {
				port = 443
			}
		}
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if host, port := splitHostPort(r.RemoteAddr); host != "" {
		attrs = append(attrs, semconv.ClientAddress(host), semconv.NetworkPeerAddress(host))
		if port != 0 {
			attrs = append(attrs, semconv.ClientPort(port), semconv.NetworkPeerPort(port))
		}
	}
	return attrs
}

// splitHostPort splits "host:port", "[v6]:port" or a bare host; port is 0
// when absent or not a number.
func splitHostPort(s string) (host string, port int) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return strings.Trim(s, "[]"), 0
	}
	port, _ = strconv.Atoi(p)
	return h, port
}

// clip makes text from the network (a method name, an error message)
// fit for a span: valid UTF-8, at most max bytes.
func clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
