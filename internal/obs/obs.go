// Package obs is what the Observers of this repository (the otel and prom
// modules) share: labels of few values for outcomes, so that what the
// network sends cannot grow a metric's series without bound.
package obs

import (
	"context"
	"errors"
	"sync"

	"github.com/wsrpc/wsrpc"
)

// Other is the label of what is not told apart: a method the table does
// not have, an error code past the first MaxCodes.
const Other = "_OTHER"

// ErrorKind names an error that is not a JSON-RPC error, if it is one of
// the few wsrpc and contexts return: "canceled", "deadline_exceeded",
// "closed", "message_too_big".
func ErrorKind(err error) (string, bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled", true
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded", true
	case errors.Is(err, wsrpc.ErrClosed):
		return "closed", true
	case errors.Is(err, wsrpc.ErrMessageTooBig):
		return "message_too_big", true
	}
	return "", false
}

// MaxCodes bounds the distinct error codes a CodeSet labels.
const MaxCodes = 64

// CodeSet keeps the error codes seen, up to MaxCodes: the other side
// chooses them.
type CodeSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// Label returns code if it is among the first MaxCodes seen, and Other
// past them.
func (c *CodeSet) Label(code string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[code]; ok {
		return code
	}
	if len(c.seen) >= MaxCodes {
		return Other
	}
	if c.seen == nil {
		c.seen = make(map[string]struct{})
	}
	c.seen[code] = struct{}{}
	return code
}
