// Command wsrpc speaks JSON-RPC 2.0 over WebSocket (and HTTP POST) from the
// shell: it calls and notifies a server, sends batches, and listens for what
// the server sends, answering its calls with fixed replies or a command.
//
// Run "wsrpc -h" for the subcommands, their flags and examples.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/wsrpc/wsrpc"
)

// Exit statuses.
const (
	exitOK      = 0 // success
	exitRPC     = 1 // the server answered with a JSON-RPC error
	exitUsage   = 2 // bad command line or input
	exitConnect = 3 // connection failure, HTTP refusal, timeout
)

// usageText is the help of the whole command (wsrpc -h).
const usageText = `wsrpc - JSON-RPC 2.0 over WebSocket (and HTTP POST) from the shell

Usage:
  wsrpc call   [flags] URL METHOD [PARAMS | @FILE | -]
  wsrpc notify [flags] URL METHOD [PARAMS | @FILE | -]
  wsrpc batch  [flags] URL            < calls, one per line
  wsrpc listen [flags] URL
  wsrpc discover [flags] URL
  wsrpc SUBCOMMAND -h                 flags of one subcommand

URL is ws:// or wss:// (WebSocket), or http:// or https:// (one HTTP POST per
call, notification or batch; not for listen). PARAMS is a JSON array
(positional) or object (named); @FILE reads it from a file, - from stdin.
Flags may come before or after the arguments.

call     Calls METHOD and prints its result as indented JSON on stdout
         (-i: the result exactly as the server sent it, not indented).
         A JSON-RPC error prints its code, message and data on stderr and
         exits 1.
notify   Sends METHOD as a notification. Over WebSocket it returns once the
         message is written, and closes the connection: a server may still
         drop a notification it has not started handling when the
         connection closes (a wsrpc Server can). Over HTTP it returns once
         the server has run it.
batch    Reads calls from stdin, one per line, either
             METHOD [PARAMS]
         or a JSON object
             {"method": "...", "params": [...], "notify": true}
         ("notify" optional; blank lines and lines starting with # are
         skipped), sends them as one batch and prints one JSON line per
         call, in order: {"method":"...","result":...} or
         {"method":"...","error":{"code":...,"message":"...","data":...}}.
         Notifications print nothing. Exits 1 if any call got an error.
listen   Keeps the connection open and prints every call and notification
         the server sends, one JSON line each:
             {"jsonrpc":"2.0","method":"...","params":...,"id":...}
         (no "id" for a notification). It answers a call to a METHOD given
         with -reply METHOD=JSON with that JSON; other calls (only those to
         the -method names, if any are given) by running -exec CMD (sh -c
         CMD) with the params on stdin and WSRPC_METHOD and WSRPC_ID (raw
         JSON id) in its environment: its stdout (JSON, empty for null) is
         the result, and a non-zero exit answers error -32099 (data: exit
         status and stderr) or the error object the command printed
         ({"code":..,"message":..}). Without -exec, a call to a -method name
         is answered with null; any other call, "method not found".
         -call 'METHOD [PARAMS]' makes a call once connected (to subscribe,
         say) and prints its answer as batch does. listen ends on SIGINT or
         SIGTERM, or when the server closes the connection (exit 0 both).
discover Calls rpc.discover and prints the server's OpenRPC document, the
         description of its methods, as indented JSON on stdout (-i: as
         the server sent it). A wsrpc server serves one with the openrpc
         module (openrpc.Serve).

Common flags:
  -H 'Name: value'   HTTP header for the handshake or POST (repeatable)
  -origin URL        Origin header
  -timeout D         bound for the whole exchange (listen: for the handshake
                     and each -exec run) (default 30s)

Exit status: 0 success, 1 a JSON-RPC error, 2 usage, 3 connection failure,
HTTP refusal or timeout.

Examples:
  wsrpc call ws://127.0.0.1:8095/rpc subtract '[42, 23]'
  wsrpc call ws://127.0.0.1:8095/rpc subtract '{"minuend": 42, "subtrahend": 23}'
  wsrpc call -i http://127.0.0.1:8095/rpc echo @params.json
  echo '[1, 2, 4]' | wsrpc call ws://127.0.0.1:8095/rpc sum -
  wsrpc call -H 'Authorization: Bearer let-me-in' ws://127.0.0.1:8095/rpc admin.stats
  wsrpc notify ws://127.0.0.1:8095/rpc update '[1, 2, 3]'
  printf '%s\n' 'sum [1, 2, 4]' '{"method": "update", "params": [7], "notify": true}' \
      'subtract {"minuend": 42, "subtrahend": 23}' | wsrpc batch ws://127.0.0.1:8095/rpc
  wsrpc listen -method news ws://127.0.0.1:8095/rpc
  wsrpc listen -reply client.greet='"hello"' \
      -call 'reverse.call {"method": "client.greet", "params": ["you"]}' ws://127.0.0.1:8095/rpc
  wsrpc listen -method client.greet -exec 'jq "{got: .}"' ws://127.0.0.1:8095/rpc
  wsrpc discover ws://127.0.0.1:8095/rpc
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		io.WriteString(stderr, usageText)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "-help", "--help", "help":
		io.WriteString(stdout, usageText)
		return exitOK
	case "call":
		return runCall(rest, stdin, stdout, stderr, false)
	case "notify":
		return runCall(rest, stdin, stdout, stderr, true)
	case "batch":
		return runBatch(rest, stdin, stdout, stderr)
	case "listen":
		return runListen(rest, stdout, stderr)
	case "discover":
		return runDiscover(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "wsrpc: unknown subcommand %q (wsrpc -h for help)\n", cmd)
		return exitUsage
	}
}

// common holds the flags every subcommand has.
type common struct {
	header  headerFlag
	origin  string
	timeout time.Duration
}

// newFlagSet returns the flag set of a subcommand with the common flags,
// whose usage prints synopsis, the flags, and a pointer to wsrpc -h.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{header: headerFlag{}}
	fs.Var(c.header, "H", "HTTP header `'Name: value'` (repeatable)")
	fs.StringVar(&c.origin, "origin", "", "Origin header `URL`")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "time limit of the whole exchange (listen: of the handshake and of each -exec run)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wsrpc %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nRun wsrpc -h for details and examples.")
	}
	return fs, c
}

// parse parses args with fs, flags and arguments interleaved, and returns
// the arguments. A "--" ends the flags. It returns the exit status to use
// when parsing failed or help was asked for (ok false).
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, status int, ok bool) {
	// Help asked for goes to stdout (the flag package would print it on
	// stderr).
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, exitOK, false
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// headers returns the HTTP header the common flags ask for.
func (c *common) headers() http.Header {
	h := http.Header(c.header).Clone()
	if c.origin != "" {
		h.Set("Origin", c.origin)
	}
	return h
}

// headerFlag is the repeatable -H flag.
type headerFlag http.Header

// String returns the headers, for the flag package.
func (h headerFlag) String() string {
	var b strings.Builder
	http.Header(h).Write(&b)
	return strings.TrimSpace(b.String())
}

// Set adds one "Name: value" header.
func (h headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	http.Header(h).Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	return nil
}

// listFlag is a repeatable string flag.
type listFlag []string

// String returns the values, for the flag package.
func (l *listFlag) String() string { return strings.Join(*l, ", ") }

// Set adds a value.
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// parseArgs is parse, then checks that there are min to max arguments, the
// first a URL of a transport the tool speaks. It returns the arguments and
// the transport, or the exit status.
func parseArgs(fs *flag.FlagSet, args []string, min, max int, stdout, stderr io.Writer) (pos []string, kind string, status int, ok bool) {
	if pos, status, ok = parse(fs, args, stdout); !ok {
		return nil, "", status, false
	}
	if len(pos) < min || len(pos) > max {
		fs.Usage()
		return nil, "", exitUsage, false
	}
	kind, err := transport(pos[0])
	if err != nil {
		return nil, "", usageError(stderr, "%v", err), false
	}
	return pos, kind, 0, true
}

// transport says how url is reached: "ws" (WebSocket) or "http" (POST), or
// an error for any other scheme.
func transport(url string) (string, error) {
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, "ws://"), strings.HasPrefix(lower, "wss://"):
		return "ws", nil
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		return "http", nil
	}
	return "", fmt.Errorf("URL must begin with ws://, wss://, http:// or https://: %q", url)
}

// readParams returns the params an argument names as raw JSON: inline JSON,
// @FILE, or - for stdin. The empty string means no params (nil).
func readParams(arg string, stdin io.Reader) (json.RawMessage, error) {
	var data []byte
	switch {
	case arg == "":
		return nil, nil
	case arg == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading params from stdin: %w", err)
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("reading params: %w", err)
		}
		data = b
	default:
		data = []byte(arg)
	}
	return checkParams(data)
}

// checkParams checks that data is a JSON array or object, as JSON-RPC
// params must be, and returns it trimmed. Blank data means no params.
func checkParams(data []byte) (json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("params are not valid JSON: %.60q", data)
	}
	if data[0] != '[' && data[0] != '{' {
		return nil, fmt.Errorf("params must be a JSON array or object, got %.60s", data)
	}
	return json.RawMessage(data), nil
}

// paramsArg returns params in the form the library takes: nil when there
// are none (not a nil json.RawMessage in an interface, which is not nil).
func paramsArg(params json.RawMessage) any {
	if params == nil {
		return nil
	}
	return params
}

// failure reports err on stderr and returns its exit status: 1 for a
// JSON-RPC error (code, message and data printed), 3 for anything else
// (an HTTP refusal with its status, a network failure, a timeout).
func failure(stderr io.Writer, err error) int {
	var rpcErr *wsrpc.Error
	if errors.As(err, &rpcErr) {
		fmt.Fprintf(stderr, "error %d: %s\n", rpcErr.Code, rpcErr.Message)
		if len(rpcErr.Data) > 0 {
			fmt.Fprintf(stderr, "data: %s\n", compact(rpcErr.Data))
		}
		return exitRPC
	}
	var httpErr *wsrpc.HTTPError
	if errors.As(err, &httpErr) {
		fmt.Fprintf(stderr, "wsrpc: refused: HTTP %d: %s\n", httpErr.Status, strings.TrimSpace(httpErr.Message))
		return exitConnect
	}
	fmt.Fprintf(stderr, "wsrpc: %v\n", err)
	return exitConnect
}

// usageError reports a usage error and returns its status.
func usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "wsrpc: "+format+"\n", args...)
	return exitUsage
}

// compact returns raw JSON on one line; raw itself if it is not valid.
func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// encodeLine writes v as one line of JSON, HTML characters unescaped.
func encodeLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// answer is one output line for a call's outcome (batch, listen -call).
type answer struct {
	Method string          `json:"method"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wsrpc.Error    `json:"error,omitempty"`
}

// newAnswer returns the output line for a call of method that returned err
// and result. ok is false when err is not a JSON-RPC error: the line then
// carries the error's text under code -32603 (internal error), and the
// caller should treat it as a failure of the exchange.
func newAnswer(method string, result json.RawMessage, err error) (a answer, ok bool) {
	a.Method = method
	if err == nil {
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		a.Result = result
		return a, true
	}
	var rpcErr *wsrpc.Error
	if errors.As(err, &rpcErr) {
		a.Error = rpcErr
		return a, true
	}
	a.Error = &wsrpc.Error{Code: wsrpc.CodeInternalError, Message: err.Error()}
	return a, false
}
