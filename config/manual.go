package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// ManualSA is a pair of manually keyed SAs (manual.<name>): no IKE, fixed SPIs and keys, like
// "ip xfrm state" or setkey.
type ManualSA struct {
	Name string
	File string
	Line int

	Local  netip.Addr // outer source of outbound packets, destination of inbound ones
	Remote netip.Addr
	Mode   Mode
	// Protocol is proposal.ProtoESP or proposal.ProtoAH.
	Protocol proposal.Protocol
	// Encap is ESP in UDP (RFC 3948); the ports are 0 without it.
	Encap      bool
	LocalPort  uint16
	RemotePort uint16
	// LocalTS and RemoteTS are resolved: "dynamic" became the outer address.
	LocalTS  []ts.Selector
	RemoteTS []ts.Selector
	// Proposal has exactly one transform of each type it uses, no key exchange, and exactly one
	// ESN transform matching ESN.
	Proposal     proposal.Proposal
	ESN          bool
	ReplayWindow uint32
	TFCPadding   TFCPadding
	MSSClamp     MSSClamp
	Outbound     ManualKeys
	Inbound      ManualKeys
}

// ManualKeys are the SPI and keys of one direction. EncKey includes the salt for AES-GCM and
// ChaCha20-Poly1305 (RFC 4106 §8.1, RFC 7634 §2); it is empty for NULL encryption and AH. IntegKey
// is empty for AEAD algorithms.
type ManualKeys struct {
	SPI      uint32
	EncKey   []byte
	IntegKey []byte
}

// minSPI is the smallest SPI an SA may use: RFC 4303 §2.1 reserves 1-255, and 0 means "no SA".
const minSPI = 256

func (l *loader) manual(sec *Section) []*ManualSA {
	if sec == nil {
		return nil
	}
	l.check(sec, "manual")
	var out []*ManualSA
	// used maps (SPI, destination) to the spi setting that took it: an inbound packet is found by
	// exactly that pair, so two SAs sharing it could not be told apart.
	type spiDest struct {
		spi  uint32
		dest netip.Addr
	}
	used := map[spiDest]*Setting{}
	for _, s := range sectionsOf(sec, "manual", man) {
		sa := l.manualSA(s)
		if sa == nil {
			continue
		}
		out = append(out, sa)
		for _, dir := range []struct {
			keys ManualKeys
			name string
			dest netip.Addr
		}{{sa.Outbound, "outbound", sa.Remote}, {sa.Inbound, "inbound", sa.Local}} {
			kv := s.Section(dir.name).Setting("spi")
			key := spiDest{dir.keys.SPI, dir.dest}
			if first, ok := used[key]; ok {
				l.errorAt(kv.File, kv.Line, "%s: SPI 0x%08x towards %s is already used by %s (%s:%d)", kv.Path, key.spi, key.dest, first.Path, first.File, first.Line)
				continue
			}
			used[key] = kv
		}
	}
	return out
}

// manualSA loads one manual SA pair; it returns nil when errors leave it incomplete (they are
// recorded).
func (l *loader) manualSA(sec *Section) *ManualSA {
	before := len(l.errs)
	l.check(sec, man)
	sa := &ManualSA{Name: sec.Name, File: sec.File, Line: sec.Line}

	sa.Local = l.manualAddr(sec, "local_addrs")
	sa.Remote = l.manualAddr(sec, "remote_addrs")
	if sa.Local.IsValid() && sa.Remote.IsValid() {
		if sa.Local.Is4() != sa.Remote.Is4() {
			kv := sec.Setting("remote_addrs")
			l.errorAt(kv.File, kv.Line, "%s: %s is not of the same address family as local_addrs (%s)", kv.Path, sa.Remote, sa.Local)
		} else if sa.Local == sa.Remote {
			kv := sec.Setting("remote_addrs")
			l.errorAt(kv.File, kv.Line, "%s: %s is also the local address", kv.Path, sa.Remote)
		}
	}

	sa.Mode = parsed(l, sec, man, "mode", parseMode)
	sa.Protocol = parsed(l, sec, man, "protocol", func(s string) (proposal.Protocol, error) {
		switch s {
		case "esp":
			return proposal.ProtoESP, nil
		case "ah":
			return proposal.ProtoAH, nil
		}
		return 0, fmt.Errorf("invalid value %q (expected esp or ah)", s)
	})
	sa.Encap = l.boolean(sec, man, "encap")
	if sa.Encap {
		if sa.Protocol == proposal.ProtoAH {
			kv := sec.Setting("encap")
			l.errorAt(kv.File, kv.Line, "%s: AH cannot be encapsulated in UDP (RFC 3948 covers ESP only)", kv.Path)
		}
		sa.LocalPort = l.port(sec, man, "local_port")
		sa.RemotePort = l.port(sec, man, "remote_port")
	} else {
		for _, key := range []string{"local_port", "remote_port"} {
			if kv := explicit(sec, key); kv != nil {
				l.errorAt(kv.File, kv.Line, "%s is only used with encap = yes", kv.Path)
			}
		}
	}

	sa.LocalTS = l.manualSelectors(sec, "local_ts", sa.Local, sa.Mode)
	sa.RemoteTS = l.manualSelectors(sec, "remote_ts", sa.Remote, sa.Mode)
	sa.ReplayWindow = uint32(l.number(sec, man, "replay_window", MaxReplayWindow))
	sa.TFCPadding = parsed(l, sec, man, "tfc_padding", parseTFCPadding)
	sa.MSSClamp = l.mssClamp(sec, sa.Mode)
	if kv := explicit(sec, "tfc_padding"); kv != nil && sa.Protocol == proposal.ProtoAH && sa.TFCPadding != (TFCPadding{}) {
		l.errorAt(kv.File, kv.Line, "%s: TFC padding needs protocol = esp", kv.Path)
	}

	p, esn, ok := l.manualProposal(sec, sa.Protocol)
	sa.Proposal, sa.ESN = p, esn
	for _, dir := range []string{"outbound", "inbound"} {
		keys := l.manualKeys(sec, dir, p, ok)
		if dir == "outbound" {
			sa.Outbound = keys
		} else {
			sa.Inbound = keys
		}
	}
	if len(l.errs) != before {
		return nil
	}
	return sa
}

// manualAddr reads a required single outer address.
func (l *loader) manualAddr(sec *Section, key string) netip.Addr {
	kv := explicit(sec, key)
	if kv == nil {
		l.errorAt(sec.File, sec.Line, "%s: %s is required (one IP address)", sec.Path, key)
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(kv.Value)
	if err != nil || a.Zone() != "" || a.IsUnspecified() {
		l.valueError(kv, fmt.Errorf("expected exactly one IP address, got %q", kv.Value))
		return netip.Addr{}
	}
	return a.Unmap()
}

// manualSelectors reads local_ts or remote_ts and replaces "dynamic" by the outer address.
func (l *loader) manualSelectors(sec *Section, key string, outer netip.Addr, mode Mode) []ts.Selector {
	list := parsed(l, sec, man, key, parseSelectors)
	var out []ts.Selector
	for _, t := range list {
		sel := t.Selector
		if t.Dynamic {
			if !outer.IsValid() {
				continue // the address error is already reported
			}
			host := ts.Host(outer)
			host.Protocol, host.StartPort, host.EndPort = sel.Protocol, sel.StartPort, sel.EndPort
			sel = host
		}
		if mode == ModeTransport && outer.IsValid() && sel.Start.Is4() != outer.Is4() {
			kv := sec.Setting(key)
			l.errorAt(kv.File, kv.Line, "%s: %s is not of the address family of the outer address %s, which transport mode requires", kv.Path, sel, outer)
			continue
		}
		out = append(out, sel)
	}
	return out
}

// manualProposal parses the one proposal of a manual SA and settles ESN. ok is false when the
// proposal is unusable (the error is recorded), so that key checks are skipped.
func (l *loader) manualProposal(sec *Section, proto proposal.Protocol) (p proposal.Proposal, esn bool, ok bool) {
	kv := explicit(sec, "proposal")
	if kv == nil {
		l.errorAt(sec.File, sec.Line, "%s: proposal is required (e.g. proposal = aes256gcm16)", sec.Path)
		return p, false, false
	}
	parse := proposal.ParseESP
	if proto == proposal.ProtoAH {
		parse = proposal.ParseAH
	}
	list, err := parse(kv.Value)
	if err != nil {
		l.valueError(kv, err)
		return p, false, false
	}
	if len(list) != 1 {
		l.valueError(kv, fmt.Errorf("a manual SA takes exactly one proposal, got %d (%s)", len(list), proposal.FormatList(list)))
		return p, false, false
	}
	p = list[0]
	for _, t := range []proposal.TransformType{proposal.TypeEncryption, proposal.TypeIntegrity} {
		if algs := p.Of(t); len(algs) > 1 {
			names := make([]string, len(algs))
			for i, a := range algs {
				names[i] = a.String()
			}
			l.valueError(kv, fmt.Errorf("a manual SA needs exactly one %s algorithm, got %d (%s)", kindName(t), len(algs), strings.Join(names, ", ")))
			return p, false, false
		}
	}
	for _, t := range p.Transforms {
		if t.Type.IsKeyExchange() {
			l.valueError(kv, fmt.Errorf("a manual SA has no key exchange; remove %q", t.String()))
			return p, false, false
		}
	}

	// ESN may come from the proposal ("esn"/"noesn") or from the esn key, but not contradict.
	inProposal, explicitESN := false, false
	for _, word := range strings.Split(kv.Value, "-") {
		switch strings.TrimSpace(word) {
		case "esn":
			if explicitESN && !inProposal {
				l.valueError(kv, fmt.Errorf("choose one of esn and noesn for a manual SA"))
				return p, false, false
			}
			inProposal, explicitESN = true, true
		case "noesn":
			if explicitESN && inProposal {
				l.valueError(kv, fmt.Errorf("choose one of esn and noesn for a manual SA"))
				return p, false, false
			}
			explicitESN = true
		}
	}
	esn = l.boolean(sec, man, "esn")
	if esnKV := explicit(sec, "esn"); esnKV != nil && explicitESN && esn != inProposal {
		l.valueError(esnKV, fmt.Errorf("esn = %s contradicts the proposal %q", esnKV.Value, kv.Value))
	}
	if explicitESN {
		esn = inProposal
	}
	// Keep exactly the chosen ESN transform, so the proposal describes the SA.
	esnID := proposal.ESNNo
	if esn {
		esnID = proposal.ESNYes
	}
	var kept []proposal.Transform
	for _, t := range p.Transforms {
		if t.Type != proposal.TypeESN {
			kept = append(kept, t)
		}
	}
	p.Transforms = append(kept, proposal.Transform{Type: proposal.TypeESN, ID: esnID})
	return p, esn, true
}

func kindName(t proposal.TransformType) string {
	if t == proposal.TypeEncryption {
		return "encryption"
	}
	return "integrity"
}

// manualKeys loads the outbound or inbound subsection and checks key lengths against the
// proposal (when it is usable).
func (l *loader) manualKeys(saSec *Section, dir string, p proposal.Proposal, proposalOK bool) ManualKeys {
	var keys ManualKeys
	sec := saSec.Section(dir)
	if sec == nil {
		l.errorAt(saSec.File, saSec.Line, "%s: the %s section is required (with spi and keys)", saSec.Path, dir)
		return keys
	}
	pattern := man + "." + dir
	l.check(sec, pattern)
	if kv := explicit(sec, "spi"); kv == nil {
		l.errorAt(sec.File, sec.Line, "%s: spi is required", sec.Path)
	} else if spi, err := parseUint(kv.Value, math.MaxUint32); err != nil {
		l.valueError(kv, err)
	} else if spi < minSPI {
		l.valueError(kv, fmt.Errorf("SPI %d is reserved (RFC 4303 §2.1 reserves 1-255, 0 is invalid); use 256 or more", spi))
	} else {
		keys.SPI = uint32(spi)
	}
	keys.EncKey = l.manualKey(sec, "enc_key", proposal.TypeEncryption, p, proposalOK)
	keys.IntegKey = l.manualKey(sec, "integ_key", proposal.TypeIntegrity, p, proposalOK)
	return keys
}

// manualKey reads enc_key or integ_key and checks that the proposal needs it and that its length
// is what the algorithm takes.
func (l *loader) manualKey(sec *Section, key string, typ proposal.TransformType, p proposal.Proposal, proposalOK bool) []byte {
	kv := explicit(sec, key)
	var b []byte
	if kv != nil {
		var err error
		if b, err = parseHexKey(kv.Value); err != nil {
			l.valueError(kv, err)
			return nil
		}
	}
	if !proposalOK {
		return b
	}
	algs := p.Of(typ)
	need := 0
	if len(algs) == 1 {
		n, ok := proposal.KeyMaterialBytes(algs[0])
		if !ok {
			l.errorAt(sec.File, sec.Line, "%s: %s has no known key size", sec.Path, algs[0])
			return nil
		}
		need = n
	}
	switch {
	case need == 0 && kv != nil:
		why := "the proposal has no " + kindName(typ) + " algorithm"
		if len(algs) == 1 {
			why = algs[0].String() + " takes no key"
		} else if typ == proposal.TypeIntegrity && len(p.Of(proposal.TypeEncryption)) == 1 {
			why = p.Of(proposal.TypeEncryption)[0].String() + " is an AEAD algorithm and protects integrity itself"
		}
		l.valueError(kv, fmt.Errorf("not used: %s; remove it", why))
		return nil
	case need > 0 && kv == nil:
		l.errorAt(sec.File, sec.Line, "%s: %s is required for %s (%d bytes)", sec.Path, key, algs[0], need)
		return nil
	case need > 0 && len(b) != need:
		l.valueError(kv, fmt.Errorf("%s needs %s, got %d bytes", algs[0], describeKeyBytes(algs[0], need), len(b)))
		return nil
	}
	return b
}

// describeKeyBytes explains an expected key length, naming the salt where there is one.
func describeKeyBytes(t proposal.Transform, n int) string {
	if salt := proposal.SaltBytes(t); salt != 0 {
		return fmt.Sprintf("%d bytes (a %d-byte key and a %d-byte salt)", n, n-salt, salt)
	}
	return fmt.Sprintf("%d bytes", n)
}
