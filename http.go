package wsrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
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
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
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

	rc := http.NewResponseController(w)
	// MessageTimeout bounds the body as it bounds a WebSocket message: a
	// client trickling its body cannot hold a handler's memory for ever.
	// Not every ResponseWriter supports deadlines; then the http.Server's
	// own timeouts are all there is.
	rc.SetReadDeadline(time.Now().Add(cfg.MessageTimeout))
	buf := getBuf()
	defer putBuf(buf)

	buf.b, err = readAll(buf.b[:0], http.MaxBytesReader(w, r.Body, cfg.MaxMessageSize))
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body exceeds "+strconv.FormatInt(cfg.MaxMessageSize, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		cfg.log.Debug("wsrpc: reading a POST body", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		return
	}

	ctx := context.WithValue(r.Context(), httpCallKey{}, &httpCall{r: r, identity: identity})
	out := answerHTTP(ctx, cfg, buf.b)
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// answerHTTP serves the message b and returns the response to send, or nil
// when nothing is to be answered.
func answerHTTP(ctx context.Context, cfg *config, b []byte) []byte {
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == '[' {
		return answerHTTPBatch(ctx, cfg, b, i)
	}
	if i == len(b) || b[i] != '{' {
		if validJSON(b) {
			return appendErrorResponse(nil, nil, errorf(CodeInvalidRequest, "invalid request: not an object or array"))
		}
		return appendErrorResponse(nil, nil, errorf(CodeParseError, "parse error"))
	}
	var env envelope
	end, err := parseObject(b, i, &env)
	if err == nil && skipSpace(b, end) != len(b) {
		err = errSyntax
	}
	switch {
	case err != nil:
		return appendErrorResponse(nil, nil, errorf(CodeParseError, "parse error"))
	case env.invalid != "":
		return appendErrorResponse(nil, readableID(&env), errorf(CodeInvalidRequest, "invalid request: "+env.invalid))
	case !env.isRequest():
		return appendErrorResponse(nil, readableID(&env), errNoCallOverHTTP)
	}
	var req Request
	res, herr := dispatch(ctx, cfg, nil, &env, &req)
	if env.id == nil {
		return nil
	}
	return appendResponse(nil, &req, res, herr, int(cfg.MaxMessageSize), cfg)
}

// errNoCallOverHTTP answers a response object posted to the server: over
// HTTP the server has made no calls for it to answer.
var errNoCallOverHTTP = errorf(CodeInvalidRequest, "invalid request: a response object, but no call is pending over HTTP")

// httpItem is one item of a batch posted over HTTP.
type httpItem struct {
	env   envelope
	req   Request
	res   any
	err   error
	reply bool // a call, or an item refused before running: answered
}

// answerHTTPBatch serves the batch at b[start:]. Its items run concurrently,
// at most MaxHandlers at once, and the answer lists them in order.
func answerHTTPBatch(ctx context.Context, cfg *config, b []byte, start int) []byte {
	var items []httpItem
	n, err := parseBatch(b, start, cfg.MaxBatch, func(e *envelope) {
		items = append(items, httpItem{env: *e})
	})
	if e := batchError(n, err, cfg.MaxBatch); e != nil {
		return appendErrorResponse(nil, nil, e)
	}
	replies := 0
	for i := range items {
		it := &items[i]
		switch {
		case it.env.invalid != "":
			it.req.ID = readableID(&it.env)
			it.err = errorf(CodeInvalidRequest, "invalid request: "+it.env.invalid)
		case !it.env.isRequest():
			it.req.ID = readableID(&it.env)
			it.err = errNoCallOverHTTP
		}
		if it.reply = it.env.id != nil || it.err != nil; it.reply {
			replies++
		}
	}

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

	if replies == 0 {
		return nil
	}
	out := append(make([]byte, 0, 512), '[')
	for i := range items {
		it := &items[i]
		if !it.reply {
			continue // a notification
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		budget := cfg.MaxBatchResponse - len(out) - 1
		out = appendResponse(out, &it.req, it.res, it.err, budget, cfg)
	}
	return append(out, ']')
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
}

// NewHTTPClient returns a client posting to url (http:// or https://).
// Of opts (nil for defaults) it uses Codec, MaxMessageSize (bounds the
// requests it sends and the responses it accepts), HTTPHeader (sent with
// every request, e.g. Authorization) and HTTPClient (default
// http.DefaultClient).
func NewHTTPClient(url string, opts *Options) *HTTPClient {
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
	msg := string(bytes.TrimSpace(out))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return nil, fmt.Errorf("wsrpc: POST %s: HTTP %d: %w", c.url, resp.StatusCode, &HTTPError{Status: resp.StatusCode, Message: msg})
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
func (c *HTTPClient) NewBatch() *HTTPBatch { return &HTTPBatch{c: c} }

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
func (b *HTTPBatch) Len() int { return len(b.items) }

// Send posts the batch, once, and returns when every call has its outcome
// or ctx ends. An empty batch sends nothing.
func (b *HTTPBatch) Send(ctx context.Context) error { return b.sendOnce(ctx, b.send) }

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
	if _, err := parseBatch(resp, i, math.MaxInt, func(e *envelope) { answers = append(answers, *e) }); err != nil {
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
