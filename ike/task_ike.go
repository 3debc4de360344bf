package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Handoff moves Child SAs and queued work from one IKE SA to another that is already running on
// its own (the peer's new IKE SA won a rekey collision). The driver delivers it to To's owner,
// which calls Adopt.
type Handoff struct {
	To       *SA
	From     IKEInfo
	Children []*ChildSA
	tasks    []initiatorTask
}

// TakeSpawned returns the IKE SAs created by a rekey since the last call; the driver registers
// them and drains their effects.
func (sa *SA) TakeSpawned() []*SA {
	if sa.rare == nil {
		return nil
	}
	out := sa.rare.spawned
	sa.rare.spawned = nil
	return out
}

// TakeHandoff returns a pending handoff of Child SAs to another IKE SA.
func (sa *SA) TakeHandoff() *Handoff {
	if sa.rare == nil {
		return nil
	}
	h := sa.rare.handoff
	sa.rare.handoff = nil
	return h
}

// Adopt takes the Child SAs of a rekeyed IKE SA (run by the owner of this SA).
func (sa *SA) Adopt(h *Handoff) {
	sa.adopting = false
	if sa.state == StateDead {
		for _, c := range h.Children {
			sa.emit(ChildDown{IKE: h.From, Name: c.Name, Protocol: c.Protocol(), SPIIn: c.SPIIn, SPIOut: c.SPIOut, Reason: ReasonParentGone})
		}
		return
	}
	sa.Children = append(sa.Children, h.Children...)
	sa.queue = append(sa.queue, h.tasks...)
	sa.emit(IKERekeyed{Old: h.From, New: sa.Info()})
}

// Adopting reports whether the SA waits for the Child SAs of a rekey collision.
func (sa *SA) Adopting() bool { return sa.adopting }

// QueueRekeyIKE queues a rekey of this IKE SA (RFC 7296 §1.3.2).
func (sa *SA) QueueRekeyIKE() bool {
	if sa.state != StateEstablished {
		return false
	}
	if sa.hasTask(func(t initiatorTask) bool { return t.Kind() == TaskIKERekey || t.Kind() == TaskIKEDelete }) {
		return false
	}
	sa.enqueue(&ikeRekeyTask{})
	return true
}

// ikeRekeyTask rekeys the IKE SA with CREATE_CHILD_SA. It owns the IKE rekey collision (RFC 7296
// §2.8.2): the new IKE SA made by the exchange with the lowest of the four nonces is redundant and
// its creator deletes it; the creator of the survivor deletes the old IKE SA, and the Child SAs
// live on the survivor.
type ikeRekeyTask struct {
	ni   []byte
	next *SA
	ke   suite.KeyExchange
	// peerNext is the IKE SA the peer's colliding rekey of this one created, peerLow the lower
	// nonce of that exchange (which decides the collision).
	peerNext *SA
	peerLow  []byte
}

func (*ikeRekeyTask) Kind() TaskKind              { return TaskIKERekey }
func (*ikeRekeyTask) Exchange() wire.ExchangeType { return wire.ExchangeCreateChildSA }

func (t *ikeRekeyTask) abort(sa *SA) {
	if t.ke != nil {
		t.ke.Zero()
		t.ke = nil
	}
	// A colliding peer rekey whose decision we can no longer make takes the Child SAs.
	if p := t.peerNext; p != nil && sa.state == StateEstablished {
		t.peerNext = nil
		sa.handOver(p)
	}
}

// successorOf builds the IKE SA that replaces sa.
func (sa *SA) successorOf(initiator bool) *SA {
	next := &SA{Config: sa.Config, deps: sa.deps, Initiator: initiator, Local: sa.Local, Remote: sa.Remote,
		NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, PeerFragmentation: sa.PeerFragmentation, PeerChildless: sa.PeerChildless,
		TCP: sa.TCP, TCPOriginator: sa.TCPOriginator,
		// The new SKEYSEED comes from the old SK_d, which holds the PPK (RFC 8784 §3, RFC 9867).
		PPK:     sa.PPK,
		LocalID: sa.LocalID, RemoteID: sa.RemoteID, state: StateEstablished, Established: sa.deps.Now(),
		LocalVIPs: sa.LocalVIPs, RemoteVIPs: sa.RemoteVIPs, mobike: sa.mobike, peerRedirect: sa.peerRedirect}
	if r := sa.rare; r != nil && (r.vipID != "" || r.eapID != "" || len(r.aaaClass) > 0) {
		next.rare = &saRare{vipID: r.vipID, eapID: r.eapID, aaaClass: r.aaaClass}
	}
	return next
}

func (t *ikeRekeyTask) build(sa *SA, req *Message) error {
	if sa.state != StateEstablished {
		return fmt.Errorf("ike: rekeying an IKE SA in state %s", sa.state)
	}
	ni, err := sa.nonce()
	if err != nil {
		return err
	}
	next := sa.successorOf(true)
	if next.SPIi, err = sa.randomSPI(); err != nil {
		return err
	}
	g, ok := proposalGroup(sa.Proposal)
	if !ok {
		return fmt.Errorf("ike: current IKE proposal has no key exchange")
	}
	ke, err := suite.NewKeyExchange(g, sa.deps.Rand)
	if err != nil {
		return err
	}
	if t.ke != nil {
		t.ke.Zero()
	}
	t.ni, t.next, t.ke = ni, next, ke
	// Offer the current proposal first, then the configured ones.
	props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
	req.add(&wire.SA{Proposals: toWire(props, ikeSPIBytes(next.SPIi))}, &wire.Nonce{Data: ni}, &wire.KE{Group: g, Data: ke.PublicValue()})
	return nil
}

func proposalGroup(p proposal.Proposal) (uint16, bool) {
	kes := p.Of(proposal.TypeKeyExchange)
	if len(kes) == 0 {
		return 0, false
	}
	return kes[0].ID, true
}

func (t *ikeRekeyTask) process(sa *SA, resp *Message) (bool, error) {
	defer func() {
		if t.ke != nil {
			t.ke.Zero()
			t.ke = nil
		}
	}()
	fail := func(err *Error) (bool, error) {
		sa.emit(Failed{Conn: sa.name(), Err: err})
		if p := t.peerNext; p != nil {
			t.peerNext = nil
			sa.handOver(p)
		}
		return false, err
	}
	if findNotify(resp.Payloads, wire.TemporaryFailure) != nil {
		if p := t.peerNext; p != nil {
			t.peerNext = nil
			sa.handOver(p)
			return false, nil
		}
		sa.deferTask(&ikeRekeyTask{}, temporaryFailureRetry+Jitter(temporaryFailureRetry, sa.deps.Rand))
		return false, nil
	}
	if n := firstError(resp.Payloads); n != nil {
		return fail(errorf(0, "peer refused to rekey the IKE SA: %s", n.NotifyType))
	}
	saPayload, nonce, ke := find[*wire.SA](resp.Payloads), find[*wire.Nonce](resp.Payloads), find[*wire.KE](resp.Payloads)
	if saPayload == nil || nonce == nil || ke == nil {
		return fail(errorf(0, "IKE rekey response lacks SA, Nonce or KE"))
	}
	props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
	chosen, err := checkChosen(props, saPayload, proposal.ProtoIKE)
	if err != nil {
		return fail(errorf(0, "IKE rekey: %v", err))
	}
	if len(chosen.spi) != 8 || binary.BigEndian.Uint64(chosen.spi) == 0 {
		return fail(errorf(0, "IKE rekey: responder SPI %x is not a valid 8-byte SPI", chosen.spi))
	}
	if g, ok := chosen.get(proposal.TypeKeyExchange); !ok || g.ID != ke.Group || ke.Group != t.ke.Group() {
		return fail(errorf(0, "IKE rekey: key exchange group mismatch"))
	}
	secret, err := t.ke.SharedSecret(ke.Data)
	if err != nil {
		return fail(errorf(0, "IKE rekey: peer's key exchange value refused: %v", err))
	}
	defer clear(secret)
	next := t.next
	next.SPIr = binary.BigEndian.Uint64(chosen.spi)
	ni, nr := t.ni, append([]byte(nil), nonce.Data...)
	if err := sa.rekeyKeys(next, chosen.Proposal, secret, ni, nr); err != nil {
		return fail(errorf(0, "IKE rekey: %v", err))
	}
	r := sa.rareState()
	r.spawned = append(r.spawned, next)
	if p := t.peerNext; p != nil && p.state != StateDead {
		t.peerNext = nil
		if bytes.Compare(lowerNonce(ni, nr), t.peerLow) < 0 {
			// Ours is redundant: the Child SAs go to the peer's new IKE SA, we delete ours, and
			// the peer deletes the old one.
			next.replaced = true
			next.enqueue(&ikeDeleteTask{reason: ReasonCollision})
			sa.handOver(p)
			return false, nil
		}
		// Ours survives; the peer deletes its redundant IKE SA.
	}
	sa.moveTo(next)
	sa.enqueue(&ikeDeleteTask{reason: ReasonRekeyed})
	return false, nil
}

// rekeyKeys derives the new IKE SA's keys from this one's SK_d (RFC 7296 §2.18).
func (sa *SA) rekeyKeys(next *SA, p proposal.Proposal, secret, ni, nr []byte) error {
	t, prf, err := ikeTransforms(p)
	if err != nil {
		return err
	}
	// SK(0) | Ni | Nr | SK(1) | ... | SK(n) with additional key exchanges (RFC 9370 §2.2.4).
	skeyseed, err := suite.RekeySKEYSEED(sa.prf, sa.keys.SKd, ni, nr, append([][]byte{secret}, sa.additionalSecrets()...)...)
	if err != nil {
		return err
	}
	defer clear(skeyseed)
	if err := next.installKeys(p, t, prf, skeyseed, ni, nr); err != nil {
		return err
	}
	next.emitKeys(ni, nr)
	return nil
}

// moveTo hands the Child SAs and queued work to next, which is not running yet, and marks this
// IKE SA rekeyed.
func (sa *SA) moveTo(next *SA) {
	next.Children = append(next.Children, sa.Children...) // not sa's childMem: sa is going
	sa.dropChildren()
	next.queue, sa.queue = append(next.queue, sa.queue...), nil
	sa.replaced = true
	sa.setState(StateRekeyed)
	sa.emit(IKERekeyed{Old: sa.Info(), New: next.Info()})
}

// handOver gives the Child SAs to an IKE SA that already runs on its own (through the driver).
func (sa *SA) handOver(to *SA) {
	sa.rareState().handoff = &Handoff{To: to, From: sa.Info(), Children: slices.Clone(sa.Children), tasks: sa.queue}
	sa.dropChildren()
	sa.queue = nil
	sa.replaced = true
	sa.setState(StateRekeyed)
}

// respondIKERekey answers the peer's rekey of this IKE SA.
func respondIKERekey(sa *SA, req, resp *Message) {
	var ours *ikeRekeyTask
	for _, t := range sa.active {
		switch x := t.(type) {
		case *ikeRekeyTask:
			ours = x
		case *ikeDeleteTask:
			resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
			return
		default:
			// Our exchange on this IKE SA is outstanding: its result must land here, not on a
			// successor. The peer retries later (RFC 7296 §2.25).
			resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
			return
		}
	}
	saPayload := find[*wire.SA](req.Payloads)
	nonce := find[*wire.Nonce](req.Payloads)
	props := append([]proposal.Proposal{sa.Proposal}, sa.Config.Proposals...)
	chosen, ok := selectProposal(props, saPayload.Proposals, proposal.ProtoIKE)
	if !ok {
		resp.add(&wire.Notify{NotifyType: wire.NoProposalChosen})
		sa.emit(Failed{Conn: sa.name(), Err: errorf(wire.NoProposalChosen, "IKE rekey: peer offered %s; we accept %s", describeWire(saPayload.Proposals), proposal.FormatList(props))})
		return
	}
	if nonce == nil || len(chosen.spi) != 8 || binary.BigEndian.Uint64(chosen.spi) == 0 {
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
		return
	}
	g, _ := chosen.get(proposal.TypeKeyExchange)
	ke := find[*wire.KE](req.Payloads)
	if ke == nil || ke.Group != g.ID {
		resp.add(&wire.Notify{NotifyType: wire.InvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, g.ID)})
		return
	}
	k, err := suite.NewKeyExchange(g.ID, sa.deps.Rand)
	if err != nil {
		resp.add(&wire.Notify{NotifyType: wire.NoProposalChosen})
		return
	}
	pub, secret, err := k.Respond(ke.Data)
	k.Zero()
	if err != nil {
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
		sa.emit(Failed{Conn: sa.name(), Err: errorf(wire.InvalidSyntax, "IKE rekey: key exchange value refused: %v", err)})
		return
	}
	defer clear(secret)
	nr, err := sa.nonce()
	if err != nil {
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	next := sa.successorOf(false)
	next.SPIi = binary.BigEndian.Uint64(chosen.spi)
	ni := append([]byte(nil), nonce.Data...)
	if next.SPIr, err = sa.randomSPI(); err != nil {
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	wp := toWire([]proposal.Proposal{chosen.Proposal}, ikeSPIBytes(next.SPIr))
	wp[0].Number = chosen.number
	complete := func(secret []byte) bool {
		if err := sa.rekeyKeys(next, chosen.Proposal, secret, ni, nr); err != nil {
			sa.emit(Failed{Conn: sa.name(), Err: errorf(wire.NoProposalChosen, "IKE rekey: %v", err)})
			return false
		}
		r := sa.rareState()
		r.spawned = append(r.spawned, next)
		if ours != nil {
			// Both sides rekey: our outstanding exchange decides where the Child SAs go.
			next.adopting = true
			ours.peerNext, ours.peerLow = next, lowerNonce(ni, nr)
			return true
		}
		sa.moveTo(next)
		return true
	}
	if groups := addKEGroups(chosen.Proposal); len(groups) > 0 {
		// The new IKE SA's keys wait for the IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
		s0 := append([]byte(nil), secret...)
		link, err := sa.deferForFollowup(groups, describeFollowup("IKE rekey", groups),
			func() { complete(s0); clear(s0) }, func() { clear(s0) })
		if err != nil {
			resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
			return
		}
		resp.add(&wire.SA{Proposals: wp}, &wire.Nonce{Data: nr}, &wire.KE{Group: g.ID, Data: pub}, link)
		return
	}
	if !complete(secret) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: wire.NoProposalChosen}}
		return
	}
	resp.add(&wire.SA{Proposals: wp}, &wire.Nonce{Data: nr}, &wire.KE{Group: g.ID, Data: pub})
}

// QueueDeleteIKE queues the deletion of this IKE SA; queued work is dropped.
func (sa *SA) QueueDeleteIKE(reason Reason) bool {
	if !sa.state.Authenticated() || sa.state == StateDeleting {
		return false
	}
	for _, t := range sa.active {
		if t.Kind() == TaskIKEDelete {
			return false
		}
	}
	for _, t := range sa.queue {
		t.abort(sa)
	}
	sa.queue = []initiatorTask{&ikeDeleteTask{reason: reason}}
	return true
}

// ikeDeleteTask deletes the IKE SA and with it every Child SA (RFC 7296 §1.4.1).
type ikeDeleteTask struct{ reason Reason }

func (*ikeDeleteTask) Kind() TaskKind              { return TaskIKEDelete }
func (*ikeDeleteTask) Exchange() wire.ExchangeType { return wire.ExchangeInformational }
func (*ikeDeleteTask) abort(*SA)                   {}

func (t *ikeDeleteTask) build(sa *SA, req *Message) error {
	sa.setState(StateDeleting)
	req.add(&wire.Delete{Protocol: wire.ProtoIKE})
	return nil
}

func (t *ikeDeleteTask) process(sa *SA, _ *Message) (bool, error) {
	sa.Kill(t.reason)
	return false, nil
}

// respondIKEDelete answers the peer's Delete of this IKE SA; the SA ends once the answer is sent.
func respondIKEDelete(sa *SA, _ *Message) {
	r := ReasonDeletedByPeer
	switch {
	case sa.adopting:
		// The peer's redundant IKE SA of a rekey collision: it never carried anything.
		sa.replaced = true
		r = ReasonCollision
	case sa.replaced:
		r = ReasonRekeyed
	}
	sa.closeAfterResponse(r)
}

// QueueLiveness queues an empty INFORMATIONAL (RFC 7296 §2.4, dead peer detection) unless an
// exchange is outstanding or queued anyway: any answer proves the peer alive.
func (sa *SA) QueueLiveness() bool {
	if !sa.state.Authenticated() || len(sa.active) > 0 || len(sa.queue) > 0 {
		return false
	}
	sa.enqueue(livenessTask{})
	return true
}

// livenessTask is an empty INFORMATIONAL request.
type livenessTask struct{}

func (livenessTask) Kind() TaskKind                      { return TaskLiveness }
func (livenessTask) Exchange() wire.ExchangeType         { return wire.ExchangeInformational }
func (livenessTask) abort(*SA)                           {}
func (livenessTask) build(*SA, *Message) error           { return nil }
func (livenessTask) process(*SA, *Message) (bool, error) { return false, nil }
