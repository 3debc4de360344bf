package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM/SIGINT before it sends SIGKILL: long enough for
// charon or tcpdump to flush and exit cleanly, short enough not to stall a failing test.
const stopGrace = 5 * time.Second

// outputTailLines is how much of a process's output a failing test shows.
const outputTailLines = 150

// pollInterval is how often the Wait helpers look at output again.
const pollInterval = 10 * time.Millisecond

// Process is a background command running inside a namespace. Its combined output is kept in memory.
// Cleanup stops it and, when the test failed, logs the tail of its output.
type Process struct {
	ns   *NS
	argv []string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed once Wait returned; err is valid then
	err  error
}

// Start runs argv inside the namespace in the background. The process gets its own process group
// (Stop signals the whole group, so `sh -c` wrappers do not leave orphans) and is killed by the kernel
// if the test binary dies before its cleanups run.
func (ns *NS) Start(t testing.TB, argv ...string) *Process {
	t.Helper()
	if len(argv) == 0 {
		t.Fatalf("testnet: Start: empty command")
	}
	p := &Process{ns: ns, argv: argv, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns.name}, argv...)...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testnet: in %s: start %s: %v", ns, strings.Join(argv, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("testnet: %s in %s exited (%v); last output:\n%s", p.argv[0], ns, p.err, tail(p.Output(), outputTailLines))
		}
	})
	return p
}

// Pid is the process ID (of ip-netns-exec, which exec'd argv, so of argv itself).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end by itself and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop ends the process: SIGTERM to its group, SIGKILL if it is still there after a grace period.
// It returns once the process is gone; calling it again does nothing.
func (p *Process) Stop() { p.stopWith(syscall.SIGTERM) }

func (p *Process) stopWith(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	_ = p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// WaitOutput waits until the output contains substr. It fails t when the process exits first or
// timeout passes (a guard against hangs, not a speed requirement).
func (p *Process) WaitOutput(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), substr) {
		if p.Exited() {
			if strings.Contains(p.Output(), substr) {
				return
			}
			t.Fatalf("testnet: %s in %s exited (%v) before printing %q:\n%s", p.argv[0], p.ns, p.err, substr, tail(p.Output(), outputTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("testnet: %s in %s did not print %q within %v:\n%s", p.argv[0], p.ns, substr, timeout, tail(p.Output(), outputTailLines))
		}
		time.Sleep(pollInterval)
	}
}

func (p *Process) String() string {
	return fmt.Sprintf("%s in %s", strings.Join(p.argv, " "), p.ns)
}

// errExitedBySignal tells Stop's callers apart from real failures: a process we stopped ends with a
// signal, which is not an error of the process.
func exitedBySignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// lockedBuffer is a bytes.Buffer shared by the process's output copier and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[%d earlier lines omitted]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

// Tail returns the last n lines of s, noting how many were left out; for logging long outputs.
func Tail(s string, n int) string { return tail(s, n) }
