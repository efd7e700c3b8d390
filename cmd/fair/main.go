// Command fair measures how the example wsrpc server treats clients when
// some of them are hostile: whether a well-behaved client still gets served
// while others flood the server, and what abusive clients cost the server in
// memory, file descriptors and time. It is a benchmark, not a test: it
// prints figures, and never fails because the figures are bad.
//
// # The server under test
//
// The server runs in a child process, this same binary re-executed with a
// hidden flag, so that its GOMAXPROCS is set on its own and its memory is
// read from /proc/<pid>/status (VmHWM is the peak resident set, VmRSS the
// current one). The child serves what examples/server serves, without the
// logging middleware: api.NewServer(&wsrpc.ServerOptions{Methods: api.Methods()})
// mounted at /rpc, in an http.Server with ReadHeaderTimeout 10s, on
// 127.0.0.1 at a port of its choosing. It exits when its standard input
// closes (the parent exited) or after 10 minutes at most; the parent kills
// it at the end of every run, on error and on SIGINT or SIGTERM too.
//
// A guard samples the child's /proc entry every 50 ms and kills it when its
// VmRSS passes -max-rss; the report then says so (server_killed=1), and the
// peak figures are those seen up to the kill. The peak count of the child's
// open file descriptors (/proc/<pid>/fd) is sampled the same way.
//
// All traffic stays on 127.0.0.1. Every run is bounded in time and stops by
// itself; the program raises its own RLIMIT_NOFILE soft limit when -n
// connections need it (the child raises its own to the hard limit).
//
// # Modes
//
// Each mode prints a short report and ends with one machine-readable line,
// "RESULT mode=<mode> key=value ...", whose values never contain spaces.
//
// -mode fair (the default) measures fairness. A healthy client (wsrpc.Dial,
// then lock-step api.Sum calls of [1, 2], each with a 5 s timeout) counts
// its successful calls per second alone for -d, then again for -d while the
// hostile clients named by -attacks (all three by default) attack at once.
// The attacks start -warmup before the measured window and stop after it;
// each one redials when the server drops it. The ratio is calls/s under
// attack over calls/s alone (1 is perfectly fair). A failed call or dial of
// the healthy client is counted by its error and followed by a new
// connection; only successful calls count towards the rates. The attacks:
//
//   - echo-flood: a raw github.com/coder/websocket client writes "echo"
//     requests whose string param is api.MaxMessageSize-100 bytes long, as
//     fast as the connection takes them, and reads and discards the
//     answers on another goroutine.
//   - batch-sleep: a raw client writes, as fast as it can, batches of 100
//     "sleep" requests of 50 ms each, and reads and discards the answers.
//   - no-read: a raw client writes "echo" requests with a 64 KiB string as
//     fast as it can and never reads, not even pings or a close frame.
//
// Flags: -d (window, default 5s), -warmup (default 1s), -attacks (a comma
// list, default echo-flood,batch-sleep,no-read), -server-procs.
//
// The attacks run in a second child process (the binary re-executed with a
// hidden flag), as they would on other machines, so that their CPU and
// garbage collection do not slow the healthy client down inside its own
// process. The report also gives, per window, the latency of the
// successful calls and the CPU used by the server child, this process and
// the attacker child. All of them share the machine's cores: the figures
// compare runs on one machine, not machines.
//
// FAIR_SERVER_CPUPROFILE=file makes the server child write a CPU profile,
// to see where an attack spends the server's time.
//
// -mode pin holds messages on the server through one connection. It sends
// the notification sleep {"ms":60000}, which occupies the connection's
// notification handler (notifications are handled one at a time, in
// order), then -n notifications "update" of -size bytes each, as fast as
// the connection takes them. It reports how many were written before a
// write blocked (took more than 1 s) or failed, whether and when the server
// closed the connection and with which close status, and the server's peak
// (VmHWM) and final RSS. It stops at -d, or earlier once every message is
// written and the server has closed the connection. Flags: -n (default
// 1000), -size (default 4MiB; the example server accepts up to 16 MiB), -d
// (default 60s).
//
// -mode conns dials -n raw connections first, then releases them together:
// each writes one "echo" request of -size bytes and reads its answer. It
// reports the server's peak RSS, how many connections got their answer,
// how many failed and how, and the wall time from the release until all
// finished. Flags: -n (default 200), -size (default 4MiB), -d (cap on the
// whole run, default 60s).
//
// -mode post stalls HTTP POST requests. On each of -n raw TCP connections
// it writes a POST /rpc head with Content-Type: application/json and
// Content-Length: 1000, then 10 bytes of body, then writes nothing more and
// keeps reading. It reports, per connection, what the server did and when,
// counted from the stall: a status line (which status) or a close; a
// summary by outcome (min, median, max time); how many were still open at
// the cap; and the peak count of the server's open file descriptors. Flags:
// -n (default 200), -d (cap from the stall, default 90s).
//
// Common flags: -server-procs N sets GOMAXPROCS=N in the child's
// environment (0, the default, leaves the child the machine's), and
// -max-rss (default 6GiB) is the guard's limit. Sizes take a K, Ki, KiB, M,
// Mi, MiB, G, Gi or GiB suffix (all powers of 1024), or none for bytes.
//
// Usage:
//
//	go run ./cmd/fair                              # fair, 5 s windows, all attacks
//	go run ./cmd/fair -d 3s -server-procs 1 -attacks echo-flood
//	go run ./cmd/fair -mode pin -n 200 -d 20s
//	go run ./cmd/fair -mode conns -n 50
//	go run ./cmd/fair -mode post -n 20 -d 40s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxRun bounds the -d of any mode; with the set-up and a fair run's two
// windows, the whole run stays within the child's own 10 minute cap.
const maxRun = 4 * time.Minute

// config is what the flags ask for; zero numbers mean the mode's default.
type config struct {
	mode        string
	d           time.Duration
	warmup      time.Duration
	n           int
	size        byteSize
	attacks     []string
	serverProcs int
	maxRSS      byteSize
}

// modeDefaults are each mode's -d and -n when the flags leave them at zero.
var modeDefaults = map[string]struct {
	d time.Duration
	n int
}{
	"fair":  {5 * time.Second, 0},
	"pin":   {60 * time.Second, 1000},
	"conns": {60 * time.Second, 200},
	"post":  {90 * time.Second, 200},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		serve()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == attackFlag {
		attackChild()
		return
	}
	cfg := config{size: 4 << 20, maxRSS: 6 << 30}
	var attacks string
	flag.StringVar(&cfg.mode, "mode", "fair", "what to measure: fair, pin, conns or post")
	flag.DurationVar(&cfg.d, "d", 0, "measured window (fair) or cap (pin, conns, post); 0: the mode's default")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "fair: how long the attacks run before the measured window")
	flag.IntVar(&cfg.n, "n", 0, "pin: notifications; conns, post: connections; 0: the mode's default")
	flag.Var(&cfg.size, "size", "pin: bytes of each notification; conns: bytes of each request")
	flag.StringVar(&attacks, "attacks", strings.Join(attackNames, ","), "fair: comma-separated attacks")
	flag.IntVar(&cfg.serverProcs, "server-procs", 0, "GOMAXPROCS of the server child; 0: inherit the machine's")
	flag.Var(&cfg.maxRSS, "max-rss", "kill the server child when its RSS passes this")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: fair [flags]   (go doc ./cmd/fair explains the modes)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		usageError("unexpected arguments: %q", flag.Args())
	}
	def, ok := modeDefaults[cfg.mode]
	if !ok {
		usageError("unknown -mode %q", cfg.mode)
	}
	if cfg.d == 0 {
		cfg.d = def.d
	}
	if cfg.n == 0 {
		cfg.n = def.n
	}
	switch {
	case cfg.d < 0 || cfg.d > maxRun:
		usageError("-d must be in (0, %v]", maxRun)
	case cfg.warmup < 0 || cfg.warmup > time.Minute:
		usageError("-warmup must be in [0, 1m]")
	case cfg.n < 0 || cfg.n > 100000:
		usageError("-n must be in [1, 100000]")
	case cfg.serverProcs < 0:
		usageError("-server-procs must not be negative")
	case cfg.size < 128 || cfg.size > 1<<30:
		usageError("-size must be in [128, 1GiB]")
	case cfg.maxRSS <= 0:
		usageError("-max-rss must be positive")
	}
	for a := range strings.SplitSeq(attacks, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !slices.Contains(attackNames, a) {
			usageError("unknown attack %q (known: %s)", a, strings.Join(attackNames, ", "))
		}
		if !slices.Contains(cfg.attacks, a) {
			cfg.attacks = append(cfg.attacks, a)
		}
	}
	if cfg.mode == "fair" && len(cfg.attacks) == 0 {
		usageError("-attacks names none")
	}
	os.Exit(run(cfg))
}

// usageError reports a bad command line and exits with status 2.
func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fair: "+format+"\n", args...)
	os.Exit(2)
}

// run starts the server child, runs the mode against it and stops the
// child, whatever happens. It returns the exit status.
func run(cfg config) int {
	srv, err := startServer(cfg.serverProcs, int64(cfg.maxRSS))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fair: starting the server:", err)
		return 1
	}
	defer srv.stop()

	// A signal, or a run that overstays every bound, still takes the child
	// down with it, at once: a report of a run cut short must not follow.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		srv.kill()
		fmt.Fprintln(os.Stderr, "fair: stopped by", s)
		os.Exit(130)
	}()
	watchdog := time.AfterFunc(2*cfg.d+cfg.warmup+2*time.Minute, func() {
		srv.kill()
		fmt.Fprintln(os.Stderr, "fair: watchdog: the run overstayed its bounds")
		os.Exit(1)
	})
	defer watchdog.Stop()

	procs := "inherited"
	if cfg.serverProcs > 0 {
		procs = "set"
	}
	fmt.Printf("fair: mode %s, server pid %d at %s, server GOMAXPROCS %d (%s), client GOMAXPROCS %d\n",
		cfg.mode, srv.pid, srv.addr, srv.procs, procs, runtime.GOMAXPROCS(0))

	var res *result
	switch cfg.mode {
	case "fair":
		res, err = runFair(cfg, srv)
	case "pin":
		res, err = runPin(cfg, srv)
	case "conns":
		res, err = runConns(cfg, srv)
	case "post":
		res, err = runPost(cfg, srv)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fair:", err)
		return 1
	}
	m := srv.memory()
	if m.killed {
		fmt.Printf("server: KILLED by the -max-rss guard (%s) at RSS %s, %.1fs after it started\n",
			mib(int64(cfg.maxRSS)), mib(m.killedRSS), m.killedAfter.Seconds())
	} else if m.exited {
		fmt.Printf("server: exited by itself during the run: %v\n", m.exitErr)
	}
	res.add("server_procs", srv.procs)
	res.add("peak_rss_mib", mibNum(m.peakHWM))
	res.add("peak_fds", m.peakFDs)
	res.add("server_killed", b2i(m.killed))
	res.add("server_exited", b2i(m.exited && !m.killed))
	res.print()
	return 0
}

// result collects the key=value pairs of a mode's RESULT line, in order.
type result struct {
	mode string
	kv   []string
}

// newResult starts the RESULT line of a mode.
func newResult(mode string) *result { return &result{mode: mode} }

// add appends key=value; floats get three decimals, durations are
// written in seconds, an empty string is "-", and spaces become "_".
func (r *result) add(key string, v any) {
	var s string
	switch v := v.(type) {
	case float64:
		s = strconv.FormatFloat(v, 'f', 3, 64)
	case time.Duration:
		s = strconv.FormatFloat(v.Seconds(), 'f', 3, 64)
	case string:
		s = v
		if s == "" {
			s = "-"
		}
	default:
		s = fmt.Sprint(v)
	}
	s = strings.ReplaceAll(s, " ", "_")
	r.kv = append(r.kv, key+"="+s)
}

// print writes the RESULT line.
func (r *result) print() {
	fmt.Printf("RESULT mode=%s %s\n", r.mode, strings.Join(r.kv, " "))
}

// byteSize is a flag value in bytes, written with an optional binary
// suffix.
type byteSize int64

// String formats the size for flag defaults.
func (b *byteSize) String() string {
	switch v := int64(*b); {
	case v >= 1<<30 && v%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", v>>30)
	case v >= 1<<20 && v%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", v>>20)
	case v >= 1<<10 && v%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", v>>10)
	default:
		return strconv.FormatInt(v, 10)
	}
}

// Set parses a size such as 4MiB, 512K or 1000.
func (b *byteSize) Set(s string) error {
	num := strings.TrimRight(s, "KMGiBb")
	unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "b"))
	unit = strings.TrimSuffix(unit, "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 || n > 1<<40>>sh {
		return fmt.Errorf("not a size: %q", s)
	}
	*b = byteSize(n << sh)
	return nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to want (to the hard limit
// when want is 0) and returns the soft limit now in force.
func raiseNoFile(want uint64) (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if want == 0 || want > r.Max {
		want = r.Max
	}
	if r.Cur >= want {
		return r.Cur, nil
	}
	r.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return want, nil
}

// needFiles makes sure this process may open n connections and some more,
// and warns when it may not.
func needFiles(n int) {
	want := uint64(n) + 64
	got, err := raiseNoFile(want)
	if err != nil || got < want {
		fmt.Fprintf(os.Stderr, "fair: RLIMIT_NOFILE is %d, below the %d that -n %d needs (%v); expect dial failures\n", got, want, n, err)
	}
}

// addrPort matches the ports of loopback addresses in error strings, which
// would otherwise make every error unique.
var addrPort = regexp.MustCompile(`(127\.0\.0\.1|\[::1\]|localhost):\d+`)

// errKey turns an error into the string it is counted under: ports
// removed, length bounded.
func errKey(err error) string {
	s := addrPort.ReplaceAllString(err.Error(), "$1:*")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// counts are occurrences by description.
type counts map[string]int

// print writes the counts, most frequent first, one per indented line.
func (c counts) print(indent string) {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c[keys[i]] != c[keys[j]] {
			return c[keys[i]] > c[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Printf("%s%6d  %s\n", indent, c[k], k)
	}
}

// total is the sum of the counts.
func (c counts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// mib formats bytes as MiB for people.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// mibNum is bytes in MiB for a RESULT line.
func mibNum(b int64) float64 { return float64(b) / (1 << 20) }

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// percentile returns the p-quantile (0..1) of sorted durations, 0 if none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}
