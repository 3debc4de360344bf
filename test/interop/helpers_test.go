package interop

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// swanConn is a charon connection "gt" in swanctl.conf syntax, more flexible than charonConf: its
// identities, PSK, selectors and children can be chosen, which the failure and NAT tests need.
type swanConn struct {
	local, remote     string // local_addrs, remote_addrs
	localID, remoteID string // default: the local address, and %any
	ike               string
	psk               string // default testPSK
	extra             string // more lines in the connection section (rekey_time = 8s, ...)
	children          []swanChild
}

// swanChild is one child of a swanConn.
type swanChild struct {
	name              string
	localTS, remoteTS string
	esp               string
	extra             string // more lines in the child section
}

func (c swanConn) String() string {
	localID, remoteID, psk := c.localID, c.remoteID, c.psk
	if localID == "" {
		localID = c.local
	}
	if remoteID == "" {
		remoteID = "%any"
	}
	if psk == "" {
		psk = testPSK
	}
	var b strings.Builder
	fmt.Fprintf(&b, "connections {\n  gt {\n    local_addrs = %s\n    remote_addrs = %s\n    proposals = %s\n    mobike = no\n%s",
		c.local, c.remote, c.ike, c.extra)
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n    remote {\n      auth = psk\n      id = %s\n    }\n    children {\n", localID, remoteID)
	for _, ch := range c.children {
		fmt.Fprintf(&b, "      %s {\n        local_ts = %s\n        remote_ts = %s\n        esp_proposals = %s\n%s      }\n",
			ch.name, ch.localTS, ch.remoteTS, ch.esp, ch.extra)
	}
	b.WriteString("    }\n  }\n}\n")
	// A secret without identities: charon uses it for any pair, so a wrong identity shows up as an
	// identity problem, not as a missing key.
	fmt.Fprintf(&b, "secrets {\n  ike-gt {\n    secret = \"%s\"\n  }\n}\n", psk)
	return b.String()
}

// startCharon starts charon in ns with conn loaded.
func startCharon(t *testing.T, ns *testnet.NS, conn swanConn) *strongswan.Charon {
	t.Helper()
	return strongswan.Start(t, ns, strongswan.Config{SwanctlConf: conn.String()})
}

// startCharonConf is startCharon with extra settings in strongswan.conf's charon section.
func startCharonConf(t *testing.T, ns *testnet.NS, conn swanConn, charonConf string) *strongswan.Charon {
	t.Helper()
	return strongswan.Start(t, ns, strongswan.Config{SwanctlConf: conn.String(), CharonConf: charonConf})
}

// logLines returns goipsec's log lines that contain every one of parts.
func (g *goipsecProc) logLines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(g.p.Output(), "\n") {
		match := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				match = false
				break
			}
		}
		if match {
			out = append(out, line)
		}
	}
	return out
}

// waitLogCount waits until at least n log lines contain every one of parts, and returns them.
func (g *goipsecProc) waitLogCount(t *testing.T, n int, timeout time.Duration, parts ...string) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := g.logLines(parts...)
		if len(lines) >= n {
			return lines
		}
		if g.p.Exited() {
			t.Fatalf("goipsec exited before logging %d lines with %q:\n%s", n, parts, testnet.Tail(g.p.Output(), 80))
		}
		if time.Now().After(deadline) {
			t.Fatalf("goipsec logged %d lines with %q within %s, want %d:\n%s", len(lines), parts, timeout, n, testnet.Tail(g.p.Output(), 80))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logAttr extracts the value of key from a slog text line (key=value or key="quoted value").
func logAttr(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if s, err := strconv.QuotedPrefix(rest); err == nil {
			if v, err := strconv.Unquote(s); err == nil {
				return v
			}
		}
		return ""
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		return rest[:j]
	}
	return rest
}

// pingWhile pings dst from ns every interval until stop is closed, and reports on done how many
// echo requests were sent and answered. It is how the rekey tests show that traffic keeps flowing
// while SAs are replaced.
func pingWhile(t *testing.T, ns *testnet.NS, dst string, stop <-chan struct{}) <-chan [2]int {
	done := make(chan [2]int, 1)
	go func() {
		sent, ok := 0, 0
		for {
			select {
			case <-stop:
				done <- [2]int{sent, ok}
				return
			default:
			}
			sent++
			if good, _ := ns.Ping(t, dst, 1); good {
				ok++
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return done
}

// killInNS sends SIGKILL to the process in ns whose command name is comm (a peer process this test
// started, found by its PID among the namespace's processes): the way to make a peer die without
// the Deletes a clean shutdown would send.
func killInNS(t *testing.T, ns *testnet.NS, comm string) {
	t.Helper()
	out, err := testnetPIDs(ns)
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, pid := range out {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s (pid %d): %v", comm, pid, err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatalf("no %s process in %s", comm, ns)
	}
	// Wait until it is gone, so that what the test does next meets a dead peer.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids, _ := testnetPIDs(ns)
		alive := false
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(b)) == comm {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s in %s still alive after SIGKILL", comm, ns)
}

// testnetPIDs lists the processes in a namespace (ip netns pids).
func testnetPIDs(ns *testnet.NS) ([]int, error) {
	raw, err := exec.Command("ip", "netns", "pids", ns.Name()).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", ns.Name(), err)
	}
	var pids []int
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// swanSPIs extracts the IKE SPI pairs ("xxxxxxxxxxxxxxxx_i yyyyyyyyyyyyyyyy_r") and the CHILD_SA
// SPIs (8 hex digits, both directions) from swanctl --list-sas.
func swanSPIs(listing string) (ike []string, child []string) {
	for _, m := range reSwanIKESPIs.FindAllStringSubmatch(listing, -1) {
		ike = append(ike, m[1]+"_"+m[2])
	}
	for _, m := range reSwanChildSPIs.FindAllStringSubmatch(listing, -1) {
		child = append(child, m[2])
	}
	return ike, child
}

var (
	reSwanIKESPIs   = regexp.MustCompile(`([0-9a-f]{16})_i\*? ([0-9a-f]{16})_r`)
	reSwanChildSPIs = regexp.MustCompile(`(?m)^\s+(in|out) +([0-9a-f]{8})`)
)

// installedChildSPIs returns the SPIs of the Child SAs that swanctl --list-sas shows as INSTALLED.
func installedChildSPIs(listing string) map[string]bool {
	out := map[string]bool{}
	installed := false
	for _, line := range strings.Split(listing, "\n") {
		if reSwanChildHeader.MatchString(line) {
			installed = strings.Contains(line, "INSTALLED")
			continue
		}
		if m := reSwanChildSPIs.FindStringSubmatch(line); m != nil && installed {
			out[m[2]] = true
		}
	}
	return out
}

var reSwanChildHeader = regexp.MustCompile(`^\s+\S+: #\d+, reqid \d+, [A-Z_]+,`)

func TestInstalledChildSPIs(t *testing.T) {
	listing := `gt: #3, ESTABLISHED, IKEv2, 27c8428155541e1e_i* 3e79c7983590737e_r
  net: #1, reqid 1, DELETED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    in  7c40ba45,   3760 bytes,    40 packets,    14s ago
    out b52e2c8a,      0 bytes,     0 packets
  net: #6, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256/CURVE_25519
    in  ebba366b,      0 bytes,     0 packets
    out 53c8e917,      0 bytes,     0 packets
`
	got := installedChildSPIs(listing)
	if len(got) != 2 || !got["ebba366b"] || !got["53c8e917"] || got["7c40ba45"] {
		t.Fatalf("installed SPIs %v", got)
	}
}
