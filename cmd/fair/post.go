package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// postBody is the part of the 1000-byte body that is ever sent.
const postBody = `{"jsonrpc"`

// stalled is what happened on one stalled POST, timed from its stall.
type stalled struct {
	status   string        // the status line, "" if none came
	statusAt time.Duration // when it came
	closed   string        // how the connection closed, "" if open at the cap
	closedAt time.Duration
	err      string // a failure of our own (dial, write)
}

// outcome is the connection's fate in one phrase.
func (s *stalled) outcome() string {
	switch {
	case s.err != "":
		return s.err
	case s.status != "":
		return "status " + s.status
	case s.closed != "":
		return "closed (" + s.closed + ") with no status"
	default:
		return "no answer, open at the cap"
	}
}

// at is when the outcome happened, 0 for none.
func (s *stalled) at() time.Duration {
	if s.status != "" {
		return s.statusAt
	}
	return s.closedAt
}

// runPost opens -n connections, starts a POST with a 1000-byte body on
// each, sends 10 bytes of it and waits to see what the server does.
func runPost(cfg config, srv *server) (*result, error) {
	needFiles(cfg.n)
	head := "POST /rpc HTTP/1.1\r\nHost: " + srv.addr +
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + postBody
	fmt.Printf("post: %d connections, each a POST head with Content-Length: 1000 and %d bytes of body, then a stall; cap %v\n",
		cfg.n, len(postBody), cfg.d)

	conns := make([]net.Conn, cfg.n)
	res := make([]stalled, cfg.n)
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", srv.addr, dialTimeout)
			if err != nil {
				res[i].err = "dial: " + errKey(err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()

	stallAt := make([]time.Time, cfg.n)
	for i, c := range conns {
		if c == nil {
			continue
		}
		if _, err := io.WriteString(c, head); err != nil {
			res[i].err = "write: " + errKey(err)
			continue
		}
		stallAt[i] = time.Now()
	}
	deadline := time.Now().Add(cfg.d)
	stalledFDs := srv.memory().fds
	fmt.Printf("all stalled; server has %d fds open\n", stalledFDs)

	for i, c := range conns {
		if c == nil || stallAt[i].IsZero() {
			continue
		}
		_ = c.SetReadDeadline(deadline)
		wg.Go(func() { watchStall(c, stallAt[i], &res[i]) })
	}
	wg.Wait() // by the deadline at the latest; a dead server closes them all
	m := srv.memory()

	fmt.Println("per connection (index: outcome at seconds since its stall; closes after a status in brackets):")
	var line []string
	for i := range res {
		r := &res[i]
		s := fmt.Sprintf("#%d: %s", i, r.outcome())
		if r.status != "" || r.closed != "" {
			s += fmt.Sprintf(" at %.2fs", r.at().Seconds())
		}
		if r.status != "" && r.closed != "" {
			s += fmt.Sprintf(" [closed %.2fs]", r.closedAt.Seconds())
		}
		line = append(line, s)
		if len(line) == 3 || i == len(res)-1 {
			fmt.Println("  " + strings.Join(line, "; "))
			line = line[:0]
		}
	}

	byOutcome := map[string][]time.Duration{}
	openAtCap, noAnswer := 0, 0
	var first []time.Duration // time to the first reaction, over those that had one
	for i := range res {
		r := &res[i]
		o := r.outcome()
		byOutcome[o] = append(byOutcome[o], r.at())
		if r.err == "" && r.closed == "" {
			openAtCap++
		}
		if r.err == "" && r.status == "" && r.closed == "" {
			noAnswer++
		}
		if r.status != "" || r.closed != "" {
			first = append(first, r.at())
		}
	}
	fmt.Println("summary (count, time since the stall min / median / max):")
	outcomes := make([]string, 0, len(byOutcome))
	for o := range byOutcome {
		outcomes = append(outcomes, o)
	}
	slices.Sort(outcomes)
	for _, o := range outcomes {
		ts := byOutcome[o]
		slices.Sort(ts)
		if ts[len(ts)-1] == 0 {
			fmt.Printf("  %5d  %s\n", len(ts), o)
			continue
		}
		fmt.Printf("  %5d  %-40s %7.2fs %7.2fs %7.2fs\n", len(ts), o,
			ts[0].Seconds(), percentile(ts, 0.5).Seconds(), ts[len(ts)-1].Seconds())
	}
	fmt.Printf("still open at the cap (%v): %d, of which %d never got an answer\n", cfg.d, openAtCap, noAnswer)
	fmt.Printf("server: %d fds open once all had stalled, peak %d; peak RSS %s\n", stalledFDs, m.peakFDs, mib(m.peakHWM))

	slices.Sort(first)
	statuses := map[string]int{}
	for i := range res {
		if s := res[i].status; s != "" {
			code, _, _ := strings.Cut(strings.TrimPrefix(s, "HTTP/1.1 "), " ")
			statuses[code]++
		}
	}
	var st []string
	for code, k := range statuses {
		st = append(st, fmt.Sprintf("%s:%d", code, k))
	}
	slices.Sort(st)
	out := newResult("post")
	out.add("n", cfg.n)
	out.add("d", cfg.d)
	out.add("answered", len(first))
	out.add("statuses", strings.Join(st, ","))
	out.add("open_at_cap", openAtCap)
	out.add("never_answered", noAnswer)
	for _, q := range []struct {
		key string
		p   float64
	}{{"first_min_s", 0}, {"first_median_s", 0.5}, {"first_max_s", 1}} {
		if len(first) == 0 {
			out.add(q.key, "-")
		} else {
			out.add(q.key, percentile(first, q.p))
		}
	}
	out.add("stalled_fds", stalledFDs)
	return out, nil
}

// watchStall reads one stalled connection until it closes or its read
// deadline passes, noting the status line and the close.
func watchStall(c net.Conn, stall time.Time, r *stalled) {
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err == nil {
		r.status = strings.TrimSpace(line)
		r.statusAt = time.Since(stall)
		_, err = io.Copy(io.Discard, br)
		if err == nil {
			err = io.EOF
		}
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// open at the cap
	case errors.Is(err, io.EOF):
		r.closed, r.closedAt = "EOF", time.Since(stall)
	case errors.Is(err, syscall.ECONNRESET):
		r.closed, r.closedAt = "reset", time.Since(stall)
	case errors.Is(err, os.ErrDeadlineExceeded):
	default:
		r.closed, r.closedAt = errKey(err), time.Since(stall)
	}
}
