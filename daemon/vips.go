package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/pool"
	"github.com/goipsec/goipsec/status"
)

// vipState is the daemon's remote-access state: the pools a gateway leases virtual IPs from, and
// what a client installed for the virtual IPs it received (addresses on the TUN device, DNS).
type vipState struct {
	store *pool.Store

	// changing serialises installing and removing a client's addresses and DNS servers as a
	// whole: the effects of two IKE SAs are applied by different goroutines, and a successor's
	// (re-authentication, a followed redirect) install must not interleave with its
	// predecessor's removal of the same address. Taken before mu, never while an SA is held.
	changing sync.Mutex
	mu       sync.Mutex
	// attrs are the configuration attributes of each pool, from the configuration.
	cfgs map[string]*config.Pool
	// installed are the client's addresses on the TUN device, by IKE SA (SPIs), and the
	// resolv.conf content to restore.
	installed map[[2]uint64][]netip.Addr
	dnsOwner  [2]uint64
	savedDNS  []byte
	hadDNS    bool
}

func (d *Daemon) vipsInit() error {
	path := ""
	if dir := d.opts.Daemon.StateDir; dir != "" {
		path = filepath.Join(dir, "leases.json")
	}
	st, err := pool.NewStore(path)
	d.vips = &vipState{store: st, cfgs: map[string]*config.Pool{}, installed: map[[2]uint64][]netip.Addr{}}
	if err != nil {
		d.log.Warn("pool leases not restored", "err", err)
	}
	return nil
}

// applyPools makes the pools those of the configuration, keeping leases.
func (d *Daemon) applyPools(cfg *config.Config) error {
	if d.vips == nil {
		return nil
	}
	var specs []pool.Spec
	cfgs := map[string]*config.Pool{}
	for _, p := range cfg.Pools {
		specs = append(specs, pool.Spec{Name: p.Name, Start: p.Start, End: p.End, DNS: p.DNS})
		cfgs[p.Name] = p
	}
	d.vips.mu.Lock()
	d.vips.cfgs = cfgs
	d.vips.mu.Unlock()
	return d.vips.store.Apply(specs)
}

// Pools is the daemon's pool store (VICI pool commands, status, metrics).
func (d *Daemon) Pools() *pool.Store {
	if d.vips == nil {
		return nil
	}
	return d.vips.store
}

// assignVIPs is a connection's ike.PeerConfig.AssignVIPs: for each requested family the first of
// the connection's pools of that family that has an address (pools = radius: the address the
// RADIUS server gave), and the attributes of the pools used. It runs inside IKE SA processing and
// touches only memory.
func (d *Daemon) assignVIPs(poolNames []string) func(ike.VIPRequest) (ike.VIPAssignment, error) {
	return func(r ike.VIPRequest) (ike.VIPAssignment, error) {
		var out ike.VIPAssignment
		var errs []error
		used := map[string]bool{}
		for _, want := range r.Want {
			done := false
			for _, name := range poolNames {
				if name == "radius" {
					for _, a := range r.AAA {
						if a.Is4() == want.Is4() {
							out.Addrs, done = append(out.Addrs, a), true
							break
						}
					}
					if done {
						break
					}
					continue
				}
				if r.AAAPool != "" && name != r.AAAPool && contains(poolNames, r.AAAPool) {
					continue // Framed-Pool picks among the connection's pools
				}
				p := d.vips.store.Get(name)
				if p == nil || p.Is6() != want.Is6() {
					continue
				}
				a, err := p.AcquireRequested(r.ID, want)
				if err != nil {
					errs = append(errs, fmt.Errorf("pool %s: %w", name, err))
					continue
				}
				out.Addrs = append(out.Addrs, a)
				used[name] = true
				done = true
				break
			}
			if !done && len(errs) == 0 {
				errs = append(errs, fmt.Errorf("connection %s has no pool for %s addresses", r.Conn, family(want)))
			}
		}
		d.vips.mu.Lock()
		for _, name := range poolNames {
			if used[name] {
				out.Attrs = append(out.Attrs, poolAttributes(d.vips.cfgs[name])...)
			}
		}
		d.vips.mu.Unlock()
		if len(out.Addrs) > 0 {
			d.log.Info("virtual IP leased", "conn", r.Conn, "id", r.ID, "addrs", fmt.Sprint(out.Addrs))
		}
		return out, errors.Join(errs...)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// poolAttributes encodes a pool's attributes (RFC 7296 §3.15.1).
func poolAttributes(p *config.Pool) []wire.CPAttribute {
	if p == nil {
		return nil
	}
	var out []wire.CPAttribute
	add4or6 := func(list []netip.Addr, t4, t6 wire.CPAttributeType) {
		for _, a := range list {
			if a.Is4() {
				out = append(out, wire.CPAttribute{Type: t4, Value: a.AsSlice()})
			} else if t6 != 0 {
				out = append(out, wire.CPAttribute{Type: t6, Value: a.AsSlice()})
			}
		}
	}
	add4or6(p.DNS, wire.InternalIP4DNS, wire.InternalIP6DNS)
	add4or6(p.NBNS, wire.InternalIP4NBNS, 0)
	add4or6(p.DHCP, wire.InternalIP4DHCP, wire.InternalIP6DHCP)
	// INTERNAL_IP4_SERVER (23) and INTERNAL_IP6_SERVER (24), as strongSwan's pools send them.
	add4or6(p.Server, 23, 24)
	if p.Netmask.IsValid() {
		out = append(out, wire.CPAttribute{Type: wire.InternalIP4Netmask, Value: p.Netmask.AsSlice()})
	}
	for _, s := range p.Subnets {
		if s.Addr().Is4() {
			m := net.CIDRMask(s.Bits(), 32)
			out = append(out, wire.CPAttribute{Type: wire.InternalIP4Subnet, Value: append(s.Addr().AsSlice(), m...)})
		} else {
			out = append(out, wire.CPAttribute{Type: wire.InternalIP6Subnet, Value: append(s.Addr().AsSlice(), byte(s.Bits()))})
		}
	}
	for _, a := range p.Attrs {
		out = append(out, wire.CPAttribute{Type: wire.CPAttributeType(a.Type), Value: a.Value})
	}
	return out
}

// releaseVIPs ends the leases of an IKE SA that is gone (not one a rekey replaced).
func (d *Daemon) releaseVIPs(x ike.IKEDown) {
	if d.vips == nil || x.Replaced || len(x.IKE.RemoteVIPs) == 0 {
		return
	}
	for _, a := range x.IKE.RemoteVIPs {
		for _, p := range d.vips.store.All() {
			if p.Contains(a) && p.ReleaseAddr(x.IKE.VIPID, a) {
				d.log.Info("virtual IP released", "conn", x.IKE.Conn, "id", x.IKE.VIPID, "addr", a)
			}
		}
	}
}

// onVirtualIPs installs what a client received: the addresses on the TUN device (so that the
// routes into the tunnel get them as source) and the DNS servers. It runs before the Child SA
// that uses them is installed (the engine applies effects in order).
func (d *Daemon) onVirtualIPs(x ike.VirtualIPs) {
	d.vips.changing.Lock()
	defer d.vips.changing.Unlock()
	key := [2]uint64{x.IKE.SPIi, x.IKE.SPIr}
	for _, a := range x.Addrs {
		if err := d.tunAddr(a, true); err != nil {
			d.log.Warn("cannot put the virtual IP on the TUN device", "conn", x.IKE.Conn, "addr", a, "err", err)
		}
	}
	d.vips.mu.Lock()
	d.vips.installed[key] = append([]netip.Addr(nil), x.Addrs...)
	d.vips.mu.Unlock()
	d.log.Info("virtual IPs installed", "conn", x.IKE.Conn, "addrs", fmt.Sprint(x.Addrs), "dev", d.opts.Daemon.TunName)
	if len(x.DNS) > 0 && d.opts.Daemon.ResolvConf != "" {
		if err := d.installDNS(key, x.DNS, x.Domains); err != nil {
			d.log.Warn("cannot install the DNS servers received", "conn", x.IKE.Conn, "err", err)
		}
	}
}

// removeVIPs undoes onVirtualIPs when the client's IKE SA is gone for good. A rekeyed IKE SA keeps
// the addresses: the successor took them over, so they move to its key.
func (d *Daemon) removeVIPs(x ike.IKEDown) {
	if d.vips == nil || len(x.IKE.LocalVIPs) == 0 {
		return
	}
	d.vips.changing.Lock()
	defer d.vips.changing.Unlock()
	key := [2]uint64{x.IKE.SPIi, x.IKE.SPIr}
	d.vips.mu.Lock()
	addrs, ok := d.vips.installed[key]
	delete(d.vips.installed, key)
	d.vips.mu.Unlock()
	if !ok {
		return
	}
	if x.Replaced {
		d.vips.mu.Lock()
		d.vips.installed[[2]uint64{0, 0}] = addrs // the successor's key is learned by IKERekeyed
		d.vips.mu.Unlock()
		return
	}
	// A successor (re-authentication, a followed redirect) may hold the same addresses already:
	// they stay, and so does the DNS configuration, which it takes over.
	d.vips.mu.Lock()
	inUse := map[netip.Addr]bool{}
	var heir [2]uint64
	for k, list := range d.vips.installed {
		for _, a := range list {
			inUse[a] = true
			heir = k
		}
	}
	if d.vips.dnsOwner == key && heir != ([2]uint64{}) {
		d.vips.dnsOwner = heir
	}
	d.vips.mu.Unlock()
	for _, a := range addrs {
		if inUse[a] {
			continue
		}
		if err := d.tunAddr(a, false); err != nil {
			d.log.Warn("cannot remove the virtual IP from the TUN device", "addr", a, "err", err)
		}
	}
	d.restoreDNS(key)
}

// onRekeyedVIPs moves a client's installed virtual IPs to the IKE SA that replaced the old one.
func (d *Daemon) onRekeyedVIPs(x ike.IKERekeyed) {
	if d.vips == nil || len(x.Old.LocalVIPs) == 0 {
		return
	}
	oldKey, newKey := [2]uint64{x.Old.SPIi, x.Old.SPIr}, [2]uint64{x.New.SPIi, x.New.SPIr}
	d.vips.mu.Lock()
	defer d.vips.mu.Unlock()
	if a, ok := d.vips.installed[oldKey]; ok {
		d.vips.installed[newKey] = a
		delete(d.vips.installed, oldKey)
	} else if a, ok := d.vips.installed[[2]uint64{}]; ok {
		d.vips.installed[newKey] = a
		delete(d.vips.installed, [2]uint64{})
	}
	if d.vips.dnsOwner == oldKey {
		d.vips.dnsOwner = newKey
	}
}

// tunAddr adds or removes a host address on the TUN device.
func (d *Daemon) tunAddr(a netip.Addr, add bool) error {
	link, err := netlink.LinkByName(d.opts.Daemon.TunName)
	if err != nil {
		return err
	}
	bits := 32
	if a.Is6() {
		bits = 128
	}
	na := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
	if a.Is6() {
		// No duplicate address detection: the address is ours alone, on a point-to-point device.
		na.Flags = unix.IFA_F_NODAD
	}
	if add {
		if err := netlink.AddrReplace(link, na); err != nil {
			return err
		}
		return nil
	}
	if err := netlink.AddrDel(link, na); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	return nil
}

// installDNS writes the DNS servers into resolv.conf, keeping the previous content to restore.
// Only one IKE SA's servers are installed at a time (the first).
func (d *Daemon) installDNS(key [2]uint64, servers []netip.Addr, domains []string) error {
	path := d.opts.Daemon.ResolvConf
	d.vips.mu.Lock()
	defer d.vips.mu.Unlock()
	if d.vips.dnsOwner != ([2]uint64{}) {
		return nil
	}
	old, err := os.ReadFile(path)
	had := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b bytes.Buffer
	b.WriteString("# written by goipsec for a virtual IP; restored when the tunnel goes\n")
	if len(domains) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(domains, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	// Keep the previous servers after ours, as fallbacks.
	for _, line := range strings.Split(string(old), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "nameserver") {
			b.WriteString(strings.TrimSpace(line) + "\n")
		}
	}
	if err := writeAtomic(path, b.Bytes()); err != nil {
		return err
	}
	d.vips.dnsOwner, d.vips.savedDNS, d.vips.hadDNS = key, old, had
	d.log.Info("DNS servers installed", "file", path, "servers", fmt.Sprint(servers))
	return nil
}

func (d *Daemon) restoreDNS(key [2]uint64) {
	d.vips.mu.Lock()
	defer d.vips.mu.Unlock()
	if d.vips.dnsOwner != key || key == ([2]uint64{}) {
		return
	}
	path := d.opts.Daemon.ResolvConf
	var err error
	if d.vips.hadDNS {
		err = writeAtomic(path, d.vips.savedDNS)
	} else {
		err = os.Remove(path)
	}
	if err != nil {
		d.log.Warn("cannot restore resolv.conf", "file", path, "err", err)
	} else {
		d.log.Info("DNS servers restored", "file", path)
	}
	d.vips.dnsOwner, d.vips.savedDNS = [2]uint64{}, nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".goipsec"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// closeVIPs removes what clients installed and writes the leases a last time.
func (d *Daemon) closeVIPs() {
	if d.vips == nil {
		return
	}
	d.vips.changing.Lock()
	defer d.vips.changing.Unlock()
	d.vips.mu.Lock()
	var all [][2]uint64
	for k := range d.vips.installed {
		all = append(all, k)
	}
	d.vips.mu.Unlock()
	for _, k := range all {
		d.vips.mu.Lock()
		addrs := d.vips.installed[k]
		delete(d.vips.installed, k)
		d.vips.mu.Unlock()
		for _, a := range addrs {
			d.tunAddr(a, false)
		}
		d.restoreDNS(k)
	}
	if err := d.vips.store.Close(); err != nil {
		d.log.Warn("pool leases not saved", "err", err)
	}
}

// onIKERekeyed moves what the daemon keeps per IKE SA to the one that replaced it.
func (d *Daemon) onIKERekeyed(x ike.IKERekeyed) {
	d.onRekeyedVIPs(x)
	d.acctRekeyed(x) // radius.go
}

// poolStatus lists the pools and their leases for the status snapshot.
func (d *Daemon) poolStatus() []status.Pool {
	out := []status.Pool{}
	if d.vips == nil {
		return out
	}
	for _, p := range d.vips.store.All() {
		first, last := p.Range()
		sp := status.Pool{Name: p.Name, First: first.String(), Last: last.String(), Size: p.Size(), Leases: []status.Lease{}}
		for _, l := range p.AllLeases() {
			sl := status.Lease{Address: l.Addr.String(), Identity: l.ID, Online: l.Online}
			if l.Online {
				sp.Online++
			} else {
				sp.Offline++
				sl.ReleasedAt = l.Released
			}
			sp.Leases = append(sp.Leases, sl)
		}
		out = append(out, sp)
	}
	return out
}

// poolLeases leases IPv4 addresses for IKEv1 Mode Config and PPP's IPCP from the daemon's pools,
// the same objects IKEv2's configuration payload leases from, so that no address is handed out
// twice. Pools are looked up by name at each call: one replaced by a reload or VICI load-pool is
// the one used.
type poolLeases struct {
	store *pool.Store
	names []string
}

// Acquire leases from the first IPv4 pool of the list that has an address.
func (p poolLeases) Acquire(id string) (netip.Addr, error) {
	var errs []error
	for _, n := range p.names {
		pl := p.store.Get(n)
		if pl == nil || pl.Is6() {
			continue
		}
		a, err := pl.Acquire(id)
		if err == nil {
			return a, nil
		}
		errs = append(errs, fmt.Errorf("pool %s: %w", n, err))
	}
	if len(errs) == 0 {
		return netip.Addr{}, fmt.Errorf("no IPv4 pool among %s", strings.Join(p.names, ", "))
	}
	return netip.Addr{}, errors.Join(errs...)
}

// ReleaseAddr ends id's hold on a in whichever pool has it.
func (p poolLeases) ReleaseAddr(id string, a netip.Addr) bool {
	for _, pl := range p.store.All() {
		if pl.Contains(a) && pl.ReleaseAddr(id, a) {
			return true
		}
	}
	return false
}

// dns4 returns the DNS servers of the first IPv4 pool of names (Mode Config, IPCP).
func (v *vipState) dns4(names []string) []netip.Addr {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range names {
		if c := v.cfgs[n]; c != nil && c.Start.Is4() {
			return c.DNS
		}
	}
	return nil
}
