package ikev1

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ikev1/wire"
)

// Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): Delete, error and status notifies,
// and dead peer detection (RFC 3706). Each is one protected message with its own message ID:
//
//	HDR*, HASH(1), N/D        HASH(1) = prf(SKEYID_a, M-ID | N/D)

// Receive processes a datagram for this SA that arrived from remote at local. After an
// authenticated message from another address or port — the peer floated to the NAT-T port, or
// its NAT mapping moved (RFC 3947 §4; RFC 3948 §2.3 keepalives keep it) — the SA follows it, but
// never on unauthenticated input and, once established, only when the peer is behind a NAT.
func (sa *SA) Receive(b []byte, h wire.Header, local, remote netip.AddrPort) {
	if sa.state == StateDead {
		return
	}
	if !local.Addr().IsValid() {
		local = netip.AddrPortFrom(sa.Local.Addr(), local.Port())
	}
	moved := remote != sa.Remote || local != sa.Local
	oldLocal, oldRemote, seen := sa.Local, sa.Remote, sa.lastSeen
	wasUp := sa.state == StateEstablished
	if moved && (!wasUp || sa.NATRemote) {
		// Answers go where the message came from; undone below unless it authenticates.
		sa.Local, sa.Remote = local, remote
	}
	if sa.duplicate(b, h.MessageID) {
		sa.Local, sa.Remote = oldLocal, oldRemote
		return
	}
	defer func() {
		if !moved || sa.state == StateDead {
			return
		}
		if sa.lastSeen == seen && sa.state != StateEstablished {
			sa.Local, sa.Remote = oldLocal, oldRemote
			return
		}
		if wasUp && sa.NATRemote && sa.lastSeen != seen {
			for _, c := range sa.Children {
				sa.emit(ike.ChildMoved{IKE: sa.Info(), Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Encap: true})
			}
		} else if wasUp {
			sa.Local, sa.Remote = oldLocal, oldRemote
		}
	}()
	var err error
	switch {
	case h.Exchange == wire.ExchangeInformational:
		err = sa.handleInformational(b, h)
	case h.MessageID == 0 && (h.Exchange == wire.ExchangeMain || h.Exchange == wire.ExchangeAggressive):
		if sa.Initiator {
			err = sa.initiatorPhase1(b, h)
		} else {
			err = sa.responderPhase1(b, h)
		}
	case h.Exchange == wire.ExchangeQuick:
		err = sa.handleQuick(b, h)
	case h.Exchange == wire.ExchangeTransaction:
		err = sa.handleTransaction(b, h)
	}
	if err != nil {
		sa.fail(err)
	}
}

func (sa *SA) seen() { sa.lastSeen = sa.now() }

func (sa *SA) handleInformational(b []byte, h wire.Header) error {
	if !h.Encrypted() {
		// An unprotected notify can only be believed before phase 1 has keys: the peer refusing
		// our proposal or authentication. Later ones could come from anybody and are dropped.
		if sa.state == StateEstablished || sa.keys != nil && sa.keys.skeyidA != nil {
			return nil
		}
		m, err := wire.Decode(b)
		if err != nil {
			return nil
		}
		if n := find[*wire.Notify](m.Payloads); n != nil && n.NotifyType.IsError() && sa.Initiator {
			return &Error{Msg: fmt.Sprintf("peer %s refused: %s", sa.Remote, n.NotifyType), Reason: reasonFor(n.NotifyType)}
		}
		return nil
	}
	if sa.keys == nil || sa.keys.skeyidA == nil || (sa.state != StateEstablished && sa.state != StateDeleting && sa.state != StateAuthSent) {
		return nil
	}
	iv := exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, h.MessageID)
	ps, _, err := sa.open(b, h, iv)
	if err != nil || len(ps) < 2 {
		return nil
	}
	hash, ok := ps[0].(*wire.Hash)
	if !ok || !hmacEqual(hash.Data, sa.quickHash(h.MessageID, nil, rawAfter(ps))) {
		return nil
	}
	sa.answered(b, h.MessageID, nil)
	sa.seen()
	for _, p := range ps[1:] {
		switch p := p.(type) {
		case *wire.Delete:
			sa.peerDelete(p)
			if sa.state == StateDead {
				return nil
			}
		case *wire.Notify:
			if err := sa.peerNotify(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func reasonFor(n wire.NotifyType) ike.Reason {
	switch n {
	case wire.AuthenticationFailed, wire.InvalidHashInformation, wire.InvalidIDInformation, wire.InvalidSignature:
		return ike.ReasonAuthFailed
	}
	return ike.ReasonNegotiationFailed
}

func (sa *SA) peerNotify(n *wire.Notify) error {
	switch n.NotifyType {
	case wire.RUThere:
		if !bytes.Equal(n.SPI, sa.cookies()) || len(n.Data) != 4 {
			return nil
		}
		sa.notify(&wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoISAKMP, SPI: sa.cookies(), NotifyType: wire.RUThereAck, Data: n.Data})
	case wire.RUThereAck:
		if len(n.Data) == 4 && binary.BigEndian.Uint32(n.Data) == sa.dpdSeq {
			sa.dpdSent = time.Time{}
		}
	case wire.InitialContact:
		sa.PeerInitialContact = true
	default:
		if n.NotifyType.IsError() && sa.state != StateEstablished {
			return &Error{Msg: fmt.Sprintf("peer %s refused: %s", sa.Remote, n.NotifyType), Reason: reasonFor(n.NotifyType)}
		}
		if n.NotifyType.IsError() {
			// A refused Quick Mode: the peer does not name which; drop what waits for an answer.
			sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("peer %s sent %s", sa.Remote, n.NotifyType)})
		}
	}
	return nil
}

// peerDelete handles a Delete payload: the peer names SPIs it receives on (its inbound, our
// outbound), or the ISAKMP SA by its cookies.
func (sa *SA) peerDelete(d *wire.Delete) {
	switch d.Protocol {
	case wire.ProtoISAKMP:
		for _, spi := range d.SPIs {
			if bytes.Equal(spi, sa.cookies()) {
				sa.Kill(ike.ReasonDeletedByPeer)
				return
			}
		}
	case wire.ProtoESP, wire.ProtoAH:
		for _, spi := range d.SPIs {
			if len(spi) != 4 {
				continue
			}
			v := binary.BigEndian.Uint32(spi)
			for _, c := range sa.Children {
				if c.SPIOut == v {
					sa.removeChild(c, ike.ReasonDeletedByPeer)
					break
				}
			}
		}
	}
}

func hmacEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// notify sends a protected informational message with one notify (or, before keys, a clear one).
func (sa *SA) notify(n *wire.Notify) {
	sa.informational(n)
}

func (sa *SA) informational(p wire.Payload) {
	if sa.keys == nil || sa.keys.skeyidA == nil {
		if b, err := sa.plain(wire.ExchangeInformational, p); err == nil {
			sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: b}})
		}
		return
	}
	msgID, err := sa.newMsgID()
	if err != nil {
		return
	}
	iv := exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, msgID)
	b, _, err := sa.sealHashed(wire.ExchangeInformational, msgID, iv, nil, 0, p)
	if err != nil {
		return
	}
	sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: b}})
}

// removeChild takes a Child SA down without telling the peer.
func (sa *SA) removeChild(c *Child, reason ike.Reason) {
	for i, x := range sa.Children {
		if x == c {
			sa.Children = append(sa.Children[:i], sa.Children[i+1:]...)
			break
		}
	}
	sa.emit(ike.ChildDown{IKE: sa.Info(), Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Reason: reason, Grace: reason == ike.ReasonRekeyed})
}

// deleteChild deletes a Child SA, telling the peer (RFC 2408 §3.15: we name our inbound SPI).
func (sa *SA) deleteChild(c *Child, reason ike.Reason) {
	sa.informational(&wire.Delete{DOI: wire.DOIIPsec, Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.SPIIn)}})
	sa.removeChild(c, reason)
}

// Delete deletes the ISAKMP SA and its Child SAs, telling the peer.
func (sa *SA) Delete(reason ike.Reason) {
	if sa.state == StateDead {
		return
	}
	if sa.state != StateEstablished {
		sa.Kill(reason)
		return
	}
	for _, c := range append([]*Child(nil), sa.Children...) {
		sa.deleteChild(c, reason)
	}
	sa.informational(&wire.Delete{DOI: wire.DOIIPsec, Protocol: wire.ProtoISAKMP, SPISize: 16, SPIs: [][]byte{sa.cookies()}})
	sa.setState(StateDeleting)
	sa.Kill(reason)
}

// DeleteChild deletes the Child SA with the given inbound SPI.
func (sa *SA) DeleteChild(spiIn uint32, reason ike.Reason) bool {
	for _, c := range sa.Children {
		if c.SPIIn == spiIn {
			sa.deleteChild(c, reason)
			return true
		}
	}
	return false
}

// RekeyChild starts a Quick Mode that replaces the Child SA with the given inbound SPI.
func (sa *SA) RekeyChild(spiIn uint32) bool {
	for _, c := range sa.Children {
		if c.SPIIn == spiIn && !c.replaced && sa.state == StateEstablished {
			c.RekeyAt = time.Time{}
			sa.startQuick(c.Config, c)
			return true
		}
	}
	return false
}

// CreateChild negotiates a Child SA (now, or once phase 1 is up).
func (sa *SA) CreateChild(c *ike.ChildConfig) {
	for _, x := range sa.Children {
		if x.Config == c && !x.replaced {
			return
		}
	}
	for _, q := range sa.quick {
		if q.cfg == c {
			return
		}
	}
	if sa.state != StateEstablished {
		for _, p := range sa.pending {
			if p == c {
				return
			}
		}
		sa.pending = append(sa.pending, c)
		return
	}
	sa.startQuick(c, nil)
}

// Phase 1 rekeying. IKEv1 has no rekey exchange: a new Main or Aggressive Mode replaces the
// ISAKMP SA. Peers tie IPsec SAs to the ISAKMP SA that made them (strongSwan deletes them with
// it), so the successor negotiates every Child SA again with Quick Mode, each old one is deleted
// once its replacement is installed, and the old ISAKMP SA goes when it has none left:
// make-before-break, as for Child SA rekeys.

// Retire marks the SA as replaced by a successor: its end is not the connection's end.
func (sa *SA) Retire() { sa.replaced = true }

// ChildConfigs returns the configurations of the Child SAs that carry traffic.
func (sa *SA) ChildConfigs() []*ike.ChildConfig {
	var out []*ike.ChildConfig
	for _, c := range sa.Children {
		if !c.replaced && c.Config != nil {
			out = append(out, c.Config)
		}
	}
	return out
}

// ReplacedElsewhere deletes the Child SAs of a configuration whose successor another ISAKMP SA
// installed, and, when none is left, the ISAKMP SA itself.
func (sa *SA) ReplacedElsewhere(name string) {
	for _, c := range append([]*Child(nil), sa.Children...) {
		if c.Name == name {
			sa.deleteChild(c, ike.ReasonRekeyed)
		}
	}
	if len(sa.Children) == 0 && sa.replaced {
		sa.Delete(ike.ReasonRekeyed)
	}
}

// RekeyDue reports whether phase 1 should be replaced now (the driver starts a new one).
func (sa *SA) RekeyDue(now time.Time) bool {
	return sa.state == StateEstablished && !sa.rekeyAt.IsZero() && !now.Before(sa.rekeyAt)
}

// RekeyStarted stops asking for a phase 1 rekey.
func (sa *SA) RekeyStarted() { sa.rekeyAt = time.Time{} }

// Tick does what is due: retransmissions, DPD, Child SA rekeys and expiry, the ISAKMP SA's
// expiry.
func (sa *SA) Tick(now time.Time) {
	if sa.state == StateDead {
		return
	}
	for id, o := range sa.out {
		if now.Before(o.next) {
			continue
		}
		if o.tries >= sa.timing.Tries {
			delete(sa.out, id)
			if id == 0 && sa.state != StateEstablished {
				sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("peer %s did not answer %d retransmissions of phase 1", sa.Remote, o.tries)})
				sa.Kill(ike.ReasonDeadPeer)
				return
			}
			if o.onGiveUp != nil {
				o.onGiveUp()
			}
			continue
		}
		o.tries++
		o.next = now.Add(sa.timing.delay(o.tries))
		sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: o.b}})
	}
	if sa.state != StateEstablished {
		if !sa.halfOpenUntil.IsZero() && !now.Before(sa.halfOpenUntil) {
			sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("half-open IKEv1 SA from %s timed out in phase 1", sa.Remote)})
			sa.Kill(ike.ReasonHalfOpenTimeout)
		}
		return
	}
	// Dead peer detection (RFC 3706 §5.3): when the peer has been quiet for dpd_delay, ask; a
	// peer that answers no R-U-THERE within the DPD timeout is dead.
	if d := sa.cfg.Peer.DPDDelay; d > 0 && sa.peerDPD {
		if !sa.dpdSent.IsZero() && now.Sub(sa.dpdSent) >= sa.dpdTimeout() {
			sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("peer %s did not answer R-U-THERE for %v", sa.Remote, sa.dpdTimeout())})
			sa.Kill(ike.ReasonDeadPeer)
			return
		}
		if now.Sub(sa.lastSeen) >= d && (sa.dpdSent.IsZero() || now.Sub(sa.dpdLast) >= sa.timing.Timeout) {
			sa.dpdSeq++
			if sa.dpdSent.IsZero() {
				sa.dpdSent = now
			}
			sa.dpdLast = now
			sa.notify(&wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoISAKMP, SPI: sa.cookies(), NotifyType: wire.RUThere,
				Data: binary.BigEndian.AppendUint32(nil, sa.dpdSeq)})
		}
	}
	for _, c := range append([]*Child(nil), sa.Children...) {
		switch {
		case !c.ExpireAt.IsZero() && !now.Before(c.ExpireAt):
			sa.deleteChild(c, ike.ReasonLifetime)
		case !c.RekeyAt.IsZero() && !now.Before(c.RekeyAt) && !c.replaced:
			c.RekeyAt = time.Time{}
			sa.startQuick(c.Config, c)
		}
	}
	if !sa.expireAt.IsZero() && !now.Before(sa.expireAt) {
		// The ISAKMP SA's lifetime ends; its IPsec SAs stay only when a successor took them.
		sa.Delete(ike.ReasonLifetime)
	}
	if sa.keepalive > 0 && !sa.keepaliveAt.IsZero() && !now.Before(sa.keepaliveAt) {
		sa.keepaliveAt = now.Add(sa.keepalive)
	}
}

func (sa *SA) dpdTimeout() time.Duration {
	if sa.cfg.DPDTimeout > 0 {
		return sa.cfg.DPDTimeout
	}
	return 150 * time.Second
}

// NextDeadline is when Tick has something to do next (zero: nothing).
func (sa *SA) NextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if sa.state == StateDead {
		return next
	}
	for _, o := range sa.out {
		consider(o.next)
	}
	if sa.state != StateEstablished {
		consider(sa.halfOpenUntil)
		return next
	}
	if d := sa.cfg.Peer.DPDDelay; d > 0 && sa.peerDPD {
		if sa.dpdSent.IsZero() {
			consider(sa.lastSeen.Add(d))
		} else {
			consider(sa.dpdLast.Add(sa.timing.Timeout))
			consider(sa.dpdSent.Add(sa.dpdTimeout()))
		}
	}
	for _, c := range sa.Children {
		consider(c.ExpireAt)
		if !c.replaced {
			consider(c.RekeyAt)
		}
	}
	consider(sa.expireAt)
	consider(sa.rekeyAt)
	return next
}
