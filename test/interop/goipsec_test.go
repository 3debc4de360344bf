package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// goipsecBinary builds the goipsec command once per test binary.
func goipsecBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "goipsec-interop")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "goipsec")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/goipsec")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// goipsecProc is a `goipsec run` in a namespace.
type goipsecProc struct {
	p    *testnet.Process
	conf string
	vici string // its VICI control socket
}

// startGoipsec writes conf and runs goipsec with it in ns; keylog, when set, turns key logging on.
// Unless conf sets daemon.vici_socket, each instance gets its own socket: the default path is one
// per host, and the tests run several daemons at once.
func startGoipsec(t *testing.T, ns *testnet.NS, conf string) *goipsecProc {
	t.Helper()
	return startGoipsecIn(t, ns, t.TempDir(), conf)
}

// startGoipsecIn is startGoipsec with the configuration file written into dir, beside the
// credential folders (x509/, private/, ...) a test put there.
func startGoipsecIn(t *testing.T, ns *testnet.NS, dir, conf string) *goipsecProc {
	t.Helper()
	// Not t.TempDir(): a socket path must fit in sun_path (108 bytes), and test names are long.
	sockDir, err := os.MkdirTemp("", "gtvici-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	vici := filepath.Join(sockDir, "vici.sock")
	if !strings.Contains(conf, "vici_socket") {
		if !strings.Contains(conf, "\ndaemon {\n") {
			conf += "daemon {\n}\n"
		}
		conf = strings.Replace(conf, "\ndaemon {\n", "\ndaemon {\n  vici_socket = "+vici+"\n", 1)
	}
	// Pool leases persist in daemon.state_dir (default /var/lib/goipsec): each daemon of a test
	// gets its own, so that no test inherits another's leases.
	if !strings.Contains(conf, "state_dir") {
		if !strings.Contains(conf, "\ndaemon {\n") {
			conf += "daemon {\n}\n"
		}
		conf = strings.Replace(conf, "\ndaemon {\n", "\ndaemon {\n  state_dir = "+dir+"\n", 1)
	}
	path := filepath.Join(dir, "goipsec.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := ns.Start(t, goipsecBinary(t), "run", "-c", path)
	p.WaitOutput(t, "goipsec running", 15*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("goipsec log (%s):\n%s", ns, testnet.Tail(p.Output(), 80))
		}
	})
	return &goipsecProc{p: p, conf: path, vici: vici}
}

// waitLog waits for a log line containing s.
func (g *goipsecProc) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(g.p.Output(), s) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("goipsec did not log %q within %s:\n%s", s, timeout, testnet.Tail(g.p.Output(), 60))
}

// connConf writes a goipsec (swanctl.conf syntax) connection.
type connConf struct {
	local, remote     string // outer addresses
	localID, remoteID string
	ikeProposal       string
	espProposal       string
	localTS, remoteTS string
	mode              string
	startAction       string
	encap             bool
	psk               string
	keylog            string
	extra             string // more lines in the connection section
	childExtra        string // more lines in the child section
	daemonExtra       string // more lines in the daemon section (retransmit_timeout = 1s, ...)
	moreChildren      []childConf
}

// childConf is a further child of a connConf.
type childConf struct {
	name              string
	localTS, remoteTS string
	espProposal       string
	extra             string // more lines in the child section
}

func (c connConf) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connections {\n  gt {\n    local_addrs = %s\n    remote_addrs = %s\n    proposals = %s\n", c.local, c.remote, c.ikeProposal)
	if c.encap {
		b.WriteString("    encap = yes\n")
	}
	b.WriteString(c.extra)
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n    remote {\n      auth = psk\n      id = %s\n    }\n", c.localID, c.remoteID)
	fmt.Fprintf(&b, "    children {\n      net {\n        local_ts = %s\n        remote_ts = %s\n", c.localTS, c.remoteTS)
	if c.espProposal != "" { // none: ah_proposals in childExtra
		fmt.Fprintf(&b, "        esp_proposals = %s\n", c.espProposal)
	}
	if c.mode != "" {
		fmt.Fprintf(&b, "        mode = %s\n", c.mode)
	}
	if c.startAction != "" {
		fmt.Fprintf(&b, "        start_action = %s\n", c.startAction)
	}
	b.WriteString(c.childExtra)
	b.WriteString("      }\n")
	for _, ch := range c.moreChildren {
		fmt.Fprintf(&b, "      %s {\n        local_ts = %s\n        remote_ts = %s\n        esp_proposals = %s\n%s      }\n",
			ch.name, ch.localTS, ch.remoteTS, ch.espProposal, ch.extra)
	}
	b.WriteString("    }\n  }\n}\n")
	psk := c.psk
	if psk == "" {
		psk = testPSK
	}
	fmt.Fprintf(&b, "secrets {\n  ike-gt {\n    id-1 = %s\n    id-2 = %s\n    secret = \"%s\"\n  }\n}\n", c.localID, c.remoteID, psk)
	fmt.Fprintf(&b, "daemon {\n%s  log {\n    level = debug\n", c.daemonExtra)
	if c.keylog != "" {
		fmt.Fprintf(&b, "    keylog_file = %s\n", c.keylog)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

const testPSK = "goipsec-interop-psk-not-secret"
