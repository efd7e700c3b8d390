package weerpc

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
)

// This file holds the checks a request passes before anything else: the
// Host and Origin rules of wsrpc.Server (server.go's checkHostOrigin),
// with the same options and decisions. TestHostOriginAsCore holds the two
// to the same answers.

var (
	errForbiddenHost   = errors.New("host not allowed")
	errForbiddenOrigin = errors.New("origin not allowed")
)

// checkHostOrigin refuses a request whose Host is not allowed (AllowedHosts,
// or a loopback name on a loopback listener) or that comes from a browser
// page of another origin (OriginPatterns; "null" always).
func checkHostOrigin(r *http.Request, o *Options) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if len(o.AllowedHosts) > 0 {
		if !slices.ContainsFunc(o.AllowedHosts, func(h string) bool { return strings.EqualFold(h, host) }) {
			return errForbiddenHost
		}
	} else if onLoopback(r) && !isLoopbackName(host) {
		return errForbiddenHost
	}
	if !o.InsecureAllowAnyOrigin {
		if origin := r.Header.Get("Origin"); origin == "null" || origin != "" && !originAllowed(r, origin, o.OriginPatterns) {
			return errForbiddenOrigin
		}
	}
	return nil
}

// originAllowed applies coder/websocket's origin rule: the request's own
// host, or a match of one of patterns (path.Match, case-insensitive, on
// the origin's host, or on scheme://host for a pattern with a scheme).
func originAllowed(r *http.Request, origin string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, pat := range patterns {
		target := u.Host
		if strings.Contains(pat, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(pat), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// onLoopback reports whether r arrived on a loopback listener.
func onLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

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
	if err == errForbiddenOrigin {
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
