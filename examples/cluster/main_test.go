package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/chat/chat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMessageCrossesInstances starts the cluster in-process on free
// ports, as main does, and has a Go client on the first instance say
// something in a room that a Go client on the third instance is in.
func TestMessageCrossesInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan []string, 1)
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, NATSPort: -1}, func(u []string) { urls <- u })
	}()
	var u []string
	select {
	case u = <-urls:
	case err := <-ran:
		t.Fatal(err)
	}
	require.Len(t, u, 3)

	ada, _ := user(t, u[0], "ada")
	bob, bobGot := user(t, u[2], "bob")
	for _, p := range []*wsrpc.Peer{ada, bob} {
		var members []string
		require.NoError(t, p.Call(ctx, "join", []string{"lobby"}, &members))
	}
	var sent int
	require.NoError(t, ada.Call(ctx, "say", []string{"hello from port 1"}, &sent))
	require.Equal(t, 1, sent, "on ada's instance: ada")
	select {
	case m := <-bobGot:
		require.Equal(t, "ada", m.From)
		require.Equal(t, "lobby", m.Room)
		require.Equal(t, "hello from port 1", m.Text)
	case <-time.After(30 * time.Second):
		t.Fatal("bob, on the third instance, did not get ada's message")
	}

	for _, p := range []*wsrpc.Peer{ada, bob} {
		p.Close()
	}
	cancel()
	require.NoError(t, <-ran)
}

// user connects to the chat whose page is at pageURL as name, answering
// presence calls, and returns the messages it gets.
func user(t *testing.T, pageURL, name string) (*wsrpc.Peer, <-chan chat.Message) {
	t.Helper()
	got := make(chan chat.Message, 10)
	m := wsrpc.NewMethods()
	wsrpc.Register(m, "presence", func(context.Context, chat.Presence) (bool, error) { return true, nil })
	wsrpc.Register(m, "rooms", func(context.Context, []chat.Room) (any, error) { return nil, nil })
	wsrpc.Register(m, "message", func(_ context.Context, msg chat.Message) (any, error) {
		got <- msg
		return nil, nil
	})
	url := "ws" + strings.TrimPrefix(pageURL, "http") + "rpc?token=" + name
	p, err := wsrpc.Dial(context.Background(), url, &wsrpc.DialOptions{Methods: m})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, got
}
