package ikev1

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Quick Mode (RFC 2409 §5.5) with PFS, NAT-T encapsulation modes (RFC 3947 §5) and the
// RESPONDER-LIFETIME notify (RFC 2407 §4.6.3.1):
//
//	I: HDR*, HASH(1), SA, Ni [, KE ] , IDci, IDcr
//	R: HDR*, HASH(2), SA, Nr [, KE ] , IDci, IDcr [, N(RESPONDER-LIFETIME)]
//	I: HDR*, HASH(3)

// Child is an IPsec SA pair negotiated by Quick Mode.
type Child struct {
	Config            *ike.ChildConfig
	Name              string
	Mode              ike.Mode
	Proposal          proposal.Proposal
	SPIIn, SPIOut     uint32
	LocalTS, RemoteTS []ts.Selector
	Created           time.Time
	Initiated         bool
	RekeyAt, ExpireAt time.Time
	// replaced: a newer Child SA of the same configuration carries the traffic.
	replaced bool
}

// quickMode is one Quick Mode exchange in progress.
type quickMode struct {
	msgID     uint32
	initiator bool
	cfg       *ike.ChildConfig
	iv        []byte
	spiIn     uint32
	spiOut    uint32
	ni, nr    []byte
	ke        suite.KeyExchange
	gqm       []byte
	chosen    p2Transform
	local     ts.Selector
	remote    ts.Selector
	idci      []byte // the ID payloads as sent/received, for the responder's reply
	idcr      []byte
	replaces  *Child
	commit    bool
	lifetime  time.Duration
}

func (q *quickMode) zero() {
	if q.ke != nil {
		q.ke.Zero()
	}
	clear(q.gqm)
}

// newMsgID picks a fresh, non-zero message ID.
func (sa *SA) newMsgID() (uint32, error) {
	var b [4]byte
	for {
		if _, err := sa.deps.Rand.Read(b[:]); err != nil {
			return 0, err
		}
		id := binary.BigEndian.Uint32(b[:])
		if _, busy := sa.quick[id]; id != 0 && !busy && sa.lastIn[id] == nil {
			return id, nil
		}
	}
}

// quickHash computes HASH(1) or HASH(2) over what follows the HASH payload (RFC 2409 §5.5);
// prefix is nothing for HASH(1) and Ni_b for HASH(2).
func (sa *SA) quickHash(msgID uint32, prefix []byte, rest []byte) []byte {
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], msgID)
	return sa.keys.prf.Compute(sa.keys.skeyidA, id[:], prefix, rest)
}

// sealHashed builds HDR*, HASH(x), rest... for an exchange with its own IV.
func (sa *SA) sealHashed(x wire.ExchangeType, msgID uint32, iv, prefix []byte, flags uint8, rest ...wire.Payload) (b, next []byte, err error) {
	restB, err := wire.EncodePayloads(rest)
	if err != nil {
		return nil, nil, err
	}
	hash := &wire.Hash{Data: sa.quickHash(msgID, prefix, restB)}
	return sa.sealed(sa.header(x, msgID, flags), iv, append([]wire.Payload{hash}, rest...)...)
}

// rawAfter concatenates the received payloads after the first (the HASH payload).
func rawAfter(ps []wire.Payload) []byte {
	var b []byte
	for _, p := range ps[1:] {
		b = append(b, p.Raw()...)
	}
	return b
}

// selectorsFor resolves a child's selectors (dynamic is the ISAKMP SA's address) and picks the
// pair Quick Mode negotiates: IKEv1 carries one selector per side (RFC 2409 §5.5).
func (sa *SA) selectorsFor(c *ike.ChildConfig) (local, remote ts.Selector, err error) {
	ls := resolve(c.LocalTS, c.LocalDynamic, sa.localAddr())
	rs := resolve(c.RemoteTS, c.RemoteDynamic, sa.Remote.Addr().Unmap())
	for _, l := range ls {
		for _, r := range rs {
			if l.Is6() == r.Is6() {
				return l, r, nil
			}
		}
	}
	return ts.Selector{}, ts.Selector{}, fmt.Errorf("child %s has no local and remote selector of one address family", c.Name)
}

func (sa *SA) localAddr() netip.Addr { return sa.Local.Addr().Unmap() }

// peerAddr is what "dynamic" means for the peer's selectors: its virtual IP when Mode Config
// gave it one, its address otherwise.
func (sa *SA) peerAddr() netip.Addr {
	if sa.vip.IsValid() {
		return sa.vip
	}
	return sa.Remote.Addr().Unmap()
}

func resolve(list []ts.Selector, dynamic bool, a netip.Addr) []ts.Selector {
	out := append([]ts.Selector(nil), list...)
	if dynamic {
		out = append(out, ts.Host(a))
	}
	return out
}

// idFromSelector encodes a selector as a phase 2 ID payload: an address, a subnet or a range
// (RFC 2407 §4.6.2.1), with its protocol and a single port (IKEv1 has no port ranges).
func idFromSelector(s ts.Selector) *wire.ID {
	id := &wire.ID{Protocol: s.Protocol}
	if s.StartPort == s.EndPort {
		id.Port = s.StartPort
	}
	switch {
	case s.Start == s.End:
		id.IDType, id.Data = wire.IDIPv4Addr, s.Start.AsSlice()
		if s.Is6() {
			id.IDType = wire.IDIPv6Addr
		}
	default:
		if p, ok := s.Prefix(); ok {
			id.IDType = wire.IDIPv4Subnet
			mask := netip.PrefixFrom(p.Addr(), p.Bits())
			if s.Is6() {
				id.IDType = wire.IDIPv6Subnet
			}
			id.Data = append(p.Addr().AsSlice(), maskBytes(mask)...)
		} else {
			id.IDType = wire.IDIPv4Range
			if s.Is6() {
				id.IDType = wire.IDIPv6Range
			}
			id.Data = append(s.Start.AsSlice(), s.End.AsSlice()...)
		}
	}
	return id
}

func maskBytes(p netip.Prefix) []byte {
	b := make([]byte, p.Addr().BitLen()/8)
	for i := range p.Bits() {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

// selectorFromID decodes a phase 2 ID payload.
func selectorFromID(id *wire.ID) (ts.Selector, error) {
	s := ts.Selector{Protocol: id.Protocol, StartPort: id.Port, EndPort: id.Port}
	if id.Port == 0 {
		s.EndPort = 0xffff
	}
	switch id.IDType {
	case wire.IDIPv4Addr, wire.IDIPv6Addr:
		a, _ := netip.AddrFromSlice(id.Data)
		s.Start, s.End = a, a
	case wire.IDIPv4Subnet, wire.IDIPv6Subnet:
		n := len(id.Data) / 2
		a, _ := netip.AddrFromSlice(id.Data[:n])
		bits := 0
		for _, m := range id.Data[n:] {
			for m&0x80 != 0 {
				bits++
				m <<= 1
			}
			if m != 0 {
				return s, errors.New("subnet mask is not contiguous")
			}
		}
		p := ts.FromPrefix(netip.PrefixFrom(a, bits))
		s.Start, s.End = p.Start, p.End
	case wire.IDIPv4Range, wire.IDIPv6Range:
		n := len(id.Data) / 2
		a, _ := netip.AddrFromSlice(id.Data[:n])
		b, _ := netip.AddrFromSlice(id.Data[n:])
		if a.Compare(b) > 0 {
			return s, errors.New("address range ends before it starts")
		}
		s.Start, s.End = a, b
	default:
		return s, fmt.Errorf("ID type %d is not an address", id.IDType)
	}
	return s, nil
}

// encapMode is the encapsulation attribute for a child.
func (sa *SA) encapMode(m ike.Mode) uint16 {
	udp := sa.NAT() || sa.cfg.Peer.ForceEncap
	switch {
	case m == ike.Transport && udp:
		return encapUDPTransport
	case m == ike.Transport:
		return encapTransport
	case udp:
		return encapUDPTunnel
	}
	return encapTunnel
}

// startQuick starts a Quick Mode for a child (replaces: the Child SA it rekeys).
func (sa *SA) startQuick(c *ike.ChildConfig, replaces *Child) {
	if err := sa.initiateQuick(c, replaces); err != nil {
		sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("Quick Mode for %s: %w", c.Name, err)})
	}
}

func (sa *SA) initiateQuick(c *ike.ChildConfig, replaces *Child) error {
	local, remote, err := sa.selectorsFor(c)
	if err != nil {
		return err
	}
	msgID, err := sa.newMsgID()
	if err != nil {
		return err
	}
	q := &quickMode{msgID: msgID, initiator: true, cfg: c, local: local, remote: remote, replaces: replaces, lifetime: c.LifeTime}
	if q.spiIn, err = sa.deps.AllocSPI(); err != nil {
		return err
	}
	if q.ni, err = sa.nonce(); err != nil {
		return err
	}
	transforms := phase2Transforms(c.Proposals, sa.encapMode(c.Mode), c.LifeTime)
	if len(transforms) == 0 {
		return errors.New("no ESP proposal has an IKEv1 form")
	}
	prop := wire.Proposal{Number: 1, Protocol: wire.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.spiIn)}
	for i, t := range transforms {
		prop.Transforms = append(prop.Transforms, wire.Transform{Number: uint8(i + 1), ID: uint8(t.encr), Attrs: t.attrs()})
	}
	ps := []wire.Payload{&wire.SA{DOI: wire.DOIIPsec, Situation: wire.SituationIdentityOnly, Proposals: []wire.Proposal{prop}},
		&wire.Nonce{Data: q.ni}}
	if g := transforms[0].group; g != 0 {
		// PFS (RFC 2409 §5.5): every transform of a PFS proposal names this group.
		if q.ke, err = sa.newKE(g); err != nil {
			return err
		}
		ps = append(ps, &wire.KE{Data: q.ke.PublicValue()})
	}
	idci, idcr := idFromSelector(local), idFromSelector(remote)
	ps = append(ps, idci, idcr)
	if c.Mode == ike.Transport && sa.NAT() {
		// RFC 3947 §5.2: the original addresses, for the transport mode checksum fix-up.
		ps = append(ps, natoa(sa.localAddr()), natoa(sa.Remote.Addr().Unmap()))
	}
	q.iv = exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, msgID)
	b, next, err := sa.sealHashed(wire.ExchangeQuick, msgID, q.iv, nil, 0, ps...)
	if err != nil {
		return err
	}
	q.iv = next
	sa.quick[msgID] = q
	sa.send(b, msgID, true, func() {
		sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("peer %s did not answer Quick Mode for %s", sa.Remote, c.Name)})
		q.zero()
		delete(sa.quick, msgID)
	})
	return nil
}

func natoa(a netip.Addr) *wire.NATOA {
	t := wire.IDIPv4Addr
	if a.Is6() {
		t = wire.IDIPv6Addr
	}
	return &wire.NATOA{IDType: t, Addr: a.AsSlice()}
}

func (sa *SA) newKE(group uint16) (suite.KeyExchange, error) {
	if sa.cfg.AllowWeak {
		return suite.NewLegacyKeyExchange(group, sa.deps.Rand)
	}
	return suite.NewKeyExchange(group, sa.deps.Rand)
}

// handleQuick processes a Quick Mode message.
func (sa *SA) handleQuick(b []byte, h wire.Header) error {
	if sa.state != StateEstablished || sa.xauthPending() {
		return nil
	}
	q := sa.quick[h.MessageID]
	iv := exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, h.MessageID)
	if q != nil {
		iv = q.iv
	}
	ps, next, err := sa.open(b, h, iv)
	if err != nil || len(ps) == 0 {
		return nil
	}
	hash, ok := ps[0].(*wire.Hash)
	if !ok {
		return nil // RFC 2409 §5.5: HASH comes first; anything else is not authentic
	}
	switch {
	case q == nil:
		if !hmac.Equal(hash.Data, sa.quickHash(h.MessageID, nil, rawAfter(ps))) {
			return nil
		}
		sa.seen()
		return sa.respondQuick(b, h, ps, next)
	case q.initiator:
		ni := q.ni
		if !hmac.Equal(hash.Data, sa.quickHash(h.MessageID, ni, rawAfter(ps))) {
			return nil
		}
		sa.seen()
		q.iv = next
		return sa.quick2(b, q, ps)
	default:
		// HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
		var id [4]byte
		binary.BigEndian.PutUint32(id[:], h.MessageID)
		if !hmac.Equal(hash.Data, sa.keys.prf.Compute(sa.keys.skeyidA, []byte{0}, id[:], q.ni, q.nr)) {
			return nil
		}
		sa.seen()
		delete(sa.out, h.MessageID)
		sa.answered(b, h.MessageID, nil)
		delete(sa.quick, h.MessageID)
		return sa.installQuick(q)
	}
}

// quick2 is the initiator's processing of the responder's answer.
func (sa *SA) quick2(b []byte, q *quickMode, ps []wire.Payload) error {
	saP, no := find[*wire.SA](ps), find[*wire.Nonce](ps)
	if saP == nil || no == nil || len(saP.Proposals) != 1 || len(saP.Proposals[0].Transforms) != 1 || len(saP.Proposals[0].SPI) != 4 {
		return sa.quickFailed(q, "the responder's Quick Mode answer lacks an SA with one transform or a Nonce")
	}
	t, err := parseP2Transform(saP.Proposals[0].Transforms[0])
	if err != nil {
		return sa.quickFailed(q, "the responder's ESP transform: "+err.Error())
	}
	accepted := false
	for _, o := range phase2Transforms(q.cfg.Proposals, sa.encapMode(q.cfg.Mode), q.cfg.LifeTime) {
		if o.sameAlgorithms(t) {
			accepted = true
		}
	}
	if !accepted {
		return sa.quickFailed(q, fmt.Sprintf("the responder chose %s, which we did not offer", t.proposal()))
	}
	q.chosen, q.nr = t, append([]byte(nil), no.Data...)
	q.spiOut = binary.BigEndian.Uint32(saP.Proposals[0].SPI)
	for _, n := range findAll[*wire.Notify](ps) {
		if n.NotifyType == wire.ResponderLife {
			if d := lifetimeFromNotify(n.Data); d > 0 && (q.lifetime == 0 || d < q.lifetime) {
				q.lifetime = d
			}
		}
	}
	if q.ke != nil {
		ke := find[*wire.KE](ps)
		if ke == nil {
			return sa.quickFailed(q, "the responder did not answer our PFS key exchange")
		}
		if q.gqm, err = q.ke.SharedSecret(ke.Data); err != nil {
			return sa.quickFailed(q, "PFS key exchange: "+err.Error())
		}
	}
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], q.msgID)
	hash3 := &wire.Hash{Data: sa.keys.prf.Compute(sa.keys.skeyidA, []byte{0}, id[:], q.ni, q.nr)}
	out, _, err := sa.sealed(sa.header(wire.ExchangeQuick, q.msgID, 0), q.iv, hash3)
	if err != nil {
		return err
	}
	delete(sa.out, q.msgID)
	delete(sa.quick, q.msgID)
	// Our SA is installed before HASH(3) leaves; a retransmitted answer gets HASH(3) again.
	if err := sa.installQuick(q); err != nil {
		return err
	}
	sa.answered(b, q.msgID, out)
	sa.send(out, q.msgID, false, nil)
	return nil
}

func (sa *SA) quickFailed(q *quickMode, msg string) error {
	delete(sa.out, q.msgID)
	delete(sa.quick, q.msgID)
	q.zero()
	sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("Quick Mode for %s: %s", q.cfg.Name, msg)})
	return nil
}

func lifetimeFromNotify(data []byte) time.Duration {
	attrs, err := wire.DecodeAttrs(data)
	if err != nil {
		return 0
	}
	seconds := false
	for _, a := range attrs {
		v, _ := a.Uint()
		switch a.Type {
		case attrSALifeType:
			seconds = v == lifeSeconds
		case attrSALifeDur:
			if seconds && v < 1<<32 {
				return time.Duration(v) * time.Second
			}
		}
	}
	return 0
}

// respondQuick answers a peer's Quick Mode request.
func (sa *SA) respondQuick(b []byte, h wire.Header, ps []wire.Payload, next []byte) error {
	q := &quickMode{msgID: h.MessageID, commit: h.Flags&wire.FlagCommit != 0}
	saP, no := find[*wire.SA](ps), find[*wire.Nonce](ps)
	if saP == nil || no == nil || len(saP.Proposals) == 0 {
		return sa.refuseQuick(h.MessageID, wire.PayloadMalformed, "Quick Mode request lacks SA or Nonce")
	}
	q.ni = append([]byte(nil), no.Data...)
	ids := findAll[*wire.ID](ps)
	switch len(ids) {
	case 0:
		// No IDs: the phase 1 addresses (RFC 2409 §5.5).
		q.remote, q.local = ts.Host(sa.Remote.Addr().Unmap()), ts.Host(sa.localAddr())
	case 2:
		var err error
		if q.remote, err = selectorFromID(ids[0]); err == nil {
			q.local, err = selectorFromID(ids[1])
		}
		if err != nil {
			return sa.refuseQuick(h.MessageID, wire.InvalidIDInformation, "Quick Mode IDs: "+err.Error())
		}
		q.idci, q.idcr = wire.Body(ids[0]), wire.Body(ids[1])
	default:
		return sa.refuseQuick(h.MessageID, wire.InvalidIDInformation, fmt.Sprintf("Quick Mode request with %d ID payloads", len(ids)))
	}
	// The child whose selectors contain the peer's, in configuration order.
	idLocal, idRemote := q.local, q.remote
	for _, c := range sa.cfg.Peer.Children {
		q.local, q.remote = idLocal, idRemote
		if c.Mode == ike.Transport {
			q.local, q.remote = sa.natTransportTS(q.local, q.remote)
		}
		ls := resolve(c.LocalTS, c.LocalDynamic, sa.localAddr())
		rs := resolve(c.RemoteTS, c.RemoteDynamic, sa.peerAddr())
		if !containsAny(ls, q.local) || !containsAny(rs, q.remote) {
			continue
		}
		prop, t, ok := sa.chooseESP(saP, c)
		if !ok {
			continue
		}
		q.cfg, q.chosen = c, t
		q.spiOut = binary.BigEndian.Uint32(prop.SPI)
		return sa.answerQuick(b, h, q, ps, prop, next)
	}
	var wantTS []string
	for _, c := range sa.cfg.Peer.Children {
		wantTS = append(wantTS, c.Name+" "+ts.FormatList(c.LocalTS)+" === "+ts.FormatList(c.RemoteTS))
	}
	return sa.refuseQuick(h.MessageID, wire.NoProposalChosen, fmt.Sprintf("no child accepts %s === %s with the offered ESP proposals (configured: %v)", q.local, q.remote, wantTS))
}

// natTransportTS puts the addresses the SA really uses into a transport-mode Quick Mode's
// selectors when a NAT is in the way: a client behind one names its private address (RFC 3947
// §5.2 sends it as NAT-OA), which is not the address its packets come from (Windows and macOS
// L2TP/IPsec clients behind home routers do this).
func (sa *SA) natTransportTS(local, remote ts.Selector) (ts.Selector, ts.Selector) {
	host := func(s ts.Selector, a netip.Addr) ts.Selector {
		if s.Start == s.End && s.Start != a && s.Is6() == a.Is6() {
			s.Start, s.End = a, a
		}
		return s
	}
	if sa.NATRemote {
		remote = host(remote, sa.Remote.Addr().Unmap())
	}
	if sa.NATLocal {
		local = host(local, sa.localAddr())
	}
	return local, remote
}

func containsAny(list []ts.Selector, s ts.Selector) bool {
	for _, x := range list {
		if x.Contains(s) {
			return true
		}
	}
	return false
}

// chooseESP picks the peer's first ESP transform we accept for the child.
func (sa *SA) chooseESP(saP *wire.SA, c *ike.ChildConfig) (wire.Proposal, p2Transform, bool) {
	ours := phase2Transforms(c.Proposals, 0, c.LifeTime)
	for _, p := range saP.Proposals {
		if p.Protocol != wire.ProtoESP || len(p.SPI) != 4 {
			continue
		}
		for _, wt := range p.Transforms {
			t, err := parseP2Transform(wt)
			if err != nil || !modeFits(t.mode, c.Mode) {
				continue
			}
			for _, o := range ours {
				if o.sameAlgorithms(t) {
					return p, t, true
				}
			}
		}
	}
	return wire.Proposal{}, p2Transform{}, false
}

func modeFits(attr uint16, m ike.Mode) bool {
	switch attr {
	case encapTunnel, encapUDPTunnel, encapUDPTunnelDraft:
		return m == ike.Tunnel
	case encapTransport, encapUDPTransport, encapUDPTransDraft:
		return m == ike.Transport
	}
	return false
}

func (sa *SA) answerQuick(b []byte, h wire.Header, q *quickMode, ps []wire.Payload, prop wire.Proposal, next []byte) error {
	var err error
	if q.spiIn, err = sa.deps.AllocSPI(); err != nil {
		return err
	}
	if q.nr, err = sa.nonce(); err != nil {
		return err
	}
	wt := wire.Transform{}
	for _, x := range prop.Transforms {
		if t, err := parseP2Transform(x); err == nil && t == q.chosen {
			wt = x
			break
		}
	}
	reply := wire.Proposal{Number: prop.Number, Protocol: wire.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.spiIn), Transforms: []wire.Transform{wt}}
	out := []wire.Payload{&wire.SA{DOI: wire.DOIIPsec, Situation: wire.SituationIdentityOnly, Proposals: []wire.Proposal{reply}},
		&wire.Nonce{Data: q.nr}}
	if q.chosen.group != 0 {
		ke := find[*wire.KE](ps)
		if ke == nil {
			return sa.refuseQuick(h.MessageID, wire.PayloadMalformed, "PFS proposal without KE payload")
		}
		if q.ke, err = sa.newKE(q.chosen.group); err != nil {
			return sa.refuseQuick(h.MessageID, wire.NoProposalChosen, err.Error())
		}
		var pub []byte
		if pub, q.gqm, err = q.ke.Respond(ke.Data); err != nil {
			return sa.refuseQuick(h.MessageID, wire.InvalidKeyInformation, "PFS key exchange: "+err.Error())
		}
		out = append(out, &wire.KE{Data: pub})
	}
	if q.idci != nil {
		ids := findAll[*wire.ID](ps)
		out = append(out, ids[0], ids[1])
	}
	q.lifetime = q.chosen.lifetime
	if max := q.cfg.LifeTime; max > 0 && (q.lifetime == 0 || q.lifetime > max) {
		// RFC 2407 §4.6.3.1: tell the initiator the lifetime we use.
		q.lifetime = max
		data := wire.AppendAttrs(nil, []wire.Attr{wire.BasicAttr(attrSALifeType, lifeSeconds), wire.UintAttr(attrSALifeDur, uint64(max/time.Second))})
		out = append(out, &wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoESP, SPI: prop.SPI, NotifyType: wire.ResponderLife, Data: data})
	}
	flags := uint8(0)
	if q.commit {
		flags |= wire.FlagCommit
	}
	q.iv = next
	resp, nextIV, err := sa.sealHashed(wire.ExchangeQuick, h.MessageID, q.iv, q.ni, flags, out...)
	if err != nil {
		return err
	}
	q.iv = nextIV
	sa.quick[h.MessageID] = q
	sa.answered(b, h.MessageID, resp)
	msgID := h.MessageID
	sa.send(resp, msgID, true, func() {
		q.zero()
		delete(sa.quick, msgID)
		sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("peer %s never confirmed Quick Mode for %s (HASH(3) missing)", sa.Remote, q.cfg.Name)})
	})
	return nil
}

// refuseQuick answers a Quick Mode request with an informational error.
func (sa *SA) refuseQuick(msgID uint32, n wire.NotifyType, msg string) error {
	sa.notify(&wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoESP, NotifyType: n})
	sa.emit(ike.Failed{Conn: sa.Name(), Err: errors.New("Quick Mode refused: " + msg)})
	sa.answered(nil, msgID, nil)
	return nil
}

// installQuick derives the keys and hands the Child SA to the data plane.
func (sa *SA) installQuick(q *quickMode) error {
	defer q.zero()
	encrN, integN, err := q.chosen.keyBytes()
	if err != nil {
		sa.emit(ike.Failed{Conn: sa.Name(), Err: err})
		return nil
	}
	n := encrN + integN
	ni, nr := q.ni, q.nr
	in := keymat(sa.keys.prf, sa.keys.skeyidD, q.gqm, uint8(wire.ProtoESP), q.spiIn, ni, nr, n)
	out := keymat(sa.keys.prf, sa.keys.skeyidD, q.gqm, uint8(wire.ProtoESP), q.spiOut, ni, nr, n)
	now := sa.now()
	c := &Child{Config: q.cfg, Name: q.cfg.Name, Mode: q.cfg.Mode, Proposal: q.chosen.proposal(), SPIIn: q.spiIn, SPIOut: q.spiOut,
		LocalTS: []ts.Selector{q.local}, RemoteTS: []ts.Selector{q.remote}, Created: now, Initiated: q.initiator}
	if q.lifetime > 0 {
		c.ExpireAt = now.Add(q.lifetime)
	}
	if r := q.cfg.RekeyTime; r > 0 && (q.lifetime == 0 || r < q.lifetime) {
		if !q.initiator {
			// The peer rekeys what it started; we step in only if it did not: half way to the
			// hard lifetime, or 10% later without one.
			if q.lifetime > r {
				r += (q.lifetime - r) / 2
			} else {
				r += r / 10
			}
		}
		c.RekeyAt = now.Add(ike.Jitter(r, sa.deps.Rand))
	}
	// A newer Child SA of the same configuration and selectors replaces older ones.
	for _, o := range sa.Children {
		if o.Name == c.Name && o.LocalTS[0] == c.LocalTS[0] && o.RemoteTS[0] == c.RemoteTS[0] {
			o.replaced = true
			o.RekeyAt = time.Time{}
		}
	}
	sa.Children = append(sa.Children, c)
	sa.emit(ike.ChildUp{Child: &ike.ChildInstall{IKE: sa.Info(), Config: q.cfg, Name: c.Name, Mode: c.Mode, Proposal: c.Proposal,
		SPIIn: c.SPIIn, SPIOut: c.SPIOut, LocalTS: c.LocalTS, RemoteTS: c.RemoteTS,
		EncrIn: in[:encrN], IntegIn: in[encrN:], EncrOut: out[:encrN], IntegOut: out[encrN:],
		Encap: sa.NAT() || sa.cfg.Peer.ForceEncap, Activate: true}})
	if q.replaces != nil {
		sa.deleteChild(q.replaces, ike.ReasonRekeyed)
	}
	if q.commit && !q.initiator {
		// RFC 2408 §3.1 commit bit: confirm that the SA is in place.
		sa.notify(&wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.spiOut), NotifyType: wire.Connected})
	}
	return nil
}
