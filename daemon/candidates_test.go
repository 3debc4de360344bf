package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/goipsec/goipsec/config"
)

// TestMayMatchInConfigOrder: the responder tries connections in configuration order whether they
// name the peer's exact address or a subnet, range or %any (strongSwan's order), and only those
// that may match it.
func TestMayMatchInConfigOrder(t *testing.T) {
	single := func(s string) config.Address {
		a := netip.MustParseAddr(s)
		return config.Address{Kind: config.AddrSingle, Start: a, End: a}
	}
	anyAddr := config.Address{Kind: config.AddrAny}
	subnet := config.Address{Kind: config.AddrPrefix, Prefix: netip.MustParsePrefix("192.0.2.0/24"),
		Start: netip.MustParseAddr("192.0.2.0"), End: netip.MustParseAddr("192.0.2.255")}
	specs := []struct {
		name   string
		remote []config.Address
	}{
		{"any-first", []config.Address{anyAddr}},
		{"exact-1", []config.Address{single("192.0.2.1")}},
		{"other-host", []config.Address{single("192.0.2.9")}},
		{"subnet", []config.Address{subnet}},
		{"exact-2", []config.Address{single("198.51.100.7"), single("::ffff:192.0.2.1")}},
		{"unset", nil},
		{"exact-3", []config.Address{single("192.0.2.1")}},
	}
	var conns []*connection
	for _, s := range specs {
		conns = append(conns, &connection{cfg: &config.Connection{Name: s.name, RemoteAddrs: s.remote}})
	}
	snap := newPeerSnapshot(conns, nil)
	var got []string
	for c := range snap.mayMatch(netip.MustParseAddr("192.0.2.1")) {
		got = append(got, c.cfg.Name)
	}
	want := []string{"any-first", "exact-1", "subnet", "exact-2", "unset", "exact-3"}
	if !slices.Equal(got, want) {
		t.Errorf("connections for 192.0.2.1: %v, want %v", got, want)
	}
	got = got[:0]
	for c := range snap.mayMatch(netip.MustParseAddr("203.0.113.5")) {
		got = append(got, c.cfg.Name)
		if len(got) == 2 {
			break // the caller may stop early
		}
	}
	if want := []string{"any-first", "subnet"}; !slices.Equal(got, want) {
		t.Errorf("first two for 203.0.113.5: %v, want %v", got, want)
	}
}
