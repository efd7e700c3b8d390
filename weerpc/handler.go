package weerpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wsrpc/wsrpc"
)

// This file is the Handler: the checks before a call, reading the body,
// parsing the weeRPC object, running the function through Methods.Invoke,
// and writing the answer.

// Options configure a Handler. A nil *Options, and every zero field, mean
// the default.
type Options struct {
	// Methods is the table served: its methods, Fallback, middleware and
	// guards. Nil serves an empty table (every call is answered "method
	// not found").
	Methods *wsrpc.Methods
	// MaxBodySize bounds the body of a request, in bytes; a larger one is
	// refused with 413. Default wsrpc.DefaultMaxMessageSize (4 MiB).
	MaxBodySize int64
	// Logger receives what does not go to the caller: refused hosts and
	// origins (once per value), results that cannot be encoded, internal
	// errors. Nil logs nothing. The details of a handler's own errors and
	// panics are the table's to log (wsrpc.Logging, wsrpc.Recover).
	Logger *slog.Logger

	// Authenticate runs on each request after the Host and Origin checks
	// and before the body is read. The identity it returns is what
	// wsrpc.IdentityFromContext returns in guards and handlers. An error
	// refuses the call: ok false, "unauthorized", with status 200, or the
	// status (200 to 599) and message of a *wsrpc.HTTPError it returns.
	// Nil: no identity.
	Authenticate func(r *http.Request) (identity any, err error)
	// Session returns the session of r (see Session), or nil when r has
	// none. It runs at most once per request, when a guard or handler first
	// asks for the session (SessionFromContext, RequireSession); a call
	// nobody asks about costs no lookup. Nil: no request has a session,
	// and RequireSession refuses every call.
	Session func(r *http.Request) Session

	// AllowedHosts, OriginPatterns and InsecureAllowAnyOrigin are as in
	// wsrpc.ServerOptions: the Host header must be in AllowedHosts (when
	// empty, a loopback listener accepts loopback names only), and a
	// browser's cross-origin request must match OriginPatterns, unless
	// InsecureAllowAnyOrigin (dangerous: with sessions in cookies, any
	// site could call your functions as your users). Refused with 403.
	AllowedHosts           []string
	OriginPatterns         []string
	InsecureAllowAnyOrigin bool
}

// Handler is an http.Handler that serves a method table over weeRPC: see
// the package documentation for the wire format. Mount it at any path. It
// is safe for concurrent use.
type Handler struct {
	opts    Options
	methods *wsrpc.Methods
	warned  warned
}

// NewHandler returns a Handler configured by opts (nil for defaults). The
// options are copied: changing them afterwards has no effect.
func NewHandler(opts *Options) *Handler {
	h := &Handler{}
	if opts != nil {
		h.opts = *opts
	}
	o := &h.opts
	o.AllowedHosts = slices.Clone(o.AllowedHosts)
	o.OriginPatterns = slices.Clone(o.OriginPatterns)
	if o.MaxBodySize <= 0 {
		o.MaxBodySize = wsrpc.DefaultMaxMessageSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h.methods = o.Methods
	if h.methods == nil {
		h.methods = wsrpc.NewMethods()
	}
	return h
}

var nullID = json.RawMessage("null")

// version is a spelling of the protocol's version: its member name and
// the value written back.
type version struct {
	name  string
	value float64
	text  string // the value as written in answers
}

// versions are the spellings accepted, in the order they are looked for.
var versions = []version{
	{"weerpc", 1.1, "1.1"},
	{"wrpc", 1.0, "1.0"},
	{"frpc", 1.0, "1.0"},
}

// latest answers requests whose version is unknown.
var latest = &versions[0]

const versionHint = `send "weerpc": 1.1 or "wrpc": 1.0`

// ServeHTTP serves one weeRPC call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := &h.opts
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAnswer(w, http.StatusMethodNotAllowed, latest, false, "method "+r.Method+" not allowed: POST a weeRPC call", nil)
		return
	}
	if err := wsrpc.CheckHostOrigin(r, &wsrpc.AcceptOptions{
		AllowedHosts: o.AllowedHosts, OriginPatterns: o.OriginPatterns, InsecureAllowAnyOrigin: o.InsecureAllowAnyOrigin,
	}); err != nil {
		h.warned.warn(o.Logger, r, err)
		writeAnswer(w, http.StatusForbidden, latest, false, err.(*wsrpc.HTTPError).Message, nil)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeAnswer(w, http.StatusOK, latest, false, "request must be JSON (Content-Type: application/json)", nil)
		return
	}
	var identity any
	if o.Authenticate != nil {
		var err error
		if identity, err = o.Authenticate(r); err != nil {
			status, msg := http.StatusOK, "unauthorized"
			var he *wsrpc.HTTPError
			if errors.As(err, &he) && he.Status >= 200 && he.Status <= 599 {
				status, msg = he.Status, he.Message
			}
			writeAnswer(w, status, latest, false, msg, nil)
			return
		}
	}

	body, status, msg := h.readBody(w, r)
	if status != 0 {
		// The rest of the body is not read: close the connection after
		// the answer rather than have net/http read it to discard it.
		w.Header().Set("Connection", "close")
		writeAnswer(w, status, latest, false, msg, nil)
		return
	}
	call, v, msg := parseCall(body)
	if msg != "" {
		writeAnswer(w, http.StatusOK, v, false, msg, nil)
		return
	}

	ctx := wsrpc.WithHTTPRequest(r.Context(), r, identity)
	if o.Session != nil {
		ctx = context.WithValue(ctx, sessionKey{}, newSessionState(o.Session, r))
	}
	// A weeRPC call has no id, but expects an answer: middleware must not
	// take it for a notification.
	res, err := h.methods.Invoke(ctx, &wsrpc.Request{Method: call.function, Params: call.params, ID: nullID}, o.Logger)
	if err != nil {
		var e *wsrpc.Error
		if !errors.As(err, &e) || e == nil {
			e = wsrpc.ErrInternal
		}
		if e.Code == wsrpc.CodeInternalError {
			o.Logger.Error("weerpc: internal error", "function", call.function, "remote", r.RemoteAddr)
		}
		data := e.Data
		if !json.Valid(data) {
			data = nil
		}
		writeAnswer(w, http.StatusOK, v, false, e.Message, data)
		return
	}
	data, err := json.Marshal(res)
	if err != nil {
		o.Logger.Error("weerpc: cannot encode the result", "function", call.function, "err", err)
		writeAnswer(w, http.StatusOK, v, false, wsrpc.ErrInternal.Message, nil)
		return
	}
	writeAnswer(w, http.StatusOK, v, true, "function "+quoteName(call.function)+" succeeded", data)
}

// isJSON reports whether a Content-Type is JSON, as Werkzeug's
// request.is_json decides: application/json or application/…+json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// readBody reads r's body within MaxBodySize. A non-zero status refuses
// the request with msg.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, status int, msg string) {
	limit := h.opts.MaxBodySize
	tooBig := "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, tooBig
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, 0, ""
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, http.StatusRequestEntityTooLarge, tooBig
	}
	h.opts.Logger.Debug("weerpc: reading a request body", "remote", r.RemoteAddr, "err", err)
	return nil, http.StatusBadRequest, "cannot read the request body"
}

// call is a parsed weeRPC call.
type call struct {
	function string
	params   json.RawMessage // nil for none
}

// parseCall parses a request body. It returns the version to answer in
// and, when the body is not a call, the message refusing it.
func parseCall(body []byte) (c call, v *version, msg string) {
	v = latest
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return c, v, "request is empty: send a JSON object"
	}
	// Members are matched by their exact names, as in Python: a map, not
	// a struct, whose fields encoding/json would match in any case.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil || trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return c, v, "request is not valid JSON"
		}
		return c, v, "request must be a JSON object"
	}

	found := false
	for i := range versions {
		raw, ok := obj[versions[i].name]
		if !ok {
			continue
		}
		// The first spelling present decides, and answers in kind.
		v, found = &versions[i], true
		var n float64
		if json.Unmarshal(raw, &n) != nil || n != v.value {
			return c, v, "unsupported " + v.name + " version: " + versionHint
		}
		break
	}
	if !found {
		return c, v, "weeRPC version missing: " + versionHint
	}

	raw, ok := obj["function"]
	if !ok || raw[0] != '"' {
		return c, v, `invalid request: "function" must be a non-empty string`
	}
	if err := json.Unmarshal(raw, &c.function); err != nil || c.function == "" {
		return c, v, `invalid request: "function" must be a non-empty string`
	}

	switch data := obj["data"]; {
	case len(data) == 0 || string(data) == "null":
		// no params
	case data[0] == '[' || data[0] == '{':
		c.params = data
	default:
		// A scalar is the single argument.
		c.params = make(json.RawMessage, 0, len(data)+2)
		c.params = append(append(append(c.params, '['), data...), ']')
	}
	return c, v, ""
}

// quoteName quotes a function name for a message, cut to 64 bytes.
func quoteName(name string) string {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return "'" + name + "'"
}

// writeAnswer writes a weeRPC answer with status: the version member of v,
// ok, message and data (raw JSON; nil is null).
func writeAnswer(w http.ResponseWriter, status int, v *version, ok bool, message string, data json.RawMessage) {
	b := make([]byte, 0, 64+len(message)+len(data))
	b = append(b, '{', '"')
	b = append(b, v.name...)
	b = append(b, `":`...)
	b = append(b, v.text...)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, ok)
	b = append(b, `,"message":`...)
	m, _ := json.Marshal(message) // a string always encodes
	b = append(b, m...)
	b = append(b, `,"data":`...)
	if len(data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, data...)
	}
	b = append(b, '}', '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
