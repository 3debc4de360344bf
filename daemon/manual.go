package daemon

import (
	"fmt"
	"reflect"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/proposal"
)

// manualState is a manually keyed SA pair as installed.
type manualState struct {
	cfg    *config.ManualSA
	out    dataplane.SAKey
	in     dataplane.SAKey
	policy dataplane.PolicyID
}

// manualParams turns a manual SA from the configuration into data-plane parameters.
func manualParams(m *config.ManualSA, mtu int) (out, in dataplane.SAParams, pol dataplane.PolicyParams, err error) {
	base := dataplane.SAParams{Name: m.Name, Mode: dataplane.Tunnel, Encap: m.Encap, ESN: m.ESN,
		ReplayWindow: int(m.ReplayWindow), Local: m.LocalTS, Remote: m.RemoteTS, ClampMSS: clampMSS(m.MSSClamp)}
	if m.Mode == config.ModeTransport {
		base.Mode = dataplane.Transport
	}
	switch m.Protocol {
	case proposal.ProtoESP:
		base.Protocol = dataplane.ESP
	case proposal.ProtoAH:
		base.Protocol = dataplane.AH
	default:
		return out, in, pol, fmt.Errorf("%s:%d: manual.%s: protocol %d is neither ESP nor AH", m.File, m.Line, m.Name, m.Protocol)
	}
	for _, t := range m.Proposal.Transforms {
		switch t.Type {
		case proposal.TypeEncryption:
			base.Encryption = esp.Encryption(t.ID)
		case proposal.TypeIntegrity:
			base.Integrity = esp.Integrity(t.ID)
		}
	}
	switch {
	case m.TFCPadding.MTU:
		base.TFCPadding = mtu
	default:
		base.TFCPadding = int(m.TFCPadding.Bytes)
	}
	out, in = base, base
	out.Direction, out.SPI, out.Src, out.Dst = dataplane.Out, m.Outbound.SPI, m.Local, m.Remote
	out.SrcPort, out.DstPort = m.LocalPort, m.RemotePort
	out.EncKey, out.IntegKey = m.Outbound.EncKey, m.Outbound.IntegKey
	in.Direction, in.SPI, in.Src, in.Dst = dataplane.In, m.Inbound.SPI, m.Remote, m.Local
	in.SrcPort, in.DstPort = m.RemotePort, m.LocalPort
	in.EncKey, in.IntegKey = m.Inbound.EncKey, m.Inbound.IntegKey
	pol = dataplane.PolicyParams{Name: m.Name, Local: m.LocalTS, Remote: m.RemoteTS, Action: dataplane.Protect,
		SA: dataplane.SAKey{Protocol: base.Protocol, SPI: out.SPI, Dst: out.Dst}, Route: true, Mode: base.Mode}
	return out, in, pol, nil
}

// installManualLocked installs one manual SA pair and its policy; on failure nothing stays behind.
func (d *Daemon) installManualLocked(m *config.ManualSA) error {
	out, in, pol, err := manualParams(m, d.mtu)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s:%d: manual.%s", m.File, m.Line, m.Name)
	if err := d.backend.InstallSA(out); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	outKey := dataplane.SAKey{Protocol: out.Protocol, SPI: out.SPI, Dst: out.Dst}
	if err := d.backend.InstallSA(in); err != nil {
		d.backend.DeleteSA(outKey)
		return fmt.Errorf("%s: %w", where, err)
	}
	inKey := dataplane.SAKey{Protocol: in.Protocol, SPI: in.SPI, Dst: in.Dst}
	id, err := d.backend.InstallPolicy(pol)
	if err != nil {
		d.backend.DeleteSA(outKey)
		d.backend.DeleteSA(inKey)
		return fmt.Errorf("%s: %w", where, err)
	}
	d.manual[m.Name] = &manualState{cfg: m, out: outKey, in: inKey, policy: id}
	d.log.Info("manual SA up", "name", m.Name, "mode", string(m.Mode), "proposal", m.Proposal.String(),
		"spi_out", fmt.Sprintf("0x%08x", out.SPI), "spi_in", fmt.Sprintf("0x%08x", in.SPI),
		"local_ts", tsList(m.LocalTS), "remote_ts", tsList(m.RemoteTS))
	return nil
}

func (d *Daemon) removeManualLocked(name string) error {
	st, ok := d.manual[name]
	if !ok {
		return nil
	}
	delete(d.manual, name)
	err1 := d.backend.DeletePolicy(st.policy)
	err2 := d.backend.DeleteSA(st.out)
	err3 := d.backend.DeleteSA(st.in)
	d.log.Info("manual SA removed", "name", name)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return err
		}
	}
	return nil
}

// sameManual reports whether two manual SA definitions are equal apart from where they were
// written, so that a reload leaves an unchanged SA (and its counters and sequence numbers) alone.
func sameManual(a, b *config.ManualSA) bool {
	x, y := *a, *b
	x.File, x.Line, y.File, y.Line = "", 0, "", 0
	return reflect.DeepEqual(x, y)
}
