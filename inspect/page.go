package inspect

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file serves the page: page/inspector.html, its style and script
// inline, with the options filled in.

//go:embed page/inspector.html
var pageFS embed.FS

// page is the page as served, and its Content-Security-Policy.
type page struct {
	body []byte
	csp  string
}

// newPage fills the template in: the title, and the options the script
// reads from a JSON data block (json.Marshal escapes <, > and &, so no
// value can end the block). The CSP allows the inline style and module
// by their hashes, wsrpc.js from script, and connections to route.
func newPage(script, route, title string) page {
	tmpl, err := pageFS.ReadFile("page/inspector.html")
	if err != nil {
		panic(err)
	}
	scriptSrc := source(script, "Script", false)
	connectSrc := source(route, "Route", true)
	cfg, err := json.Marshal(map[string]string{"script": script, "route": route, "title": title})
	if err != nil {
		panic(err)
	}
	body := bytes.Replace(tmpl, []byte("{{title}}"), []byte(html.EscapeString(title)), -1)
	body = bytes.Replace(body, []byte("{{config}}"), cfg, 1)
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hashOf(tmpl, `<script type="module">`, "</script>") + " " + scriptSrc,
		"style-src " + hashOf(tmpl, "<style>", "</style>"),
		"connect-src " + connectSrc,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return page{body: body, csp: csp}
}

// source returns the CSP sources that allow u: 'self' for a URL of the
// page's host, else its origin, and for a connection (wsrpc.js asks a
// refused WebSocket URL for its status over HTTP) its origin in the other
// scheme too.
func source(u, option string, connection bool) string {
	p, err := url.Parse(u)
	if err != nil {
		panic("inspect: Options." + option + " is not a URL: " + err.Error())
	}
	if p.Host == "" {
		return "'self'"
	}
	other := map[string]string{"ws": "http", "wss": "https", "http": "ws", "https": "wss"}[p.Scheme]
	if other == "" || !connection && (p.Scheme == "ws" || p.Scheme == "wss") {
		panic("inspect: Options." + option + " is neither a path nor a URL of a scheme it may have: " + u)
	}
	if !connection {
		return p.Scheme + "://" + p.Host
	}
	return p.Scheme + "://" + p.Host + " " + other + "://" + p.Host
}

// hashOf returns the CSP hash source of what lies between the first open
// and the close after it.
func hashOf(b []byte, open, close string) string {
	i := bytes.Index(b, []byte(open))
	if i < 0 {
		panic("inspect: the page has no " + open)
	}
	b = b[i+len(open):]
	j := bytes.Index(b, []byte(close))
	if j < 0 {
		panic("inspect: the page has no " + close)
	}
	sum := sha256.Sum256(b[:j])
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Handler returns an http.Handler that serves the page, at whatever path
// the application mounts it on (mux.Handle("/debug/wsrpc", in.Handler())).
// The page imports wsrpc.js from Options.Script, connects to
// Options.Route, calls inspect.watch and shows each update. It holds no
// data: what it shows comes through the methods, which the guard given to
// Register protects. The page's cookies go with its WebSocket handshake,
// for ServerOptions.Authenticate.
//
// GET and HEAD only; the page is sent with a Content-Security-Policy that
// allows nothing but itself, wsrpc.js and the connection.
func (in *Inspector) Handler() http.Handler {
	return http.HandlerFunc(in.page.serve)
}

func (p page) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "inspector.html", time.Time{}, bytes.NewReader(p.body))
}
