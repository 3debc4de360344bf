package ike

import (
	"bytes"
	"net/netip"

	"github.com/goipsec/goipsec/ike/wire"
)

// MOBIKE (RFC 4555): both sides announce MOBIKE_SUPPORTED in IKE_AUTH; afterwards the initiator
// may move the IKE SA and its Child SAs to new addresses with an INFORMATIONAL exchange carrying
// UPDATE_SA_ADDRESSES, fresh NAT detection and a COOKIE2 (return routability, §3.5). The
// responder takes the addresses of that (authenticated) request, answers with its own NAT
// detection, and both move the ESP SAs at once (ChildMoved). NO_NATS_ALLOWED (§3.9) refuses a
// NAT between the addresses the initiator says it uses and those the packet shows.

// MOBIKE reports whether MOBIKE was negotiated for the IKE SA.
func (sa *SA) MOBIKE() bool { return sa.mobike }

// mobikeAuthRequest adds MOBIKE_SUPPORTED to our first IKE_AUTH request.
func (sa *SA) mobikeAuthRequest(req *Message) {
	if sa.Config.MOBIKE {
		req.add(&wire.Notify{NotifyType: wire.MOBIKESupported})
	}
}

// mobikeAuthResponse notes the peer's MOBIKE_SUPPORTED (an initiator reading a response).
func (sa *SA) mobikeAuthResponse(ps []wire.Payload) {
	if sa.Config.MOBIKE && findNotify(ps, wire.MOBIKESupported) != nil {
		sa.mobike = true
	}
}

// mobikeRespond is a responder's part of the last IKE_AUTH response: MOBIKE when both want it.
// first are the payloads of the client's first IKE_AUTH request.
func (sa *SA) mobikeRespond(cfg *PeerConfig, first []wire.Payload) []wire.Payload {
	if cfg.MOBIKE && findNotify(first, wire.MOBIKESupported) != nil {
		sa.mobike = true
		return []wire.Payload{&wire.Notify{NotifyType: wire.MOBIKESupported}}
	}
	return nil
}

// TakeMove returns where the peer moved from with the last request (the zero value: it did not).
func (sa *SA) TakeMove() netip.AddrPort {
	if sa.rare == nil {
		return netip.AddrPort{}
	}
	m := sa.rare.movedFrom
	sa.rare.movedFrom = netip.AddrPort{}
	return m
}

// SetRequestAddresses tells the SA where the request being processed came from and went to
// (UPDATE_SA_ADDRESSES moves the SA there); the driver calls it before ProcessRequest.
// Only an SA with MOBIKE reads them, and only when they differ from its own are they kept
// (in the rare part, until ProcessRequest ends).
func (sa *SA) SetRequestAddresses(local, remote netip.AddrPort) {
	if !sa.mobike || (remote == sa.Remote && (local == sa.Local || !local.Addr().IsValid())) {
		sa.clearRequestAddresses()
		return
	}
	r := sa.rareState()
	r.reqLocal, r.reqRemote = local, remote
}

func (sa *SA) clearRequestAddresses() {
	if r := sa.rare; r != nil {
		r.reqLocal, r.reqRemote = netip.AddrPort{}, netip.AddrPort{}
	}
}

// requestAddresses returns where the request being processed came from and went to.
func (sa *SA) requestAddresses() (local, remote netip.AddrPort) {
	if r := sa.rare; r != nil && r.reqRemote.IsValid() {
		return r.reqLocal, r.reqRemote
	}
	return sa.Local, sa.Remote
}

// Roam moves an initiator's IKE SA to a new local address (the old one went away or another
// route is preferred) and queues the UPDATE_SA_ADDRESSES exchange; false when MOBIKE is not in
// use. The Child SAs move when the peer has answered.
func (sa *SA) Roam(local netip.Addr) bool {
	if !sa.mobike || !sa.Initiator || !sa.state.Up() || local == sa.Local.Addr() {
		return false
	}
	sa.Local = netip.AddrPortFrom(local, sa.Local.Port())
	for _, t := range append(append([]initiatorTask(nil), sa.active...), sa.queue...) {
		if _, ok := t.(*mobikeTask); ok {
			// One outstanding update carries the newest addresses when it is built.
			return true
		}
	}
	sa.enqueue(&mobikeTask{})
	return true
}

// mobikeTask is the initiator's UPDATE_SA_ADDRESSES exchange.
type mobikeTask struct {
	cookie2 []byte
}

func (*mobikeTask) Kind() TaskKind              { return TaskMOBIKE }
func (*mobikeTask) Exchange() wire.ExchangeType { return wire.ExchangeInformational }
func (*mobikeTask) abort(*SA)                   {}

func (t *mobikeTask) build(sa *SA, req *Message) error {
	c, err := sa.random(16)
	if err != nil {
		return err
	}
	t.cookie2 = c
	req.add(&wire.Notify{NotifyType: wire.UpdateSAAddresses})
	req.add(sa.natdPayloads()...)
	req.add(&wire.Notify{NotifyType: wire.Cookie2, Data: c})
	return nil
}

func (t *mobikeTask) process(sa *SA, resp *Message) (bool, error) {
	ps := resp.Payloads
	if n := findNotify(ps, wire.UnexpectedNATDetected); n != nil {
		err := errorf(0, "peer %s refused our new address %s: it allows no NAT (UNEXPECTED_NAT_DETECTED)", sa.Remote, sa.Local)
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, err
	}
	c := findNotify(ps, wire.Cookie2)
	if c == nil || !bytes.Equal(c.Data, t.cookie2) {
		// §3.5: the answer must echo our COOKIE2 (return routability of the new path).
		err := errorf(0, "peer %s's answer to UPDATE_SA_ADDRESSES does not echo our COOKIE2", sa.Remote)
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, err
	}
	sa.checkNATD(ps, sa.SPIr)
	sa.moveChildren()
	return false, nil
}

// moveChildren asks for every Child SA to follow the IKE SA's addresses (ESP at once).
func (sa *SA) moveChildren() {
	info := sa.Info()
	for _, c := range sa.Children {
		if c.state != ChildDeleted {
			sa.emit(ChildMoved{IKE: info, Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Encap: sa.Encap()})
		}
	}
}

// respondMOBIKE handles an INFORMATIONAL request with UPDATE_SA_ADDRESSES (RFC 4555 §3.5):
// the SA moves to the request's addresses, and the answer carries our NAT detection and the
// initiator's COOKIE2.
func (sa *SA) respondMOBIKE(req, resp *Message) bool {
	ps := req.Payloads
	if findNotify(ps, wire.UpdateSAAddresses) == nil {
		if c := findNotify(ps, wire.Cookie2); c != nil {
			// A return routability check alone (§3.5): echo it.
			resp.add(&wire.Notify{NotifyType: wire.Cookie2, Data: c.Data})
		}
		return false
	}
	if !sa.mobike || sa.Initiator {
		// §3.5: only the initiator updates, and only with MOBIKE negotiated; ignore it otherwise.
		return false
	}
	reqLocal, reqRemote := sa.requestAddresses()
	if !reqRemote.IsValid() {
		return false
	}
	if findNotify(ps, wire.NoNATsAllowed) != nil {
		// §3.9: the addresses in the header must be those the initiator sent from.
		if n := findNotify(ps, wire.NATDetectionSourceIP); n != nil && !natdMatches(n.Data, sa.SPIi, sa.SPIr, reqRemote) {
			resp.add(&wire.Notify{NotifyType: wire.UnexpectedNATDetected})
			sa.emit(Failed{Conn: sa.name(), Err: errorf(0, "peer moved to %s behind a NAT, which it does not allow (NO_NATS_ALLOWED)", reqRemote)})
			return true
		}
	}
	old := sa.Remote
	if reqLocal.Addr().IsValid() {
		sa.Local = reqLocal
	}
	sa.Remote = reqRemote
	sa.checkNATD(ps, sa.SPIr)
	resp.add(sa.natdPayloads()...)
	if c := findNotify(ps, wire.Cookie2); c != nil {
		resp.add(&wire.Notify{NotifyType: wire.Cookie2, Data: c.Data})
	}
	sa.rareState().movedFrom = old
	sa.moveChildren()
	return true
}
