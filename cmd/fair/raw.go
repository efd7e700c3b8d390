package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// idWidth is the width of the id field of a prebuilt request: the id is
// written right-aligned, padded with spaces (JSON whitespace), so a request
// of any size is built once and only its id changes between writes.
const idWidth = 20

// message is a prebuilt JSON-RPC message whose id can be rewritten in place.
type message struct {
	b     []byte
	idOff int // offset of the id field, -1 for a notification
}

// newMessage builds {"jsonrpc":"2.0","id":<id>,"method":<method>,"params":["xxx..."]}
// (no id when notify) so that the whole message is total bytes long, or as
// close above as the envelope allows.
func newMessage(method string, notify bool, total int) *message {
	var m message
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0",`)
	m.idOff = -1
	if !notify {
		b.WriteString(`"id":`)
		m.idOff = b.Len()
		b.Write(bytes.Repeat([]byte{' '}, idWidth))
		b.WriteByte(',')
	}
	name, _ := json.Marshal(method)
	b.WriteString(`"method":`)
	b.Write(name)
	b.WriteString(`,"params":["`)
	tail := `"]}`
	n := max(total-b.Len()-len(tail), 0)
	b.Grow(n + len(tail))
	b.Write(bytes.Repeat([]byte{'x'}, n))
	b.WriteString(tail)
	m.b = b.Bytes()
	m.setID(1)
	return &m
}

// newEcho builds an "echo" request whose string param is strLen bytes.
func newEcho(strLen int) *message {
	probe := newMessage("echo", false, 0)
	return newMessage("echo", false, strLen+len(probe.b))
}

// setID writes id into the message; the message must not be being
// written.
func (m *message) setID(id int64) {
	if m.idOff < 0 {
		return
	}
	f := m.b[m.idOff : m.idOff+idWidth]
	for i := range f {
		f[i] = ' '
	}
	s := strconv.FormatInt(id, 10)
	copy(f[idWidth-len(s):], s)
}

// dialRaw opens a raw WebSocket connection to url with no read limit,
// bounded by timeout.
func dialRaw(ctx context.Context, url string, timeout time.Duration) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(-1)
	return c, nil
}

// readAnswer reads one message, keeps its first bytes and discards the
// rest, and says what it was: "ok" for a result, "rpc error <code> <msg>"
// for an error object, or an error for a failed read.
func readAnswer(ctx context.Context, c *websocket.Conn) (string, int64, error) {
	_, r, err := c.Reader(ctx)
	if err != nil {
		return "", 0, err
	}
	head := make([]byte, 4096)
	k, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", int64(k), err
	}
	head = head[:k]
	rest, err := io.Copy(io.Discard, r)
	if err != nil {
		return "", int64(k) + rest, err
	}
	return classify(head), int64(k) + rest, nil
}

// classify says what a response (or its first bytes) is.
func classify(head []byte) string {
	var resp struct {
		Error *struct {
			Code    int64  `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	switch {
	case len(head) > 0 && head[0] == '[':
		return "batch answer"
	case bytes.Contains(head, []byte(`"result"`)):
		return "ok"
	case json.Unmarshal(head, &resp) == nil && resp.Error != nil:
		return fmt.Sprintf("rpc error %d %s", resp.Error.Code, resp.Error.Message)
	default:
		if len(head) > 80 {
			head = head[:80]
		}
		return fmt.Sprintf("unexpected answer %q", head)
	}
}

// describeEnd says how a connection ended, from the error that ended it:
// the close status the server sent, or the error itself.
func describeEnd(err error) string {
	if err == nil {
		return "no error"
	}
	if st := websocket.CloseStatus(err); st != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		return fmt.Sprintf("closed by server: status %d %s %q", int(st), st, ce.Reason)
	}
	return errKey(err)
}
