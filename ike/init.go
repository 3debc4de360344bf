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

// NewInitiator starts an IKE SA for cfg from local to remote.
func NewInitiator(cfg *PeerConfig, local, remote netip.AddrPort, deps Deps) (*SA, error) {
	deps.setDefaults()
	sa := &SA{Config: cfg, deps: deps, Initiator: true, Local: local, Remote: remote, State: StateInitSent}
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
	sa.group = kes[0].ID
	return sa, nil
}

// InitRequest builds the IKE_SA_INIT request (RFC 7296 §1.2) and returns its encoding, which the
// SA keeps for the AUTH computation. After a COOKIE or INVALID_KE_PAYLOAD answer, calling it again
// builds the retried request.
func (sa *SA) InitRequest() ([]byte, error) {
	if sa.ke != nil {
		sa.ke.Zero()
	}
	ke, err := suite.NewKeyExchange(sa.group, sa.deps.Rand)
	if err != nil {
		return nil, err
	}
	sa.ke = ke
	if sa.Ni == nil {
		if sa.Ni, err = sa.random(nonceLen); err != nil {
			return nil, err
		}
	}
	var ps []wire.Payload
	if sa.cookie != nil {
		ps = append(ps, &wire.Notify{NotifyType: wire.Cookie, Data: sa.cookie})
	}
	ps = append(ps,
		&wire.SA{Proposals: toWire(sa.Config.Proposals, nil)},
		&wire.KE{Group: sa.group, Data: ke.PublicValue()},
		&wire.Nonce{Data: sa.Ni},
	)
	ps = append(ps, sa.natdPayloads()...)
	ps = append(ps, initAuthPayloads(true, sa.Config)...)
	if sa.Config.Fragmentation {
		ps = append(ps, &wire.Notify{NotifyType: wire.FragmentationSupported})
	}
	m := &wire.Message{Header: sa.Header(wire.ExchangeIKESAInit, 0, false), Payloads: ps}
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	sa.initReq = b
	return b, nil
}

// natdHash is SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23). SHA-1 is what the RFC mandates
// here; it hides addresses, it protects nothing.
func natdHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], spir)
	h.Write(b[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[:2], ap.Port())
	h.Write(b[:2])
	return h.Sum(nil)
}

// natdPayloads returns NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP. With ForceEncap
// the source hash is deliberately wrong, so the peer sees a NAT in front of us and both sides move
// to UDP encapsulation (what strongSwan's encap=yes does).
func (sa *SA) natdPayloads() []wire.Payload {
	src := natdHash(sa.SPIi, sa.SPIr, sa.Local)
	if sa.Config != nil && sa.Config.ForceEncap {
		src, _ = sa.random(len(src))
	}
	dst := natdHash(sa.SPIi, sa.SPIr, sa.Remote)
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
			srcMatch = srcMatch || bytes.Equal(n.Data, want)
		case wire.NATDetectionDestinationIP:
			dstSeen = true
			dstMatch = dstMatch || bytes.Equal(n.Data, mine)
		}
	}
	if srcSeen {
		sa.NATRemote = !srcMatch
	}
	if dstSeen {
		sa.NATLocal = !dstMatch
	}
	if sa.Config != nil && sa.Config.ForceEncap {
		sa.NATLocal = true
	}
}

// InitResult is what the initiator does next after an IKE_SA_INIT response.
type InitResult uint8

const (
	InitRetry InitResult = iota // send InitRequest again (cookie or other group)
	InitDone                    // keys derived: go on with IKE_AUTH
)

// HandleInitResponse processes the IKE_SA_INIT response.
func (sa *SA) HandleInitResponse(raw []byte, m *wire.Message) (InitResult, error) {
	if sa.State != StateInitSent {
		return 0, errorf(0, "unexpected IKE_SA_INIT response in state %s", sa.State)
	}
	if c := findNotify(m.Payloads, wire.Cookie); c != nil {
		sa.initTries++
		if sa.initTries > maxInitTries || len(c.Data) == 0 || len(c.Data) > 64 {
			return 0, errorf(0, "giving up after %d COOKIE round trips", sa.initTries)
		}
		sa.cookie = append([]byte(nil), c.Data...)
		return InitRetry, nil
	}
	if n := findNotify(m.Payloads, wire.InvalidKEPayload); n != nil {
		sa.initTries++
		if len(n.Data) != 2 {
			return 0, errorf(0, "INVALID_KE_PAYLOAD without a group")
		}
		g := binary.BigEndian.Uint16(n.Data)
		if !offersGroup(sa.Config.Proposals, g) || g == sa.group || sa.initTries > maxInitTries {
			return 0, errorf(0, "peer asks for key exchange group %d, which we do not offer (we offer %s)", g, proposal.FormatList(sa.Config.Proposals))
		}
		sa.group = g
		return InitRetry, nil
	}
	if n := firstError(m.Payloads); n != nil {
		if n.NotifyType == wire.NoProposalChosen {
			return 0, errorf(0, "peer accepted none of our IKE proposals: we offered %s", proposal.FormatList(sa.Config.Proposals))
		}
		return 0, errorf(0, "peer refused IKE_SA_INIT with %s", n.NotifyType)
	}
	saPayload := find[*wire.SA](m.Payloads)
	kePayload := find[*wire.KE](m.Payloads)
	nonce := find[*wire.Nonce](m.Payloads)
	if saPayload == nil || kePayload == nil || nonce == nil {
		return 0, errorf(0, "IKE_SA_INIT response lacks SA, KE or Nonce")
	}
	if m.SPIr == 0 {
		return 0, errorf(0, "IKE_SA_INIT response without responder SPI")
	}
	chosen, err := checkChosen(sa.Config.Proposals, saPayload, proposal.ProtoIKE)
	if err != nil {
		return 0, errorf(0, "IKE_SA_INIT: %v", err)
	}
	if g, ok := chosen.get(proposal.TypeKeyExchange); !ok || g.ID != sa.group || kePayload.Group != sa.group {
		return 0, errorf(0, "IKE_SA_INIT response: key exchange group %d does not match the chosen proposal %s", kePayload.Group, chosen.Proposal)
	}
	sa.SPIr = m.SPIr
	sa.Nr = append([]byte(nil), nonce.Data...)
	secret, err := sa.ke.SharedSecret(kePayload.Data)
	if err != nil {
		return 0, errorf(0, "peer's key exchange value refused: %v", err)
	}
	defer clear(secret)
	sa.checkNATD(m.Payloads, sa.SPIr)
	sa.PeerFragmentation = findNotify(m.Payloads, wire.FragmentationSupported) != nil
	sa.initResp = append([]byte(nil), raw...)
	if err := sa.deriveKeys(chosen.Proposal, secret); err != nil {
		return 0, err
	}
	sa.State = StateInitDone
	return InitDone, nil
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
	skeyseed, err := suite.InitialSKEYSEED(prf, sa.Ni, sa.Nr, secret)
	if err != nil {
		return err
	}
	defer clear(skeyseed)
	return sa.installKeys(p, t, prf, skeyseed, sa.Ni, sa.Nr)
}

func (sa *SA) installKeys(p proposal.Proposal, t suite.IKETransforms, prf suite.PRF, skeyseed, ni, nr []byte) error {
	keys, err := suite.DeriveIKEKeys(t, skeyseed, ni, nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
	if err != nil {
		return err
	}
	out, in, err := keys.Protectors(t, sa.Initiator, sa.deps.Rand)
	if err != nil {
		keys.Zero()
		return err
	}
	sa.Proposal, sa.transforms, sa.prf, sa.keys, sa.out, sa.in = p, t, prf, keys, out, in
	if sa.ke != nil {
		sa.ke.Zero()
		sa.ke = nil
	}
	return nil
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
// to send; err explains a refusal in one line.
func RespondInit(req *wire.Message, raw []byte, local, remote netip.AddrPort, candidates []*PeerConfig, deps Deps) (*SA, []byte, error) {
	deps.setDefaults()
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
	g, _ := chosen.get(proposal.TypeKeyExchange)
	if kePayload.Group != g.ID {
		return refuse(wire.InvalidKEPayload, binary.BigEndian.AppendUint16(nil, g.ID), errorf(0,
			"IKE_SA_INIT from %s: peer sent a key exchange for group %d, asking for group %d instead", remote, kePayload.Group, g.ID))
	}
	sa := &SA{Config: cfg, deps: deps, Local: local, Remote: remote, SPIi: req.SPIi, State: StateInitDone, candidates: candidates, group: g.ID}
	var err error
	if sa.SPIr, err = sa.randomSPI(); err != nil {
		return nil, nil, err
	}
	if sa.Nr, err = sa.random(nonceLen); err != nil {
		return nil, nil, err
	}
	sa.Ni = append([]byte(nil), nonce.Data...)
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
	chosenWire := toWire([]proposal.Proposal{chosen.Proposal}, nil)
	chosenWire[0].Number = chosen.number
	ps := []wire.Payload{
		&wire.SA{Proposals: chosenWire},
		&wire.KE{Group: g.ID, Data: pub},
		&wire.Nonce{Data: sa.Nr},
	}
	ps = append(ps, sa.natdPayloads()...)
	ps = append(ps, initAuthPayloads(false, candidates...)...)
	if cfg.Fragmentation && sa.PeerFragmentation {
		ps = append(ps, &wire.Notify{NotifyType: wire.FragmentationSupported})
	}
	m := &wire.Message{Header: sa.Header(wire.ExchangeIKESAInit, 0, true), Payloads: ps}
	resp, err := m.Encode()
	if err != nil {
		return nil, nil, err
	}
	sa.initReq = append([]byte(nil), raw...)
	sa.initResp = resp
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
