package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ts"
)

// connection is a configured IKE connection with its protocol-level configuration.
type connection struct {
	cfg      *config.Connection
	peer     *ike.PeerConfig
	children map[string]*childConf
	// traps are the policies of start_action = trap children, by child name.
	traps map[string]dataplane.PolicyID
}

type childConf struct {
	cfg *config.Child
	ike *ike.ChildConfig
}

// peerSnapshot is what the IKE engine reads from callbacks (without the daemon's lock).
type peerSnapshot struct {
	conns   []*connection
	secrets []*config.PSK
}

// installed is a Child SA installed in the data plane.
type installed struct {
	conn, child string
	out, in     dataplane.SAKey
	policy      policyKey
}

// policyKey identifies the outbound policy of a child's traffic selectors; rekeyed Child SAs share
// it (the policy is repointed, never duplicated).
type policyKey struct {
	conn, child, local, remote string
}

type policyState struct {
	id dataplane.PolicyID
	sa dataplane.SAKey // the SA it points at
}

func toIKEID(id config.Identity) ike.Identity {
	if id.IsAny() {
		return ike.Identity{}
	}
	return ike.Identity{Type: wire.IDType(id.Type), Data: id.Data}
}

// buildConnection turns a configured connection into IKE configuration.
func (d *Daemon) buildConnection(c *config.Connection) *connection {
	conn := &connection{cfg: c, children: map[string]*childConf{}, traps: map[string]dataplane.PolicyID{}}
	name := c.Name
	peer := &ike.PeerConfig{
		Name: name, Proposals: c.Proposals,
		LocalID: toIKEID(c.Local.ID), RemoteID: toIKEID(c.Remote.ID),
		Fragmentation: c.Fragmentation == "yes", ForceEncap: c.Encap,
		RekeyTime: c.RekeyTime, DPDDelay: c.DPDDelay,
	}
	peer.PSK = func(local, remote ike.Identity) ([]byte, bool) { return d.lookupPSK(local, remote) }
	for _, ch := range c.Children {
		cc := &ike.ChildConfig{Name: ch.Name, Proposals: ch.ESPProposals,
			RekeyTime: ch.RekeyTime, LifeTime: ch.LifeTime, RekeyBytes: ch.RekeyBytes, LifeBytes: ch.LifeBytes,
			RekeyPackets: ch.RekeyPackets, LifePackets: ch.LifePackets, ReplayWindow: int(ch.ReplayWindow)}
		if ch.TFCPadding.MTU {
			cc.TFCPadding = d.mtu
		} else {
			cc.TFCPadding = int(ch.TFCPadding.Bytes)
		}
		if ch.Mode == config.ModeTransport {
			cc.Mode = ike.Transport
		}
		for _, t := range ch.LocalTS {
			if t.Dynamic {
				cc.LocalDynamic = true
			} else {
				cc.LocalTS = append(cc.LocalTS, t.Selector)
			}
		}
		for _, t := range ch.RemoteTS {
			if t.Dynamic {
				cc.RemoteDynamic = true
			} else {
				cc.RemoteTS = append(cc.RemoteTS, t.Selector)
			}
		}
		peer.Children = append(peer.Children, cc)
		conn.children[ch.Name] = &childConf{cfg: ch, ike: cc}
	}
	conn.peer = peer
	return conn
}

// lookupPSK finds the best preshared key for a pair of identities: a secret naming both wins over
// one naming either, which wins over one naming none (strongSwan's rule).
func (d *Daemon) lookupPSK(local, remote ike.Identity) ([]byte, bool) {
	snap := d.peers.Load()
	if snap == nil {
		return nil, false
	}
	best, bestScore := []byte(nil), -1
	for _, s := range snap.secrets {
		score := 0
		if len(s.IDs) > 0 {
			matchL, matchR := false, false
			for _, id := range s.IDs {
				iid := toIKEID(id)
				if !local.IsAny() && iid.Equal(local) {
					matchL = true
				}
				if !remote.IsAny() && iid.Equal(remote) {
					matchR = true
				}
			}
			if !matchL && !matchR {
				continue
			}
			if matchL {
				score++
			}
			if matchR {
				score += 2
			}
		}
		if score > bestScore {
			best, bestScore = s.Secret, score
		}
	}
	return best, bestScore >= 0
}

// addrMatches reports whether a configured address list admits a.
func addrMatches(list []config.Address, a netip.Addr) bool {
	if len(list) == 0 {
		return true
	}
	a = a.Unmap()
	for _, x := range list {
		switch x.Kind {
		case config.AddrAny:
			if x.Family == 0 || (x.Family == 4) == a.Is4() {
				return true
			}
		case config.AddrSingle, config.AddrRange, config.AddrPrefix:
			if x.Start.Is4() == a.Is4() && x.Start.Compare(a) <= 0 && a.Compare(x.End) <= 0 {
				return true
			}
		case config.AddrHost:
			if ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", x.Host); err == nil {
				for _, ip := range ips {
					if ip.Unmap() == a {
						return true
					}
				}
			}
		}
	}
	return false
}

// candidates returns the connections a responder may use for a peer.
func (d *Daemon) candidates(local, remote netip.Addr) []*ike.PeerConfig {
	snap := d.peers.Load()
	if snap == nil {
		return nil
	}
	var out []*ike.PeerConfig
	for _, c := range snap.conns {
		if addrMatches(c.cfg.LocalAddrs, local) && addrMatches(c.cfg.RemoteAddrs, remote) {
			out = append(out, c.peer)
		}
	}
	return out
}

// endpoints picks the addresses to initiate a connection from and to.
func (d *Daemon) endpoints(c *config.Connection) (local, remote netip.AddrPort, err error) {
	var raddr netip.Addr
	for _, a := range c.RemoteAddrs {
		switch a.Kind {
		case config.AddrSingle:
			raddr = a.Start
		case config.AddrHost:
			ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", a.Host)
			if lerr == nil && len(ips) > 0 {
				raddr = ips[0].Unmap()
			}
		}
		if raddr.IsValid() {
			break
		}
	}
	if !raddr.IsValid() {
		return local, remote, fmt.Errorf("connection %s: remote_addrs names no single address or host name to initiate to", c.Name)
	}
	var laddr netip.Addr
	for _, a := range c.LocalAddrs {
		if a.Kind == config.AddrSingle && a.Start.Is4() == raddr.Is4() {
			laddr = a.Start
			break
		}
	}
	if !laddr.IsValid() {
		if laddr, err = d.sourceFor(raddr); err != nil {
			return local, remote, fmt.Errorf("connection %s: no local address to reach %s: %w", c.Name, raddr, err)
		}
	}
	return netip.AddrPortFrom(laddr, d.ikePort), netip.AddrPortFrom(raddr, c.RemotePort), nil
}

// sourceFor asks the kernel which source address reaches dst, as the IKE socket (marked) would.
func (d *Daemon) sourceFor(dst netip.Addr) (netip.Addr, error) {
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(d.fwmark)) })
		return serr
	}}
	conn, err := dialer.Dial("udp", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Initiate brings up a connection (all its children's IKE SA; the first child in IKE_AUTH, the
// others with CREATE_CHILD_SA) or, with child set, one child.
func (d *Daemon) Initiate(name, child string) error {
	d.mu.Lock()
	conn := d.conns[name]
	d.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("no connection named %q", name)
	}
	if d.ike == nil {
		return fmt.Errorf("IKE is not running")
	}
	var first *ike.ChildConfig
	var rest []*ike.ChildConfig
	for _, c := range conn.peer.Children {
		if child != "" && c.Name != child {
			continue
		}
		if first == nil {
			first = c
		} else {
			rest = append(rest, c)
		}
	}
	if child != "" && first == nil {
		return fmt.Errorf("connection %s has no child named %q", name, child)
	}
	// An established IKE SA takes new children directly.
	if first != nil && d.ike.CreateChild(name, first) {
		for _, c := range rest {
			d.ike.CreateChild(name, c)
		}
		return nil
	}
	local, remote, err := d.endpoints(conn.cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.afterAuth[name] = rest
	d.mu.Unlock()
	return d.ike.Initiate(conn.peer, first, local, remote)
}

// Terminate deletes the IKE SAs of a connection.
func (d *Daemon) Terminate(name string) (int, error) {
	if d.ike == nil {
		return 0, fmt.Errorf("IKE is not running")
	}
	n := d.ike.Terminate(name)
	if n == 0 {
		return 0, fmt.Errorf("no IKE SA of connection %q is up", name)
	}
	return n, nil
}

// --- engine events (called with the IKE engine's lock held: never call the engine from here) ---

func (d *Daemon) onIKEUp(sa *ike.SA) {
	d.publishIKE(sa, true)
	name := sa.Config.Name
	d.mu.Lock()
	rest := d.afterAuth[name]
	delete(d.afterAuth, name)
	d.mu.Unlock()
	if len(rest) > 0 {
		go func() {
			for _, c := range rest {
				d.ike.CreateChild(name, c)
			}
		}()
	}
}

func (d *Daemon) onIKEDown(sa *ike.SA, reason string) {
	d.publishIKE(sa, false)
	name := sa.Config.Name
	d.log.Info("IKE SA down", "conn", name, "spi_i", hex16(sa.SPIi), "spi_r", hex16(sa.SPIr), "why", reason)
	d.mu.Lock()
	conn := d.conns[name]
	d.mu.Unlock()
	if conn == nil || d.closing.Load() {
		return
	}
	// dpd_action/close_action = restart (or start) re-initiates when the peer went away.
	restart := false
	for _, ch := range conn.cfg.Children {
		if ch.DPDAction == config.ActionRestart || ch.CloseAction == config.ActionStart {
			restart = true
		}
	}
	if restart && reason != "terminated" && reason != "shutdown" {
		d.log.Info("restarting connection", "conn", name, "why", reason)
		go func() {
			time.Sleep(time.Second)
			if err := d.Initiate(name, ""); err != nil {
				d.log.Warn("restart failed", "conn", name, "err", err)
			}
		}()
	}
}

func (d *Daemon) onFailed(conn string, err error) {
	d.mu.Lock()
	d.lastFailure[conn] = failure{when: time.Now(), err: err.Error()}
	d.failures[failureReason(err.Error())]++
	d.mu.Unlock()
	d.log.Warn("negotiation failed", "conn", conn, "why", err.Error())
}

func (d *Daemon) onChildUp(sa *ike.SA, c *ike.ChildSA) error {
	name := sa.Config.Name
	encr, _ := c.Encryption()
	encap := sa.NAT()
	d.mu.Lock()
	conn := d.conns[name]
	clamp := childClampMSS(conn, c.Name)
	d.mu.Unlock()
	if conn != nil && conn.cfg.Encap {
		encap = true
	}
	var lt dataplane.Lifetime
	if cc := c.Config; cc != nil {
		lt = dataplane.Lifetime{SoftBytes: cc.RekeyBytes, HardBytes: cc.LifeBytes, SoftPackets: cc.RekeyPackets, HardPackets: cc.LifePackets}
	}
	mode := dataplane.Tunnel
	if c.Mode == ike.Transport {
		mode = dataplane.Transport
	}
	replay, tfc := 0, 0
	if c.Config != nil {
		replay, tfc = c.Config.ReplayWindow, c.Config.TFCPadding
	}
	base := dataplane.SAParams{Name: name + "/" + c.Name, Protocol: dataplane.ESP, Mode: mode, Encap: encap,
		Encryption: esp.Encryption(encr), Integrity: esp.Integrity(c.Integrity()), ESN: c.ESN,
		ReplayWindow: replay, TFCPadding: tfc, Local: c.LocalTS, Remote: c.RemoteTS, Lifetime: lt, ClampMSS: clamp}
	local, remote := sa.Local, sa.Remote
	out, in := base, base
	out.Direction, out.SPI, out.Src, out.Dst = dataplane.Out, c.SPIOut, local.Addr(), remote.Addr()
	out.SrcPort, out.DstPort, out.EncKey, out.IntegKey = local.Port(), remote.Port(), c.EncrOut, c.IntegOut
	in.Direction, in.SPI, in.Src, in.Dst = dataplane.In, c.SPIIn, remote.Addr(), local.Addr()
	in.SrcPort, in.DstPort, in.EncKey, in.IntegKey = remote.Port(), local.Port(), c.EncrIn, c.IntegIn
	if err := d.backend.InstallSA(in); err != nil {
		return err
	}
	inKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: in.SPI, Dst: in.Dst.Unmap()}
	if err := d.backend.InstallSA(out); err != nil {
		d.backend.DeleteSA(inKey)
		return err
	}
	outKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: out.SPI, Dst: out.Dst.Unmap()}
	pk := policyKey{conn: name, child: c.Name, local: ts.FormatList(c.LocalTS), remote: ts.FormatList(c.RemoteTS)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ps, ok := d.policies[pk]; ok {
		if err := d.backend.SetPolicySA(ps.id, outKey); err != nil {
			return err
		}
		ps.sa = outKey
	} else {
		id, err := d.backend.InstallPolicy(dataplane.PolicyParams{Name: base.Name, Local: c.LocalTS, Remote: c.RemoteTS,
			Action: dataplane.Protect, SA: outKey, Route: true, Mode: mode})
		if err != nil {
			d.backend.DeleteSA(inKey)
			d.backend.DeleteSA(outKey)
			return err
		}
		d.policies[pk] = &policyState{id: id, sa: outKey}
	}
	d.children[c.SPIIn] = &installed{conn: name, child: c.Name, out: outKey, in: inKey, policy: pk}
	d.keylogChild(sa, c, in, out)
	d.publishChild(sa, c, true)
	return nil
}

func (d *Daemon) onChildDown(sa *ike.SA, c *ike.ChildSA, reason string) {
	d.publishChild(sa, c, false)
	d.mu.Lock()
	defer d.mu.Unlock()
	inst := d.children[c.SPIIn]
	if inst == nil {
		return
	}
	delete(d.children, c.SPIIn)
	if ps, ok := d.policies[inst.policy]; ok && ps.sa == inst.out {
		// This was the policy's current SA. Another Child SA with the same selectors (of another
		// IKE SA, or left from a rekey collision) takes over; otherwise nothing protects the
		// traffic any more.
		var other *installed
		for _, o := range d.children {
			if o.policy == inst.policy {
				other = o
				break
			}
		}
		if other != nil {
			d.backend.SetPolicySA(ps.id, other.out)
			ps.sa = other.out
		} else if trap := d.trapPolicyLocked(inst.conn, inst.child); trap != 0 && trap == ps.id {
			d.backend.SetPolicySA(ps.id, dataplane.SAKey{})
			ps.sa = dataplane.SAKey{}
		} else {
			d.backend.DeletePolicy(ps.id)
			delete(d.policies, inst.policy)
		}
	}
	d.backend.DeleteSA(inst.out)
	// Packets the peer sent with the old SA may still be on their way (after a rekey the peer
	// switched to the new SA moments ago): keep the inbound SA a little longer, as strongSwan does.
	if d.closing.Load() || reason != "deleted" {
		d.backend.DeleteSA(inst.in)
		return
	}
	in := inst.in
	time.AfterFunc(inboundGrace, func() { d.backend.DeleteSA(in) })
}

// inboundGrace is how long a deleted Child SA's inbound SA keeps accepting packets in flight.
const inboundGrace = 2 * time.Second

func (d *Daemon) trapPolicyLocked(conn, child string) dataplane.PolicyID {
	if c := d.conns[conn]; c != nil {
		return c.traps[child]
	}
	return 0
}

// installTrapsLocked installs the policies of start_action = trap children: matching packets raise
// an acquire, which initiates the connection (RFC 4301 §5.1).
func (d *Daemon) installTrapsLocked(conn *connection) error {
	for _, ch := range conn.cfg.Children {
		if ch.StartAction != config.ActionTrap {
			continue
		}
		cc := conn.children[ch.Name].ike
		local, remote, err := d.endpoints(conn.cfg)
		if err != nil {
			return err
		}
		lts := resolveDynamic(cc.LocalTS, cc.LocalDynamic, local.Addr())
		rts := resolveDynamic(cc.RemoteTS, cc.RemoteDynamic, remote.Addr())
		mode := dataplane.Tunnel
		if cc.Mode == ike.Transport {
			mode = dataplane.Transport
		}
		id, err := d.backend.InstallPolicy(dataplane.PolicyParams{Name: conn.cfg.Name + "/" + ch.Name, Local: lts, Remote: rts,
			Action: dataplane.Protect, Route: true, Mode: mode})
		if err != nil {
			return fmt.Errorf("trap policy for %s/%s: %w", conn.cfg.Name, ch.Name, err)
		}
		conn.traps[ch.Name] = id
		d.trapByPolicy[id] = conn.cfg.Name
		d.policies[policyKey{conn: conn.cfg.Name, child: ch.Name, local: ts.FormatList(lts), remote: ts.FormatList(rts)}] = &policyState{id: id}
	}
	return nil
}

func resolveDynamic(list []ts.Selector, dynamic bool, a netip.Addr) []ts.Selector {
	out := append([]ts.Selector(nil), list...)
	if dynamic {
		out = append(out, ts.Host(a))
	}
	return out
}

// OnAcquire is the data plane's Acquire event: a packet hit a trap policy.
func (d *Daemon) OnAcquire(a dataplane.Acquire) {
	d.mu.Lock()
	name, ok := d.trapByPolicy[a.Policy]
	d.mu.Unlock()
	if !ok {
		return
	}
	d.log.Info("acquire: traffic needs an SA", "conn", name, "src", a.Src, "dst", a.Dst)
	go func() {
		if err := d.Initiate(name, ""); err != nil {
			d.log.Warn("initiate on acquire failed", "conn", name, "err", err)
		}
	}()
}

// applyConnectionsLocked brings the connection set to cfg: removed or changed connections are
// terminated and their traps removed; new ones are started or trapped. It returns the connections
// to initiate (after the lock is released).
func (d *Daemon) applyConnectionsLocked(cfg *config.Config) (start []string, terminate []string, errs []error) {
	want := map[string]*config.Connection{}
	for _, c := range cfg.Connections {
		want[c.Name] = c
	}
	for name, conn := range d.conns {
		if c, ok := want[name]; ok && sameConnection(c, conn.cfg) {
			continue
		}
		for _, id := range conn.traps {
			d.backend.DeletePolicy(id)
			delete(d.trapByPolicy, id)
		}
		for k, ps := range d.policies {
			if k.conn == name && ps.sa == (dataplane.SAKey{}) {
				delete(d.policies, k)
			}
		}
		delete(d.conns, name)
		terminate = append(terminate, name)
	}
	var list []*connection
	for _, c := range cfg.Connections {
		if old, ok := d.conns[c.Name]; ok {
			old.cfg = c // identical apart from positions
			list = append(list, old)
			continue
		}
		conn := d.buildConnection(c)
		d.conns[c.Name] = conn
		list = append(list, conn)
		if err := d.installTrapsLocked(conn); err != nil {
			errs = append(errs, err)
		}
		for _, ch := range c.Children {
			if ch.StartAction == config.ActionStart {
				start = append(start, c.Name)
				break
			}
		}
	}
	d.peers.Store(&peerSnapshot{conns: list, secrets: cfg.Secrets.IKE})
	return start, terminate, errs
}

func sameConnection(a, b *config.Connection) bool {
	x, y := *a, *b
	x.File, x.Line, y.File, y.Line = "", 0, "", 0
	xc, yc := stripChildren(x.Children), stripChildren(y.Children)
	x.Children, y.Children = nil, nil
	return reflect.DeepEqual(x, y) && reflect.DeepEqual(xc, yc)
}

func stripChildren(list []*config.Child) []config.Child {
	out := make([]config.Child, len(list))
	for i, c := range list {
		out[i] = *c
		out[i].File, out[i].Line = "", 0
	}
	return out
}

// failureReason classifies a negotiation failure for metrics.
func failureReason(msg string) string {
	switch {
	case strings.Contains(msg, "IKE proposal"), strings.Contains(msg, "key exchange group"):
		return "no_ike_proposal"
	case strings.Contains(msg, "ESP proposal"):
		return "no_esp_proposal"
	case strings.Contains(msg, "AUTHENTICATION_FAILED"), strings.Contains(msg, "does not verify"), strings.Contains(msg, "preshared key"),
		strings.Contains(msg, "identifies as"), strings.Contains(msg, "no connection for peer identity"):
		return "authentication"
	case strings.Contains(msg, "selectors"):
		return "ts_unacceptable"
	case strings.Contains(msg, "did not answer"), strings.Contains(msg, "timed out"):
		return "timeout"
	}
	return "other"
}

// FailureCounts returns negotiation failures by reason.
func (d *Daemon) FailureCounts() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.failures))
	for k, v := range d.failures {
		out[k] = v
	}
	return out
}

// OnExpire is the data plane's Expire event: a Child SA reached its soft limit of bytes or packets
// (rekey it) or its hard one, or used up its sequence numbers (delete it; a rekey replaced it
// before if soft limits were set).
func (d *Daemon) OnExpire(x dataplane.Expire) {
	d.mu.Lock()
	var spiIn uint32
	for spi, inst := range d.children {
		if inst.out == x.SA || inst.in == x.SA {
			spiIn = spi
		}
	}
	d.mu.Unlock()
	if spiIn == 0 || d.ike == nil {
		return
	}
	go func() {
		if x.Hard {
			d.log.Info("Child SA reached a hard limit: deleting it", "sa", x.SA.String(), "why", x.Why)
			d.ike.DeleteChild(spiIn)
		} else {
			d.log.Info("Child SA reached a soft limit: rekeying it", "sa", x.SA.String(), "why", x.Why)
			d.ike.RekeyChild(spiIn)
		}
	}()
}
