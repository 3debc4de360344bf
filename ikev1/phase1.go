package ikev1

import (
	"bytes"
	"crypto/hmac"
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/suite"
	ikewire "github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ikev1/wire"
)

// Phase 1: Main Mode (RFC 2409 §5.1, "Identity Protection") and Aggressive Mode (§5.4) with
// preshared keys, NAT-T detection and floating (RFC 3947 §3–4), and the DPD and NAT-T vendor IDs.
//
//	Main Mode                              Aggressive Mode
//	I: HDR, SA, V                          I: HDR, SA, KE, Ni, IDii, V
//	R: HDR, SA, V                          R: HDR, SA, KE, Nr, IDir, HASH_R, V, NAT-D, NAT-D
//	I: HDR, KE, Ni, NAT-D, NAT-D           I: HDR*, HASH_I, NAT-D, NAT-D
//	R: HDR, KE, Nr, NAT-D, NAT-D
//	I: HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]
//	R: HDR*, IDir, HASH_R

// Initiate starts phase 1 for cfg; children are negotiated with Quick Mode once it is up.
func (sa *SA) Initiate(cfg *Config, children []*ike.ChildConfig, local, remote netip.AddrPort) error {
	sa.cfg, sa.Initiator, sa.Aggressive = cfg, true, cfg.Aggressive
	sa.Local, sa.Remote = local, remote
	sa.pending = children
	sa.started = sa.now()
	var err error
	if sa.CkyI, err = sa.cookie(); err != nil {
		return err
	}
	transforms := phase1Transforms(cfg.Peer.Proposals, sa.authMethod(), cfg.lifetime())
	if len(transforms) == 0 {
		return fmt.Errorf("connection %s: no IKE proposal has an IKEv1 form (AES-CBC or 3DES with a SHA PRF and a DH group)", cfg.name())
	}
	if sa.Aggressive {
		// Aggressive Mode sends KE with the first message: every transform must use its group.
		g := transforms[0].group
		kept := transforms[:0]
		for _, t := range transforms {
			if t.group == g {
				kept = append(kept, t)
			}
		}
		transforms = kept
	}
	prop := wire.Proposal{Number: 1, Protocol: wire.ProtoISAKMP}
	for i, t := range transforms {
		prop.Transforms = append(prop.Transforms, wire.Transform{Number: uint8(i + 1), ID: transformKeyIKE, Attrs: t.attrs()})
	}
	saP := &wire.SA{DOI: wire.DOIIPsec, Situation: wire.SituationIdentityOnly, Proposals: []wire.Proposal{prop}}
	vids := []wire.Payload{&wire.VendorID{Data: vidNATT}, &wire.VendorID{Data: vidDPD}}
	if !sa.Aggressive {
		b, err := sa.plain(wire.ExchangeMain, append([]wire.Payload{saP}, vids...)...)
		if err != nil {
			return err
		}
		sa.saiB = append([]byte(nil), wire.Body(saP)...)
		sa.setState(StateSASent)
		sa.send(b, 0, true, nil)
		return nil
	}
	sa.chosen = transforms[0]
	if err := sa.makeKE(sa.chosen.group); err != nil {
		return err
	}
	if sa.ni, err = sa.nonce(); err != nil {
		return err
	}
	sa.gxi = sa.ke.PublicValue()
	sa.LocalID = sa.localID()
	idii := sa.idPayload(sa.LocalID)
	ps := append([]wire.Payload{saP, &wire.KE{Data: sa.gxi}, &wire.Nonce{Data: sa.ni}, idii}, vids...)
	b, err := sa.plain(wire.ExchangeAggressive, ps...)
	if err != nil {
		return err
	}
	sa.saiB = append([]byte(nil), wire.Body(saP)...)
	sa.idB = append([]byte(nil), wire.Body(idii)...)
	sa.setState(StateAuthSent)
	sa.send(b, 0, true, nil)
	return nil
}

// localID is the identity we authenticate as: the configured one or our address.
func (sa *SA) localID() ike.Identity {
	if !sa.cfg.Peer.LocalID.IsAny() {
		return sa.cfg.Peer.LocalID
	}
	return ike.AddrIdentity(sa.Local.Addr().Unmap())
}

// idPayload is a phase 1 ID payload. Protocol and port are 0: RFC 2407 §4.6.2 allows 0/0 or
// UDP/500, and 0/0 stays right after floating to port 4500.
func (sa *SA) idPayload(id ike.Identity) *wire.ID {
	return &wire.ID{IDType: wire.IDType(id.Type), Data: id.Data}
}

func (sa *SA) makeKE(group uint16) error {
	var err error
	if sa.cfg.AllowWeak {
		sa.ke, err = suite.NewLegacyKeyExchange(group, sa.deps.Rand)
	} else {
		sa.ke, err = suite.NewKeyExchange(group, sa.deps.Rand)
	}
	return err
}

// natd returns the NAT-D payloads: the peer's address first, then ours (RFC 3947 §3.2).
func (sa *SA) natd() []wire.Payload {
	ip := func(a netip.AddrPort) []byte { return a.Addr().Unmap().AsSlice() }
	return []wire.Payload{
		&wire.NATD{Hash: natdHash(sa.keys.prf, sa.CkyI, sa.CkyR, ip(sa.Remote), sa.Remote.Port())},
		&wire.NATD{Hash: natdHash(sa.keys.prf, sa.CkyI, sa.CkyR, ip(sa.Local), sa.Local.Port())},
	}
}

// detectNAT compares the peer's NAT-D hashes with our addresses (RFC 3947 §3.2): the first names
// us as the peer sees us, the others the peer's own addresses.
func (sa *SA) detectNAT(ps []wire.Payload) {
	ds := findAll[*wire.NATD](ps)
	if len(ds) < 2 || !sa.peerNATT {
		return
	}
	ip := func(a netip.AddrPort) []byte { return a.Addr().Unmap().AsSlice() }
	me := natdHash(sa.keys.prf, sa.CkyI, sa.CkyR, ip(sa.Local), sa.Local.Port())
	peer := natdHash(sa.keys.prf, sa.CkyI, sa.CkyR, ip(sa.Remote), sa.Remote.Port())
	sa.NATLocal = !hmac.Equal(ds[0].Hash, me)
	sa.NATRemote = true
	for _, d := range ds[1:] {
		if hmac.Equal(d.Hash, peer) {
			sa.NATRemote = false
		}
	}
}

// float moves the SA to the NAT-T port when a NAT was found (RFC 3947 §4).
func (sa *SA) float() {
	if sa.NAT() && sa.Local.Port() != sa.nattPort {
		sa.Local = netip.AddrPortFrom(sa.Local.Addr(), sa.nattPort)
		sa.Remote = netip.AddrPortFrom(sa.Remote.Addr(), 4500)
	}
}

func (sa *SA) vendorIDs(ps []wire.Payload) {
	for _, v := range findAll[*wire.VendorID](ps) {
		switch {
		case bytes.Equal(v.Data, vidNATT):
			sa.peerNATT = true
		case bytes.Equal(v.Data, vidDPD):
			sa.peerDPD = true
		}
	}
}

// psk finds the preshared key before the peer's identity is known (Main Mode encrypts it): by
// the configured identities, the peer's address standing in for an open remote identity.
func (sa *SA) psk() ([]byte, error) {
	remote := sa.cfg.Peer.RemoteID
	if remote.IsAny() {
		if !sa.RemoteID.IsAny() {
			remote = sa.RemoteID
		} else {
			remote = ike.AddrIdentity(sa.Remote.Addr().Unmap())
		}
	}
	if sa.cfg.Peer.PSK == nil {
		return nil, errorf(wire.AuthenticationFailed, "connection %s has no preshared key", sa.Name())
	}
	k, ok := sa.cfg.Peer.PSK(sa.localID(), remote)
	if !ok {
		return nil, errorf(wire.AuthenticationFailed, "no preshared key for %s - %s", sa.localID(), remote)
	}
	return k, nil
}

// computeKeys derives the phase 1 keys once both KE values and nonces are known.
func (sa *SA) computeKeys(gxr []byte) error {
	var err error
	if sa.Initiator {
		sa.gxy, err = sa.ke.SharedSecret(gxr)
		sa.gxr = gxr
	} else {
		var pub []byte
		pub, sa.gxy, err = sa.ke.Respond(sa.gxi)
		sa.gxr = pub
	}
	if err != nil {
		return errorf(wire.InvalidKeyInformation, "key exchange: %v", err)
	}
	prf, err := sa.chosen.prf()
	if err != nil {
		return errorf(wire.NoProposalChosen, "%v", err)
	}
	enc, err := newEncAlg(sa.chosen.encr, sa.chosen.keyBits)
	if err != nil {
		return errorf(wire.NoProposalChosen, "%v", err)
	}
	var skeyid []byte
	if sa.sigAuth() != nil {
		skeyid = skeyidSig(prf, sa.ni, sa.nr, sa.gxy)
	} else {
		psk, err := sa.psk()
		if err != nil {
			return err
		}
		skeyid = skeyidPSK(prf, psk, sa.ni, sa.nr)
	}
	sa.keys = deriveKeys(prf, enc, skeyid, sa.gxy, sa.CkyI, sa.CkyR)
	sa.iv = phase1IV(prf, enc, sa.gxi, sa.gxr)
	return nil
}

// authHash is HASH_I or HASH_R (RFC 2409 §5):
//
//	HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b )
//	HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b )
func (sa *SA) authHash(ofInitiator bool, idB []byte) []byte {
	var b [16]byte
	i, r := sa.cookies()[:8], sa.cookies()[8:]
	if ofInitiator {
		copy(b[:8], i)
		copy(b[8:], r)
		return sa.keys.prf.Compute(sa.keys.skeyid, sa.gxi, sa.gxr, b[:], sa.saiB, idB)
	}
	copy(b[:8], r)
	copy(b[8:], i)
	return sa.keys.prf.Compute(sa.keys.skeyid, sa.gxr, sa.gxi, b[:], sa.saiB, idB)
}

// toIdentity converts a phase 1 ID: the IPsec DOI's identification types share their numbers
// with IKEv2's for the types both have (RFC 2407 §4.6.2.1, RFC 7296 §3.5).
func toIdentity(id *wire.ID) ike.Identity {
	return ike.Identity{Type: ikewire.IDType(id.IDType), Data: append([]byte(nil), id.Data...)}
}

// --- initiator ---

func (sa *SA) initiatorPhase1(b []byte, h wire.Header) error {
	switch {
	case !sa.Aggressive && sa.state == StateSASent && !h.Encrypted():
		return sa.mm2(b, h)
	case !sa.Aggressive && sa.state == StateKESent && !h.Encrypted():
		return sa.mm4(b, h)
	case !sa.Aggressive && sa.state == StateAuthSent:
		return sa.mm6(b, h)
	case sa.Aggressive && sa.state == StateAuthSent && !h.Encrypted():
		return sa.am2(b, h)
	}
	return nil // a late copy of a message we already processed
}

func (sa *SA) mm2(b []byte, h wire.Header) error {
	m, err := wire.Decode(b)
	if err != nil {
		return errorf(wire.PayloadMalformed, "Main Mode response: %v", err)
	}
	saP := find[*wire.SA](m.Payloads)
	if saP == nil {
		return errorf(wire.PayloadMalformed, "Main Mode response without SA payload")
	}
	t, err := sa.acceptedTransform(saP)
	if err != nil {
		return err
	}
	delete(sa.out, 0)
	sa.CkyR = h.RCookie
	sa.chosen = t
	sa.vendorIDs(m.Payloads)
	if err := sa.makeKE(t.group); err != nil {
		return errorf(wire.NoProposalChosen, "%v", err)
	}
	if sa.ni, err = sa.nonce(); err != nil {
		return err
	}
	sa.gxi = sa.ke.PublicValue()
	ps := []wire.Payload{&wire.KE{Data: sa.gxi}, &wire.Nonce{Data: sa.ni}}
	if sa.sigAuth() != nil {
		ps = append(ps, &wire.CertReq{Encoding: wire.CertX509Sig})
	}
	if sa.peerNATT {
		prf, err := t.prf()
		if err != nil {
			return errorf(wire.NoProposalChosen, "%v", err)
		}
		sa.keys = &keys{prf: prf} // for the NAT-D hashes only, until computeKeys
		ps = append(ps, sa.natd()...)
	}
	out, err := sa.plain(wire.ExchangeMain, ps...)
	if err != nil {
		return err
	}
	sa.setState(StateKESent)
	sa.answered(b, 0, out) // a retransmitted MM2 gets MM3 again
	sa.send(out, 0, true, nil)
	return nil
}

// acceptedTransform checks the responder's choice: one proposal, one transform, one we offered.
func (sa *SA) acceptedTransform(saP *wire.SA) (p1Transform, error) {
	if len(saP.Proposals) != 1 || len(saP.Proposals[0].Transforms) != 1 {
		return p1Transform{}, errorf(wire.BadProposalSyntax, "responder chose %d proposals", len(saP.Proposals))
	}
	t, err := parseP1Transform(saP.Proposals[0].Transforms[0])
	if err != nil {
		return t, errorf(wire.NoProposalChosen, "responder's transform: %v", err)
	}
	for _, o := range phase1Transforms(sa.cfg.Peer.Proposals, sa.authMethod(), sa.cfg.lifetime()) {
		if o.sameAlgorithms(t) {
			if t.lifetime == 0 || t.lifetime > sa.cfg.lifetime() {
				t.lifetime = sa.cfg.lifetime()
			}
			return t, nil
		}
	}
	return t, errorf(wire.NoProposalChosen, "responder chose %s, which we did not offer", t)
}

func (sa *SA) mm4(b []byte, _ wire.Header) error {
	m, err := wire.Decode(b)
	if err != nil {
		return errorf(wire.PayloadMalformed, "Main Mode response: %v", err)
	}
	ke, no := find[*wire.KE](m.Payloads), find[*wire.Nonce](m.Payloads)
	if ke == nil || no == nil {
		return errorf(wire.PayloadMalformed, "Main Mode response without KE or Nonce")
	}
	delete(sa.out, 0)
	sa.nr = append([]byte(nil), no.Data...)
	if err := sa.computeKeys(append([]byte(nil), ke.Data...)); err != nil {
		return err
	}
	sa.detectNAT(m.Payloads)
	sa.float()
	sa.LocalID = sa.localID()
	idii := sa.idPayload(sa.LocalID)
	if _, err := wire.EncodePayloads([]wire.Payload{idii}); err != nil {
		return err
	}
	sa.idB = append([]byte(nil), wire.Body(idii)...)
	auth, err := sa.authPayloads(true, sa.idB)
	if err != nil {
		return err
	}
	ps := append([]wire.Payload{idii}, auth...)
	if sa.cfg.Peer.Unique != ike.UniqueNever && !sa.Successor {
		// RFC 2407 §4.6.3.3: only when we hold no other SA with the peer.
		ps = append(ps, sa.initialContactNotify())
	}
	out, next, err := sa.sealed(sa.header(wire.ExchangeMain, 0, 0), sa.iv, ps...)
	if err != nil {
		return err
	}
	sa.iv = next
	sa.setState(StateAuthSent)
	sa.answered(b, 0, out)
	sa.send(out, 0, true, nil)
	return nil
}

func (sa *SA) initialContactNotify() *wire.Notify {
	return &wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoISAKMP, SPI: sa.cookies(), NotifyType: wire.InitialContact}
}

func (sa *SA) mm6(b []byte, h wire.Header) error {
	ps, next, err := sa.open(b, h, sa.iv)
	if err != nil {
		// Only the peer knows our cookies; a message that does not decrypt means keys that
		// differ, which with a PSK means different keys on both sides.
		return errorf(wire.AuthenticationFailed, "the responder's last Main Mode message does not decrypt (different preshared keys?)")
	}
	id := find[*wire.ID](ps)
	if id == nil {
		return errorf(wire.PayloadMalformed, "Main Mode response without ID")
	}
	if err := sa.verifyAuth(false, toIdentity(id), wire.Body(id), ps); err != nil {
		return err
	}
	sa.iv = next
	return sa.established(toIdentity(id), ps)
}

func (sa *SA) am2(b []byte, h wire.Header) error {
	m, err := wire.Decode(b)
	if err != nil {
		return errorf(wire.PayloadMalformed, "Aggressive Mode response: %v", err)
	}
	saP, ke, no := find[*wire.SA](m.Payloads), find[*wire.KE](m.Payloads), find[*wire.Nonce](m.Payloads)
	id := find[*wire.ID](m.Payloads)
	if saP == nil || ke == nil || no == nil || id == nil {
		return errorf(wire.PayloadMalformed, "Aggressive Mode response lacks SA, KE, Nonce or ID")
	}
	t, err := sa.acceptedTransform(saP)
	if err != nil {
		return err
	}
	if t.group != sa.chosen.group {
		return errorf(wire.NoProposalChosen, "responder chose group %d, our KE is for %d", t.group, sa.chosen.group)
	}
	delete(sa.out, 0)
	sa.CkyR, sa.chosen = h.RCookie, t
	sa.vendorIDs(m.Payloads)
	sa.nr = append([]byte(nil), no.Data...)
	sa.RemoteID = toIdentity(id)
	if err := sa.computeKeys(append([]byte(nil), ke.Data...)); err != nil {
		return err
	}
	if err := sa.verifyAuth(false, sa.RemoteID, wire.Body(id), m.Payloads); err != nil {
		return err
	}
	sa.detectNAT(m.Payloads)
	sa.float()
	ps, err := sa.authPayloads(true, sa.idB)
	if err != nil {
		return err
	}
	if sa.peerNATT {
		ps = append(ps, sa.natd()...)
	}
	if sa.cfg.Peer.Unique != ike.UniqueNever && !sa.Successor {
		ps = append(ps, sa.initialContactNotify())
	}
	out, next, err := sa.sealed(sa.header(wire.ExchangeAggressive, 0, 0), sa.iv, ps...)
	if err != nil {
		return err
	}
	sa.iv = next
	// The last message of phase 1 gets no answer: a lost one shows as the responder's
	// retransmission of AM2, answered from the cache.
	sa.answered(b, 0, out)
	sa.send(out, 0, false, nil)
	return sa.established(sa.RemoteID, m.Payloads)
}

// --- responder ---

// RespondFirst answers the first message of a phase 1 (Main Mode or Aggressive Mode) from a
// peer, choosing among the connections configured for its address. It returns an error when the
// SA should not be kept.
func (sa *SA) RespondFirst(b []byte, candidates []*Config, local, remote netip.AddrPort) error {
	sa.Local, sa.Remote, sa.started = local, remote, sa.now()
	// As long as an initiator with our retransmission settings keeps trying, and a little more.
	budget := 10 * time.Second
	for n := 0; n <= sa.timing.Tries; n++ {
		budget += sa.timing.delay(n)
	}
	sa.halfOpenUntil = sa.started.Add(budget)
	m, err := wire.Decode(b)
	if err != nil {
		return fmt.Errorf("first phase 1 message: %w", err)
	}
	sa.CkyI = m.Header.ICookie
	if sa.CkyR, err = sa.cookie(); err != nil {
		return err
	}
	sa.Aggressive = m.Header.Exchange == wire.ExchangeAggressive
	saP := find[*wire.SA](m.Payloads)
	if saP == nil || len(saP.Proposals) == 0 {
		return errorf(wire.PayloadMalformed, "phase 1 request without SA payload")
	}
	sa.vendorIDs(m.Payloads)
	var id *wire.ID
	if sa.Aggressive {
		id = find[*wire.ID](m.Payloads)
		if id == nil || find[*wire.KE](m.Payloads) == nil || find[*wire.Nonce](m.Payloads) == nil {
			return errorf(wire.PayloadMalformed, "Aggressive Mode request lacks KE, Nonce or ID")
		}
		sa.RemoteID = toIdentity(id)
		sa.peerIDB = append([]byte(nil), wire.Body(id)...)
	}
	// The first connection (in configuration order) whose proposals and, in Aggressive Mode,
	// remote identity fit.
	var offered []string
	for _, c := range candidates {
		if sa.Aggressive && !remoteMatches(c, sa.RemoteID) {
			continue
		}
		sa.cfg = c
		prop, t, ok := sa.choose(saP)
		if !ok {
			offered = append(offered, c.name())
			continue
		}
		sa.chosen = t
		sa.saiB = append([]byte(nil), wire.Body(saP)...)
		reply := &wire.SA{DOI: wire.DOIIPsec, Situation: wire.SituationIdentityOnly, Proposals: []wire.Proposal{prop}}
		if sa.Aggressive {
			return sa.am1(b, m, reply)
		}
		out, err := sa.plain(wire.ExchangeMain, reply, &wire.VendorID{Data: vidNATT}, &wire.VendorID{Data: vidDPD})
		if err != nil {
			return err
		}
		sa.setState(StateKESent)
		sa.answered(b, 0, out)
		sa.send(out, 0, false, nil)
		return nil
	}
	sa.cfg = nil
	if len(candidates) > 0 {
		sa.cfg = candidates[0]
	}
	return errorf(wire.NoProposalChosen, "no acceptable IKEv1 proposal: peer offered %s; configured %v", describeOffer(saP), offered)
}

func describeOffer(saP *wire.SA) string {
	var s []string
	for _, p := range saP.Proposals {
		for _, t := range p.Transforms {
			x, err := parseP1Transform(t)
			if err != nil {
				s = append(s, "?")
				continue
			}
			s = append(s, x.String())
		}
	}
	return fmt.Sprint(s)
}

// choose picks the peer's first transform (in its order) that matches one of ours.
func (sa *SA) choose(saP *wire.SA) (wire.Proposal, p1Transform, bool) {
	ours := phase1Transforms(sa.cfg.Peer.Proposals, sa.authMethod(), sa.cfg.lifetime())
	for _, p := range saP.Proposals {
		if p.Protocol != wire.ProtoISAKMP {
			continue
		}
		for _, wt := range p.Transforms {
			t, err := parseP1Transform(wt)
			if err != nil {
				continue
			}
			for _, o := range ours {
				if o.sameAlgorithms(t) {
					if t.lifetime == 0 || t.lifetime > sa.cfg.lifetime() {
						t.lifetime = sa.cfg.lifetime()
					}
					return wire.Proposal{Number: p.Number, Protocol: wire.ProtoISAKMP, SPI: p.SPI, Transforms: []wire.Transform{wt}}, t, true
				}
			}
		}
	}
	return wire.Proposal{}, p1Transform{}, false
}

// am1 answers an Aggressive Mode request: keys first, then HASH_R.
func (sa *SA) am1(b []byte, m *wire.Message, reply *wire.SA) error {
	ke, no := find[*wire.KE](m.Payloads), find[*wire.Nonce](m.Payloads)
	if err := sa.makeKE(sa.chosen.group); err != nil {
		return errorf(wire.NoProposalChosen, "%v", err)
	}
	var err error
	sa.gxi = append([]byte(nil), ke.Data...)
	sa.ni = append([]byte(nil), no.Data...)
	if sa.nr, err = sa.nonce(); err != nil {
		return err
	}
	if err := sa.computeKeys(nil); err != nil {
		return err
	}
	sa.LocalID = sa.localID()
	idir := sa.idPayload(sa.LocalID)
	if _, err := wire.EncodePayloads([]wire.Payload{idir}); err != nil {
		return err
	}
	sa.idB = append([]byte(nil), wire.Body(idir)...)
	auth, err := sa.authPayloads(false, sa.idB)
	if err != nil {
		return err
	}
	ps := append([]wire.Payload{reply, &wire.KE{Data: sa.gxr}, &wire.Nonce{Data: sa.nr}, idir}, auth...)
	ps = append(ps, &wire.VendorID{Data: vidNATT}, &wire.VendorID{Data: vidDPD})
	if sa.peerNATT {
		ps = append(ps, sa.natd()...)
	}
	out, err := sa.plain(wire.ExchangeAggressive, ps...)
	if err != nil {
		return err
	}
	sa.setState(StateAuthSent)
	sa.answered(b, 0, out)
	// The initiator's last message is the answer; until it comes we resend ours.
	sa.send(out, 0, true, nil)
	return nil
}

// responderPhase1 handles the initiator's later phase 1 messages.
func (sa *SA) responderPhase1(b []byte, h wire.Header) error {
	switch {
	case !sa.Aggressive && sa.state == StateKESent && !h.Encrypted():
		return sa.mm3(b)
	case sa.state == StateAuthSent && h.Encrypted():
		if sa.Aggressive {
			return sa.am3(b, h)
		}
		return sa.mm5(b, h)
	case sa.Aggressive && sa.state == StateAuthSent:
		// RFC 2409 §5.4 leaves the last message's encryption open; accept it in the clear too.
		return sa.am3(b, h)
	}
	return nil
}

func (sa *SA) mm3(b []byte) error {
	m, err := wire.Decode(b)
	if err != nil {
		return errorf(wire.PayloadMalformed, "Main Mode request: %v", err)
	}
	ke, no := find[*wire.KE](m.Payloads), find[*wire.Nonce](m.Payloads)
	if ke == nil || no == nil {
		return errorf(wire.PayloadMalformed, "Main Mode request without KE or Nonce")
	}
	if err := sa.makeKE(sa.chosen.group); err != nil {
		return errorf(wire.NoProposalChosen, "%v", err)
	}
	sa.gxi = append([]byte(nil), ke.Data...)
	sa.ni = append([]byte(nil), no.Data...)
	if sa.nr, err = sa.nonce(); err != nil {
		return err
	}
	if err := sa.computeKeys(nil); err != nil {
		return err
	}
	ps := []wire.Payload{&wire.KE{Data: sa.gxr}, &wire.Nonce{Data: sa.nr}}
	if sa.sigAuth() != nil {
		ps = append(ps, &wire.CertReq{Encoding: wire.CertX509Sig})
	}
	if sa.peerNATT && len(findAll[*wire.NATD](m.Payloads)) > 0 {
		sa.detectNAT(m.Payloads)
		ps = append(ps, sa.natd()...)
	}
	out, err := sa.plain(wire.ExchangeMain, ps...)
	if err != nil {
		return err
	}
	sa.setState(StateAuthSent)
	sa.answered(b, 0, out)
	sa.send(out, 0, false, nil)
	return nil
}

func (sa *SA) mm5(b []byte, h wire.Header) error {
	ps, next, err := sa.open(b, h, sa.iv)
	if err != nil {
		return errorf(wire.AuthenticationFailed, "the initiator's Main Mode message 5 does not decrypt (different preshared keys?)")
	}
	id := find[*wire.ID](ps)
	if id == nil {
		return errorf(wire.PayloadMalformed, "Main Mode request without ID")
	}
	peer := toIdentity(id)
	if err := sa.verifyAuth(true, peer, wire.Body(id), ps); err != nil {
		return err
	}
	if !remoteMatches(sa.cfg, peer) {
		return errorf(wire.InvalidIDInformation, "peer identifies as %s, connection %s expects %s", peer, sa.Name(), sa.cfg.Peer.RemoteID)
	}
	sa.iv = next
	sa.LocalID = sa.localID()
	idir := sa.idPayload(sa.LocalID)
	if _, err := wire.EncodePayloads([]wire.Payload{idir}); err != nil {
		return err
	}
	auth, err := sa.authPayloads(false, wire.Body(idir))
	if err != nil {
		return err
	}
	out, next, err := sa.sealed(sa.header(wire.ExchangeMain, 0, 0), sa.iv, append([]wire.Payload{idir}, auth...)...)
	if err != nil {
		return err
	}
	sa.iv = next
	sa.answered(b, 0, out)
	sa.send(out, 0, false, nil)
	return sa.established(peer, ps)
}

func (sa *SA) am3(b []byte, h wire.Header) error {
	var ps []wire.Payload
	next := sa.iv
	if h.Encrypted() {
		var err error
		if ps, next, err = sa.open(b, h, sa.iv); err != nil {
			return nil
		}
	} else {
		m, err := wire.Decode(b)
		if err != nil {
			return nil
		}
		ps = m.Payloads
	}
	if err := sa.verifyAuth(true, sa.RemoteID, sa.idBPeer(), ps); err != nil {
		return err
	}
	delete(sa.out, 0)
	sa.iv = next
	sa.detectNAT(ps)
	sa.answered(b, 0, nil)
	return sa.established(sa.RemoteID, ps)
}

// idBPeer is the body of the initiator's Aggressive Mode ID payload, re-encoded from the identity
// it carried (protocol and port as received are kept in peerIDB).
func (sa *SA) idBPeer() []byte { return sa.peerIDB }

// established completes phase 1.
func (sa *SA) established(peer ike.Identity, ps []wire.Payload) error {
	if !remoteMatches(sa.cfg, peer) {
		return errorf(wire.InvalidIDInformation, "peer identifies as %s, connection %s expects %s", peer, sa.Name(), sa.cfg.Peer.RemoteID)
	}
	sa.RemoteID = peer
	for _, n := range findAll[*wire.Notify](ps) {
		if n.NotifyType == wire.InitialContact {
			sa.PeerInitialContact = true
		}
	}
	delete(sa.out, 0)
	sa.setState(StateEstablished)
	now := sa.now()
	sa.Established, sa.lastSeen = now, now
	sa.expireAt = now.Add(sa.chosen.lifetime)
	if d := sa.cfg.Peer.RekeyTime; sa.Initiator && d > 0 && d < sa.chosen.lifetime {
		sa.rekeyAt = now.Add(ike.Jitter(d, sa.deps.Rand))
	}
	if sa.ke != nil {
		sa.ke.Zero()
		sa.ke = nil
	}
	if sa.xauthPending() {
		// The client is authenticated by its password first; only then is the SA up.
		sa.startXAuth()
		return nil
	}
	sa.up()
	return nil
}

// up reports the SA authenticated and starts the Quick Modes that wait for it.
func (sa *SA) up() {
	sa.emit(ike.IKEUp{IKE: sa.Info(), InitialContact: sa.PeerInitialContact})
	for _, c := range sa.pending {
		sa.startQuick(c, nil)
	}
	sa.pending = nil
}

// SignatureAuth is what IKEv1 needs for authentication with signatures (RFC 2409 §5.1); the
// certificate Authenticator of ike/auth implements it.
type SignatureAuth interface {
	UsesSignatures() bool
	SignV1(local ike.Identity, hash []byte) (certs [][]byte, sig []byte, err error)
	VerifyV1(remote ike.Identity, certs [][]byte, hash, sig []byte) error
	RemoteMatches(id ike.Identity) bool
}

// sigAuth returns the connection's signature authenticator, nil for a PSK connection.
func (sa *SA) sigAuth() SignatureAuth {
	if sa.cfg == nil || sa.cfg.Peer == nil {
		return nil
	}
	if a, ok := sa.cfg.Peer.Authenticator.(SignatureAuth); ok && a.UsesSignatures() {
		return a
	}
	return nil
}

// authMethod is the phase 1 authentication method the connection proposes and accepts.
func (sa *SA) authMethod() uint16 {
	switch {
	case sa.sigAuth() != nil:
		return authRSASig
	case sa.cfg != nil && sa.cfg.XAuth && !sa.Initiator:
		// The client proposes XAUTHInitPreShared: PSK for phase 1, then XAuth (which only
		// the responder side implements).
		return authXAuthInitPSK
	}
	return authPSK
}

// remoteMatches reports whether a peer's identity may use the connection: remote.id's patterns
// with certificates, equality (or %any) otherwise.
func remoteMatches(c *Config, id ike.Identity) bool {
	if a, ok := c.Peer.Authenticator.(SignatureAuth); ok && a.UsesSignatures() {
		return a.RemoteMatches(id)
	}
	return c.Peer.RemoteID.Matches(id)
}

// authPayloads are our HASH (PSK) or CERT and SIG payloads (signatures) for HASH_I or HASH_R.
func (sa *SA) authPayloads(ofInitiator bool, idB []byte) ([]wire.Payload, error) {
	h := sa.authHash(ofInitiator, idB)
	a := sa.sigAuth()
	if a == nil {
		return []wire.Payload{&wire.Hash{Data: h}}, nil
	}
	certs, sig, err := a.SignV1(sa.LocalID, h)
	if err != nil {
		return nil, errorf(wire.AuthenticationFailed, "cannot sign: %v", err)
	}
	var ps []wire.Payload
	for _, c := range certs {
		ps = append(ps, &wire.Cert{Encoding: wire.CertX509Sig, Data: c})
	}
	return append(ps, &wire.Sig{Data: sig}), nil
}

// verifyAuth checks the peer's HASH (PSK) or certificate and SIG (signatures).
func (sa *SA) verifyAuth(ofInitiator bool, peer ike.Identity, idB []byte, ps []wire.Payload) error {
	h := sa.authHash(ofInitiator, idB)
	side := "responder's HASH_R"
	if ofInitiator {
		side = "initiator's HASH_I"
	}
	a := sa.sigAuth()
	if a == nil {
		hash := find[*wire.Hash](ps)
		if hash == nil {
			return errorf(wire.PayloadMalformed, "no HASH payload from the peer")
		}
		if !hmac.Equal(hash.Data, h) {
			return errorf(wire.AuthenticationFailed, "the %s does not verify (wrong preshared key?)", side)
		}
		return nil
	}
	sig := find[*wire.Sig](ps)
	if sig == nil {
		return errorf(wire.PayloadMalformed, "no SIG payload from the peer")
	}
	var certs [][]byte
	for _, c := range findAll[*wire.Cert](ps) {
		if c.Encoding == wire.CertX509Sig {
			certs = append(certs, c.Data)
		}
	}
	if err := a.VerifyV1(peer, certs, h, sig.Data); err != nil {
		return errorf(wire.AuthenticationFailed, "the %s signature: %v", side, err)
	}
	return nil
}
