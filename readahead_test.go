package wsrpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// This file checks that the answers to requests read ahead together go out
// together (Peer.holdAnswers), and that holding them back never keeps an
// answer, or a call a handler makes, waiting on work that does not end.
// The client speaks raw frames over net.Pipe, in a bubble: one Write of
// several frames arrives in one Read, and the server's Writes are counted.

// raCountConn counts the Writes made to it.
type raCountConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *raCountConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// raFrames encodes msgs as masked client text frames, one after the other.
func raFrames(msgs ...string) []byte {
	var b []byte
	mask := [4]byte{9, 8, 7, 6}
	for _, m := range msgs {
		b = append(b, 0x81)
		if len(m) < 126 {
			b = append(b, 0x80|byte(len(m)))
		} else {
			b = append(b, 0x80|126)
			b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		}
		b = append(b, mask[:]...)
		for i := range len(m) {
			b = append(b, m[i]^mask[i%4])
		}
	}
	return b
}

// raRead reads one unmasked server text frame and decodes its message.
func raRead(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	var h [2]byte
	_, err := io.ReadFull(r, h[:])
	require.NoError(t, err)
	require.Equal(t, byte(0x81), h[0], "a whole text frame")
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		_, err = io.ReadFull(r, l[:])
		require.NoError(t, err)
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return m
}

func raRequest(id int, method string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, id, method)
}

// TestReadAheadAnswersGoOutTogether: ten requests that arrive in one read
// are answered in one write, in order.
func TestReadAheadAnswersGoOutTogether(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		srvConn, cliConn := net.Pipe()
		cc := &raCountConn{Conn: srvConn}
		_, cliConn, cli := rsAcceptOn(t, &options{Methods: rsCountingMethods(&calls), Limits: Limits{PingInterval: -1}}, cc, cliConn)
		synctest.Wait()
		before := cc.writes.Load()

		var reqs []string
		for id := 1; id <= 10; id++ {
			reqs = append(reqs, raRequest(id, "ok"))
		}
		go cliConn.Write(raFrames(reqs...))
		for id := 1; id <= 10; id++ {
			m := raRead(t, cli)
			require.Equal(t, float64(id), m["id"])
			require.Equal(t, true, m["result"])
		}
		synctest.Wait()
		require.Equal(t, int64(1), cc.writes.Load()-before, "writes for ten answers")
	})
}

// TestReadAheadAnswerNotHeldBehindSlowHandler: the answer to a request read
// together with one whose handler blocks goes out while it blocks (once
// the handler has run for the inline budget and reading moves on).
func TestReadAheadAnswerNotHeldBehindSlowHandler(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		m := NewMethods()
		Register(m, "ok", func(context.Context, any) (bool, error) { return true, nil })
		Register(m, "slow", func(ctx context.Context, _ any) (string, error) {
			<-release
			return "done", nil
		})
		_, cliConn, cli := rsAcceptPipe(t, &options{Methods: m, Limits: Limits{PingInterval: -1}})

		go cliConn.Write(raFrames(raRequest(1, "ok"), raRequest(2, "slow")))
		// Should the answer wait for the slow handler, every goroutine
		// of the bubble blocks here, and synctest fails the test.
		first := raRead(t, cli)
		require.Equal(t, float64(1), first["id"])
		close(release)
		second := raRead(t, cli)
		require.Equal(t, float64(2), second["id"])
		require.Equal(t, "done", second["result"])
	})
}

// TestReadAheadCallbackGoesOut: a handler served with answers held back
// calls back the client; its call goes out, and so do the answers.
func TestReadAheadCallbackGoesOut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := NewMethods()
		Register(m, "ok", func(context.Context, any) (bool, error) { return true, nil })
		Register(m, "ask", func(ctx context.Context, _ any) (string, error) {
			return Call[string](ctx, PeerFromContext(ctx), "who", nil)
		})
		_, cliConn, cli := rsAcceptPipe(t, &options{Methods: m, Limits: Limits{PingInterval: -1}})

		go cliConn.Write(raFrames(raRequest(1, "ok"), raRequest(2, "ask"), raRequest(3, "ok")))
		answered := map[float64]any{}
		for len(answered) < 3 {
			msg := raRead(t, cli)
			if msg["method"] == "who" {
				reply := fmt.Sprintf(`{"jsonrpc":"2.0","id":%v,"result":"the client"}`, msg["id"])
				go cliConn.Write(raFrames(reply))
				continue
			}
			answered[msg["id"].(float64)] = msg["result"]
		}
		require.Equal(t, map[float64]any{1: true, 2: "the client", 3: true}, answered)
	})
}

// TestReadAheadAnswersWaitAtMostTheBudget: answers held back while the
// reader serves many requests read together, each quicker than the inline
// budget, go out every time the handoff timer looks, not only after the
// last: the first answer arrives before the last handler starts.
func TestReadAheadAnswersWaitAtMostTheBudget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var gotFirst atomic.Bool
		lastSawFirst := make(chan bool, 1)
		m := NewMethods()
		Register(m, "work", func(_ context.Context, n []int) (int, error) {
			if n[0] == 5 {
				lastSawFirst <- gotFirst.Load()
			}
			time.Sleep(inlineBudget * 6 / 10)
			return n[0], nil
		})
		_, cliConn, cli := rsAcceptPipe(t, &options{Methods: m, Limits: Limits{PingInterval: -1}})

		var reqs []string
		for id := 1; id <= 5; id++ {
			reqs = append(reqs, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"work","params":[%d]}`, id, id))
		}
		go cliConn.Write(raFrames(reqs...))
		for id := 1; id <= 5; id++ {
			msg := raRead(t, cli)
			require.Equal(t, float64(id), msg["id"])
			gotFirst.Store(true)
		}
		require.True(t, <-lastSawFirst, "the first answer waited for the fifth handler to start")
	})
}
