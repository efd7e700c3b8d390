package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/examples/api"
)

// serveFlag, as the first argument, makes the binary the server child.
const serveFlag = "-serve"

// childCap is how long a server child lives at most, parent or not.
const childCap = 10 * time.Minute

// sampleEvery is the period of the child's memory and fd sampling, and of
// the -max-rss guard.
const sampleEvery = 50 * time.Millisecond

// serve is the child: it serves the example contract as examples/server
// does, without logging, prints one line "<host:port> <GOMAXPROCS>" and
// lives until its standard input closes or childCap passes.
func serve() {
	if _, err := raiseNoFile(0); err != nil {
		fmt.Fprintln(os.Stderr, "fair -serve: RLIMIT_NOFILE:", err)
	}
	time.AfterFunc(childCap, func() {
		fmt.Fprintln(os.Stderr, "fair -serve: hard cap reached, exiting")
		os.Exit(3)
	})
	// FAIR_SERVER_CPUPROFILE=file profiles the server until it is told to
	// stop, to see where an attack spends its CPU.
	stopProfile := func() {}
	if f := os.Getenv("FAIR_SERVER_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err == nil && pprof.StartCPUProfile(out) == nil {
			stopProfile = func() { pprof.StopCPUProfile(); out.Close() }
		}
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stopProfile()
		os.Exit(0)
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fair -serve:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	opts := &wsrpc.ServerOptions{Methods: api.Methods()}
	if v, err := strconv.ParseInt(os.Getenv("FAIR_SERVER_MAXPEERBYTES"), 10, 64); err == nil {
		opts.Limits.MaxPeerBytes = v // experiments only
	}
	mux.Handle("/rpc", api.NewServer(opts))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("%s %d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	err = hs.Serve(ln)
	fmt.Fprintln(os.Stderr, "fair -serve:", err)
	os.Exit(1)
}

// server is the running child and what the sampler saw of it.
type server struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	pid     int
	addr    string // host:port
	procs   int    // the child's GOMAXPROCS
	started time.Time
	dead    chan struct{} // closed once the child has exited
	stopped sync.Once

	mu  sync.Mutex
	mem memStats
}

// memStats is what the sampler has seen of the child so far.
type memStats struct {
	peakHWM     int64 // bytes: the largest VmHWM read
	rss         int64 // bytes: the last VmRSS read
	peakFDs     int   // the most open fds seen
	fds         int   // the last fd count
	killed      bool  // the guard killed the child
	killedRSS   int64
	killedAfter time.Duration
	exited      bool  // the child has exited
	exitErr     error // why, as Wait said
}

// startServer starts the child with GOMAXPROCS=procs (procs > 0), waits for
// its address and starts sampling it, with the -max-rss guard.
func startServer(procs int, maxRSS int64) (*server, error) {
	var env []string
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	cmd, stdin, stdout, err := startChild(env, serveFlag)
	if err != nil {
		return nil, err
	}
	s := &server{
		cmd: cmd, stdin: stdin, pid: cmd.Process.Pid,
		started: time.Now(), dead: make(chan struct{}),
	}
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.mem.exited, s.mem.exitErr = true, err
		s.mu.Unlock()
		close(s.dead)
	}()

	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		var addr string
		if ok {
			_, err = fmt.Sscanf(l, "%s %d", &addr, &s.procs)
		}
		if !ok || err != nil {
			s.stop()
			return nil, fmt.Errorf("the child printed %q instead of its address", l)
		}
		s.addr = addr
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("the child did not print its address within 10s")
	}
	s.sample(maxRSS)
	go func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.dead:
				return
			case <-t.C:
				s.sample(maxRSS)
			}
		}
	}()
	return s, nil
}

// relayStderr copies the child's stderr to ours with a prefix, at most 40
// lines: a crashing child's goroutine dump would bury the report.
func relayStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if n <= 40 {
			fmt.Fprintln(os.Stderr, "server:", sc.Text())
		} else if n == 41 {
			fmt.Fprintln(os.Stderr, "server: (more stderr left out)")
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// sample reads the child's memory and fd count once, and kills it if its
// RSS is past maxRSS.
func (s *server) sample(maxRSS int64) {
	hwm, rss, err := procStatus(s.pid)
	fds := countFDs(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || s.mem.exited {
		return // gone, or a zombie with no memory lines: keep what we saw
	}
	s.mem.peakHWM = max(s.mem.peakHWM, hwm, rss)
	s.mem.rss = rss
	if fds >= 0 {
		s.mem.fds = fds
		s.mem.peakFDs = max(s.mem.peakFDs, fds)
	}
	if rss > maxRSS && !s.mem.killed {
		s.mem.killed, s.mem.killedRSS, s.mem.killedAfter = true, rss, time.Since(s.started)
		_ = s.cmd.Process.Kill()
		fmt.Fprintf(os.Stderr, "fair: server RSS %s passed -max-rss %s: killed it\n", mib(rss), mib(maxRSS))
	}
}

// memory returns what the sampler has seen, sampling once more first.
func (s *server) memory() memStats {
	s.sample(1 << 62)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem
}

// alive reports whether the child still runs.
func (s *server) alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

// stop ends the child: its stdin is closed, and it is killed if it has
// not exited a second later. Safe to call more than once, concurrently.
func (s *server) stop() {
	s.stopped.Do(func() {
		_ = s.stdin.Close()
		select {
		case <-s.dead:
		case <-time.After(time.Second):
			_ = s.cmd.Process.Kill()
			<-s.dead
		}
	})
	<-s.dead
}

// kill kills the child without waiting, for a process about to exit.
func (s *server) kill() { _ = s.cmd.Process.Kill() }

// url is the child's WebSocket endpoint.
func (s *server) url() string { return "ws://" + s.addr + "/rpc" }

// procStatus reads VmHWM and VmRSS, in bytes, from /proc/<pid>/status.
func procStatus(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(val) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		found++
		if key == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if found < 2 {
		return 0, 0, errors.New("no VmHWM/VmRSS in /proc status")
	}
	return hwm, rss, nil
}

// cpuTime returns the user plus system CPU time the child has used, from
// /proc/<pid>/stat, or 0 once it is gone.
func (s *server) cpuTime() time.Duration { return time.Duration(procCPU(s.pid)) }

// procCPU returns the CPU time (user and system) process pid has used, in
// nanoseconds, or 0.
func procCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, in clock ticks (100 a second
	// on Linux).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return int64(time.Duration(u+st) * 10 * time.Millisecond)
}

// selfCPU returns the user plus system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countFDs counts the entries of /proc/<pid>/fd, or returns -1.
func countFDs(pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names)
}
