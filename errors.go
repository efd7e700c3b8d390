package wsrpc

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Error codes defined by the JSON-RPC 2.0 specification, and the codes wsrpc
// itself uses from the range the specification reserves for implementations
// (-32000 to -32099).
const (
	CodeParseError     = -32700 // the message is not valid JSON
	CodeInvalidRequest = -32600 // valid JSON, but not a valid request object
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	// CodeServerBusy answers a request that arrived while every handler slot
	// and every queue place of the peer was taken. Retrying later is safe.
	CodeServerBusy = -32000
	// CodeResponseTooLarge answers a batch item whose response did not fit in
	// the batch response size limit.
	CodeResponseTooLarge = -32001
	// CodeUnauthorized answers a call that a Guard refused.
	CodeUnauthorized = -32002
	// CodeRequestCancelled answers a request that the caller cancelled
	// with the cancel notification (CancelMethod) before its handler
	// finished. The code is LSP's.
	CodeRequestCancelled = -32800
)

// Error is a JSON-RPC error object. A handler that returns an *Error sends it
// to the caller as it is; the caller receives it back as an *Error with the
// same code, message and data.
//
// Errors compare by code with errors.Is, so
//
//	errors.Is(err, wsrpc.ErrMethodNotFound)
//
// holds for any *Error whose Code is CodeMethodNotFound.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// NewError returns an *Error with data marshalled to JSON. A nil data sends
// no data member. If data cannot be marshalled, it is left out.
func NewError(code int64, message string, data any) *Error {
	e := &Error{Code: code, Message: message}
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			e.Data = b
		}
	}
	return e
}

func (e *Error) Error() string {
	if e == nil {
		return "jsonrpc error: nil *wsrpc.Error"
	}
	s := "jsonrpc error " + strconv.FormatInt(e.Code, 10) + ": " + e.Message
	if len(e.Data) > 0 {
		s += " (data: " + string(e.Data) + ")"
	}
	return s
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e != nil && t != nil && t.Code == e.Code
}

// Sentinels for errors.Is. They match any *Error with their code, whatever
// its message or data.
var (
	ErrParse            = &Error{Code: CodeParseError, Message: "parse error"}
	ErrInvalidRequest   = &Error{Code: CodeInvalidRequest, Message: "invalid request"}
	ErrMethodNotFound   = &Error{Code: CodeMethodNotFound, Message: "method not found"}
	ErrInvalidParams    = &Error{Code: CodeInvalidParams, Message: "invalid params"}
	ErrInternal         = &Error{Code: CodeInternalError, Message: "internal error"}
	ErrServerBusy       = &Error{Code: CodeServerBusy, Message: "server busy"}
	ErrResponseTooLarge = &Error{Code: CodeResponseTooLarge, Message: "response too large"}
	ErrUnauthorized     = &Error{Code: CodeUnauthorized, Message: "unauthorized"}
	ErrRequestCancelled = &Error{Code: CodeRequestCancelled, Message: "request cancelled"}
)

// ErrClosed is returned by calls on a peer that has closed, and by calls that
// were pending when it closed. The error returned wraps both ErrClosed and
// the cause (a *websocket.CloseError, a network error, ...), so errors.Is
// and errors.As see each.
var ErrClosed = errors.New("wsrpc: peer closed")

// ErrNoPeer is returned by calls on a nil *Peer: PeerFromContext returns nil
// for a request that came over HTTP, where there is no connection to call
// back on.
var ErrNoPeer = errors.New("wsrpc: no peer to call back: the request did not come over a WebSocket connection")

// ErrMessageTooBig is returned when a message would exceed the size limit,
// and is the cause of a peer closed because the other side sent one.
var ErrMessageTooBig = errors.New("wsrpc: message too big")

// closedError wraps ErrClosed together with the reason the peer ended.
type closedError struct{ cause error }

func (e *closedError) Error() string {
	if e.cause == nil {
		return ErrClosed.Error()
	}
	return ErrClosed.Error() + ": " + e.cause.Error()
}

func (e *closedError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrClosed}
	}
	return []error{ErrClosed, e.cause}
}

// errorf builds a fresh *Error for a failure the peer detected itself.
func errorf(code int64, message string) *Error {
	return &Error{Code: code, Message: message}
}

// toWireError turns what a handler returned into the error object sent on the
// wire: *Error as is, anything else the generic internal error, so that no Go
// detail (type names, paths, panic values) leaves the process.
func toWireError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e
	}
	return ErrInternal
}
