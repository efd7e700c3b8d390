package wsrpc

import (
	"context"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// ---- WebSocket protocol points (RFC 6455) ----

// rawClient dials srv with coder/websocket directly, to send what a Peer
// never would.
func rawClient(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(context.Background(), url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// closeStatusAfter writes one message of type typ and returns the status
// the server closed the connection with.
func closeStatusAfter(t *testing.T, url string, typ websocket.MessageType, msg string) websocket.StatusCode {
	t.Helper()
	c := rawClient(t, url)
	ctx := context.Background()
	require.NoError(t, c.Write(ctx, typ, []byte(msg)))
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestInvalidUTF8Closes1007: a text message that is not UTF-8 fails the
// connection with 1007 (RFC 6455 §8.1), wherever the bad bytes are; until
// e64ff61 it got -32700 and the connection stayed.
func TestInvalidUTF8Closes1007(t *testing.T) {
	t.Parallel()
	s := rsNewServer(t, options{Methods: arith()})
	for name, msg := range map[string]string{
		"in method":  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\xff\"}",
		"in params":  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\xc3\x28\"]}",
		"in a key":   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"p\xfe\":1}",
		"overlong":   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\xc0\xaf\"]}",
		"surrogate":  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\xed\xa0\x80\"]}",
		"in a batch": "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\xff\"}]",
		"bare":       "\xff",
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, websocket.StatusInvalidFramePayloadData, closeStatusAfter(t, s.url, websocket.MessageText, msg))
		})
	}
}

// TestBinaryCloses1003: JSON-RPC over WebSocket is text; a binary message
// closes the connection with 1003 (unsupported data). Until e64ff61 it was
// served as JSON, undocumented.
func TestBinaryCloses1003(t *testing.T) {
	t.Parallel()
	s := rsNewServer(t, options{Methods: arith()})
	got := closeStatusAfter(t, s.url, websocket.MessageBinary, `{"jsonrpc":"2.0","id":1,"method":"math.sum","params":[1,2]}`)
	require.Equal(t, websocket.StatusUnsupportedData, got)
}
