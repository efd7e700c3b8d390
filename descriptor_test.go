package wsrpc

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

type divArgs struct {
	A int `json:"a"`
	B int `json:"b"`
}

// The API of the descriptor tests, declared once and used by both sides.
var (
	descDiv    = NewMethod[divArgs, int]("div")
	descSum    = NewMethod[[]int, int]("sum")
	descDouble = NewMethod[int, int]("double")
	descPtr    = NewMethod[*divArgs, string]("ptr")
	descRaw    = NewMethod[json.RawMessage, json.RawMessage]("raw")
	descPair   = NewMethod[[2]string, string]("pair")
	descLog    = NewNotification[[]string]("log")
	descAPI    = []Descriptor{descDiv, descSum, descDouble, descPtr, descRaw, descPair, descLog}
)

func descMethods(logged chan<- string) *Methods {
	m := NewMethods()
	m.Declare(descAPI...)
	descDiv.Register(m, func(_ context.Context, a divArgs) (int, error) {
		if a.B == 0 {
			return 0, &Error{Code: 1, Message: "division by zero"}
		}
		return a.A / a.B, nil
	})
	descSum.Register(m, func(_ context.Context, ns []int) (int, error) {
		s := 0
		for _, n := range ns {
			s += n
		}
		return s, nil
	})
	descDouble.Register(m, func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	descPtr.Register(m, func(_ context.Context, a *divArgs) (string, error) {
		if a == nil {
			return "none", nil
		}
		return "some", nil
	})
	descRaw.Register(m, func(_ context.Context, r json.RawMessage) (json.RawMessage, error) { return r, nil })
	descPair.Register(m, func(_ context.Context, p [2]string) (string, error) { return p[0] + p[1], nil })
	descLog.Register(m, func(_ context.Context, lines []string) error {
		logged <- lines[0]
		return nil
	})
	return m
}

func TestDescriptorsBothSides(t *testing.T) {
	t.Parallel()
	logged := make(chan string, 4)
	m := descMethods(logged)
	require.Empty(t, m.Unhandled())
	a, _ := pipePair(t, nil, &options{Methods: m})
	ctx := context.Background()

	q, err := descDiv.Call(ctx, a, divArgs{A: 7, B: 2})
	require.NoError(t, err)
	require.Equal(t, 3, q)
	_, err = descDiv.Call(ctx, a, divArgs{A: 1})
	require.ErrorIs(t, err, &Error{Code: 1})

	s, err := descSum.Call(ctx, a, []int{1, 2, 3})
	require.NoError(t, err)
	require.Equal(t, 6, s)
	s, err = descSum.Call(ctx, a, nil) // a nil slice sends no params
	require.NoError(t, err)
	require.Equal(t, 0, s)

	d, err := descDouble.Call(ctx, a, 21) // a scalar goes as [21]
	require.NoError(t, err)
	require.Equal(t, 42, d)

	got, err := descPtr.Call(ctx, a, nil)
	require.NoError(t, err)
	require.Equal(t, "none", got)
	got, err = descPtr.Call(ctx, a, &divArgs{})
	require.NoError(t, err)
	require.Equal(t, "some", got)

	raw, err := descRaw.Call(ctx, a, json.RawMessage(`{"k":[1]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"k":[1]}`, string(raw))

	got, err = descPair.Call(ctx, a, [2]string{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, "ab", got)

	require.NoError(t, descLog.Notify(ctx, a, []string{"hello"}))
	require.Equal(t, "hello", <-logged)

	// The same descriptors in a batch.
	var q2, d2 int
	var c3 *BatchCall
	require.NoError(t, a.Batch(ctx, func(b *Batch) {
		descDiv.Batch(b, divArgs{A: 9, B: 3}, &q2)
		descDouble.Batch(b, 5, &d2)
		c3 = descDiv.Batch(b, divArgs{A: 1}, nil) // nil result: discarded
		descLog.Batch(b, []string{"batched"})
	}))
	require.Equal(t, 3, q2)
	require.Equal(t, 10, d2)
	require.ErrorIs(t, c3.Err(), &Error{Code: 1})
	require.Equal(t, "batched", <-logged)
}

func TestDescriptorNoPeer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var p *Peer
	_, err := descDiv.Call(ctx, p, divArgs{})
	require.ErrorIs(t, err, ErrNoPeer)
	_, err = descDiv.Call(ctx, nil, divArgs{})
	require.ErrorIs(t, err, ErrNoPeer)
	require.ErrorIs(t, descLog.Notify(ctx, nil, nil), ErrNoPeer)
	require.Panics(t, func() { NewMethod[int, int]("") })
	require.Panics(t, func() { NewNotification[int]("") })
}

func TestDeclareReportsUnhandled(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	m.Declare(descAPI...)
	m.Declare(descDiv) // twice: no effect
	require.Equal(t, []string{"div", "double", "log", "pair", "ptr", "raw", "sum"}, m.Unhandled())
	require.Empty(t, m.Names(), "declared methods are not served")

	descDouble.Register(m, func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	m.Use(func(next Handler) Handler { return next }) // skips declared entries
	require.Equal(t, []string{"div", "log", "pair", "ptr", "raw", "sum"}, m.Unhandled())
	require.Equal(t, []string{"double"}, m.Names())
	m.Declare(descDouble) // already registered: still served
	require.Equal(t, []string{"double"}, m.Names())

	_, raw := rawPeer(t, &options{Methods: m})
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found: \"div\""}}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":1,"method":"div","params":[1,2]}`))
	require.JSONEq(t, `{"jsonrpc":"2.0","id":2,"result":8}`,
		exchange(t, raw, `{"jsonrpc":"2.0","id":2,"method":"double","params":[4]}`))

	require.Panics(t, func() { m.Declare(NewMethod[int, int]("rpc.reserved")) })
	require.Panics(t, func() { descDouble.Register(m, func(context.Context, int) (int, error) { return 0, nil }) })
}
