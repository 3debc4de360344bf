package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"

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
}

func (r *childRequest) zero() {
	if r != nil && r.ke != nil {
		r.ke.Zero()
		r.ke = nil
	}
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
// ps receives SA first; the caller puts the Nonce after it.
func (sa *SA) newChildRequest(cfg *ChildConfig, withKE bool, rekey *ChildSA) (*childRequest, []wire.Payload, error) {
	req := &childRequest{cfg: cfg,
		localTS:  sa.childLocalTS(cfg),
		remoteTS: sa.childRemoteTS(cfg),
	}
	if rekey != nil {
		// A rekey proposes the selectors the Child SA has (RFC 7296 §2.8).
		req.localTS, req.remoteTS = rekey.LocalTS, rekey.RemoteTS
	}
	if len(req.localTS) == 0 || len(req.remoteTS) == 0 {
		return nil, nil, fmt.Errorf("child %s has no traffic selectors", cfg.Name)
	}
	spi, err := sa.deps.AllocSPI()
	if err != nil {
		return nil, nil, err
	}
	req.spi = spi
	props, err := sa.childProposals(cfg)
	if err != nil {
		return nil, nil, err
	}
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

// childProposals returns a child's proposals this IKE SA can negotiate: AH ones only when its
// Child SAs are neither in UDP, which carries ESP alone (RFC 3948) — AH authenticates the outer
// IP header, so no NAT may lie between the peers — nor in TCP, which frames IKE and ESP only
// (RFC 9329 §3).
func (sa *SA) childProposals(cfg *ChildConfig) ([]proposal.Proposal, error) {
	if !sa.Encap() && !sa.TCP {
		return cfg.Proposals, nil
	}
	var out []proposal.Proposal
	for _, p := range cfg.Proposals {
		if p.Protocol != proposal.ProtoAH {
			out = append(out, p)
		}
	}
	if len(out) == 0 && len(cfg.Proposals) > 0 {
		return nil, errorf(0, "child %s: AH is not possible here: %s; configure esp_proposals", cfg.Name, sa.encapWhy())
	}
	return out, nil
}

// encapWhy explains why Child SAs of this IKE SA cannot be AH.
func (sa *SA) encapWhy() string {
	if sa.TCP {
		return "the IKE SA runs over TCP, which carries only ESP (RFC 9329)"
	}
	if sa.NAT() {
		return "a NAT lies between the peers, and UDP encapsulation carries only ESP (RFC 3948)"
	}
	return "encap = yes forces UDP encapsulation, which carries only ESP (RFC 3948)"
}

// childRefusal explains an error Notify the responder answered a Child SA request with.
func childRefusal(req *childRequest, n *wire.Notify) *Error {
	switch n.NotifyType {
	case wire.NoProposalChosen:
		return errorf(0, "child %s: peer accepted none of our %s proposals: we offered %s", req.cfg.Name, protocolNames(req.proposals), formatChildList(req.proposals))
	case wire.TSUnacceptable:
		return errorf(0, "child %s: peer refused our traffic selectors: we proposed local %s, remote %s", req.cfg.Name, ts.FormatList(req.localTS), ts.FormatList(req.remoteTS))
	case wire.SinglePairRequired:
		return errorf(0, "child %s: peer accepts only a single pair of addresses as traffic selectors (SINGLE_PAIR_REQUIRED)", req.cfg.Name)
	case wire.FailedCPRequired:
		return errorf(0, "child %s: peer requires a configuration payload (virtual IP), which we do not request (FAILED_CP_REQUIRED)", req.cfg.Name)
	}
	return errorf(0, "child %s: peer refused with %s", req.cfg.Name, n.NotifyType)
}

// completeChild processes the responder's answer to a child request and returns the Child SA and
// its keys.
func (sa *SA) completeChild(req *childRequest, resp []wire.Payload, ni, nr []byte) (*ChildSA, *ChildInstall, error) {
	if n := firstError(resp); n != nil {
		return nil, nil, childRefusal(req, n)
	}
	saPayload := find[*wire.SA](resp)
	tsi, tsr := find[*wire.TSi](resp), find[*wire.TSr](resp)
	if saPayload == nil || tsi == nil || tsr == nil {
		return nil, nil, errorf(0, "child %s: response lacks SA, TSi or TSr", req.cfg.Name)
	}
	chosen, err := checkChosenChild(req.proposals, saPayload)
	if err != nil {
		return nil, nil, errorf(0, "child %s: %v", req.cfg.Name, err)
	}
	peerSPI, ok := spiFromBytes(chosen.spi)
	if !ok || peerSPI == 0 {
		return nil, nil, errorf(0, "child %s: responder SPI %x is not a valid 4-byte SPI", req.cfg.Name, chosen.spi)
	}
	local, remote := tsFromWire(tsi.Selectors), tsFromWire(tsr.Selectors)
	if !allInside(local, req.localTS) || !allInside(remote, req.remoteTS) || len(local) == 0 || len(remote) == 0 {
		return nil, nil, errorf(0, "child %s: responder's selectors local %s, remote %s are not inside what we proposed (local %s, remote %s)",
			req.cfg.Name, ts.FormatList(local), ts.FormatList(remote), ts.FormatList(req.localTS), ts.FormatList(req.remoteTS))
	}
	mode := Tunnel
	if findNotify(resp, wire.UseTransportMode) != nil {
		mode = Transport
	}
	if mode != req.cfg.Mode {
		return nil, nil, errorf(0, "child %s: we asked for %s mode, the peer answered %s mode", req.cfg.Name, req.cfg.Mode, mode)
	}
	var secret []byte
	if req.ke != nil {
		ke := find[*wire.KE](resp)
		g, hasKE := chosen.get(proposal.TypeKeyExchange)
		if ke == nil || !hasKE || ke.Group != g.ID || ke.Group != req.ke.Group() {
			return nil, nil, errorf(0, "child %s: missing or mismatched KE in the response", req.cfg.Name)
		}
		if secret, err = req.ke.SharedSecret(ke.Data); err != nil {
			return nil, nil, errorf(0, "child %s: peer's key exchange value refused: %v", req.cfg.Name, err)
		}
		defer clear(secret)
	} else if _, hasKE := chosen.get(proposal.TypeKeyExchange); hasKE && find[*wire.KE](resp) != nil {
		return nil, nil, errorf(0, "child %s: responder answered with a KE we did not ask for", req.cfg.Name)
	}
	c := &ChildSA{Config: req.cfg, Name: req.cfg.Name, Mode: mode, Proposal: chosen.Proposal, SPIIn: req.spi, SPIOut: peerSPI,
		LocalTS: local, RemoteTS: remote, Created: sa.deps.Now(), Initiated: true, nonceMin: lowerNonceValue(ni, nr)}
	inst, err := sa.childKeys(c, ni, nr, secret)
	if err != nil {
		return nil, nil, err
	}
	return c, inst, nil
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
// sends with the first keys. The keys go into the returned install description only.
func (sa *SA) childKeys(c *ChildSA, ni, nr, secret []byte) (*ChildInstall, error) {
	var t suite.ChildTransforms
	t.AH = c.Proposal.Protocol == proposal.ProtoAH
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
	// SK(0) | Ni | Nr | SK(1) | ... | SK(n) with additional key exchanges (RFC 9370 §2.2.4).
	secrets = append(secrets, sa.additionalSecrets()...)
	keys, err := suite.DeriveChildKeys(sa.prf, t, sa.keys.SKd, ni, nr, secrets...)
	if err != nil {
		return nil, fmt.Errorf("child %s: key derivation: %w", c.Name, err)
	}
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	inst := &ChildInstall{Config: c.Config, Name: c.Name, Mode: c.Mode, Proposal: c.Proposal, SPIIn: c.SPIIn, SPIOut: c.SPIOut,
		LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, ESN: c.ESN}
	if c.Initiated {
		inst.EncrOut, inst.IntegOut, inst.EncrIn, inst.IntegIn = cp(keys.EncrI), cp(keys.IntegI), cp(keys.EncrR), cp(keys.IntegR)
	} else {
		inst.EncrOut, inst.IntegOut, inst.EncrIn, inst.IntegIn = cp(keys.EncrR), cp(keys.IntegR), cp(keys.EncrI), cp(keys.IntegI)
	}
	keys.Zero()
	return inst, nil
}

// respondChild negotiates the Child SA part of an IKE_AUTH or CREATE_CHILD_SA request as
// responder. It returns the payloads to answer with; on failure they hold the error Notify and err
// explains it. candidates are the configured children that may match.
func (sa *SA) respondChild(candidates []*ChildConfig, req []wire.Payload, ni, nr []byte, allowKE bool) ([]wire.Payload, *ChildSA, *ChildInstall, *Error) {
	saPayload := find[*wire.SA](req)
	tsi, tsr := find[*wire.TSi](req), find[*wire.TSr](req)
	fail := func(e *Error) ([]wire.Payload, *ChildSA, *ChildInstall, *Error) {
		return []wire.Payload{&wire.Notify{NotifyType: e.Notify, Data: e.Data}}, nil, nil, e
	}
	if saPayload == nil || tsi == nil || tsr == nil {
		return fail(errorf(wire.InvalidSyntax, "Child SA request lacks SA, TSi or TSr"))
	}
	peerLocal, peerRemote := tsFromWire(tsi.Selectors), tsFromWire(tsr.Selectors) // the initiator's view
	wantTransport := findNotify(req, wire.UseTransportMode) != nil
	var tsMatched []string
	var propTried []string
	for _, cc := range candidates {
		ourLocal, ourRemote := sa.childLocalTS(cc), sa.childRemoteTS(cc)
		narrowedI, err1 := ts.Narrow(peerLocal, ourRemote)
		narrowedR, err2 := ts.Narrow(peerRemote, ourLocal)
		if err1 != nil || err2 != nil {
			tsMatched = append(tsMatched, fmt.Sprintf("%s: local %s, remote %s", cc.Name, ts.FormatList(ourLocal), ts.FormatList(ourRemote)))
			continue
		}
		props, err := sa.childProposals(cc)
		if err != nil {
			propTried = append(propTried, cc.Name+": AH only, but "+sa.encapWhy())
			continue
		}
		if !allowKE {
			props = withoutKE(props)
		}
		chosen, ok := selectChildProposal(props, saPayload.Proposals)
		if !ok {
			propTried = append(propTried, cc.Name+": "+formatChildList(props))
			continue
		}
		if !wantTransport && cc.Mode == Transport {
			// We only accept transport mode; the peer wants a tunnel.
			propTried = append(propTried, cc.Name+": transport mode only")
			continue
		}
		peerSPI, ok := spiFromBytes(chosen.spi)
		if !ok || peerSPI == 0 {
			return fail(errorf(wire.InvalidSyntax, "Child SA proposal with SPI %x (want 4 bytes, not zero)", chosen.spi))
		}
		var kePayload *wire.KE
		var secret []byte
		if g, has := chosen.get(proposal.TypeKeyExchange); has && g.ID != proposal.KENone {
			ke := find[*wire.KE](req)
			if ke == nil || ke.Group != g.ID {
				e := errorf(wire.InvalidKEPayload, "child %s: peer's KE is not for group %d", cc.Name, g.ID)
				e.Data = binary.BigEndian.AppendUint16(nil, g.ID)
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
			LocalTS: narrowedR, RemoteTS: narrowedI, Created: sa.deps.Now(), nonceMin: lowerNonceValue(ni, nr)}
		var inst *ChildInstall
		var link *wire.Notify
		if groups := addKEGroups(chosen.Proposal); len(groups) > 0 && allowKE {
			// The keys wait for the IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4); inst stays nil.
			if link, err = sa.deferChildKeys(c, ni, nr, secret, groups); err != nil {
				return fail(errorf(wire.TemporaryFailure, "%v", err))
			}
		} else if inst, err = sa.childKeys(c, ni, nr, secret); err != nil {
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
		if link != nil {
			out = append(out, link)
		}
		return out, c, inst, nil
	}
	if len(propTried) == 0 {
		return fail(errorf(wire.TSUnacceptable, "traffic selectors unacceptable: peer proposed local %s, remote %s; we accept %s",
			ts.FormatList(peerLocal), ts.FormatList(peerRemote), joinSemi(tsMatched)))
	}
	return fail(errorf(wire.NoProposalChosen, "no %s proposal chosen: peer offered %s; we accept %s",
		wireProtocolNames(saPayload.Proposals), describeChildWire(saPayload.Proposals), joinSemi(propTried)))
}

// lowerNonce returns the lower of two nonces (not a copy): rekey collisions are decided by it
// (RFC 7296 §2.8.1).
func lowerNonce(a, b []byte) []byte {
	if bytes.Compare(b, a) < 0 {
		return b
	}
	return a
}

// nonceValue keeps a nonce a Child SA holds for life: in place when it has the usual 32 bytes
// or fewer, so that a held Child SA costs no separate object for it.
type nonceValue struct {
	inline [32]byte
	n      uint8  // length in inline
	long   []byte // a nonce longer than inline (up to 256 bytes, RFC 7296 §3.9)
}

// lowerNonceValue is a copy of lowerNonce as a nonceValue.
func lowerNonceValue(a, b []byte) nonceValue {
	low := lowerNonce(a, b)
	var v nonceValue
	if len(low) <= len(v.inline) {
		v.n = uint8(copy(v.inline[:], low))
		return v
	}
	v.long = append([]byte(nil), low...)
	return v
}

func (v *nonceValue) bytes() []byte {
	if v.long != nil {
		return v.long
	}
	return v.inline[:v.n]
}

// dropChildren forgets every Child SA (they went down or to another IKE SA).
func (sa *SA) dropChildren() {
	sa.Children, sa.childMem = nil, [1]*ChildSA{}
}

// addChild records a new Child SA and asks for its installation. activate: it carries our
// outbound traffic at once; otherwise it waits for the peer (make-before-break).
func (sa *SA) addChild(c *ChildSA, inst *ChildInstall, activate bool, replaces *ChildSA) {
	c.state = ChildStandby
	if activate {
		c.state = ChildInstalled
	}
	sa.armChild(c)
	if sa.Children == nil {
		sa.Children = sa.childMem[:0]
	}
	sa.Children = append(sa.Children, c)
	inst.IKE = sa.Info()
	inst.Encap = sa.Encap()
	inst.Activate = activate
	inst.NotifyFirstInbound = !activate
	if replaces != nil {
		inst.Replaces = replaces.SPIIn
	}
	sa.emit(ChildUp{Child: inst})
}

// armChild sets a new Child SA's rekey and hard-lifetime deadlines. Rekeys come up to 10% early,
// so that both peers do not rekey at the same moment.
func (sa *SA) armChild(c *ChildSA) {
	cc := c.Config
	if cc == nil {
		return
	}
	now := sa.deps.Now()
	if cc.RekeyTime > 0 {
		c.RekeyAt = now.Add(Jitter(cc.RekeyTime, sa.deps.Rand))
	}
	if cc.LifeTime > 0 {
		c.ExpireAt = now.Add(cc.LifeTime)
	}
}

// Jitter shortens d by up to 10% (random).
func Jitter(d time.Duration, r io.Reader) time.Duration {
	var b [2]byte
	io.ReadFull(r, b[:])
	frac := float64(binary.BigEndian.Uint16(b[:])) / 65535 * 0.1
	return d - time.Duration(float64(d)*frac)
}

// activate moves our outbound traffic to a Child SA that waited for the peer, and marks the one
// it replaces as rekeyed.
func (sa *SA) activate(c *ChildSA) {
	if c.state != ChildStandby {
		return
	}
	sa.setChildState(c, ChildInstalled)
	sa.emit(ChildActivate{IKE: sa.Info(), Name: c.Name, SPIIn: c.SPIIn})
	for _, o := range sa.Children {
		if o.successor == c && (o.state == ChildInstalled || o.state == ChildRekeying) {
			sa.setChildState(o, ChildRekeyed)
		}
	}
}

// InboundActive is the data plane's news that the peer sends on the Child SA with inbound SPI
// spiIn: a successor waiting for it takes over our outbound traffic.
func (sa *SA) InboundActive(spiIn uint32) {
	if c := sa.Child(spiIn); c != nil && c.state == ChildStandby && !c.redundant {
		sa.activate(c)
	}
}

// childGone removes a Child SA: its successor, if it still waits, takes over first.
func (sa *SA) childGone(c *ChildSA, reason Reason) {
	if c.state == ChildDeleted {
		return
	}
	if s := c.successor; s != nil && s.state == ChildStandby && !s.redundant {
		sa.activate(s)
	}
	grace := c.successor != nil
	sa.setChildState(c, ChildDeleted)
	sa.removeChild(c)
	sa.emit(ChildDown{IKE: sa.Info(), Name: c.Name, Protocol: c.Protocol(), SPIIn: c.SPIIn, SPIOut: c.SPIOut, Reason: reason, Grace: grace})
}

// Tick runs the SA's protocol timers that are due at now: Child SA rekeys and hard lifetimes,
// retries deferred after TEMPORARY_FAILURE.
func (sa *SA) Tick(now time.Time) {
	if sa.state == StateDead {
		return
	}
	sa.RequeueDue(now)
	for _, c := range append([]*ChildSA(nil), sa.Children...) {
		if !c.ExpireAt.IsZero() && !now.Before(c.ExpireAt) {
			c.ExpireAt = time.Time{}
			sa.QueueDeleteChild(c.SPIIn, ReasonLifetime)
			continue
		}
		if !c.RekeyAt.IsZero() && !now.Before(c.RekeyAt) {
			c.RekeyAt = time.Time{}
			if c.state == ChildInstalled {
				sa.QueueRekeyChild(c.SPIIn)
			}
		}
	}
}

// NextDeadline returns when Tick has something to do next (zero: never).
func (sa *SA) NextDeadline() time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if sa.state == StateDead {
		return next
	}
	for _, c := range sa.Children {
		earliest(c.RekeyAt)
		earliest(c.ExpireAt)
	}
	earliest(sa.NextDeferred())
	return next
}
