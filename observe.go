package wsrpc

import (
	"context"
	"errors"
	"time"
)

// This file is the observation hook: an Observer sees every call and
// notification in both directions, for metrics, tracing and inspection,
// without wsrpc depending on any of them (the otel and prom modules, and
// the inspector, are Observers). Without one, nothing here runs.

// An Observer sees every call, notification and batch item, incoming
// (served by a handler of this side) and outgoing (sent by Call, Notify,
// Batch, their descriptors, or an HTTPClient). Start is called before, End
// after, with the same *Event, completed; ctx is the handler's or the
// caller's. Start returns the context the handler (incoming) runs with,
// or the call (outgoing) waits with: a tracer puts its span there. Both
// run on the goroutine of the call, so they must be quick, and must not
// keep the Event after End. They are user code: wsrpc holds no lock
// meanwhile.
type Observer interface {
	Start(ctx context.Context, e *Event) context.Context
	End(ctx context.Context, e *Event)
}

// Event describes one call or notification for an Observer.
type Event struct {
	// Method is the method name. When Unregistered, it came from the
	// network and names no method of the table: a metric must not take it
	// as a label.
	Method       string
	Unregistered bool
	// Outgoing: this side sent it. Otherwise it arrived, and a handler
	// served it.
	Outgoing bool
	// Notification: no answer is expected. Batch: an item of a batch
	// sent (outgoing only).
	Notification bool
	Batch        bool
	// ID is the request's id as it went on the wire (nil for a
	// notification, and for outgoing batch items and HTTPClient calls);
	// valid until End returns.
	ID []byte
	// Peer is the connection it went over; nil over HTTP POST (both
	// sides: HTTPRequestFromContext gives an incoming POST's request).
	Peer *Peer
	// Start is when it began; Duration (set for End) how long it took:
	// the handler's run (incoming), or the wait for the answer (outgoing).
	Start    time.Time
	Duration time.Duration
	// Err is the outcome, for End: nil, an *Error (what the handler's
	// caller was sent, or what the other side answered), or, outgoing, a
	// context's or the transport's error. Code is the code of an *Error,
	// and 0 otherwise.
	Err  error
	Code int64
	// RequestBytes and ResponseBytes are the sizes of the params
	// (incoming) or of the request message (outgoing), and of the
	// response message; 0 for what has none, or is not known on its own
	// (an outgoing batch's items).
	RequestBytes  int
	ResponseBytes int
}

// observation is an incoming request's Event and the context its
// Observer returned, for appendResponse to end once the answer is
// encoded.
type observation struct {
	ctx context.Context
	e   *Event
}

// startIn starts observing an incoming request or notification; ctx is
// the handler's.
func (c *config) startIn(ctx context.Context, p *Peer, req *Request, unregistered bool) context.Context {
	e := &Event{
		Method: req.Method, Unregistered: unregistered, Notification: req.ID == nil,
		ID: req.ID, Peer: p, Start: time.Now(), RequestBytes: len(req.Params),
	}
	ctx = c.Observer.Start(ctx, e)
	req.obs = &observation{ctx: ctx, e: e}
	return ctx
}

// endIn ends the observation of req, if any, with the handler's outcome
// and the size of the response (0 for a notification).
func (c *config) endIn(req *Request, err error, responseBytes int) {
	o := req.obs
	if o == nil {
		return
	}
	req.obs = nil
	o.e.ResponseBytes = responseBytes
	c.end(o.ctx, o.e, err)
}

// startOut starts observing an outgoing call or notification.
func (c *config) startOut(ctx context.Context, p *Peer, method string, notification, batch bool, requestBytes int) (context.Context, *Event) {
	e := &Event{
		Method: method, Outgoing: true, Notification: notification, Batch: batch,
		Peer: p, Start: time.Now(), RequestBytes: requestBytes,
	}
	return c.Observer.Start(ctx, e), e
}

// end completes e with err and hands it to End.
func (c *config) end(ctx context.Context, e *Event, err error) {
	e.Duration = time.Since(e.Start)
	e.Err = err
	if we := (*Error)(nil); errors.As(err, &we) && we != nil {
		e.Code = we.Code
	}
	c.Observer.End(ctx, e)
}

// Observers returns an Observer that hands every event to each of obs, in
// order (their Start contexts chained), and their End in reverse order.
// Nil entries are skipped.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) Start(ctx context.Context, e *Event) context.Context {
	for _, o := range m {
		ctx = o.Start(ctx, e)
	}
	return ctx
}

func (m multiObserver) End(ctx context.Context, e *Event) {
	for i := len(m) - 1; i >= 0; i-- {
		m[i].End(ctx, e)
	}
}
