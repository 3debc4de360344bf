package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// NamePrefix starts the name of every namespace and veth interface this package creates. Namespace
// names continue with the PID of the test binary that owns them ("gt4242-1f0c-left"), which is what
// SweepStale uses to tell leftovers of a killed binary from namespaces still in use.
const NamePrefix = "gt"

// IntegrationEnv names the environment variable that, set to "require", makes Require fail even under
// -short. scripts/test.sh sets it so that a full run can never pass by skipping.
const IntegrationEnv = "GOIPSEC_INTEGRATION"

// netnsDir is where ip-netns(8) keeps the bind mounts that name network namespaces.
const netnsDir = "/run/netns"

// maxShortName bounds the name a test gives a namespace, keeping real names readable in `ip netns`.
const maxShortName = 24

// Require checks that the test runs as root and that every tool is installed (a name is looked up in
// PATH, a name containing a slash is checked as a file path); ip(8) is always required. When something
// is missing it fails the test, unless testing.Short() is set and IntegrationEnv is not "require", in
// which case it skips: CI runs without -short and must fail loudly.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if strings.Contains(tool, "/") {
			if _, err := os.Stat(tool); err != nil {
				missing = append(missing, tool)
			}
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("testnet: missing %s (run scripts/deps.sh test, as root)", strings.Join(missing, ", "))
	if testing.Short() && os.Getenv(IntegrationEnv) != "require" {
		t.Skip(msg)
	}
	t.Fatal(msg)
}

// Net is the set of namespaces created for one test. t.Cleanup kills every process left in them and
// deletes them, whether the test passed, failed or panicked.
type Net struct {
	t testing.TB
	// tag is random and short: it goes into namespace names (after the PID) and into veth names,
	// which the kernel limits to 15 bytes.
	tag string

	mu     sync.Mutex // guards spaces and links
	spaces []*NS
	links  int
}

// NS is one network namespace of a Net.
type NS struct {
	net   *Net
	short string // the name the test asked for
	name  string // the real namespace name, unique on the host
}

// New creates an empty Net for t. It calls Require(t) first, and removes namespaces that killed test
// binaries left behind (SweepStale).
func New(t testing.TB) *Net {
	t.Helper()
	Require(t)
	if swept, err := SweepStale(); err != nil {
		t.Logf("testnet: sweeping stale namespaces: %v", err)
	} else if len(swept) > 0 {
		t.Logf("testnet: removed stale namespaces %s", strings.Join(swept, " "))
	}
	n := &Net{t: t, tag: randomHex(2)}
	t.Cleanup(n.cleanup)
	return n
}

// Namespace creates (or returns the already created) namespace called name in this Net, with lo up,
// IPv6 duplicate address detection off and router solicitations off (they only add noise to captures).
// name may use letters, digits, '-' and '_'.
func (n *Net) Namespace(name string) *NS {
	n.t.Helper()
	if err := checkShortName(name); err != nil {
		n.t.Fatalf("testnet: %v", err)
	}
	n.mu.Lock()
	for _, ns := range n.spaces {
		if ns.short == name {
			n.mu.Unlock()
			return ns
		}
	}
	ns := &NS{net: n, short: name, name: fmt.Sprintf("%s%d-%s-%s", NamePrefix, os.Getpid(), n.tag, name)}
	n.mu.Unlock()

	n.ip("netns", "add", ns.name)
	// Registered only once the namespace exists, so cleanup never tries to delete a name it did not make.
	n.mu.Lock()
	n.spaces = append(n.spaces, ns)
	n.mu.Unlock()
	n.ip("-n", ns.name, "link", "set", "lo", "up")
	for _, key := range []string{
		"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad",
		"net.ipv6.conf.all.router_solicitations", "net.ipv6.conf.default.router_solicitations",
	} {
		ns.Sysctl(n.t, key, "0")
	}
	return ns
}

// Link joins a and b with a veth pair, puts the given addresses (IPv4 and/or IPv6 CIDRs) on each end,
// and sets both ends up. IPv6 addresses are added with nodad so they are usable at once. It returns
// the interface names in a and in b.
func (n *Net) Link(a, b *NS, aAddrs, bAddrs []string) (aIf, bIf string) {
	n.t.Helper()
	if a == b || a.net != n || b.net != n {
		n.t.Fatalf("testnet: Link needs two different namespaces of this Net")
	}
	n.mu.Lock()
	n.links++
	idx := n.links
	n.mu.Unlock()
	aIf = fmt.Sprintf("%s%sv%da", NamePrefix, n.tag, idx)
	bIf = fmt.Sprintf("%s%sv%db", NamePrefix, n.tag, idx)
	// Created directly inside the namespaces, so the names never meet interfaces of the host.
	n.ip("-n", a.name, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.name)
	for _, cidr := range aAddrs {
		a.AddAddr(aIf, cidr)
	}
	for _, cidr := range bAddrs {
		b.AddAddr(bIf, cidr)
	}
	n.ip("-n", a.name, "link", "set", aIf, "up")
	n.ip("-n", b.name, "link", "set", bIf, "up")
	return aIf, bIf
}

// Name is the real namespace name, as `ip netns exec` wants it.
func (ns *NS) Name() string { return ns.name }

// Path is the file naming the namespace, as setns(2) and `nsenter --net=` want it.
func (ns *NS) Path() string { return netnsDir + "/" + ns.name }

func (ns *NS) String() string { return ns.short + "(" + ns.name + ")" }

// AddAddr adds an address in CIDR notation to dev; IPv6 addresses get nodad. A failure fails the test
// given to New.
func (ns *NS) AddAddr(dev, cidr string) {
	ns.net.t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		ns.net.t.Fatalf("testnet: %s: address %q: %v", ns, cidr, err)
	}
	args := []string{"-n", ns.name, "addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	ns.net.ip(args...)
}

// AddRoute runs `ip route add ARGS...` in the namespace, with -6 when any argument is an IPv6 address
// or prefix (ip cannot tell the family of "default"). A failure fails the test given to New.
func (ns *NS) AddRoute(args ...string) {
	ns.net.t.Helper()
	cmd := []string{"-n", ns.name}
	for _, a := range args {
		if strings.Contains(a, ":") {
			cmd = append(cmd, "-6")
			break
		}
	}
	ns.net.ip(append(append(cmd, "route", "add"), args...)...)
}

// EnableForwarding turns on IPv4 and IPv6 forwarding in the namespace.
func (ns *NS) EnableForwarding() {
	ns.net.t.Helper()
	ns.Sysctl(ns.net.t, "net.ipv4.ip_forward", "1")
	ns.Sysctl(ns.net.t, "net.ipv6.conf.all.forwarding", "1")
}

// Sysctl sets a network sysctl ("net.ipv4.conf.all.rp_filter") in the namespace. The file is opened
// from a thread inside the namespace (Do): the kernel resolves /proc/sys/net for the opening thread's
// network namespace, so no sysctl(8) process is needed.
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if !strings.HasPrefix(key, "net.") || strings.Contains(key, "/") || strings.Contains(key, "..") {
		t.Fatalf("testnet: Sysctl %q: only net.* keys are per namespace", key)
	}
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := ns.Do(func() error { return os.WriteFile(path, []byte(value+"\n"), 0) }); err != nil {
		t.Fatalf("testnet: in %s: sysctl %s=%s: %v", ns, key, value, err)
	}
}

// Run executes argv inside the namespace and returns its combined output; a non-zero exit fails t
// with the output.
func (ns *NS) Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := ns.Output(argv...)
	if err != nil {
		t.Fatalf("testnet: in %s: %s: %v\n%s", ns, strings.Join(argv, " "), err, out)
	}
	return out
}

// Output executes argv inside the namespace and returns its combined output and exit error, for
// callers that expect failures.
func (ns *NS) Output(argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("testnet: empty command")
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, argv...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runStdin is Run with input fed to the command's standard input.
func (ns *NS) runStdin(t testing.TB, input string, argv ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, argv...)...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testnet: in %s: %s: %v\n%s\ninput:\n%s", ns, strings.Join(argv, " "), err, out, input)
	}
	return string(out)
}

// Ping sends count echo requests to dst from the namespace (IPv6 when dst contains a colon) and
// reports whether all went well; it never fails the test, so it also serves to assert that
// something is unreachable.
func (ns *NS) Ping(t testing.TB, dst string, count int) (ok bool, out string) {
	t.Helper()
	Require(t, "ping")
	family := "-4"
	if strings.Contains(dst, ":") {
		family = "-6"
	}
	// -W bounds the wait for the last reply so an unreachable peer returns promptly.
	out, err := ns.Output("ping", family, "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", dst)
	return err == nil, out
}

// ip runs ip(8) in the host namespace and fails the Net's test on error.
func (n *Net) ip(args ...string) {
	n.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("testnet: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cleanup kills whatever still runs in the namespaces (processes started with Start are normally
// gone already: their own cleanups ran first) and deletes the namespaces, newest first.
func (n *Net) cleanup() {
	n.mu.Lock()
	spaces := n.spaces
	n.spaces = nil
	n.mu.Unlock()
	for i := len(spaces) - 1; i >= 0; i-- {
		if err := removeNamespace(spaces[i].name); err != nil {
			n.t.Errorf("testnet: cleanup: %v", err)
		}
	}
}

// removeNamespace kills every process inside the namespace and deletes its name. The namespace itself
// (and its veth ends) disappears once nothing refers to it any more.
func removeNamespace(name string) error {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %v", name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			// ESRCH just means it exited meanwhile.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, out)
	}
	return nil
}

// SweepStale deletes namespaces named by this package whose owning process no longer exists — what a
// test binary killed before its cleanups ran leaves behind — and returns their names. Namespaces of
// live test binaries, and names not made by this package, are left alone.
func SweepStale() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if err := removeNamespace(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, e.Name())
	}
	return swept, errors.Join(errs...)
}

// ownerPID extracts the PID from a name of the form NamePrefix + PID + "-" + ...
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok || digits == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != digits {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether pid exists; EPERM still means it exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func checkShortName(name string) error {
	if name == "" || len(name) > maxShortName {
		return fmt.Errorf("namespace name %q: want 1 to %d characters", name, maxShortName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("namespace name %q: only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}
