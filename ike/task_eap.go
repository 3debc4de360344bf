package ike

import (
	"net/netip"

	"github.com/goipsec/goipsec/ike/eap"
	"github.com/goipsec/goipsec/ike/wire"
)

// EAP in IKE_AUTH (RFC 7296 §2.16), EAP-only authentication (RFC 5998) and a second round of
// authentication (RFC 4739: certificate or PSK, then EAP). IKE_AUTH then takes several
// exchanges: the initiator's authTask asks for another round (process returns again) and only
// the last response reaches the tasks that share the exchange (configuration payload, first
// Child SA); the responder keeps its state between the requests in sa.authResp. The AUTH
// payloads that close an EAP round are computed like PSK AUTH with the MSK as key — or SK_pi and
// SK_pr for methods without one (EAP-MD5), as strongSwan does.

// EAPClientSpec is how we authenticate with EAP (local.auth = eap...).
type EAPClientSpec struct {
	// Second: a second round after our certificate or PSK (RFC 4739); otherwise EAP is our
	// only authentication.
	Second bool
	// ID is the identity sent as IDi of a second round (default: EAP identity).
	ID Identity
	// New starts a client conversation (identity, methods and password from the configuration).
	New func() *eap.Client
	// EAPOnly: the gateway authenticates only through EAP (remote.auth = eap...): we announce
	// RFC 5998 and accept a first response without AUTH.
	EAPOnly bool
}

// EAPPeer describes the client an EAP server is started for.
type EAPPeer struct {
	// ID is its IKE identity (the round's IDi).
	ID            Identity
	Local, Remote netip.AddrPort
	SPIi, SPIr    uint64
}

// EAPServer is the gateway's side of one conversation: an eap.Server, or a relay to RADIUS.
type EAPServer interface {
	Start() ([]byte, error)
	Process(resp []byte) ([]byte, *eap.Result, error)
}

// EAPServerSpec is what we require of a client that authenticates with EAP (remote.auth = eap-...).
type EAPServerSpec struct {
	Second bool
	// New starts a conversation for a client.
	New func(peer EAPPeer) (EAPServer, error)
	// EAPOnly: we authenticate ourselves only through EAP when the client allows it (RFC 5998,
	// local.auth = eap... on the gateway); the method must be mutual and derive a key.
	EAPOnly bool
	// Blocking: the server's steps block (a relay to RADIUS); they run outside the SA
	// (async.go) while the request waits.
	Blocking bool
}

// authPhase is where an initiator's IKE_AUTH stands.
type authPhase uint8

const (
	phaseFirst    authPhase = iota // the first request
	phaseSecondID                  // RFC 4739: the second round's IDi
	phaseEAP                       // an EAP response to send
	phaseEAPAuth                   // our AUTH after EAP succeeded
)

// eapInitiator is the initiator's EAP state, kept in authTask.
type eapInitiator struct {
	phase    authPhase
	client   *eap.Client
	out      []byte
	msk      []byte
	hasMSK   bool
	idi      Identity // the IDi our EAP AUTH covers
	verified bool     // the responder's first AUTH verified (false in EAP-only)
	gotFirst bool     // the first response was processed
}

// EAPID is the EAP identity authenticated in the IKE SA ("" without EAP).
func (sa *SA) EAPID() string {
	if sa.rare == nil {
		return ""
	}
	return sa.rare.eapID
}

// usesEAP reports whether the initiator authenticates with EAP in this IKE SA.
func (sa *SA) usesEAP() bool { return sa.Config.LocalEAP != nil }

// eapFirstRequest is the first IKE_AUTH request when EAP is our only authentication: IDi and no
// AUTH (RFC 7296 §2.16).
func (t *authTask) eapFirstRequest(sa *SA, req *Message) {
	spec := sa.Config.LocalEAP
	t.eap.idi = sa.LocalID
	t.eap.client = spec.New()
	req.add(&wire.IDi{IDType: sa.LocalID.Type, Data: sa.LocalID.Data})
	if sa.Config.Unique != UniqueNever && sa.uniqueness().Existing == 0 {
		req.add(&wire.Notify{NotifyType: wire.InitialContact})
	}
	if !sa.Config.RemoteID.IsAny() {
		req.add(&wire.IDr{IDType: sa.Config.RemoteID.Type, Data: sa.Config.RemoteID.Data})
	}
	if spec.EAPOnly {
		req.add(&wire.Notify{NotifyType: wire.EAPOnlyAuthentication})
	}
	sa.mobikeAuthRequest(req) // task_mobike.go
	t.eap.phase = phaseEAP
	sa.setState(StateAuthSent)
}

// buildRound builds the requests after the first.
func (t *authTask) buildRound(sa *SA, req *Message) error {
	e := &t.eap
	switch e.phase {
	case phaseSecondID:
		spec := sa.Config.LocalEAP
		e.idi = spec.ID
		if e.idi.IsAny() {
			e.idi = sa.LocalID
		}
		e.client = spec.New()
		req.add(&wire.IDi{IDType: e.idi.Type, Data: e.idi.Data})
		e.phase = phaseEAP
	case phaseEAP:
		req.add(&wire.EAP{Code: e.out[0], Identifier: e.out[1], EAPType: eapType(e.out), Data: eapData(e.out)})
	case phaseEAPAuth:
		key := e.msk
		if !e.hasMSK {
			key = sa.keys.SKpi
		}
		req.add(&wire.AUTH{Method: wire.AuthSharedKeyMIC, Data: sa.pskAUTH(key, true, idRest(e.idi))})
	}
	sa.setState(StateAuthSent)
	return nil
}

// eapType and eapData split an encoded EAP packet for wire.EAP.
func eapType(b []byte) uint8 {
	if len(b) > 4 && (b[0] == eap.CodeRequest || b[0] == eap.CodeResponse) {
		return b[4]
	}
	return 0
}

func eapData(b []byte) []byte {
	if len(b) > 4 && (b[0] == eap.CodeRequest || b[0] == eap.CodeResponse) {
		return b[5:]
	}
	return b[4:]
}

// eapPacket re-encodes a received EAP payload as an EAP packet.
func eapPacket(p *wire.EAP) []byte {
	return (&eap.Packet{Code: p.Code, Identifier: p.Identifier, Type: eap.Type(p.EAPType), Data: p.Data}).Marshal()
}

// processRound handles a response while EAP or a second round is under way. It returns again
// while more rounds follow.
func (t *authTask) processRound(sa *SA, resp *Message) (bool, error) {
	e := &t.eap
	ps := resp.Payloads
	if n := firstError(ps); n != nil && find[*wire.EAP](ps) == nil {
		if n.NotifyType == wire.AuthenticationFailed {
			return false, errorf(wire.AuthenticationFailed, "gateway %s refused our EAP authentication (AUTHENTICATION_FAILED) as %s", sa.Remote, e.idi)
		}
		return false, errorf(0, "gateway refused IKE_AUTH with %s", n.NotifyType)
	}
	if e.phase == phaseEAPAuth {
		// The last response: the gateway's AUTH with the MSK.
		auth := find[*wire.AUTH](ps)
		if auth == nil {
			return false, errorf(0, "gateway's last IKE_AUTH response lacks AUTH")
		}
		key := e.msk
		if !e.hasMSK {
			key = sa.keys.SKpr
		}
		if auth.Method != wire.AuthSharedKeyMIC || !hmacEqual(sa.pskAUTH(key, false, idRest(sa.RemoteID)), auth.Data) {
			return false, errorf(wire.AuthenticationFailed, "gateway %s's AUTH over the EAP key does not verify", sa.RemoteID)
		}
		if !e.verified && !(t.eap.client.Mutual() && e.hasMSK) {
			return false, errorf(wire.AuthenticationFailed, "EAP-only authentication with EAP-%s does not authenticate the gateway (RFC 5998 needs a mutual method with a key)", t.eap.client.Method())
		}
		return false, sa.initiatorEstablished(ps)
	}
	p := find[*wire.EAP](ps)
	if p == nil {
		return false, errorf(0, "gateway's IKE_AUTH response lacks the EAP payload")
	}
	out, err := e.client.Process(eapPacket(p))
	if err != nil {
		return false, errorf(wire.AuthenticationFailed, "EAP with gateway %s: %v", sa.Remote, err)
	}
	if res := e.client.Result(); res != nil {
		if !res.Success {
			return false, errorf(wire.AuthenticationFailed, "gateway %s refused our EAP authentication as %s: %v", sa.Remote, e.idi, res.Err)
		}
		e.msk, e.hasMSK = res.MSK, len(res.MSK) > 0
		sa.rareState().eapID = res.Identity
		e.phase = phaseEAPAuth
		return true, nil
	}
	e.out = out
	return true, nil
}

// processFirstWithEAP handles the first response when we authenticate with EAP: the gateway's
// identity and AUTH (absent in EAP-only) with the first EAP request.
func (t *authTask) processFirstWithEAP(sa *SA, resp *Message) (bool, error) {
	ps := resp.Payloads
	idr := find[*wire.IDr](ps)
	p := find[*wire.EAP](ps)
	if idr == nil || p == nil {
		if n := firstError(ps); n != nil {
			return false, errorf(n.NotifyType, "gateway %s refused our EAP request (IKE_AUTH without AUTH) with %s: check that connection %s is meant for EAP on both sides", sa.Remote, n.NotifyType, sa.Config.Name)
		}
		if find[*wire.AUTH](ps) != nil {
			return false, errorf(wire.AuthenticationFailed, "we (connection %s) authenticate with EAP, but gateway %s answered without an EAP request", sa.Config.Name, sa.Remote)
		}
		return false, errorf(0, "IKE_AUTH response lacks IDr or EAP")
	}
	if err := t.checkResponder(sa, idr, ps); err != nil {
		return false, err
	}
	return t.processRound(sa, resp)
}

// checkResponder verifies the gateway's identity and, unless EAP-only, its AUTH.
func (t *authTask) checkResponder(sa *SA, idr *wire.IDr, ps []wire.Payload) error {
	remote := Identity{Type: idr.IDType, Data: append([]byte(nil), idr.Data...)}
	if !sa.Config.remoteIDMatches(remote) {
		return errorf(wire.AuthenticationFailed, "peer identifies as %s, but connection %s expects %s", remote, sa.Config.Name, sa.Config.RemoteID)
	}
	sa.RemoteID = remote
	if find[*wire.AUTH](ps) == nil {
		if sa.Config.LocalEAP == nil || !sa.Config.LocalEAP.EAPOnly || sa.Config.LocalEAP.Second {
			return errorf(wire.AuthenticationFailed, "gateway %s did not authenticate itself (no AUTH: EAP-only), which connection %s does not allow (remote auth is not eap)", remote, sa.Config.Name)
		}
		return nil
	}
	if verr := sa.verifyAuth(sa.Config, remote, ps); verr != nil {
		return verr
	}
	t.eap.verified = true
	return nil
}

// initiatorEstablished completes IKE_AUTH for an initiator; ps is the last response.
func (sa *SA) initiatorEstablished(ps []wire.Payload) error {
	sa.mobikeAuthResponse(ps) // task_mobike.go
	defer sa.redirectAfterAuth(ps)
	if !sa.setState(StateEstablished) {
		return errorf(0, "IKE_AUTH response in state %s", sa.state)
	}
	sa.Established = sa.deps.Now()
	sa.emit(IKEUp{IKE: sa.Info()})
	return nil
}

// --- responder ---

// respPhase is where a responder's multi-round IKE_AUTH stands.
type respPhase uint8

const (
	respSecondID respPhase = iota + 1 // waiting for the second round's IDi
	respEAP                           // waiting for an EAP response
	respAUTH                          // waiting for the AUTH after EAP Success
)

// authResponder is a responder's state between IKE_AUTH requests.
type authResponder struct {
	cfg    *PeerConfig
	phase  respPhase
	idi    Identity // the IDi the client's EAP AUTH covers
	server EAPServer
	msk    []byte
	hasMSK bool
	// first are the payloads of the first request (CP, SA, TSi, TSr, notifies), answered with
	// the last response.
	first   []wire.Payload
	eapOnly bool
	// aaa is what the EAP server (RADIUS) said about the client's virtual IP.
	aaa VIPRequest
}

// wantsEAPRound reports whether cfg authenticates the peer with EAP in its first round.
func (c *PeerConfig) wantsEAPRound() bool { return c.RemoteEAP != nil && !c.RemoteEAP.Second }

// respondEAPStart answers a first request without AUTH for a connection that authenticates the
// client with EAP: our identity and AUTH (none in EAP-only) with the first EAP request.
func (sa *SA) respondEAPStart(cfg *PeerConfig, remote Identity, ps []wire.Payload, resp *Message) *Error {
	r := &authResponder{cfg: cfg, idi: remote, first: ps}
	r.eapOnly = cfg.RemoteEAP.EAPOnly && findNotify(ps, wire.EAPOnlyAuthentication) != nil
	var head []wire.Payload
	head = append(head, &wire.IDr{IDType: sa.LocalID.Type, Data: sa.LocalID.Data})
	if !r.eapOnly {
		certs, ourAuth, aerr := sa.buildAuth(cfg, remote, ps)
		if aerr != nil {
			return aerr
		}
		head = append(head, certs...)
		head = append(head, ourAuth)
	}
	sa.rareState().authResp = r
	return r.start(sa, head, resp)
}

// eapStep is the result of a server step, passed through Async when the server blocks.
type eapStep struct {
	out []byte
	res *eap.Result
	err error
}

// start creates the EAP server and answers with its first request after head (our IDr and AUTH
// in the first round). A blocking server's first step runs outside the SA.
func (r *authResponder) start(sa *SA, head []wire.Payload, resp *Message) *Error {
	srv, err := r.cfg.RemoteEAP.New(EAPPeer{ID: r.idi, Local: sa.Local, Remote: sa.Remote, SPIi: sa.SPIi, SPIr: sa.SPIr})
	if err != nil {
		return errorf(wire.AuthenticationFailed, "connection %s: cannot start EAP for %s: %v", r.cfg.Name, r.idi, err)
	}
	r.server, r.phase = srv, respEAP
	finish := func(sa *SA, v any, resp *Message) {
		st := v.(eapStep)
		if st.err != nil {
			e := errorf(wire.AuthenticationFailed, "connection %s: EAP for %s: %v", r.cfg.Name, r.idi, st.err)
			resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: wire.AuthenticationFailed}}
			sa.emit(Failed{Conn: sa.name(), Err: e})
			sa.closeAfterResponse(e.Reason)
			return
		}
		resp.add(head...)
		resp.add(toWireEAP(st.out))
	}
	run := func() any {
		out, err := srv.Start()
		return eapStep{out: out, err: err}
	}
	if r.cfg.RemoteEAP.Blocking {
		sa.holdRequest(wire.ExchangeIKEAuth, run, finish)
		return nil
	}
	finish(sa, run(), resp)
	return nil
}

func toWireEAP(b []byte) *wire.EAP {
	return &wire.EAP{Code: b[0], Identifier: b[1], EAPType: eapType(b), Data: eapData(b)}
}

// respondAuthRound answers the IKE_AUTH requests after the first one.
func (sa *SA) respondAuthRound(req, resp *Message) {
	r := sa.rare.authResp // respondAuth calls this only when there is one
	ps := req.Payloads
	cfg := r.cfg
	refuse := func(n wire.NotifyType, e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: n}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	switch r.phase {
	case respSecondID:
		idi := find[*wire.IDi](ps)
		if idi == nil {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "connection %s requires a second authentication round (EAP), but peer %s sent no IDi for it", cfg.Name, sa.RemoteID))
			return
		}
		r.idi = Identity{Type: idi.IDType, Data: append([]byte(nil), idi.Data...)}
		if err := r.start(sa, nil, resp); err != nil {
			refuse(wire.AuthenticationFailed, err)
			return
		}
	case respEAP:
		p := find[*wire.EAP](ps)
		if p == nil {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "peer %s sent no EAP response during EAP", sa.RemoteID))
			return
		}
		pkt := eapPacket(p)
		run := func() any {
			out, res, err := r.server.Process(pkt)
			return eapStep{out: out, res: res, err: err}
		}
		if cfg.RemoteEAP.Blocking {
			sa.holdRequest(wire.ExchangeIKEAuth, run, r.eapStepDone)
			return
		}
		r.eapStepDone(sa, run(), resp)
	case respAUTH:
		auth := find[*wire.AUTH](ps)
		if auth == nil {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "peer %s sent no AUTH after EAP", r.idi))
			return
		}
		key, ourKey := r.msk, r.msk
		if !r.hasMSK {
			key, ourKey = sa.keys.SKpi, sa.keys.SKpr
		}
		if auth.Method != wire.AuthSharedKeyMIC || !hmacEqual(sa.pskAUTH(key, true, idRest(r.idi)), auth.Data) {
			refuse(wire.AuthenticationFailed, errorf(wire.AuthenticationFailed, "AUTH of %s over the EAP key does not verify", r.idi))
			return
		}
		sa.rare.authResp = nil
		ourAuth := &wire.AUTH{Method: wire.AuthSharedKeyMIC, Data: sa.pskAUTH(ourKey, false, idRest(sa.LocalID))}
		sa.establishResponder(cfg, sa.RemoteID, r.first, resp, []wire.Payload{ourAuth}, r.aaa)
	}
}

// eapStepDone answers an EAP response with the server's next packet, and keeps the outcome.
func (r *authResponder) eapStepDone(sa *SA, v any, resp *Message) {
	st := v.(eapStep)
	fail := func(e *Error) {
		resp.Payloads = []wire.Payload{&wire.Notify{NotifyType: wire.AuthenticationFailed}}
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
	}
	if st.err != nil {
		fail(errorf(wire.AuthenticationFailed, "EAP with %s: %v", r.idi, st.err))
		return
	}
	resp.add(toWireEAP(st.out))
	res := st.res
	if res == nil {
		return
	}
	if !res.Success {
		e := errorf(wire.AuthenticationFailed, "EAP-%s authentication of %s failed: %v", res.Method, orID(res.Identity, r.idi), res.Err)
		sa.emit(Failed{Conn: sa.name(), Err: e})
		sa.closeAfterResponse(e.Reason)
		return
	}
	if r.eapOnly && len(res.MSK) == 0 {
		// RFC 5998 §4: EAP-only needs a method that authenticates us and derives a key.
		fail(errorf(wire.AuthenticationFailed, "EAP-only authentication with EAP-%s would leave us unauthenticated (no key): refused", res.Method))
		return
	}
	r.msk, r.hasMSK, r.phase = res.MSK, len(res.MSK) > 0, respAUTH
	r.aaa = VIPRequest{ID: res.Identity, AAA: res.FramedIPs, AAAPool: res.FramedPool}
	rs := sa.rareState()
	rs.eapID, rs.aaaClass = res.Identity, res.Class
}

func orID(s string, id Identity) string {
	if s != "" {
		return s
	}
	return id.String()
}

// eapMismatch names the side that wants EAP when a client sent no AUTH to a connection that
// expects one: the one-line reason of the failure.
func eapMismatch(remote Identity, from string, cfg *PeerConfig) *Error {
	return errorf(wire.AuthenticationFailed, "peer %s (%s) wants EAP authentication (IKE_AUTH without AUTH), but connection %s expects %s from it", remote, from, cfg.Name, cfg.expectedAuth())
}

func (c *PeerConfig) expectedAuth() string {
	if c.Authenticator != nil {
		return "a signature or PSK (remote auth is not eap)"
	}
	return "a PSK"
}
