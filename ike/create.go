package ike

import (
	"encoding/binary"
	"fmt"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Pending is an exchange this SA initiated and awaits the answer to.
type Pending struct {
	Exchange wire.ExchangeType
	Kind     PendingKind
	child    *childRequest
	ni       []byte
	Child    *ChildSA // the Child SA being rekeyed or deleted
	newIKE   *SA      // IKE rekey: the SA being created
	ke       suite.KeyExchange
}

// PendingKind says what a pending exchange does.
type PendingKind uint8

const (
	PendingNewChild PendingKind = iota
	PendingRekeyChild
	PendingRekeyIKE
	PendingDeleteChild
	PendingDeleteIKE
	PendingLiveness
)

var pendingNames = [...]string{"create child", "rekey child", "rekey IKE SA", "delete child", "delete IKE SA", "liveness check"}

func (k PendingKind) String() string { return pendingNames[k] }

// CreateChildRequest builds a CREATE_CHILD_SA request for a new Child SA, or (old != nil) for
// rekeying old (RFC 7296 §1.3.1, §1.3.3).
func (sa *SA) CreateChildRequest(cfg *ChildConfig, old *ChildSA) (*Pending, []wire.Payload, error) {
	if sa.State != StateEstablished {
		return nil, nil, fmt.Errorf("ike: IKE SA not established")
	}
	ni, err := sa.random(nonceLen)
	if err != nil {
		return nil, nil, err
	}
	req, cps, err := sa.newChildRequest(cfg, true)
	if err != nil {
		return nil, nil, err
	}
	req.rekey = old
	var ps []wire.Payload
	kind := PendingNewChild
	if old != nil {
		kind = PendingRekeyChild
		ps = append(ps, &wire.Notify{Protocol: wire.ProtoESP, SPI: spiBytes(old.SPIIn), NotifyType: wire.RekeySA})
	}
	ps = append(ps, cps[0], &wire.Nonce{Data: ni})
	ps = append(ps, cps[1:]...)
	return &Pending{Exchange: wire.ExchangeCreateChildSA, Kind: kind, child: req, ni: ni, Child: old}, ps, nil
}

// RekeyIKERequest builds a CREATE_CHILD_SA request that rekeys this IKE SA (RFC 7296 §1.3.2).
func (sa *SA) RekeyIKERequest() (*Pending, []wire.Payload, error) {
	if sa.State != StateEstablished {
		return nil, nil, fmt.Errorf("ike: IKE SA not established")
	}
	ni, err := sa.random(nonceLen)
	if err != nil {
		return nil, nil, err
	}
	next := &SA{Config: sa.Config, deps: sa.deps, Initiator: true, Local: sa.Local, Remote: sa.Remote,
		NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, PeerFragmentation: sa.PeerFragmentation,
		LocalID: sa.LocalID, RemoteID: sa.RemoteID, State: StateEstablished}
	if next.SPIi, err = sa.randomSPI(); err != nil {
		return nil, nil, err
	}
	// Offer the current proposal first, then the configured ones.
	props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
	g, ok := proposalGroup(sa.Proposal)
	if !ok {
		return nil, nil, fmt.Errorf("ike: current IKE proposal has no key exchange")
	}
	ke, err := suite.NewKeyExchange(g, sa.deps.Rand)
	if err != nil {
		return nil, nil, err
	}
	ps := []wire.Payload{
		&wire.SA{Proposals: toWire(props, ikeSPIBytes(next.SPIi))},
		&wire.Nonce{Data: ni},
		&wire.KE{Group: g, Data: ke.PublicValue()},
	}
	return &Pending{Exchange: wire.ExchangeCreateChildSA, Kind: PendingRekeyIKE, ni: ni, newIKE: next, ke: ke}, ps, nil
}

func proposalGroup(p proposal.Proposal) (uint16, bool) {
	kes := p.Of(proposal.TypeKeyExchange)
	if len(kes) == 0 {
		return 0, false
	}
	return kes[0].ID, true
}

// Result is what processing a message changed.
type Result struct {
	ChildUp    *ChildSA // a new Child SA to install
	Replaced   *ChildSA // the Child SA it replaces (rekey): delete it after a grace period
	ChildDown  []*ChildSA
	NewIKE     *SA  // the IKE SA that replaces this one
	IKEDeleted bool // this IKE SA is gone, with its remaining Child SAs
}

// HandleResponse processes the response to a pending CREATE_CHILD_SA or INFORMATIONAL request.
func (sa *SA) HandleResponse(p *Pending, resp []wire.Payload) (Result, error) {
	switch p.Kind {
	case PendingNewChild, PendingRekeyChild:
		nonce := find[*wire.Nonce](resp)
		if nonce == nil && firstError(resp) == nil {
			return Result{}, errorf(0, "CREATE_CHILD_SA response without a nonce")
		}
		var nr []byte
		if nonce != nil {
			nr = append([]byte(nil), nonce.Data...)
		}
		c, err := sa.completeChild(p.child, resp, p.ni, nr)
		if p.child.ke != nil {
			p.child.ke.Zero()
		}
		if err != nil {
			return Result{}, err
		}
		sa.Children = append(sa.Children, c)
		return Result{ChildUp: c, Replaced: p.Child}, nil
	case PendingRekeyIKE:
		defer p.ke.Zero()
		if n := firstError(resp); n != nil {
			return Result{}, errorf(0, "peer refused to rekey the IKE SA: %s", n.NotifyType)
		}
		saPayload, nonce, ke := find[*wire.SA](resp), find[*wire.Nonce](resp), find[*wire.KE](resp)
		if saPayload == nil || nonce == nil || ke == nil {
			return Result{}, errorf(0, "IKE rekey response lacks SA, Nonce or KE")
		}
		props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
		chosen, err := checkChosen(props, saPayload, proposal.ProtoIKE)
		if err != nil {
			return Result{}, errorf(0, "IKE rekey: %v", err)
		}
		if len(chosen.spi) != 8 {
			return Result{}, errorf(0, "IKE rekey: responder SPI of %d bytes", len(chosen.spi))
		}
		if g, ok := chosen.get(proposal.TypeKeyExchange); !ok || g.ID != ke.Group || ke.Group != p.ke.Group() {
			return Result{}, errorf(0, "IKE rekey: key exchange group mismatch")
		}
		secret, err := p.ke.SharedSecret(ke.Data)
		if err != nil {
			return Result{}, errorf(0, "IKE rekey: peer's key exchange value refused: %v", err)
		}
		defer clear(secret)
		next := p.newIKE
		next.SPIr = binary.BigEndian.Uint64(chosen.spi)
		next.Ni, next.Nr = p.ni, append([]byte(nil), nonce.Data...)
		if err := sa.rekeyKeys(next, chosen.Proposal, secret); err != nil {
			return Result{}, err
		}
		sa.moveChildren(next)
		return Result{NewIKE: next}, nil
	case PendingDeleteChild:
		sa.removeChild(p.Child)
		return Result{ChildDown: []*ChildSA{p.Child}}, nil
	case PendingDeleteIKE:
		return Result{IKEDeleted: true}, nil
	case PendingLiveness:
		return Result{}, nil
	}
	return Result{}, fmt.Errorf("ike: unknown pending exchange")
}

// rekeyKeys derives the new IKE SA's keys from this one's SK_d (RFC 7296 §2.18).
func (sa *SA) rekeyKeys(next *SA, p proposal.Proposal, secret []byte) error {
	t, prf, err := ikeTransforms(p)
	if err != nil {
		return err
	}
	skeyseed, err := suite.RekeySKEYSEED(sa.prf, sa.keys.SKd, next.Ni, next.Nr, secret)
	if err != nil {
		return err
	}
	defer clear(skeyseed)
	return next.installKeys(p, t, prf, skeyseed, next.Ni, next.Nr)
}

func (sa *SA) moveChildren(next *SA) {
	next.Children = sa.Children
	sa.Children = nil
	next.Established = sa.deps.Now()
}

func (sa *SA) removeChild(c *ChildSA) {
	for i, x := range sa.Children {
		if x == c {
			sa.Children = append(sa.Children[:i], sa.Children[i+1:]...)
			return
		}
	}
}

// ChildBySPI finds a Child SA by its inbound or outbound SPI.
func (sa *SA) ChildBySPI(spi uint32, inbound bool) *ChildSA {
	for _, c := range sa.Children {
		if (inbound && c.SPIIn == spi) || (!inbound && c.SPIOut == spi) {
			return c
		}
	}
	return nil
}

// DeleteChildRequest builds an INFORMATIONAL request deleting a Child SA (RFC 7296 §1.4.1).
func (sa *SA) DeleteChildRequest(c *ChildSA) (*Pending, []wire.Payload) {
	return &Pending{Exchange: wire.ExchangeInformational, Kind: PendingDeleteChild, Child: c},
		[]wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPIs: [][]byte{spiBytes(c.SPIIn)}}}
}

// DeleteIKERequest builds an INFORMATIONAL request deleting this IKE SA and all its Child SAs.
func (sa *SA) DeleteIKERequest() (*Pending, []wire.Payload) {
	sa.State = StateDeleting
	return &Pending{Exchange: wire.ExchangeInformational, Kind: PendingDeleteIKE}, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}}
}

// LivenessRequest builds an empty INFORMATIONAL request (RFC 7296 §2.4, dead peer detection).
func (sa *SA) LivenessRequest() (*Pending, []wire.Payload) {
	return &Pending{Exchange: wire.ExchangeInformational, Kind: PendingLiveness}, nil
}

// HandleRequest processes a CREATE_CHILD_SA or INFORMATIONAL request of an established SA and
// returns the response payloads. err explains a refusal (the response then carries its Notify).
func (sa *SA) HandleRequest(ex wire.ExchangeType, req []wire.Payload) ([]wire.Payload, Result, error) {
	switch ex {
	case wire.ExchangeCreateChildSA:
		return sa.handleCreateChild(req)
	case wire.ExchangeInformational:
		return sa.handleInformational(req)
	}
	return []wire.Payload{&wire.Notify{NotifyType: wire.InvalidSyntax}}, Result{}, errorf(wire.InvalidSyntax, "unexpected %s request", ex)
}

func (sa *SA) handleCreateChild(req []wire.Payload) ([]wire.Payload, Result, error) {
	if sa.State != StateEstablished {
		return []wire.Payload{&wire.Notify{NotifyType: wire.TemporaryFailure}}, Result{}, errorf(wire.TemporaryFailure, "CREATE_CHILD_SA while %s", sa.State)
	}
	saPayload, nonce := find[*wire.SA](req), find[*wire.Nonce](req)
	if saPayload == nil || nonce == nil {
		return []wire.Payload{&wire.Notify{NotifyType: wire.InvalidSyntax}}, Result{}, errorf(wire.InvalidSyntax, "CREATE_CHILD_SA request lacks SA or Nonce")
	}
	ni := append([]byte(nil), nonce.Data...)
	nr, err := sa.random(nonceLen)
	if err != nil {
		return nil, Result{}, err
	}
	if len(saPayload.Proposals) > 0 && saPayload.Proposals[0].Protocol == wire.ProtoIKE {
		return sa.respondRekeyIKE(req, saPayload, ni, nr)
	}
	var old *ChildSA
	if n := findNotify(req, wire.RekeySA); n != nil {
		spi, ok := spiFromBytes(n.SPI)
		if ok {
			old = sa.ChildBySPI(spi, false)
		}
		if old == nil {
			e := errorf(wire.ChildSANotFound, "peer wants to rekey Child SA with SPI %x, which we do not have", n.SPI)
			return []wire.Payload{&wire.Notify{Protocol: wire.ProtoESP, SPI: n.SPI, NotifyType: wire.ChildSANotFound}}, Result{}, e
		}
	}
	cps, c, cerr := sa.respondChild(sa.Config, req, ni, nr, true, old)
	if cerr != nil {
		return cps, Result{}, cerr
	}
	sa.Children = append(sa.Children, c)
	resp := append([]wire.Payload{cps[0], &wire.Nonce{Data: nr}}, cps[1:]...)
	return resp, Result{ChildUp: c, Replaced: old}, nil
}

func (sa *SA) respondRekeyIKE(req []wire.Payload, saPayload *wire.SA, ni, nr []byte) ([]wire.Payload, Result, error) {
	props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
	chosen, ok := selectProposal(props, saPayload.Proposals, proposal.ProtoIKE)
	if !ok {
		return []wire.Payload{&wire.Notify{NotifyType: wire.NoProposalChosen}}, Result{},
			errorf(wire.NoProposalChosen, "IKE rekey: peer offered %s; we accept %s", describeWire(saPayload.Proposals), proposal.FormatList(props))
	}
	if len(chosen.spi) != 8 {
		return []wire.Payload{&wire.Notify{NotifyType: wire.InvalidSyntax}}, Result{}, errorf(wire.InvalidSyntax, "IKE rekey with a %d-byte SPI", len(chosen.spi))
	}
	g, _ := chosen.get(proposal.TypeKeyExchange)
	ke := find[*wire.KE](req)
	if ke == nil || ke.Group != g.ID {
		e := errorf(wire.InvalidKEPayload, "IKE rekey: peer's KE is not for group %d", g.ID)
		return []wire.Payload{&wire.Notify{NotifyType: wire.InvalidKEPayload, Data: []byte{byte(g.ID >> 8), byte(g.ID)}}}, Result{}, e
	}
	k, err := suite.NewKeyExchange(g.ID, sa.deps.Rand)
	if err != nil {
		return nil, Result{}, err
	}
	pub, secret, err := k.Respond(ke.Data)
	k.Zero()
	if err != nil {
		return []wire.Payload{&wire.Notify{NotifyType: wire.InvalidSyntax}}, Result{}, errorf(wire.InvalidSyntax, "IKE rekey: key exchange value refused: %v", err)
	}
	defer clear(secret)
	next := &SA{Config: sa.Config, deps: sa.deps, Initiator: false, Local: sa.Local, Remote: sa.Remote,
		NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, PeerFragmentation: sa.PeerFragmentation,
		LocalID: sa.LocalID, RemoteID: sa.RemoteID, State: StateEstablished,
		SPIi: binary.BigEndian.Uint64(chosen.spi), Ni: ni, Nr: nr}
	if next.SPIr, err = sa.randomSPI(); err != nil {
		return nil, Result{}, err
	}
	if err := sa.rekeyKeys(next, chosen.Proposal, secret); err != nil {
		return nil, Result{}, err
	}
	sa.moveChildren(next)
	wp := toWire([]proposal.Proposal{chosen.Proposal}, ikeSPIBytes(next.SPIr))
	wp[0].Number = chosen.number
	return []wire.Payload{&wire.SA{Proposals: wp}, &wire.Nonce{Data: nr}, &wire.KE{Group: g.ID, Data: pub}}, Result{NewIKE: next}, nil
}

func (sa *SA) handleInformational(req []wire.Payload) ([]wire.Payload, Result, error) {
	var res Result
	var resp []wire.Payload
	for _, d := range findAll[*wire.Delete](req) {
		switch d.Protocol {
		case wire.ProtoIKE:
			// The Child SAs go with it; the driver reports them when it removes the IKE SA.
			sa.State = StateDeleting
			res.IKEDeleted = true
			return nil, res, nil
		case wire.ProtoESP, wire.ProtoAH:
			var ours [][]byte
			for _, raw := range d.SPIs {
				spi, ok := spiFromBytes(raw)
				if !ok {
					continue
				}
				if c := sa.ChildBySPI(spi, false); c != nil {
					sa.removeChild(c)
					res.ChildDown = append(res.ChildDown, c)
					ours = append(ours, spiBytes(c.SPIIn))
				}
			}
			if len(ours) > 0 {
				resp = append(resp, &wire.Delete{Protocol: d.Protocol, SPIs: ours})
			}
		}
	}
	return resp, res, nil
}
