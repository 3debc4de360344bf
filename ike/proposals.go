package ike

import (
	"fmt"
	"slices"
	"strings"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// toWire converts configured proposals to SA payload proposals, numbered from 1, each carrying spi.
// Every handshake converts the chosen proposal for its answer, so the transforms and their Key
// Length attributes come from one allocation each per proposal.
func toWire(list []proposal.Proposal, spi []byte) []wire.Proposal {
	out := make([]wire.Proposal, 0, len(list))
	for i, p := range list {
		wp := wire.Proposal{Number: uint8(i + 1), Protocol: wire.ProtocolID(p.Protocol), SPI: spi,
			Transforms: make([]wire.Transform, 0, len(p.Transforms))}
		keyLengths := 0
		for _, t := range p.Transforms {
			if t.KeyLength != 0 {
				keyLengths++
			}
		}
		attrs := make([]wire.Attribute, 0, keyLengths)
		for _, t := range p.Transforms {
			wt := wire.Transform{Type: wire.TransformType(t.Type), ID: t.ID}
			if t.KeyLength != 0 {
				attrs = append(attrs, wire.KeyLengthAttribute(t.KeyLength))
				wt.Attributes = attrs[len(attrs)-1 : len(attrs) : len(attrs)]
			}
			wp.Transforms = append(wp.Transforms, wt)
		}
		out = append(out, wp)
	}
	return out
}

// fromWire converts a received proposal; transforms with attributes other than Key Length are
// kept out (RFC 7296 §3.3.6: unknown attributes make the transform unusable).
func fromWire(wp wire.Proposal) proposal.Proposal {
	p := proposal.Proposal{Protocol: proposal.Protocol(wp.Protocol), Transforms: make([]proposal.Transform, 0, len(wp.Transforms))}
	for _, wt := range wp.Transforms {
		t := proposal.Transform{Type: proposal.TransformType(wt.Type), ID: wt.ID}
		usable := true
		for _, a := range wt.Attributes {
			if a.Type != 14 { // Key Length
				usable = false
			}
		}
		if !usable {
			continue
		}
		if kl, ok := wt.KeyLength(); ok {
			t.KeyLength = kl
		}
		p.Transforms = append(p.Transforms, t)
	}
	return p
}

// withoutKE removes key exchange transforms: Child SA proposals in IKE_AUTH carry none (RFC 7296
// §1.2), the keys come from the IKE SA's exchange.
func withoutKE(list []proposal.Proposal) []proposal.Proposal {
	out := make([]proposal.Proposal, 0, len(list))
	for _, p := range list {
		if !slices.ContainsFunc(p.Transforms, func(t proposal.Transform) bool { return t.Type.IsKeyExchange() }) {
			out = append(out, p) // nothing to remove: share the configured transforms
			continue
		}
		q := proposal.Proposal{Protocol: p.Protocol}
		for _, t := range p.Transforms {
			if !t.Type.IsKeyExchange() {
				q.Transforms = append(q.Transforms, t)
			}
		}
		out = append(out, q)
	}
	return out
}

// selected is the outcome of proposal selection: one transform of each type.
type selected struct {
	proposal.Proposal
	number uint8
	spi    []byte
}

func (s selected) get(t proposal.TransformType) (proposal.Transform, bool) {
	for _, tr := range s.Transforms {
		if tr.Type == t {
			return tr, true
		}
	}
	return proposal.Transform{}, false
}

// selectProposal picks, in our order of preference, the first of our proposals that one of the
// peer's proposals matches, and for each transform type the first of our transforms the peer also
// offers (RFC 7296 §2.7). Every type present on either side must be matched; an INTEG of NONE or an
// ESN of "no" counts as present.
func selectProposal(ours []proposal.Proposal, theirs []wire.Proposal, proto proposal.Protocol) (selected, bool) {
	for _, o := range ours {
		for _, wp := range theirs {
			if proposal.Protocol(wp.Protocol) != proto {
				continue
			}
			t := fromWire(wp)
			if s, ok := matchProposal(o, t); ok {
				return selected{Proposal: s, number: wp.Number, spi: wp.SPI}, true
			}
		}
	}
	return selected{}, false
}

// matchProposal matches one of our proposals against one of the peer's. Every handshake runs it,
// so it allocates only when the outcome differs from our proposal as configured.
func matchProposal(ours, theirs proposal.Proposal) (proposal.Proposal, bool) {
	var types [4]uint64 // the transform types present on either side, a bit per type
	for _, t := range ours.Transforms {
		types[t.Type/64] |= 1 << (t.Type % 64)
	}
	for _, t := range theirs.Transforms {
		types[t.Type/64] |= 1 << (t.Type % 64)
	}
	var buf [16]proposal.Transform
	chosen := buf[:0]
	for _, typ := range transformOrder {
		if types[typ/64]&(1<<(typ%64)) == 0 {
			continue
		}
		found := false
		for _, o := range ours.Transforms {
			if o.Type != typ {
				continue
			}
			for _, t := range theirs.Transforms {
				if t == o {
					chosen = append(chosen, o)
					found = true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			// A missing INTEG is the same as INTEG NONE (RFC 7296 §3.3.3 for AEAD), a missing ESN
			// the same as "no ESN" only for AH/ESP; otherwise the type cannot be matched.
			if typ == proposal.TypeIntegrity && acceptsNone(ours, theirs, typ, proposal.IntegNone) {
				continue
			}
			// An additional key exchange that one side leaves out or makes optional with NONE is
			// NONE (RFC 9370 §2.2.1); the answer names it when the peer offered the type.
			if typ >= proposal.TypeAdditionalKE1 && typ <= proposal.TypeAdditionalKE7 && acceptsNone(ours, theirs, typ, proposal.KENone) {
				if theirs.Has(typ) {
					chosen = append(chosen, proposal.Transform{Type: typ, ID: proposal.KENone})
				}
				continue
			}
			return proposal.Proposal{}, false
		}
	}
	if slices.Equal(chosen, ours.Transforms) {
		// The usual case: our proposal is chosen as configured. Share its transforms (nobody
		// changes a proposal's transforms in place) rather than keep a copy per SA.
		return ours, true
	}
	out := proposal.Proposal{Protocol: ours.Protocol}
	if len(chosen) > 0 {
		out.Transforms = slices.Clone(chosen)
	}
	return out, true
}

// acceptsNone reports whether both proposals either leave out transform type typ or offer the
// given NONE value for it.
func acceptsNone(a, b proposal.Proposal, typ proposal.TransformType, none uint16) bool {
	ok := func(p proposal.Proposal) bool {
		present := false
		for _, t := range p.Transforms {
			if t.Type == typ {
				if t.ID == none {
					return true
				}
				present = true
			}
		}
		return !present
	}
	return ok(a) && ok(b)
}

var transformOrder = []proposal.TransformType{
	proposal.TypeEncryption, proposal.TypeIntegrity, proposal.TypePRF, proposal.TypeKeyExchange,
	6, 7, 8, 9, 10, 11, 12, proposal.TypeESN,
}

// selectChildProposal is selectProposal for Child SA proposals, which may mix ESP and AH: RFC
// 7296 §2.7 ("Each proposal contains one protocol. If a proposal is accepted, the SA response MUST
// contain the same protocol"), so AH and ESP proposals are alternatives, never a bundle. Our
// order of preference decides across protocols too.
func selectChildProposal(ours []proposal.Proposal, theirs []wire.Proposal) (selected, bool) {
	for _, o := range ours {
		if s, ok := selectProposal([]proposal.Proposal{o}, theirs, o.Protocol); ok {
			return s, true
		}
	}
	return selected{}, false
}

// checkChosenChild is checkChosen for Child SA proposals: the responder's choice must be one of
// our proposals of its protocol.
func checkChosenChild(ours []proposal.Proposal, sa *wire.SA) (selected, error) {
	if sa == nil || len(sa.Proposals) != 1 {
		return selected{}, fmt.Errorf("response must carry exactly one proposal")
	}
	proto := proposal.Protocol(sa.Proposals[0].Protocol)
	same := ofProtocol(ours, proto)
	if len(same) == 0 {
		return selected{}, fmt.Errorf("chosen proposal is for %s, we offered only %s", proto, protocolNames(ours))
	}
	return checkChosen(same, sa, proto)
}

// ofProtocol returns the proposals of one protocol.
func ofProtocol(list []proposal.Proposal, proto proposal.Protocol) []proposal.Proposal {
	var out []proposal.Proposal
	for _, p := range list {
		if p.Protocol == proto {
			out = append(out, p)
		}
	}
	return out
}

// protocolNames names the protocols of a list of proposals for messages: "ESP", "AH" or
// "ESP or AH", in order of first appearance.
func protocolNames(list []proposal.Proposal) string {
	var names []string
	seen := map[proposal.Protocol]bool{}
	for _, p := range list {
		if !seen[p.Protocol] {
			seen[p.Protocol] = true
			names = append(names, p.Protocol.String())
		}
	}
	if len(names) == 0 {
		return "no"
	}
	return strings.Join(names, " or ")
}

// formatChildList formats Child SA proposals in strongSwan keyword form, AH ones marked "AH:" so
// that "sha256-noesn" is not read as ESP.
func formatChildList(list []proposal.Proposal) string {
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = childString(p)
	}
	return strings.Join(parts, ", ")
}

func childString(p proposal.Proposal) string {
	if p.Protocol == proposal.ProtoAH {
		return "AH:" + p.String()
	}
	return p.String()
}

// wireProtocolNames names the protocols of received proposals, as protocolNames does.
func wireProtocolNames(list []wire.Proposal) string {
	ps := make([]proposal.Proposal, len(list))
	for i, wp := range list {
		ps[i] = proposal.Proposal{Protocol: proposal.Protocol(wp.Protocol)}
	}
	return protocolNames(ps)
}

// describeChildWire formats a peer's Child SA proposals for error messages, AH ones marked.
func describeChildWire(list []wire.Proposal) string {
	if len(list) == 0 {
		return "(none)"
	}
	ps := make([]proposal.Proposal, len(list))
	for i, wp := range list {
		ps[i] = fromWire(wp)
	}
	return formatChildList(ps)
}

// checkChosen verifies that the proposal a responder chose is one of ours and has exactly one
// transform of each type (RFC 7296 §3.3: a response carries one proposal).
func checkChosen(ours []proposal.Proposal, sa *wire.SA, proto proposal.Protocol) (selected, error) {
	if sa == nil || len(sa.Proposals) != 1 {
		return selected{}, fmt.Errorf("response must carry exactly one proposal")
	}
	wp := sa.Proposals[0]
	got := fromWire(wp)
	if got.Protocol != proto {
		return selected{}, fmt.Errorf("chosen proposal is for %s, not %s", got.Protocol, proto)
	}
	seen := map[proposal.TransformType]bool{}
	for _, t := range got.Transforms {
		if seen[t.Type] {
			return selected{}, fmt.Errorf("chosen proposal has two %s transforms", t.Type)
		}
		seen[t.Type] = true
	}
	for _, o := range ours {
		if m, ok := matchProposal(o, got); ok && len(m.Transforms) == len(got.Transforms) {
			return selected{Proposal: got, number: wp.Number, spi: wp.SPI}, nil
		}
	}
	return selected{}, fmt.Errorf("chosen proposal %s was not offered (offered %s)", got, proposal.FormatList(ours))
}

// describeWire formats a peer's proposals in strongSwan keyword form for error messages.
func describeWire(list []wire.Proposal) string {
	parts := make([]string, 0, len(list))
	for _, wp := range list {
		parts = append(parts, fromWire(wp).String())
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}
