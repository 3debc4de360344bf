package ike

import (
	"encoding/binary"
	"fmt"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// IKE_INTERMEDIATE (RFC 9242) with additional key exchanges (RFC 9370 §2.2.2).
//
// When IKE_SA_INIT chooses a proposal with ADDKE transforms, both sides derive the first keys as
// usual and then run one IKE_INTERMEDIATE exchange per additional key exchange, in the order of
// the transform types (ADDKE1 first; NONE skips a slot). Each exchange is protected with the keys
// in force when it starts; after it the keys are updated:
//
//	SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//	{SK_d(n) | SK_ai(n) | ... | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)
//
// IKE_AUTH then authenticates every IKE_INTERMEDIATE message through the IntAuth chain (RFC 9242
// §3.3.2), which the auth task appends to its signed octets.

// addKEGroups lists the additional key exchanges of a negotiated proposal in the order they run,
// NONE left out (RFC 9370 §2.2.2).
func addKEGroups(p proposal.Proposal) []uint16 {
	var out []uint16
	for t := proposal.TypeAdditionalKE1; t <= proposal.TypeAdditionalKE7; t++ {
		if trs := p.Of(t); len(trs) > 0 && trs[0].ID != proposal.KENone {
			out = append(out, trs[0].ID)
		}
	}
	return out
}

// offersAddKE reports whether any of the proposals has an additional key exchange.
func offersAddKE(list []proposal.Proposal) bool {
	for _, p := range list {
		for _, t := range p.Transforms {
			if t.Type >= proposal.TypeAdditionalKE1 && t.Type <= proposal.TypeAdditionalKE7 && t.ID != proposal.KENone {
				return true
			}
		}
	}
	return false
}

// intermediate is the IKE_INTERMEDIATE part of the handshake state.
type intermediate struct {
	// pending are the additional key exchanges still to run (their Key Exchange Method IDs).
	pending []uint16
	// exchanges counts the IKE_INTERMEDIATE exchanges completed.
	exchanges int
	// authI and authR are IntAuth_i(n) and IntAuth_r(n); lastMID is the Message ID of the last
	// IKE_INTERMEDIATE exchange.
	authI, authR []byte
	lastMID      uint32
	// next holds the keys a responder derived in the exchange it is answering: the response is
	// still protected with the old ones (RFC 9242 §3.3.1), so they take over once it is sealed.
	next *keySet
}

// keySet is one generation of an IKE SA's keys (the Protectors are built from them per message).
type keySet struct {
	keys *suite.Keys
}

func (k *keySet) zero() {
	if k == nil || k.keys == nil {
		return
	}
	k.keys.Zero()
}

func (sa *SA) inter() *intermediate {
	if sa.hs.inter == nil {
		sa.hs.inter = &intermediate{}
	}
	return sa.hs.inter
}

// intAuth returns IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (RFC 9242 §3.3.2), the last
// part of both sides' signed octets, or nil when no IKE_INTERMEDIATE exchange took place. The
// first IKE_AUTH message follows the last IKE_INTERMEDIATE exchange, so its Message ID is one
// more.
func (sa *SA) intAuth() []byte {
	if sa.hs == nil || sa.hs.inter == nil || sa.hs.inter.exchanges == 0 {
		return nil
	}
	in := sa.hs.inter
	out := make([]byte, 0, len(in.authI)+len(in.authR)+4)
	out = append(append(out, in.authI...), in.authR...)
	return binary.BigEndian.AppendUint32(out, in.lastMID+1)
}

// noteIntermediate adds one IKE_INTERMEDIATE message, sent or received, to the IntAuth chain:
// IntAuth_x(n) = prf(SK_px(n), IntAuth_x(n-1) | A | P) with the sender's SK_p of the keys that
// protect the exchange (RFC 9242 §3.3.2). data is wire.IntAuthData of the message.
func (sa *SA) noteIntermediate(h wire.Header, data []byte) {
	if sa.hs == nil || sa.keys == nil {
		return
	}
	in := sa.inter()
	if h.IsInitiator() {
		in.authI = sa.prf.Compute(sa.keys.SKpi, in.authI, data)
	} else {
		in.authR = sa.prf.Compute(sa.keys.SKpr, in.authR, data)
	}
	in.lastMID = h.MessageID
}

// planIntermediate queues the additional key exchanges a proposal chose, ahead of IKE_AUTH, and
// reports whether there are any. The peer must have announced IKE_INTERMEDIATE support.
//
// An initiator that uses a PPK the RFC 9867 way sends it in the last of these exchanges, or in
// an IKE_INTERMEDIATE exchange of its own when the proposal has no additional key exchange.
func (sa *SA) planIntermediate(p proposal.Proposal, peerSupports bool) (bool, error) {
	groups := addKEGroups(p)
	var ppkKey []byte
	if sa.Initiator {
		ppkKey = sa.initiatorPPKKey()
	}
	if len(groups) == 0 && ppkKey == nil {
		return false, nil
	}
	if !peerSupports {
		return false, errorf(0, "peer %s chose additional key exchanges (%s) without announcing IKE_INTERMEDIATE support (RFC 9370 §2.2.1)", sa.Remote, p)
	}
	in := sa.inter()
	in.pending = groups
	if sa.Initiator {
		tasks := make([]*intermediateKETask, 0, len(groups)+1)
		for _, g := range groups {
			tasks = append(tasks, &intermediateKETask{group: g})
		}
		if ppkKey != nil {
			if len(tasks) == 0 {
				tasks = append(tasks, &intermediateKETask{})
			}
			tasks[len(tasks)-1].ppk = ppkKey
		}
		queue := make([]initiatorTask, 0, len(tasks)+len(sa.queue))
		for _, t := range tasks {
			queue = append(queue, t)
		}
		sa.queue = append(queue, sa.queue...)
	}
	return true, nil
}

// applyAddKE derives the keys that follow an additional key exchange with shared secret secret
// (RFC 9370 §2.2.2). The old keys are wiped when the new ones take over.
func (sa *SA) deriveAddKE(secret []byte) (*keySet, error) {
	keys, err := suite.UpdateIKEKeys(sa.transforms, sa.keys, secret, sa.hs.Ni, sa.hs.Nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
	if err != nil {
		return nil, err
	}
	// Check once that the keys fit the transforms, as installKeys does.
	if err := keys.Fit(sa.transforms); err != nil {
		keys.Zero()
		return nil, err
	}
	return &keySet{keys: keys}, nil
}

// useKeys makes ks the SA's keys and wipes the previous ones.
func (sa *SA) useKeys(ks *keySet) {
	old := keySet{keys: sa.keys}
	sa.keys = ks.keys
	old.zero()
	sa.emitKeys(sa.hs.Ni, sa.hs.Nr)
}

// finishAddKE records a completed additional key exchange; after the last one IKE_AUTH may start.
func (sa *SA) finishAddKE() {
	in := sa.inter()
	if len(in.pending) > 0 {
		in.pending = in.pending[1:]
	}
	if len(in.pending) == 0 {
		sa.setState(StateInitDone)
	}
}

// intermediateKETask runs one additional key exchange in an IKE_INTERMEDIATE exchange as
// initiator: SK {KEi(n)} → SK {KEr(n)} (RFC 9370 §2.2.2). With ppk it also offers that PPK
// (RFC 9867: SK {[KEi(n),] N(PPK_IDENTITY_KEY)} → SK {[KEr(n),] N(PPK_IDENTITY)}); group 0 is an
// exchange for the PPK alone.
type intermediateKETask struct {
	group uint16
	ke    suite.KeyExchange
	ppk   []byte // owned by the configuration: never wiped here
}

func (*intermediateKETask) Kind() TaskKind              { return TaskIntermediate }
func (*intermediateKETask) Exchange() wire.ExchangeType { return wire.ExchangeIKEIntermediate }

func (t *intermediateKETask) abort(*SA) {
	if t.ke != nil {
		t.ke.Zero()
		t.ke = nil
	}
}

func (t *intermediateKETask) build(sa *SA, req *Message) error {
	if sa.state != StateIntermediate {
		return fmt.Errorf("ike: IKE_INTERMEDIATE request in state %s", sa.state)
	}
	t.abort(sa)
	if t.group != 0 {
		ke, err := suite.NewKeyExchange(t.group, sa.deps.Rand)
		if err != nil {
			return err
		}
		t.ke = ke
		req.add(&wire.KE{Group: t.group, Data: ke.PublicValue()})
	}
	if t.ppk != nil {
		n, err := sa.ppkIdentityKey(t.ppk)
		if err != nil {
			return err
		}
		req.add(n)
	}
	return nil
}

func (t *intermediateKETask) process(sa *SA, resp *Message) (bool, error) {
	defer t.abort(sa)
	if n := firstError(resp.Payloads); n != nil {
		if t.ppk != nil && n.NotifyType == wire.AuthenticationFailed {
			return false, errorf(0, "peer %s refused our post-quantum preshared key %q with AUTHENTICATION_FAILED (RFC 9867): it requires a PPK and has no key with that id, or a different one", sa.Remote, sa.Config.PPKID)
		}
		if t.group == 0 {
			return false, errorf(0, "peer refused IKE_INTERMEDIATE with %s", n.NotifyType)
		}
		return false, errorf(0, "peer refused additional key exchange %s (IKE_INTERMEDIATE) with %s", groupName(t.group), n.NotifyType)
	}
	if t.group == 0 {
		sa.inter().exchanges++
		if err := sa.initiatorPPKResponse(t.ppk, resp.Payloads); err != nil {
			return false, err
		}
		sa.setState(StateInitDone)
		return false, nil
	}
	ke := find[*wire.KE](resp.Payloads)
	if ke == nil || ke.Group != t.group {
		return false, errorf(0, "IKE_INTERMEDIATE response lacks the KE payload of additional key exchange %s", groupName(t.group))
	}
	secret, err := t.ke.SharedSecret(ke.Data)
	if err != nil {
		return false, errorf(0, "additional key exchange %s: peer's value refused: %v", groupName(t.group), err)
	}
	defer clear(secret)
	ks, err := sa.deriveAddKE(secret)
	if err != nil {
		return false, err
	}
	sa.useKeys(ks)
	sa.inter().exchanges++
	if t.ppk != nil {
		// RFC 9867: on top of the keys of the last additional key exchange.
		if err := sa.initiatorPPKResponse(t.ppk, resp.Payloads); err != nil {
			return false, err
		}
	}
	sa.finishAddKE()
	return false, nil
}

// respondIntermediate answers an IKE_INTERMEDIATE request: the next additional key exchange.
// The new keys protect only what follows the response (see intermediate.next).
func (sa *SA) respondIntermediate(req, resp *Message) {
	refuse := func(n wire.NotifyType, e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: n}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	if sa.Initiator || sa.hs == nil {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "unexpected IKE_INTERMEDIATE request in state %s", sa.state))
		return
	}
	in := sa.inter()
	in.exchanges++
	var ppkNotes []*wire.Notify
	for _, p := range req.Payloads {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == wire.PPKIdentityKey {
			ppkNotes = append(ppkNotes, n)
		}
	}
	// ppk answers PPK_IDENTITY_KEY (RFC 9867) once any additional key exchange of the request is
	// done, so that the PPK goes on top of its keys.
	ppk := func() {
		if len(ppkNotes) == 0 {
			return
		}
		ps, e := sa.responderPPKIntermediate(ppkNotes, len(in.pending) == 0)
		if e != nil {
			in.next.zero()
			in.next = nil
			refuse(e.Notify, e)
			return
		}
		resp.add(ps...)
	}
	ke := find[*wire.KE](req.Payloads)
	if ke == nil {
		// The PPK alone, or an IKE_INTERMEDIATE exchange of an extension we do not use (an empty
		// answer); either way part of the IntAuth chain.
		if len(in.pending) > 0 && len(ppkNotes) > 0 {
			refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "peer %s sent PPK_IDENTITY_KEY without the additional key exchange %s that the proposal %s calls for next", sa.Remote, groupName(in.pending[0]), sa.Proposal))
			return
		}
		ppk()
		return
	}
	if len(in.pending) == 0 || sa.state != StateIntermediate {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "peer %s sent an additional key exchange (%s) that the proposal %s does not call for", sa.Remote, groupName(ke.Group), sa.Proposal))
		return
	}
	want := in.pending[0]
	if ke.Group != want {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "peer %s sent additional key exchange %s, the proposal %s calls for %s next", sa.Remote, groupName(ke.Group), sa.Proposal, groupName(want)))
		return
	}
	k, err := suite.NewKeyExchange(want, sa.deps.Rand)
	if err != nil {
		refuse(wire.NoProposalChosen, errorf(wire.NoProposalChosen, "additional key exchange %s: %v", groupName(want), err))
		return
	}
	pub, secret, err := k.Respond(ke.Data)
	k.Zero()
	if err != nil {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "additional key exchange %s from %s: value refused: %v", groupName(want), sa.Remote, err))
		return
	}
	defer clear(secret)
	ks, err := sa.deriveAddKE(secret)
	if err != nil {
		refuse(wire.NoProposalChosen, errorf(wire.NoProposalChosen, "additional key exchange %s: %v", groupName(want), err))
		return
	}
	in.next.zero()
	in.next = ks
	resp.add(&wire.KE{Group: want, Data: pub})
	sa.finishAddKE()
	ppk()
}

// sealed is told about every message Seal protected: IKE_INTERMEDIATE messages join the IntAuth
// chain, and a responder's new keys take over once its response is sealed.
func (sa *SA) sealed(h wire.Header, payloads []wire.Payload) {
	if h.Exchange != wire.ExchangeIKEIntermediate || sa.hs == nil {
		return
	}
	first, plain, err := wire.EncodePayloads(payloads)
	if err != nil {
		return
	}
	sa.noteIntermediate(h, wire.IntAuthData(h, first, plain))
	if in := sa.hs.inter; in != nil && h.IsResponse() && in.next != nil {
		ks := in.next
		in.next = nil
		sa.useKeys(ks)
	}
}

// groupName names a key exchange method in strongSwan's words ("mlkem768").
func groupName(g uint16) string {
	return proposal.Transform{Type: proposal.TypeKeyExchange, ID: g}.String()
}

// received is told about every request and response before its tasks see it: a received
// IKE_INTERMEDIATE message joins the IntAuth chain while the keys that protected it are still in
// force.
func (sa *SA) received(m *Message) {
	if m.Exchange != wire.ExchangeIKEIntermediate || m.IntAuth == nil {
		return
	}
	h, err := wire.DecodeHeader(m.IntAuth)
	if err != nil {
		return
	}
	sa.noteIntermediate(h, m.IntAuth)
}
