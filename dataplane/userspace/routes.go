package userspace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

	now func() time.Time

	mu    sync.Mutex
	rules []*netlink.Rule
	refs  map[netip.Prefix]int
	// addrs caches the local addresses (for sourceFor) for addrTTL: listing them is a netlink
	// dump, which cost more than the rest of a policy install when every install asked.
	addrs   []netip.Addr
	addrsAt time.Time
	// linkMTUs caches interface MTUs by index for addrTTL: the path MTU of every outbound SA
	// needs its interface's, and asking the kernel each time doubled the netlink round trips of
	// an SA install (the IKE responder installs two SAs per handshake).
	linkMTUs map[int]cachedMTU
	// pathMTUs caches the route lookup of pathMTU for addrTTL: a route lookup is a netlink round
	// trip that allocates ~3 KB, and the Child SAs of one peer (several per IKE SA, and every
	// rekey) all ask for the same destination. Emptied when it reaches maxPathMTUs entries.
	pathMTUs map[pathKey]cachedMTU
}

type pathKey struct {
	dst  netip.Addr
	mark uint32
}

const maxPathMTUs = 4096

type cachedMTU struct {
	mtu int
	at  time.Time
}

const addrTTL = time.Second

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
	if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
		h.Close()
		return nil, fmt.Errorf("set MTU %d on %q: %w", cfg.MTU, tunName, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		h.Close()
		return nil, fmt.Errorf("bring up %q: %w", tunName, err)
	}
	rt := &routeTable{h: h, tunIndex: link.Attrs().Index, table: cfg.RouteTable, now: cfg.Now,
		refs: map[netip.Prefix]int{}}
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

// add routes prefixes (a policy's remote selectors) to the TUN device, with a preferred source
// inside the local selectors and, when mtu is set, a route MTU below the device's. Routes are
// counted: policies may share a prefix.
func (rt *routeTable) add(local []ts.Selector, prefixes []netip.Prefix, mtu int) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i, pfx := range prefixes {
		if rt.refs[pfx] == 0 {
			r := &netlink.Route{LinkIndex: rt.tunIndex, Dst: prefixToIPNet(pfx), Table: rt.table, Scope: netlink.SCOPE_LINK, MTU: mtu}
			if src := rt.sourceFor(local, pfx.Addr().Is6()); src.IsValid() {
				r.Src = src.AsSlice()
			}
			if err := rt.h.RouteReplace(r); err != nil {
				for _, a := range prefixes[:i] {
					rt.unrefLocked(a)
				}
				return fmt.Errorf("route %v to %s: %w", pfx, "TUN", err)
			}
		}
		rt.refs[pfx]++
	}
	return nil
}

// sourceFor picks a local address inside the local selectors as the routes' preferred source, so
// that traffic this host originates matches the policy (strongSwan does the same).
func (rt *routeTable) sourceFor(local []ts.Selector, is6 bool) netip.Addr {
	if a := rt.sourceFromCache(local, is6, false); a.IsValid() {
		return a
	}
	// A miss on host selectors may be an address added since the cache was filled (a virtual IP
	// put on the TUN device just before its Child SA is installed): look once more. Subnet
	// selectors (gateways, many tunnels) keep the cache.
	for _, s := range local {
		if p, ok := s.Prefix(); !ok || !p.IsSingleIP() {
			return netip.Addr{}
		}
	}
	return rt.sourceFromCache(local, is6, true)
}

func (rt *routeTable) sourceFromCache(local []ts.Selector, is6, refresh bool) netip.Addr {
	if now := rt.now(); refresh || rt.addrs == nil || now.Sub(rt.addrsAt) >= addrTTL || now.Before(rt.addrsAt) {
		rt.addrs = rt.addrs[:0]
		for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
			list, err := rt.h.AddrList(nil, family)
			if err != nil {
				continue
			}
			for _, a := range list {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.Unmap().IsLinkLocalUnicast() {
					rt.addrs = append(rt.addrs, ip.Unmap())
				}
			}
		}
		rt.addrsAt = now
	}
	for _, ip := range rt.addrs {
		if ip.Is6() != is6 {
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

// remove drops what add added for prefixes.
func (rt *routeTable) remove(prefixes []netip.Prefix) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var errs []error
	for _, pfx := range prefixes {
		errs = append(errs, rt.unrefLocked(pfx))
	}
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
	now, key := rt.now(), pathKey{dst: dst, mark: mark}
	rt.mu.Lock()
	c, ok := rt.pathMTUs[key]
	rt.mu.Unlock()
	if ok && now.Sub(c.at) < addrTTL && !now.Before(c.at) {
		return c.mtu
	}
	mtu := 1500
	routes, err := rt.h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Mark: mark})
	switch {
	case err != nil || len(routes) == 0:
	case routes[0].MTU > 0:
		mtu = routes[0].MTU
	default:
		mtu = rt.linkMTU(routes[0].LinkIndex)
	}
	rt.mu.Lock()
	if rt.pathMTUs == nil || len(rt.pathMTUs) >= maxPathMTUs {
		rt.pathMTUs = map[pathKey]cachedMTU{}
	}
	rt.pathMTUs[key] = cachedMTU{mtu: mtu, at: now}
	rt.mu.Unlock()
	return mtu
}

// linkMTU returns an interface's MTU, from the cache while it is fresh.
func (rt *routeTable) linkMTU(index int) int {
	now := rt.now()
	rt.mu.Lock()
	c, ok := rt.linkMTUs[index]
	rt.mu.Unlock()
	if ok && now.Sub(c.at) < addrTTL {
		return c.mtu
	}
	mtu := 1500
	if link, err := rt.h.LinkByIndex(index); err == nil && link.Attrs().MTU > 0 {
		mtu = link.Attrs().MTU
	}
	rt.mu.Lock()
	if rt.linkMTUs == nil {
		rt.linkMTUs = map[int]cachedMTU{}
	}
	rt.linkMTUs[index] = cachedMTU{mtu: mtu, at: now}
	rt.mu.Unlock()
	return mtu
}
