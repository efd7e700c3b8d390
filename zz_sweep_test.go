package wsrpc

import (
	"context"
	"strings"
	"testing"
)

func BenchmarkSweep(b *testing.B) {
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]string) (string, error) { return p[0], nil })
	client := benchWebSocket(b, m)
	ctx := context.Background()
	const pat = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	size := 1024
	for _, pl := range []struct{ n, p string }{{"mixed", strings.Repeat(pat, size/len(pat)+1)[:size]}, {"x", strings.Repeat("x", size)}, {"a", strings.Repeat("a", size)}, {"digits", strings.Repeat("0123456789", 103)[:size]}} {
		payload := pl.p
		b.Run(pl.n, func(b *testing.B) {
			for b.Loop() {
				var r string
				if err := client.Call(ctx, "echo", []string{payload}, &r); err != nil || len(r) != size {
					b.Fatal(len(r), err)
				}
			}
		})
	}
}
