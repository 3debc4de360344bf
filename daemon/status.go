package daemon

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/ts"
)

// Status is a snapshot of everything the daemon runs, in the documented schema of package status
// (docs/status-json.md), for `goipsec status`, VICI and metrics.
type Status = status.Status

// processStarted is when this process loaded the daemon package: a read-only fact reported as
// daemon.started_at, not state.
var processStarted = time.Now()

// Version is reported by VICI's version command and the status snapshot; cmd/goipsec sets it.
var Version = "0.1.0-dev"

func addrList(list []config.Address) []string {
	if len(list) == 0 {
		return []string{"%any"}
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, addrString(a))
	}
	return out
}

func addrString(a config.Address) string {
	switch a.Kind {
	case config.AddrAny:
		return "%any"
	case config.AddrSingle:
		return a.Start.String()
	case config.AddrPrefix:
		return a.Prefix.String()
	case config.AddrRange:
		return a.Start.String() + "-" + a.End.String()
	}
	return a.Host
}

func tsConfList(list []config.TrafficSelector) []string {
	if len(list) == 0 {
		return []string{"dynamic"}
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		out = append(out, t.String())
	}
	return out
}

func tsStrings(list []ts.Selector) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.String())
	}
	return out
}

func proposalStrings(list []proposal.Proposal) []string {
	out := make([]string, 0, len(list))
	for _, p := range list {
		out = append(out, p.String())
	}
	return out
}

// Status returns a snapshot of connections, SAs and counters.
func (d *Daemon) Status() Status {
	st := Status{SchemaVersion: status.SchemaVersion, Daemon: status.Daemon{Version: Version, StartedAt: processStarted},
		Connections: []status.Connection{}, Manual: []status.ManualSA{}}
	st.Certificates = d.CertStatuses() // creds.go
	dp := d.backend.Stats()
	st.DataPlane = status.DataPlane{Drops: dropMap(dp.Drops, true), TunPackets: dp.TunPackets, NetPackets: dp.NetPackets,
		IKEPackets: dp.IKEPackets, Keepalives: dp.KeepAlives, Dummy: dp.DummyPackets, Bypassed: dp.Bypassed}
	if r, ok := d.backend.(dataplane.XDPReporter); ok {
		if x, ok := r.XDPStats(); ok {
			st.DataPlane.XDP = &status.XDP{Interfaces: x.Interfaces, Received: x.Received, Batches: x.Batches, Drops: x.Drops,
				KernelDrops: map[string]uint64{"dropped": x.KernelDropped, "rx_ring_full": x.RxRingFull, "fill_ring_empty": x.FillRingEmpty}}
		}
	}
	if r, ok := d.backend.(dataplane.PacketRingReporter); ok {
		if x, ok := r.PacketRingStats(); ok {
			st.DataPlane.TXRing = &status.TXRing{Rings: x.Rings, Sent: x.Sent, Sendtos: x.Sendtos, Retries: x.Retries,
				Broken: x.Broken, Recovered: x.Recovered, RawSocket: x.RawSocket}
		}
	}
	var ikeSAs []engine.SAInfo
	if d.ike != nil {
		ikeSAs = d.allSAs()
		s := d.ike.Stats()
		st.IKE = status.IKECounters{HandshakesOK: s.HandshakesOK, HandshakesFailed: s.HandshakesFailed, Rekeys: s.Rekeys,
			Retransmits: s.Retransmits, InvalidMessages: s.InvalidMessages, CookiesSent: s.CookiesSent, HalfOpen: s.HalfOpen,
			Drops: map[string]uint64{}}
		for i, n := range s.Drops {
			if n > 0 {
				st.IKE.Drops[engine.DropReason(i).String()] = n
			}
		}
		d.addIKEv1Counters(&st.IKE)
	}
	st.IKE.Failures = d.FailureCounts()
	// Which outbound SAs are UDP-encapsulated, read once (not once per child).
	encap := map[uint32]bool{}
	for _, info := range d.backend.SAs() {
		if info.Params.Direction == dataplane.Out {
			encap[info.Key.SPI] = info.Params.Encap
		}
	}
	bySA := map[string][]engine.SAInfo{}
	for _, sa := range ikeSAs {
		bySA[sa.Name] = append(bySA[sa.Name], sa)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.conns))
	for name := range d.conns {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := d.conns[name].cfg
		cs := status.Connection{Name: name, File: c.File, Line: c.Line, LocalAddrs: addrList(c.LocalAddrs), RemoteAddrs: addrList(c.RemoteAddrs),
			LocalID: c.Local.ID.Text, RemoteID: c.Remote.ID.Text, Proposals: proposalStrings(c.Proposals),
			DPDDelay: int64(c.DPDDelay / time.Second), Children: []status.ChildConfig{}, IKESAs: []status.IKESA{}}
		for _, ch := range c.Children {
			cs.Children = append(cs.Children, status.ChildConfig{Name: ch.Name, Mode: string(ch.Mode), StartAction: string(ch.StartAction),
				LocalTS: tsConfList(ch.LocalTS), RemoteTS: tsConfList(ch.RemoteTS), ESPProposals: proposalStrings(ch.ESPProposals),
				AHProposals: proposalStrings(ch.AHProposals)})
		}
		if f, ok := d.lastFailure[name]; ok {
			cs.LastFailure = &status.Failure{At: f.when, Message: f.err}
		}
		for _, sa := range bySA[name] {
			is := status.IKESA{Version: ikeVersionOf(sa), SPIInitiator: hex16(sa.SPIi), SPIResponder: hex16(sa.SPIr), Initiator: sa.Initiator,
				State: lowerState(sa.State.String()), Local: sa.Local.String(), Remote: sa.Remote.String(), LocalID: sa.LocalID,
				RemoteID: sa.RemoteID, Proposal: sa.Proposal, NATLocal: sa.NATLocal, NATRemote: sa.NATRemote,
				EstablishedAt: sa.Established, RekeyAt: sa.RekeyAt, LastReceivedAt: sa.LastReceived, Children: []status.ChildSA{}}
			is.Transport, is.TCP, is.PPK = d.tcpState(sa), d.tcpConnection(sa), sa.PPK
			for _, ch := range sa.Children {
				chs := status.ChildSA{Name: ch.Name, SPIIn: hex8(ch.SPIIn), SPIOut: hex8(ch.SPIOut), Mode: ch.Mode.String(),
					Protocol: strings.ToLower(ch.Transforms.Protocol.String()),
					UDPEncap: encap[ch.SPIOut], Proposal: ch.Proposal, LocalTS: tsStrings(ch.LocalTS), RemoteTS: tsStrings(ch.RemoteTS),
					InstalledAt: ch.Created, RekeyAt: ch.RekeyAt, ExpireAt: ch.ExpireAt,
					In: status.Traffic{DropsByReason: map[string]uint64{}}, Out: status.Traffic{DropsByReason: map[string]uint64{}}}
				if inst := d.children[ch.SPIIn]; inst != nil {
					in, _ := d.backend.SAStats(inst.in)
					out, _ := d.backend.SAStats(inst.out)
					chs.In = traffic(in)
					chs.Out = traffic(out)
				}
				is.Children = append(is.Children, chs)
			}
			cs.IKESAs = append(cs.IKESAs, is)
			if !sa.Initiator && sa.State.Authenticated() && (sa.EAPID != "" || len(sa.RemoteVIPs) > 0) {
				u := status.User{Connection: name, Identity: sa.RemoteID, EAPIdentity: sa.EAPID, Remote: sa.Remote.String(),
					NAT: sa.NATRemote, Since: sa.Established, SPIi: hex16(sa.SPIi), SPIr: hex16(sa.SPIr), VirtualIPs: []string{}}
				for _, a := range sa.RemoteVIPs {
					u.VirtualIPs = append(u.VirtualIPs, a.String())
				}
				// The client's bytes: what we received from it and sent to it.
				for _, ch := range is.Children {
					u.BytesIn += ch.In.Bytes
					u.BytesOut += ch.Out.Bytes
				}
				st.Users = append(st.Users, u)
			}
		}
		cs.State, cs.StateReason = connState(c, cs.IKESAs)
		st.Connections = append(st.Connections, cs)
	}
	manual := make([]string, 0, len(d.manual))
	for name := range d.manual {
		manual = append(manual, name)
	}
	sort.Strings(manual)
	for _, name := range manual {
		m := d.manual[name]
		in, _ := d.backend.SAStats(m.in)
		out, _ := d.backend.SAStats(m.out)
		st.Manual = append(st.Manual, status.ManualSA{Name: name, Mode: string(m.cfg.Mode), Proposal: m.cfg.Proposal.String(),
			Local: m.cfg.Local.String(), Remote: m.cfg.Remote.String(), LocalTS: tsStrings(m.cfg.LocalTS), RemoteTS: tsStrings(m.cfg.RemoteTS),
			SPIIn: hex8(m.in.SPI), SPIOut: hex8(m.out.SPI), In: traffic(in), Out: traffic(out)})
	}
	st.Pools = d.poolStatus() // vips.go
	for _, l := range d.L2TPSessions() {
		st.L2TP = append(st.L2TP, status.L2TPSession{Role: l.Role, Peer: l.Peer.String(), User: l.User, Address: l.Address.String(), Since: l.Since})
	}
	st.Normalize()
	return st
}

// connState tells whether a connection does what it is configured to do. An established IKE SA
// alone is not enough: when its Child SA negotiation failed (an ESP proposal mismatch, say) no
// traffic is protected, so the connection is degraded, not up.
func connState(c *config.Connection, sas []status.IKESA) (state, reason string) {
	var established *status.IKESA
	connecting := false
	for i := range sas {
		switch sas[i].State {
		case "established":
			if established == nil || len(sas[i].Children) > len(established.Children) {
				established = &sas[i]
			}
		case "deleting", "dead":
		default:
			connecting = true
		}
	}
	if established == nil {
		if connecting {
			return status.StateConnecting, ""
		}
		return status.StateDown, ""
	}
	installed := map[string]bool{}
	total := 0
	for _, sa := range sas {
		if sa.State != "established" {
			continue
		}
		for _, ch := range sa.Children {
			installed[ch.Name] = true
			total++
		}
	}
	if len(c.Children) > 0 && total == 0 {
		return status.StateDegraded, "the IKE SA is established but has no Child SA: no traffic is protected (see last_failure)"
	}
	for _, ch := range c.Children {
		if ch.StartAction == config.ActionStart && !installed[ch.Name] {
			return status.StateDegraded, fmt.Sprintf("child %s (start_action = start) has no Child SA", ch.Name)
		}
	}
	return status.StateUp, ""
}

// lowerState turns the engine's state names (ESTABLISHED, AUTH_SENT) into the schema's words.
func lowerState(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func traffic(s dataplane.SAStats) status.Traffic {
	return status.Traffic{Bytes: s.Bytes, Packets: s.Packets, Drops: s.Drops.Total(), DropsByReason: dropMap(s.Drops, false)}
}

// dropMap labels drop counters by reason; with all set, reasons that counted nothing are listed too
// (so the set of keys does not depend on traffic).
func dropMap(d dataplane.DropCounts, all bool) map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range d {
		if n > 0 || all {
			m[dataplane.DropReason(i).String()] = n
		}
	}
	return m
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

func hex8(v uint32) string { return fmt.Sprintf("%08x", v) }

// ikeVersionOf is the IKE version of an SA snapshot (the IKEv2 engine leaves it zero).
func ikeVersionOf(sa engine.SAInfo) int {
	if sa.Version == 1 {
		return 1
	}
	return 2
}
