package wsrpc

// In-package micro-benchmarks: the wire codec, the method table, and a Call
// round trip over the in-memory pipe and over real loopback WebSocket. The
// cross-library comparison lives in bench/ (its own module); these isolate
// wsrpc's own layers so a change to one of them can be measured alone:
//
//	go test -run '^$' -bench . -benchmem .
//	go test -run '^$' -bench CallPipe/seq -benchtime 3s -cpuprofile cpu.out .
//
// Every benchmark closes the peers it starts, so the package's goroutine
// leak check (if any) stays quiet.

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const benchRequest = `{"jsonrpc":"2.0","id":12345,"method":"sum","params":[1,2]}`

// benchBatchMessage returns a batch of n sum requests, as a client sends it.
func benchBatchMessage(n int) []byte {
	b := []byte{'['}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRequestHead(b, uint64(i+1), "sum")
		b = append(b, `,"params":[`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ",2]}"...)
	}
	return append(b, ']')
}

// benchMethods serves sum [a,b] -> a+b, typed as a user would register it.
func benchMethods() *Methods {
	m := NewMethods()
	Register(m, "sum", func(_ context.Context, p [2]int) (int, error) { return p[0] + p[1], nil })
	return m
}

// benchPipePeers returns two started peers over the in-memory pipe; the
// second serves benchMethods. Both are closed when b ends.
func benchPipePeers(b *testing.B) (client, server *Peer) {
	b.Helper()
	ea, eb := newPipe(64)
	client = newPeer(ea, (&options{}).config(), nil, nil)
	server = newPeer(eb, (&options{Methods: benchMethods()}).config(), nil, nil)
	client.start()
	server.start()
	b.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	msg := []byte(benchRequest)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var env envelope
		end, err := parseObject(msg, 0, &env)
		if err != nil || end != len(msg) || env.invalid != "" || !env.isRequest() {
			b.Fatalf("parse: %v %q", err, env.invalid)
		}
	}
}

// BenchmarkDecodeBatch does what routeBatch does to a batch of 100 requests
// before admitting it: validate the array, split it, parse every element.
func BenchmarkDecodeBatch(b *testing.B) {
	msg := benchBatchMessage(100)
	items := make([]serverItem, 0, 100)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		end, err := scanValue(msg, 0, 0)
		if err != nil || end != len(msg) {
			b.Fatal("scan", err)
		}
		elems := splitArray(nil, msg)
		items = items[:0]
		for _, el := range elems {
			var env envelope
			parseObject(el, 0, &env)
			if env.invalid != "" || !env.isRequest() {
				b.Fatalf("item: %q", env.invalid)
			}
			items = append(items, serverItem{env: env})
		}
		if len(items) != 100 {
			b.Fatalf("%d items", len(items))
		}
	}
}

// BenchmarkEncodeRequest builds the request of Peer.Call: the head plus the
// params, for params of a type appendValue writes directly ([]int) and one
// that goes through encoding/json ([2]int, what the bench contender sends).
func BenchmarkEncodeRequest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		params any
	}{
		{"array2", [2]int{1, 2}},
		{"slice", []int{1, 2}},
		{"raw", json.RawMessage(`[1,2]`)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			id := uint64(0)
			for b.Loop() {
				id++
				buf = appendRequestHead(buf[:0], id, "sum")
				var err error
				if buf, err = appendParams(buf, tc.params, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeBatch builds a batch of 100 calls through the public Batch
// API and encodes it, as Peer.Batch does before sending.
func BenchmarkEncodeBatch(b *testing.B) {
	p := &Peer{cfg: (&options{}).config()}
	res := make([]int, 100)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		bt := p.NewBatch()
		for i := range 100 {
			bt.Call("sum", [2]int{i, 2}, &res[i])
		}
		var err error
		if buf, err = bt.encode(buf[:0], 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDispatch serves one parsed request through the method table:
// lookup, typed params decoding, the handler, and the response encoding
// (serveOne without the write).
func BenchmarkDispatch(b *testing.B) {
	msg := []byte(benchRequest)
	var env envelope
	if _, err := parseObject(msg, 0, &env); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, m *Methods) {
		ea, _ := newPipe(1)
		cfg := (&options{Methods: m}).config()
		p := newPeer(ea, cfg, nil, nil) // never started: no goroutines
		b.Cleanup(func() { p.Close() })
		var buf []byte
		req := new(Request) // pooled with the inbound message in the real path
		b.ReportAllocs()
		for b.Loop() {
			res, err := p.dispatch(p.slotCtx, &env, req)
			buf = appendResponse(buf[:0], req, res, err, int(cfg.MaxMessageSize), cfg)
		}
		if want := `{"jsonrpc":"2.0","id":12345,"result":3}`; string(buf) != want {
			b.Fatalf("got %s want %s", buf, want)
		}
	}
	b.Run("register-array2", func(b *testing.B) { run(b, benchMethods()) })
	b.Run("register-slice", func(b *testing.B) {
		m := NewMethods()
		Register(m, "sum", func(_ context.Context, p []int) (int, error) { return p[0] + p[1], nil })
		run(b, m)
	})
	b.Run("handle-raw", func(b *testing.B) {
		m := NewMethods()
		m.Handle("sum", func(_ context.Context, req *Request) (any, error) { return 3, nil })
		run(b, m)
	})
}

// BenchmarkCallPipe is a Call round trip between two peers over the
// in-memory pipe: everything wsrpc does, without the network.
func BenchmarkCallPipe(b *testing.B) {
	b.Run("seq", func(b *testing.B) {
		client, _ := benchPipePeers(b)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			var r int
			if err := client.Call(ctx, "sum", [2]int{1, 2}, &r); err != nil || r != 3 {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("par", func(b *testing.B) {
		client, _ := benchPipePeers(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var r int
				if err := client.Call(ctx, "sum", [2]int{1, 2}, &r); err != nil || r != 3 {
					b.Error(r, err)
					return
				}
			}
		})
	})
}

// BenchmarkCallWebSocket is a Call round trip over real loopback TCP: a
// Server behind httptest and a dialed client, both with default options.
func BenchmarkCallWebSocket(b *testing.B) {
	srv := newServer(&options{Methods: benchMethods()})
	ts := httptest.NewServer(srv)
	ctx := context.Background()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	client, err := dial(dctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	cancel()
	if err != nil {
		ts.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		client.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
		ts.Close()
	})
	b.Run("seq", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r int
			if err := client.Call(ctx, "sum", [2]int{1, 2}, &r); err != nil || r != 3 {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("par", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var r int
				if err := client.Call(ctx, "sum", [2]int{1, 2}, &r); err != nil || r != 3 {
					b.Error(r, err)
					return
				}
			}
		})
	})
}
