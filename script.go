package wsrpc

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// script is the browser client, js/wsrpc.js: a dependency-free ES module.
//
//go:embed js/wsrpc.js
var script []byte

// scriptETag is the strong entity tag of script: a hash of its bytes.
var scriptETag = func() string {
	sum := sha256.Sum256(script)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// ScriptHandler returns an http.Handler that serves the browser client of
// this package (js/wsrpc.js in the module), an ES module with no
// dependencies, to import from a page:
//
//	mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
//	mux.Handle("/rpc", wsrpc.NewServer(&wsrpc.ServerOptions{Methods: methods}))
//
// and in the page:
//
//	<script type="module">
//	import { connect } from "/wsrpc.js";
//	const client = connect("/rpc");
//	console.log(await client.call("math.sum", [1, 2]));
//	</script>
//
// The client calls and is called, batches, reconnects with backoff, and
// has a fetch helper for the Server's POST route; its JSDoc comments are
// its manual. Browsers cannot set headers on a WebSocket handshake, so
// ServerOptions.Authenticate reads a session cookie, or the client's token
// option, sent as the "token" query parameter.
//
// The script is served with Content-Type text/javascript; charset=utf-8, a
// strong ETag (its hash, so that a new release of the package changes it)
// and Cache-Control: no-cache: browsers keep it and revalidate it with
// If-None-Match, answered 304 Not Modified while unchanged. GET and HEAD
// only; other methods get 405.
func ScriptHandler() http.Handler {
	return http.HandlerFunc(serveScript)
}

func serveScript(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("ETag", scriptETag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match (304), HEAD and ranges.
	http.ServeContent(w, r, "wsrpc.js", time.Time{}, bytes.NewReader(script))
}
