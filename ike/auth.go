package ike

import (
	"fmt"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ts"
)

// keyPad is the constant of the PSK AUTH computation (RFC 7296 §2.15).
var keyPad = []byte("Key Pad for IKEv2")

// signedOctets builds the data AUTH covers (RFC 7296 §2.15): our IKE_SA_INIT message, the peer's
// nonce and prf(SK_p, RestOfIDPayload) of the identity of the side that signs.
func (sa *SA) signedOctets(initiatorSide bool, idRest []byte) []byte {
	var msg, nonce, skp []byte
	if initiatorSide {
		msg, nonce, skp = sa.initReq, sa.Nr, sa.keys.SKpi
	} else {
		msg, nonce, skp = sa.initResp, sa.Ni, sa.keys.SKpr
	}
	out := make([]byte, 0, len(msg)+len(nonce)+sa.prf.Size())
	out = append(out, msg...)
	out = append(out, nonce...)
	return sa.prf.AppendCompute(out, skp, idRest)
}

// pskAUTH computes AUTH = prf(prf(PSK, "Key Pad for IKEv2"), SignedOctets).
func (sa *SA) pskAUTH(psk []byte, initiatorSide bool, idRest []byte) []byte {
	k := sa.prf.Compute(psk, keyPad)
	defer clear(k)
	return sa.prf.Compute(k, sa.signedOctets(initiatorSide, idRest))
}

func idRest(id Identity) []byte {
	return append([]byte{byte(id.Type), 0, 0, 0}, id.Data...)
}

func (sa *SA) localIdentity(cfg *PeerConfig) Identity {
	if cfg.LocalID.IsAny() {
		return AddrIdentity(sa.Local.Addr().Unmap())
	}
	return cfg.LocalID
}

// AuthRequest builds the IKE_AUTH request (RFC 7296 §1.2) with PSK authentication and the first
// Child SA for child (nil: none, RFC 6023 childless is not offered, so a child is expected).
func (sa *SA) AuthRequest(child *ChildConfig) ([]wire.Payload, error) {
	if sa.State != StateInitDone || !sa.Initiator {
		return nil, fmt.Errorf("ike: IKE_AUTH request in state %s", sa.State)
	}
	sa.LocalID = sa.localIdentity(sa.Config)
	certs, auth, aerr := sa.buildAuth(sa.Config, sa.Config.RemoteID, nil)
	if aerr != nil {
		return nil, aerr
	}
	ps := []wire.Payload{&wire.IDi{IDType: sa.LocalID.Type, Data: sa.LocalID.Data}}
	ps = append(ps, certs...)
	ps = append(ps, &wire.Notify{NotifyType: wire.InitialContact})
	if !sa.Config.RemoteID.IsAny() {
		ps = append(ps, &wire.IDr{IDType: sa.Config.RemoteID.Type, Data: sa.Config.RemoteID.Data})
	}
	ps = append(ps, auth)
	if child != nil {
		req, cps, err := sa.newChildRequest(child, false)
		if err != nil {
			return nil, err
		}
		sa.authChild = req
		ps = append(ps, cps...)
	}
	sa.State = StateAuthSent
	return ps, nil
}

// HandleAuthResponse verifies the responder's IKE_AUTH answer. The IKE SA is established when
// the AUTH verifies; the Child SA may still have failed (childErr), and then child is nil.
func (sa *SA) HandleAuthResponse(resp []wire.Payload) (child *ChildSA, childErr error, err error) {
	if sa.State != StateAuthSent {
		return nil, nil, errorf(0, "unexpected IKE_AUTH response in state %s", sa.State)
	}
	idr := find[*wire.IDr](resp)
	auth := find[*wire.AUTH](resp)
	if idr == nil || auth == nil {
		if n := firstError(resp); n != nil {
			if n.NotifyType == wire.AuthenticationFailed {
				return nil, nil, errorf(0, "peer refused our authentication (AUTHENTICATION_FAILED): we are %s, expecting %s; check the PSK and identities on both sides", sa.LocalID, sa.Config.RemoteID)
			}
			return nil, nil, errorf(0, "peer refused IKE_AUTH with %s", n.NotifyType)
		}
		return nil, nil, errorf(0, "IKE_AUTH response lacks IDr or AUTH")
	}
	remote := Identity{Type: idr.IDType, Data: append([]byte(nil), idr.Data...)}
	if !sa.Config.remoteIDMatches(remote) {
		return nil, nil, errorf(wire.AuthenticationFailed, "peer identifies as %s, but connection %s expects %s", remote, sa.Config.Name, sa.Config.RemoteID)
	}
	if verr := sa.verifyAuth(sa.Config, remote, resp); verr != nil {
		return nil, nil, verr
	}
	sa.RemoteID = remote
	sa.State = StateEstablished
	sa.Established = sa.deps.Now()
	if sa.authChild != nil {
		req := sa.authChild
		sa.authChild = nil
		c, cerr := sa.completeChild(req, resp, sa.Ni, sa.Nr)
		if cerr != nil {
			return nil, cerr, nil
		}
		sa.Children = append(sa.Children, c)
		return c, nil, nil
	}
	return nil, nil, nil
}

// HandleAuthRequest processes the initiator's IKE_AUTH request as responder and returns the
// response payloads. err set and resp non-nil: authentication failed (answer, then drop the SA).
// childErr: the IKE SA is up but the Child SA was refused (resp carries the Notify).
func (sa *SA) HandleAuthRequest(req []wire.Payload) (resp []wire.Payload, child *ChildSA, childErr error, err error) {
	if sa.State != StateInitDone || sa.Initiator {
		return nil, nil, nil, errorf(0, "unexpected IKE_AUTH request in state %s", sa.State)
	}
	authFailed := func(e *Error) ([]wire.Payload, *ChildSA, error, error) {
		return []wire.Payload{&wire.Notify{NotifyType: wire.AuthenticationFailed}}, nil, nil, e
	}
	idi := find[*wire.IDi](req)
	auth := find[*wire.AUTH](req)
	if idi == nil || auth == nil {
		// EAP (no AUTH in the first IKE_AUTH request) is not supported.
		return authFailed(errorf(wire.AuthenticationFailed, "IKE_AUTH from %s without AUTH (EAP is not supported)", sa.Remote))
	}
	remote := Identity{Type: idi.IDType, Data: append([]byte(nil), idi.Data...)}
	var wantLocal *Identity
	if idr := find[*wire.IDr](req); idr != nil {
		wantLocal = &Identity{Type: idr.IDType, Data: idr.Data}
	}
	// Choose the configuration by identity among the candidates whose IKE proposals include the
	// negotiated one.
	var cfg *PeerConfig
	var tried []string
	for _, c := range sa.candidates {
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
		if sa.childAcceptsTS(c, req) {
			cfg = c
			break
		}
	}
	if cfg == nil {
		return authFailed(errorf(wire.AuthenticationFailed, "no connection for peer identity %s from %s: tried %s", remote, sa.Remote, joinSemi(tried)))
	}
	sa.Config = cfg
	sa.LocalID = sa.localIdentity(cfg)
	if verr := sa.verifyAuth(cfg, remote, req); verr != nil {
		return authFailed(verr)
	}
	certs, ourAuth, aerr := sa.buildAuth(cfg, remote, req)
	if aerr != nil {
		return authFailed(aerr)
	}
	sa.RemoteID = remote
	sa.State = StateEstablished
	sa.Established = sa.deps.Now()
	resp = []wire.Payload{&wire.IDr{IDType: sa.LocalID.Type, Data: sa.LocalID.Data}}
	resp = append(resp, certs...)
	resp = append(resp, ourAuth)
	if find[*wire.SA](req) == nil {
		return resp, nil, nil, nil
	}
	cps, c, cerr := sa.respondChild(cfg, req, sa.Ni, sa.Nr, false, nil)
	resp = append(resp, cps...)
	if cerr != nil {
		return resp, nil, cerr, nil
	}
	sa.Children = append(sa.Children, c)
	return resp, c, nil, nil
}

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
		_, err1 := ts.Narrow(peerLocal, cc.remoteTS(sa.Remote.Addr()))
		_, err2 := ts.Narrow(peerRemote, cc.localTS(sa.Local.Addr()))
		if err1 == nil && err2 == nil {
			return true
		}
	}
	return false
}
