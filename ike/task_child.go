package ike

import (
	"bytes"
	"time"

	"github.com/goipsec/goipsec/ike/wire"
)

// temporaryFailureRetry is how long a task waits after TEMPORARY_FAILURE before it tries again:
// RFC 7296 §2.25 forbids an immediate retry.
const temporaryFailureRetry = 10 * time.Second

// rekeyRetry is how long a failed Child SA rekey waits before it is tried again.
const rekeyRetry = time.Minute

// QueueCreateChild queues a new Child SA for cfg (CREATE_CHILD_SA, RFC 7296 §1.3.1), unless an
// installed or pending one of the same configuration exists; it reports whether it queued one.
func (sa *SA) QueueCreateChild(cfg *ChildConfig) bool {
	for _, c := range sa.Children {
		if c.Config == cfg && c.state != ChildDeleting && c.state != ChildDeleted {
			return false
		}
	}
	if sa.hasTask(func(t initiatorTask) bool { c, ok := t.(*childCreateTask); return ok && c.cfg == cfg }) {
		return false
	}
	sa.enqueue(&childCreateTask{cfg: cfg})
	return true
}

// childCreateTask negotiates a new Child SA, in IKE_AUTH (inAuth) or in CREATE_CHILD_SA.
type childCreateTask struct {
	cfg    *ChildConfig
	inAuth bool
	req    *childRequest
	ni     []byte
}

func (*childCreateTask) Kind() TaskKind { return TaskChildCreate }

func (t *childCreateTask) Exchange() wire.ExchangeType {
	if t.inAuth {
		return wire.ExchangeIKEAuth
	}
	return wire.ExchangeCreateChildSA
}

func (t *childCreateTask) abort(*SA) { t.req.zero() }

func (t *childCreateTask) build(sa *SA, req *Message) error {
	t.req.zero()
	if t.inAuth {
		r, ps, err := sa.newChildRequest(t.cfg, false, nil)
		if err != nil {
			return err
		}
		t.req = r
		req.add(ps...)
		return nil
	}
	ni, err := sa.nonce()
	if err != nil {
		return err
	}
	r, ps, err := sa.newChildRequest(t.cfg, true, nil)
	if err != nil {
		return err
	}
	t.req, t.ni = r, ni
	req.add(ps[0], &wire.Nonce{Data: ni})
	req.add(ps[1:]...)
	return nil
}

func (t *childCreateTask) process(sa *SA, resp *Message) (bool, error) {
	defer t.req.zero()
	ni, nr := t.ni, []byte(nil)
	if t.inAuth {
		if sa.hs == nil {
			return false, nil
		}
		ni, nr = sa.hs.Ni, sa.hs.Nr
		if find[*wire.SA](resp.Payloads) == nil && firstError(resp.Payloads) == nil {
			err := errorf(0, "child %s: peer established the IKE SA without the Child SA we asked for", t.cfg.Name)
			sa.emit(Failed{Conn: sa.name(), Err: err})
			return false, err
		}
	} else {
		if findNotify(resp.Payloads, wire.TemporaryFailure) != nil {
			sa.deferTask(&childCreateTask{cfg: t.cfg}, temporaryFailureRetry)
			return false, nil
		}
		nonce := find[*wire.Nonce](resp.Payloads)
		if nonce == nil && firstError(resp.Payloads) == nil {
			err := errorf(0, "child %s: CREATE_CHILD_SA response without a nonce", t.cfg.Name)
			sa.emit(Failed{Conn: sa.name(), Err: err})
			return false, err
		}
		if nonce != nil {
			nr = nonce.Data
		}
	}
	c, inst, err := sa.completeChild(t.req, resp.Payloads, ni, nr)
	if err != nil {
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, err
	}
	sa.addChild(c, inst, true, nil)
	return false, nil
}

// respondChildInAuth answers the Child SA part of an IKE_AUTH request.
func respondChildInAuth(sa *SA, req, resp *Message) {
	ps, c, inst, err := sa.respondChild(sa.Config.Children, req.Payloads, sa.hs.Ni, sa.hs.Nr, false)
	resp.add(ps...)
	if err != nil {
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return
	}
	sa.addChild(c, inst, true, nil)
}

// respondChildCreate answers a CREATE_CHILD_SA request for a new Child SA.
func respondChildCreate(sa *SA, req, resp *Message) {
	nonce := find[*wire.Nonce](req.Payloads)
	if nonce == nil {
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
		return
	}
	nr, err := sa.nonce()
	if err != nil {
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	ps, c, inst, cerr := sa.respondChild(sa.Config.Children, req.Payloads, nonce.Data, nr, true)
	if cerr != nil {
		resp.add(ps...)
		sa.emit(Failed{Conn: sa.name(), Err: cerr})
		return
	}
	resp.add(ps[0], &wire.Nonce{Data: nr})
	resp.add(ps[1:]...)
	sa.whenKeyed(inst, func(inst *ChildInstall) { sa.addChild(c, inst, true, nil) })
}

// QueueRekeyChild queues a rekey of the Child SA with inbound SPI spiIn (RFC 7296 §1.3.3); it
// reports whether the Child SA exists and is not being rekeyed or deleted already.
func (sa *SA) QueueRekeyChild(spiIn uint32) bool {
	c := sa.Child(spiIn)
	if c == nil || c.state != ChildInstalled {
		return false
	}
	if sa.hasTask(func(t initiatorTask) bool { r, ok := t.(*childRekeyTask); return ok && r.old == c }) {
		return false
	}
	sa.enqueue(&childRekeyTask{old: c})
	return true
}

// childRekeyTask rekeys a Child SA with CREATE_CHILD_SA and REKEY_SA. Collisions (RFC 7296
// §2.8.1, §2.25.1) are its business: when the peer rekeys the same Child SA meanwhile, the
// exchange with the lowest of the four nonces made the redundant Child SA, which its creator
// deletes; the creator of the surviving one deletes the old Child SA.
type childRekeyTask struct {
	old *ChildSA
	req *childRequest
	ni  []byte
	// peerNew is the Child SA the peer's colliding rekey of old created.
	peerNew *ChildSA
}

func (*childRekeyTask) Kind() TaskKind              { return TaskChildRekey }
func (*childRekeyTask) Exchange() wire.ExchangeType { return wire.ExchangeCreateChildSA }

func (t *childRekeyTask) abort(sa *SA) {
	t.req.zero()
	if t.old.state == ChildRekeying {
		sa.setChildState(t.old, ChildInstalled)
	}
}

func (t *childRekeyTask) build(sa *SA, req *Message) error {
	old := t.old
	if old.state != ChildInstalled || sa.Child(old.SPIIn) != old {
		return errorf(0, "child %s (%08x) is no longer there to rekey", old.Name, old.SPIIn)
	}
	ni, err := sa.nonce()
	if err != nil {
		return err
	}
	r, ps, err := sa.newChildRequest(old.Config, true, old)
	if err != nil {
		return err
	}
	t.req, t.ni = r, ni
	sa.setChildState(old, ChildRekeying)
	req.add(&wire.Notify{Protocol: old.wireProtocol(), SPI: spiBytes(old.SPIIn), NotifyType: wire.RekeySA}, ps[0], &wire.Nonce{Data: ni})
	req.add(ps[1:]...)
	return nil
}

func (t *childRekeyTask) process(sa *SA, resp *Message) (bool, error) {
	defer t.req.zero()
	old := t.old
	oldLive := old.state != ChildDeleted && sa.Child(old.SPIIn) == old
	restore := func() {
		if old.state == ChildRekeying {
			sa.setChildState(old, ChildInstalled)
		}
	}
	if findNotify(resp.Payloads, wire.TemporaryFailure) != nil {
		restore()
		if oldLive {
			old.RekeyAt = sa.deps.Now().Add(temporaryFailureRetry + Jitter(temporaryFailureRetry, sa.deps.Rand))
		}
		return false, nil
	}
	if findNotify(resp.Payloads, wire.ChildSANotFound) != nil {
		// RFC 7296 §2.25: the peer has no such Child SA; drop ours and create a new one.
		if oldLive {
			sa.childGone(old, ReasonDeletedByPeer)
			sa.enqueue(&childCreateTask{cfg: old.Config})
		}
		return false, nil
	}
	nonce := find[*wire.Nonce](resp.Payloads)
	var nr []byte
	if nonce != nil {
		nr = nonce.Data
	}
	if nonce == nil && firstError(resp.Payloads) == nil {
		restore()
		err := errorf(0, "child %s: CREATE_CHILD_SA response without a nonce", old.Name)
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, err
	}
	c, inst, err := sa.completeChild(t.req, resp.Payloads, t.ni, nr)
	if err != nil {
		restore()
		if oldLive {
			old.RekeyAt = sa.deps.Now().Add(rekeyRetry)
		}
		sa.emit(Failed{Conn: sa.name(), Err: err})
		return false, err
	}
	if !oldLive {
		// The peer deleted the old Child SA meanwhile (RFC 7296 §2.25.1): the new one stands alone.
		sa.addChild(c, inst, true, nil)
		return false, nil
	}
	if p := t.peerNew; p != nil && p.state != ChildDeleted {
		if bytes.Compare(c.nonceMin.bytes(), p.nonceMin.bytes()) < 0 {
			// Ours is redundant: install it so that packets the peer sends on it arrive, but keep
			// our traffic for the peer's successor, and delete ours.
			c.redundant = true
			sa.addChild(c, inst, false, old)
			old.successor = p
			restore()
			sa.enqueue(&childDeleteTask{child: c, reason: ReasonCollision})
			return false, nil
		}
		p.redundant = true
	}
	old.successor = c
	sa.addChild(c, inst, true, old)
	sa.setChildState(old, ChildRekeyed)
	sa.enqueue(&childDeleteTask{child: old, reason: ReasonRekeyed})
	return false, nil
}

// respondChildRekey answers the peer's rekey of a Child SA: the new Child SA waits in standby
// until the peer shows it uses it (make-before-break).
func respondChildRekey(sa *SA, req, resp *Message) {
	n := findNotify(req.Payloads, wire.RekeySA)
	spi, ok := spiFromBytes(n.SPI)
	var old *ChildSA
	if ok {
		old = sa.childByOutbound(n.Protocol, spi)
	}
	if old == nil {
		resp.add(&wire.Notify{Protocol: n.Protocol, SPI: n.SPI, NotifyType: wire.ChildSANotFound})
		sa.emit(Failed{Conn: sa.name(), Err: errorf(wire.ChildSANotFound, "peer wants to rekey Child SA with SPI %x, which we do not have", n.SPI), Retry: true})
		return
	}
	switch old.state {
	case ChildDeleting, ChildRekeyed, ChildDeleted:
		// RFC 7296 §2.25.1: we are closing it (or replaced it already): the peer may retry.
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	nonce := find[*wire.Nonce](req.Payloads)
	if nonce == nil {
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
		return
	}
	nr, err := sa.nonce()
	if err != nil {
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	ps, c, inst, cerr := sa.respondChild([]*ChildConfig{old.Config}, req.Payloads, nonce.Data, nr, true)
	if cerr != nil {
		resp.add(ps...)
		sa.emit(Failed{Conn: sa.name(), Err: cerr})
		return
	}
	resp.add(ps[0], &wire.Nonce{Data: nr})
	resp.add(ps[1:]...)
	if old.state == ChildRekeying {
		for _, t := range sa.active {
			if r, ok := t.(*childRekeyTask); ok && r.old == old {
				r.peerNew = c
			}
		}
	}
	sa.whenKeyed(inst, func(inst *ChildInstall) {
		old.successor = c
		sa.addChild(c, inst, false, old)
	})
}

// QueueDeleteChild queues the deletion of a Child SA (RFC 7296 §1.4.1).
func (sa *SA) QueueDeleteChild(spiIn uint32, reason Reason) bool {
	c := sa.Child(spiIn)
	if c == nil || c.state == ChildDeleting || c.state == ChildDeleted {
		return false
	}
	if sa.hasTask(func(t initiatorTask) bool { d, ok := t.(*childDeleteTask); return ok && d.child == c }) {
		return false
	}
	sa.enqueue(&childDeleteTask{child: c, reason: reason})
	return true
}

// childDeleteTask deletes a Child SA with an INFORMATIONAL Delete.
type childDeleteTask struct {
	child  *ChildSA
	reason Reason
}

func (*childDeleteTask) Kind() TaskKind              { return TaskChildDelete }
func (*childDeleteTask) Exchange() wire.ExchangeType { return wire.ExchangeInformational }
func (*childDeleteTask) abort(*SA)                   {}

func (t *childDeleteTask) build(sa *SA, req *Message) error {
	c := t.child
	if c.state == ChildDeleted || sa.Child(c.SPIIn) != c {
		return errorf(0, "child %s (%08x) is gone already", c.Name, c.SPIIn)
	}
	sa.setChildState(c, ChildDeleting)
	req.add(&wire.Delete{Protocol: c.wireProtocol(), SPIs: [][]byte{spiBytes(c.SPIIn)}})
	return nil
}

func (t *childDeleteTask) process(sa *SA, _ *Message) (bool, error) {
	sa.childGone(t.child, t.reason)
	return false, nil
}

// respondChildDelete handles one Delete payload for ESP or AH SAs.
func respondChildDelete(sa *SA, d *wire.Delete, resp *Message) {
	var ours [][]byte
	for _, raw := range d.SPIs {
		spi, ok := spiFromBytes(raw)
		if !ok {
			continue
		}
		c := sa.childByOutbound(d.Protocol, spi)
		if c == nil {
			continue
		}
		if c.state != ChildDeleting {
			// RFC 7296 §1.4.1: when both sides delete at once, neither response names the SA.
			ours = append(ours, spiBytes(c.SPIIn))
		}
		sa.childGone(c, ReasonDeletedByPeer)
	}
	if len(ours) > 0 {
		resp.add(&wire.Delete{Protocol: d.Protocol, SPIs: ours})
	}
}
