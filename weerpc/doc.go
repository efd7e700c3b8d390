// Package weerpc serves a [wsrpc.Methods] table to clients that speak
// weeRPC, the small JSON-over-POST protocol of the Python libraries
// Flask-RPC and Quart-RPC (and of their JavaScript helper), so that a
// front end written for them can call a Go server unchanged.
//
//	methods := wsrpc.NewMethods() // the table a wsrpc.Server serves too
//	mux.Handle("/weerpc", weerpc.NewHandler(&weerpc.Options{Methods: methods}))
//
// # Wire format
//
// A call is one HTTP POST with Content-Type application/json whose body is
// one JSON object:
//
//	{"weerpc": 1.1, "function": "sum", "data": [1, 2, 3]}
//
// and its answer is one JSON object, in the version the call was made in:
//
//	{"weerpc": 1.1, "ok": true, "message": "function 'sum' succeeded", "data": 6}
//
// The version member names the protocol and its value the version. Three
// spellings are accepted, and answered in kind:
//
//   - "weerpc": 1.1, the current one (Flask-RPC's and Quart-RPC's
//     version_1_1);
//   - "wrpc": 1.0, the same format under its earlier name (their
//     version_1_0, the wRPC protocol description, weeRPCjs' wrpc());
//   - "frpc": 1.0, its first name (the first Flask-RPC and Quart-RPC
//     releases and flask-rpc-js' frpc()).
//
// The value is compared as a number (1, 1.0 and 1e0 are all 1.0); a string
// is not a version. When several version members are sent, "weerpc" wins,
// then "wrpc". A call with none, or with another value, is refused with a
// message naming the versions accepted.
//
// "function" is the method name, looked up in the table (its Fallback
// included). "data" becomes the params: an array is positional arguments,
// an object named ones, null or no "data" at all no params, and any other
// value (a number, a string, a boolean) a single argument, passed as a
// one-element array, so that a method registered with [wsrpc.Register]
// and a scalar params type takes it. Members other than these are ignored.
//
// The answer always has its four members. "ok" says whether the function
// ran and returned without error. "data" is its result, exactly as
// encoding/json writes it: 0, false, "" and [] stay what they are (a nil
// slice or map is null). On success "message" says which function ran. On
// failure "message" says why and "data" is null, or the Data of the
// [*wsrpc.Error] the function or a guard returned.
//
// # Errors
//
// Every failure of a call is answered ok: false with a message, with HTTP
// status 200, since weeRPC clients read the body and not the status:
//
//   - the body is not valid JSON ("request is not valid JSON"), not an
//     object, or its "function" is not a non-empty string;
//   - the Content-Type is not JSON: application/json, or application/…+json
//     (this also keeps out the cross-site "simple" POSTs a browser sends
//     without asking, which carry the user's cookies);
//   - the version is missing or not one of those above;
//   - Options.Authenticate refused the request ("unauthorized", or the
//     status and message of a [*wsrpc.HTTPError] it returned);
//   - the function is not in the table, its params do not fit, a guard
//     refused it, or it returned an error: the message of the
//     [*wsrpc.Error] that [wsrpc.Methods.Invoke] returns ("method not
//     found: …", "invalid params: …", "unauthorized: …", or the handler's
//     own). Any other error, and a panic, is "internal error": no Go
//     detail leaves the process.
//
// The HTTP request itself is refused, still with a weeRPC body (ok: false
// and the message), when it is not a POST (405, with Allow: POST), when its
// Host or Origin is not allowed (403, below), and when its body is larger
// than Options.MaxBodySize (413; the connection is then closed).
//
// # Guards, sessions and hosts
//
// The table's middleware and guards run on every call, as they do over
// WebSocket and the core's own POST route: handlers and guards see the
// POST request with [wsrpc.HTTPRequestFromContext] and the identity
// Options.Authenticate returned with [wsrpc.IdentityFromContext], so
// [wsrpc.RequireIdentity] and [wsrpc.AllowHosts] (remote address) work as
// they do elsewhere.
//
// Flask-RPC and Quart-RPC lock functions down with two checks, each either
// for every function of an endpoint or for some of them:
//
//   - session_auth: a key of Flask's session must hold one of a list of
//     values. Go has no standard session, so Options.Session says where
//     a request's session is, [SessionFromContext] reads it in a handler,
//     and [RequireSession] is the guard: table.Guard(RequireSession(...))
//     for every function, wsrpc.Guarded(RequireSession(...)) on one.
//   - host_auth: the request's Host header (Flask's request.host, the
//     port included) must be one of a list. [RequireHost] is that guard.
//     The Host header is the client's to choose: it tells virtual hosts
//     apart, it does not say who calls. [wsrpc.AllowHosts] checks the
//     remote address instead.
//
// A refused call is answered ok: false, "unauthorized: …", as Flask-RPC
// answers ok: false, "Unauthorized.".
//
// Before any of that, the Handler applies the checks a [wsrpc.Server]
// applies to its upgrades and POSTs, with the same options and defaults:
// the Host header must be in AllowedHosts (when it is empty, a server
// listening on a loopback address accepts loopback host names only, which
// defeats DNS rebinding), and a browser's cross-origin request must match
// OriginPatterns ("Origin: null" never does) unless InsecureAllowAnyOrigin
// is set. Both answer 403.
//
// # Limits
//
// A body is read up to Options.MaxBodySize (default
// [wsrpc.DefaultMaxMessageSize], 4 MiB). The Handler has no other limit of
// its own: how many requests run at once and how long a slow body may take
// are the http.Server's business (ReadTimeout, ReadHeaderTimeout).
//
// # Sources
//
// What the format is was read from CheeseCake87's repositories on GitHub;
// none of their code or prose is reproduced here.
//
//   - flask-rpc README.md (commit 9aafbcb): the 1.1 request and response
//     ("weerpc": 1.1, "function", "data"; "ok", "message", "data"),
//     session_auth and host_auth, global and per function (the
//     session_auth__ and host_auth__ arguments of functions()).
//   - flask-rpc src/flask_rpc/version_1_1/rpc.py, response.py and
//     flask_rpc/version_1_1/model.py, request.py: the order of the checks
//     (session, host, JSON, version, request shape, function), the answer
//     to each refusal (HTTP 200, ok false, a message, data null), the
//     version compared as a number, "function" a string and "data" any
//     value, and the route registered for POST only (so a GET gets
//     Flask's 405). Also that host_auth compares request.host, the Host
//     header with its port, and that a function returning a falsy value
//     was answered as a failure and a falsy data as null: this package
//     does neither, since a Go result is a value, not a truth.
//   - flask-rpc flask_rpc/version_1_0/auth_session_key.py: a session key
//     passes when it is present and its value is one of those listed.
//   - flask-rpc src/flask_rpc/version_1_0/rpc.py, the wRPC README
//     (CheeseCake87/wRPC), the quart-rpc README (commit 9fe42b2) and
//     weeRPCjs index.js: version 1.0 as "wrpc": 1.0, and "message"
//     optional.
//   - flask-rpc README.md (commit 156cd11), flask_rpc/version_1_0.py, and
//     the quart-rpc README (commit 309fe06): the first spelling, "frpc": 1.0.
//   - quart-rpc quart_rpc/version_1_1/rpc.py and response.py: Quart-RPC
//     speaks the same format with the same checks and answers, and
//     answers 1.1 calls with "weerpc": 1.1 (Flask-RPC's 1.1 response.py
//     writes 1.0 there; this package writes 1.1).
//
// Werkzeug's request.is_json (application/json or application/*+json) is
// the Content-Type rule followed here. Malformed JSON is where this package
// departs from Flask, which answers 400 with an HTML page: a weeRPC client
// reads JSON, so it gets an ok: false answer instead.
package weerpc
