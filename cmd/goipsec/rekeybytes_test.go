package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
)

// TestRekeyByVolume: a Child SA with rekey_bytes is rekeyed when the data plane counts that much
// traffic, and traffic carries on over the new SA.
func TestRekeyByVolume(t *testing.T) {
	requireRoot(t)
	var id [3]byte
	copy(id[:], randBytes(3))
	a, err := netlab.NewNS(fmt.Sprintf("gv%xa", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("gv%xb", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	a.AddAddr("lo", "10.1.0.1/24")
	b.AddAddr("lo", "10.2.0.1/24")
	dir := t.TempDir()
	volume := "                rekey_bytes = 1000000\n                life_bytes = 100000000\n"
	confA := strings.Replace(connConf("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "start"), "                start_action", volume+"                start_action", 1)
	writeFile(t, filepath.Join(dir, "a.conf"), confA+"daemon {\n  vici_socket = "+filepath.Join(dir, "a.sock")+"\n}\n")
	writeFile(t, filepath.Join(dir, "b.conf"), connConf("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")+
		"daemon {\n  vici_socket = "+filepath.Join(dir, "b.sock")+"\n}\n")
	startDaemon(t, b, filepath.Join(dir, "b.conf"))
	da := startDaemon(t, a, filepath.Join(dir, "a.conf"))
	da.waitLog(t, "Child SA established", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := netlab.Echo(ctx, a, netip.MustParseAddr("10.1.0.1"), b, netip.MustParseAddrPort("10.2.0.1:7200"), 3<<20); err != nil {
		t.Fatal(err)
	}
	da.waitLog(t, "soft limit: rekeying", 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(da.Log(), "Child SA established") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no new Child SA after the volume limit:\n%s", da.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := netlab.Echo(ctx, a, netip.MustParseAddr("10.1.0.1"), b, netip.MustParseAddrPort("10.2.0.1:7201"), 64<<10); err != nil {
		t.Fatalf("traffic after the rekey: %v", err)
	}
}
