package ike

import (
	"crypto/hmac"
	"fmt"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
)

// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): when a CREATE_CHILD_SA exchange (a new or rekeyed Child SA, a
// rekeyed IKE SA) chooses a proposal with additional key exchanges, the CREATE_CHILD_SA exchange
// carries the first key exchange (KE), and one IKE_FOLLOWUP_KE exchange per additional one
// follows, linked to it by the responder's ADDITIONAL_KEY_EXCHANGE notification:
//
//	CREATE_CHILD_SA  SK {SA, Ni, KEi, [TSi, TSr]}  →  SK {SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link1), ...}
//	IKE_FOLLOWUP_KE  SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  →  SK {KEr(1), [N(ADDITIONAL_KEY_EXCHANGE)(link2)]}
//	...
//
// Only after the last one are the keys derived, from SK(0) | Ni | Nr | SK(1) | ... | SK(n) (KEYMAT
// for a Child SA, SKEYSEED for an IKE SA). The tasks of CREATE_CHILD_SA stay unaware of it: as
// initiator the follow-up exchanges run between the CREATE_CHILD_SA response and its processing,
// which then finds the extra secrets in SA.addKE; as responder the completion of the exchange is
// deferred until the last follow-up arrives.

// linkLen is the size of the link data we hand out; RFC 9370 leaves it to the responder.
const linkLen = 8

// followupInit is the initiator's state between a CREATE_CHILD_SA response and its processing.
type followupInit struct {
	saved   *Message // the CREATE_CHILD_SA response, processed once all key exchanges are done
	groups  []uint16 // additional key exchanges still to run
	link    []byte
	ke      suite.KeyExchange
	secrets [][]byte // SK(1) ... so far
}

func (f *followupInit) zero() {
	if f.ke != nil {
		f.ke.Zero()
		f.ke = nil
	}
	for _, s := range f.secrets {
		clear(s)
	}
	f.secrets = nil
}

// followupResponder is the responder's state while it waits for the initiator's follow-ups.
type followupResponder struct {
	groups  []uint16
	link    []byte
	secrets [][]byte
	// finish completes the CREATE_CHILD_SA exchange (derives the keys, installs the Child SA or
	// spawns the new IKE SA) once SA.addKE holds every additional secret.
	finish func()
	// abort undoes what the CREATE_CHILD_SA exchange prepared when the follow-ups never complete.
	abort func()
	what  string
}

func (f *followupResponder) zero() {
	for _, s := range f.secrets {
		clear(s)
	}
	f.secrets = nil
}

// followup intercepts responses for IKE_FOLLOWUP_KE. A CREATE_CHILD_SA response that starts
// follow-up exchanges, and every follow-up response but the last, are answered with the next
// follow-up request (handled true). After the last, the saved CREATE_CHILD_SA response is returned
// for its tasks, with the additional secrets in SA.addKE.
func (sa *SA) followup(resp *Message) (out *Message, next *Message, handled bool) {
	var f *followupInit
	if sa.rare != nil {
		f = sa.rare.fuInit
	}
	if f == nil {
		if resp.Exchange != wire.ExchangeCreateChildSA || firstError(resp.Payloads) != nil {
			return resp, nil, false
		}
		saPayload := find[*wire.SA](resp.Payloads)
		if saPayload == nil || len(saPayload.Proposals) != 1 {
			return resp, nil, false
		}
		groups := addKEGroups(fromWire(saPayload.Proposals[0]))
		if len(groups) == 0 {
			return resp, nil, false
		}
		n := findNotify(resp.Payloads, wire.AdditionalKeyExchange)
		if n == nil || len(n.Data) == 0 {
			sa.failActive(errorf(0, "peer chose additional key exchanges (%s) in CREATE_CHILD_SA but sent no ADDITIONAL_KEY_EXCHANGE to continue with (RFC 9370 §2.2.4)", fromWire(saPayload.Proposals[0])))
			return nil, nil, true
		}
		f = &followupInit{saved: resp, groups: groups, link: append([]byte(nil), n.Data...)}
		sa.rareState().fuInit = f
		req, err := sa.followupRequest(f)
		if err != nil {
			sa.failActive(errorf(0, "IKE_FOLLOWUP_KE: %v", err))
			return nil, nil, true
		}
		return nil, req, true
	}
	if resp.Exchange != wire.ExchangeIKEFollowupKE {
		sa.failActive(errorf(0, "expected an IKE_FOLLOWUP_KE response, got %s", resp.Exchange))
		return nil, nil, true
	}
	if n := firstError(resp.Payloads); n != nil {
		sa.failActive(errorf(0, "peer refused additional key exchange %s (IKE_FOLLOWUP_KE) with %s", groupName(f.groups[0]), n.NotifyType))
		return nil, nil, true
	}
	ke := find[*wire.KE](resp.Payloads)
	if ke == nil || ke.Group != f.groups[0] {
		sa.failActive(errorf(0, "IKE_FOLLOWUP_KE response lacks the KE payload of additional key exchange %s", groupName(f.groups[0])))
		return nil, nil, true
	}
	secret, err := f.ke.SharedSecret(ke.Data)
	f.ke.Zero()
	f.ke = nil
	if err != nil {
		sa.failActive(errorf(0, "additional key exchange %s: peer's value refused: %v", groupName(f.groups[0]), err))
		return nil, nil, true
	}
	f.secrets = append(f.secrets, secret)
	f.groups = f.groups[1:]
	if len(f.groups) > 0 {
		if n := findNotify(resp.Payloads, wire.AdditionalKeyExchange); n != nil && len(n.Data) > 0 {
			f.link = append(f.link[:0], n.Data...)
		}
		req, err := sa.followupRequest(f)
		if err != nil {
			sa.failActive(errorf(0, "IKE_FOLLOWUP_KE: %v", err))
			return nil, nil, true
		}
		return nil, req, true
	}
	sa.rare.fuInit = nil // f came from there
	sa.rare.addKE = f.secrets
	f.secrets = nil
	return f.saved, nil, false
}

// followupRequest builds the next IKE_FOLLOWUP_KE request.
func (sa *SA) followupRequest(f *followupInit) (*Message, error) {
	ke, err := suite.NewKeyExchange(f.groups[0], sa.deps.Rand)
	if err != nil {
		return nil, err
	}
	f.ke = ke
	req := &Message{Exchange: wire.ExchangeIKEFollowupKE}
	req.add(&wire.KE{Group: f.groups[0], Data: ke.PublicValue()},
		&wire.Notify{NotifyType: wire.AdditionalKeyExchange, Data: append([]byte(nil), f.link...)})
	return req, nil
}

// failActive gives up the outstanding exchange and its follow-ups.
func (sa *SA) failActive(err *Error) {
	if r := sa.rare; r != nil && r.fuInit != nil {
		r.fuInit.zero()
		r.fuInit = nil
	}
	tasks := sa.active
	sa.active = nil
	for _, t := range tasks {
		t.abort(sa)
	}
	sa.emit(Failed{Conn: sa.name(), Err: err})
}

// doneAddKE wipes the additional secrets once the exchange that used them is processed.
func (sa *SA) doneAddKE() {
	r := sa.rare
	if r == nil {
		return
	}
	for _, s := range r.addKE {
		clear(s)
	}
	r.addKE = nil
}

// additionalSecrets returns the additional key exchanges' secrets of the exchange being
// completed (RFC 9370), nil when it had none.
func (sa *SA) additionalSecrets() [][]byte {
	if sa.rare == nil {
		return nil
	}
	return sa.rare.addKE
}

// deferForFollowup is called by a CREATE_CHILD_SA responder whose chosen proposal has additional
// key exchanges: finish will complete the exchange after the last IKE_FOLLOWUP_KE, abort undo
// what it prepared if that never comes. It returns the ADDITIONAL_KEY_EXCHANGE notification for
// the response.
func (sa *SA) deferForFollowup(groups []uint16, what string, finish, abort func()) (*wire.Notify, error) {
	sa.dropFollowupResponder()
	link, err := sa.random(linkLen)
	if err != nil {
		return nil, err
	}
	sa.rareState().fuResp = &followupResponder{groups: groups, link: link, finish: finish, abort: abort, what: what}
	return &wire.Notify{NotifyType: wire.AdditionalKeyExchange, Data: append([]byte(nil), link...)}, nil
}

// dropFollowupResponder forgets a deferred exchange whose follow-ups did not come.
func (sa *SA) dropFollowupResponder() {
	if r := sa.rare; r != nil && r.fuResp != nil {
		f := r.fuResp
		r.fuResp = nil
		f.zero()
		if f.abort != nil {
			f.abort()
		}
	}
}

// respondFollowupKE answers an IKE_FOLLOWUP_KE request.
func (sa *SA) respondFollowupKE(req, resp *Message) {
	var f *followupResponder
	if sa.rare != nil {
		f = sa.rare.fuResp
	}
	n := findNotify(req.Payloads, wire.AdditionalKeyExchange)
	if f == nil || n == nil || !hmac.Equal(n.Data, f.link) {
		// RFC 9370 §2.2.4: no exchange waits for this link.
		resp.add(&wire.Notify{NotifyType: wire.StateNotFound})
		sa.emit(Failed{Conn: sa.name(), Err: errorf(wire.StateNotFound, "peer %s sent IKE_FOLLOWUP_KE for an exchange we do not wait for", sa.Remote)})
		return
	}
	fail := func(nt wire.NotifyType, e *Error) {
		resp.add(&wire.Notify{NotifyType: nt})
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.dropFollowupResponder()
	}
	want := f.groups[0]
	ke := find[*wire.KE](req.Payloads)
	if ke == nil || ke.Group != want {
		fail(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "%s: peer's IKE_FOLLOWUP_KE does not carry additional key exchange %s", f.what, groupName(want)))
		return
	}
	k, err := suite.NewKeyExchange(want, sa.deps.Rand)
	if err != nil {
		fail(wire.NoProposalChosen, errorf(wire.NoProposalChosen, "%s: %v", f.what, err))
		return
	}
	pub, secret, err := k.Respond(ke.Data)
	k.Zero()
	if err != nil {
		fail(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "%s: additional key exchange %s from %s refused: %v", f.what, groupName(want), sa.Remote, err))
		return
	}
	f.secrets = append(f.secrets, secret)
	f.groups = f.groups[1:]
	resp.add(&wire.KE{Group: want, Data: pub})
	if len(f.groups) > 0 {
		if f.link, err = sa.random(linkLen); err != nil {
			fail(wire.TemporaryFailure, errorf(wire.TemporaryFailure, "%s: %v", f.what, err))
			return
		}
		resp.add(&wire.Notify{NotifyType: wire.AdditionalKeyExchange, Data: append([]byte(nil), f.link...)})
		return
	}
	sa.rare.fuResp = nil // f came from there
	sa.rare.addKE = f.secrets
	f.secrets = nil
	f.finish()
	sa.doneAddKE()
}

// describeFollowup names a deferred exchange in logs.
func describeFollowup(kind string, groups []uint16) string {
	s := kind + " with additional key exchanges"
	for i, g := range groups {
		s += fmt.Sprintf(" %d:%s", i+1, groupName(g))
	}
	return s
}

// dropFollowups forgets every follow-up state (the IKE SA ends).
func (sa *SA) dropFollowups() {
	if r := sa.rare; r != nil {
		if f := r.fuInit; f != nil {
			f.zero()
			r.fuInit = nil
		}
		if f := r.fuResp; f != nil {
			r.fuResp = nil
			f.zero()
		}
	}
	sa.doneAddKE()
}

// deferChildKeys defers a responder's Child SA key derivation until the follow-ups are done; the
// caller says with whenKeyed what to do with the keys.
func (sa *SA) deferChildKeys(c *ChildSA, ni, nr, secret []byte, groups []uint16) (*wire.Notify, error) {
	ni, nr, s0 := append([]byte(nil), ni...), append([]byte(nil), nr...), append([]byte(nil), secret...)
	var n *wire.Notify
	n, err := sa.deferForFollowup(groups, describeFollowup("child "+c.Name, groups), func() {
		defer clear(s0)
		inst, err := sa.childKeys(c, ni, nr, s0)
		if err != nil {
			sa.emit(Failed{Conn: sa.name(), Err: err})
			return
		}
		if r := sa.rare; r != nil && r.fuThen != nil {
			then := r.fuThen
			r.fuThen = nil
			then(inst)
		}
	}, func() {
		clear(s0)
		if r := sa.rare; r != nil {
			r.fuThen = nil
		}
	})
	return n, err
}

// whenKeyed runs then with a Child SA's keys: now, or once its IKE_FOLLOWUP_KE exchanges are done
// (inst is nil then).
func (sa *SA) whenKeyed(inst *ChildInstall, then func(*ChildInstall)) {
	if inst != nil {
		then(inst)
		return
	}
	sa.rareState().fuThen = then
}
