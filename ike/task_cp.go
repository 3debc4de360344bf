package ike

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ts"
)

// Virtual IPs (RFC 7296 §2.19, §3.15): a client asks for addresses in a CFG_REQUEST that rides in
// its first IKE_AUTH request; the gateway answers with a CFG_REPLY in its last IKE_AUTH response.
// The addresses then stand for "dynamic" in the traffic selectors of both sides: the client's
// Child SAs carry its virtual IP, the gateway's narrow the client's 0.0.0.0/0 to it.

// VIPRequest is what a gateway's PeerConfig.AssignVIPs is asked.
type VIPRequest struct {
	Conn string
	// ID names the lease: the client's EAP identity when it authenticated with EAP, else its IKE
	// identity (one lease per identity, RFC 7296 §2.19 leaves the policy to the gateway).
	ID string
	// Want has one entry per requested family: the unspecified address asks for any, another
	// the address the client had (a re-authenticating client asks for its current one).
	Want []netip.Addr
	// AAA are addresses an AAA server gave (RADIUS Framed-IP-Address) and AAAPool a pool it named
	// (Framed-Pool); zero when none.
	AAA     []netip.Addr
	AAAPool string
}

// VIPAssignment is the gateway's answer: the addresses (one per family it could serve) and the
// attributes to send with them (DNS, subnets, ...).
type VIPAssignment struct {
	Addrs []netip.Addr
	Attrs []wire.CPAttribute
}

// cpTask is the client's configuration request in IKE_AUTH: it shares the exchange with authTask
// and the first childCreateTask, between them, so that the CFG_REPLY is processed (and its
// addresses reported) before the Child SA that uses them is installed.
type cpTask struct{}

func (*cpTask) Kind() TaskKind              { return TaskConfig }
func (*cpTask) Exchange() wire.ExchangeType { return wire.ExchangeIKEAuth }
func (*cpTask) abort(*SA)                   {}

func (*cpTask) build(sa *SA, req *Message) error {
	var attrs []wire.CPAttribute
	for _, a := range sa.Config.VIPs {
		var v []byte
		if !a.IsUnspecified() {
			v = a.AsSlice()
		}
		if a.Is4() {
			attrs = append(attrs, wire.CPAttribute{Type: wire.InternalIP4Address, Value: v},
				wire.CPAttribute{Type: wire.InternalIP4DNS})
		} else {
			if v != nil {
				v = append(v, 128) // INTERNAL_IP6_ADDRESS carries a prefix length (§3.15.1)
			}
			attrs = append(attrs, wire.CPAttribute{Type: wire.InternalIP6Address, Value: v},
				wire.CPAttribute{Type: wire.InternalIP6DNS})
		}
	}
	req.add(&wire.CP{CFGType: wire.CFGRequest, Attributes: attrs})
	return nil
}

// process reads the CFG_REPLY. A gateway that assigns nothing leaves the client without virtual
// IPs: the Child SA then fails on its selectors (strongSwan's client gives up the same way).
func (*cpTask) process(sa *SA, resp *Message) (bool, error) {
	cp := find[*wire.CP](resp.Payloads)
	if cp == nil || cp.CFGType != wire.CFGReply {
		if sa.state == StateEstablished {
			err := errorf(0, "connection %s asked for virtual IPs (vips = %s), but gateway %s assigned none", sa.Config.Name, addrList(sa.Config.VIPs), sa.Remote)
			sa.emit(Failed{Conn: sa.name(), Err: err})
		}
		return false, nil
	}
	var got VirtualIPs
	for _, a := range cp.Attributes {
		switch a.Type {
		case wire.InternalIP4Address:
			if ip, ok := netip.AddrFromSlice(a.Value); ok && len(a.Value) == 4 && !ip.IsUnspecified() {
				got.Addrs = append(got.Addrs, ip)
			}
		case wire.InternalIP6Address:
			if len(a.Value) == 17 {
				if ip, ok := netip.AddrFromSlice(a.Value[:16]); ok && !ip.IsUnspecified() {
					got.Addrs = append(got.Addrs, ip)
				}
			}
		case wire.InternalIP4DNS:
			if len(a.Value) == 4 {
				ip, _ := netip.AddrFromSlice(a.Value)
				got.DNS = append(got.DNS, ip)
			}
		case wire.InternalIP6DNS:
			if len(a.Value) == 16 {
				ip, _ := netip.AddrFromSlice(a.Value)
				got.DNS = append(got.DNS, ip)
			}
		case wire.InternalIP4Subnet:
			if len(a.Value) == 8 {
				ip, _ := netip.AddrFromSlice(a.Value[:4])
				if bits, ok := maskBits(a.Value[4:]); ok {
					got.Subnets = append(got.Subnets, netip.PrefixFrom(ip, bits).Masked())
				}
			}
		case wire.InternalIP6Subnet:
			if len(a.Value) == 17 && a.Value[16] <= 128 {
				ip, _ := netip.AddrFromSlice(a.Value[:16])
				got.Subnets = append(got.Subnets, netip.PrefixFrom(ip, int(a.Value[16])).Masked())
			}
		case wire.InternalDNSDomain:
			got.Domains = append(got.Domains, string(a.Value))
		}
	}
	if len(got.Addrs) == 0 {
		err := errorf(0, "connection %s: gateway %s answered our configuration request without an address", sa.Config.Name, sa.Remote)
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, nil
	}
	sa.LocalVIPs = got.Addrs
	got.IKE = sa.Info()
	sa.emit(got)
	return false, nil
}

// maskBits converts an IPv4 netmask to a prefix length (false for a non-contiguous mask).
func maskBits(m []byte) (int, bool) {
	v := binary.BigEndian.Uint32(m)
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	return bits, v == 0
}

func addrList(list []netip.Addr) string {
	s := ""
	for i, a := range list {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}

// respondCP answers a client's CFG_REQUEST: it assigns the addresses (before the Child SA whose
// selectors use them is negotiated, and before IKEUp reports them) and returns the CFG_REPLY for
// the last IKE_AUTH response (nil: none). aaa carries what an AAA server decided.
func (sa *SA) respondCP(cfg *PeerConfig, req []wire.Payload, aaa VIPRequest) *wire.CP {
	cp := find[*wire.CP](req)
	if cp == nil || cp.CFGType != wire.CFGRequest {
		return nil
	}
	var want []netip.Addr
	for _, a := range cp.Attributes {
		switch a.Type {
		case wire.InternalIP4Address:
			ip := netip.IPv4Unspecified()
			if len(a.Value) == 4 {
				ip, _ = netip.AddrFromSlice(a.Value)
			}
			want = append(want, ip)
		case wire.InternalIP6Address:
			ip := netip.IPv6Unspecified()
			if len(a.Value) == 17 {
				ip, _ = netip.AddrFromSlice(a.Value[:16])
			}
			want = append(want, ip)
		}
	}
	if len(want) == 0 || cfg.AssignVIPs == nil {
		// Nothing to assign (RFC 7296 §3.15.1: the reply may leave out what we do not have).
		return nil
	}
	aaa.Conn, aaa.Want = cfg.Name, want
	if aaa.ID == "" {
		aaa.ID = sa.RemoteID.String()
	}
	got, err := cfg.AssignVIPs(aaa)
	if err != nil {
		sa.emit(Failed{Conn: cfg.Name, Err: fmt.Errorf("no virtual IP for %s: %w", aaa.ID, err)})
	}
	if len(got.Addrs) == 0 {
		return nil
	}
	sa.RemoteVIPs = got.Addrs
	sa.rareState().vipID = aaa.ID
	var attrs []wire.CPAttribute
	for _, a := range got.Addrs {
		if a.Is4() {
			attrs = append(attrs, wire.CPAttribute{Type: wire.InternalIP4Address, Value: a.AsSlice()})
		} else {
			attrs = append(attrs, wire.CPAttribute{Type: wire.InternalIP6Address, Value: append(a.AsSlice(), 128)})
		}
	}
	attrs = append(attrs, got.Attrs...)
	return &wire.CP{CFGType: wire.CFGReply, Attributes: attrs}
}

// VirtualIPs reports the addresses (and DNS servers, subnets, domains) a client received, for the
// daemon to put on its TUN device before the Child SA that uses them is installed. They go when the
// IKE SA goes (IKEDown with IKE.LocalVIPs), unless a rekey or re-authentication carries them on.
type VirtualIPs struct {
	IKE     IKEInfo
	Addrs   []netip.Addr
	DNS     []netip.Addr
	Subnets []netip.Prefix
	Domains []string
}

func (VirtualIPs) isEffect() {}

// childLocalTS resolves a child's local selectors: "dynamic" is our virtual IP once we have one,
// and any address of the requested families while we ask for one (the gateway narrows them).
func (sa *SA) childLocalTS(c *ChildConfig) []ts.Selector {
	if c.LocalDynamic && sa.Config != nil && len(sa.Config.VIPs) > 0 {
		out := append([]ts.Selector(nil), c.LocalTS...)
		if len(sa.LocalVIPs) > 0 {
			for _, a := range sa.LocalVIPs {
				out = append(out, ts.Host(a))
			}
			return out
		}
		seen := map[bool]bool{}
		for _, a := range sa.Config.VIPs {
			if !seen[a.Is6()] {
				seen[a.Is6()] = true
				out = append(out, ts.Any(a.Is6()))
			}
		}
		return out
	}
	return c.localTS(sa.Local.Addr())
}

// childRemoteTS resolves a child's remote selectors: "dynamic" is the peer's virtual IPs when we
// assigned some, else its address.
func (sa *SA) childRemoteTS(c *ChildConfig) []ts.Selector {
	if c.RemoteDynamic && len(sa.RemoteVIPs) > 0 {
		out := append([]ts.Selector(nil), c.RemoteTS...)
		for _, a := range sa.RemoteVIPs {
			out = append(out, ts.Host(a))
		}
		return out
	}
	return c.remoteTS(sa.Remote.Addr())
}
