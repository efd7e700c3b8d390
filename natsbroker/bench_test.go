package natsbroker_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wsrpc/wsrpc"
)

// The benchmarks below measure the same operation twice per iteration,
// once within one instance and once across two through NATS (embedded, on
// loopback), and report both side by side with their ratio:
//
//	go test -run '^$' -bench . -benchtime 2s ./natsbroker
//
// local-ns/op and nats-ns/op are each one operation's time; ns/op is
// their sum.

// receivers counts the "news" a set of clients got, and signals when the
// count reaches want.
type receivers struct {
	got, want atomic.Int64
	reached   chan struct{}
}

func newReceivers() *receivers { return &receivers{reached: make(chan struct{}, 1)} }

func (r *receivers) onNews(news) {
	if r.got.Add(1) == r.want.Load() {
		r.reached <- struct{}{}
	}
}

// await returns once n more messages than before have arrived.
func (r *receivers) await(b *testing.B, n int) func() {
	r.want.Store(r.got.Load() + int64(n))
	return func() {
		select {
		case <-r.reached:
		case <-time.After(bound):
			b.Fatalf("got %d of %d", r.got.Load(), r.want.Load())
		}
	}
}

// BenchmarkPublish: Server.Publish of one notification to the N peers of
// a topic, until all N have read it. local: the N peers are on the
// publishing instance, which has no Broker. nats: they are on another
// instance; the message goes through NATS and that instance delivers it.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			local := wsrpc.NewServer(&wsrpc.ServerOptions{Methods: instanceMethods(&instance{label: "local"})})
			hs := httptest.NewServer(local)
			b.Cleanup(func() {
				local.Shutdown(ctx)
				hs.Close()
			})
			_, ins := startCluster(b, 2)
			lr, nr := newReceivers(), newReceivers()
			for range n {
				// join: a round trip, after which the peer is a member.
				l := dialClient(b, "ws"+strings.TrimPrefix(hs.URL, "http"), clientMethods("l", lr.onNews, nil, nil))
				require.NoError(b, l.Call(ctx, "join", []string{"room"}, nil))
				r := dialClient(b, ins[1].ws, clientMethods("n", nr.onNews, nil, nil))
				require.NoError(b, r.Call(ctx, "join", []string{"room"}, nil))
			}
			b.ReportAllocs()
			b.ResetTimer()
			var tLocal, tNATS time.Duration
			for range b.N {
				t0 := time.Now()
				wait := lr.await(b, n)
				_, err := local.Publish(ctx, "room", "news", news{})
				require.NoError(b, err)
				wait()
				t1 := time.Now()
				wait = nr.await(b, n)
				_, err = ins[0].Publish(ctx, "room", "news", news{})
				require.NoError(b, err)
				wait()
				tLocal += t1.Sub(t0)
				tNATS += time.Since(t1)
			}
			report(b, tLocal, tNATS)
		})
	}
}

// BenchmarkCallPeer: Server.CallPeer of a method that answers at once, on
// a named peer of the calling instance (local) or of another (nats).
func BenchmarkCallPeer(b *testing.B) {
	ctx := context.Background()
	_, ins := startCluster(b, 2)
	login(b, dialClient(b, ins[0].ws, clientMethods("here", nil, nil, nil)), "here", "")
	login(b, dialClient(b, ins[1].ws, clientMethods("there", nil, nil, nil)), "there", "")
	b.ReportAllocs()
	b.ResetTimer()
	var tLocal, tNATS time.Duration
	var who string
	for range b.N {
		t0 := time.Now()
		require.NoError(b, ins[0].CallPeer(ctx, "here", "whoami", nil, &who))
		t1 := time.Now()
		require.NoError(b, ins[0].CallPeer(ctx, "there", "whoami", nil, &who))
		tLocal += t1.Sub(t0)
		tNATS += time.Since(t1)
	}
	report(b, tLocal, tNATS)
}

func report(b *testing.B, local, nats time.Duration) {
	b.ReportMetric(float64(local.Nanoseconds())/float64(b.N), "local-ns/op")
	b.ReportMetric(float64(nats.Nanoseconds())/float64(b.N), "nats-ns/op")
	b.ReportMetric(float64(nats)/float64(local), "nats/local")
}
