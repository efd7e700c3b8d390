package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// attackFlag, as the first argument, makes the binary the attacker child:
// the hostile clients of the fair mode run in a process of their own, as
// they would on other machines, so that their CPU and garbage collection do
// not slow the healthy client down inside its own process.
const attackFlag = "-attack"

// attackReport is what the attacker child prints, as one JSON line, when
// its standard input closes.
type attackReport struct {
	Name      string
	Conns     int64
	Sent      int64
	SentBytes int64
	Answers   int64
	AnsBytes  int64
	Ends      counts
}

// attackChild runs the attacks named in os.Args[3] (comma-separated)
// against the URL in os.Args[2] until its standard input closes, then
// prints one attackReport per attack.
func attackChild() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "fair: the attacker child needs a URL and attacks")
		os.Exit(2)
	}
	url, names := os.Args[2], strings.Split(os.Args[3], ",")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var wg sync.WaitGroup
	stats := make([]*attackStats, len(names))
	for i, name := range names {
		st := &attackStats{name: name, ends: counts{}}
		stats[i] = st
		wg.Go(func() { runAttack(ctx, name, url, st) })
	}
	fmt.Println("started")
	wg.Wait()
	enc := json.NewEncoder(os.Stdout)
	for _, st := range stats {
		st.mu.Lock()
		enc.Encode(attackReport{
			Name: st.name, Conns: st.conns.Load(), Sent: st.sent.Load(), SentBytes: st.sentBytes.Load(),
			Answers: st.answers.Load(), AnsBytes: st.ansBytes.Load(), Ends: st.ends,
		})
		st.mu.Unlock()
	}
}

// startChild starts this binary again with args, env added to this
// process's environment, and its standard error relayed here, and returns
// it with its standard input and output. Should this process die without
// stopping the child, the closed stdin ends it; Pdeathsig is a second line.
func startChild(env []string, args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	go relayStderr(stderr)
	return cmd, stdin, stdout, nil
}

// attacker is a running attacker child.
type attacker struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Scanner
}

// startAttacker starts the attacker child and waits until its attacks run.
func startAttacker(url string, names []string) (*attacker, error) {
	cmd, stdin, stdout, err := startChild(nil, attackFlag, url, strings.Join(names, ","))
	if err != nil {
		return nil, err
	}
	a := &attacker{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !a.out.Scan() || a.out.Text() != "started" {
		a.cmd.Process.Kill()
		a.cmd.Wait()
		return nil, fmt.Errorf("the attacker child did not start: %q", a.out.Text())
	}
	return a, nil
}

// cpuTime is the CPU time the attacker child has used.
func (a *attacker) cpuTime() int64 { return procCPU(a.cmd.Process.Pid) }

// stop ends the attacks and returns their reports.
func (a *attacker) stop() []attackReport {
	a.stdin.Close()
	var reps []attackReport
	for a.out.Scan() {
		var r attackReport
		if json.Unmarshal(a.out.Bytes(), &r) == nil {
			reps = append(reps, r)
		}
	}
	a.cmd.Wait()
	return reps
}
