package ike

import (
	"fmt"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// childRequest is a Child SA an initiator has asked for and not yet got.
type childRequest struct {
	cfg               *ChildConfig
	spi               uint32 // our inbound SPI
	localTS, remoteTS []ts.Selector
	proposals         []proposal.Proposal
	ke                suite.KeyExchange // PFS in CREATE_CHILD_SA
	rekey             *ChildSA          // the Child SA this one replaces
}

func tsToWire(list []ts.Selector) []wire.TrafficSelector {
	out := make([]wire.TrafficSelector, 0, len(list))
	for _, s := range list {
		t := wire.TSIPv4AddrRange
		if s.Is6() {
			t = wire.TSIPv6AddrRange
		}
		out = append(out, wire.TrafficSelector{TSType: t, IPProtocol: s.Protocol, StartPort: s.StartPort, EndPort: s.EndPort, Start: s.Start, End: s.End})
	}
	return out
}

// tsFromWire converts received selectors; types other than address ranges are ignored (RFC 7296
// §3.13.1: a responder may ignore selector types it does not understand).
func tsFromWire(list []wire.TrafficSelector) []ts.Selector {
	out := make([]ts.Selector, 0, len(list))
	for _, w := range list {
		if w.TSType != wire.TSIPv4AddrRange && w.TSType != wire.TSIPv6AddrRange {
			continue
		}
		s := ts.Selector{Protocol: w.IPProtocol, StartPort: w.StartPort, EndPort: w.EndPort, Start: w.Start.Unmap(), End: w.End.Unmap()}
		if s.Valid() {
			out = append(out, s)
		}
	}
	return out
}

// newChildRequest prepares a Child SA request: SA (with our new inbound SPI), [KE], TSi, TSr and
// USE_TRANSPORT_MODE when asked for. withKE adds a key exchange for PFS if the proposals name one.
func (sa *SA) newChildRequest(cfg *ChildConfig, withKE bool) (*childRequest, []wire.Payload, error) {
	spi, err := sa.deps.AllocSPI()
	if err != nil {
		return nil, nil, err
	}
	req := &childRequest{cfg: cfg, spi: spi,
		localTS:  cfg.localTS(sa.Local.Addr()),
		remoteTS: cfg.remoteTS(sa.Remote.Addr()),
	}
	if len(req.localTS) == 0 || len(req.remoteTS) == 0 {
		return nil, nil, fmt.Errorf("child %s has no traffic selectors", cfg.Name)
	}
	props := cfg.Proposals
	if !withKE {
		props = withoutKE(props)
	}
	req.proposals = props
	ps := []wire.Payload{&wire.SA{Proposals: toWire(props, spiBytes(spi))}}
	if withKE && len(props) > 0 {
		if kes := props[0].Of(proposal.TypeKeyExchange); len(kes) > 0 && kes[0].ID != proposal.KENone {
			ke, err := suite.NewKeyExchange(kes[0].ID, sa.deps.Rand)
			if err != nil {
				return nil, nil, err
			}
			req.ke = ke
			ps = append(ps, &wire.KE{Group: kes[0].ID, Data: ke.PublicValue()})
		}
	}
	ps = append(ps, &wire.TSi{Selectors: tsToWire(req.localTS)}, &wire.TSr{Selectors: tsToWire(req.remoteTS)})
	if cfg.Mode == Transport {
		ps = append(ps, &wire.Notify{NotifyType: wire.UseTransportMode})
	}
	return req, ps, nil
}

// completeChild processes the responder's answer to a child request.
func (sa *SA) completeChild(req *childRequest, resp []wire.Payload, ni, nr []byte) (*ChildSA, error) {
	if n := firstError(resp); n != nil {
		switch n.NotifyType {
		case wire.NoProposalChosen:
			return nil, errorf(0, "child %s: peer accepted none of our ESP proposals: we offered %s", req.cfg.Name, proposal.FormatList(req.proposals))
		case wire.TSUnacceptable:
			return nil, errorf(0, "child %s: peer refused our traffic selectors: we proposed local %s, remote %s", req.cfg.Name, ts.FormatList(req.localTS), ts.FormatList(req.remoteTS))
		}
		return nil, errorf(0, "child %s: peer refused with %s", req.cfg.Name, n.NotifyType)
	}
	saPayload := find[*wire.SA](resp)
	tsi, tsr := find[*wire.TSi](resp), find[*wire.TSr](resp)
	if saPayload == nil || tsi == nil || tsr == nil {
		return nil, errorf(0, "child %s: response lacks SA, TSi or TSr", req.cfg.Name)
	}
	chosen, err := checkChosen(req.proposals, saPayload, proposal.ProtoESP)
	if err != nil {
		return nil, errorf(0, "child %s: %v", req.cfg.Name, err)
	}
	peerSPI, ok := spiFromBytes(chosen.spi)
	if !ok {
		return nil, errorf(0, "child %s: responder SPI has %d bytes", req.cfg.Name, len(chosen.spi))
	}
	local, remote := tsFromWire(tsi.Selectors), tsFromWire(tsr.Selectors)
	if !allInside(local, req.localTS) || !allInside(remote, req.remoteTS) || len(local) == 0 || len(remote) == 0 {
		return nil, errorf(0, "child %s: responder's selectors local %s, remote %s are not inside what we proposed (local %s, remote %s)",
			req.cfg.Name, ts.FormatList(local), ts.FormatList(remote), ts.FormatList(req.localTS), ts.FormatList(req.remoteTS))
	}
	mode := Tunnel
	if findNotify(resp, wire.UseTransportMode) != nil {
		mode = Transport
	}
	if mode != req.cfg.Mode {
		return nil, errorf(0, "child %s: we asked for %s mode, the peer answered %s mode", req.cfg.Name, req.cfg.Mode, mode)
	}
	var secret []byte
	if req.ke != nil {
		ke := find[*wire.KE](resp)
		g, hasKE := chosen.get(proposal.TypeKeyExchange)
		if ke == nil || !hasKE || ke.Group != g.ID || ke.Group != req.ke.Group() {
			return nil, errorf(0, "child %s: missing or mismatched KE in the response", req.cfg.Name)
		}
		if secret, err = req.ke.SharedSecret(ke.Data); err != nil {
			return nil, errorf(0, "child %s: peer's key exchange value refused: %v", req.cfg.Name, err)
		}
		defer clear(secret)
	}
	c := &ChildSA{Config: req.cfg, Name: req.cfg.Name, Mode: mode, Proposal: chosen.Proposal, SPIIn: req.spi, SPIOut: peerSPI,
		LocalTS: local, RemoteTS: remote, Created: sa.deps.Now(), Initiated: true, Ni: ni, Nr: nr}
	if err := sa.childKeys(c, ni, nr, secret); err != nil {
		return nil, err
	}
	return c, nil
}

func allInside(got, offered []ts.Selector) bool {
	for _, g := range got {
		inside := false
		for _, o := range offered {
			if o.Contains(g) {
				inside = true
				break
			}
		}
		if !inside {
			return false
		}
	}
	return true
}

// childKeys derives KEYMAT (RFC 7296 §2.17) and assigns directions: the initiator of the exchange
// sends with the first keys.
func (sa *SA) childKeys(c *ChildSA, ni, nr, secret []byte) error {
	var t suite.ChildTransforms
	for _, tr := range c.Proposal.Transforms {
		switch tr.Type {
		case proposal.TypeEncryption:
			t.Encr, t.EncrKeyBits = tr.ID, int(tr.KeyLength)
		case proposal.TypeIntegrity:
			t.Integ = tr.ID
		case proposal.TypeESN:
			c.ESN = tr.ID == proposal.ESNYes
		}
	}
	var secrets [][]byte
	if secret != nil {
		secrets = append(secrets, secret)
	}
	keys, err := suite.DeriveChildKeys(sa.prf, t, sa.keys.SKd, ni, nr, secrets...)
	if err != nil {
		return fmt.Errorf("child %s: key derivation: %w", c.Name, err)
	}
	c.keys = keys
	if c.Initiated {
		c.EncrOut, c.IntegOut, c.EncrIn, c.IntegIn = keys.EncrI, keys.IntegI, keys.EncrR, keys.IntegR
	} else {
		c.EncrOut, c.IntegOut, c.EncrIn, c.IntegIn = keys.EncrR, keys.IntegR, keys.EncrI, keys.IntegI
	}
	return nil
}

// respondChild handles the Child SA part of an IKE_AUTH or CREATE_CHILD_SA request as responder.
// It returns the payloads to answer with; on failure they hold the error Notify and err explains it.
func (sa *SA) respondChild(cfg *PeerConfig, req []wire.Payload, ni, nr []byte, allowKE bool, rekey *ChildSA) ([]wire.Payload, *ChildSA, error) {
	saPayload := find[*wire.SA](req)
	tsi, tsr := find[*wire.TSi](req), find[*wire.TSr](req)
	fail := func(e *Error) ([]wire.Payload, *ChildSA, error) {
		return []wire.Payload{&wire.Notify{NotifyType: e.Notify, Data: e.Data}}, nil, e
	}
	if saPayload == nil || tsi == nil || tsr == nil {
		return fail(errorf(wire.InvalidSyntax, "Child SA request lacks SA, TSi or TSr"))
	}
	peerLocal, peerRemote := tsFromWire(tsi.Selectors), tsFromWire(tsr.Selectors) // the initiator's view
	wantTransport := findNotify(req, wire.UseTransportMode) != nil
	var tsMatched []string
	var propTried []string
	candidates := cfg.Children
	if rekey != nil {
		candidates = []*ChildConfig{rekey.Config}
	}
	for _, cc := range candidates {
		ourLocal, ourRemote := cc.localTS(sa.Local.Addr()), cc.remoteTS(sa.Remote.Addr())
		narrowedI, err1 := ts.Narrow(peerLocal, ourRemote)
		narrowedR, err2 := ts.Narrow(peerRemote, ourLocal)
		if err1 != nil || err2 != nil {
			tsMatched = append(tsMatched, fmt.Sprintf("%s: local %s, remote %s", cc.Name, ts.FormatList(ourLocal), ts.FormatList(ourRemote)))
			continue
		}
		props := cc.Proposals
		if !allowKE {
			props = withoutKE(props)
		}
		chosen, ok := selectProposal(props, saPayload.Proposals, proposal.ProtoESP)
		if !ok {
			propTried = append(propTried, cc.Name+": "+proposal.FormatList(props))
			continue
		}
		if wantTransport != (cc.Mode == Transport) && cc.Mode == Transport {
			// We only accept transport mode; the peer wants a tunnel.
			propTried = append(propTried, cc.Name+": transport mode only")
			continue
		}
		peerSPI, ok := spiFromBytes(chosen.spi)
		if !ok {
			return fail(errorf(wire.InvalidSyntax, "Child SA proposal with a %d-byte SPI", len(chosen.spi)))
		}
		var kePayload *wire.KE
		var secret []byte
		if g, has := chosen.get(proposal.TypeKeyExchange); has && g.ID != proposal.KENone {
			ke := find[*wire.KE](req)
			if ke == nil || ke.Group != g.ID {
				e := errorf(wire.InvalidKEPayload, "child %s: peer's KE is not for group %d", cc.Name, g.ID)
				e.Data = []byte{byte(g.ID >> 8), byte(g.ID)}
				return fail(e)
			}
			k, err := suite.NewKeyExchange(g.ID, sa.deps.Rand)
			if err != nil {
				return fail(errorf(wire.NoProposalChosen, "child %s: %v", cc.Name, err))
			}
			pub, s, err := k.Respond(ke.Data)
			k.Zero()
			if err != nil {
				return fail(errorf(wire.InvalidSyntax, "child %s: key exchange value refused: %v", cc.Name, err))
			}
			secret = s
			defer clear(secret)
			kePayload = &wire.KE{Group: g.ID, Data: pub}
		}
		spi, err := sa.deps.AllocSPI()
		if err != nil {
			return fail(errorf(wire.TemporaryFailure, "no SPI: %v", err))
		}
		mode := Tunnel
		if wantTransport && cc.Mode == Transport {
			mode = Transport
		}
		c := &ChildSA{Config: cc, Name: cc.Name, Mode: mode, Proposal: chosen.Proposal, SPIIn: spi, SPIOut: peerSPI,
			LocalTS: narrowedR, RemoteTS: narrowedI, Created: sa.deps.Now(), Ni: ni, Nr: nr}
		if err := sa.childKeys(c, ni, nr, secret); err != nil {
			return fail(errorf(wire.NoProposalChosen, "%v", err))
		}
		wp := toWire([]proposal.Proposal{chosen.Proposal}, spiBytes(spi))
		wp[0].Number = chosen.number
		out := []wire.Payload{&wire.SA{Proposals: wp}}
		if kePayload != nil {
			out = append(out, kePayload)
		}
		out = append(out, &wire.TSi{Selectors: tsToWire(narrowedI)}, &wire.TSr{Selectors: tsToWire(narrowedR)})
		if mode == Transport {
			out = append(out, &wire.Notify{NotifyType: wire.UseTransportMode})
		}
		return out, c, nil
	}
	if len(propTried) == 0 {
		return fail(errorf(wire.TSUnacceptable, "traffic selectors unacceptable: peer proposed local %s, remote %s; we accept %s",
			ts.FormatList(peerLocal), ts.FormatList(peerRemote), joinSemi(tsMatched)))
	}
	return fail(errorf(wire.NoProposalChosen, "no ESP proposal chosen: peer offered %s; we accept %s",
		describeWire(saPayload.Proposals), joinSemi(propTried)))
}
