package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/pool"
)

// TestPoolsSharedByIKEv2IKEv1AndPPP: an IKEv2 client (configuration payload), an IKEv1 Mode
// Config client and a PPP user of the L2TP server lease from one configured pool through the
// daemon's three paths, get distinct addresses, and all see the pool run out together.
func TestPoolsSharedByIKEv2IKEv1AndPPP(t *testing.T) {
	tree, err := config.Parse("swanctl.conf", []byte(`
pools {
  rw { addrs = 10.3.0.0/29
       dns = 10.3.0.53 }
}
connections {
  v1 {
    version = 1
    remote_addrs = 192.0.2.9
    pools = rw
    local { auth = psk }
    remote { auth = psk }
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := New(Options{})
	if err := d.applyPools(cfg); err != nil {
		t.Fatal(err)
	}
	p := d.vips.store.Get("rw")
	if p == nil || p.Size() != 6 {
		t.Fatalf("pool rw: %v", p)
	}

	// The L2TP server holds its own address (the pool's last) as the LNS does at start.
	server := netip.MustParseAddr("10.3.0.6")
	if err := p.Reserve(l2tpServerLease, server); err != nil {
		t.Fatal(err)
	}
	v2 := d.assignVIPs([]string{"rw"})
	conn := &connection{cfg: cfg.Connections[0]}
	d.buildV1(conn)
	if conn.v1 == nil || conn.v1.Pool == nil {
		t.Fatal("the IKEv1 connection has no Mode Config pool")
	}
	if len(conn.v1.DNS) != 1 || conn.v1.DNS[0] != netip.MustParseAddr("10.3.0.53") {
		t.Fatalf("Mode Config DNS %v", conn.v1.DNS)
	}
	ppp := poolLeases{store: d.vips.store, names: []string{"rw"}} // the LNS's IPCP leases

	any4 := []netip.Addr{netip.IPv4Unspecified()}
	seen := map[netip.Addr]string{server: "l2tp server"}
	take := func(who string, a netip.Addr, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if other, dup := seen[a]; dup {
			t.Fatalf("%s got %s, already %s's", who, a, other)
		}
		seen[a] = who
	}
	got, err := v2(ike.VIPRequest{Conn: "v2", ID: "alice", Want: any4})
	take("IKEv2 alice", firstAddr(got.Addrs), err)
	a, err := conn.v1.Pool.Acquire("bob")
	take("IKEv1 bob", a, err)
	bob := a
	a, err = ppp.Acquire("carol@192.0.2.7:1701")
	take("PPP carol", a, err)
	carol := a
	got, err = v2(ike.VIPRequest{Conn: "v2", ID: "dave", Want: any4})
	take("IKEv2 dave", firstAddr(got.Addrs), err)
	a, err = conn.v1.Pool.Acquire("erin")
	take("IKEv1 erin", a, err)
	if len(seen) != 6 {
		t.Fatalf("leases %v", seen)
	}

	// Full: every path says so.
	if _, err := ppp.Acquire("frank@192.0.2.8:1701"); !errors.Is(err, pool.ErrExhausted) {
		t.Fatalf("PPP on a full pool: %v", err)
	}
	if _, err := conn.v1.Pool.Acquire("frank"); !errors.Is(err, pool.ErrExhausted) {
		t.Fatalf("IKEv1 on a full pool: %v", err)
	}
	if got, err := v2(ike.VIPRequest{Conn: "v2", ID: "frank", Want: any4}); err == nil || len(got.Addrs) != 0 {
		t.Fatalf("IKEv2 on a full pool: %v %v", got.Addrs, err)
	}

	// A PPP session ending frees its address only; it goes to the next client once nothing
	// never-used is left, whichever protocol that client speaks.
	if !ppp.ReleaseAddr("carol@192.0.2.7:1701", carol) {
		t.Fatal("PPP release")
	}
	if ppp.ReleaseAddr("carol@192.0.2.7:1701", bob) {
		t.Fatal("a PPP session released IKEv1 bob's address")
	}
	got, err = v2(ike.VIPRequest{Conn: "v2", ID: "frank", Want: any4})
	if err != nil || firstAddr(got.Addrs) != carol {
		t.Fatalf("IKEv2 frank after carol left: %v %v", got.Addrs, err)
	}
	if p.Held() != 6 {
		t.Fatalf("held %d, want 6", p.Held())
	}
}

func firstAddr(list []netip.Addr) netip.Addr {
	if len(list) == 0 {
		return netip.Addr{}
	}
	return list[0]
}
