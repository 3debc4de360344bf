package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/status"
)

func statusOf(t *testing.T, sock string) daemon.Status {
	t.Helper()
	out, err := goipsecCLI(t, "status", "--json", "--socket", sock)
	var st daemon.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("goipsec status: %v\n%s", err, out)
	}
	return st
}

func connByName(st daemon.Status, name string) *status.Connection {
	for i := range st.Connections {
		if st.Connections[i].Name == name {
			return &st.Connections[i]
		}
	}
	return nil
}

func childSPIs(c *status.Connection) string {
	var out []string
	if c == nil {
		return ""
	}
	for _, sa := range c.IKESAs {
		out = append(out, sa.SPIInitiator+"/"+sa.SPIResponder)
		for _, ch := range sa.Children {
			out = append(out, ch.SPIIn+"/"+ch.SPIOut)
		}
	}
	return strings.Join(out, ",")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadAndShutdown: a reload keeps the SAs of an unchanged connection, brings up an added one,
// refuses a broken file with file:line and keeps running; SIGTERM deletes the SAs at the peer and
// removes the TUN device.
func TestReloadAndShutdown(t *testing.T) {
	requireRoot(t)
	var id [3]byte
	copy(id[:], randBytes(3))
	a, err := netlab.NewNS(fmt.Sprintf("gl%xa", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("gl%xb", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		ns    *netlab.NS
		addrs []string
	}{{a, []string{"10.1.0.1/24", "10.11.0.1/24"}}, {b, []string{"10.2.0.1/24", "10.12.0.1/24"}}} {
		for _, addr := range x.addrs {
			x.ns.AddAddr("lo", addr)
		}
	}
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	one := func(name, local, remote, lts, rts, start string) string {
		return strings.Replace(connConf(name, local, remote, lts, rts, start), "ike-1", "ike-"+name, 1)
	}
	daemonA := "daemon {\n  vici_socket = " + sockA + "\n}\n"
	daemonB := "daemon {\n  vici_socket = " + sockB + "\n}\n"
	gtA := one("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "start")
	gtB := one("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")
	writeFile(t, confA, gtA+daemonA)
	writeFile(t, confB, gtB+daemonB)
	startDaemon(t, b, confB)
	da := startDaemon(t, a, confA)
	da.waitLog(t, "Child SA established", 10*time.Second)
	spisBefore := childSPIs(connByName(statusOf(t, sockA), "gt"))
	if spisBefore == "" {
		t.Fatal("gt has no SAs")
	}

	// A broken edit: refused with file:line, nothing changes.
	writeFile(t, confA, gtA+daemonA+"connections {\n  bad {\n    propsals = aes128\n  }\n}\n")
	out, err := goipsecCLI(t, "reload", "--socket", sockA)
	if err == nil || !strings.Contains(out, confA+":") || !strings.Contains(out, "propsals") {
		t.Fatalf("broken reload: err %v, output:\n%s", err, out)
	}
	if got := childSPIs(connByName(statusOf(t, sockA), "gt")); got != spisBefore {
		t.Fatalf("a refused reload changed the SAs: %s -> %s", spisBefore, got)
	}

	// Add a connection on both sides; gt must keep its SAs.
	gt2A := one("gt2", "192.0.2.1", "192.0.2.2", "10.11.0.0/24", "10.12.0.0/24", "start")
	gt2B := one("gt2", "192.0.2.2", "192.0.2.1", "10.12.0.0/24", "10.11.0.0/24", "none")
	writeFile(t, confB, gtB+gt2B+daemonB)
	if out, err := goipsecCLI(t, "reload", "--socket", sockB); err != nil {
		t.Fatalf("reload B: %v\n%s", err, out)
	}
	writeFile(t, confA, gtA+gt2A+daemonA)
	if out, err := goipsecCLI(t, "reload", "--socket", sockA); err != nil {
		t.Fatalf("reload A: %v\n%s", err, out)
	}
	waitUntil(t, "gt2 up after reload", func() bool {
		c := connByName(statusOf(t, sockA), "gt2")
		return c != nil && c.State == "up" && len(c.IKESAs) == 1 && len(c.IKESAs[0].Children) == 1
	})
	if got := childSPIs(connByName(statusOf(t, sockA), "gt")); got != spisBefore {
		t.Fatalf("reload touched the unchanged connection gt: %s -> %s", spisBefore, got)
	}

	// SIGTERM: the peer hears Delete for both IKE SAs at once, and A's TUN device is gone.
	da.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(t, "the peer dropped its IKE SAs after A's SIGTERM", func() bool {
		st := statusOf(t, sockB)
		for _, c := range st.Connections {
			if len(c.IKESAs) > 0 {
				return false
			}
		}
		return true
	})
	waitUntil(t, "A's TUN device removed", func() bool {
		out, _ := exec.Command("ip", "-n", a.Name, "link", "show", "goipsec0").CombinedOutput()
		return strings.Contains(string(out), "does not exist")
	})
}
