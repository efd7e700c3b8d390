// Package prom counts and times the calls of wsrpc peers for Prometheus.
// New returns a *Metrics, which is a [wsrpc.Observer] to put in the
// options of a Server, Dial, Accept, NewPeer or HTTPClient, and a
// prometheus.Collector to register:
//
//	m := prom.New(nil)
//	prometheus.MustRegister(m)
//	srv := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods, Observer: m})
//
// # Metrics
//
// With Options.Namespace "app", every name below starts with "app_"
// instead of nothing.
//
//	wsrpc_handled_total{method, direction, type, code}   counter: calls and notifications ended
//	wsrpc_call_duration_seconds{method, direction, type} histogram: how long they took
//	wsrpc_in_flight{method, direction}                   gauge: started and not yet ended
//
// The labels:
//
//	method     the method; "_OTHER" for a name the method table does not have
//	direction  "server": it arrived and a handler of this side served it;
//	           "client": this side sent it (Call, Notify, Batch, descriptors, HTTPClient)
//	type       "call", or "notification" (no answer expected)
//	code       "OK"; the JSON-RPC error code ("-32601", "409"); or, for an
//	           outgoing call that got no answer, "canceled", "deadline_exceeded",
//	           "closed", "message_too_big" or "error"
//
// The duration is the handler's run (server), or the wait for the answer
// (client: for a notification, its sending).
//
// # Cardinality
//
// Method names that the table does not have come from the network: a
// hostile client could send a new one with every request. They all count
// under method "_OTHER". Error codes come from handlers, and, for this
// side's calls, from the other side: the first 64 distinct codes keep
// their value, later ones count under code "_OTHER". Outgoing method
// names are this program's own, and kept.
package prom

import (
	"context"
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/internal/obs"
)

// Other is the label value of every method name that the method table
// does not have, and of the error codes past the first 64.
const Other = obs.Other

// Options configure New. A nil *Options takes every default.
type Options struct {
	// Namespace, when not empty, prefixes every metric name with itself
	// and an underscore.
	Namespace string
	// Buckets are the upper bounds of the duration histogram, in seconds.
	// Nil uses prometheus.DefBuckets (5ms to 10s).
	Buckets []float64
	// ConstLabels are added to every metric (e.g. {"server": "api"} when
	// two Servers share a registry).
	ConstLabels prometheus.Labels
}

// Metrics is a wsrpc.Observer that keeps Prometheus metrics of the
// calls it sees, and a prometheus.Collector of them. One Metrics may
// serve any number of peers and servers at once; it must be registered
// once.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	codes    obs.CodeSet
}

var (
	_ wsrpc.Observer       = (*Metrics)(nil)
	_ prometheus.Collector = (*Metrics)(nil)
)

// New returns Metrics named and bucketed as opts say.
func New(opts *Options) *Metrics {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Buckets == nil {
		o.Buckets = prometheus.DefBuckets
	}
	return &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace:   o.Namespace,
			Subsystem:   "wsrpc",
			Name:        "handled_total",
			Help:        "JSON-RPC calls and notifications ended, by method, direction (server: served here; client: sent from here), type (call, notification) and code (OK or the error's).",
			ConstLabels: o.ConstLabels,
		}, []string{"method", "direction", "type", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace:   o.Namespace,
			Subsystem:   "wsrpc",
			Name:        "call_duration_seconds",
			Help:        "How long JSON-RPC calls and notifications took: the handler's run (server), the wait for the answer (client).",
			Buckets:     o.Buckets,
			ConstLabels: o.ConstLabels,
		}, []string{"method", "direction", "type"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace:   o.Namespace,
			Subsystem:   "wsrpc",
			Name:        "in_flight",
			Help:        "JSON-RPC calls and notifications started and not yet ended, by method and direction.",
			ConstLabels: o.ConstLabels,
		}, []string{"method", "direction"}),
	}
}

// Start counts e in flight.
func (m *Metrics) Start(ctx context.Context, e *wsrpc.Event) context.Context {
	m.inFlight.WithLabelValues(method(e), direction(e)).Inc()
	return ctx
}

// End counts e as ended, with its code, and observes its duration.
func (m *Metrics) End(_ context.Context, e *wsrpc.Event) {
	meth, dir, typ := method(e), direction(e), "call"
	if e.Notification {
		typ = "notification"
	}
	m.inFlight.WithLabelValues(meth, dir).Dec()
	m.handled.WithLabelValues(meth, dir, typ, m.code(e.Err)).Inc()
	m.duration.WithLabelValues(meth, dir, typ).Observe(e.Duration.Seconds())
}

// Describe sends the descriptors of the three metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.handled.Describe(ch)
	m.duration.Describe(ch)
	m.inFlight.Describe(ch)
}

// Collect sends the current values of the three metrics.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.handled.Collect(ch)
	m.duration.Collect(ch)
	m.inFlight.Collect(ch)
}

func method(e *wsrpc.Event) string {
	if e.Unregistered {
		return Other
	}
	return e.Method
}

func direction(e *wsrpc.Event) string {
	if e.Outgoing {
		return "client"
	}
	return "server"
}

// code is the code label of an outcome.
func (m *Metrics) code(err error) string {
	if err == nil {
		return "OK"
	}
	if we := (*wsrpc.Error)(nil); errors.As(err, &we) && we != nil {
		return m.codes.Label(strconv.FormatInt(we.Code, 10))
	}
	if k, ok := obs.ErrorKind(err); ok {
		return k
	}
	return "error"
}
