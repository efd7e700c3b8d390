package wsrpc

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The watchdog fires when, and only when, one operation outlives the limit
// (by at most an eighth), however operations and idle spells fall against
// its lazily armed ticks.
func TestWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 10 * time.Second
		var fired atomic.Int32
		var firedAt time.Time
		w := newWatchdog(limit, func() {
			firedAt = time.Now()
			fired.Add(1)
		})

		// Short operations for several limits: never fires.
		for range 30 {
			w.begin()
			time.Sleep(time.Second)
			w.end()
			time.Sleep(time.Second)
		}
		synctest.Wait()
		require.Zero(t, fired.Load())

		// Idle for long: the timer disarms itself and stays quiet.
		time.Sleep(5 * limit)
		synctest.Wait()
		require.Zero(t, fired.Load())

		// An operation that begins late in an armed period still gets
		// its whole limit.
		w.begin()
		time.Sleep(limit - time.Second)
		w.end()
		w.begin()
		time.Sleep(limit - time.Second)
		synctest.Wait()
		require.Zero(t, fired.Load())
		began := time.Now().Add(-(limit - time.Second))

		// Past the limit, it fires once, on time.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		took := firedAt.Sub(began)
		require.Equal(t, int32(1), fired.Load())
		require.True(t, took >= limit && took <= limit*9/8, "fired %v after the operation began", took)
		time.Sleep(3 * limit)
		w.end()
		synctest.Wait()
		require.Equal(t, int32(1), fired.Load())

		// A stopped watchdog never fires.
		w2 := newWatchdog(limit, func() { fired.Add(1) })
		w2.begin()
		w2.stop()
		time.Sleep(3 * limit)
		synctest.Wait()
		require.Equal(t, int32(1), fired.Load())
	})
}
