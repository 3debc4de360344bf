package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/config"
)

// readmeConfigs returns the quick start's two files from README.md, gw1's then gw2's.
func readmeConfigs(t *testing.T) (string, string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(b), "```")[1:] {
		if strings.HasPrefix(strings.TrimSpace(part), "# /etc/goipsec/goipsec.conf on gw") {
			blocks = append(blocks, strings.TrimPrefix(part, "\n"))
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("README.md has %d quick start files, want gw1's and gw2's", len(blocks))
	}
	return blocks[0], blocks[1]
}

func parseConf(t *testing.T, name, text string) *config.Config {
	t.Helper()
	tree, err := config.Parse(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestReadmeQuickStartIsSymmetric: the quick start gives both sides' files, they mirror each
// other, exactly one side starts the tunnel, and both detect a dead peer.
func TestReadmeQuickStartIsSymmetric(t *testing.T) {
	f1, f2 := readmeConfigs(t)
	c1, c2 := parseConf(t, "gw1", f1).Connections[0], parseConf(t, "gw2", f2).Connections[0]
	if c1.LocalAddrs[0] != c2.RemoteAddrs[0] || c1.RemoteAddrs[0] != c2.LocalAddrs[0] ||
		c1.Local.ID.Text != c2.Remote.ID.Text || c1.Remote.ID.Text != c2.Local.ID.Text {
		t.Fatalf("addresses or identities do not mirror: %+v / %+v", c1, c2)
	}
	ch1, ch2 := c1.Children[0], c2.Children[0]
	if ch1.LocalTS[0].String() != ch2.RemoteTS[0].String() || ch1.RemoteTS[0].String() != ch2.LocalTS[0].String() {
		t.Fatalf("traffic selectors do not mirror: %v %v / %v %v", ch1.LocalTS, ch1.RemoteTS, ch2.LocalTS, ch2.RemoteTS)
	}
	if (ch1.StartAction == config.ActionStart) == (ch2.StartAction == config.ActionStart) {
		t.Fatalf("start_action %s and %s: exactly one side must start the tunnel", ch1.StartAction, ch2.StartAction)
	}
	if c1.DPDDelay == 0 || c2.DPDDelay == 0 {
		t.Fatal("the quick start must set dpd_delay on both sides")
	}
}

// TestReadmeQuickStartRuns runs the quick start's files as printed, on two namespaces with the
// README's addresses and the inner addresses it tells to add, and pings across as it shows.
func TestReadmeQuickStartRuns(t *testing.T) {
	a, b := pair(t, "gq") // 192.0.2.1 and 192.0.2.2, inner 10.1.0.1 and 10.2.0.1
	f1, f2 := readmeConfigs(t)
	dir := t.TempDir()
	confA, confB := filepath.Join(dir, "gw1.conf"), filepath.Join(dir, "gw2.conf")
	writeFile(t, confA, f1+"daemon {\n  vici_socket = "+filepath.Join(dir, "a.sock")+"\n}\n")
	writeFile(t, confB, f2+"daemon {\n  vici_socket = "+filepath.Join(dir, "b.sock")+"\n}\n")
	for _, c := range []string{confA, confB} {
		if out, err := goipsecCLI(t, "check", "--offline", "-c", c); err != nil {
			t.Fatalf("goipsec check %s: %v\n%s", c, err, out)
		}
	}
	startDaemon(t, b, confB)
	da := startDaemon(t, a, confA)
	da.waitLog(t, "Child SA established", 10*time.Second)
	ping, err := a.Ping(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"), 3, 50*time.Millisecond, 3*time.Second)
	if err != nil || ping.Received != 3 {
		t.Fatalf("ping through the quick start tunnel: %+v %v", ping, err)
	}
	if out, err := goipsecCLI(t, "status", "site", "--socket", filepath.Join(dir, "a.sock")); err != nil || !strings.Contains(out, "site: up") {
		t.Fatalf("status: %v\n%s", err, out)
	}
}
