package obs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wsrpc/wsrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCodeSetIsBounded(t *testing.T) {
	t.Parallel()
	var c CodeSet
	for i := range MaxCodes {
		require.Equal(t, fmt.Sprint(i), c.Label(fmt.Sprint(i)))
	}
	require.Equal(t, Other, c.Label("new"))
	require.Equal(t, "3", c.Label("3"), "a code seen keeps its label")
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		context.Canceled: "canceled",
		fmt.Errorf("x: %w", context.DeadlineExceeded):   "deadline_exceeded",
		fmt.Errorf("%w: gone", wsrpc.ErrClosed):         "closed",
		fmt.Errorf("%w: 5 MiB", wsrpc.ErrMessageTooBig): "message_too_big",
		errors.New("something else"):                    "",
		wsrpc.ErrInternal:                               "",
	} {
		got, ok := ErrorKind(err)
		require.Equal(t, want, got)
		require.Equal(t, want != "", ok)
	}
}
