package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// dialParallel is how many connections conns and post dial at once.
const dialParallel = 32

// runConns dials -n connections, then has each send one large echo request
// at the same moment and read its answer.
func runConns(cfg config, srv *server) (*result, error) {
	needFiles(cfg.n)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.d)
	defer cancel()
	start := time.Now()
	msg := newMessage("echo", false, int(cfg.size)) // shared: nobody changes it
	fmt.Printf("conns: %d connections, one echo request of %s each (%s in all), cap %v\n",
		cfg.n, mib(int64(len(msg.b))), mib(int64(len(msg.b))*int64(cfg.n)), cfg.d)

	conns := make([]*websocket.Conn, cfg.n)
	failed := counts{}
	var mu sync.Mutex
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := dialRaw(ctx, srv.url(), dialTimeout)
			if err != nil {
				mu.Lock()
				failed["dial: "+errKey(err)]++
				mu.Unlock()
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	dialled := cfg.n - failed.total()
	before := srv.memory()
	fmt.Printf("dialled %d in %.2fs; server RSS %s, %d fds\n", dialled, time.Since(start).Seconds(), mib(before.rss), before.fds)

	release := make(chan struct{})
	var took []time.Duration // of the answered requests
	ok := 0
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Go(func() {
			<-release
			t0 := time.Now()
			what := "ok"
			err := c.Write(ctx, websocket.MessageText, msg.b)
			if err != nil {
				what = "write: " + describeEnd(err)
			} else if what, _, err = readAnswer(ctx, c); err != nil {
				what = "read: " + describeEnd(err)
				if ctx.Err() != nil {
					what = "no answer by the cap"
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if what == "ok" {
				ok++
				took = append(took, time.Since(t0))
			} else {
				failed[what]++
			}
		})
	}
	t0 := time.Now()
	close(release)
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-srv.dead:
		cancel() // the rest fail at once
		<-all
	}
	wall := time.Since(t0)
	m := srv.memory()

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(took)
	fmt.Printf("answered: %d of %d; failed: %d; all done %.2fs after the release\n", ok, cfg.n, failed.total(), wall.Seconds())
	if ok > 0 {
		fmt.Printf("  time to answer: min %v, median %v, max %v\n", took[0].Round(time.Millisecond),
			percentile(took, 0.5).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	}
	if len(failed) > 0 {
		fmt.Println("failures:")
		failed.print("  ")
	}
	fmt.Printf("server: peak RSS %s (%s with the connections idle), peak fds %d\n", mib(m.peakHWM), mib(before.rss), m.peakFDs)

	res := newResult("conns")
	res.add("n", cfg.n)
	res.add("size", len(msg.b))
	res.add("answered", ok)
	res.add("failed", failed.total())
	res.add("wall_s", wall)
	res.add("capped", b2i(errors.Is(ctx.Err(), context.DeadlineExceeded)))
	res.add("idle_rss_mib", mibNum(before.rss))
	return res, nil
}
