package testnet

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// captureStartTimeout bounds how long tcpdump may take to start listening.
const captureStartTimeout = 20 * time.Second

// Capture is a running tcpdump writing a pcap file.
type Capture struct {
	t    testing.TB
	p    *Process
	path string
}

// Capture starts tcpdump on iface inside the namespace, writing every packet (no snap length limit,
// no buffering) to a pcap file in t.TempDir(); filter is an optional pcap-filter expression such as
// "udp". It returns once tcpdump is listening, so nothing sent afterwards is missed.
func (ns *NS) Capture(t testing.TB, iface string, filter ...string) *Capture {
	t.Helper()
	Require(t, "tcpdump")
	path := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%s.pcap", ns.short, iface))
	// --immediate-mode and -U: without them short captures lose their tail when tcpdump is stopped.
	// -Z root: tcpdump would otherwise drop to a user that cannot write into the test's temp dir.
	argv := []string{"tcpdump", "-i", iface, "-n", "-s", "0", "-U", "--immediate-mode", "-Z", "root", "-w", path}
	argv = append(argv, filter...)
	p := ns.Start(t, argv...)
	p.WaitOutput(t, "listening on", captureStartTimeout)
	return &Capture{t: t, p: p, path: path}
}

// Stop ends the capture (SIGINT, so tcpdump flushes and closes the file) and returns the pcap path.
// Calling it again returns the same path.
func (c *Capture) Stop() string {
	c.t.Helper()
	c.p.stopWith(syscall.SIGINT)
	if err := c.p.err; err != nil && !exitedBySignal(err) {
		c.t.Fatalf("testnet: tcpdump failed: %v\n%s", err, c.p.Output())
	}
	return c.path
}

// Path is where the pcap file is (complete only after Stop).
func (c *Capture) Path() string { return c.path }
