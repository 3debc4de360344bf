package userspace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ts"
)

// routeTable points the remote selectors of protect policies at the TUN device. The routes live in
// their own table, consulted for every packet that does not carry the engine's fwmark, so the
// engine's own ESP/UDP/IKE packets (which do) are routed normally even when a selector covers the
// peer's address (transport mode, or 0.0.0.0/0 in remote access).
type routeTable struct {
	h        *netlink.Handle
	tunIndex int
	table    int

	mu       sync.Mutex
	rules    []*netlink.Rule
	byPolicy map[dataplane.PolicyID][]netip.Prefix
	refs     map[netip.Prefix]int
}

func newRouteTable(cfg Config, tunName string) (*routeTable, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	link, err := h.LinkByName(tunName)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("find TUN device %q: %w", tunName, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		h.Close()
		return nil, fmt.Errorf("bring up %q: %w", tunName, err)
	}
	rt := &routeTable{h: h, tunIndex: link.Attrs().Index, table: cfg.RouteTable,
		byPolicy: map[dataplane.PolicyID][]netip.Prefix{}, refs: map[netip.Prefix]int{}}
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		r := netlink.NewRule()
		r.Family = family
		r.Table = cfg.RouteTable
		r.Priority = cfg.RulePriority
		r.Mark = cfg.FwMark
		r.Invert = true
		// Replace a rule left behind by an earlier run that did not exit cleanly.
		_ = h.RuleDel(r)
		if err := h.RuleAdd(r); err != nil {
			if family == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			rt.close()
			return nil, fmt.Errorf("add routing rule (not fwmark 0x%x lookup %d): %w", cfg.FwMark, cfg.RouteTable, err)
		}
		rt.rules = append(rt.rules, r)
	}
	return rt, nil
}

// add routes the remote selectors of a policy to the TUN device.
func (rt *routeTable) add(id dataplane.PolicyID, p dataplane.PolicyParams) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var added []netip.Prefix
	for _, sel := range p.Remote {
		src := rt.sourceFor(p.Local, sel.Is6())
		for _, pfx := range sel.Prefixes() {
			if rt.refs[pfx] == 0 {
				r := &netlink.Route{LinkIndex: rt.tunIndex, Dst: prefixToIPNet(pfx), Table: rt.table, Scope: netlink.SCOPE_LINK, MTU: p.RouteMTU}
				if src.IsValid() {
					r.Src = src.AsSlice()
				}
				if err := rt.h.RouteReplace(r); err != nil {
					for _, a := range added {
						rt.unrefLocked(a)
					}
					return fmt.Errorf("route %v to %s: %w", pfx, "TUN", err)
				}
			}
			rt.refs[pfx]++
			added = append(added, pfx)
		}
	}
	rt.byPolicy[id] = added
	return nil
}

// sourceFor picks a local address inside the local selectors as the routes' preferred source, so
// that traffic this host originates matches the policy (strongSwan does the same).
func (rt *routeTable) sourceFor(local []ts.Selector, is6 bool) netip.Addr {
	family := unix.AF_INET
	if is6 {
		family = unix.AF_INET6
	}
	addrs, err := rt.h.AddrList(nil, family)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			continue
		}
		for _, sel := range local {
			if sel.ContainsAddr(ip) {
				return ip
			}
		}
	}
	return netip.Addr{}
}

func (rt *routeTable) remove(id dataplane.PolicyID) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var errs []error
	for _, pfx := range rt.byPolicy[id] {
		errs = append(errs, rt.unrefLocked(pfx))
	}
	delete(rt.byPolicy, id)
	return errors.Join(errs...)
}

func (rt *routeTable) unrefLocked(pfx netip.Prefix) error {
	rt.refs[pfx]--
	if rt.refs[pfx] > 0 {
		return nil
	}
	delete(rt.refs, pfx)
	err := rt.h.RouteDel(&netlink.Route{LinkIndex: rt.tunIndex, Dst: prefixToIPNet(pfx), Table: rt.table})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %v: %w", pfx, err)
	}
	return nil
}

// close removes the rules; the routes go with the TUN device.
func (rt *routeTable) close() error {
	var errs []error
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.rules {
		if err := rt.h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete routing rule: %w", err))
		}
	}
	rt.rules = nil
	rt.h.Close()
	return errors.Join(errs...)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// pathMTU is the MTU towards dst for the engine's own (marked) packets: the route's MTU if it has
// one, else its interface's; 1500 when it cannot be found.
func (rt *routeTable) pathMTU(dst netip.Addr, mark uint32) int {
	routes, err := rt.h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Mark: mark})
	if err != nil || len(routes) == 0 {
		return 1500
	}
	if routes[0].MTU > 0 {
		return routes[0].MTU
	}
	link, err := rt.h.LinkByIndex(routes[0].LinkIndex)
	if err != nil || link.Attrs().MTU <= 0 {
		return 1500
	}
	return link.Attrs().MTU
}
