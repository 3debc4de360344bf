package daemon

import (
	"sort"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ts"
)

// Status is a snapshot of everything the daemon runs, for `goipsec status`, VICI and metrics.
type Status struct {
	Connections []ConnStatus      `json:"connections"`
	Manual      []ManualStatus    `json:"manual,omitempty"`
	DataPlane   dataplane.Stats   `json:"dataplane"`
	IKE         engine.Stats      `json:"ike"`
	Policies    []dataplane.SAKey `json:"-"`
	// Certificates are the loaded certificates and the peers' (creds.go).
	Certificates []CertStatus `json:"certificates,omitempty"`
}

// ConnStatus is one configured connection.
type ConnStatus struct {
	Name          string        `json:"name"`
	LocalAddrs    string        `json:"local_addrs"`
	RemoteAddrs   string        `json:"remote_addrs"`
	LocalID       string        `json:"local_id"`
	RemoteID      string        `json:"remote_id"`
	Proposals     string        `json:"proposals"`
	Children      []ChildConf   `json:"children"`
	State         string        `json:"state"` // up, connecting, down
	IKESAs        []IKESAStatus `json:"ike_sas,omitempty"`
	LastFailure   string        `json:"last_failure,omitempty"`
	LastFailureAt time.Time     `json:"last_failure_at,omitzero"`
	File          string        `json:"file"`
	Line          int           `json:"line"`
}

// ChildConf is a configured child.
type ChildConf struct {
	Name         string `json:"name"`
	LocalTS      string `json:"local_ts"`
	RemoteTS     string `json:"remote_ts"`
	Mode         string `json:"mode"`
	ESPProposals string `json:"esp_proposals"`
	StartAction  string `json:"start_action"`
}

// IKESAStatus is one IKE SA.
type IKESAStatus struct {
	SPIi        string        `json:"spi_i"`
	SPIr        string        `json:"spi_r"`
	Initiator   bool          `json:"initiator"`
	State       string        `json:"state"`
	Local       string        `json:"local"`
	Remote      string        `json:"remote"`
	LocalID     string        `json:"local_id"`
	RemoteID    string        `json:"remote_id"`
	Proposal    string        `json:"proposal"`
	NAT         bool          `json:"nat"`
	Established time.Time     `json:"established,omitzero"`
	Children    []ChildStatus `json:"children,omitempty"`
}

// ChildStatus is one Child SA with its traffic counters.
type ChildStatus struct {
	Name        string            `json:"name"`
	SPIIn       uint32            `json:"spi_in"`
	SPIOut      uint32            `json:"spi_out"`
	Mode        string            `json:"mode"`
	Proposal    string            `json:"proposal"`
	Encap       bool              `json:"encap"`
	LocalTS     string            `json:"local_ts"`
	RemoteTS    string            `json:"remote_ts"`
	BytesIn     uint64            `json:"bytes_in"`
	PacketsIn   uint64            `json:"packets_in"`
	BytesOut    uint64            `json:"bytes_out"`
	PacketsOut  uint64            `json:"packets_out"`
	DropsIn     uint64            `json:"drops_in"`
	Installed   time.Time         `json:"installed"`
	RekeyIn     time.Duration     `json:"rekey_in,omitempty"` // time left until the rekey timer fires (approximate)
	DropReasons map[string]uint64 `json:"drop_reasons,omitempty"`
}

// ManualStatus is one manually keyed SA pair.
type ManualStatus struct {
	Name       string `json:"name"`
	Mode       string `json:"mode"`
	Proposal   string `json:"proposal"`
	Local      string `json:"local"`
	Remote     string `json:"remote"`
	LocalTS    string `json:"local_ts"`
	RemoteTS   string `json:"remote_ts"`
	SPIIn      uint32 `json:"spi_in"`
	SPIOut     uint32 `json:"spi_out"`
	BytesIn    uint64 `json:"bytes_in"`
	PacketsIn  uint64 `json:"packets_in"`
	BytesOut   uint64 `json:"bytes_out"`
	PacketsOut uint64 `json:"packets_out"`
	DropsIn    uint64 `json:"drops_in"`
}

func addrList(list []config.Address) string {
	if len(list) == 0 {
		return "%any"
	}
	s := ""
	for i, a := range list {
		if i > 0 {
			s += ","
		}
		s += addrString(a)
	}
	return s
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

func tsConfList(list []config.TrafficSelector) string {
	s := ""
	for i, t := range list {
		if i > 0 {
			s += ","
		}
		s += t.String()
	}
	if s == "" {
		return "dynamic"
	}
	return s
}

// Status returns a snapshot of connections, SAs and counters.
func (d *Daemon) Status() Status {
	var st Status
	st.DataPlane = d.backend.Stats()
	st.Certificates = d.CertStatuses()
	var ikeSAs []engine.SAInfo
	if d.ike != nil {
		ikeSAs = d.ike.SAs()
		st.IKE = d.ike.Stats()
		st.IKE.HandshakeSeconds = nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for name := range d.conns {
		names = append(names, name)
	}
	sort.Strings(names)
	now := time.Now()
	for _, name := range names {
		c := d.conns[name].cfg
		cs := ConnStatus{Name: name, LocalAddrs: addrList(c.LocalAddrs), RemoteAddrs: addrList(c.RemoteAddrs),
			LocalID: c.Local.ID.Text, RemoteID: c.Remote.ID.Text, File: c.File, Line: c.Line, State: "down"}
		for i, p := range c.Proposals {
			if i > 0 {
				cs.Proposals += ","
			}
			cs.Proposals += p.String()
		}
		for _, ch := range c.Children {
			cc := ChildConf{Name: ch.Name, LocalTS: tsConfList(ch.LocalTS), RemoteTS: tsConfList(ch.RemoteTS),
				Mode: string(ch.Mode), StartAction: string(ch.StartAction)}
			for i, p := range ch.ESPProposals {
				if i > 0 {
					cc.ESPProposals += ","
				}
				cc.ESPProposals += p.String()
			}
			cs.Children = append(cs.Children, cc)
		}
		if f, ok := d.lastFailure[name]; ok {
			cs.LastFailure, cs.LastFailureAt = f.err, f.when
		}
		for _, sa := range ikeSAs {
			if sa.Name != name {
				continue
			}
			is := IKESAStatus{SPIi: hex16(sa.SPIi), SPIr: hex16(sa.SPIr), Initiator: sa.Initiator, State: sa.State.String(),
				Local: sa.Local.String(), Remote: sa.Remote.String(), LocalID: sa.LocalID, RemoteID: sa.RemoteID,
				Proposal: sa.Proposal, NAT: sa.NAT, Established: sa.Established}
			if sa.State.String() == "ESTABLISHED" {
				cs.State = "up"
			} else if cs.State == "down" {
				cs.State = "connecting"
			}
			for _, ch := range sa.Children {
				chs := ChildStatus{Name: ch.Name, SPIIn: ch.SPIIn, SPIOut: ch.SPIOut, Mode: ch.Mode.String(), Proposal: ch.Proposal,
					LocalTS: ts.FormatList(ch.LocalTS), RemoteTS: ts.FormatList(ch.RemoteTS), Installed: ch.Created}
				if ch.RekeyTime > 0 {
					chs.RekeyIn = max(0, ch.RekeyTime-now.Sub(ch.Created)).Round(time.Second)
				}
				if inst := d.children[ch.SPIIn]; inst != nil {
					in, _ := d.backend.SAStats(inst.in)
					out, _ := d.backend.SAStats(inst.out)
					chs.BytesIn, chs.PacketsIn, chs.BytesOut, chs.PacketsOut = in.Bytes, in.Packets, out.Bytes, out.Packets
					chs.DropsIn = in.Drops.Total()
					chs.DropReasons = dropMap(in.Drops)
				}
				for _, info := range d.backend.SAs() {
					if info.Key.SPI == ch.SPIOut && info.Params.Direction == dataplane.Out {
						chs.Encap = info.Params.Encap
					}
				}
				is.Children = append(is.Children, chs)
			}
			cs.IKESAs = append(cs.IKESAs, is)
		}
		st.Connections = append(st.Connections, cs)
	}
	var manual []string
	for name := range d.manual {
		manual = append(manual, name)
	}
	sort.Strings(manual)
	for _, name := range manual {
		m := d.manual[name]
		in, _ := d.backend.SAStats(m.in)
		out, _ := d.backend.SAStats(m.out)
		st.Manual = append(st.Manual, ManualStatus{Name: name, Mode: string(m.cfg.Mode), Proposal: m.cfg.Proposal.String(),
			Local: m.cfg.Local.String(), Remote: m.cfg.Remote.String(), LocalTS: ts.FormatList(m.cfg.LocalTS), RemoteTS: ts.FormatList(m.cfg.RemoteTS),
			SPIIn: m.in.SPI, SPIOut: m.out.SPI, BytesIn: in.Bytes, PacketsIn: in.Packets, BytesOut: out.Bytes, PacketsOut: out.Packets,
			DropsIn: in.Drops.Total()})
	}
	return st
}

func dropMap(d dataplane.DropCounts) map[string]uint64 {
	var m map[string]uint64
	for i, n := range d {
		if n > 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[dataplane.DropReason(i).String()] = n
		}
	}
	return m
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}
