package wsrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// This file is what WebSocket peers and the HTTP POST path share between a
// message arriving and its answer leaving: parsing a message into a single
// object or batch items (parseMessage), running a handler (dispatch), and
// building a response (appendResponse) or a batch answer
// (appendBatchAnswer). Each transport decides only when and where the
// handlers run.

// msgKind is what parseMessage found.
type msgKind uint8

const (
	msgSingle  msgKind = iota // one object, in env
	msgBatch                  // a batch, its items in sb
	msgRefused                // nothing to serve: answer with the refusal
	msgNothing                // a batch of answers only, all passed on
)

// parseMessage parses the message b. A single object is parsed into env,
// whatever it is (the caller looks at env.invalid and env.isRequest). A
// batch's items are appended to sb.items, in order; items that are answers
// to our own calls go, all together, to onAnswers (and are dropped) when
// onAnswers is not nil, and are otherwise kept, refused, as answers to no
// call. A message that cannot be served at all is refused with the error
// to send.
func parseMessage(b []byte, maxBatch int, env *envelope, sb *serverBatch, onAnswers func([]envelope, []takenID)) (msgKind, *Error) {
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == '[' {
		// Items are parsed in place, into the batch: no copy of each.
		n, err := parseBatch(b, i, maxBatch, sb.slot, func(e *envelope) {
			if e.invalid == "" && !e.isRequest() && onAnswers != nil {
				sb.answers = append(sb.answers, *e)
				sb.drop()
				return
			}
			sb.took()
		})
		if len(sb.answers) > 0 {
			sb.taken = append(sb.taken[:0], make([]takenID, len(sb.answers))...)
			onAnswers(sb.answers, sb.taken)
		}
		if e := batchError(n, err, maxBatch); e != nil {
			return msgRefused, e
		}
		if len(sb.items) == 0 {
			return msgNothing, nil
		}
		return msgBatch, nil
	}
	if i == len(b) || b[i] != '{' {
		if validJSON(b) {
			return msgRefused, errNotObject
		}
		return msgRefused, errParse
	}
	end, err := parseObject(b, i, env)
	if err != nil || skipSpace(b, end) != len(b) {
		return msgRefused, errParse
	}
	return msgSingle, nil
}

var (
	errParse     = errorf(CodeParseError, "parse error")
	errNotObject = errorf(CodeInvalidRequest, "invalid request: not an object or array")
	// errNoCall answers an answer posted over HTTP, where the server has
	// made no calls for it to answer.
	errNoCall = errorf(CodeInvalidRequest, "invalid request: a response object, but no call is pending over HTTP")
)

// invalidError is the error answering an object that is not a valid
// request or response.
func invalidError(e *envelope) *Error {
	return errorf(CodeInvalidRequest, "invalid request: "+e.invalid)
}

// readableID returns the id of an invalid message if it is one the
// specification allows, so the error can echo it; else nil (sent as null).
func readableID(e *envelope) []byte {
	if validID(e.id) {
		return e.id
	}
	return nil
}

// dispatch finds and runs the handler for env in cfg.Methods, filling req.
// p is the peer the request came on, nil for HTTP POST.
func dispatch(ctx context.Context, cfg *config, p *Peer, env *envelope, req *Request) (any, error) {
	*req = Request{Params: env.params, ID: env.id, peer: p, codec: cfg.Codec, scanned: env.params}
	me := cfg.Methods.lookup(env.method[1 : len(env.method)-1])
	if me == nil && env.methodEscaped {
		me = cfg.Methods.lookup([]byte(env.methodName()))
	}
	if me == nil {
		req.Method = env.methodName()
		if me = cfg.Methods.fallbackMethod(); me == nil {
			if cfg.Observer != nil {
				cfg.startIn(ctx, p, req, true)
			}
			err := methodNotFound(req.Method)
			if req.ID == nil {
				cfg.endIn(req, err, 0)
			}
			return nil, err
		}
	} else {
		req.Method = me.name
	}
	if cfg.Observer != nil {
		ctx = cfg.startIn(ctx, p, req, me.name == "")
	}
	// Every dispatch runs under the recovery of the Recover middleware,
	// so that a panic or a plain error never reaches the wire even when
	// the table has no middleware.
	res, err := recovered(ctx, me.chain, req, cfg.log)
	if req.obs != nil && req.ID == nil {
		cfg.endIn(req, err, 0) // a notification: no answer to wait for
	}
	return res, err
}

func methodNotFound(name string) *Error {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return errorf(CodeMethodNotFound, "method not found: "+strconv.Quote(name))
}

// responseSize is the size of the response to req with result res when
// res is a string or raw JSON without escapes to add (more when it has
// some), and a small size otherwise.
func responseSize(req *Request, res any) int {
	switch r := res.(type) {
	case json.RawMessage:
		return len(r) + len(req.ID) + 48
	case string:
		return len(r) + len(req.ID) + 50
	}
	return 0
}

// appendResponse appends the response to req. A result that cannot be
// encoded, or that would make the message larger than limit, is replaced
// by an error response.
func appendResponse(b []byte, req *Request, res any, err error, limit int, cfg *config) []byte {
	if req.obs != nil {
		start := len(b)
		b, err = appendAnswer(b, req, res, err, limit, cfg)
		cfg.endIn(req, err, len(b)-start)
		return b
	}
	b, _ = appendAnswer(b, req, res, err, limit, cfg)
	return b
}

// appendAnswer is appendResponse, which it returns with the error it
// sent, if any.
func appendAnswer(b []byte, req *Request, res any, err error, limit int, cfg *config) ([]byte, error) {
	start := len(b)
	if err == nil {
		// A large result grows the buffer once, not by doubling from 512
		// bytes, which for a 4 MiB answer allocated as much again in
		// garbage.
		b = growBuf(b, responseSize(req, res))
		b = append(b, jsonrpcPrefix+`,"id":`...)
		b = append(b, req.ID...)
		b = append(b, `,"result":`...)
		var encErr error
		if t := req.trusted; t != nil && sameBytes(res, t) {
			b = append(b, t...)
		} else {
			b, encErr = appendResultValue(b, res, cfg.Codec)
		}
		if encErr == nil {
			b = append(b, '}')
			if len(b)-start <= limit {
				return b, nil
			}
			err = errorf(CodeResponseTooLarge, "response too large")
		} else {
			cfg.log.Error("wsrpc: cannot encode result", "method", req.Method, "err", encErr)
			err = ErrInternal
		}
		b = b[:start]
	}
	we := toWireError(err)
	b = appendErrorResponse(b, req.ID, we)
	if len(b)-start > limit {
		// An error too large to send (a handler's big data): the caller
		// still gets an answer to its id, within the limit.
		we = ErrResponseTooLarge
		b = appendErrorResponse(b[:start], req.ID, we)
	}
	return b, we
}

// appendBatchAnswer appends the array answering the items that get an
// answer, in item order, within limit bytes: past it, an item's result is
// replaced by a CodeResponseTooLarge error with its own id.
func appendBatchAnswer(b []byte, items []serverItem, limit int, cfg *config) []byte {
	start := len(b)
	// reserve keeps room for the items still to come to get at least a
	// CodeResponseTooLarge error each, so that the array stays within the
	// limit whatever the items before them returned.
	reserve := 0
	for i := range items {
		if items[i].reply {
			reserve += tooLargeSize(items[i].req.ID) + 1
		}
	}
	b = append(b, '[')
	for i := range items {
		it := &items[i]
		if !it.reply {
			continue // a notification
		}
		reserve -= tooLargeSize(it.req.ID) + 1
		if len(b) > start+1 {
			b = append(b, ',')
		}
		budget := limit - (len(b) - start) - 1 - reserve
		b = appendResponse(b, &it.req, it.res, it.err, budget, cfg)
	}
	return append(b, ']')
}

// tooLargeSize is the size of the CodeResponseTooLarge error response to
// id, the least an answer to id can take.
func tooLargeSize(id []byte) int {
	if id == nil {
		id = []byte(nullID)
	}
	return len(jsonrpcPrefix+`,"id":,"error":{"code":-32001,"message":"response too large"}}`) + len(id)
}

// appendResultValue is appendValue for a handler's result: a panic in the
// result's encoding (a MarshalJSON method, a Codec) becomes an error, as a
// panic in the handler itself does, instead of crashing the process.
func appendResultValue(b []byte, v any, c Codec) (out []byte, err error) {
	if c == nil {
		switch v.(type) {
		case int, int64, uint64, bool, nil:
			return appendValue(b, v, c) // cannot panic: no deferred recover
		}
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = b, fmt.Errorf("wsrpc: encoding the result panicked: %v", r)
		}
	}()
	return appendValue(b, v, c)
}

// sameBytes reports whether v is a json.RawMessage that is t itself: a
// params copy handed back unchanged needs no second validation.
func sameBytes(v any, t []byte) bool {
	r, ok := v.(json.RawMessage)
	return ok && sameSlice(r, t)
}

// sameSlice reports whether a and b are the same non-empty slice of the
// same array.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}
