package ike

import (
	"fmt"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ts"
)

// keyPad is the constant of the PSK AUTH computation (RFC 7296 §2.15).
var keyPad = []byte("Key Pad for IKEv2")

// signedOctets builds the data AUTH covers (RFC 7296 §2.15): our IKE_SA_INIT message, the peer's
// nonce and prf(SK_p, RestOfIDPayload) of the identity of the side that signs, then IntAuth when
// IKE_INTERMEDIATE exchanges took place (RFC 9242 §3.3.2).
func (sa *SA) signedOctets(initiatorSide bool, idRest []byte) []byte {
	msg, nonce, macedID := sa.signedParts(initiatorSide, idRest, nil)
	intAuth := sa.intAuth()
	out := make([]byte, 0, len(msg)+len(nonce)+len(macedID)+len(intAuth))
	out = append(out, msg...)
	out = append(out, nonce...)
	out = append(out, macedID...)
	return append(out, intAuth...)
}

// signedParts returns the parts of the signed octets but the IntAuth chain: the IKE_SA_INIT
// message, the peer's nonce and prf(SK_p, IDRest), the last appended to scratch.
func (sa *SA) signedParts(initiatorSide bool, idRest, scratch []byte) (msg, nonce, macedID []byte) {
	var skp []byte
	if initiatorSide {
		msg, nonce, skp = sa.hs.initReq, sa.hs.Nr, sa.keys.SKpi
	} else {
		msg, nonce, skp = sa.hs.initResp, sa.hs.Ni, sa.keys.SKpr
	}
	return msg, nonce, sa.prf.AppendCompute(scratch, skp, idRest)
}

// pskAUTH computes AUTH = prf(prf(PSK, "Key Pad for IKEv2"), SignedOctets), feeding the signed
// octets to the PRF in their parts rather than concatenated (the IKE_SA_INIT message is most of
// a handshake's bytes).
func (sa *SA) pskAUTH(psk []byte, initiatorSide bool, idRest []byte) []byte {
	var kbuf, idbuf [64]byte // the largest PRF output (SHA-512)
	k := sa.prf.AppendCompute(kbuf[:0], psk, keyPad)
	defer clear(kbuf[:])
	msg, nonce, macedID := sa.signedParts(initiatorSide, idRest, idbuf[:0])
	return sa.prf.AppendCompute(make([]byte, 0, sa.prf.Size()), k, msg, nonce, macedID, sa.intAuth())
}

func idRest(id Identity) []byte {
	return append([]byte{byte(id.Type), 0, 0, 0}, id.Data...)
}

func (sa *SA) localIdentity(cfg *PeerConfig) Identity {
	if cfg.LocalID.IsAny() {
		var ids *addrIdentities
		if sa.deps != nil {
			ids = sa.deps.addrIDs
		}
		return ids.get(sa.Local.Addr().Unmap())
	}
	return cfg.LocalID
}

// Uniqueness is what the driver knows about other IKE SAs of the same identities (Deps.Unique).
type Uniqueness struct {
	// Existing counts the other established IKE SAs of the connection with the same remote
	// identity; FromOtherAddress is set when one of them runs to another peer address.
	Existing         int
	FromOtherAddress bool
}

// authTask is IKE_AUTH with PSK authentication (RFC 7296 §1.2, §2.15), as initiator; its
// responder side is respondAuth. The first Child SA rides in the same exchange as a
// childCreateTask queued behind it. With EAP or a second round (task_eap.go) it takes several
// exchanges.
type authTask struct {
	eap eapInitiator
}

func (*authTask) Kind() TaskKind              { return TaskAuth }
func (*authTask) Exchange() wire.ExchangeType { return wire.ExchangeIKEAuth }
func (*authTask) abort(*SA)                   {}

func (t *authTask) build(sa *SA, req *Message) error {
	if sa.state != StateInitDone && sa.state != StateAuthSent {
		return fmt.Errorf("ike: IKE_AUTH request in state %s", sa.state)
	}
	if t.eap.phase != phaseFirst {
		return t.buildRound(sa, req) // task_eap.go
	}
	sa.LocalID = sa.localIdentity(sa.Config)
	if sa.usesEAP() && !sa.Config.LocalEAP.Second {
		t.eapFirstRequest(sa, req)
		return nil
	}
	certs, auth, aerr := sa.buildAuth(sa.Config, sa.Config.RemoteID, nil) // authenticator.go
	if aerr != nil {
		return aerr
	}
	req.add(&wire.IDi{IDType: sa.LocalID.Type, Data: sa.LocalID.Data})
	req.add(certs...)
	if sa.Config.Unique != UniqueNever && sa.uniqueness().Existing == 0 {
		// RFC 7296 §2.4: this is the only IKE SA between the identities; the peer may drop others.
		req.add(&wire.Notify{NotifyType: wire.InitialContact})
	}
	if !sa.Config.RemoteID.IsAny() {
		req.add(&wire.IDr{IDType: sa.Config.RemoteID.Type, Data: sa.Config.RemoteID.Data})
	}
	ppk, err := sa.ppkInitiator(func() []byte { return auth.Data })
	if err != nil {
		return err
	}
	if sa.ppkMixed() {
		// The PPK is in SK_pi now (RFC 8784 §3): AUTH again, with it.
		if _, auth, aerr = sa.buildAuth(sa.Config, sa.Config.RemoteID, nil); aerr != nil {
			return aerr
		}
	}
	req.add(ppk...)
	req.add(auth)
	sa.mobikeAuthRequest(req) // task_mobike.go
	if sa.usesEAP() {
		// RFC 4739: EAP follows our certificate or PSK.
		req.add(&wire.Notify{NotifyType: wire.MultipleAuthSupported}, &wire.Notify{NotifyType: wire.AnotherAuthFollows})
	}
	sa.setState(StateAuthSent)
	return nil
}

func (sa *SA) uniqueness() Uniqueness {
	if sa.deps.Unique == nil {
		return Uniqueness{}
	}
	return sa.deps.Unique(sa)
}

// process verifies the responder's answer. The IKE SA is established when its AUTH verifies.
func (t *authTask) process(sa *SA, resp *Message) (bool, error) {
	if sa.usesEAP() && !sa.Config.LocalEAP.Second && !t.eap.gotFirst {
		t.eap.gotFirst = true
		return t.processFirstWithEAP(sa, resp) // task_eap.go
	}
	if t.eap.phase != phaseFirst {
		return t.processRound(sa, resp)
	}
	ps := resp.Payloads
	idr := find[*wire.IDr](ps)
	auth := find[*wire.AUTH](ps)
	if idr == nil || auth == nil {
		if n := firstError(ps); n != nil {
			switch n.NotifyType {
			case wire.AuthenticationFailed:
				// The peer says no more than that; a gateway that wants EAP answers the same way
				// (strongSwan: "non-matching authentication done").
				return false, errorf(wire.AuthenticationFailed, "peer refused our authentication (AUTHENTICATION_FAILED): we are %s authenticating with %s, expecting %s; check the credentials and identities on both sides, and whether the peer wants EAP from us (then set local auth = eap-...)", sa.LocalID, sa.localAuthName(), sa.Config.RemoteID)
			case wire.InvalidSyntax:
				return false, errorf(0, "peer refused IKE_AUTH with INVALID_SYNTAX (for a childless IKE SA: its childless setting may forbid it)")
			}
			return false, errorf(0, "peer refused IKE_AUTH with %s", n.NotifyType)
		}
		if find[*wire.EAP](ps) != nil {
			return false, errorf(wire.AuthenticationFailed, "gateway %s wants EAP authentication from us, but connection %s authenticates with %s (local auth is not eap)", sa.Remote, sa.Config.Name, sa.localAuthName())
		}
		return false, errorf(0, "IKE_AUTH response lacks IDr or AUTH")
	}
	remote := Identity{Type: idr.IDType, Data: append([]byte(nil), idr.Data...)}
	if !sa.Config.remoteIDMatches(remote) {
		return false, errorf(wire.AuthenticationFailed, "peer identifies as %s, but connection %s expects %s", remote, sa.Config.Name, sa.Config.RemoteID)
	}
	if err := sa.ppkInitiatorResponse(ps); err != nil {
		return false, err
	}
	if verr := sa.verifyAuth(sa.Config, remote, ps); verr != nil { // authenticator.go
		return false, verr
	}
	sa.RemoteID = remote
	if sa.usesEAP() {
		// RFC 4739: the gateway is authenticated; our EAP round follows.
		t.eap.verified = true
		t.eap.phase = phaseSecondID
		return true, nil
	}
	return false, sa.initiatorEstablished(ps)
}

// localAuthName names how we authenticate, for failure messages.
func (sa *SA) localAuthName() string {
	if sa.Config.Authenticator != nil {
		return "a certificate or PSK"
	}
	return "a PSK"
}

func authMethodName(m wire.AuthMethod) string {
	switch m {
	case wire.AuthSharedKeyMIC:
		return "a PSK"
	case 1:
		return "an RSA signature"
	case 9, 10, 11:
		return "an ECDSA signature"
	case 14:
		return "a digital signature (RFC 7427)"
	}
	return fmt.Sprintf("authentication method %d", m)
}

// respondAuth processes the initiator's IKE_AUTH request and fills in the response. A failed
// authentication answers AUTHENTICATION_FAILED and closes the SA after the response is sent.
func (sa *SA) respondAuth(req, resp *Message) {
	ps := req.Payloads
	refuse := func(n wire.NotifyType, e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: n}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	if sa.state != StateInitDone || sa.Initiator || sa.hs == nil {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "unexpected IKE_AUTH request in state %s", sa.state))
		return
	}
	if sa.rare != nil && sa.rare.authResp != nil {
		sa.respondAuthRound(req, resp) // task_eap.go
		return
	}
	idi := find[*wire.IDi](ps)
	auth := find[*wire.AUTH](ps)
	if idi == nil {
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "IKE_AUTH request from %s without IDi", sa.Remote))
		return
	}
	remote := Identity{Type: idi.IDType, Data: append([]byte(nil), idi.Data...)}
	var wantLocal *Identity
	if idr := find[*wire.IDr](ps); idr != nil {
		wantLocal = &Identity{Type: idr.IDType, Data: idr.Data}
	}
	// Choose the configuration by identity among the candidates whose IKE proposals include the
	// negotiated one.
	var cfg *PeerConfig
	var tried []string
	for _, c := range sa.hs.candidates {
		if !includesProposal(c, sa) {
			continue
		}
		local := sa.localIdentity(c)
		if wantLocal != nil && !c.LocalID.IsAny() && !sameIdentity(local, *wantLocal) {
			tried = append(tried, fmt.Sprintf("%s (we are %s, peer wants %s)", c.Name, local, *wantLocal))
			continue
		}
		if !c.remoteIDMatches(remote) {
			tried = append(tried, fmt.Sprintf("%s (expects %s)", c.Name, c.RemoteID))
			continue
		}
		if cfg == nil {
			cfg = c
		}
		// Several connections may share addresses and identities; prefer the one whose children
		// accept the requested traffic selectors.
		if sa.childAcceptsTS(c, ps) {
			cfg = c
			break
		}
	}
	if cfg == nil {
		refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "no connection for peer identity %s from %s: tried %s", remote, sa.Remote, joinSemi(tried)))
		return
	}
	sa.Config = cfg
	sa.LocalID = sa.localIdentity(cfg)
	switch {
	case auth == nil && cfg.wantsEAPRound():
		sa.RemoteID = remote
		if e := sa.respondEAPStart(cfg, remote, ps, resp); e != nil { // task_eap.go
			refuse(wire.AuthenticationFailed, e)
		}
		return
	case auth == nil:
		refuse(wire.AuthenticationFailed, eapMismatch(remote, sa.Remote.String(), cfg))
		return
	case cfg.wantsEAPRound():
		refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "peer %s authenticated with %s, but connection %s wants EAP from it (remote auth = eap-...)", remote, authMethodName(auth.Method), cfg.Name))
		return
	}
	authData, ppk, perr := sa.ppkResponder(cfg, ps, auth.Data)
	if perr != nil {
		refuse(wire.AuthenticationFailed, perr)
		return
	}
	peer := withAuthData(ps, authData)
	if sa.verifyBlocks(cfg) {
		// Certificate verification may fetch CRLs and OCSP answers (seconds): off the SA
		// (verify.go); the request is held and answered when the verdict is in.
		in, a := sa.authInput(cfg, !sa.Initiator, remote, peer), cfg.Authenticator
		sa.holdRequest(wire.ExchangeIKEAuth, func() any { return verifyResult{err: a.Verify(in, peer)} },
			func(sa *SA, result any, resp *Message) {
				sa.respondAuthVerified(cfg, remote, ps, ppk, sa.verifyFailure(cfg, result), resp)
			})
		return
	}
	sa.respondAuthVerified(cfg, remote, ps, ppk, sa.verifyAuth(cfg, remote, peer), resp) // authenticator.go
}

// respondAuthVerified goes on with a responder's IKE_AUTH once the initiator's AUTH is checked
// (verr nil: it verified).
func (sa *SA) respondAuthVerified(cfg *PeerConfig, remote Identity, ps, ppk []wire.Payload, verr *Error, resp *Message) {
	refuse := func(n wire.NotifyType, e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: n}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	if verr != nil {
		refuse(wire.AuthenticationFailed, verr)
		return
	}
	certs, ourAuth, aerr := sa.buildAuth(cfg, remote, ps)
	if aerr != nil {
		refuse(wire.AuthenticationFailed, aerr)
		return
	}
	if cfg.RemoteEAP != nil && cfg.RemoteEAP.Second {
		// RFC 4739: the client's EAP round follows its certificate or PSK.
		if findNotify(ps, wire.AnotherAuthFollows) == nil {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "connection %s requires a second authentication round (EAP) of peer %s, which announced none (ANOTHER_AUTH_FOLLOWS)", cfg.Name, remote))
			return
		}
		sa.RemoteID = remote
		sa.rareState().authResp = &authResponder{cfg: cfg, phase: respSecondID, first: ps}
		resp.add(&wire.IDr{IDType: sa.LocalID.Type, Data: sa.LocalID.Data})
		resp.add(certs...)
		resp.add(ppk...)
		resp.add(ourAuth)
		return
	}
	head := append([]wire.Payload{&wire.IDr{IDType: sa.LocalID.Type, Data: sa.LocalID.Data}}, certs...)
	head = append(head, ppk...)
	sa.establishResponder(cfg, remote, ps, resp, append(head, ourAuth), VIPRequest{})
}

// establishResponder completes a responder's IKE_AUTH: the childless and uniqueness checks, the
// virtual IPs, the state change and the last response (head: IDr, CERT and AUTH, or the AUTH
// after EAP, then CP and the Child SA).
func (sa *SA) establishResponder(cfg *PeerConfig, remote Identity, ps []wire.Payload, resp *Message, head []wire.Payload, aaa VIPRequest) {
	refuse := func(n wire.NotifyType, e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: n}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	hasChild := find[*wire.SA](ps) != nil
	switch {
	case !hasChild && cfg.Childless == ChildlessNever:
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "peer %s initiated a childless IKE SA, which connection %s forbids (childless = never)", remote, cfg.Name))
		return
	case hasChild && cfg.Childless == ChildlessForce:
		refuse(wire.InvalidSyntax, errorf(wire.InvalidSyntax, "peer %s created a Child SA in IKE_AUTH, but connection %s accepts only childless IKE SAs (childless = force)", remote, cfg.Name))
		return
	}
	sa.RemoteID = remote
	if cfg.Unique == UniqueKeep {
		if u := sa.uniqueness(); u.Existing > 0 && u.FromOtherAddress {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "connection %s: %s already has an IKE SA from another address, and unique = keep refuses a second one", cfg.Name, remote))
			return
		}
	}
	sa.PeerInitialContact = findNotify(ps, wire.InitialContact) != nil
	cp := sa.respondCP(cfg, ps, aaa) // task_cp.go
	sa.setState(StateEstablished)
	sa.Established = sa.deps.Now()
	sa.emit(IKEUp{IKE: sa.Info(), InitialContact: sa.PeerInitialContact})
	resp.add(head...)
	resp.add(sa.mobikeRespond(cfg, ps)...) // task_mobike.go
	if cp != nil {
		resp.add(cp)
	}
	if hasChild {
		respondChildInAuth(sa, &Message{Exchange: wire.ExchangeIKEAuth, Payloads: ps}, resp)
	}
	sa.dropHandshake()
}

// closeAfterResponse marks the SA to be killed once the driver has sent the response.
func (sa *SA) closeAfterResponse(r Reason) { sa.closing = r }

// Closing reports whether the SA is to be killed after the current response, and why.
func (sa *SA) Closing() (Reason, bool) { return sa.closing, sa.closing != ReasonNone }

func includesProposal(c *PeerConfig, sa *SA) bool {
	for _, p := range c.Proposals {
		if m, ok := matchProposal(p, sa.Proposal); ok && len(m.Transforms) == len(sa.Proposal.Transforms) {
			return true
		}
	}
	return false
}

// childAcceptsTS reports whether one of cfg's children has traffic selectors overlapping those of
// a Child SA request (true when the request asks for no Child SA).
func (sa *SA) childAcceptsTS(cfg *PeerConfig, req []wire.Payload) bool {
	tsi, tsr := find[*wire.TSi](req), find[*wire.TSr](req)
	if tsi == nil || tsr == nil {
		return true
	}
	peerLocal, peerRemote := tsFromWire(tsi.Selectors), tsFromWire(tsr.Selectors)
	for _, cc := range cfg.Children {
		_, err1 := ts.Narrow(peerLocal, sa.childRemoteTS(cc))
		_, err2 := ts.Narrow(peerRemote, sa.childLocalTS(cc))
		if err1 == nil && err2 == nil {
			return true
		}
	}
	return false
}
