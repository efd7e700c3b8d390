package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// blockedAfter is how long a write must take to count as blocked.
const blockedAfter = time.Second

// pinSleep is the notification that occupies the notification handler.
const pinSleep = `{"jsonrpc":"2.0","method":"sleep","params":{"ms":60000}}`

// runPin sends a long sleep notification, then -n large update
// notifications behind it on the same connection, and watches what the
// server holds and whether it closes the connection.
func runPin(cfg config, srv *server) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.d)
	defer cancel()
	start := time.Now()
	c, err := dialRaw(ctx, srv.url(), dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("pin: dial: %w", err)
	}
	defer c.CloseNow()
	update := newMessage("update", true, int(cfg.size))
	fmt.Printf("pin: 1 sleep notification, then %d update notifications of %s each (%s in all), cap %v\n",
		cfg.n, mib(int64(len(update.b))), mib(int64(len(update.b))*int64(cfg.n)), cfg.d)

	// The reader sees the server's close frame, or the connection fail.
	closed := make(chan ending, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				closed <- ending{err, time.Since(start), ctx.Err() != nil}
				return
			}
		}
	}()

	// The writer counts what the connection took.
	var written atomic.Int64
	var lastWrite atomic.Int64 // when the last write completed, since start
	writerDone := make(chan ending, 1)
	go func() {
		err := c.Write(ctx, websocket.MessageText, []byte(pinSleep))
		lastWrite.Store(int64(time.Since(start)))
		for i := 0; err == nil && i < cfg.n; i++ {
			if err = c.Write(ctx, websocket.MessageText, update.b); err == nil {
				written.Add(1)
				lastWrite.Store(int64(time.Since(start)))
			}
		}
		writerDone <- ending{err, time.Since(start), ctx.Err() != nil}
	}()

	// Wait for the cap, or for all written and the connection closed; on
	// the way, note the first write that blocked.
	var (
		writeEnd, closeEnd *ending
		firstBlock         = int64(-1) // updates written before it
		firstBlockAt       time.Duration
		tick               = time.NewTicker(100 * time.Millisecond)
	)
	defer tick.Stop()
	for (writeEnd == nil || closeEnd == nil) && ctx.Err() == nil && srv.alive() {
		select {
		case e := <-writerDone:
			writeEnd = &e
		case e := <-closed:
			closeEnd = &e
		case <-srv.dead:
		case <-ctx.Done():
		case <-tick.C:
			last := time.Duration(lastWrite.Load())
			if writeEnd == nil && firstBlock < 0 && time.Since(start)-last > blockedAfter {
				firstBlock, firstBlockAt = written.Load(), last
			}
		}
	}
	elapsed := time.Since(start)
	n := written.Load()
	last := time.Duration(lastWrite.Load())
	m := srv.memory()
	c.CloseNow()

	fmt.Printf("written: %d of %d updates (%s) in %.2fs\n", n, cfg.n, mib(n*int64(len(update.b))), elapsed.Seconds())
	if firstBlock >= 0 {
		fmt.Printf("  the first write to block (over %v) came after %d updates, at %.2fs\n", blockedAfter, firstBlock, firstBlockAt.Seconds())
	}
	state := "writing"
	switch {
	case writeEnd != nil && writeEnd.err == nil:
		state = "done"
		fmt.Printf("  all written by %.2fs\n", writeEnd.after.Seconds())
	case writeEnd != nil && !writeEnd.ours:
		state = "failed"
		fmt.Printf("  a write failed at %.2fs: %s\n", writeEnd.after.Seconds(), describeEnd(writeEnd.err))
	case elapsed-last > blockedAfter:
		state = "blocked"
		fmt.Printf("  a write was blocked at the end, since %.2fs\n", last.Seconds())
	default:
		fmt.Println("  still writing at the end")
	}
	serverClosed := closeEnd != nil && !closeEnd.ours && !m.exited
	closeStatus := -1
	switch {
	case m.exited:
		fmt.Println("the server process died with the connection open")
	case serverClosed:
		closeStatus = int(websocket.CloseStatus(closeEnd.err))
		fmt.Printf("the server closed the connection at %.2fs: %s\n", closeEnd.after.Seconds(), describeEnd(closeEnd.err))
	default:
		fmt.Printf("the connection was still open at the cap (%v)\n", cfg.d)
	}
	fmt.Printf("server: peak RSS %s, RSS at the end %s\n", mib(m.peakHWM), mib(m.rss))

	res := newResult("pin")
	res.add("n", cfg.n)
	res.add("size", len(update.b))
	res.add("written", n)
	res.add("write_state", state)
	res.add("first_block_after", firstBlock)
	res.add("server_closed", b2i(serverClosed))
	res.add("close_status", closeStatus)
	if serverClosed {
		res.add("close_at_s", closeEnd.after)
	} else {
		res.add("close_at_s", "-")
	}
	res.add("final_rss_mib", mibNum(m.rss))
	return res, nil
}

// ending is how a goroutine's connection use ended, and when; ours is
// true when the cap ended it.
type ending struct {
	err   error
	after time.Duration
	ours  bool
}
