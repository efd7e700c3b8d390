package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsrpc/wsrpc"
)

// codeExecFailed answers a call whose -exec command exited non-zero without
// printing an error object of its own.
const codeExecFailed = -32099

// listener prints every call and notification the server sends (it is the
// method table's Fallback) and answers the calls.
type listener struct {
	replies map[string]json.RawMessage // -reply METHOD=JSON
	named   map[string]bool            // -method METHOD
	exec    string                     // -exec CMD
	timeout time.Duration              // bound of one -exec run

	mu     sync.Mutex // serialises the lines on out and errOut
	out    io.Writer
	errOut io.Writer
}

// incoming is the line printed for a call or notification from the server.
type incoming struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// println writes v as one JSON line on the listener's stdout.
func (l *listener) println(v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := encodeLine(l.out, v); err != nil {
		fmt.Fprintf(l.errOut, "wsrpc: %v\n", err)
	}
}

// handle prints a call or notification from the server and answers it:
// with its -reply; by running -exec, for the -method names or, with none
// given, for every call; with null for a -method name without -exec; and
// method not found otherwise.
func (l *listener) handle(ctx context.Context, req *wsrpc.Request) (any, error) {
	l.println(incoming{JSONRPC: "2.0", Method: req.Method, Params: req.Params, ID: req.ID})
	if req.IsNotification() {
		return nil, nil
	}
	if reply, ok := l.replies[req.Method]; ok {
		return reply, nil
	}
	switch {
	case l.exec != "" && (len(l.named) == 0 || l.named[req.Method]):
		return l.run(ctx, req)
	case l.named[req.Method]:
		return nil, nil
	}
	return nil, &wsrpc.Error{Code: wsrpc.CodeMethodNotFound, Message: fmt.Sprintf("method not found: %q", req.Method)}
}

// run runs the -exec command for req: the params on its stdin, the method
// and the raw id in WSRPC_METHOD and WSRPC_ID. Its stdout, JSON, is the
// result (empty: null). A non-zero exit is a JSON-RPC error: the error
// object the command printed, or codeExecFailed with its exit status and
// stderr as data. Its stderr is copied to the listener's own.
func (l *listener) run(ctx context.Context, req *wsrpc.Request) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", l.exec)
	cmd.Stdin = bytes.NewReader(req.Params)
	cmd.Env = append(os.Environ(), "WSRPC_METHOD="+req.Method, "WSRPC_ID="+string(req.ID))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // do not wait for children holding the pipes
	err := cmd.Run()
	if stderr.Len() > 0 {
		l.mu.Lock()
		l.errOut.Write(stderr.Bytes())
		l.mu.Unlock()
	}
	out := bytes.TrimSpace(stdout.Bytes())

	if err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || ctx.Err() != nil {
			// Not started, killed by the timeout, or the peer closed.
			return nil, &wsrpc.Error{Code: codeExecFailed, Message: "command failed: " + err.Error()}
		}
		var own wsrpc.Error
		if json.Unmarshal(out, &own) == nil && own.Code != 0 && own.Message != "" {
			return nil, &own
		}
		data, _ := json.Marshal(struct {
			Status int    `json:"status"`
			Stderr string `json:"stderr,omitempty"`
		}{exitErr.ExitCode(), strings.TrimSpace(stderr.String())})
		return nil, &wsrpc.Error{
			Code:    codeExecFailed,
			Message: fmt.Sprintf("command failed: exit status %d", exitErr.ExitCode()),
			Data:    data,
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if !json.Valid(out) {
		return nil, &wsrpc.Error{Code: wsrpc.CodeInternalError, Message: "command output is not valid JSON"}
	}
	return json.RawMessage(bytes.Clone(out)), nil
}

// runListen runs "wsrpc listen" and returns the exit status.
func runListen(args []string, stdout, stderr io.Writer) int {
	fs, common := newFlagSet("listen", "[flags] URL", stdout, stderr)
	var replies, methods, calls listFlag
	fs.Var(&replies, "reply", "answer calls to METHOD with JSON: `METHOD=JSON` (repeatable)")
	fs.Var(&methods, "method", "answer calls to `METHOD` by -exec, or with null without it (repeatable)")
	fs.Var(&calls, "call", "call `'METHOD [PARAMS]'` once connected and print the answer (repeatable)")
	execCmd := fs.String("exec", "", "answer calls (to the -method names, if any) by running `CMD` with sh -c")
	pos, kind, status, ok := parseArgs(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return status
	}
	url := pos[0]
	if kind != "ws" {
		return usageError(stderr, "listen needs a ws:// or wss:// URL, not %q", url)
	}
	l := &listener{
		replies: map[string]json.RawMessage{},
		named:   map[string]bool{},
		exec:    *execCmd,
		timeout: common.timeout,
		out:     stdout,
		errOut:  stderr,
	}
	for _, r := range replies {
		name, value, ok := strings.Cut(r, "=")
		if !ok || name == "" {
			return usageError(stderr, "-reply wants METHOD=JSON, got %q", r)
		}
		if !json.Valid([]byte(value)) {
			return usageError(stderr, "-reply %s: not valid JSON: %q", name, value)
		}
		l.replies[name] = compact(json.RawMessage(value))
	}
	for _, name := range methods {
		if name == "" {
			return usageError(stderr, "empty -method name")
		}
		l.named[name] = true
	}
	var toCall []batchItem
	for _, c := range calls {
		it, skip, err := parseBatchLine(c)
		if err == nil && (skip || it.Notify) {
			err = fmt.Errorf("want 'METHOD [PARAMS]'")
		}
		if err != nil {
			return usageError(stderr, "-call %q: %v", c, err)
		}
		toCall = append(toCall, it)
	}
	table := wsrpc.NewMethods()
	table.Fallback(l.handle)

	// Signals are caught before dialing, so that an interrupt at any
	// point ends the listener cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dialCtx, cancel := context.WithTimeout(ctx, common.timeout)
	peer, err := wsrpc.Dial(dialCtx, url, &wsrpc.DialOptions{Methods: table, HTTPHeader: common.headers()})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		return failure(stderr, err)
	}
	defer peer.Close()

	for _, it := range toCall {
		var result json.RawMessage
		err := peer.Call(ctx, it.Method, paramsArg(it.Params), &result)
		if ctx.Err() != nil {
			break
		}
		a, ok := newAnswer(it.Method, result, err)
		if !ok {
			break // the connection failed: Done tells
		}
		l.println(a)
	}

	select {
	case <-ctx.Done():
	case <-peer.Done():
		l.mu.Lock()
		fmt.Fprintf(stderr, "wsrpc: connection closed: %v\n", peer.Err())
		l.mu.Unlock()
	}
	return exitOK
}
