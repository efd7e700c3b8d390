package weerpc

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/wsrpc/wsrpc"
)

// This file logs the refusals of the Host and Origin checks
// (wsrpc.CheckHostOrigin, the same as wsrpc.Server's), once per host or
// origin, with the option that would allow it.

// warned remembers the hosts and origins whose refusal was logged, so that
// each is logged once (at most maxWarned of them: they come from the
// network).
type warned struct {
	mu  sync.Mutex
	set map[string]struct{}
}

const maxWarned = 100

// warn logs the refusal err of r at Warn, with the option that would allow
// it, unless it was logged before.
func (wd *warned) warn(log *slog.Logger, r *http.Request, err error) {
	what, value, hint := "host", r.Host, "AllowedHosts lists the Host values to accept; behind a reverse proxy, the public host names it forwards (a loopback listener accepts only loopback names by default)"
	if he, _ := err.(*wsrpc.HTTPError); he != nil && strings.HasPrefix(he.Message, "origin") {
		what, value, hint = "origin", r.Header.Get("Origin"), "OriginPatterns lists the browser origins to accept besides the request's own host, such as a dev server's \"localhost:3000\""
	}
	wd.mu.Lock()
	if wd.set == nil {
		wd.set = map[string]struct{}{}
	}
	_, seen := wd.set[what+" "+value]
	full := len(wd.set) >= maxWarned
	if !seen && !full {
		wd.set[what+" "+value] = struct{}{}
	}
	wd.mu.Unlock()
	if !seen && !full {
		log.Warn("weerpc: refused a request: "+what+" not allowed", what, value, "remote", r.RemoteAddr, "allow it with", hint)
	}
}
