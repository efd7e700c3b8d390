package wsrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file drives lock-step calls over real loopback sockets in every
// combination that decides who reads the answer: payload size, a context
// that can end or not, a typed or raw handler. None may stall. A watchdog
// that sees no call complete for a long while fails the test with a dump
// of every goroutine, instead of letting it hang.
//
// The suite runs a few thousand calls per setting. WSRPC_STRESS=full runs
// 100 000 per setting (about half an hour on two cores):
//
//	WSRPC_STRESS=full go test -run TestStressLockStep -cpu 1,2,4 -timeout 3h .

// stressCalls is the number of calls per setting for a payload of size.
func stressCalls(size int) int {
	switch os.Getenv("WSRPC_STRESS") {
	case "full":
		return 100_000
	case "medium":
		return 10_000
	}
	n := 2000
	switch {
	case size >= 1<<20:
		n = 40
	case size >= 64<<10:
		n = 300
	}
	if raceEnabled {
		n /= 5
	}
	return n
}

// stallWatch fails t with a goroutine dump when progress stops moving for
// quiet, then calls unblock (which should end the stalled call: close its
// peer), and returns a function that stops it.
func stallWatch(t *testing.T, progress *atomic.Int64, quiet time.Duration, unblock func()) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		last := progress.Load()
		tick := time.NewTicker(quiet)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if n := progress.Load(); n != last {
					last = n
					continue
				}
				var b strings.Builder
				pprof.Lookup("goroutine").WriteTo(&b, 2)
				t.Errorf("no call completed for %v after %d calls: stalled\n%s", quiet, last, b.String())
				unblock()
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// TestStressLockStep: lock-step calls echoing 16 B, 64 KiB and 1 MiB,
// with context.Background and with a per-call deadline, to a typed and to
// a raw handler. Until e64ff61, 1 MiB with context.Background stalled
// after about a hundred calls: see TestLargeBackgroundCallsNeverStall.
func TestStressLockStep(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]string) (string, error) { return p[0], nil })
	m.HandleRaw("raw", func(_ context.Context, p json.RawMessage) (any, error) { return p, nil })
	s := rsNewServer(t, options{Methods: m})
	for _, size := range []int{16, 64 << 10, 1 << 20} {
		for _, withCtx := range []bool{false, true} {
			for _, method := range []string{"echo", "raw"} {
				name := fmt.Sprintf("%dB/ctx=%v/%s", size, withCtx, method)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					stressLockStep(t, s.url, size, withCtx, method, stressCalls(size))
				})
			}
		}
	}
}

func stressLockStep(t *testing.T, url string, size int, withCtx bool, method string, calls int) {
	p := rsDial(t, url, &options{})
	payload := strings.Repeat("x", size)
	var done atomic.Int64
	defer stallWatch(t, &done, 30*time.Second, func() { p.Close() })()
	for i := range calls {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if withCtx {
			ctx, cancel = context.WithTimeout(ctx, time.Hour)
		}
		var err error
		var got string
		if method == "echo" {
			got, err = Call[string](ctx, p, method, []string{payload})
		} else {
			var raw []string
			err = p.Call(ctx, method, []string{payload}, &raw)
			if len(raw) == 1 {
				got = raw[0]
			}
		}
		cancel()
		require.NoError(t, err, "call %d", i)
		require.Equal(t, size, len(got), "call %d", i)
		done.Add(1)
	}
}

// TestLargeBackgroundCallsNeverStall is the regression test of the stall
// found on e64ff61: lock-step calls with context.Background echoing 1 MiB
// to a typed string handler stalled, the client's one pending call with no
// goroutine reading and no timer armed to start one (in three runs out of
// three, after about a hundred calls), until keepalive closed the
// connection. Keepalive is off here, so a stall is caught by the watchdog:
// on e64ff61 this test stalls within its first 120 calls, the client's
// caller waiting in send with no goroutine of the client reading.
func TestLargeBackgroundCallsNeverStall(t *testing.T) {
	t.Parallel()
	m := NewMethods()
	Register(m, "echo", func(_ context.Context, p [1]string) (string, error) { return p[0], nil })
	s := rsNewServer(t, options{Methods: m, Limits: Limits{PingInterval: -1}})
	p := rsDial(t, s.url, &options{Limits: Limits{PingInterval: -1}})
	payload := strings.Repeat("y", 1<<20)
	var done atomic.Int64
	defer stallWatch(t, &done, 30*time.Second, func() { p.Close() })()
	for i := range 3 * stressCalls(1<<20) {
		got, err := Call[string](context.Background(), p, "echo", []string{payload})
		require.NoError(t, err, "call %d", i)
		require.Len(t, got, len(payload))
		done.Add(1)
	}
}
