package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wsrpc/wsrpc"
)

// client is what call, notify and batch need of a connection: a WebSocket
// peer or an HTTP POST client.
type client struct {
	peer   *wsrpc.Peer       // ws:// and wss://
	http   *wsrpc.HTTPClient // http:// and https://
	caller wsrpc.Caller      // whichever of the two is set
}

// connect returns a client for url: a dialed peer, or an HTTP client (which
// connects nothing until its first request).
func connect(ctx context.Context, url string, header http.Header) (*client, error) {
	kind, err := transport(url)
	if err != nil {
		return nil, err
	}
	if kind == "http" {
		hc := wsrpc.NewHTTPClient(url, &wsrpc.HTTPClientOptions{Header: header})
		return &client{http: hc, caller: hc}, nil
	}
	p, err := wsrpc.Dial(ctx, url, &wsrpc.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	return &client{peer: p, caller: p}, nil
}

// close closes the WebSocket connection, if any.
func (c *client) close() {
	if c.peer != nil {
		c.peer.Close()
	}
}

// batch sends what add adds as one batch.
func (c *client) batch(ctx context.Context, add func(b wsrpc.Batcher)) error {
	if c.peer != nil {
		return c.peer.Batch(ctx, func(b *wsrpc.Batch) { add(b) })
	}
	return c.http.Batch(ctx, func(b *wsrpc.HTTPBatch) { add(b) })
}

// runCall runs "wsrpc call" (notify false) and "wsrpc notify" (notify
// true) and returns the exit status.
func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer, notify bool) int {
	name := "call"
	if notify {
		name = "notify"
	}
	fs, common := newFlagSet(name, "[flags] URL METHOD [PARAMS | @FILE | -]", stdout, stderr)
	var raw bool
	if !notify {
		fs.BoolVar(&raw, "i", false, "print the result as the server sent it, not indented")
	}
	pos, _, status, ok := parseArgs(fs, args, 2, 3, stdout, stderr)
	if !ok {
		return status
	}
	url, method := pos[0], pos[1]
	if method == "" {
		return usageError(stderr, "empty method name")
	}
	var params json.RawMessage
	if len(pos) == 3 {
		p, err := readParams(pos[2], stdin)
		if err != nil {
			return usageError(stderr, "%v", err)
		}
		params = p
	}

	ctx, cancel := context.WithTimeout(context.Background(), common.timeout)
	defer cancel()
	c, err := connect(ctx, url, common.headers())
	if err != nil {
		return failure(stderr, err)
	}
	defer c.close()

	if notify {
		if err := c.caller.Notify(ctx, method, paramsArg(params)); err != nil {
			return failure(stderr, err)
		}
		return exitOK
	}
	return callAndPrint(ctx, c, method, params, raw, stdout, stderr)
}

// callAndPrint calls method with params through c and prints the result,
// indented unless raw; it returns the exit status.
func callAndPrint(ctx context.Context, c *client, method string, params json.RawMessage, raw bool, stdout, stderr io.Writer) int {
	var result json.RawMessage
	if err := c.caller.Call(ctx, method, paramsArg(params), &result); err != nil {
		return failure(stderr, err)
	}
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	out := []byte(result)
	if !raw {
		var b bytes.Buffer
		if err := json.Indent(&b, result, "", "  "); err == nil {
			out = b.Bytes()
		}
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", out); err != nil {
		fmt.Fprintf(stderr, "wsrpc: %v\n", err)
		return exitConnect
	}
	return exitOK
}

// runDiscover runs "wsrpc discover": rpc.discover, the OpenRPC service
// discovery method, printed as call prints a result. It returns the exit
// status.
func runDiscover(args []string, stdout, stderr io.Writer) int {
	fs, common := newFlagSet("discover", "[flags] URL", stdout, stderr)
	var raw bool
	fs.BoolVar(&raw, "i", false, "print the document as the server sent it, not indented")
	pos, _, status, ok := parseArgs(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return status
	}
	ctx, cancel := context.WithTimeout(context.Background(), common.timeout)
	defer cancel()
	c, err := connect(ctx, pos[0], common.headers())
	if err != nil {
		return failure(stderr, err)
	}
	defer c.close()
	return callAndPrint(ctx, c, "rpc.discover", nil, raw, stdout, stderr)
}

// batchItem is one line of batch input.
type batchItem struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Notify bool            `json:"notify"`
}

// parseBatchLine parses one line of batch input: `METHOD [PARAMS]` or a
// JSON object {"method", "params", "notify"}. skip is true for a blank
// line or a comment.
func parseBatchLine(line string) (it batchItem, skip bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return it, true, nil
	}
	if strings.HasPrefix(line, "{") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return it, false, fmt.Errorf("bad JSON line: %v", err)
		}
		if string(it.Params) == "null" {
			it.Params = nil
		}
		if it.Params, err = checkParams(it.Params); err != nil {
			return it, false, err
		}
	} else {
		method, params := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			method, params = line[:i], line[i+1:]
		}
		it.Method = method
		if it.Params, err = checkParams([]byte(params)); err != nil {
			return it, false, err
		}
	}
	if it.Method == "" {
		return it, false, fmt.Errorf("no method name")
	}
	return it, false, nil
}

// runBatch runs "wsrpc batch" and returns the exit status.
func runBatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, common := newFlagSet("batch", "[flags] URL   < one call per line", stdout, stderr)
	pos, _, status, ok := parseArgs(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return status
	}
	url := pos[0]

	var items []batchItem
	sc := bufio.NewScanner(stdin)
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		it, skip, err := parseBatchLine(sc.Text())
		if err != nil {
			return usageError(stderr, "stdin line %d: %v", n, err)
		}
		if !skip {
			items = append(items, it)
		}
	}
	if err := sc.Err(); err != nil {
		return usageError(stderr, "reading stdin: %v", err)
	}
	if len(items) == 0 {
		return usageError(stderr, "no calls on stdin")
	}

	ctx, cancel := context.WithTimeout(context.Background(), common.timeout)
	defer cancel()
	c, err := connect(ctx, url, common.headers())
	if err != nil {
		return failure(stderr, err)
	}
	defer c.close()

	results := make([]json.RawMessage, len(items))
	calls := make([]*wsrpc.BatchCall, len(items))
	err = c.batch(ctx, func(b wsrpc.Batcher) {
		for i, it := range items {
			if it.Notify {
				b.Notify(it.Method, paramsArg(it.Params))
			} else {
				calls[i] = b.Call(it.Method, paramsArg(it.Params), &results[i])
			}
		}
	})
	if err != nil {
		return failure(stderr, err)
	}
	status = exitOK
	for i, call := range calls {
		if call == nil {
			continue
		}
		a, ok := newAnswer(items[i].Method, results[i], call.Err())
		switch {
		case !ok:
			status = exitConnect
		case a.Error != nil && status == exitOK:
			status = exitRPC
		}
		if err := encodeLine(stdout, a); err != nil {
			fmt.Fprintf(stderr, "wsrpc: %v\n", err)
			return exitConnect
		}
	}
	return status
}
