package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
)

// hugeConf writes a configuration of n connections (tens of megabytes: seconds to read).
func hugeConf(t *testing.T, path, head string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprint(f, head, "connections {\n")
	for i := range n {
		fmt.Fprintf(f, "  c%d {\n    remote_addrs = 10.%d.%d.1\n    local { auth = psk }\n    remote { auth = psk }\n"+
			"    children { net { remote_ts = 172.16.%d.%d/32 } }\n  }\n", i, i>>8&255, i&255, i>>8&255, i&255)
	}
	fmt.Fprint(f, "}\nsecrets { ike { secret = s } }\n")
}

// TestReloadNeverBlocks: a reload still reading a large file neither delays SIGTERM nor a later
// reload, which replaces it.
func TestReloadNeverBlocks(t *testing.T) {
	requireRoot(t)
	var id [3]byte
	copy(id[:], randBytes(3))
	ns, err := netlab.NewNS(fmt.Sprintf("gr%x", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	dir := t.TempDir()
	sock, conf := filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.conf")
	head := "daemon {\n  vici_socket = " + sock + "\n}\n"
	small := func(name string) string {
		return head + connConf(name, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "none")
	}
	writeFile(t, conf, small("first"))
	d := startDaemon(t, ns, conf)
	waitUntil(t, "daemon up", func() bool { return strings.Contains(d.Log(), "goipsec running") })

	// A huge edit, then at once a small one: the small one wins, the huge one is abandoned.
	hugeConf(t, conf, head, 400_000)
	d.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	writeFile(t, conf, small("second"))
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the second reload applied", func() bool {
		st := statusOf(t, sock)
		return len(st.Connections) == 1 && st.Connections[0].Name == "second"
	})
	waitUntil(t, "the first reload abandoned", func() bool { return strings.Contains(d.Log(), "reload abandoned") })

	// A huge edit, then SIGTERM while it is read: the daemon stops at once.
	hugeConf(t, conf, head, 400_000)
	d.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the daemon did not stop within 5 s of SIGTERM during a reload:\n%s", d.Log())
	}
	if !strings.Contains(d.Log(), "goipsec stopping") {
		t.Fatalf("no orderly stop:\n%s", d.Log())
	}
}
