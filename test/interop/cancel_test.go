package interop_test

// Wire cancellation against vscode-jsonrpc 8 (LSP's "$/cancelRequest"), in
// both directions, over ws with the adapters of vscode_ws.mjs. Node cancels
// Go: a vscode-jsonrpc client (vscode_client.mjs) cancels its token while a
// wsrpc Server handler with CancelMethod LSPCancel is blocked; we check that
// the handler's ctx ended with context.Canceled while the connection was still
// open, and that the client got exactly one answer, code -32800 (LSP's
// RequestCancelled, wsrpc.CodeRequestCancelled). Go cancels Node: a wsrpc.Dial
// peer with CancelMethod LSPCancel cancels the ctx of a Call whose
// vscode-jsonrpc handler (vscode_server.mjs) has started; we check that Call
// returns context.Canceled, that exactly one {"id": <that id>} cancel
// notification went out, that the Node handler saw its token cancelled, that
// no cancel goes out for a call already answered, and that the peer still
// works after Node's late -32800 answer. Controls, so that these can fail:
// without CancelMethod the same steps cancel nothing on either side (the
// handler runs until released, and no "$/cancelRequest" is sent). Waits are
// on notifications and answers only; the contexts' deadlines are safety nets.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wsrpc/wsrpc"
)

type tagParams struct {
	Tag string `json:"tag"`
}

// wireMsg is one JSON-RPC message as seen on the wire.
type wireMsg struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

type wireError struct {
	Code    int64  `json:"code"`
	Message string `json:"message"`
}

func parseWire(t *testing.T, raw json.RawMessage) wireMsg {
	t.Helper()
	var m wireMsg
	require.NoError(t, json.Unmarshal(raw, &m), "frame %s", raw)
	return m
}

// cancelsOf returns the ids named by the "$/cancelRequest" messages in msgs.
func cancelsOf(t *testing.T, msgs []json.RawMessage) []string {
	t.Helper()
	var ids []string
	for _, raw := range msgs {
		m := parseWire(t, raw)
		if m.Method != wsrpc.LSPCancel {
			continue
		}
		var p struct {
			ID json.RawMessage `json:"id"`
		}
		require.NoError(t, json.Unmarshal(m.Params, &p), "params of %s", raw)
		ids = append(ids, string(p.ID))
	}
	return ids
}

// recv waits for a value from ch; ctx is the safety net.
func recv[T any](ctx context.Context, t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		var zero T
		return zero
	}
}

// testLogger returns a logger for wsrpc whose lines are logged on t at the
// end of the test.
func testLogger(t *testing.T, who string) *slog.Logger {
	var buf lockedBuffer
	t.Cleanup(func() {
		if s := buf.String(); s != "" {
			t.Logf("%s logged:\n%s", who, s)
		}
	})
	return slog.New(slog.NewTextHandler(&buf, nil))
}

// slowEnd is how the Go slow handler ended: ctxErr is its ctx.Err() then.
type slowEnd struct {
	ctxErr error
}

// startCancelServer serves, with the given CancelMethod, the methods that
// vscode_client.mjs expects: slow notifies "started" and blocks until its
// ctx ends or release is called; ended waits for slow to end and reports its
// ctx.Err(). It returns the URL and a channel with slow's end.
func startCancelServer(t *testing.T, cancelMethod string) (string, <-chan slowEnd) {
	t.Helper()
	release := make(chan struct{})
	var releaseOnce sync.Once
	ends := make(chan slowEnd, 1)
	endedOnce := make(chan struct{})
	var end slowEnd

	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "slow", func(ctx context.Context, p tagParams) (any, error) {
		defer close(endedOnce)
		if err := wsrpc.PeerFromContext(ctx).Notify(ctx, "started", p); err != nil {
			end = slowEnd{ctxErr: err}
			ends <- end
			return nil, err
		}
		select {
		case <-ctx.Done():
			end = slowEnd{ctxErr: ctx.Err()}
			ends <- end
			return nil, ctx.Err()
		case <-release:
			end = slowEnd{ctxErr: ctx.Err()}
			ends <- end
			return map[string]string{"released": p.Tag}, nil
		}
	})
	wsrpc.Register(methods, "release", func(_ context.Context, _ tagParams) (bool, error) {
		releaseOnce.Do(func() { close(release) })
		return true, nil
	})
	wsrpc.Register(methods, "ended", func(ctx context.Context, _ json.RawMessage) (map[string]string, error) {
		select {
		case <-endedOnce:
			s := ""
			if end.ctxErr != nil {
				s = end.ctxErr.Error()
			}
			return map[string]string{"ctxErr": s}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	srv := wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods:      methods,
		CancelMethod: cancelMethod,
		Logger:       testLogger(t, "wsrpc server"),
	})
	return serveGo(t, srv), ends
}

type settled struct {
	Result json.RawMessage `json:"result"`
	Error  *wireError      `json:"error"`
}

type clientOutcome struct {
	Slow    settled  `json:"slow"`
	Release *settled `json:"release"`
	Ended   settled  `json:"ended"`
	Logged  []string `json:"logged"`
}

// clientRun is what vscode_client.mjs printed.
type clientRun struct {
	sent, received []json.RawMessage // frames, in order
	outcome        clientOutcome
}

// runVSCodeClient runs vscode_client.mjs against url in mode ("cancel" or
// "release") and returns what it printed.
func runVSCodeClient(t *testing.T, node, url, mode string) clientRun {
	t.Helper()
	out := runNodeScript(t, node, "vscode_client.mjs", url, mode)

	var run clientRun
	gotOutcome := false
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var l struct {
			Dir     string          `json:"dir"`
			Msg     json.RawMessage `json:"msg"`
			Outcome json.RawMessage `json:"outcome"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &l), "line %q", line)
		switch {
		case l.Outcome != nil:
			t.Logf("outcome %s", l.Outcome)
			require.NoError(t, json.Unmarshal(l.Outcome, &run.outcome))
			gotOutcome = true
		case l.Dir == "-->":
			t.Logf("node -> go: %s", l.Msg)
			run.sent = append(run.sent, l.Msg)
		case l.Dir == "<--":
			t.Logf("go -> node: %s", l.Msg)
			run.received = append(run.received, l.Msg)
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	require.True(t, gotOutcome, "no outcome line")
	require.Empty(t, run.outcome.Logged, "vscode-jsonrpc complained")
	return run
}

// answersTo returns the responses among msgs to the request with id.
func answersTo(t *testing.T, msgs []json.RawMessage, id json.RawMessage) []wireMsg {
	t.Helper()
	var out []wireMsg
	for _, raw := range msgs {
		m := parseWire(t, raw)
		if m.Method == "" && string(m.ID) == string(id) {
			out = append(out, m)
		}
	}
	return out
}

// slowID returns the id of the first "slow" request among msgs.
func slowID(t *testing.T, msgs []json.RawMessage) json.RawMessage {
	t.Helper()
	for _, raw := range msgs {
		if m := parseWire(t, raw); m.Method == "slow" {
			require.NotEmpty(t, m.ID, "slow sent as a notification: %s", raw)
			return m.ID
		}
	}
	t.Fatal("no slow request on the wire")
	return nil
}

// TestVSCodeClientCancelsGoHandler: vscode-jsonrpc cancels a request that a
// wsrpc handler is working on.
func TestVSCodeClientCancelsGoHandler(t *testing.T) {
	node := requireNode(t)
	t.Parallel()

	t.Run("it cancels our handler", func(t *testing.T) {
		t.Parallel()
		url, ends := startCancelServer(t, wsrpc.LSPCancel)
		run := runVSCodeClient(t, node, url, "cancel")

		id := slowID(t, run.sent)
		require.Equal(t, []string{string(id)}, cancelsOf(t, run.sent), "cancel notifications node sent")
		answers := answersTo(t, run.received, id)
		require.Len(t, answers, 1, "answers to slow (id %s)", id)
		require.NotNil(t, answers[0].Error, "slow answered with a result: %s", answers[0].Result)
		require.EqualValues(t, wsrpc.CodeRequestCancelled, answers[0].Error.Code)
		require.EqualValues(t, -32800, wsrpc.CodeRequestCancelled, "LSP's RequestCancelled")
		require.NotNil(t, run.outcome.Slow.Error, "vscode-jsonrpc's view of slow")
		require.EqualValues(t, -32800, run.outcome.Slow.Error.Code)

		// Asked over the same connection after the -32800 answer: the
		// handler's ctx ended while the peer was open, so by the cancel.
		require.Nil(t, run.outcome.Ended.Error)
		require.JSONEq(t, `{"ctxErr":"context canceled"}`, string(run.outcome.Ended.Result))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.ErrorIs(t, recv(ctx, t, ends, "the slow handler's end").ctxErr, context.Canceled)
	})

	t.Run("without CancelMethod our handler runs on", func(t *testing.T) {
		t.Parallel()
		url, ends := startCancelServer(t, "")
		run := runVSCodeClient(t, node, url, "release")

		id := slowID(t, run.sent)
		require.Equal(t, []string{string(id)}, cancelsOf(t, run.sent), "cancel notifications node sent")
		answers := answersTo(t, run.received, id)
		require.Len(t, answers, 1, "answers to slow (id %s)", id)
		require.Nil(t, answers[0].Error, "slow answered with an error")
		require.JSONEq(t, `{"released":"vscode"}`, string(answers[0].Result))
		require.Nil(t, run.outcome.Release.Error)
		require.JSONEq(t, `{"ctxErr":""}`, string(run.outcome.Ended.Result))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, recv(ctx, t, ends, "the slow handler's end").ctxErr)
	})
}

// nodeReport is what vscode_server.mjs's report method returns.
type nodeReport struct {
	Cancelled []string `json:"cancelled"`
	Wire      []struct {
		Dir string          `json:"dir"`
		Msg json.RawMessage `json:"msg"`
	} `json:"wire"`
}

// received and sent are the frames Node received and sent, in order.
func (r nodeReport) received() []json.RawMessage { return r.frames("<--") }
func (r nodeReport) sent() []json.RawMessage     { return r.frames("-->") }

func (r nodeReport) frames(dir string) []json.RawMessage {
	var out []json.RawMessage
	for _, w := range r.Wire {
		if w.Dir == dir {
			out = append(out, w.Msg)
		}
	}
	return out
}

func (r nodeReport) log(t *testing.T) {
	t.Helper()
	for _, w := range r.Wire {
		if w.Dir == "<--" {
			t.Logf("go -> node: %s", w.Msg)
		} else {
			t.Logf("node -> go: %s", w.Msg)
		}
	}
}

// dialVSCode dials vscode_server.mjs with the given CancelMethod; started
// and sawCancel receive the tags of those notifications from Node.
func dialVSCode(ctx context.Context, t *testing.T, ns *nodeServer, cancelMethod string) (peer *wsrpc.Peer, started, sawCancel <-chan string) {
	t.Helper()
	startedCh := make(chan string, 4)
	sawCh := make(chan string, 4)
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "started", func(_ context.Context, p tagParams) (any, error) {
		startedCh <- p.Tag
		return nil, nil
	})
	wsrpc.Register(methods, "sawCancel", func(_ context.Context, p tagParams) (any, error) {
		sawCh <- p.Tag
		return nil, nil
	})
	peer, err := wsrpc.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", ns.port), &wsrpc.DialOptions{
		Methods:      methods,
		CancelMethod: cancelMethod,
		Logger:       testLogger(t, "wsrpc client"),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })
	return peer, startedCh, sawCh
}

// callUntilStarted calls slow {tag}, waits for Node's "started", cancels
// the call's ctx and returns what Call returned.
func callUntilStarted(ctx context.Context, t *testing.T, peer *wsrpc.Peer, started <-chan string, tag string) error {
	t.Helper()
	callCtx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	callErr := make(chan error, 1)
	go func() { callErr <- peer.Call(callCtx, "slow", tagParams{Tag: tag}, nil) }()
	require.Equal(t, tag, recv(ctx, t, started, "started from node"))
	cancelCall()
	return recv(ctx, t, callErr, "Call to return")
}

// TestGoCancelsVSCodeHandler: a wsrpc peer cancels a request that a
// vscode-jsonrpc handler is working on.
func TestGoCancelsVSCodeHandler(t *testing.T) {
	node := requireNode(t)
	t.Parallel()
	ns := startNodeServer(t, node, "vscode_server.mjs")

	t.Run("we cancel its handler", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		peer, started, sawCancel := dialVSCode(ctx, t, ns, wsrpc.LSPCancel)

		require.ErrorIs(t, callUntilStarted(ctx, t, peer, started, "go"), context.Canceled)
		require.Equal(t, "go", recv(ctx, t, sawCancel, "sawCancel from node"))

		// A call answered before its ctx ends sends no cancel.
		answeredCtx, cancelAnswered := context.WithCancel(ctx)
		var pong string
		require.NoError(t, peer.Call(answeredCtx, "ping", nil, &pong))
		cancelAnswered()
		require.Equal(t, "pong", pong)

		var rep nodeReport
		require.NoError(t, peer.Call(ctx, "report", nil, &rep), "the peer works after Node's late answer")
		rep.log(t)
		require.Equal(t, []string{"go"}, rep.Cancelled, "slow calls whose token was cancelled")
		id := slowID(t, rep.received())
		require.Equal(t, []string{string(id)}, cancelsOf(t, rep.received()), "cancel notifications wsrpc sent")
		answers := answersTo(t, rep.sent(), id)
		require.Len(t, answers, 1, "node's answers to slow (id %s)", id)
		require.NotNil(t, answers[0].Error)
		require.EqualValues(t, -32800, answers[0].Error.Code)
	})

	t.Run("without CancelMethod its handler runs on", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		peer, started, _ := dialVSCode(ctx, t, ns, "")

		require.ErrorIs(t, callUntilStarted(ctx, t, peer, started, "ctl"), context.Canceled)
		var rel struct {
			Found     bool `json:"found"`
			Cancelled bool `json:"cancelled"`
		}
		require.NoError(t, peer.Call(ctx, "release", tagParams{Tag: "ctl"}, &rel))
		require.True(t, rel.Found, "slow ctl was not waiting any more")
		require.False(t, rel.Cancelled, "slow ctl saw its token cancelled")

		var rep nodeReport
		require.NoError(t, peer.Call(ctx, "report", nil, &rep))
		rep.log(t)
		require.Empty(t, rep.Cancelled, "slow calls whose token was cancelled")
		require.Empty(t, cancelsOf(t, rep.received()), "cancel notifications wsrpc sent")
	})
}
