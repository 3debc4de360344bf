package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
	"github.com/goipsec/goipsec/internal/testnet"
)

// Addresses of the lab: the host namespace's end of the tap and the guest's eth0 (outer), and one
// inner address on each side (on lo) for tunnel-mode traffic. Documentation ranges (RFC 5737).
const (
	hostOuter  = "192.0.2.1"
	guestOuter = "192.0.2.2"
	hostInner  = "198.51.100.1"
	guestInner = "203.0.113.1"
	testPSK    = "kernel lab secret, long enough"
)

// lab is one VM per image, booted once per test binary and shared by the tests (one at a time:
// tests of this package do not run in parallel). The host side of its tap lives in a namespace of
// the host named like testnet's, so that testnet.SweepStale removes it after a killed run.
type lab struct {
	vm    *labvm.VM
	ns    string // host namespace holding the tap
	share string // host directory mounted at /mnt/host in the guest
	err   error
}

var (
	labsMu sync.Mutex
	labs   = map[string]*lab{}
	// timings for the report at the end (TestMain).
	timings []string
)

func TestMain(m *testing.M) {
	start := time.Now()
	code := m.Run()
	labsMu.Lock()
	for _, l := range labs {
		l.close()
	}
	labsMu.Unlock()
	if len(timings) > 0 {
		fmt.Printf("kernel lab: %s; total %v\n", strings.Join(timings, "; "), time.Since(start).Round(time.Second))
	}
	os.Exit(code)
}

func (l *lab) close() {
	if l.vm != nil {
		l.vm.Close()
	}
	if l.ns != "" {
		exec.Command("ip", "netns", "pids", l.ns).Run()
		exec.Command("ip", "netns", "del", l.ns).Run()
	}
	if l.share != "" {
		os.RemoveAll(l.share)
	}
}

// needLab returns the lab VM of recipe r, building the image and booting it on first use. It fails
// the test (never skips, except under -short without GOIPSEC_INTEGRATION=require) when QEMU or
// the image tools are missing.
func needLab(t *testing.T, r labvm.Recipe) *lab {
	t.Helper()
	testnet.Require(t, "qemu-system-x86_64", "mmdebstrap", "mkfs.ext4", "go")
	labsMu.Lock()
	defer labsMu.Unlock()
	if l, ok := labs[r.Name]; ok {
		if l.err == nil && l.vm.Exited() {
			l.err = fmt.Errorf("the VM has stopped; its console:\n%s", testnet.Tail(l.vm.Console(), 60))
		}
		if l.err != nil {
			t.Fatalf("lab %s: %v", r.Name, l.err)
		}
		return l
	}
	l := &lab{}
	labs[r.Name] = l
	l.err = l.boot(t, r)
	if l.err != nil {
		t.Fatalf("lab %s: %v", r.Name, l.err)
	}
	return l
}

// logConsole shows the end of the guest's console when t failed (a kernel oops, labinit errors).
func (l *lab) logConsole(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest console (end; QEMU exited: %v, %v):\n%s", l.vm.Exited(), l.vm.ExitErr(), testnet.Tail(l.vm.Console(), 40))
		}
	})
}

func (l *lab) boot(t *testing.T, r labvm.Recipe) error {
	ctx := context.Background()
	bstart := time.Now()
	img, err := labvm.Build(ctx, r, testWriter{t})
	if err != nil {
		return err
	}
	timings = append(timings, fmt.Sprintf("image %s ready in %v", r.Name, time.Since(bstart).Round(time.Millisecond)))
	if l.share, err = os.MkdirTemp("", "goipsec-lab-share-"); err != nil {
		return err
	}
	os.Chmod(l.share, 0o755)
	if err := buildGoipsec(filepath.Join(l.share, "goipsec")); err != nil {
		return err
	}
	l.ns = fmt.Sprintf("%s%d-lab-%s", testnet.NamePrefix, os.Getpid(), r.Name[:4])
	if out, err := exec.Command("ip", "netns", "add", l.ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	for _, args := range [][]string{{"link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", append([]string{"-n", l.ns}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	l.vm, err = labvm.Boot(ctx, labvm.Options{Image: img, Netns: l.ns, Tap: "lab0", Share: l.share, Modules: labvm.DefaultModules, CPUs: 2, MemoryMB: 1024})
	if err != nil {
		return err
	}
	timings = append(timings, fmt.Sprintf("%s VM booted in %v", r.Name, l.vm.BootTime.Round(time.Millisecond)))
	for _, args := range [][]string{
		{"addr", "add", hostOuter + "/24", "dev", "lab0"},
		{"addr", "add", hostInner + "/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", l.ns}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	res, err := l.vm.Run(ctx, 30*time.Second, strings.Join([]string{
		"ip link set eth0 up", "ip addr add " + guestOuter + "/24 dev eth0", "ip addr add " + guestInner + "/32 dev lo",
		"sysctl -qw net.ipv4.ip_forward=1",
		"ping -c1 -W5 " + hostOuter,
	}, " && "))
	if err != nil || res.Exit != 0 {
		return fmt.Errorf("guest network set-up: %v %+v", err, res)
	}
	return nil
}

// buildGoipsec builds a static goipsec (the guest has no Go toolchain and its own libc).
func buildGoipsec(out string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/goipsec")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build goipsec: %v: %s", err, b)
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// guest runs cmd in the guest and fails the test unless it exits 0.
func (l *lab) guest(t *testing.T, cmd string) string {
	t.Helper()
	res, err := l.vm.Run(context.Background(), 60*time.Second, cmd)
	if err != nil {
		t.Fatalf("guest: %s: %v\n%s%s", cmd, err, res.Stdout, res.Stderr)
	}
	if res.Exit != 0 {
		t.Fatalf("guest: %s: exit %d\n%s%s", cmd, res.Exit, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// guestTry runs cmd in the guest and returns its output and exit status.
func (l *lab) guestTry(t *testing.T, cmd string) (string, int) {
	t.Helper()
	res, err := l.vm.Run(context.Background(), 60*time.Second, cmd)
	if err != nil {
		t.Fatalf("guest: %s: %v", cmd, err)
	}
	return res.Stdout + res.Stderr, res.Exit
}

// guestDaemon is a background command in the guest, stopped by the test's cleanup.
type guestDaemon struct {
	l    *lab
	name string
}

// startGuest runs cmd in the background in the guest under name; cleanup sends SIGTERM and waits.
func (l *lab) startGuest(t *testing.T, name, cmd string) *guestDaemon {
	t.Helper()
	ctx := context.Background()
	if err := l.vm.Start(ctx, name, cmd); err != nil {
		t.Fatal(err)
	}
	g := &guestDaemon{l: l, name: name}
	t.Cleanup(func() {
		g.stop(t)
		if t.Failed() {
			res, _, _ := l.vm.Output(ctx, name)
			t.Logf("guest %s output:\n%s%s", name, testnet.Tail(res.Stdout, 80), testnet.Tail(res.Stderr, 80))
		}
	})
	return g
}

// stop sends SIGTERM and waits up to 20 s for the command to end (SIGKILL then).
func (g *guestDaemon) stop(t *testing.T) labvm.Result {
	ctx := context.Background()
	g.l.vm.Signal(ctx, g.name, syscall.SIGTERM)
	res, running, _ := g.l.vm.Wait(ctx, g.name, 20*time.Second)
	if running {
		g.l.vm.Signal(ctx, g.name, syscall.SIGKILL)
		res, _, _ = g.l.vm.Wait(ctx, g.name, 5*time.Second)
	}
	return res
}

// output is everything the command printed so far (stdout and stderr).
func (g *guestDaemon) output(t *testing.T) string {
	res, _, err := g.l.vm.Output(context.Background(), g.name)
	if err != nil {
		t.Fatal(err)
	}
	return res.Stdout + res.Stderr
}

// waitOutput waits until the command printed s.
func (g *guestDaemon) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(g.output(t), s) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("guest %s did not print %q within %v:\n%s", g.name, s, timeout, testnet.Tail(g.output(t), 60))
}

// writeShare writes a file into the shared directory; the guest sees it at /mnt/host/name.
func (l *lab) writeShare(t *testing.T, name, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.share, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return labvmShare + "/" + name
}

const labvmShare = "/mnt/host"

// logXfrmOnFailure shows the guest's XFRM states and error counters when t failed.
func (l *lab) logXfrmOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() && !l.vm.Exited() {
			out, _ := l.guestTry(t, "ip -s xfrm state; ip xfrm policy; grep -v ' 0$' /proc/net/xfrm_stat")
			t.Logf("guest XFRM:\n%s", out)
		}
	})
}
