package wsrpc

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"
)

// This file holds the ready-made middleware. Middleware wraps the handler
// of every method of a table (Methods.Use) or of one method (the mw of
// Handle and Register), over WebSocket and HTTP POST alike, and for each
// item of a batch.

// Recover returns middleware that turns a panic in the handlers it wraps
// into CodeInternalError, and any error that is not an *Error into the same,
// logging the detail (panic value and stack, or the error) to logger (nil:
// slog.Default()). Nothing of it goes on the wire.
//
// Every peer and the HTTP path already run all of a method's middleware and
// handler under this same recovery, logging to the peer's Logger, so Recover
// is only needed to choose where the mapping happens: middleware added
// before it (outer) sees what goes on the wire, the code a panic turned
// into included; middleware added after it (inner) sees the handler's own
// errors and panics.
func Recover(logger *slog.Logger) Middleware {
	if logger == nil {
		logger = slog.Default()
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			return recovered(ctx, next, req, logger)
		}
	}
}

// recovered runs h, mapping what must not go on the wire: a panic, an
// error that is not an *Error, or a nil *Error returned as a non-nil error,
// becomes ErrInternal and its detail goes to log only. It is the one
// implementation of that mapping: Recover uses it, and so does every
// dispatch.
func recovered(ctx context.Context, h Handler, req *Request, log *slog.Logger) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("wsrpc: handler panicked", "method", req.Method, "panic", r, "stack", string(debug.Stack()))
			res, err = nil, ErrInternal
		}
	}()
	res, err = h(ctx, req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// It stopped because it was asked to (its peer closed, its
				// caller cancelled): not a failure worth an error record.
				log.Debug("wsrpc: handler stopped", "method", req.Method, "err", err)
			} else {
				log.Error("wsrpc: handler failed", "method", req.Method, "err", err)
			}
			return nil, ErrInternal
		}
		if e == nil {
			// The nil-interface trap: a nil *Error returned as an error
			// is a non-nil error. It said "failed" without saying how.
			log.Error("wsrpc: handler returned a nil *wsrpc.Error as its error", "method", req.Method)
			return nil, ErrInternal
		}
	}
	return res, err
}

// LogOptions configure LoggingWith. The zero value is what Logging uses.
type LogOptions struct {
	// Level of the record of a call that succeeded or failed with an *Error
	// of its own. Calls that failed with CodeInternalError are logged at
	// slog.LevelError whatever Level says. Default slog.LevelInfo.
	Level slog.Level
	// Params adds the raw params to each record. Off by default: params
	// often carry passwords, tokens and personal data.
	Params bool
}

// Logging returns middleware that logs one record per call and
// notification: the method, whether it was a notification, the remote
// address when known, the duration, and for a failed call the error code
// it is answered with and the local error text. Params are not logged; see
// LoggingWith. A nil logger means slog.Default().
//
// Add Logging first and Recover after it (methods.Use(Logging(l),
// Recover(l))): a panic then reaches Logging as the CodeInternalError it is
// answered with. Without a Recover inside it, a panic passes through
// Logging unrecorded; the peer's own recovery still answers and logs it.
func Logging(logger *slog.Logger) Middleware {
	return LoggingWith(logger, LogOptions{})
}

// LoggingWith is Logging with options.
func LoggingWith(logger *slog.Logger, opts LogOptions) Middleware {
	if logger == nil {
		logger = slog.Default()
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			start := time.Now()
			res, err := next(ctx, req)
			level := opts.Level
			if !logger.Enabled(ctx, level) && !(err != nil && logger.Enabled(ctx, slog.LevelError)) {
				return res, err
			}
			attrs := make([]slog.Attr, 0, 7)
			attrs = append(attrs,
				slog.String("method", req.Method),
				slog.Duration("duration", time.Since(start)))
			if req.IsNotification() {
				attrs = append(attrs, slog.Bool("notification", true))
			}
			if r := HTTPRequestFromContext(ctx); r != nil {
				attrs = append(attrs, slog.String("remote", r.RemoteAddr))
			}
			if opts.Params && req.Params != nil {
				attrs = append(attrs, slog.String("params", string(req.Params)))
			}
			if err != nil {
				code := toWireError(err).Code
				if code == CodeInternalError {
					level = slog.LevelError
				}
				attrs = append(attrs, slog.Int64("code", code), slog.String("err", err.Error()))
			}
			logger.LogAttrs(ctx, level, "wsrpc: served", attrs...)
			return res, err
		}
	}
}
