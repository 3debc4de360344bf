package daemon

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ikev1"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// connection is a configured IKE connection with its protocol-level configuration.
type connection struct {
	cfg      *config.Connection
	peer     *ike.PeerConfig
	v1       *ikev1.Config // nil unless the connection speaks IKEv1 (version 1 or 0)
	children map[string]*childConf
	// traps are the policies of start_action = trap children, by child name, and their keys.
	traps    map[string]dataplane.PolicyID
	trapKeys []policyKey
	order    int // position in the configuration (responders try connections in this order)
}

type childConf struct {
	cfg *config.Child
	ike *ike.ChildConfig
	// saName is "conn/child", the name of its SAs and policies in the data plane: built once
	// here rather than for each Child SA (a gateway holds one per tunnel).
	saName string
}

// peerSnapshot is what the IKE engine reads from callbacks (without the daemon's lock). Its
// indexes keep the responder's look-ups independent of how many connections and secrets there
// are: by the peer's exact address, and by identity.
type peerSnapshot struct {
	conns []*connection
	// byRemote holds connections whose remote_addrs name single addresses; others may match
	// any address (ranges, subnets, %any, host names).
	// Both hold positions in conns, in ascending order, so that merging them gives the
	// configuration order without sorting (candidates).
	byRemote map[netip.Addr][]int
	others   []int
	// secrets by identity (type and bytes); unbound ones apply to every pair.
	pskByID  map[string][]*config.PSK
	pskBound []*config.PSK
	pskAny   []*config.PSK
	// secrets has the EAP users (secrets.eap, secrets.xauth).
	secrets *config.Secrets
	// users are the XAuth users by name (secrets.xauth<suffix>, eap<suffix>).
	users map[string][]byte
}

func idIndexKey(id ike.Identity) string { return string(rune(id.Type)) + string(id.Data) }

func newPeerSnapshot(conns []*connection, secrets []*config.PSK) *peerSnapshot {
	p := &peerSnapshot{conns: conns, byRemote: map[netip.Addr][]int{}, pskByID: map[string][]*config.PSK{}}
	for i, c := range conns {
		single := len(c.cfg.RemoteAddrs) > 0
		for _, a := range c.cfg.RemoteAddrs {
			if a.Kind != config.AddrSingle {
				single = false
			}
		}
		if !single {
			p.others = append(p.others, i)
			continue
		}
		for _, a := range c.cfg.RemoteAddrs {
			p.byRemote[a.Start.Unmap()] = append(p.byRemote[a.Start.Unmap()], i)
		}
	}
	for _, s := range secrets {
		if len(s.IDs) == 0 {
			p.pskAny = append(p.pskAny, s)
			continue
		}
		p.pskBound = append(p.pskBound, s)
		for _, id := range s.IDs {
			k := idIndexKey(toIKEID(id))
			p.pskByID[k] = append(p.pskByID[k], s)
		}
	}
	return p
}

// installed is a Child SA installed in the data plane.
type installed struct {
	conn, child string
	out, in     dataplane.SAKey
	policy      *policyState
	// uniq are the values of the child's %unique settings (kernelopts.go), which a rekey keeps.
	uniq uniqueIDs
}

// policyKey identifies the outbound policy of a child's traffic selectors; rekeyed Child SAs share
// it (the policy is repointed, never duplicated).
type policyKey struct {
	conn, child   string
	local, remote string // ts.Key of the selectors
	// uniq keeps apart the policies of Child SAs with %unique marks or interface IDs: each has
	// its own (told apart by the kernel by mark or if_id), shared only with its rekeys.
	uniq uniqueIDs
}

// policyState is one installed outbound policy and the Child SAs that may carry its traffic. Its
// own lock serialises changes to it, so that Child SAs of different tunnels install in parallel.
type policyState struct {
	key policyKey

	mu      sync.Mutex
	id      dataplane.PolicyID // 0: not installed (yet)
	sa      dataplane.SAKey    // the SA it points at
	members map[uint32]*installed
	trap    bool // a start_action = trap policy: it stays (without SA) when the last Child SA goes
	dead    bool // removed: look it up again
}

func toIKEID(id config.Identity) ike.Identity {
	if id.IsAny() {
		return ike.Identity{}
	}
	return ike.Identity{Type: wire.IDType(id.Type), Data: id.Data}
}

func toUnique(s string) ike.Unique {
	switch s {
	case "never":
		return ike.UniqueNever
	case "keep":
		return ike.UniqueKeep
	case "replace":
		return ike.UniqueReplace
	}
	return ike.UniqueNo
}

func toChildless(s string) ike.Childless {
	switch s {
	case "prefer":
		return ike.ChildlessPrefer
	case "force":
		return ike.ChildlessForce
	case "never":
		return ike.ChildlessNever
	}
	return ike.ChildlessAllow
}

// buildConnection turns a configured connection into IKE configuration.
func (d *Daemon) buildConnection(c *config.Connection) *connection {
	conn := &connection{cfg: c, children: map[string]*childConf{}, traps: map[string]dataplane.PolicyID{}}
	name := c.Name
	peer := &ike.PeerConfig{
		Name: name, Proposals: c.Proposals,
		LocalID: toIKEID(c.Local.ID), RemoteID: toIKEID(c.Remote.ID),
		Fragmentation: c.Fragmentation == "yes", ForceEncap: c.Encap,
		RekeyTime: c.RekeyTime, DPDDelay: c.DPDDelay, ReauthTime: c.ReauthTime,
		Unique: toUnique(c.Unique), Childless: toChildless(c.Childless),
		VIPs: c.VIPs, MOBIKE: c.MOBIKE, RedirectTo: c.RedirectTo,
	}
	if len(c.Pools) > 0 {
		peer.AssignVIPs = d.assignVIPs(c.Pools) // vips.go
	}
	peer.PSK = func(local, remote ike.Identity) ([]byte, bool) { return d.lookupPSK(local, remote) }
	d.configurePPK(peer, c)
	d.configureTCP(peer, c)
	for _, ch := range c.Children {
		cc := &ike.ChildConfig{Name: ch.Name, Proposals: ch.Proposals(),
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
		conn.children[ch.Name] = &childConf{cfg: ch, ike: cc, saName: c.Name + "/" + ch.Name}
	}
	conn.peer = peer
	d.buildV1(conn)
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
	consider := func(s *config.PSK) {
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
				return
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
	for _, s := range snap.pskAny {
		consider(s)
	}
	if !local.IsAny() {
		for _, s := range snap.pskByID[idIndexKey(local)] {
			consider(s)
		}
	}
	if !remote.IsAny() {
		for _, s := range snap.pskByID[idIndexKey(remote)] {
			consider(s)
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

// candidates returns the connections a responder may use for a peer, in configuration order.
func (d *Daemon) candidates(local, remote netip.Addr) []*ike.PeerConfig {
	snap := d.peers.Load()
	if snap == nil {
		return nil
	}
	var out []*ike.PeerConfig
	for c := range snap.mayMatch(remote) {
		if c.cfg.Version != 1 && addrMatches(c.cfg.LocalAddrs, local) && addrMatches(c.cfg.RemoteAddrs, remote) {
			out = append(out, c.peer)
		}
	}
	return out
}

// mayMatch yields the connections whose remote_addrs may match remote, in configuration order:
// those naming exactly that address and those naming ranges, subnets or any, merged by their
// position (every IKE_SA_INIT asks, so nothing is copied or sorted).
func (p *peerSnapshot) mayMatch(remote netip.Addr) iter.Seq[*connection] {
	return func(yield func(*connection) bool) {
		exact, others := p.byRemote[remote.Unmap()], p.others
		for len(exact) > 0 || len(others) > 0 {
			var i int
			if len(others) == 0 || len(exact) > 0 && exact[0] < others[0] {
				i, exact = exact[0], exact[1:]
			} else {
				i, others = others[0], others[1:]
			}
			if !yield(p.conns[i]) {
				return
			}
		}
	}
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
	var children []*ike.ChildConfig
	for _, c := range conn.peer.Children {
		if child == "" || c.Name == child {
			children = append(children, c)
		}
	}
	if child != "" && len(children) == 0 {
		return fmt.Errorf("connection %s has no child named %q", name, child)
	}
	if ikeVersion(conn.cfg) == 1 {
		if d.ikev1.Connecting(name) {
			for _, c := range children {
				d.ikev1.CreateChild(name, c)
			}
			return nil
		}
		local, remote, err := d.endpoints(conn.cfg)
		if err != nil {
			return err
		}
		return d.ikev1.Initiate(conn.v1, children, local, remote)
	}
	// An IKE SA that is up (or on its way) takes the children; the engine skips those it has.
	if d.ike.Connecting(name) {
		for _, c := range children {
			d.ike.CreateChild(name, c)
		}
		return nil
	}
	local, remote, err := d.endpoints(conn.cfg)
	if err != nil {
		return err
	}
	if local, remote, err = d.tcpEndpoints(conn.cfg, local, remote); err != nil {
		return err
	}
	return d.ike.Initiate(conn.peer, children, local, remote)
}

// Terminate deletes the IKE SAs of a connection.
func (d *Daemon) Terminate(name string) (int, error) {
	if d.ike == nil {
		return 0, fmt.Errorf("IKE is not running")
	}
	n := d.ike.Terminate(name) + d.ikev1.Terminate(name)
	if n == 0 {
		return 0, fmt.Errorf("no IKE SA of connection %q is up", name)
	}
	return n, nil
}

// --- engine events (run by the engine's appliers, in order per IKE SA, with no SA held) ---

func (d *Daemon) onIKEUp(x ike.IKEUp) {
	d.publishIKE(x.IKE, true)
	d.acctStart(x) // radius.go
}

func (d *Daemon) onIKEDown(x ike.IKEDown) {
	d.publishIKE(x.IKE, false)
	d.acctStop(x)    // radius.go
	d.releaseVIPs(x) // vips.go
	d.removeVIPs(x)
	d.updownIKEDown(x)
	if x.Replaced || d.closing.Load() {
		return
	}
	name := x.IKE.Conn
	d.mu.Lock()
	conn := d.conns[name]
	d.mu.Unlock()
	if conn == nil {
		return
	}
	// dpd_action = restart brings the connection back when the peer died or lost its state;
	// close_action = start when the peer closed it.
	restart := false
	for _, ch := range conn.cfg.Children {
		switch {
		case ch.DPDAction == config.ActionRestart && (x.Reason == ike.ReasonDeadPeer || x.Reason == ike.ReasonPeerRestarted):
			restart = true
		case ch.CloseAction == config.ActionStart && x.Reason == ike.ReasonDeletedByPeer:
			restart = true
		}
	}
	if restart {
		d.log.Info("restarting connection", "conn", name, "why", x.Reason.String())
		time.AfterFunc(time.Second, func() {
			if d.closing.Load() {
				return
			}
			if err := d.Initiate(name, ""); err != nil {
				d.log.Warn("restart failed", "conn", name, "err", err)
			}
		})
	}
}

func (d *Daemon) onFailed(x ike.Failed) {
	if x.Retry {
		return
	}
	d.mu.Lock()
	d.lastFailure[x.Conn] = failure{when: time.Now(), err: x.Err.Error()}
	d.failures[failureReason(x.Err.Error())]++
	d.mu.Unlock()
}

func (d *Daemon) onChildUp(c *ike.ChildInstall) error {
	name := c.IKE.Conn
	encr, _ := childEncryption(c)
	d.mu.Lock()
	clamp := childClampMSS(d.conns[name], c.Name)
	var saName string // shared by the connection's Child SAs, not one string each
	if conn := d.conns[name]; conn != nil && conn.children[c.Name] != nil {
		saName = conn.children[c.Name].saName
	}
	d.mu.Unlock()
	if saName == "" {
		saName = name + "/" + c.Name
	}
	mode := dataplane.Tunnel
	if c.Mode == ike.Transport {
		mode = dataplane.Transport
	}
	var lt dataplane.Lifetime
	replay, tfc := 0, 0
	if cc := c.Config; cc != nil {
		lt = dataplane.Lifetime{SoftBytes: cc.RekeyBytes, HardBytes: cc.LifeBytes, SoftPackets: cc.RekeyPackets, HardPackets: cc.LifePackets}
		replay, tfc = cc.ReplayWindow, cc.TFCPadding
	}
	proto := dataplane.ESP
	if c.Protocol() == proposal.ProtoAH {
		proto = dataplane.AH // integrity only: childEncryption is 0, EncrIn/Out are empty
	}
	base := dataplane.SAParams{Name: saName, Protocol: proto, Mode: mode, Encap: c.Encap && !c.IKE.TCP, TCP: c.IKE.TCP,
		Encryption: esp.Encryption(encr), Integrity: esp.Integrity(childIntegrity(c)), ESN: c.ESN,
		ReplayWindow: replay, TFCPadding: tfc, Local: c.LocalTS, Remote: c.RemoteTS, Lifetime: lt, ClampMSS: clamp}
	local, remote := c.IKE.Local, c.IKE.Remote
	out, in := base, base
	out.Direction, out.SPI, out.Src, out.Dst = dataplane.Out, c.SPIOut, local.Addr(), remote.Addr()
	out.SrcPort, out.DstPort, out.EncKey, out.IntegKey = local.Port(), remote.Port(), c.EncrOut, c.IntegOut
	in.Direction, in.SPI, in.Src, in.Dst = dataplane.In, c.SPIIn, remote.Addr(), local.Addr()
	in.SrcPort, in.DstPort, in.EncKey, in.IntegKey = remote.Port(), local.Port(), c.EncrIn, c.IntegIn
	in.NotifyFirstInbound = c.NotifyFirstInbound
	cp := d.childPolicyOf(name, c.Name)
	var uniq uniqueIDs
	if cp.hasUnique() {
		d.mu.Lock()
		if prev := d.children[c.Replaces]; c.Replaces != 0 && prev != nil {
			uniq = prev.uniq
		}
		d.mu.Unlock()
		if uniq == (uniqueIDs{}) {
			uniq = cp.allocUnique(func() uint32 { return d.uniqueSeq.Add(1) })
		}
		cp = cp.withUnique(uniq)
	}
	cp.saMarks(&in, &out)
	if err := d.backend.InstallSA(in); err != nil {
		return err
	}
	inKey := dataplane.SAKey{Protocol: proto, SPI: in.SPI, Dst: in.Dst.Unmap()}
	if err := d.backend.InstallSA(out); err != nil {
		d.backend.DeleteSA(inKey)
		return err
	}
	outKey := dataplane.SAKey{Protocol: proto, SPI: out.SPI, Dst: out.Dst.Unmap()}
	d.keylogChild(in, out)
	pk := policyKey{conn: name, child: c.Name, local: ts.Key(c.LocalTS), remote: ts.Key(c.RemoteTS), uniq: uniq}
	inst := &installed{conn: name, child: c.Name, out: outKey, in: inKey, uniq: uniq}
	// policies = no: the SAs alone (something else steers traffic to them, as in strongSwan).
	for !cp.noPolicies {
		ps := d.policyFor(pk)
		ps.mu.Lock()
		if ps.dead {
			ps.mu.Unlock()
			continue
		}
		inst.policy = ps
		ps.members[c.SPIIn] = inst
		var err error
		switch {
		case ps.id == 0:
			ps.id, err = d.backend.InstallPolicy(dataplane.PolicyParams{Name: base.Name, Local: c.LocalTS, Remote: c.RemoteTS,
				Action: dataplane.Protect, SA: outKey, Route: true, Mode: mode, Priority: cp.priority, Kernel: cp.kernel})
			ps.sa = outKey
		case c.Activate || ps.sa == (dataplane.SAKey{}):
			err = d.backend.SetPolicySA(ps.id, outKey)
			ps.sa = outKey
		}
		if err != nil {
			delete(ps.members, c.SPIIn)
			ps.mu.Unlock()
			d.backend.DeleteSA(inKey)
			d.backend.DeleteSA(outKey)
			return err
		}
		ps.mu.Unlock()
		break
	}
	d.mu.Lock()
	d.children[c.SPIIn] = inst
	d.bySA[inKey], d.bySA[outKey] = c.SPIIn, c.SPIIn
	d.mu.Unlock()
	d.publishChild(c.IKE, c, true)
	var chCfg *config.Child
	d.mu.Lock()
	if conn := d.conns[name]; conn != nil && conn.children[c.Name] != nil {
		chCfg = conn.children[c.Name].cfg
	}
	d.mu.Unlock()
	d.updownChildUp(c, chCfg, pk, cp.kernel) // updown.go
	d.acctChildUp(c, inKey, outKey)
	if c.Mode == ike.Transport {
		// An initiator installs before its last Quick Mode message leaves: give the responder a
		// round trip to install its side before L2TP resends what the trap held back.
		remote := c.IKE.Remote.Addr()
		time.AfterFunc(l2tpKickDelay, func() { d.kickL2TP(remote) })
	}
	return nil
}

// policyFor returns the policy state of a key, creating an empty one.
func (d *Daemon) policyFor(pk policyKey) *policyState {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.policies[pk]
	if ps == nil || ps.dead {
		ps = &policyState{key: pk, members: map[uint32]*installed{}}
		d.policies[pk] = ps
	}
	return ps
}

func childEncryption(c *ike.ChildInstall) (uint16, uint16) {
	for _, t := range c.Proposal.Transforms {
		if t.Type == 1 {
			return t.ID, t.KeyLength
		}
	}
	return 0, 0
}

func childIntegrity(c *ike.ChildInstall) uint16 {
	for _, t := range c.Proposal.Transforms {
		if t.Type == 3 {
			return t.ID
		}
	}
	return 0
}

// onChildActivate moves a policy's traffic to a Child SA that waited for the peer.
func (d *Daemon) onChildActivate(x ike.ChildActivate) {
	d.mu.Lock()
	inst := d.children[x.SPIIn]
	d.mu.Unlock()
	if inst == nil || inst.policy == nil {
		return
	}
	ps := inst.policy
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.dead || ps.id == 0 || ps.sa == inst.out {
		return
	}
	if err := d.backend.SetPolicySA(ps.id, inst.out); err != nil {
		d.log.Warn("moving traffic to the rekeyed Child SA failed", "conn", inst.conn, "child", inst.child, "err", err)
		return
	}
	ps.sa = inst.out
}

func (d *Daemon) onChildDown(x ike.ChildDown) {
	d.mu.Lock()
	inst := d.children[x.SPIIn]
	delete(d.children, x.SPIIn)
	if inst != nil {
		delete(d.bySA, inst.in)
		delete(d.bySA, inst.out)
	}
	d.mu.Unlock()
	if inst == nil {
		d.releaseSPI(x.SPIIn)
		return
	}
	d.publishChild(x.IKE, &ike.ChildInstall{IKE: x.IKE, Name: x.Name, SPIIn: x.SPIIn, SPIOut: x.SPIOut,
		Proposal: proposal.Proposal{Protocol: x.Protocol}}, false)
	d.updownChildDown(x) // updown.go
	d.acctChildDown(x, inst.in, inst.out)
	if ps := inst.policy; ps != nil {
		ps.mu.Lock()
		delete(ps.members, x.SPIIn)
		if ps.sa == inst.out && !ps.dead {
			// This was the policy's current SA. Another Child SA with the same selectors (of
			// another IKE SA, or a rekey's successor) takes over; otherwise nothing protects the
			// traffic any more.
			var other *installed
			for _, o := range ps.members {
				other = o
				break
			}
			switch {
			case other != nil:
				d.backend.SetPolicySA(ps.id, other.out)
				ps.sa = other.out
			case ps.trap:
				d.backend.SetPolicySA(ps.id, dataplane.SAKey{})
				ps.sa = dataplane.SAKey{}
			default:
				d.backend.DeletePolicy(ps.id)
				ps.dead = true
			}
		}
		dead := ps.dead
		ps.mu.Unlock()
		if dead {
			d.mu.Lock()
			if d.policies[ps.key] == ps {
				delete(d.policies, ps.key)
			}
			d.mu.Unlock()
		}
	}
	d.backend.DeleteSA(inst.out)
	// Packets the peer sent with the old SA may still be on their way (after a rekey the peer
	// switched to the new SA moments ago): keep the inbound SA a little longer, as strongSwan does.
	if d.closing.Load() || !x.Grace {
		d.backend.DeleteSA(inst.in)
		d.releaseSPI(x.SPIIn)
		return
	}
	in, spi := inst.in, x.SPIIn
	time.AfterFunc(inboundGrace, func() {
		d.backend.DeleteSA(in)
		d.releaseSPI(spi)
	})
}

// l2tpKickDelay is how long after a transport-mode Child SA comes up L2TP clients resend.
const l2tpKickDelay = 100 * time.Millisecond

// inboundGrace is how long a rekeyed Child SA's inbound SA keeps accepting packets in flight.
const inboundGrace = 2 * time.Second

// onChildMoved follows the peer's new NAT mapping with a Child SA's outer addresses.
func (d *Daemon) onChildMoved(x ike.ChildMoved) {
	d.mu.Lock()
	inst := d.children[x.SPIIn]
	d.mu.Unlock()
	if inst == nil {
		return
	}
	local, remote := x.IKE.Local, x.IKE.Remote
	newOut, err := d.backend.UpdateSAAddresses(inst.out, dataplane.AddressUpdate{Src: local.Addr(), Dst: remote.Addr(),
		Encap: x.Encap, SrcPort: local.Port(), DstPort: remote.Port()})
	if err != nil {
		d.log.Warn("moving a Child SA to the peer's new address failed", "conn", x.IKE.Conn, "child", x.Name, "to", remote, "err", err)
		return
	}
	newIn, err := d.backend.UpdateSAAddresses(inst.in, dataplane.AddressUpdate{Src: remote.Addr(), Dst: local.Addr(),
		Encap: x.Encap, SrcPort: remote.Port(), DstPort: local.Port()})
	if err != nil {
		newIn = inst.in
	}
	d.mu.Lock()
	delete(d.bySA, inst.out)
	delete(d.bySA, inst.in)
	oldOut := inst.out
	inst.out, inst.in = newOut, newIn
	d.bySA[newOut], d.bySA[newIn] = x.SPIIn, x.SPIIn
	d.mu.Unlock()
	if ps := inst.policy; ps != nil {
		ps.mu.Lock()
		if ps.sa == oldOut {
			ps.sa = newOut
		}
		ps.mu.Unlock()
	}
	d.log.Info("Child SA follows the peer's new address", "conn", x.IKE.Conn, "child", x.Name, "remote", remote)
}

// OnFirstInbound is the data plane's news that the peer sends on an inbound SA (make-before-break
// rekeys). It runs on the packet path: it only hands the news to the engine.
func (d *Daemon) OnFirstInbound(key dataplane.SAKey, _ string) {
	if d.ike != nil {
		d.ike.InboundActive(key.SPI)
	}
}

// AllocSPI returns an inbound SPI that no installed or negotiating Child SA uses.
func (d *Daemon) AllocSPI() (uint32, error) {
	var b [4]byte
	for range 64 {
		if _, err := d.rand.Read(b[:]); err != nil {
			return 0, err
		}
		spi := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if spi < 256 {
			continue
		}
		d.spiMu.Lock()
		_, taken := d.spis[spi]
		if !taken {
			d.spis[spi] = struct{}{}
		}
		d.spiMu.Unlock()
		if !taken {
			return spi, nil
		}
	}
	return 0, fmt.Errorf("no free SPI found")
}

func (d *Daemon) releaseSPI(spi uint32) {
	d.spiMu.Lock()
	delete(d.spis, spi)
	d.spiMu.Unlock()
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
			Action: dataplane.Protect, Route: true, Mode: mode, LocalAddr: local.Addr(), PeerAddr: remote.Addr(),
			Priority: childPolicyFrom(ch).priority, Kernel: childPolicyFrom(ch).kernel})
		if err != nil {
			return fmt.Errorf("trap policy for %s/%s: %w", conn.cfg.Name, ch.Name, err)
		}
		conn.traps[ch.Name] = id
		d.trapByPolicy[id] = conn.cfg.Name
		pk := policyKey{conn: conn.cfg.Name, child: ch.Name, local: ts.Key(lts), remote: ts.Key(rts)}
		d.policies[pk] = &policyState{key: pk, id: id, members: map[uint32]*installed{}, trap: true}
		conn.trapKeys = append(conn.trapKeys, pk)
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
	want := make(map[string]*config.Connection, len(cfg.Connections))
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
		for _, k := range conn.trapKeys {
			if ps := d.policies[k]; ps != nil {
				ps.mu.Lock()
				ps.trap = false
				if len(ps.members) == 0 {
					ps.dead = true
					delete(d.policies, k)
				}
				ps.mu.Unlock()
			}
		}
		delete(d.conns, name)
		terminate = append(terminate, name)
	}
	list := make([]*connection, 0, len(cfg.Connections))
	for i, c := range cfg.Connections {
		if old, ok := d.conns[c.Name]; ok {
			old.cfg = c // identical apart from positions
			old.order = i
			list = append(list, old)
			continue
		}
		conn := d.buildConnection(c)
		conn.order = i
		if err := d.attachAuthenticator(conn, cfg); err != nil { // creds.go
			errs = append(errs, err)
		}
		if err := d.attachEAP(conn); err != nil { // eap.go
			errs = append(errs, err)
		}
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
	snap := newPeerSnapshot(list, cfg.Secrets.IKE)
	snap.secrets = &cfg.Secrets
	snap.users = userIndex(cfg.Secrets.Users)
	d.peers.Store(snap)
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
		strings.Contains(msg, "identifies as"), strings.Contains(msg, "no connection for peer identity"),
		strings.Contains(msg, "certificate"), strings.Contains(msg, "signature"), strings.Contains(msg, "revocation"):
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
	spiIn := d.bySA[x.SA]
	d.mu.Unlock()
	if spiIn == 0 || d.ike == nil {
		return
	}
	// A kernel data plane reports the soft limit of the inbound and of the outbound SA of one
	// Child SA separately: rekey once.
	if !x.Hard && !d.softExpired.add(spiIn) {
		return
	}
	if x.Hard {
		d.log.Info("Child SA reached a hard limit: deleting it", "sa", x.SA.String(), "why", x.Why)
		if !d.ikev1.DeleteChildAs(spiIn, ike.ReasonLifetime) {
			d.ike.DeleteChildAs(spiIn, ike.ReasonLifetime)
		}
	} else {
		d.log.Info("Child SA reached a soft limit: rekeying it", "sa", x.SA.String(), "why", x.Why)
		if !d.ikev1.RekeyChild(spiIn) {
			d.ike.RekeyChild(spiIn)
		}
	}
}
