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
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
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

// BenchmarkDecodeBatch does what route does to a batch of 100 requests
// before admitting it: parse it in one pass, every element into an item.
func BenchmarkDecodeBatch(b *testing.B) {
	msg := benchBatchMessage(100)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var env envelope
	for b.Loop() {
		sb := getBatch(nil)
		kind, refusal := parseMessage(msg, 1000, &env, sb, nil)
		if kind != msgBatch || refusal != nil || len(sb.items) != 100 || sb.items[99].env.invalid != "" {
			b.Fatalf("kind %d, %v", kind, refusal)
		}
		sb.release()
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
		bt.recycle() // as Send does
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
	b.Run("batch100", func(b *testing.B) {
		client, _ := benchPipePeers(b)
		ctx := context.Background()
		res := make([]int, 100)
		b.ReportAllocs()
		for b.Loop() {
			err := client.Batch(ctx, func(batch *Batch) {
				for i := range res {
					batch.Call("sum", [2]int{i, 2}, &res[i])
				}
			})
			if err != nil || res[99] != 101 {
				b.Fatal(res[99], err)
			}
		}
	})
	b.Run("par", func(b *testing.B) {
		client, _ := benchPipePeers(b)
		benchParallel(b, func() error { return callSum(client) })
	})
}

// benchWebSocket returns a client dialed to a Server behind httptest that
// serves m, both with default options; everything is closed when b ends.
func benchWebSocket(b *testing.B, m *Methods) *Peer {
	b.Helper()
	srv := newServer(&options{Methods: m})
	ts := httptest.NewServer(srv)
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	return client
}

// BenchmarkEcho is the read and write path for payloads of 1 KiB, 64 KiB
// and 1 MiB over loopback WebSocket: a string echoed through a typed
// handler and a typed result, and the same bytes through HandleRaw and a
// json.RawMessage result. B/op and allocs/op count both ends.
func BenchmarkEcho(b *testing.B) {
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]string) (string, error) { return p[0], nil })
	m.HandleRaw("echo.raw", func(_ context.Context, params json.RawMessage) (any, error) {
		// params is [ "..." ]: hand back the string, unchanged.
		return json.RawMessage(params[1 : len(params)-1]), nil
	})
	client := benchWebSocket(b, m)
	floor := benchFloor(b)
	ctx := context.Background()
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		payload := strings.Repeat("x", size)
		b.Run(fmt.Sprintf("floor/%dk", size>>10), func(b *testing.B) {
			msg := []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":["` + payload + `"]}`)
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			sys := startSyscalls()
			for b.Loop() {
				if err := floor.Write(ctx, websocket.MessageText, msg); err != nil {
					b.Fatal(err)
				}
				_, r, err := floor.Reader(ctx)
				if err == nil {
					buf, err = readAll(buf[:0], r)
				}
				if err != nil || len(buf) != len(msg) {
					b.Fatal(len(buf), err)
				}
			}
			sys.report(b)
		})
		b.Run(fmt.Sprintf("typed/%dk", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			sys := startSyscalls()
			for b.Loop() {
				var r string
				if err := client.Call(ctx, "echo", []string{payload}, &r); err != nil || len(r) != size {
					b.Fatal(len(r), err)
				}
			}
			sys.report(b)
		})
		params := json.RawMessage(`["` + payload + `"]`)
		b.Run(fmt.Sprintf("raw/%dk", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			sys := startSyscalls()
			for b.Loop() {
				var r json.RawMessage
				if err := client.Call(ctx, "echo.raw", params, &r); err != nil || len(r) != size+2 {
					b.Fatal(len(r), err)
				}
			}
			sys.report(b)
		})
	}
}

// benchFloor returns a raw coder/websocket client connected to a server
// that echoes every message: the floor BenchmarkEcho compares with.
func benchFloor(b *testing.B) *websocket.Conn {
	b.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		var buf []byte
		for {
			_, rd, err := c.Reader(r.Context())
			if err == nil {
				buf, err = readAll(buf[:0], rd)
			}
			if err != nil || c.Write(r.Context(), websocket.MessageText, buf) != nil {
				return
			}
		}
	}))
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		ts.Close()
		b.Fatal(err)
	}
	c.SetReadLimit(-1)
	b.Cleanup(func() {
		c.CloseNow()
		ts.Close()
	})
	return c
}

// syscalls counts the process's read and write system calls (Linux's
// /proc/self/io), to report them per op: copies and buffer sizes show
// there before they show in time.
type syscalls struct{ r, w int64 }

func startSyscalls() syscalls {
	var s syscalls
	s.r, s.w = readSyscalls()
	return s
}

func (s syscalls) report(b *testing.B) {
	r, w := readSyscalls()
	if r >= 0 && s.r >= 0 && b.N > 0 {
		b.ReportMetric(float64(r-s.r)/float64(b.N), "reads/op")
		b.ReportMetric(float64(w-s.w)/float64(b.N), "writes/op")
	}
}

func readSyscalls() (r, w int64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1, -1
	}
	r, w = -1, -1
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			r, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			w, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r, w
}

// BenchmarkCallWebSocket is a Call round trip over real loopback TCP: a
// Server behind httptest and a dialed client, both with default options.
func BenchmarkCallWebSocket(b *testing.B) {
	client := benchWebSocket(b, benchMethods())
	ctx := context.Background()
	b.Run("seq", func(b *testing.B) {
		b.ReportAllocs()
		sys := startSyscalls()
		for b.Loop() {
			var r int
			if err := client.Call(ctx, "sum", [2]int{1, 2}, &r); err != nil || r != 3 {
				b.Fatal(r, err)
			}
		}
		sys.report(b)
	})
	b.Run("par", func(b *testing.B) {
		benchParallel(b, func() error { return callSum(client) })
	})
}

// BenchmarkNotifyBurst is 32 goroutines per CPU notifying over one
// loopback WebSocket at once: the messages of writers queued for their turn
// go out together (framewrite.go), so writes/op is well below 1.
func BenchmarkNotifyBurst(b *testing.B) {
	m := benchMethods()
	Register(m, "note", func(context.Context, [1]int) (struct{}, error) { return struct{}{}, nil })
	client := benchWebSocket(b, m)
	benchParallel(b, func() error { return client.Notify(context.Background(), "note", [1]int{1}) })
}

// benchParallel runs op from 32 goroutines per CPU, and reports
// allocations and system calls per op.
func benchParallel(b *testing.B, op func() error) {
	b.ReportAllocs()
	b.SetParallelism(32)
	sys := startSyscalls()
	defer sys.report(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// callSum calls sum(1, 2) and checks the answer.
func callSum(p *Peer) error {
	var r int
	if err := p.Call(context.Background(), "sum", [2]int{1, 2}, &r); err != nil {
		return err
	}
	if r != 3 {
		return fmt.Errorf("sum: got %d", r)
	}
	return nil
}

// BenchmarkBatchWebSocket is a batch of 100 sum calls over loopback
// WebSocket, as bench/'s batch scenario sends it; per op is one batch.
func BenchmarkBatchWebSocket(b *testing.B) {
	client := benchWebSocket(b, benchMethods())
	ctx := context.Background()
	const n = 100
	res := make([]int, n)
	b.ReportAllocs()
	for b.Loop() {
		err := client.Batch(ctx, func(batch *Batch) {
			for i := range n {
				batch.Call("sum", [2]int{i, 2}, &res[i])
			}
		})
		if err != nil || res[n-1] != n+1 {
			b.Fatal(res[n-1], err)
		}
	}
}

// BenchmarkBroadcastBurst broadcasts a small notification to 4 clients of
// one Server, b.N times as fast as Broadcast returns, and waits until every
// client has all of them: per op is one broadcast, delivered 4 times. A
// burst queued for a peer goes out gathered (broadcast.go: drainOutbound).
func BenchmarkBroadcastBurst(b *testing.B) {
	const clients = 4
	srv := newServer(&options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var got atomic.Int64
	m := NewMethods()
	Register(m, "tick", func(context.Context, [1]int) (struct{}, error) {
		got.Add(1)
		return struct{}{}, nil
	})
	ctx := context.Background()
	for range clients {
		c, err := dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), &options{Methods: m, Limits: Limits{MaxNotifications: 1 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
	}
	for srv.Len() < clients {
		runtime.Gosched()
	}
	b.ReportAllocs()
	sys := startSyscalls()
	for b.Loop() {
		if _, err := srv.Broadcast(ctx, "tick", [1]int{1}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(clients*b.N) {
		runtime.Gosched()
	}
	sys.report(b)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}
