package xfrm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ts"
)

// Routes for tunnel-mode policies (PolicyParams.Route), as strongSwan's kernel-netlink installs
// them: each remote prefix is routed the way the peer is reached (same device and gateway), with a
// source address inside the local selectors when the host has one, in a table of its own that a
// rule consults before the main table. The XFRM policy then catches the packet on its way out;
// without the route a remote subnet the host has no route for would be unreachable.

// installRule adds the rule "lookup RouteTable" at RulePriority for IPv4 and IPv6.
func (b *Backend) installRule() error {
	if b.cfg.RouteTable == 0 {
		return nil
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		r := netlink.NewRule()
		r.Family, r.Table, r.Priority = fam, int(b.cfg.RouteTable), int(b.cfg.RulePriority)
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			if fam == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			return fmt.Errorf("xfrm: add routing rule for table %d: %w", b.cfg.RouteTable, err)
		}
		b.rules = append(b.rules, r)
	}
	return nil
}

func (b *Backend) removeRules() {
	for _, r := range b.rules {
		netlink.RuleDel(r)
	}
	b.rules = nil
}

// routesFor computes the routes of a tunnel-mode policy towards peer.
func (b *Backend) routesFor(p dataplane.PolicyParams, peer netip.Addr) ([]*netlink.Route, error) {
	if b.cfg.RouteTable == 0 || !peer.IsValid() {
		return nil, nil
	}
	via, err := netlink.RouteGet(net.IP(peer.AsSlice()))
	if err != nil || len(via) == 0 {
		return nil, fmt.Errorf("xfrm: no route to the peer %v: %v", peer, err)
	}
	src := localAddrIn(p.Local, peer.Is4())
	var out []*netlink.Route
	for _, r := range p.Remote {
		if r.Is6() == peer.Is4() {
			continue
		}
		for _, pfx := range rangePrefixes(r.Start, r.End) {
			if pfx.Contains(peer) {
				// A route for the peer's own address into the policy would be a loop for IKE.
				continue
			}
			rt := &netlink.Route{Dst: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())},
				LinkIndex: via[0].LinkIndex, Gw: via[0].Gw, Table: int(b.cfg.RouteTable)}
			if src.IsValid() {
				rt.Src = src.AsSlice()
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

// localAddrIn returns an address of this host inside one of the selectors (the source for
// routed traffic, so that it matches the policy), or the zero Addr.
func localAddrIn(sels []ts.Selector, is4 bool) netip.Addr {
	fam := netlink.FAMILY_V6
	if is4 {
		fam = netlink.FAMILY_V4
	}
	addrs, err := netlink.AddrList(nil, fam)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		for _, s := range sels {
			if s.ContainsAddr(ip) {
				return ip
			}
		}
	}
	return netip.Addr{}
}

func (b *Backend) addRoutes(routes []*netlink.Route) error {
	for i, r := range routes {
		if err := netlink.RouteReplace(r); err != nil {
			for _, d := range routes[:i] {
				netlink.RouteDel(d)
			}
			return fmt.Errorf("xfrm: add route %v: %w", r.Dst, err)
		}
	}
	return nil
}

func delRoutes(routes []*netlink.Route) {
	for _, r := range routes {
		netlink.RouteDel(r)
	}
}
