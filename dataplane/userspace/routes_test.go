package userspace

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/internal/netlab"
)

// TestPathMTUCached: the path MTU towards a destination is the route's (or its interface's), read
// from the kernel at most once per addrTTL for one destination and mark; a change of the route
// shows once the entry is older than that, and another destination is looked up on its own.
func TestPathMTUCached(t *testing.T) {
	requireNetTests(t)
	var id [3]byte
	rand.Read(id[:])
	ns, err := netlab.NewNS(fmt.Sprintf("gm%x", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	for _, args := range [][]string{
		{"link", "add", "v0", "mtu", "1400", "type", "veth", "peer", "name", "v1"},
		{"link", "set", "v1", "up"},
		{"link", "set", "v0", "up"},
		{"addr", "add", "198.51.100.1/24", "dev", "v0"},
		{"route", "add", "203.0.113.0/24", "dev", "v0", "mtu", "1300"},
	} {
		if out, err := ns.IP(args...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	now := time.Unix(1000, 0)
	rt := &routeTable{now: func() time.Time { return now }}
	if err := ns.Do(func() error {
		var err error
		rt.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rt.h.Close()
	routed, onLink := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("198.51.100.9")
	if got := rt.pathMTU(routed, 0); got != 1300 {
		t.Fatalf("path MTU via the route with mtu 1300 = %d", got)
	}
	if got := rt.pathMTU(onLink, 0); got != 1400 {
		t.Fatalf("path MTU on v0 (mtu 1400) = %d", got)
	}
	if out, err := ns.IP("route", "change", "203.0.113.0/24", "dev", "v0", "mtu", "1200"); err != nil {
		t.Fatalf("ip route change: %v %s", err, out)
	}
	now = now.Add(addrTTL / 2)
	if got := rt.pathMTU(routed, 0); got != 1300 {
		t.Fatalf("within addrTTL the cached 1300 is expected, got %d", got)
	}
	now = now.Add(addrTTL)
	if got := rt.pathMTU(routed, 0); got != 1200 {
		t.Fatalf("after addrTTL the changed route's 1200 is expected, got %d", got)
	}
	if got := rt.pathMTU(netip.MustParseAddr("192.0.2.99"), 0); got != 1500 {
		t.Fatalf("an unroutable destination gets the default 1500, got %d", got)
	}
}
