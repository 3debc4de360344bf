package ike

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// maxInitTries bounds COOKIE and INVALID_KE_PAYLOAD round trips of one IKE_SA_INIT.
const maxInitTries = 4

// NewInitiator starts an IKE SA for cfg from local to remote: IKE_SA_INIT, IKE_AUTH with the first
// of children, then a CREATE_CHILD_SA for each further child (or, for a childless IKE SA, for all
// of them). NextRequest returns the IKE_SA_INIT request.
func NewInitiator(cfg *PeerConfig, children []*ChildConfig, local, remote netip.AddrPort, deps *Deps) (*SA, error) {
	if deps == nil {
		deps = Deps{}.WithDefaults()
	}
	sa := &SA{Config: cfg, deps: deps, Initiator: true, Local: local, Remote: remote, state: StateInitSent, hs: &handshake{}}
	var err error
	if sa.SPIi, err = sa.randomSPI(); err != nil {
		return nil, err
	}
	if len(cfg.Proposals) == 0 {
		return nil, fmt.Errorf("connection %s has no IKE proposals", cfg.Name)
	}
	kes := cfg.Proposals[0].Of(proposal.TypeKeyExchange)
	if len(kes) == 0 {
		return nil, fmt.Errorf("connection %s: the first IKE proposal has no key exchange method", cfg.Name)
	}
	sa.hs.group = kes[0].ID
	sa.enqueue(&initTask{})
	sa.enqueue(&authTask{})
	if len(cfg.VIPs) > 0 {
		sa.enqueue(&cpTask{}) // task_cp.go
	}
	for _, c := range children {
		sa.enqueue(&childCreateTask{cfg: c, inAuth: true})
	}
	return sa, nil
}

// initTask is IKE_SA_INIT as initiator (RFC 7296 §1.2); the responder side is RespondInit.
type initTask struct{}

func (*initTask) Kind() TaskKind              { return TaskInit }
func (*initTask) Exchange() wire.ExchangeType { return wire.ExchangeIKESAInit }
func (*initTask) abort(*SA)                   {}

// build makes the request and its encoding (Raw), which the SA keeps for the AUTH computation.
// After a COOKIE or INVALID_KE_PAYLOAD answer it builds the retried request.
func (*initTask) build(sa *SA, req *Message) error {
	hs := sa.hs
	if hs.ke == nil || !hs.keepKE || hs.ke.Group() != hs.group {
		if hs.ke != nil {
			hs.ke.Zero()
		}
		k, err := suite.NewKeyExchange(hs.group, sa.deps.Rand)
		if err != nil {
			return err
		}
		hs.ke = k
	}
	hs.keepKE = false
	ke := hs.ke
	var err error
	if hs.Ni == nil {
		if hs.Ni, err = sa.nonce(); err != nil {
			return err
		}
	}
	if hs.cookie != nil {
		req.add(&wire.Notify{NotifyType: wire.Cookie, Data: hs.cookie})
	}
	req.add(
		&wire.SA{Proposals: toWire(sa.Config.Proposals, nil)},
		&wire.KE{Group: hs.group, Data: ke.PublicValue()},
		&wire.Nonce{Data: hs.Ni},
	)
	req.add(sa.natdPayloads()...)
	req.add(initAuthPayloads(true, sa.Config)...)
	if sa.Config.Fragmentation {
		req.add(&wire.Notify{NotifyType: wire.FragmentationSupported})
	}
	if offersAddKE(sa.Config.Proposals) || sa.Config.offersPPKIntermediate() {
		// RFC 9370 §2.2.1: additional key exchanges run in IKE_INTERMEDIATE (RFC 9242 §3.1), and
		// so does the PPK of RFC 9867.
		req.add(&wire.Notify{NotifyType: wire.IntermediateExchangeSupported})
	}
	if sa.Config.offersPPKIntermediate() {
		req.add(&wire.Notify{NotifyType: wire.UsePPKInt}) // RFC 9867
	}
	if sa.Config.wantsPPK() {
		// RFC 8784 §3, for a peer without RFC 9867.
		req.add(&wire.Notify{NotifyType: wire.UsePPK})
	}
	if sa.Config.LocalEAP != nil && sa.Config.LocalEAP.Second {
		req.add(&wire.Notify{NotifyType: wire.MultipleAuthSupported}) // RFC 4739 §3
	}
	req.add(sa.redirectInitPayload()) // task_redirect.go
	m := &wire.Message{Header: sa.Header(wire.ExchangeIKESAInit, 0, false), Payloads: req.Payloads}
	b, err := m.Encode()
	if err != nil {
		return err
	}
	hs.initReq = b
	req.Raw = b
	return nil
}

// process handles the IKE_SA_INIT response.
func (t *initTask) process(sa *SA, resp *Message) (bool, error) {
	hs := sa.hs
	ps := resp.Payloads
	if c := findNotify(ps, wire.Cookie); c != nil {
		hs.initTries++
		if hs.initTries > maxInitTries || len(c.Data) == 0 || len(c.Data) > 64 {
			return false, errorf(0, "giving up after %d COOKIE round trips", hs.initTries)
		}
		hs.cookie = append([]byte(nil), c.Data...)
		sa.emit(Failed{Conn: sa.name(), Err: fmt.Errorf("responder %s asks for a COOKIE (it is under load): retrying with it", sa.Remote), Retry: true})
		return true, nil
	}
	if redirected, err := sa.redirectInInit(ps); redirected { // task_redirect.go
		return false, err
	}
	if n := findNotify(ps, wire.InvalidKEPayload); n != nil {
		hs.initTries++
		if len(n.Data) != 2 {
			return false, errorf(0, "INVALID_KE_PAYLOAD without a group")
		}
		g := binary.BigEndian.Uint16(n.Data)
		if !offersGroup(sa.Config.Proposals, g) || g == hs.group || hs.initTries > maxInitTries {
			return false, errorf(0, "peer asks for key exchange group %d, which we do not offer (we offer %s)", g, proposal.FormatList(sa.Config.Proposals))
		}
		sa.emit(Failed{Conn: sa.name(), Err: fmt.Errorf("peer %s prefers key exchange group %d to %d: retrying with it", sa.Remote, g, hs.group), Retry: true})
		hs.group = g
		return true, nil
	}
	if n := firstError(ps); n != nil {
		if n.NotifyType == wire.NoProposalChosen {
			return false, errorf(0, "peer accepted none of our IKE proposals: we offered %s", proposal.FormatList(sa.Config.Proposals))
		}
		return false, errorf(0, "peer refused IKE_SA_INIT with %s", n.NotifyType)
	}
	saPayload := find[*wire.SA](ps)
	kePayload := find[*wire.KE](ps)
	nonce := find[*wire.Nonce](ps)
	if saPayload == nil || kePayload == nil || nonce == nil {
		return false, errorf(0, "IKE_SA_INIT response lacks SA, KE or Nonce")
	}
	h, err := wire.DecodeHeader(resp.Raw)
	if err != nil || h.SPIr == 0 {
		return false, errorf(0, "IKE_SA_INIT response without responder SPI")
	}
	sa.SPIr = h.SPIr
	chosen, err := checkChosen(sa.Config.Proposals, saPayload, proposal.ProtoIKE)
	if err != nil {
		return false, errorf(0, "IKE_SA_INIT: %v", err)
	}
	if g, ok := chosen.get(proposal.TypeKeyExchange); !ok || g.ID != hs.group || kePayload.Group != hs.group {
		return false, errorf(0, "IKE_SA_INIT response: key exchange group %d does not match the chosen proposal %s", kePayload.Group, chosen.Proposal)
	}
	if len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return false, errorf(0, "IKE_SA_INIT response: nonce of %d bytes (RFC 7296 §3.9: 16 to 256)", len(nonce.Data))
	}
	hs.Nr = append([]byte(nil), nonce.Data...)
	secret, err := hs.ke.SharedSecret(kePayload.Data)
	if err != nil {
		return false, errorf(0, "peer's key exchange value refused: %v", err)
	}
	defer clear(secret)
	sa.checkNATD(ps, sa.SPIr)
	sa.initiatorPPKMode(ps)
	sa.PeerFragmentation = findNotify(ps, wire.FragmentationSupported) != nil
	sa.PeerChildless = findNotify(ps, wire.ChildlessIKEv2Supported) != nil
	hs.initResp = append([]byte(nil), resp.Raw...)
	if err := sa.deriveKeys(chosen.Proposal, secret); err != nil {
		return false, err
	}
	next := StateInitDone
	if inter, err := sa.planIntermediate(chosen.Proposal, findNotify(ps, wire.IntermediateExchangeSupported) != nil); err != nil {
		return false, err
	} else if inter {
		next = StateIntermediate
	}
	if !sa.setState(next) {
		return false, errorf(0, "IKE_SA_INIT response in state %s", sa.state)
	}
	if err := sa.planChildless(); err != nil {
		return false, err
	}
	return false, nil
}

// planChildless moves the Child SAs queued for IKE_AUTH to CREATE_CHILD_SA exchanges when the IKE
// SA is to be childless (RFC 6023), as `childless` asks.
func (sa *SA) planChildless() error {
	var inAuth []*childCreateTask
	for _, t := range sa.queue {
		if c, ok := t.(*childCreateTask); ok && c.inAuth {
			inAuth = append(inAuth, c)
		}
	}
	childless := false
	switch sa.Config.Childless {
	case ChildlessForce:
		if !sa.PeerChildless {
			return errorf(0, "connection %s wants a childless IKE SA (childless = force), but peer %s does not support RFC 6023", sa.Config.Name, sa.Remote)
		}
		childless = true
	case ChildlessPrefer:
		childless = sa.PeerChildless
	}
	if !childless && len(inAuth) == 0 {
		if !sa.PeerChildless {
			return errorf(0, "connection %s: an IKE SA without a Child SA needs RFC 6023 childless support, which peer %s lacks", sa.Config.Name, sa.Remote)
		}
		childless = true
	}
	for i, c := range inAuth {
		// Only the first child rides in IKE_AUTH, and none in a childless IKE SA.
		c.inAuth = !childless && i == 0
	}
	return nil
}

// natdHash is SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23). SHA-1 is what the RFC mandates
// here; it hides addresses, it protects nothing.
func natdHash(spii, spir uint64, ap netip.AddrPort) [sha1.Size]byte {
	// SHA-1(SPIi | SPIr | IP | port) hashed from one stack buffer: a handshake computes four of
	// these, and a hash.Hash, its Sum and the address slice were three heap objects each.
	var b [8 + 8 + 16 + 2]byte
	binary.BigEndian.PutUint64(b[0:], spii)
	binary.BigEndian.PutUint64(b[8:], spir)
	a := ap.Addr().Unmap()
	n := 16
	if a.Is4() {
		a4 := a.As4()
		n += copy(b[n:], a4[:])
	} else {
		a16 := a.As16()
		n += copy(b[n:], a16[:])
	}
	binary.BigEndian.PutUint16(b[n:], ap.Port())
	return sha1.Sum(b[:n+2])
}

// natdMatches reports whether a NAT detection payload's data is the hash of the given address.
func natdMatches(data []byte, spii, spir uint64, ap netip.AddrPort) bool {
	h := natdHash(spii, spir, ap)
	return bytes.Equal(data, h[:])
}

// natdPayloads returns NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP. With ForceEncap
// the source hash is deliberately wrong, so the peer sees a NAT in front of us and both sides move
// to UDP encapsulation (what strongSwan's encap=yes does).
func (sa *SA) natdPayloads() []wire.Payload {
	srcHash, dstHash := natdHash(sa.SPIi, sa.SPIr, sa.Local), natdHash(sa.SPIi, sa.SPIr, sa.Remote)
	src, dst := srcHash[:], dstHash[:]
	if sa.Config != nil && sa.Config.ForceEncap {
		src, _ = sa.random(len(src))
	}
	return []wire.Payload{
		&wire.Notify{NotifyType: wire.NATDetectionSourceIP, Data: src},
		&wire.Notify{NotifyType: wire.NATDetectionDestinationIP, Data: dst},
	}
}

// checkNATD evaluates the peer's NAT detection payloads against the addresses we see. spir is the
// responder SPI the hashes were computed with: zero in the IKE_SA_INIT request (RFC 7296 §2.23).
func (sa *SA) checkNATD(ps []wire.Payload, spir uint64) {
	var srcSeen, srcMatch, dstSeen, dstMatch bool
	want := natdHash(sa.SPIi, spir, sa.Remote)
	mine := natdHash(sa.SPIi, spir, sa.Local)
	for _, n := range findAll[*wire.Notify](ps) {
		switch n.NotifyType {
		case wire.NATDetectionSourceIP:
			srcSeen = true
			srcMatch = srcMatch || bytes.Equal(n.Data, want[:])
		case wire.NATDetectionDestinationIP:
			dstSeen = true
			dstMatch = dstMatch || bytes.Equal(n.Data, mine[:])
		}
	}
	if srcSeen {
		sa.NATRemote = !srcMatch
	}
	if dstSeen {
		sa.NATLocal = !dstMatch
	}
	// encap = yes with no NAT found: the peer saw our faked hash and believes a NAT is in front
	// of us, so both sides encapsulate. We are not behind one, so no keepalives (strongSwan's
	// "faking NAT situation"), but the IKE SA still floats to the NAT-T port (Encap).
	sa.NATFake = sa.Config != nil && sa.Config.ForceEncap && !sa.NATLocal && !sa.NATRemote
}

func offersGroup(list []proposal.Proposal, g uint16) bool {
	for _, p := range list {
		for _, t := range p.Of(proposal.TypeKeyExchange) {
			if t.ID == g {
				return true
			}
		}
	}
	return false
}

// deriveKeys computes SKEYSEED and the IKE SA keys (RFC 7296 §2.14) and sets up protection.
func (sa *SA) deriveKeys(p proposal.Proposal, secret []byte) error {
	t, prf, err := ikeTransforms(p)
	if err != nil {
		return err
	}
	skeyseed, err := suite.InitialSKEYSEED(prf, sa.hs.Ni, sa.hs.Nr, secret)
	if err != nil {
		return err
	}
	if sa.deps.KeyLog {
		sa.hs.secret = append([]byte(nil), secret...)
		sa.hs.skeyseed = append([]byte(nil), skeyseed...)
	}
	defer clear(skeyseed)
	if err := sa.installKeys(p, t, prf, skeyseed, sa.hs.Ni, sa.hs.Nr); err != nil {
		return err
	}
	if sa.hs.ke != nil {
		sa.hs.ke.Zero()
		sa.hs.ke = nil
	}
	sa.emitKeys(sa.hs.Ni, sa.hs.Nr)
	return nil
}

func (sa *SA) installKeys(p proposal.Proposal, t suite.IKETransforms, prf suite.PRF, skeyseed, ni, nr []byte) error {
	keys, err := suite.DeriveIKEKeys(t, skeyseed, ni, nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
	if err != nil {
		return err
	}
	// Check once that the keys fit the transforms; the Protectors are built per message.
	if err := keys.Fit(t); err != nil {
		keys.Zero()
		return err
	}
	sa.Proposal, sa.transforms, sa.prf, sa.keys = p, t, prf, keys
	return nil
}

// emitKeys records the keys for a debugging key log, when that is switched on.
func (sa *SA) emitKeys(ni, nr []byte) {
	if !sa.deps.KeyLog || sa.keys == nil {
		return
	}
	k := sa.keys
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	e := KeysDerived{IKE: sa.Info(), Transforms: sa.transforms,
		SKd: cp(k.SKd), SKai: cp(k.SKai), SKar: cp(k.SKar), SKei: cp(k.SKei), SKer: cp(k.SKer), SKpi: cp(k.SKpi), SKpr: cp(k.SKpr),
		Ni: cp(ni), Nr: cp(nr)}
	if sa.hs != nil {
		e.SKEYSEED, e.DHSecret = cp(sa.hs.skeyseed), cp(sa.hs.secret)
	}
	sa.emit(e)
}

func ikeTransforms(p proposal.Proposal) (suite.IKETransforms, suite.PRF, error) {
	var t suite.IKETransforms
	for _, tr := range p.Transforms {
		switch tr.Type {
		case proposal.TypeEncryption:
			t.Encr, t.EncrKeyBits = tr.ID, int(tr.KeyLength)
		case proposal.TypePRF:
			t.PRF = tr.ID
		case proposal.TypeIntegrity:
			t.Integ = tr.ID
		}
	}
	prf, err := suite.NewPRF(t.PRF)
	if err != nil {
		return t, prf, err
	}
	return t, prf, nil
}

// RespondInit handles an IKE_SA_INIT request as responder. candidates are the configurations whose
// addresses fit; the first whose proposals match is used for now, the final choice happens at
// IKE_AUTH by identity. It returns the new SA (nil when the request is refused) and the response
// to send; err explains a refusal in one line. The request's grammar must have been checked.
func RespondInit(req *wire.Message, raw []byte, local, remote netip.AddrPort, candidates []*PeerConfig, deps *Deps) (*SA, []byte, error) {
	if deps == nil {
		deps = Deps{}.WithDefaults()
	}
	refuse := func(n wire.NotifyType, data []byte, e *Error) (*SA, []byte, error) {
		h := wire.Header{SPIi: req.SPIi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse}
		m := &wire.Message{Header: h, Payloads: []wire.Payload{&wire.Notify{NotifyType: n, Data: data}}}
		b, err := m.Encode()
		if err != nil {
			return nil, nil, err
		}
		return nil, b, e
	}
	saPayload := find[*wire.SA](req.Payloads)
	kePayload := find[*wire.KE](req.Payloads)
	nonce := find[*wire.Nonce](req.Payloads)
	if saPayload == nil || kePayload == nil || nonce == nil {
		return refuse(wire.InvalidSyntax, nil, errorf(wire.InvalidSyntax, "IKE_SA_INIT request from %s lacks SA, KE or Nonce", remote))
	}
	if len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return refuse(wire.InvalidSyntax, nil, errorf(wire.InvalidSyntax, "IKE_SA_INIT request from %s: nonce of %d bytes (RFC 7296 §3.9: 16 to 256)", remote, len(nonce.Data)))
	}
	if len(candidates) == 0 {
		return refuse(wire.NoProposalChosen, nil, errorf(wire.NoProposalChosen, "IKE_SA_INIT from %s: no connection is configured for %s -> %s", remote, remote.Addr(), local.Addr()))
	}
	var cfg *PeerConfig
	var chosen selected
	for _, c := range candidates {
		if s, ok := selectProposal(c.Proposals, saPayload.Proposals, proposal.ProtoIKE); ok {
			cfg, chosen = c, s
			break
		}
	}
	if cfg == nil {
		var ours []string
		for _, c := range candidates {
			ours = append(ours, c.Name+": "+proposal.FormatList(c.Proposals))
		}
		return refuse(wire.NoProposalChosen, nil, errorf(wire.NoProposalChosen,
			"no IKE proposal chosen for %s: peer offered %s; we accept %s", remote, describeWire(saPayload.Proposals), joinSemi(ours)))
	}
	if e, data, ok := redirectRefusal(cfg, req.Payloads, nonce.Data, remote); ok { // task_redirect.go
		return refuse(wire.Redirect, data, e)
	}
	g, _ := chosen.get(proposal.TypeKeyExchange)
	if kePayload.Group != g.ID {
		e := errorf(0, "IKE_SA_INIT from %s: peer sent a key exchange for group %d, asking for group %d instead", remote, kePayload.Group, g.ID)
		e.Reason = ReasonNone
		return refuse(wire.InvalidKEPayload, binary.BigEndian.AppendUint16(nil, g.ID), e)
	}
	sa := &SA{Config: cfg, deps: deps, Local: local, Remote: remote, SPIi: req.SPIi, state: StateInitDone,
		hs: &handshake{candidates: candidates, group: g.ID}}
	var err error
	if sa.SPIr, err = sa.randomSPI(); err != nil {
		return nil, nil, err
	}
	if sa.hs.Nr, err = sa.nonce(); err != nil {
		return nil, nil, err
	}
	sa.hs.Ni = append([]byte(nil), nonce.Data...)
	ke, err := suite.NewKeyExchange(g.ID, deps.Rand)
	if err != nil {
		return nil, nil, err
	}
	pub, secret, err := ke.Respond(kePayload.Data)
	ke.Zero()
	if err != nil {
		return refuse(wire.InvalidSyntax, nil, errorf(wire.InvalidSyntax, "IKE_SA_INIT from %s: key exchange value refused: %v", remote, err))
	}
	defer clear(secret)
	sa.checkNATD(req.Payloads, 0)
	sa.PeerFragmentation = findNotify(req.Payloads, wire.FragmentationSupported) != nil
	sa.PeerChildless = findNotify(req.Payloads, wire.ChildlessIKEv2Supported) != nil
	sa.peerRedirect = findNotify(req.Payloads, wire.RedirectSupported) != nil || findNotify(req.Payloads, wire.RedirectedFrom) != nil
	chosenWire := toWire([]proposal.Proposal{chosen.Proposal}, nil)
	chosenWire[0].Number = chosen.number
	ps := []wire.Payload{
		&wire.SA{Proposals: chosenWire},
		&wire.KE{Group: g.ID, Data: pub},
		&wire.Nonce{Data: sa.hs.Nr},
	}
	ps = append(ps, sa.natdPayloads()...)
	ps = append(ps, initAuthPayloads(false, candidates...)...)
	if cfg.Fragmentation && sa.PeerFragmentation {
		ps = append(ps, &wire.Notify{NotifyType: wire.FragmentationSupported})
	}
	// RFC 4739 §3: a peer announces a second authentication round only to one that supports them.
	ps = append(ps, &wire.Notify{NotifyType: wire.MultipleAuthSupported})
	if cfg.Childless != ChildlessNever {
		ps = append(ps, &wire.Notify{NotifyType: wire.ChildlessIKEv2Supported})
	}
	peerInter := findNotify(req.Payloads, wire.IntermediateExchangeSupported) != nil
	if peerInter {
		ps = append(ps, &wire.Notify{NotifyType: wire.IntermediateExchangeSupported})
	}
	if n := sa.responderPPKNotify(cfg, req.Payloads); n != nil {
		ps = append(ps, n)
	}
	if inter, err := sa.planIntermediate(chosen.Proposal, peerInter); err != nil {
		return refuse(wire.NoProposalChosen, nil, err.(*Error))
	} else if inter {
		sa.state = StateIntermediate
	}
	m := &wire.Message{Header: sa.Header(wire.ExchangeIKESAInit, 0, true), Payloads: ps}
	resp, err := m.Encode()
	if err != nil {
		return nil, nil, err
	}
	sa.hs.initReq = append([]byte(nil), raw...)
	sa.hs.initResp = resp
	if err := sa.deriveKeys(chosen.Proposal, secret); err != nil {
		return nil, nil, err
	}
	return sa, resp, nil
}

func joinSemi(list []string) string {
	var b bytes.Buffer
	for i, s := range list {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}
