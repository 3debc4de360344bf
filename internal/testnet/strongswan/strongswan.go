// Package strongswan runs strongSwan's charon 5.9.8 as a reference IKEv2/ESP peer inside a testnet
// namespace, drives it with swanctl, and reads the keys it derived back out of its log so tests can
// decrypt captures (tshark) and check our own derivations against a third party.
//
// Each Charon has its own strongswan.conf, VICI socket, log file and /run (charon 5.9.8 hard-codes
// /var/run/charon.pid, so two instances on one host need separate /run directories). ESP is handled by
// kernel-libipsec, strongSwan's userspace ESP, because the test kernels have no XFRM ESP. That implies:
// ESP in tunnel mode only (no transport mode, AH, ESN or IPComp); UDP encapsulation always, as charon
// fakes NAT detection and floats to port 4500; and routes for the remote selectors only when a local
// address lies inside local_ts, which is why tests put their inner prefixes on lo.
//
// The log parser is hand-written: strongSwan has no machine-readable key export in 5.9.8's Debian
// build (the save-keys plugin is not packaged), and its debug log format is stable within a release.
package strongswan

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// Paths of the strongSwan programs as Debian installs them.
const (
	CharonPath  = "/usr/lib/ipsec/charon"
	SwanctlPath = "swanctl"
)

// Timeouts that guard against hangs; none of them is a performance requirement.
const (
	viciStartTimeout = 20 * time.Second
	pollInterval     = 50 * time.Millisecond
	initiateTimeout  = "30" // seconds, swanctl --timeout
	logTailLines     = 200
)

// defaultPlugins is what every instance loads (a constant table, copied before use): enough for PSK, X.509, EAP-less IKEv2 with the
// algorithms the tests use, the userspace ESP backend, and VICI. kernel-libipsec must come first among
// the kernel backends: only the first kernel-ipsec backend registered is used.
var defaultPlugins = []plugin{
	{"kernel-libipsec", 3},
	{"kernel-netlink", 2},
	{"random", 1}, {"nonce", 1}, {"openssl", 1},
	// kdf: without it 5.9.8's key derivation fails.
	{"kdf", 1},
	{"curve25519", 1}, {"chapoly", 1},
	{"pem", 1}, {"pkcs1", 1}, {"pkcs8", 1}, {"x509", 1}, {"pubkey", 1},
	{"revocation", 1}, {"constraints", 1},
	{"socket-default", 1}, {"vici", 1}, {"updown", 1},
}

type plugin struct {
	name string
	load int // higher loads earlier
}

// swanctlDirs are the credential folders swanctl --load-all reads next to swanctl.conf; creating them
// keeps swanctl from complaining about each missing one.
var swanctlDirs = []string{
	"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey",
	"private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12",
}

// Config describes one charon instance.
type Config struct {
	// SwanctlConf is the swanctl.conf text: connections and secrets.
	SwanctlConf string
	// Files are written next to swanctl.conf before loading, keyed by relative path, e.g.
	// "x509/peer.pem" or "private/peer.key".
	Files map[string][]byte
	// CharonConf is extra strongswan.conf text placed inside the charon { } section, e.g.
	// "fragment_size = 500" or "retransmit_timeout = 1.0".
	CharonConf string
	// Plugins are loaded in addition to the default set (eap-md5, for example).
	Plugins []string
	// Debug raises the other log groups (enc, net, knl, esp, ...) to level 3 and prints charon's whole
	// log at cleanup even when the test passed.
	Debug bool
	// Root runs charon and swanctl from another root file system, such as the Debian 13 one with
	// strongSwan 6 (Trixie); "" runs the host's strongSwan.
	Root string
}

// Charon is a running charon in a namespace.
type Charon struct {
	t     testing.TB
	ns    *testnet.NS
	dir   string // everything of this instance: strongswan.conf, swanctl/, run/, log, socket
	conf  string // strongswan.conf path, passed as STRONGSWAN_CONF
	log   string // log file path
	proc  *testnet.Process
	debug bool
	root  string // Config.Root; dir lies below it
}

// Start writes the instance's configuration, runs charon inside ns with its own /run bind mount,
// waits until its VICI socket answers and loads cfg with swanctl --load-all. Cleanup stops charon and,
// when the test failed (or cfg.Debug is set), logs the tail of charon's log.
func Start(t testing.TB, ns *testnet.NS, cfg Config) *Charon {
	t.Helper()
	if cfg.Root == "" {
		testnet.Require(t, CharonPath, SwanctlPath)
	}
	// Not t.TempDir(): the VICI socket path must fit in sun_path (108 bytes) and test names are long.
	// Below the root, so that a charon there sees it at the same place minus the root.
	tmpBase := ""
	if cfg.Root != "" {
		tmpBase = filepath.Join(cfg.Root, "tmp")
	}
	dir, err := os.MkdirTemp(tmpBase, "gtswan-")
	if err != nil {
		t.Fatalf("strongswan: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Charon{
		t: t, ns: ns, dir: dir,
		conf:  filepath.Join(dir, "strongswan.conf"),
		log:   filepath.Join(dir, "charon.log"),
		debug: cfg.Debug,
		root:  cfg.Root,
	}
	for _, d := range append([]string{"run"}, prefixAll("swanctl/", swanctlDirs)...) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatalf("strongswan: %v", err)
		}
	}
	files := map[string][]byte{
		"strongswan.conf":      []byte(c.strongswanConf(cfg)),
		"swanctl/swanctl.conf": []byte(cfg.SwanctlConf),
	}
	for name, data := range cfg.Files {
		files[filepath.Join("swanctl", filepath.Clean("/"+name))] = data
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatalf("strongswan: %v", err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatalf("strongswan: %v", err)
		}
	}

	// Registered before the process starts, so it runs after the process's own cleanup stopped it
	// and the log is complete.
	t.Cleanup(func() {
		if !t.Failed() && !c.debug {
			return
		}
		lines := logTailLines
		if c.debug {
			lines = 1 << 30
		}
		t.Logf("strongswan: charon log in %s:\n%s", ns, testnet.Tail(c.Log(), lines))
	})
	// ip netns exec gives the command a private mount namespace, so the bind mount over /run is
	// invisible to the host and to other instances.
	if c.root == "" {
		c.proc = ns.Start(t, "env", "STRONGSWAN_CONF="+c.conf,
			"sh", "-c", `mount --bind "$1" /run && exec "$2"`, "sh", filepath.Join(dir, "run"), CharonPath)
	} else {
		// The same private mount namespace gives the root its own /run, /proc (of the namespace's
		// processes), /sys (of the network namespace) and /dev (/dev/net/tun for kernel-libipsec).
		c.proc = ns.Start(t, "sh", "-c", `mount --bind "$1" "$3/run" && mount -t proc proc "$3/proc" && mount --rbind /sys "$3/sys" && `+
			`mount --rbind /dev "$3/dev" && exec chroot "$3" env STRONGSWAN_CONF="$4" "$2"`,
			"sh", filepath.Join(dir, "run"), CharonPath, c.root, c.inner(c.conf))
	}
	c.waitVICI(t)
	c.Swanctl(t, "--load-all", "--file", c.inner(filepath.Join(dir, "swanctl", "swanctl.conf")))
	return c
}

func (c *Charon) strongswanConf(cfg Config) string {
	plugins := append([]plugin(nil), defaultPlugins...)
	for _, p := range cfg.Plugins {
		plugins = append(plugins, plugin{p, 1})
	}
	var b strings.Builder
	sock := "unix://" + c.inner(filepath.Join(c.dir, "charon.vici"))
	fmt.Fprintf(&b, "# Written by goipsec internal/testnet/strongswan for one test instance.\n")
	fmt.Fprintf(&b, "charon {\n\tload_modular = yes\n\tinstall_routes = yes\n")
	fmt.Fprintf(&b, "\tplugins {\n")
	for _, p := range plugins {
		fmt.Fprintf(&b, "\t\t%s {\n\t\t\tload = %d\n", p.name, p.load)
		if p.name == "vici" {
			fmt.Fprintf(&b, "\t\t\tsocket = %s\n", sock)
		}
		fmt.Fprintf(&b, "\t\t}\n")
	}
	fmt.Fprintf(&b, "\t}\n")
	// ike=4 and chd=4 log every derived key (and the PSK and DH secret: lab use only); mgr=2 logs
	// the SPIs of each IKE SA at checkin, which is how keys are matched to SAs.
	other := 1
	if cfg.Debug {
		other = 3
	}
	fmt.Fprintf(&b, "\tfilelog {\n\t\tcharon {\n\t\t\tpath = %s\n\t\t\tappend = no\n\t\t\tflush_line = yes\n", c.inner(c.log))
	fmt.Fprintf(&b, "\t\t\tike_name = yes\n\t\t\tdefault = %d\n\t\t\tike = 4\n\t\t\tchd = 4\n", other)
	fmt.Fprintf(&b, "\t\t\tmgr = 2\n\t\t\tcfg = %d\n\t\t\tknl = %d\n\t\t}\n\t}\n", max(2, other), max(2, other))
	// An empty syslog section: otherwise charon also logs to the host's syslog.
	fmt.Fprintf(&b, "\tsyslog {\n\t}\n")
	if cfg.CharonConf != "" {
		fmt.Fprintf(&b, "%s\n", cfg.CharonConf)
	}
	fmt.Fprintf(&b, "}\nswanctl {\n\tsocket = %s\n}\n", sock)
	return b.String()
}

// waitVICI polls the VICI socket until charon answers, failing if charon exits first.
func (c *Charon) waitVICI(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(viciStartTimeout)
	for {
		out, err := c.SwanctlOutput("--stats")
		if err == nil {
			return
		}
		if c.proc.Exited() {
			t.Fatalf("strongswan: charon in %s exited during startup:\n%s\nlog:\n%s", c.ns, c.proc.Output(), testnet.Tail(c.Log(), logTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("strongswan: charon in %s: VICI not answering after %v: %s\nlog:\n%s", c.ns, viciStartTimeout, out, testnet.Tail(c.Log(), logTailLines))
		}
		time.Sleep(pollInterval)
	}
}

// Swanctl runs swanctl against this instance and returns its output; an error fails t.
func (c *Charon) Swanctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.SwanctlOutput(args...)
	if err != nil {
		t.Fatalf("strongswan: swanctl %s (in %s): %v\n%s", strings.Join(args, " "), c.ns, err, out)
	}
	return out
}

// SwanctlOutput runs swanctl against this instance and returns its output and error, for callers that
// expect failures. swanctl talks to charon over the VICI unix socket, so it runs in the host namespace.
func (c *Charon) SwanctlOutput(args ...string) (string, error) {
	cmd := exec.Command(SwanctlPath, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+c.conf)
	if c.root != "" {
		cmd = exec.Command("chroot", append([]string{c.root, "env", "STRONGSWAN_CONF=" + c.inner(c.conf), SwanctlPath}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Initiate brings up the CHILD_SA child (and its IKE SA if needed) and waits for the result.
func (c *Charon) Initiate(t testing.TB, child string) {
	t.Helper()
	c.Swanctl(t, "--initiate", "--child", child, "--timeout", initiateTimeout)
}

// ListSAs returns `swanctl --list-sas`.
func (c *Charon) ListSAs(t testing.TB) string {
	t.Helper()
	return c.Swanctl(t, "--list-sas")
}

var reEstablished = regexp.MustCompile(`(?m)^\S+: #\d+, ESTABLISHED`)

// WaitEstablished waits until the connection ike has an ESTABLISHED IKE SA, failing t after timeout.
func (c *Charon) WaitEstablished(t testing.TB, ike string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.SwanctlOutput("--list-sas", "--ike", ike)
		if err == nil && reEstablished.MatchString(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("strongswan: IKE SA %q in %s not established after %v:\n%s", ike, c.ns, timeout, out)
		}
		time.Sleep(pollInterval)
	}
}

// WaitLog waits until charon's log has a line matching re, failing t after timeout, and returns the
// first such line.
func (c *Charon) WaitLog(t testing.TB, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(c.Log(), "\n") {
			if re.MatchString(line) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("strongswan: no log line matching %q in %s after %v", re, c.ns, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// Log returns charon's log so far.
func (c *Charon) Log() string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// NS is the namespace charon runs in.
func (c *Charon) NS() *testnet.NS { return c.ns }

// Dir is the instance directory (strongswan.conf, swanctl/, charon.log).
func (c *Charon) Dir() string { return c.dir }

// Stop stops charon (SIGTERM); cleanup does this anyway.
func (c *Charon) Stop() { c.proc.Stop() }

// Keys returns the keys of every IKE SA charon has logged so far, oldest first.
func (c *Charon) Keys() []IKESAKeys {
	c.t.Helper()
	ikes, _, err := ParseLog(c.Log())
	if err != nil {
		c.t.Fatalf("strongswan: %v", err)
	}
	return ikes
}

// ChildKeys returns the keys of every CHILD_SA charon has logged so far, oldest first.
func (c *Charon) ChildKeys() []ChildSAKeys {
	c.t.Helper()
	_, children, err := ParseLog(c.Log())
	if err != nil {
		c.t.Fatalf("strongswan: %v", err)
	}
	return children
}

func prefixAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
