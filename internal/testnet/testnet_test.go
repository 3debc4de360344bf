package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// twoNamespaces is the common fixture: left and right joined by one veth pair with IPv4 and IPv6.
func twoNamespaces(t *testing.T) (n *Net, left, right *NS, leftIf, rightIf string) {
	n = New(t)
	left = n.Namespace("left")
	right = n.Namespace("right")
	leftIf, rightIf = n.Link(left, right,
		[]string{"10.200.0.1/24", "fd00:200::1/64"},
		[]string{"10.200.0.2/24", "fd00:200::2/64"})
	return n, left, right, leftIf, rightIf
}

func TestPingBetweenTwoNamespaces(t *testing.T) {
	Require(t, "ping")
	_, left, right, _, _ := twoNamespaces(t)
	for _, c := range []struct {
		from *NS
		dst  string
	}{
		{left, "10.200.0.2"}, {right, "10.200.0.1"},
		// nodad makes these usable right away; with DAD they would be tentative for a second or two.
		{left, "fd00:200::2"}, {right, "fd00:200::1"},
	} {
		if ok, out := c.from.Ping(t, c.dst, 2); !ok {
			t.Errorf("ping %s from %s failed:\n%s", c.dst, c.from, out)
		}
	}
	// Nothing answers on an unused address: Ping reports that instead of failing the test.
	if ok, out := left.Ping(t, "10.200.0.99", 1); ok {
		t.Errorf("ping to an unused address succeeded:\n%s", out)
	}
}

func TestNamespaceNamesAndInterfaces(t *testing.T) {
	n, left, right, leftIf, rightIf := twoNamespaces(t)
	if again := n.Namespace("left"); again != left {
		t.Errorf("Namespace(\"left\") twice returned two namespaces")
	}
	prefix := fmt.Sprintf("%s%d-", NamePrefix, os.Getpid())
	for _, ns := range []*NS{left, right} {
		if !strings.HasPrefix(ns.Name(), prefix) {
			t.Errorf("namespace %q does not start with %q", ns.Name(), prefix)
		}
		if pid, ok := ownerPID(ns.Name()); !ok || pid != os.Getpid() {
			t.Errorf("ownerPID(%q) = %d, %v; want %d", ns.Name(), pid, ok, os.Getpid())
		}
		if _, err := os.Stat(ns.Path()); err != nil {
			t.Errorf("namespace file: %v", err)
		}
		if out := ns.Run(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("lo is not up in %s: %s", ns, out)
		}
	}
	for _, ifname := range []string{leftIf, rightIf} {
		if len(ifname) > 15 || !strings.HasPrefix(ifname, NamePrefix) {
			t.Errorf("interface name %q: want at most 15 bytes starting with %q", ifname, NamePrefix)
		}
	}
	if out := left.Run(t, "ip", "-o", "link", "show", leftIf); !strings.Contains(out, "state UP") {
		t.Errorf("%s not up: %s", leftIf, out)
	}
	if _, err := left.Output("ip", "link", "show", rightIf); err == nil {
		t.Errorf("%s (right end) is visible in left namespace", rightIf)
	}
}

func TestSysctlStaysInNamespace(t *testing.T) {
	const file = "/proc/sys/net/ipv4/conf/all/rp_filter"
	host, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n := New(t)
	a, b := n.Namespace("a"), n.Namespace("b")
	want := "2"
	if strings.TrimSpace(string(host)) == "2" {
		want = "1"
	}
	a.Sysctl(t, "net.ipv4.conf.all.rp_filter", want)
	if got := strings.TrimSpace(a.Run(t, "cat", file)); got != want {
		t.Errorf("rp_filter in a = %s, want %s", got, want)
	}
	if got := strings.TrimSpace(b.Run(t, "cat", file)); got == want {
		t.Errorf("rp_filter in b changed to %s as well", got)
	}
	if after, _ := os.ReadFile(file); string(after) != string(host) {
		t.Errorf("host rp_filter changed from %q to %q", host, after)
	}
	// Set by Namespace itself: DAD is off in every namespace.
	if got := strings.TrimSpace(a.Run(t, "cat", "/proc/sys/net/ipv6/conf/default/accept_dad")); got != "0" {
		t.Errorf("accept_dad = %s, want 0", got)
	}
}

func TestTCPTransferOverVeth(t *testing.T) {
	_, left, right, _, _ := twoNamespaces(t)
	TCPTransfer(t, right, left, "10.200.0.2", 1<<20)
	TCPTransfer(t, left, right, "[fd00:200::1]:7001", 1<<20)
	TCPTransfer(t, right, left, "10.200.0.2:7002", 0)
}

func TestMasqueradeHidesClientAddress(t *testing.T) {
	Require(t, "nft", "ping")
	n := New(t)
	client, nat, server := n.Namespace("client"), n.Namespace("nat"), n.Namespace("server")
	n.Link(client, nat, []string{"10.201.1.2/24"}, []string{"10.201.1.1/24"})
	_, natOut := n.Link(server, nat, []string{"10.201.2.2/24"}, []string{"10.201.2.1/24"})
	client.AddRoute("default", "via", "10.201.1.1")
	nat.EnableForwarding()
	// server has no route back to 10.201.1.0/24: only a translated source address can be answered.
	if ok, out := client.Ping(t, "10.201.2.2", 1); ok {
		t.Fatalf("ping through the router succeeded before masquerade; the test proves nothing:\n%s", out)
	}
	nat.Masquerade(t, natOut)
	if ok, out := client.Ping(t, "10.201.2.2", 2); !ok {
		t.Fatalf("ping through NAT failed:\n%s", out)
	}

	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.201.2.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c.RemoteAddr()
		c.Close()
	}()
	var c net.Conn
	if err := client.Do(func() (err error) {
		c, err = net.Dial("tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	remote := <-accepted
	if remote == nil {
		t.Fatal("accept failed")
	}
	got := remote.(*net.TCPAddr).AddrPort().Addr()
	if want := netip.MustParseAddr("10.201.2.1"); got != want {
		t.Errorf("server saw the client as %v, want the NAT address %v", got, want)
	}
	TCPTransfer(t, server, client, "10.201.2.2", 256<<10)
}

func TestDoCreatesSocketInNamespace(t *testing.T) {
	_, left, right, _, _ := twoNamespaces(t)
	const onlyInLeft = "10.200.0.1:7100"

	// The host namespace does not have the address, so binding there must fail.
	if ln, err := net.Listen("tcp", onlyInLeft); err == nil {
		ln.Close()
		t.Fatalf("listening on %s outside the namespace succeeded; the test proves nothing", onlyInLeft)
	}

	runtime.LockOSThread()
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var inside string
	err = left.Do(func() (err error) {
		inside, _ = os.Readlink("/proc/thread-self/ns/net")
		ln, err = net.Listen("tcp", onlyInLeft)
		return err
	})
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("listen inside Do: %v", err)
	}
	defer ln.Close()
	if inside == before {
		t.Errorf("inside Do the thread was still in namespace %s", before)
	}
	if after != before {
		t.Errorf("after Do the thread is in %s, was %s", after, before)
	}

	// The listener stays in left after Do returned: right reaches it over the veth.
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("left"))
			c.Close()
		}
	}()
	var got []byte
	if err := right.Do(func() error {
		c, err := net.Dial("tcp", onlyInLeft)
		if err != nil {
			return err
		}
		defer c.Close()
		got, err = bufio.NewReader(c).ReadBytes('t')
		return err
	}); err != nil {
		t.Fatalf("dial from right: %v", err)
	}
	if string(got) != "left" {
		t.Errorf("read %q, want %q", got, "left")
	}

	wantErr := errors.New("from fn")
	if err := left.Do(func() error { return wantErr }); err != wantErr {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

func TestDropRandom(t *testing.T) {
	Require(t, "nft", "ping")
	_, left, right, _, _ := twoNamespaces(t)
	right.DropRandom(t, 100)
	if ok, out := left.Ping(t, "10.200.0.2", 1); ok {
		t.Errorf("ping succeeded with 100%% loss:\n%s", out)
	}
	right.DropRandom(t, 0)
	if ok, out := left.Ping(t, "10.200.0.2", 2); !ok {
		t.Errorf("ping failed after removing loss:\n%s", out)
	}
	// Loss applies to traffic crossing a middle namespace too.
	n := New(t)
	a, mid, b := n.Namespace("a"), n.Namespace("mid"), n.Namespace("b")
	n.Link(a, mid, []string{"10.202.1.2/24"}, []string{"10.202.1.1/24"})
	n.Link(mid, b, []string{"10.202.2.1/24"}, []string{"10.202.2.2/24"})
	a.AddRoute("default", "via", "10.202.1.1")
	b.AddRoute("default", "via", "10.202.2.1")
	mid.EnableForwarding()
	if ok, out := a.Ping(t, "10.202.2.2", 1); !ok {
		t.Fatalf("routed ping failed:\n%s", out)
	}
	mid.DropRandom(t, 100)
	if ok, out := a.Ping(t, "10.202.2.2", 1); ok {
		t.Errorf("routed ping succeeded with 100%% loss in the middle:\n%s", out)
	}
}

func TestCaptureUDP(t *testing.T) {
	Require(t, "tcpdump")
	_, left, right, _, rightIf := twoNamespaces(t)
	capture := right.Capture(t, rightIf, "udp")
	for _, dst := range []string{"10.200.0.2:4500", "[fd00:200::2]:4500"} {
		var pc net.PacketConn
		if err := right.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", dst)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := left.Do(func() error {
			c, err := net.Dial("udp", dst)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("payload to " + dst))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Receiving it proves it crossed the wire (IPv6 first waits for neighbour discovery), so
		// stopping the capture afterwards cannot cut it off.
		buf := make([]byte, 100)
		n, _, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "payload to "+dst {
			t.Fatalf("received %q, %v", buf[:n], err)
		}
	}
	// tcpdump may still be writing the last packet (it had been "received by filter" but not yet
	// "captured" when a SIGINT arrived): wait until the file holds both before stopping.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pkts, err := ReadPcap(capture.Path()); err == nil && len(pkts) >= 2 {
			break
		}
	}
	path := capture.Stop()
	if again := capture.Stop(); again != path {
		t.Errorf("second Stop returned %q, want %q", again, path)
	}
	pkts, err := ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, p := range pkts {
		d, err := p.UDP()
		if err != nil {
			t.Fatalf("captured packet: %v", err)
		}
		if d.Dst.Port() != 4500 {
			continue
		}
		found[d.Dst.String()] = string(d.Payload) == "payload to "+d.Dst.String()
	}
	for _, dst := range []string{"10.200.0.2:4500", "[fd00:200::2]:4500"} {
		if !found[dst] {
			t.Errorf("datagram to %s not captured intact (found %v)", dst, found)
		}
	}
}

// fakeTB stands in for a test whose failure must not fail the real test: it records failures and
// runs cleanups when asked.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	msgs     []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *fakeTB) record(failed bool, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = f.failed || failed
	f.msgs = append(f.msgs, msg)
}
func (f *fakeTB) Failed() bool                   { f.mu.Lock(); defer f.mu.Unlock(); return f.failed }
func (f *fakeTB) Logf(format string, a ...any)   { f.record(false, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Errorf(format string, a ...any) { f.record(true, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Error(a ...any)                 { f.record(true, fmt.Sprint(a...)) }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.record(true, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (f *fakeTB) Fatal(a ...any) { f.record(true, fmt.Sprint(a...)); runtime.Goexit() }
func (f *fakeTB) FailNow()       { f.record(true, "FailNow"); runtime.Goexit() }
func (f *fakeTB) Skip(a ...any) {
	f.mu.Lock()
	f.skipped = true
	f.mu.Unlock()
	f.record(false, fmt.Sprint(a...))
	runtime.Goexit()
}

// run runs body like a test function (Fatal ends it) and then its cleanups, newest first.
func (f *fakeTB) run(body func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	f.mu.Lock()
	cleanups := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func (f *fakeTB) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

func TestRequireFailsLoudly(t *testing.T) {
	f := &fakeTB{TB: t}
	f.run(func(tb testing.TB) { Require(tb, "goipsec-no-such-tool", "/no/such/file") })
	out := f.output()
	for _, want := range []string{"goipsec-no-such-tool", "/no/such/file"} {
		if !strings.Contains(out, want) {
			t.Errorf("Require message %q does not name %q", out, want)
		}
	}
	if testing.Short() && os.Getenv(IntegrationEnv) != "require" {
		if !f.skipped || f.failed {
			t.Errorf("under -short Require should skip: skipped=%v failed=%v", f.skipped, f.failed)
		}
	} else if !f.failed || f.skipped {
		t.Errorf("without -short Require must fail: skipped=%v failed=%v", f.skipped, f.failed)
	}

	ok := &fakeTB{TB: t}
	ok.run(func(tb testing.TB) { Require(tb, "sh", "/bin/sh") })
	if ok.failed || ok.skipped {
		t.Errorf("Require with present tools: %s", ok.output())
	}
}

func TestCleanupAfterFailedTest(t *testing.T) {
	Require(t, "sleep")
	f := &fakeTB{TB: t}
	var nsPath string
	var proc *Process
	f.run(func(tb testing.TB) {
		n := New(tb)
		ns := n.Namespace("doomed")
		nsPath = ns.Path()
		proc = ns.Start(tb, "sleep", "1000")
		// A process not started through Start (here a shell's background child) is killed too.
		ns.Run(tb, "sh", "-c", "sleep 1000 >/dev/null 2>&1 &")
		tb.Fatalf("the test fails here")
	})
	if !f.failed {
		t.Fatal("fake test did not fail")
	}
	if _, err := os.Stat(nsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists after cleanup (err=%v)", nsPath, err)
	}
	if !proc.Exited() {
		t.Errorf("process still running after cleanup")
	}
	if !strings.Contains(f.output(), "sleep") {
		t.Errorf("failed test did not log the process output tail: %s", f.output())
	}
}

// helperEnv selects what TestHelperNamespaceOwner does when the test binary runs itself.
const helperEnv = "GOIPSEC_TESTNET_HELPER"

// TestHelperNamespaceOwner is not a test on its own: TestCleanupWhenTestBinaryDies runs the test
// binary again with helperEnv set, and this function then creates a namespace with a process in it
// and dies the way helperEnv says. Without helperEnv it returns at once.
func TestHelperNamespaceOwner(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	n := New(t)
	ns := n.Namespace("owner")
	p := ns.Start(t, "sleep", "1000")
	fmt.Printf("NS=%s PID=%d\n", ns.Name(), p.Pid())
	os.Stdout.Sync()
	switch mode {
	case "panic":
		panic("helper panics on purpose")
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func TestCleanupWhenTestBinaryDies(t *testing.T) {
	Require(t, "sleep")
	for _, mode := range []string{"panic", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNamespaceOwner$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helper exited successfully:\n%s", out)
			}
			var nsName string
			var pid int
			for _, line := range strings.Split(string(out), "\n") {
				if _, err := fmt.Sscanf(line, "NS=%s PID=%d", &nsName, &pid); err == nil {
					break
				}
			}
			if nsName == "" {
				t.Fatalf("helper printed no namespace:\n%s", out)
			}
			// The kernel kills the child when its parent dies (Pdeathsig), with or without cleanups.
			waitGone(t, pid)
			_, statErr := os.Stat(netnsDir + "/" + nsName)
			switch mode {
			case "panic":
				// Cleanups run on panic.
				if !errors.Is(statErr, os.ErrNotExist) {
					t.Errorf("namespace %s survived a panicking test", nsName)
				}
			case "kill":
				// Nothing runs after SIGKILL; the sweeper removes what is left.
				if errors.Is(statErr, os.ErrNotExist) {
					// Another test binary running in parallel swept it first: that is the sweeper working.
					t.Logf("namespace %s already swept by a concurrent New", nsName)
					return
				}
				swept, err := SweepStale()
				if err != nil {
					t.Fatal(err)
				}
				if !contains(swept, nsName) {
					t.Errorf("SweepStale removed %v, want %s", swept, nsName)
				}
				if _, err := os.Stat(netnsDir + "/" + nsName); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("namespace %s still there after SweepStale", nsName)
				}
			}
		})
	}
}

// waitGone waits until pid has disappeared; the kernel delivers the parent-death signal
// asynchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if !processAlive(pid) {
			return
		}
		// A zombie counts as gone: it no longer runs and holds no namespace.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still alive after its test binary died", pid)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSweepStaleLeavesLiveAndForeignNamespaces(t *testing.T) {
	n := New(t)
	live := n.Namespace("live")
	foreign := "goipsec-foreign-" + randomHex(2)
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", foreign).Run()
	swept, err := SweepStale()
	if err != nil {
		t.Fatal(err)
	}
	if contains(swept, live.Name()) || contains(swept, foreign) {
		t.Errorf("SweepStale removed %v", swept)
	}
}

func TestOwnerPID(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"gt4242-1f0c-left", 4242, true},
		{"gt1-x", 1, true},
		{"gt-1f0c-left", 0, false},
		{"gt0-1f0c", 0, false},
		{"gt042-1f0c", 0, false}, // not a name this package makes
		{"gt4242", 0, false},
		{"gtx-1", 0, false},
		{"other4242-1", 0, false},
		{"gt99999999999999999999-1", 0, false},
	} {
		pid, ok := ownerPID(c.name)
		if pid != c.pid || ok != c.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}

func TestCheckShortName(t *testing.T) {
	for _, good := range []string{"left", "a", "NAT_1", "x-y"} {
		if err := checkShortName(good); err != nil {
			t.Errorf("checkShortName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "a.b", strings.Repeat("x", maxShortName+1)} {
		if err := checkShortName(bad); err == nil {
			t.Errorf("checkShortName(%q) accepted", bad)
		}
	}
}
