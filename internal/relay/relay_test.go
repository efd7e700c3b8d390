package relay

import (
	"bufio"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRelayForwardsAndCuts: bytes go both ways through the relay, and Cut
// fails the connection for both ends.
func TestRelayForwardsAndCuts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = c.Write([]byte("echo " + line))
		}
		echoed <- err
		var b [1]byte
		c.Read(b[:]) // until the cut
	}()

	r, err := Start(ln.Addr().String(), nil)
	require.NoError(t, err)
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("hello\n"))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	got, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "echo hello\n", got)
	require.NoError(t, <-echoed)

	r.Cut()
	_, err = br.ReadByte()
	require.Error(t, err)
}
