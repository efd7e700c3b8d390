package wsrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// This file serves JSON-RPC over HTTP POST on a Server's own route, with
// the same method table, middleware, guards and limits as its WebSocket
// peers, and holds a small client for it. One POST carries one request,
// notification or batch; its response carries the answer.
//
// HTTP statuses report what happened to the HTTP request (refused, too
// large, wrong content type); a JSON-RPC answer, error objects included,
// always comes with 200, or 204 when there is nothing to answer
// (notifications only).

// servePOST serves a JSON-RPC message sent with HTTP POST.
func (s *Server) servePOST(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg
	if status, msg := s.enterPOST(); status != 0 {
		http.Error(w, msg, status)
		return
	}
	defer s.leavePOST()
	// The browser rules of the upgrade hold here too: the Host check
	// defeats DNS rebinding and the Origin check cross-site requests.
	// Requiring application/json also keeps out the "simple" cross-origin
	// POSTs a browser sends without asking (text/plain, forms).
	if status, err := checkUpgrade(r, cfg); err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	identity, err := authenticate(w, r, cfg)
	if err != nil {
		return
	}

	body, status, msg := s.readBody(w, r)
	if status != 0 {
		// The rest of the body is not read: close the connection after
		// the answer instead of letting net/http wait to discard it.
		w.Header().Set("Connection", "close")
		http.Error(w, msg, status)
		return
	}
	defer s.pool.give(int64(cap(body.b)))
	defer putBuf(body)

	ctx := context.WithValue(r.Context(), httpCallKey{}, &httpCall{r: r, identity: identity})
	out := answerHTTP(ctx, cfg, body.b)
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// enterPOST counts a POST in progress against ServerOptions.MaxConnections, or
// returns the status refusing it.
func (s *Server) enterPOST() (status int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return http.StatusServiceUnavailable, "server shutting down"
	case len(s.peers)+s.upgrading+s.posting >= s.cfg.MaxConnections:
		return http.StatusTooManyRequests, "too many connections"
	}
	s.posting++
	return 0, ""
}

func (s *Server) leavePOST() {
	s.mu.Lock()
	s.posting--
	s.mu.Unlock()
}

// readBody reads a POST's body within MaxMessageSize bytes, bytes taken
// from the Server's budget (given back by the caller: cap of the buffer),
// and MessageTimeout: a client that stops sending its body in the middle
// is answered 408 rather than waited for. A non-zero status refuses the
// request.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body *msgBuf, status int, msg string) {
	cfg := s.cfg
	limit := cfg.MaxMessageSize
	tooBig := "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"
	n := r.ContentLength
	switch {
	case n > limit:
		return nil, http.StatusRequestEntityTooLarge, tooBig
	case n < 0:
		n = limit // chunked: room for the largest
	}
	if !s.pool.take(n, false) {
		w.Header().Set("Retry-After", "1")
		return nil, http.StatusServiceUnavailable, "server busy: too much data in progress"
	}
	rc := http.NewResponseController(w)
	// Not every ResponseWriter supports deadlines; then the http.Server's
	// own timeouts are all there is.
	rc.SetReadDeadline(time.Now().Add(cfg.MessageTimeout))
	body = getBuf()
	if cap(body.b) < int(n) {
		body.b = make([]byte, 0, n)
	}
	var err error
	body.b, err = readAll(body.b[:0], http.MaxBytesReader(w, r.Body, limit))
	if grown := int64(cap(body.b)) - n; grown != 0 {
		s.pool.take(grown, true) // the charge follows the buffer
	}
	if err == nil {
		rc.SetReadDeadline(time.Time{})
		return body, 0, ""
	}
	s.pool.give(int64(cap(body.b)))
	putBuf(body)
	var maxErr *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxErr):
		return nil, http.StatusRequestEntityTooLarge, tooBig
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		cfg.log.Debug("wsrpc: POST body too slow", "remote", r.RemoteAddr, "err", err)
		return nil, http.StatusRequestTimeout, "request body not received within " + cfg.MessageTimeout.String()
	}
	cfg.log.Debug("wsrpc: reading a POST body", "remote", r.RemoteAddr, "err", err)
	return nil, http.StatusBadRequest, "cannot read the request body"
}

// answerHTTP serves the message b and returns the answer to send, or nil
// when there is nothing to answer. It takes the path a peer's messages
// take (answer.go); a batch's items run concurrently, at most MaxHandlers
// at once.
func answerHTTP(ctx context.Context, cfg *config, b []byte) []byte {
	var env envelope
	var sb serverBatch
	kind, refusal := parseMessage(b, cfg.MaxBatch, &env, &sb, nil)
	switch kind {
	case msgRefused:
		return appendErrorResponse(nil, nil, refusal)
	case msgSingle:
		switch {
		case env.invalid != "":
			return appendErrorResponse(nil, readableID(&env), invalidError(&env))
		case !env.isRequest():
			return appendErrorResponse(nil, readableID(&env), errNoCall)
		}
		var req Request
		res, err := dispatch(ctx, cfg, nil, &env, &req)
		if env.id == nil {
			return nil
		}
		return appendResponse(nil, &req, res, err, int(cfg.MaxMessageSize), cfg)
	case msgBatch:
		items := sb.items
		var next atomic.Int32
		run := func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				if it := &items[i]; it.err == nil {
					it.res, it.err = dispatch(ctx, cfg, nil, &it.env, &it.req)
				}
			}
		}
		var wg sync.WaitGroup
		for range min(cfg.MaxHandlers, len(items)) - 1 {
			wg.Go(run)
		}
		run()
		wg.Wait()
		if sb.replies > 0 {
			return appendBatchAnswer(make([]byte, 0, 512), items, cfg.MaxBatchResponse, cfg)
		}
	}
	return nil
}

// ---- client ----

// HTTPClient calls a JSON-RPC server over HTTP POST: a Server's route, or
// any endpoint that speaks JSON-RPC 2.0 over HTTP. Each Call, Notify and
// batch is one POST. Unlike a Peer it keeps no connection state of its own
// and serves no methods; the http.Client underneath pools connections. An
// HTTPClient is safe for concurrent use.
type HTTPClient struct {
	url    string
	cfg    *config
	client *http.Client
	nextID atomic.Uint64
	// batchSize is the number of calls in the last batch sent (batch.go).
	batchSize atomic.Int32
}

// NewHTTPClient returns a client posting to url (http:// or https://),
// configured by opts (nil for defaults).
func NewHTTPClient(url string, opts *HTTPClientOptions) *HTTPClient {
	return newHTTPClient(url, opts.options())
}

func newHTTPClient(url string, opts *options) *HTTPClient {
	cfg := opts.config()
	c := cfg.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	return &HTTPClient{url: url, cfg: cfg, client: c}
}

// Call calls method with params (nil, or anything that encodes to a JSON
// array or object) and decodes the result into result (a pointer; nil to
// discard it). ctx bounds the whole HTTP exchange. A JSON-RPC error comes
// back as an *Error; a refused HTTP request as an error wrapping an
// *HTTPError with its status.
func (c *HTTPClient) Call(ctx context.Context, method string, params, result any) error {
	if c.cfg.Observer == nil {
		return c.call(ctx, method, params, result)
	}
	ctx, e := c.cfg.startOut(ctx, nil, method, false, false, 0)
	err := c.call(ctx, method, params, result)
	c.cfg.end(ctx, e, err)
	return err
}

func (c *HTTPClient) call(ctx context.Context, method string, params, result any) error {
	id := c.nextID.Add(1)
	body := appendRequestHead(nil, id, method)
	body, err := appendParams(body, params, c.cfg.Codec)
	if err != nil {
		return fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	resp, err := c.post(ctx, body)
	if err != nil {
		return err
	}
	if resp == nil {
		return errors.New("wsrpc: the server answered a call with no content")
	}
	var env envelope
	if !parseResponse(resp, &env) {
		return fmt.Errorf("wsrpc: malformed response to %s", method)
	}
	if env.err != nil {
		// Errors the server could not tie to our request (a parse error)
		// come with id null; they are still the answer to this POST.
		return decodeRemoteError(env.err)
	}
	if n, ok := parseUintID(env.id); !ok || n != id {
		return fmt.Errorf("wsrpc: response to %s has id %s, not %d", method, env.id, id)
	}
	if result != nil {
		if err := decodeValue(env.result, result, c.cfg.Codec); err != nil {
			return fmt.Errorf("wsrpc: decoding result of %s: %w", method, err)
		}
	}
	return nil
}

// Notify sends a notification: method with params, no result. It returns
// when the server has run it, or with an error.
func (c *HTTPClient) Notify(ctx context.Context, method string, params any) error {
	if c.cfg.Observer == nil {
		return c.notify(ctx, method, params)
	}
	ctx, e := c.cfg.startOut(ctx, nil, method, true, false, 0)
	err := c.notify(ctx, method, params)
	c.cfg.end(ctx, e, err)
	return err
}

func (c *HTTPClient) notify(ctx context.Context, method string, params any) error {
	body := appendNotificationHead(nil, method)
	body, err := appendParams(body, params, c.cfg.Codec)
	if err != nil {
		return fmt.Errorf("wsrpc: encoding params of %s: %w", method, err)
	}
	resp, err := c.post(ctx, body)
	if err != nil || resp == nil {
		return err
	}
	// A server answers a notification it could not parse or accept.
	var env envelope
	if parseResponse(resp, &env) && env.err != nil {
		return decodeRemoteError(env.err)
	}
	return nil
}

// post sends body and returns the response body, nil for 204 No Content.
func (c *HTTPClient) post(ctx context.Context, body []byte) ([]byte, error) {
	if int64(len(body)) > c.cfg.MaxMessageSize {
		return nil, fmt.Errorf("%w: request of %d bytes exceeds the limit of %d", ErrMessageTooBig, len(body), c.cfg.MaxMessageSize)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range c.cfg.HTTPHeader {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := readAll(nil, io.LimitReader(resp.Body, c.cfg.MaxMessageSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > c.cfg.MaxMessageSize {
		return nil, fmt.Errorf("%w: response exceeds %d bytes", ErrMessageTooBig, c.cfg.MaxMessageSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if len(bytes.TrimSpace(out)) == 0 {
			return nil, nil
		}
		return out, nil
	case http.StatusNoContent, http.StatusAccepted:
		return nil, nil
	}
	return nil, fmt.Errorf("wsrpc: POST %s: HTTP %d: %w", c.url, resp.StatusCode, newHTTPError(resp.StatusCode, out))
}

// parseResponse parses b as one response object.
func parseResponse(b []byte, env *envelope) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	end, err := parseObject(b, i, env)
	return err == nil && skipSpace(b, end) == len(b) && env.invalid == "" && !env.isRequest()
}

// HTTPBatch collects calls and notifications to post as one JSON array. It
// has the surface of Batch; build it with HTTPClient.Batch, or NewBatch and
// Send. It is not safe for concurrent use while being built.
type HTTPBatch struct {
	c *HTTPClient
	batchItems
}

// NewBatch returns an empty batch for c.
func (c *HTTPClient) NewBatch() *HTTPBatch {
	b := &HTTPBatch{c: c}
	b.sized = &c.batchSize
	return b
}

// Batch builds a batch with build and posts it when build returns. The
// returned error is about the batch as a whole; each call's own outcome is
// in its BatchCall.
func (c *HTTPClient) Batch(ctx context.Context, build func(b *HTTPBatch)) error {
	b := c.NewBatch()
	build(b)
	return b.Send(ctx)
}

// Call adds a call of method with params; its result is decoded into result
// (a pointer, or nil) when the answer arrives.
func (b *HTTPBatch) Call(method string, params, result any) *BatchCall {
	return b.addCall(method, params, result)
}

// Notify adds a notification of method with params.
func (b *HTTPBatch) Notify(method string, params any) { b.addNotify(method, params) }

// Len returns the number of calls and notifications in the batch.
func (b *HTTPBatch) Len() int { return b.count() }

// Send posts the batch, once, and returns when every call has its outcome
// or ctx ends. An empty batch sends nothing.
func (b *HTTPBatch) Send(ctx context.Context) error { return b.sendOnce(ctx, b.c.cfg, nil, b.send) }

func (b *HTTPBatch) send(ctx context.Context) error {
	if len(b.items) == 0 {
		return nil
	}
	c := b.c
	n := uint64(len(b.calls))
	first := c.nextID.Add(n) - n + 1
	body, err := b.encode(nil, first, c.cfg.Codec)
	if err != nil {
		return err
	}
	resp, err := c.post(ctx, body)
	if err != nil {
		return err
	}
	if len(b.calls) == 0 {
		return nil
	}
	if resp == nil {
		return errors.New("wsrpc: the server answered a batch of calls with no content")
	}
	i := skipSpace(resp, 0)
	if i < len(resp) && resp[i] == '{' {
		// One error for the whole batch (too large, unparsable).
		var env envelope
		if !parseResponse(resp, &env) || env.err == nil {
			return errors.New("wsrpc: malformed batch response")
		}
		return decodeRemoteError(env.err)
	}
	if i == len(resp) || resp[i] != '[' {
		return errors.New("wsrpc: malformed batch response")
	}
	// The whole array is parsed, and must be valid, before any answer is
	// taken from it.
	var answers []envelope
	if _, err := parseBatch(resp, i, math.MaxInt, func() *envelope {
		answers = append(answers, envelope{})
		return &answers[len(answers)-1]
	}, func(*envelope) {}); err != nil {
		return errors.New("wsrpc: malformed batch response")
	}
	for _, env := range answers {
		k, ok := parseUintID(env.id)
		if env.invalid != "" || env.isRequest() || !ok || k < first || k >= first+n {
			continue
		}
		bc := b.calls[k-first]
		if bc.done {
			continue // a duplicate answer: the first one counts
		}
		bc.done = true
		if env.err != nil {
			bc.err = decodeRemoteError(env.err)
		} else if bc.result != nil {
			if err := decodeValue(env.result, bc.result, c.cfg.Codec); err != nil {
				bc.err = fmt.Errorf("wsrpc: decoding result of %s: %w", bc.Method, err)
			}
		}
	}
	for _, bc := range b.calls {
		if !bc.done {
			bc.done = true
			bc.err = fmt.Errorf("wsrpc: the batch response has no answer to this call of %s", bc.Method)
		}
	}
	return nil
}
