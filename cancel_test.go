package wsrpc

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// slowMethods serves "slow", which signals started, then waits for its ctx
// or release, and reports how it ended on ended; and "fast".
func slowMethods(started chan<- json.RawMessage, release <-chan struct{}, ended chan<- error) *Methods {
	m := NewMethods()
	m.Handle("slow", func(ctx context.Context, req *Request) (any, error) {
		started <- append(json.RawMessage(nil), req.ID...)
		select {
		case <-ctx.Done():
			ended <- ctx.Err()
			return "finished anyway", nil
		case <-release:
			ended <- nil
			return "done", nil
		}
	})
	m.HandleRaw("fast", func(context.Context, json.RawMessage) (any, error) { return "fast", nil })
	return m
}

// TestCancelOverTheWire: a caller whose ctx ends sends the cancel
// notification, and the handler on the other side sees its ctx cancelled.
func TestCancelOverTheWire(t *testing.T) {
	t.Parallel()
	started, ended := make(chan json.RawMessage, 1), make(chan error, 1)
	client, _ := pipePair(t,
		&options{CancelMethod: LSPCancel},
		&options{CancelMethod: LSPCancel, Methods: slowMethods(started, nil, ended)})

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	err := client.Call(ctx, "slow", nil, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, <-ended, context.Canceled, "the handler's ctx was cancelled")

	var out string
	require.NoError(t, client.Call(context.Background(), "fast", nil, &out), "the connection stays up")
	require.Equal(t, "fast", out)
}

// TestCancelAnswer: over the raw wire, a cancelled request gets exactly one
// answer, -32800, whatever its handler returns afterwards; unknown ids and
// cancels without an id are ignored.
func TestCancelAnswer(t *testing.T) {
	t.Parallel()
	started, ended := make(chan json.RawMessage, 1), make(chan error, 1)
	_, raw := rawPeer(t, &options{CancelMethod: "cancel", Methods: slowMethods(started, nil, ended)})

	for _, id := range []string{`7`, `"seven"`} {
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","id":`+id+`,"method":"slow"}`)))
		require.JSONEq(t, id, string(<-started))
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{"id":99}}`)))
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{}}`)))
		require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{"id":`+id+`}}`)))
		require.ErrorIs(t, <-ended, context.Canceled)
		require.JSONEq(t, `{"jsonrpc":"2.0","id":`+id+`,"error":{"code":-32800,"message":"request cancelled"}}`, readRaw(t, raw))
		require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"result":"fast"}`,
			exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"fast"}`), "one answer only, and the peer serves on")
	}

	// A finished request is not affected by a late cancel.
	release := make(chan struct{})
	close(release)
	_, raw2 := rawPeer(t, &options{CancelMethod: "cancel", Methods: slowMethods(started, release, ended)})
	require.JSONEq(t, `{"jsonrpc":"2.0","id":3,"result":"done"}`, exchange(t, raw2, `{"jsonrpc":"2.0","id":3,"method":"slow"}`))
	<-started
	require.NoError(t, <-ended)
	require.NoError(t, raw2.writeMessage([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{"id":3}}`)))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":4,"result":"fast"}`, exchange(t, raw2, `{"jsonrpc":"2.0","id":4,"method":"fast"}`))
}

// TestCancelBeforeRun: a cancel that arrives while its request waits in the
// queue answers it -32800 without running its handler.
func TestCancelBeforeRun(t *testing.T) {
	t.Parallel()
	started, ended := make(chan json.RawMessage, 2), make(chan error, 2)
	release := make(chan struct{})
	var runs atomic.Int32
	m := slowMethods(started, release, ended)
	m.HandleRaw("count", func(context.Context, json.RawMessage) (any, error) {
		runs.Add(1)
		return nil, nil
	})
	marked := make(chan struct{})
	m.HandleRaw("mark", func(context.Context, json.RawMessage) (any, error) {
		close(marked)
		return nil, nil
	})
	_, raw := rawPeer(t, &options{CancelMethod: "cancel", Methods: m, Limits: Limits{MaxHandlers: 1}})

	require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"slow"}`)))
	<-started // the only slot is taken: the next request queues
	require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","id":2,"method":"count"}`)))
	require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{"id":2}}`)))
	require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","id":3,"method":"count"}`)))
	// The reader acts on a cancel as it reads it: once a notification sent
	// after it runs, the cancel has been seen, with 2 and 3 still queued.
	require.NoError(t, raw.writeMessage([]byte(`{"jsonrpc":"2.0","method":"mark"}`)))
	<-marked
	close(release)
	require.NoError(t, <-ended)

	got := map[string]string{}
	for range 3 {
		var r struct {
			ID    json.RawMessage
			Error *Error
		}
		require.NoError(t, json.Unmarshal([]byte(readRaw(t, raw)), &r))
		code := "ok"
		if r.Error != nil {
			code = r.Error.Error()
		}
		got[string(r.ID)] = code
	}
	require.Equal(t, "ok", got["1"])
	require.Contains(t, got["2"], "-32800")
	require.Equal(t, "ok", got["3"])
	require.Equal(t, int32(1), runs.Load(), "the cancelled request never ran")
}

// TestCancelSent: the caller sends one cancel per unanswered id of a call
// or batch whose ctx ends, none for answered calls, and none at all without
// a CancelMethod.
func TestCancelSent(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		started := make(chan json.RawMessage, 4)
		seen := make(chan string, 8)
		m := slowMethods(started, nil, make(chan error, 4))
		m.HandleRaw("$/cancelRequest", func(_ context.Context, params json.RawMessage) (any, error) {
			seen <- string(params)
			return nil, nil
		})
		flushed := make(chan struct{})
		m.HandleRaw("flush", func(context.Context, json.RawMessage) (any, error) {
			close(flushed)
			return nil, nil
		})
		opts := &options{}
		if on {
			opts.CancelMethod = LSPCancel
		}
		// The server does not honour cancels: its table receives them.
		client, _ := pipePair(t, opts, &options{Methods: m})
		cancelWhenStarted := func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-started
				cancel()
			}()
			return ctx
		}

		b := client.NewBatch() // ids 1 and 2, answered together
		b.Call("fast", nil, nil)
		b.Call("slow", nil, nil)
		require.ErrorIs(t, b.Send(cancelWhenStarted()), context.Canceled)

		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, client.Call(ctx, "fast", nil, nil)) // id 3, answered
		cancel()
		require.ErrorIs(t, client.Call(cancelWhenStarted(), "slow", nil, nil), context.Canceled) // id 4

		if !on {
			// Notifications are served in order: once flush runs, a
			// cancel written before it would have been seen.
			require.NoError(t, client.Notify(context.Background(), "flush", nil))
			<-flushed
			require.Empty(t, seen)
			continue
		}
		// Cancels go out in order through the outbound queue.
		for _, want := range []string{`{"id":1}`, `{"id":2}`, `{"id":4}`} {
			require.JSONEq(t, want, <-seen)
		}
		require.NoError(t, client.Call(context.Background(), "fast", nil, nil))
		require.Empty(t, seen, "nothing for the answered call")
	}
}
