package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/status"
)

// pair makes two namespaces joined by a veth (192.0.2.1 and 192.0.2.2) with inner addresses
// 10.1.0.1 and 10.2.0.1 on their loopbacks.
func pair(t *testing.T, tag string) (*netlab.NS, *netlab.NS) {
	t.Helper()
	requireRoot(t)
	var id [3]byte
	copy(id[:], randBytes(3))
	a, err := netlab.NewNS(fmt.Sprintf("%s%xa", tag, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("%s%xb", tag, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	a.AddAddr("lo", "10.1.0.1/24")
	b.AddAddr("lo", "10.2.0.1/24")
	return a, b
}

// TestSecondDaemonRefusesTheSocket: a second daemon pointed at a control socket another one
// serves stops with advice instead of running uncontrollable; with its own --socket it runs, and
// the CLI reaches each daemon through its socket (flag or GOIPSEC_SOCKET).
func TestSecondDaemonRefusesTheSocket(t *testing.T) {
	a, b := pair(t, "gs")
	dir := t.TempDir()
	sock := filepath.Join(dir, "shared.sock")
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	writeFile(t, confA, connConf("first", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "none")+"daemon {\n  vici_socket = "+sock+"\n}\n")
	writeFile(t, confB, connConf("second", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")+"daemon {\n  vici_socket = "+sock+"\n}\n")
	startDaemon(t, a, confA)
	cmd := b.Command(goipsecBinary(t), "run", "-c", confB)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the second daemon kept running on a socket in use")
	}
	if err == nil || !strings.Contains(string(out), "another daemon already serves the control socket "+sock) {
		t.Fatalf("second daemon: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "goipsec running") {
		t.Fatalf("the second daemon claimed to run:\n%s", out)
	}
	// The first daemon still owns the socket.
	if out, err := goipsecCLI(t, "status", "--socket", sock); err != nil || !strings.Contains(out, "first: down") {
		t.Fatalf("status of the first daemon: %v\n%s", err, out)
	}
	// With its own socket the second one runs, and the CLI finds it through the environment.
	own := filepath.Join(dir, "second.sock")
	p := &daemonProc{cmd: b.Command(goipsecBinary(t), "run", "-c", confB, "--socket", own)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })
	p.waitLog(t, "vici="+own, 10*time.Second)
	env := exec.Command(goipsecBinary(t), "status")
	env.Env = append(os.Environ(), "GOIPSEC_SOCKET="+own)
	if out, err := env.CombinedOutput(); err != nil || !strings.Contains(string(out), "second: down") {
		t.Fatalf("status through GOIPSEC_SOCKET: %v\n%s", err, out)
	}
}

// TestDegradedWhenChildFails: an IKE SA whose Child SA cannot be negotiated (ESP proposals do not
// overlap) is "degraded", with the reason, not "up".
func TestDegradedWhenChildFails(t *testing.T) {
	a, b := pair(t, "gd")
	dir := t.TempDir()
	sockA := filepath.Join(dir, "a.sock")
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	writeFile(t, confA, connConf("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "start")+"daemon {\n  vici_socket = "+sockA+"\n}\n")
	writeFile(t, confB, strings.Replace(connConf("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none"),
		"esp_proposals = aes256gcm16", "esp_proposals = aes128gcm16", 1)+"daemon {\n  vici_socket = "+filepath.Join(dir, "b.sock")+"\n}\n")
	startDaemon(t, b, confB)
	startDaemon(t, a, confA)
	var c *status.Connection
	waitUntil(t, "connection gt degraded", func() bool {
		st := statusJSONOf(t, sockA)
		c = connByName(st, "gt")
		return c != nil && c.State == status.StateDegraded
	})
	if !strings.Contains(c.StateReason, "no Child SA") || c.LastFailure == nil || !strings.Contains(c.LastFailure.Message, "ESP") {
		t.Fatalf("degraded connection without its reason: %+v", c)
	}
	out, err := goipsecCLI(t, "status", "gt", "--socket", sockA)
	if err != nil || !strings.Contains(out, "gt: degraded") || !strings.Contains(out, "child net    no Child SA") {
		t.Fatalf("status text: %v\n%s", err, out)
	}
}

// notifyListener is a fake systemd notify socket.
type notifyListener struct {
	c *net.UnixConn
}

func (n *notifyListener) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	n.c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	k, _, err := n.c.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no sd_notify message within %v: %v", timeout, err)
	}
	return string(buf[:k])
}

// TestSystemdNotify: under Type=notify the daemon says READY=1 only once the tunnel is up, pets
// the watchdog, reports reloads and its shutdown.
func TestSystemdNotify(t *testing.T) {
	a, b := pair(t, "gn")
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "nfy")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	notifyPath := filepath.Join(sockDir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nl := &notifyListener{c}
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	writeFile(t, confA, connConf("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "start")+"daemon {\n  vici_socket = "+filepath.Join(dir, "a.sock")+"\n}\n")
	writeFile(t, confB, connConf("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")+"daemon {\n  vici_socket = "+filepath.Join(dir, "b.sock")+"\n}\n")
	startDaemon(t, b, confB)
	p := &daemonProc{cmd: a.Command(goipsecBinary(t), "run", "-c", confA)}
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=400000")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", p.Log())
		}
	}()
	ready := nl.next(t, 15*time.Second)
	if ready != "READY=1\nSTATUS=1 of 1 connections up" {
		t.Fatalf("first notification %q, want READY=1 with the connection up", ready)
	}
	if !strings.Contains(p.Log(), "Child SA established") {
		t.Fatalf("READY=1 before the Child SA was established:\n%s", p.Log())
	}
	// The watchdog every 200 ms (half of WATCHDOG_USEC), each followed by a status line.
	if w := nl.next(t, 2*time.Second); w != "WATCHDOG=1" {
		t.Fatalf("expected WATCHDOG=1, got %q", w)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m := nl.next(t, 5*time.Second)
		seen = append(seen, m)
		if strings.HasPrefix(m, "READY=1") {
			break
		}
	}
	joined := strings.Join(seen, "|")
	if !strings.Contains(joined, "RELOADING=1\nMONOTONIC_USEC=") || !strings.HasPrefix(seen[len(seen)-1], "READY=1") {
		t.Fatalf("reload notifications %q", seen)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	for {
		m := nl.next(t, 5*time.Second)
		if m == "STOPPING=1" {
			break
		}
	}
	p.cmd.Wait()
}

// statusJSONOf decodes `goipsec status --json` strictly: unknown fields fail, so the daemon and
// the documented schema cannot drift apart.
func statusJSONOf(t *testing.T, sock string) status.Status {
	t.Helper()
	out, err := goipsecCLI(t, "status", "--json", "--socket", sock)
	if err != nil {
		t.Fatalf("goipsec status --json: %v\n%s", err, out)
	}
	var st status.Status
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}
