package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/pool"
	"github.com/goipsec/goipsec/ts"
)

// vipPair: A asks for virtual IPs (vips = 0.0.0.0, ::) with a dynamic local selector; B assigns
// them from pools and narrows its dynamic remote selector to them.
func vipPair(t *testing.T) (*pair, *pool.Pool, *pool.Pool) {
	p := newPair(t, nil)
	p4, _ := pool.FromPrefix("v4", netip.MustParsePrefix("10.3.0.0/24"), nil)
	p6, _ := pool.FromPrefix("v6", netip.MustParsePrefix("fd00:3::/64"), nil)
	dns := netip.MustParseAddr("10.2.0.53")
	p.ca.VIPs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	ac := p.ca.Children[0]
	ac.LocalTS, ac.LocalDynamic = nil, true
	ac.RemoteTS = append(ac.RemoteTS, ts.Any(true))
	bc := p.cb.Children[0]
	bc.RemoteTS, bc.RemoteDynamic = nil, true
	bc.LocalTS = append(bc.LocalTS, ts.Any(true))
	p.cb.AssignVIPs = func(r ike.VIPRequest) (ike.VIPAssignment, error) {
		var out ike.VIPAssignment
		for _, w := range r.Want {
			pl := p4
			if w.Is6() {
				pl = p6
			}
			a, err := pl.AcquireRequested(r.ID, w)
			if err != nil {
				return out, err
			}
			out.Addrs = append(out.Addrs, a)
		}
		out.Attrs = []wire.CPAttribute{{Type: wire.InternalIP4DNS, Value: dns.AsSlice()}}
		return out, nil
	}
	return p, p4, p6
}

func TestVirtualIPs(t *testing.T) {
	p, p4, p6 := vipPair(t)
	p.up(t)
	want4, want6 := netip.MustParseAddr("10.3.0.1"), netip.MustParseAddr("fd00:3::1")
	var got *ike.VirtualIPs
	for _, v := range p.a.VirtualIPs() {
		got = &v
	}
	if got == nil || len(got.Addrs) != 2 || got.Addrs[0] != want4 || got.Addrs[1] != want6 || len(got.DNS) != 1 || got.DNS[0] != netip.MustParseAddr("10.2.0.53") {
		t.Fatalf("client received %+v", got)
	}
	for _, c := range p.a.Children() {
		if ts.FormatList(c.LocalTS) != "10.3.0.1/32, fd00:3::1/128" {
			t.Fatalf("client's Child SA local selectors %s, want its virtual IPs", ts.FormatList(c.LocalTS))
		}
	}
	for _, c := range p.b.Children() {
		if ts.FormatList(c.RemoteTS) != "10.3.0.1/32, fd00:3::1/128" {
			t.Fatalf("gateway's Child SA remote selectors %s", ts.FormatList(c.RemoteTS))
		}
	}
	up := p.b.IKEUp()[0]
	if up.IKE.VIPID != "192.0.2.1" || len(up.IKE.RemoteVIPs) != 2 {
		t.Fatalf("gateway's IKEUp %+v", up.IKE)
	}
	if p4.Held() != 1 || p6.Held() != 1 {
		t.Fatalf("held %d/%d", p4.Held(), p6.Held())
	}
	// A rekeyed IKE SA carries the virtual IPs on: its IKEDown is Replaced.
	p.a.Engine.RekeyIKE("a")
	p.run(2 * time.Second)
	for _, d := range p.b.IKEDown() {
		if !d.Replaced {
			t.Fatalf("gateway's IKE SA down without replacement: %+v", d)
		}
	}
	if len(p.b.Rekeyed()) != 1 || len(p.b.Rekeyed()[0].New.RemoteVIPs) != 2 {
		t.Fatalf("rekeyed IKE SA lost the virtual IPs: %+v", p.b.Rekeyed())
	}
	p.traffic(time.Second)
	_, _, noA, _ := p.a.Plane.Counters()
	_, _, noB, _ := p.b.Plane.Counters()
	if n := noA + noB; n != 0 {
		t.Fatalf("%d packets met a missing SA", n)
	}
}
