// Package dataplane defines the seam between the control plane (manual keys, the IKE daemon) and
// the packet engine that applies ESP and AH. The control plane installs SAs and policies through
// Backend with parameter structs; the userspace engine (package dataplane/userspace) implements it
// over a TUN device and UDP/raw sockets, and a kernel XFRM backend can implement it later.
//
// This package imports no control-plane package.
package dataplane

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// Protocol is the IPsec protocol of an SA: its IP protocol number.
type Protocol uint8

const (
	ESP Protocol = 50
	AH  Protocol = 51
)

func (p Protocol) String() string {
	switch p {
	case ESP:
		return "esp"
	case AH:
		return "ah"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Mode is tunnel or transport.
type Mode uint8

const (
	Tunnel Mode = iota
	Transport
)

func (m Mode) String() string {
	if m == Transport {
		return "transport"
	}
	return "tunnel"
}

// Direction of an SA or policy, seen from this host.
type Direction uint8

const (
	Out Direction = iota
	In
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// SAKey identifies an SA in the SAD: inbound SAs are found by (protocol, SPI, destination), RFC 4301
// §4.4.2; outbound ones are keyed the same way with the peer as destination.
type SAKey struct {
	Protocol Protocol
	SPI      uint32
	Dst      netip.Addr
}

func (k SAKey) String() string {
	return fmt.Sprintf("%s spi 0x%08x dst %s", k.Protocol, k.SPI, k.Dst)
}

// SAParams describes one SA (one direction) to install.
type SAParams struct {
	Name      string // connection/child name, for logs and status
	Direction Direction
	Protocol  Protocol
	Mode      Mode
	SPI       uint32
	// Src and Dst are the outer addresses: for an outbound SA Src is local and Dst the peer; for an
	// inbound SA Src is the peer and Dst local.
	Src, Dst netip.Addr
	// Encap selects ESP in UDP (RFC 3948). SrcPort/DstPort are the UDP ports (usually 4500).
	Encap            bool
	SrcPort, DstPort uint16
	// TCP selects ESP in TCP (RFC 9329) instead, in the connection between Src:SrcPort and
	// Dst:DstPort that carries the IKE SA (or the newest one between the two hosts after a
	// reconnect). Backends without TCP encapsulation refuse such SAs.
	TCP bool

	// Transforms. IDs are IKEv2 transform IDs; key formats are those of package esp.
	Encryption esp.Encryption
	EncKey     []byte
	Integrity  esp.Integrity
	IntegKey   []byte
	ESN        bool
	// ReplayWindow is the inbound anti-replay window in packets; 0 means the default (1024),
	// negative disables the check.
	ReplayWindow int
	// TFCPadding pads outbound tunnel-mode ESP payloads up to this many bytes (RFC 4303 §2.7);
	// 0 disables.
	TFCPadding int

	// Local and Remote are the traffic selectors negotiated for this SA. Inbound packets must match
	// them after decapsulation (src in Remote, dst in Local), RFC 4301 §5.2.
	Local, Remote []ts.Selector

	Lifetime Lifetime

	// IfID and Mark tie the SA to an XFRM interface and to marked packets (strongSwan's
	// if_id_in/out and mark_in/out); only the kernel data plane supports them (zero: none).
	IfID uint32
	Mark Mark
	// SetMark is the mark the kernel puts on packets once this SA processed them (strongSwan's
	// set_mark_in/out, XFRMA_SET_MARK); kernel data plane only (zero: none).
	SetMark Mark

	// NotifyFirstInbound asks for Events.FirstInbound when the first packet authenticates on this
	// inbound SA: the sign that the peer sends on it, which a rekey responder waits for before it
	// moves its own traffic to the new SA (RFC 7296 §2.8, make-before-break).
	NotifyFirstInbound bool

	// ClampMSS lowers the maximum segment size option of TCP SYNs that this SA carries (outbound:
	// entering the tunnel; inbound: leaving it) so that the connection's segments fit the path
	// once encapsulated, without fragments or path MTU discovery. 0 leaves SYNs alone;
	// ClampMSSAuto derives the MSS from the path MTU towards the peer, the IPsec overhead and
	// the TUN device's MTU; a positive value is an upper bound in bytes.
	ClampMSS int
}

// Mark is a packet mark and the mask it is compared under (XFRM marks); the zero Mark is none.
type Mark struct {
	Value, Mask uint32
}

// KernelPolicyOptions are policy settings only a kernel (XFRM) data plane has: strongSwan's
// if_id_in/out, mark_in/out, interface and policies_fwd_out. The in options apply to the inbound
// and forward policies, the out options to the outbound one.
type KernelPolicyOptions struct {
	IfIDIn, IfIDOut uint32
	MarkIn, MarkOut Mark
	// Interface restricts the policies to traffic through this network interface.
	Interface string
	// FwdOut also installs a forward policy for the outbound direction.
	FwdOut bool
}

// IsZero reports whether no option is set.
func (o KernelPolicyOptions) IsZero() bool { return o == KernelPolicyOptions{} }

// ClampMSSAuto asks for TCP MSS clamping to what fits the path (SAParams.ClampMSS).
const ClampMSSAuto = -1

// AddressUpdate gives an SA new outer addresses and UDP ports: a NAT mapping that changed (RFC 7296
// §2.23) or a MOBIKE address update (RFC 4555).
type AddressUpdate struct {
	Src, Dst         netip.Addr
	Encap            bool
	SrcPort, DstPort uint16
	// TCP: ESP in TCP (RFC 9329) between the addresses and ports, as SAParams.TCP.
	TCP bool
}

// Lifetime limits an SA; zero fields are unlimited. Soft limits raise an Expire event with Hard false
// (the control plane rekeys); hard limits delete the SA.
type Lifetime struct {
	SoftBytes, HardBytes     uint64
	SoftPackets, HardPackets uint64
}

// Action is what a policy does with matching packets.
type Action uint8

const (
	Protect Action = iota // encrypt with the policy's SA
	Bypass                // send in the clear
	Discard               // drop
	// Deliver hands matching plaintext packets to PolicyParams.Deliver instead of sending them:
	// how the L2TP/PPP server receives the packets routed to its clients' addresses.
	Deliver
)

func (a Action) String() string {
	switch a {
	case Bypass:
		return "bypass"
	case Discard:
		return "discard"
	case Deliver:
		return "deliver"
	}
	return "protect"
}

// PolicyParams describes an outbound policy: traffic from Local to Remote selectors is handled by
// Action. A Protect policy names its outbound SA by key; a Protect policy whose SA is not (yet)
// installed triggers an Acquire (RFC 4301 §5.1: the IKE daemon then negotiates the SA) and drops the
// packet. Routes for the Remote selectors are pointed at the engine when Route is set.
type PolicyParams struct {
	Name          string
	Local, Remote []ts.Selector
	SA            SAKey // outbound SA for Protect
	// Priority orders policies: lower values win; equal priorities: more specific selectors
	// first. Values beyond ±2^31 count as ±2^31.
	Priority int
	Action   Action
	Route    bool
	// Mode tells the engine how to reach the SA's peer for route set-up (transport mode routes the
	// peer's own address, so the engine must keep its outer packets off the tunnel).
	Mode Mode
	// LocalAddr and PeerAddr are the outer addresses of the tunnel-mode SAs the policy is for. A
	// kernel backend needs them for a trap policy (no SA yet): its template tells the kernel
	// where the acquire is for. Optional; ignored by the userspace engine.
	LocalAddr, PeerAddr netip.Addr
	// Kernel holds XFRM-only settings; a data plane without them refuses a policy that sets any
	// (dataplane.ErrUnsupported).
	Kernel KernelPolicyOptions
	// RouteMTU, when set, is the MTU of the policy's routes (smaller than the device's): the
	// L2TP server's client routes leave room for the UDP, L2TP and PPP headers, so that a
	// datagram carrying a full-sized packet still fits the device and is never fragmented
	// before transport-mode ESP (RFC 4303 §3.3.4 applies ESP to whole datagrams only).
	RouteMTU int
	// Deliver receives the packets of a Deliver policy. It runs on the packet path: it must not
	// block, and the packet is only valid during the call.
	Deliver func(pkt []byte)
}

// Injector is implemented by data planes that can hand a packet to the host as if it had arrived
// on their device (the L2TP/PPP server's clients' packets). Backends without a device of their
// own do not implement it.
type Injector interface {
	Inject(pkt []byte) error
}

// PolicyID names an installed policy.
type PolicyID uint64

// Acquire is reported when a packet hits a Protect policy without an SA.
type Acquire struct {
	Policy   PolicyID
	Name     string
	Src, Dst netip.Addr // the triggering packet's addresses
	Protocol uint8
}

// Expire is reported when an SA reaches a soft or hard lifetime, or its sequence number space is
// used up (which is always hard).
type Expire struct {
	SA   SAKey
	Name string
	Hard bool
	Why  string
}

// Events receives engine notifications; any field may be nil. Callbacks must not block.
type Events struct {
	Acquire func(Acquire)
	Expire  func(Expire)
	// FirstInbound reports the first authenticated packet on an inbound SA installed with
	// NotifyFirstInbound; at most once per SA. It may be called on the packet path: it must return
	// at once (hand the news over, do no work).
	FirstInbound func(SAKey, string)
}

// SAStats are per-SA counters.
type SAStats struct {
	Packets, Bytes uint64 // bytes of inner payload
	Drops          DropCounts
	Established    time.Time
	LastUsed       time.Time
}

// DropReason classifies a dropped packet.
type DropReason uint8

const (
	DropNoSA DropReason = iota
	DropAuth
	DropReplay
	DropPadding
	DropPolicy
	DropTooBig
	DropMalformed
	DropNoPolicy
	DropSeqExhausted
	DropDiscard
	DropLifetime
	numDropReasons
)

var dropNames = [...]string{
	DropNoSA: "no_sa", DropAuth: "auth_failed", DropReplay: "replay", DropPadding: "bad_padding",
	DropPolicy: "policy_mismatch", DropTooBig: "too_big", DropMalformed: "malformed",
	DropNoPolicy: "no_policy", DropSeqExhausted: "seq_exhausted", DropDiscard: "discard_policy",
	DropLifetime: "lifetime_expired",
}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("drop-%d", uint8(r))
}

// DropReasons lists every reason, for metrics.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// DropCounts holds one counter per DropReason.
type DropCounts [numDropReasons]uint64

// Total is the sum of all drop counters.
func (d DropCounts) Total() uint64 {
	var t uint64
	for _, v := range d {
		t += v
	}
	return t
}

// SAInfo is one SA as listed by the engine.
type SAInfo struct {
	Key    SAKey
	Params SAParams // with keys removed
	Stats  SAStats
}

// Stats are engine-wide counters: drops that could not be attributed to an SA (unknown SPI,
// malformed packets, no policy).
type Stats struct {
	Drops        DropCounts
	TunPackets   uint64 // packets read from the TUN device
	NetPackets   uint64 // IPsec packets received
	IKEPackets   uint64 // IKE messages passed up from the NAT-T port
	KeepAlives   uint64 // NAT-keepalives received and ignored
	DummyPackets uint64 // ESP dummy packets (next header 59) received and dropped
	Bypassed     uint64 // packets sent in the clear by a bypass policy
	MSSClamped   uint64 // TCP SYNs whose MSS option was lowered (SAParams.ClampMSS)
}

// XDPStats are the counters of raw ESP received through AF_XDP (the userspace engine's
// daemon.raw_esp_xdp).
type XDPStats struct {
	// Interfaces maps each interface with the XDP program to its mode, "native" or "generic".
	Interfaces map[string]string
	// Received counts frames read from the AF_XDP RX rings, in Batches ring reads.
	Received, Batches uint64
	// Drops counts frames discarded before SA lookup, by reason ("malformed", "other_host",
	// "bad_descriptor"); later drops (no SA, authentication, replay) are counted as on every path.
	Drops map[string]uint64
	// The kernel's counters of the sockets (struct xdp_statistics): frames dropped (no room in a
	// frame), RX ring full, fill ring empty.
	KernelDropped, RxRingFull, FillRingEmpty uint64
}

// XDPReporter is implemented by a Backend that can receive through AF_XDP; ok is false while
// that path is not in use.
type XDPReporter interface {
	XDPStats() (st XDPStats, ok bool)
}

// PacketRingStats are the counters of raw ESP sent through the userspace engine's AF_PACKET TX
// rings (one per pipeline; daemon.raw_esp_ring).
type PacketRingStats struct {
	// Rings is the number of TX rings (pipelines sending raw ESP through one).
	Rings int
	// Sent counts packets the kernel took from the rings, in Sendtos sendto calls.
	Sent, Sendtos uint64
	// Retries counts sendto calls that found the socket's send buffer or the device's queue full
	// and were retried.
	Retries uint64
	// Broken counts rings given up after a sendto failed for good (the interface down or gone)
	// or was retried too often; Recovered the packets then taken back from them and sent through
	// the raw socket.
	Broken, Recovered uint64
	// RawSocket counts raw ESP packets that went through the raw socket instead of a ring: no
	// usable link-layer path (no neighbour entry, not Ethernet), larger than the MTU, ring full.
	RawSocket uint64
}

// PacketRingReporter is implemented by a Backend that sends raw ESP through AF_PACKET TX rings;
// ok is false while no ring is in use.
type PacketRingReporter interface {
	PacketRingStats() (st PacketRingStats, ok bool)
}

// Backend is what the control plane needs from a data plane.
type Backend interface {
	InstallSA(SAParams) error
	DeleteSA(SAKey) error
	// UpdateSAAddresses moves an installed SA to new outer addresses and ports, keeping its keys,
	// sequence numbers, replay window and counters, and returns the SA's key afterwards (the key
	// holds the destination address). Policies that point at the SA keep pointing at it.
	UpdateSAAddresses(SAKey, AddressUpdate) (SAKey, error)
	InstallPolicy(PolicyParams) (PolicyID, error)
	// SetPolicySA points a Protect policy at another outbound SA (after a rekey); the zero key
	// leaves it without SA, so that matching packets raise Acquire (a trap policy).
	SetPolicySA(PolicyID, SAKey) error
	DeletePolicy(PolicyID) error
	// SAs lists installed SAs with their counters.
	SAs() []SAInfo
	SAStats(SAKey) (SAStats, bool)
	Stats() Stats
	Close() error
}

// Errors returned by backends.
var (
	ErrSAExists    = errors.New("an SA with this protocol, SPI and destination is installed already")
	ErrNoSA        = errors.New("no such SA")
	ErrNoPolicy    = errors.New("no such policy")
	ErrUnsupported = errors.New("not supported by this data plane")
)

// Specificity ranks a selector list for policy ordering: longer prefixes and restricted
// protocols or ports rank higher; a list ranks as its most specific selector.
func Specificity(list []ts.Selector) int {
	best := 0
	for _, s := range list {
		n := 0
		if p, ok := s.Prefix(); ok {
			n = p.Bits() * 4
		}
		if s.Protocol != 0 {
			n += 2
		}
		if !s.AnyPort() {
			n++
		}
		best = max(best, n)
	}
	return best
}

// PolicyRank is the order in which a data plane tries outbound policies; the first that matches a
// packet decides. Lower Priority values come first; among equal priorities the more specific
// remote selectors, then the more specific local selectors, then the policy installed first.
//
// A gateway keeps one per policy, hence the small fields.
type PolicyRank struct {
	Priority      int32
	Remote, Local int16 // Specificity of the selector lists (at most 4×128+3)
	ID            PolicyID
}

// RankOf computes a policy's rank.
func RankOf(id PolicyID, p *PolicyParams) PolicyRank {
	prio := int32(min(max(p.Priority, math.MinInt32), math.MaxInt32))
	return PolicyRank{Priority: prio, Remote: int16(Specificity(p.Remote)), Local: int16(Specificity(p.Local)), ID: id}
}

// Before reports whether a policy of rank r is tried before one of rank o.
func (r PolicyRank) Before(o PolicyRank) bool {
	if r.Priority != o.Priority {
		return r.Priority < o.Priority
	}
	if r.Remote != o.Remote {
		return r.Remote > o.Remote
	}
	if r.Local != o.Local {
		return r.Local > o.Local
	}
	return r.ID < o.ID
}
