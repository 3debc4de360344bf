// Package xfrm is a dataplane.Backend over the Linux kernel's IPsec (XFRM): SAs become XFRM
// states and policies XFRM policies, installed over NETLINK_XFRM; the kernel then does ESP and AH
// itself (with AES-NI and, where the NIC has it, hardware offload). The backend listens for the
// kernel's acquire and expire messages and turns them into dataplane.Events, and reads the
// kernel's per-SA counters for status and metrics.
//
// Messages are encoded in this package (msg.go) on the netlink framing of
// github.com/vishvananda/netlink/nl, so that they are checked byte for byte by unit tests.
//
// Differences from the userspace engine, by necessity:
//   - a Protect policy becomes three kernel policies per selector pair (out, in, and fwd in tunnel
//     mode), because the kernel checks inbound traffic against policies, not against the SA's
//     selectors;
//   - the outbound policy's template names its SA by SPI, so SetPolicySA is an XFRM policy update;
//   - ranges of addresses become prefixes; port ranges that are not a single port or any port are
//     refused as dataplane.ErrUnsupported;
//   - TCP MSS clamping (SAParams.ClampMSS) is left to the firewall: the kernel has no such option;
//   - FirstInbound is found by reading the inbound SA's packet counter every PollInterval (XFRM
//     reports no first use).
//
// This package imports no control-plane package.
package xfrm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// Config of the backend.
type Config struct {
	Logger *slog.Logger
	Events dataplane.Events
	// IKEPort and NATTPort get bypass policies (IKE must never be caught by an IPsec policy, e.g.
	// a transport-mode policy between the two gateways). Zero: 500 and 4500.
	IKEPort, NATTPort uint16
	// PollInterval is how often inbound SAs that asked for NotifyFirstInbound are checked
	// (default 500 ms).
	PollInterval time.Duration
	// IfID puts every state and policy on this XFRM interface ID (route-based VPNs: traffic is
	// routed into an xfrmi device with this if_id); 0: none.
	IfID uint32
	// Mark and MarkMask restrict every policy and state to packets with this mark (0/0: none).
	Mark, MarkMask uint32
	// PriorityBase shifts the computed policy priorities (default 200000; lower wins).
	PriorityBase uint32
	// RouteTable and RulePriority: tunnel-mode policies with Route get routes for their remote
	// selectors in this table, which a rule at RulePriority consults (0: no routes).
	RouteTable, RulePriority uint32
	// FwdOut also installs forward policies in the outbound direction (strongSwan's
	// policies_fwd_out), for gateways whose forwarded traffic is matched by a drop policy.
	FwdOut bool
}

// Backend is the kernel data plane.
type Backend struct {
	cfg    Config
	log    *slog.Logger
	nl     *conn
	events *nl.NetlinkSocket
	done   chan struct{}
	wg     sync.WaitGroup

	mu         sync.Mutex // guards the fields below
	sas        map[dataplane.SAKey]*saEntry
	policies   map[dataplane.PolicyID]*policyEntry
	nextPolicy dataplane.PolicyID
	bypass     []*policy
	rules      []*netlink.Rule
	closed     bool
}

// saEntry is an installed SA: what was installed (keys included, for an address update that
// re-creates it), and whether the control plane waits for its first inbound packet.
type saEntry struct {
	params dataplane.SAParams
	st     *state
	notify bool
	added  time.Time
}

// policyEntry is one dataplane policy and the kernel policies it became.
type policyEntry struct {
	params dataplane.PolicyParams
	kernel []*policy
	routes []*netlink.Route
	// outSel holds the encoded selectors of the outbound kernel policies, to recognise them in an
	// acquire.
	outSel map[string]bool
}

// New opens the netlink sockets, installs the IKE bypass policies and starts listening for the
// kernel's events. It fails with a clear error on a kernel without XFRM or without ESP.
func New(cfg Config) (*Backend, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IKEPort == 0 {
		cfg.IKEPort = 500
	}
	if cfg.NATTPort == 0 {
		cfg.NATTPort = 4500
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.PriorityBase == 0 {
		cfg.PriorityBase = 200000
	}
	c, err := dial()
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, nl: c, done: make(chan struct{}),
		sas: map[dataplane.SAKey]*saEntry{}, policies: map[dataplane.PolicyID]*policyEntry{}}
	if err := b.probe(); err != nil {
		c.close()
		return nil, err
	}
	ev, err := nl.Subscribe(unix.NETLINK_XFRM, groupAcquire, groupExpire)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("xfrm: subscribe to acquire and expire events: %w", err)
	}
	b.events = ev
	if err := b.installBypass(); err != nil {
		ev.Close()
		c.close()
		return nil, err
	}
	if err := b.installRule(); err != nil {
		b.removeBypass()
		ev.Close()
		c.close()
		return nil, err
	}
	b.wg.Add(2)
	go b.readEvents()
	go b.pollFirstInbound()
	return b, nil
}

// probe checks that the kernel can hold an ESP SA: it adds one on loopback addresses with a
// throwaway SPI and deletes it again.
func (b *Backend) probe() error {
	st := &state{src: netip.MustParseAddr("127.0.0.1"), dst: netip.MustParseAddr("127.0.0.1"), spi: 0xfffffffe,
		proto: uint8(dataplane.ESP), mode: modeTransport,
		aead: &algo{name: "rfc4106(gcm(aes))", key: make([]byte, 20), icvBits: 128}}
	b.nl.do(saIDMsg(msgDelSA, st.dst, st.spi, st.proto, 0, 0), 0) // a leftover of a killed run
	if _, err := b.nl.do(stateMsg(msgNewSA, st), 0); err != nil {
		switch {
		case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOSYS):
			return fmt.Errorf("the kernel has no ESP support (XFRM said %v; module esp4 missing or not built): use daemon { dataplane = userspace }", err)
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("not allowed to install XFRM states (%v): the kernel data plane needs CAP_NET_ADMIN", err)
		}
		return fmt.Errorf("xfrm: the kernel refused a test ESP SA: %w", err)
	}
	if _, err := b.nl.do(saIDMsg(msgDelSA, st.dst, st.spi, st.proto, 0, 0), 0); err != nil {
		return fmt.Errorf("xfrm: delete the test ESP SA: %w", err)
	}
	return nil
}

// installBypass lets IKE pass every IPsec policy: inbound to and outbound from the IKE and NAT-T
// ports, IPv4 and IPv6, at the best priority (strongSwan and Libreswan set per-socket policies for
// the same purpose; global ones keep the daemon's socket code backend-neutral).
func (b *Backend) installBypass() error {
	for _, fam := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		for _, port := range []uint16{b.cfg.IKEPort, b.cfg.NATTPort} {
			any := netip.PrefixFrom(fam, 0)
			in := &policy{sel: selector{src: any, dst: any, proto: unix.IPPROTO_UDP, dport: port, dmask: 0xffff},
				dir: dirIn, action: actionAllow, priority: 1, mark: b.cfg.Mark, markMask: b.cfg.MarkMask}
			out := &policy{sel: selector{src: any, dst: any, proto: unix.IPPROTO_UDP, sport: port, sportMask: 0xffff},
				dir: dirOut, action: actionAllow, priority: 1, mark: b.cfg.Mark, markMask: b.cfg.MarkMask}
			for _, p := range []*policy{in, out} {
				if _, err := b.nl.do(policyMsg(msgUpdPolicy, p), 0); err != nil {
					return fmt.Errorf("xfrm: install IKE bypass policy (udp port %d): %w", port, err)
				}
				b.bypass = append(b.bypass, p)
			}
		}
	}
	return nil
}

func (b *Backend) removeBypass() {
	for _, p := range b.bypass {
		b.nl.do(policyIDMsg(p), 0)
	}
	b.bypass = nil
}

// algorithms maps the SA's transforms to the kernel's algorithm names (the names strongSwan's
// kernel-netlink and iproute2 use; key formats: AES-GCM and ChaCha20-Poly1305 keys end with the
// 4-byte salt, RFC 4106 §8.1 and RFC 7634 §2, as package esp keeps them).
func algorithms(p dataplane.SAParams, st *state) error {
	switch {
	case p.Protocol == dataplane.AH:
		// AH authenticates only: no encryption transform.
	case p.Encryption == esp.EncrAESGCM16:
		st.aead = &algo{name: "rfc4106(gcm(aes))", key: p.EncKey, icvBits: 128}
	case p.Encryption == esp.EncrAESGCM12:
		st.aead = &algo{name: "rfc4106(gcm(aes))", key: p.EncKey, icvBits: 96}
	case p.Encryption == esp.EncrAESCCM8, p.Encryption == esp.EncrAESCCM12, p.Encryption == esp.EncrAESCCM16:
		// RFC 4309: the key ends with a 3-byte salt; ICV 8, 12 or 16 bytes.
		icv := map[esp.Encryption]uint32{esp.EncrAESCCM8: 64, esp.EncrAESCCM12: 96, esp.EncrAESCCM16: 128}[p.Encryption]
		st.aead = &algo{name: "rfc4309(ccm(aes))", key: p.EncKey, icvBits: icv}
	case p.Encryption == esp.EncrNullAESGMAC:
		// RFC 4543: authentication only, the key ends with a 4-byte salt.
		st.aead = &algo{name: "rfc4543(gcm(aes))", key: p.EncKey, icvBits: 128}
	case p.Encryption == esp.EncrAESCTR:
		// RFC 3686: the key ends with the 4-byte nonce.
		st.crypt = &algo{name: "rfc3686(ctr(aes))", key: p.EncKey}
	case p.Encryption == esp.EncrChaCha20Poly1305:
		st.aead = &algo{name: "rfc7539esp(chacha20,poly1305)", key: p.EncKey, icvBits: 128}
	case p.Encryption == esp.EncrAESCBC:
		st.crypt = &algo{name: "cbc(aes)", key: p.EncKey}
	case p.Encryption == esp.Encr3DES:
		// Legacy (RFC 2451), only from IKEv1 connections with weak_algorithms = yes.
		st.crypt = &algo{name: "cbc(des3_ede)", key: p.EncKey}
	case p.Encryption == esp.EncrNULL:
		st.crypt = &algo{name: "ecb(cipher_null)"}
	default:
		return fmt.Errorf("encryption transform %d: %w", p.Encryption, dataplane.ErrUnsupported)
	}
	switch p.Integrity {
	case esp.IntegNone:
		if st.aead == nil {
			return fmt.Errorf("an SA without AEAD needs an integrity algorithm: %w", dataplane.ErrUnsupported)
		}
	case esp.IntegAESXCBC96:
		st.auth = &algo{name: "xcbc(aes)", key: p.IntegKey, icvBits: 96}
	case esp.IntegAESCMAC96:
		st.auth = &algo{name: "cmac(aes)", key: p.IntegKey, icvBits: 96}
	case esp.IntegHMACSHA1_96:
		// Legacy (RFC 2404), only from IKEv1 connections with weak_algorithms = yes.
		st.auth = &algo{name: "hmac(sha1)", key: p.IntegKey, icvBits: 96}
	case esp.IntegHMACSHA2_256_128:
		st.auth = &algo{name: "hmac(sha256)", key: p.IntegKey, icvBits: 128}
	case esp.IntegHMACSHA2_384_192:
		st.auth = &algo{name: "hmac(sha384)", key: p.IntegKey, icvBits: 192}
	case esp.IntegHMACSHA2_512_256:
		st.auth = &algo{name: "hmac(sha512)", key: p.IntegKey, icvBits: 256}
	default:
		return fmt.Errorf("integrity transform %d: %w", p.Integrity, dataplane.ErrUnsupported)
	}
	return nil
}

// replayWindow maps the dataplane's window (0 default 1024, negative off) to packets.
func replayWindow(w int) uint32 {
	switch {
	case w == 0:
		return 1024
	case w < 0:
		return 0
	case w > 4096:
		return 4096 // the kernel's most (XFRMA_REPLAY_ESN_MAX)
	}
	return uint32(w)
}

func (b *Backend) stateFor(p dataplane.SAParams) (*state, error) {
	if p.Protocol != dataplane.ESP && p.Protocol != dataplane.AH {
		return nil, fmt.Errorf("protocol %v: %w", p.Protocol, dataplane.ErrUnsupported)
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Unmap().Is4() != p.Dst.Unmap().Is4() {
		return nil, fmt.Errorf("xfrm: SA needs outer addresses of one family, got %v and %v", p.Src, p.Dst)
	}
	if p.Encap && p.Protocol == dataplane.AH {
		return nil, fmt.Errorf("AH cannot be UDP-encapsulated (RFC 3948 covers ESP only): %w", dataplane.ErrUnsupported)
	}
	st := &state{src: p.Src.Unmap(), dst: p.Dst.Unmap(), spi: p.SPI, proto: uint8(p.Protocol), mode: modeTunnel,
		esn: p.ESN, softBytes: p.Lifetime.SoftBytes, hardBytes: p.Lifetime.HardBytes,
		softPackets: p.Lifetime.SoftPackets, hardPackets: p.Lifetime.HardPackets,
		encap: p.Encap, sport: p.SrcPort, dport: p.DstPort, ifID: b.cfg.IfID, mark: b.cfg.Mark, markMask: b.cfg.MarkMask}
	if p.IfID != 0 {
		st.ifID = p.IfID
	}
	if p.Mark != (dataplane.Mark{}) {
		st.mark, st.markMask = p.Mark.Value, p.Mark.Mask
	}
	st.setMark, st.setMarkMask = p.SetMark.Value, p.SetMark.Mask
	if p.Mode == dataplane.Transport {
		st.mode = modeTransport
	}
	st.replayWindow = replayWindow(p.ReplayWindow)
	if p.ReplayWindow > 4096 {
		b.log.Warn("replay window capped at the kernel's 4096 packets", "name", p.Name, "configured", p.ReplayWindow)
	}
	if p.Direction == dataplane.Out && p.ESN && st.replayWindow == 0 {
		st.replayWindow = 32 // the kernel wants a window with ESN even on an outbound SA
	}
	if p.ESN && st.replayWindow == 0 {
		return nil, fmt.Errorf("ESN with the replay check off: %w", dataplane.ErrUnsupported)
	}
	if p.TFCPadding > 0 && p.Protocol == dataplane.ESP && p.Mode == dataplane.Tunnel {
		st.tfcPad = uint32(p.TFCPadding)
	}
	if err := algorithms(p, st); err != nil {
		return nil, err
	}
	return st, nil
}

func saKey(p dataplane.SAParams) dataplane.SAKey {
	return dataplane.SAKey{Protocol: p.Protocol, SPI: p.SPI, Dst: p.Dst.Unmap()}
}

// InstallSA implements dataplane.Backend.
func (b *Backend) InstallSA(p dataplane.SAParams) error {
	st, err := b.stateFor(p)
	if err != nil {
		return err
	}
	key := saKey(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("xfrm: backend closed")
	}
	if _, ok := b.sas[key]; ok {
		return dataplane.ErrSAExists
	}
	if _, err := b.nl.do(stateMsg(msgNewSA, st), 0); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return dataplane.ErrSAExists
		}
		return fmt.Errorf("xfrm: install SA %s: %w", key, err)
	}
	kept := p
	kept.EncKey, kept.IntegKey = nil, nil
	b.sas[key] = &saEntry{params: kept, st: st, notify: p.NotifyFirstInbound && p.Direction == dataplane.In, added: time.Now()}
	b.log.Debug("SA installed", "name", p.Name, "sa", key.String(), "dir", p.Direction.String(), "mode", p.Mode.String(), "encap", p.Encap)
	return nil
}

// wipe zeroes the key copies kept for an SA (RFC 4301 asks keys to die with the SA).
func (e *saEntry) wipe() {
	for _, a := range []*algo{e.st.aead, e.st.crypt, e.st.auth} {
		if a != nil {
			clear(a.key)
		}
	}
}

// DeleteSA implements dataplane.Backend.
func (b *Backend) DeleteSA(k dataplane.SAKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.sas[k]
	if !ok {
		return dataplane.ErrNoSA
	}
	delete(b.sas, k)
	e.wipe()
	if _, err := b.nl.do(saIDMsg(msgDelSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("xfrm: delete SA %s: %w", k, err)
	}
	return nil
}

// UpdateSAAddresses implements dataplane.Backend. The kernel keys states by destination address,
// so a new destination means a new state: the SA is read back (replay counters and window),
// deleted and added again with the new addresses and the same keys, SPI and counters, the way
// strongSwan's kernel-netlink does it. Policies whose template names the SA are updated too.
func (b *Backend) UpdateSAAddresses(k dataplane.SAKey, u dataplane.AddressUpdate) (dataplane.SAKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.sas[k]
	if !ok {
		return k, dataplane.ErrNoSA
	}
	if !u.Src.IsValid() || !u.Dst.IsValid() || u.Src.Unmap().Is4() != u.Dst.Unmap().Is4() {
		return k, fmt.Errorf("xfrm: address update needs addresses of one family, got %v and %v", u.Src, u.Dst)
	}
	if u.Encap && e.params.Protocol == dataplane.AH {
		return k, fmt.Errorf("AH cannot be UDP-encapsulated: %w", dataplane.ErrUnsupported)
	}
	replies, err := b.nl.do(saIDMsg(msgGetSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), msgNewSA)
	if err != nil || len(replies) == 0 {
		return k, fmt.Errorf("xfrm: read SA %s before the address update: %v", k, err)
	}
	_, rs, err := parseNewSA(replies[0])
	if err != nil {
		return k, err
	}
	next := *e.st
	next.src, next.dst = u.Src.Unmap(), u.Dst.Unmap()
	next.encap, next.sport, next.dport = u.Encap, u.SrcPort, u.DstPort
	if rs != nil {
		next.replayOSeq, next.replaySeq, next.replayOSeqHi, next.replaySeqHi = rs.oseq, rs.seq, rs.oseqHi, rs.seqHi
		next.replayBitmap = rs.bitmap
		if rs.window != 0 {
			next.replayWindow = rs.window
		}
		if next.replayBitmap == nil {
			next.replayBitmap = []uint32{}
		}
	}
	nk := dataplane.SAKey{Protocol: k.Protocol, SPI: k.SPI, Dst: next.dst}
	if _, err := b.nl.do(saIDMsg(msgDelSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), 0); err != nil {
		return k, fmt.Errorf("xfrm: delete SA %s for the address update: %w", k, err)
	}
	if _, err := b.nl.do(stateMsg(msgNewSA, &next), 0); err != nil {
		// Put the old one back; the SA stays where it was.
		b.nl.do(stateMsg(msgNewSA, e.st), 0)
		return k, fmt.Errorf("xfrm: re-add SA %s with new addresses: %w", nk, err)
	}
	e.st = &next
	e.params.Src, e.params.Dst = next.src, next.dst
	e.params.Encap, e.params.SrcPort, e.params.DstPort = u.Encap, u.SrcPort, u.DstPort
	delete(b.sas, k)
	b.sas[nk] = e
	for _, pe := range b.policies {
		if pe.params.SA == k {
			pe.params.SA = nk
			if err := b.reinstallPolicyLocked(pe); err != nil {
				return nk, err
			}
		}
	}
	return nk, nil
}

// InstallPolicy implements dataplane.Backend.
func (b *Backend) InstallPolicy(p dataplane.PolicyParams) (dataplane.PolicyID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("xfrm: backend closed")
	}
	pe := &policyEntry{params: p}
	if err := b.buildPolicyLocked(pe); err != nil {
		return 0, err
	}
	var done []*policy
	for _, kp := range pe.kernel {
		if _, err := b.nl.do(policyMsg(msgNewPolicy, kp), 0); err != nil {
			for _, d := range done {
				b.nl.do(policyIDMsg(d), 0)
			}
			if errors.Is(err, unix.EEXIST) {
				return 0, fmt.Errorf("xfrm: a policy for %s === %s is installed already (by another program?): %w",
					ts.FormatList(p.Local), ts.FormatList(p.Remote), err)
			}
			return 0, fmt.Errorf("xfrm: install policy %s: %w", p.Name, err)
		}
		done = append(done, kp)
	}
	// With an XFRM interface ID the traffic is routed into the xfrm interface by the operator
	// (that is the point of route-based VPNs), so no routes are installed, as in strongSwan.
	if p.Route && p.Mode == dataplane.Tunnel && p.Action == dataplane.Protect && p.Kernel.IfIDOut == 0 && b.cfg.IfID == 0 {
		routes, err := b.routesFor(p, b.peerOf(pe))
		if err == nil {
			err = b.addRoutes(routes)
		}
		if err != nil {
			for _, d := range done {
				b.nl.do(policyIDMsg(d), 0)
			}
			return 0, err
		}
		pe.routes = routes
	}
	b.nextPolicy++
	id := b.nextPolicy
	b.policies[id] = pe
	return id, nil
}

// peerOf is the peer a policy's traffic goes to: its SA's destination, or the trap's PeerAddr.
func (b *Backend) peerOf(pe *policyEntry) netip.Addr {
	if e, ok := b.sas[pe.params.SA]; ok {
		return e.params.Dst
	}
	return pe.params.PeerAddr
}

// buildPolicyLocked computes the kernel policies of pe.params.
func (b *Backend) buildPolicyLocked(pe *policyEntry) error {
	p := pe.params
	pairs, err := selectorPairs(p.Local, p.Remote)
	if err != nil {
		return err
	}
	var action uint8 = actionAllow
	if p.Action == dataplane.Discard {
		action = actionBlock
	}
	var outT, inT *tmpl
	if p.Action == dataplane.Protect {
		proto, mode := uint8(dataplane.ESP), uint8(modeTunnel)
		if p.Mode == dataplane.Transport {
			mode = modeTransport
		}
		local, peer := p.LocalAddr, p.PeerAddr
		var spi uint32
		if p.SA != (dataplane.SAKey{}) {
			e, ok := b.sas[p.SA]
			if !ok {
				return fmt.Errorf("xfrm: policy %s names %s: %w", p.Name, p.SA, dataplane.ErrNoSA)
			}
			proto, spi = uint8(e.params.Protocol), p.SA.SPI
			local, peer = e.params.Src, e.params.Dst
			if e.params.Mode == dataplane.Transport {
				mode = modeTransport
			}
		}
		if mode == modeTransport {
			local, peer = netip.Addr{}, netip.Addr{}
		}
		fam := uint16(unix.AF_INET)
		if peer.IsValid() {
			fam = family(peer)
		} else if len(pairs) > 0 {
			fam = family(pairs[0].dst.Addr())
		}
		outT = &tmpl{src: local, dst: peer, family: fam, proto: proto, mode: mode}
		inT = &tmpl{src: peer, dst: local, family: fam, proto: proto, mode: mode}
		// The outbound template names the SA by SPI: the kernel then uses exactly the SA the
		// control plane chose (several Child SAs may lead to one peer). Without an SA the policy
		// is a trap: the kernel finds no state and sends an acquire.
		outT.spi = spi
	}
	prio := p.Priority
	ko := p.Kernel
	var ifindex int32
	if ko.Interface != "" {
		link, err := netlink.LinkByName(ko.Interface)
		if err != nil {
			return fmt.Errorf("xfrm: policy %s: interface %q: %w", p.Name, ko.Interface, err)
		}
		ifindex = int32(link.Attrs().Index)
	}
	// Per-policy interface IDs and marks win over the backend-wide ones.
	pick := func(v, def uint32) uint32 {
		if v != 0 {
			return v
		}
		return def
	}
	markOr := func(m dataplane.Mark) (uint32, uint32) {
		if m != (dataplane.Mark{}) {
			return m.Value, m.Mask
		}
		return b.cfg.Mark, b.cfg.MarkMask
	}
	outMark, outMask := markOr(ko.MarkOut)
	inMark, inMask := markOr(ko.MarkIn)
	pe.kernel = nil
	pe.outSel = map[string]bool{}
	for _, sp := range pairs {
		pr := uint32(prio)
		if prio == 0 {
			pr = b.priority(sp)
		}
		sp.ifindex = ifindex
		out := &policy{sel: sp, dir: dirOut, action: action, priority: pr, mark: outMark, markMask: outMask, ifID: pick(ko.IfIDOut, b.cfg.IfID)}
		// The interface restricts the outbound policies only (out, and the fwd-out one): the
		// kernel matches a selector's ifindex against the packet's output device, and decrypted
		// traffic for this host has the loopback device there. strongSwan sets it on the
		// outbound policies only too.
		rev := selector{src: sp.dst, dst: sp.src, sport: sp.dport, sportMask: sp.dmask, dport: sp.sport, dmask: sp.sportMask, proto: sp.proto}
		in := &policy{sel: rev, dir: dirIn, action: action, priority: pr, mark: inMark, markMask: inMask, ifID: pick(ko.IfIDIn, b.cfg.IfID)}
		if outT != nil {
			out.tmpls = []tmpl{*outT}
			in.tmpls = []tmpl{*inT}
		}
		pe.kernel = append(pe.kernel, out, in)
		enc := make([]byte, sizeSelector)
		putSelector(enc, sp)
		pe.outSel[string(enc)] = true
		if p.Mode == dataplane.Tunnel || p.Action != dataplane.Protect {
			fwd := *in
			fwd.dir = dirFwd
			pe.kernel = append(pe.kernel, &fwd)
			if b.cfg.FwdOut || ko.FwdOut {
				fo := *out
				fo.dir = dirFwd
				pe.kernel = append(pe.kernel, &fo)
			}
		}
	}
	return nil
}

// priority is strongSwan's idea of a policy priority: a base, less the more specific the
// selectors are (longer prefixes, a protocol, ports), so specific policies win.
func (b *Backend) priority(s selector) uint32 {
	spec := uint32(s.src.Bits() + s.dst.Bits())
	if s.proto != 0 {
		spec += 64
	}
	if s.sportMask != 0 || s.dmask != 0 {
		spec += 32
	}
	return b.cfg.PriorityBase - spec*8
}

// reinstallPolicyLocked updates the kernel policies of pe after its SA or addresses changed.
func (b *Backend) reinstallPolicyLocked(pe *policyEntry) error {
	old := pe.kernel
	if err := b.buildPolicyLocked(pe); err != nil {
		pe.kernel = old
		return err
	}
	for _, kp := range pe.kernel {
		if _, err := b.nl.do(policyMsg(msgUpdPolicy, kp), 0); err != nil {
			return fmt.Errorf("xfrm: update policy %s: %w", pe.params.Name, err)
		}
	}
	return nil
}

// SetPolicySA implements dataplane.Backend.
func (b *Backend) SetPolicySA(id dataplane.PolicyID, k dataplane.SAKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	pe, ok := b.policies[id]
	if !ok {
		return dataplane.ErrNoPolicy
	}
	if k != (dataplane.SAKey{}) {
		if _, ok := b.sas[k]; !ok {
			return dataplane.ErrNoSA
		}
	}
	prev := pe.params.SA
	pe.params.SA = k
	if err := b.reinstallPolicyLocked(pe); err != nil {
		pe.params.SA = prev
		return err
	}
	return nil
}

// DeletePolicy implements dataplane.Backend.
func (b *Backend) DeletePolicy(id dataplane.PolicyID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	pe, ok := b.policies[id]
	if !ok {
		return dataplane.ErrNoPolicy
	}
	delete(b.policies, id)
	delRoutes(pe.routes)
	var errs []error
	for _, kp := range pe.kernel {
		if _, err := b.nl.do(policyIDMsg(kp), 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("xfrm: delete policy %s: %w", pe.params.Name, errors.Join(errs...))
	}
	return nil
}

// stats reads one SA's kernel counters.
func (b *Backend) statsLocked(k dataplane.SAKey) (saInfo, bool) {
	e, ok := b.sas[k]
	if !ok {
		return saInfo{}, false
	}
	replies, err := b.nl.do(saIDMsg(msgGetSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), msgNewSA)
	if err != nil || len(replies) == 0 {
		return saInfo{}, false
	}
	info, err := parseSAInfo(replies[0])
	if err != nil {
		return saInfo{}, false
	}
	return info, true
}

func toStats(info saInfo) dataplane.SAStats {
	s := dataplane.SAStats{Packets: info.packets, Bytes: info.bytes}
	if info.addTime != 0 {
		s.Established = time.Unix(int64(info.addTime), 0)
	}
	if info.useTime != 0 {
		s.LastUsed = time.Unix(int64(info.useTime), 0)
	}
	s.Drops[dataplane.DropReplay] = uint64(info.replayDrops)
	s.Drops[dataplane.DropAuth] = uint64(info.integrityFailed)
	return s
}

// SAs implements dataplane.Backend.
func (b *Backend) SAs() []dataplane.SAInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]dataplane.SAInfo, 0, len(b.sas))
	for k, e := range b.sas {
		info, _ := b.statsLocked(k)
		out = append(out, dataplane.SAInfo{Key: k, Params: e.params, Stats: toStats(info)})
	}
	return out
}

// SAStats implements dataplane.Backend.
func (b *Backend) SAStats(k dataplane.SAKey) (dataplane.SAStats, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.sas[k]; !ok {
		return dataplane.SAStats{}, false
	}
	info, ok := b.statsLocked(k)
	if !ok {
		return dataplane.SAStats{}, false
	}
	return toStats(info), true
}

// xfrmStatDrops maps the kernel's /proc/net/xfrm_stat counters (Documentation/networking/
// xfrm_proc.rst) to drop reasons.
var xfrmStatDrops = map[string]dataplane.DropReason{
	"XfrmInNoStates":        dataplane.DropNoSA,
	"XfrmInStateProtoError": dataplane.DropAuth,
	"XfrmInStateSeqError":   dataplane.DropReplay,
	"XfrmInNoPols":          dataplane.DropNoPolicy,
	"XfrmInPolBlock":        dataplane.DropDiscard,
	"XfrmInTmplMismatch":    dataplane.DropPolicy,
	"XfrmInHdrError":        dataplane.DropMalformed,
	"XfrmInStateExpired":    dataplane.DropLifetime,
	"XfrmOutPolBlock":       dataplane.DropDiscard,
	"XfrmOutStateSeqError":  dataplane.DropSeqExhausted,
	"XfrmOutStateExpired":   dataplane.DropLifetime,
	"XfrmOutNoStates":       dataplane.DropNoSA,
}

// Stats implements dataplane.Backend: the kernel's XFRM error counters of this network namespace.
func (b *Backend) Stats() dataplane.Stats {
	var s dataplane.Stats
	raw, err := os.ReadFile("/proc/net/xfrm_stat")
	if err != nil {
		return s
	}
	s.Drops = parseXfrmStat(string(raw))
	return s
}

func parseXfrmStat(text string) dataplane.DropCounts {
	var d dataplane.DropCounts
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		reason, ok := xfrmStatDrops[f[0]]
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			d[reason] += n
		}
	}
	return d
}

// Close removes every policy and SA the backend installed, and its bypass policies.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var errs []error
	for id, pe := range b.policies {
		delRoutes(pe.routes)
		for _, kp := range pe.kernel {
			if _, err := b.nl.do(policyIDMsg(kp), 0); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
		}
		delete(b.policies, id)
	}
	for k, e := range b.sas {
		e.wipe()
		if _, err := b.nl.do(saIDMsg(msgDelSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
		delete(b.sas, k)
	}
	for _, pe := range b.policies {
		delRoutes(pe.routes)
	}
	b.removeBypass()
	b.removeRules()
	b.mu.Unlock()
	close(b.done)
	b.events.Close()
	b.wg.Wait()
	b.nl.close()
	if len(errs) > 0 {
		return fmt.Errorf("xfrm: close: %w", errors.Join(errs...))
	}
	return nil
}

// readEvents turns the kernel's acquire and expire messages into Events.
func (b *Backend) readEvents() {
	defer b.wg.Done()
	for {
		msgs, from, err := b.events.Receive()
		if err != nil {
			select {
			case <-b.done:
				return
			default:
			}
			if errors.Is(err, syscall.ENOBUFS) {
				b.log.Warn("xfrm: kernel events were lost (receive buffer full)")
				continue
			}
			b.log.Error("xfrm: reading kernel events stopped", "err", err)
			return
		}
		if from.Pid != 0 {
			continue // only the kernel speaks on these groups
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case msgAcquire:
				b.onAcquire(m.Data)
			case msgExpire:
				b.onExpire(m.Data)
			}
		}
	}
}

func (b *Backend) onAcquire(data []byte) {
	a, err := parseAcquire(data)
	if err != nil {
		b.log.Warn("xfrm: malformed acquire", "err", err)
		return
	}
	polSel := data[96 : 96+sizeSelector]
	b.mu.Lock()
	var id dataplane.PolicyID
	var name string
	for pid, pe := range b.policies {
		if pe.outSel[string(polSel)] && pe.params.Action == dataplane.Protect {
			id, name = pid, pe.params.Name
			break
		}
	}
	b.mu.Unlock()
	if id == 0 {
		b.log.Debug("xfrm: acquire for a policy not installed by goipsec", "src", a.selSrc, "dst", a.selDst)
		return
	}
	if f := b.cfg.Events.Acquire; f != nil {
		f(dataplane.Acquire{Policy: id, Name: name, Src: a.selSrc, Dst: a.selDst, Protocol: a.selProto})
	}
}

func (b *Backend) onExpire(data []byte) {
	x, err := parseExpire(data)
	if err != nil {
		b.log.Warn("xfrm: malformed expire", "err", err)
		return
	}
	k := dataplane.SAKey{Protocol: dataplane.Protocol(x.sa.proto), SPI: x.sa.spi, Dst: x.sa.dst}
	b.mu.Lock()
	e, ok := b.sas[k]
	if ok && x.hard {
		// The kernel marks the state expired and normally deletes it; a state whose hard limit
		// was reached on the output path can stay listed (dead) until then, so delete it here too.
		delete(b.sas, k)
		e.wipe()
		b.nl.do(saIDMsg(msgDelSA, k.Dst, k.SPI, uint8(k.Protocol), e.st.mark, e.st.markMask), 0)
	}
	b.mu.Unlock()
	if !ok {
		return
	}
	why := "soft lifetime reached"
	if x.hard {
		why = "hard lifetime reached"
	}
	if f := b.cfg.Events.Expire; f != nil {
		f(dataplane.Expire{SA: k, Name: e.params.Name, Hard: x.hard, Why: why})
	}
}

// pollFirstInbound reads the counters of inbound SAs waiting for their first packet.
func (b *Backend) pollFirstInbound() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		type seen struct {
			k    dataplane.SAKey
			name string
		}
		var fire []seen
		b.mu.Lock()
		for k, e := range b.sas {
			if !e.notify {
				continue
			}
			info, ok := b.statsLocked(k)
			if ok && info.packets > 0 {
				e.notify = false
				fire = append(fire, seen{k, e.params.Name})
			}
		}
		b.mu.Unlock()
		if f := b.cfg.Events.FirstInbound; f != nil {
			for _, s := range fire {
				f(s.k, s.name)
			}
		}
	}
}

// selectorPairs turns the dataplane's selector lists into XFRM selectors: every local with every
// remote selector of the same family, each address range split into prefixes.
func selectorPairs(local, remote []ts.Selector) ([]selector, error) {
	var out []selector
	for _, l := range local {
		for _, r := range remote {
			if l.Is6() != r.Is6() {
				continue
			}
			proto := l.Protocol
			if proto == 0 {
				proto = r.Protocol
			} else if r.Protocol != 0 && r.Protocol != proto {
				continue
			}
			sport, smask, err := portMask(l)
			if err != nil {
				return nil, err
			}
			dport, dmask, err := portMask(r)
			if err != nil {
				return nil, err
			}
			for _, lp := range rangePrefixes(l.Start, l.End) {
				for _, rp := range rangePrefixes(r.Start, r.End) {
					out = append(out, selector{src: lp, dst: rp, proto: proto, sport: sport, sportMask: smask, dport: dport, dmask: dmask})
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("xfrm: no pair of local and remote selectors of one family: %w", dataplane.ErrUnsupported)
	}
	return out, nil
}

// portMask maps a selector's port range to an XFRM port and mask: any (mask 0) or one port.
func portMask(s ts.Selector) (uint16, uint16, error) {
	switch {
	case s.StartPort == 0 && s.EndPort == 0xffff:
		return 0, 0, nil
	case s.StartPort == s.EndPort:
		return s.StartPort, 0xffff, nil
	}
	return 0, 0, fmt.Errorf("xfrm: port range %d-%d (the kernel matches one port or all): %w", s.StartPort, s.EndPort, dataplane.ErrUnsupported)
}

// rangePrefixes splits the address range [start, end] into the fewest prefixes that cover it.
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	bits := start.BitLen()
	for start.IsValid() && start.Compare(end) <= 0 {
		// The largest prefix at start that neither starts before start nor ends after end.
		l := bits
		for l > 0 {
			p := netip.PrefixFrom(start, l-1).Masked()
			if p.Addr() != start || lastOf(p).Compare(end) > 0 {
				break
			}
			l--
		}
		p := netip.PrefixFrom(start, l)
		out = append(out, p)
		last := lastOf(p)
		next := last.Next()
		if !next.IsValid() || last == end {
			break
		}
		start = next
	}
	return out
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
