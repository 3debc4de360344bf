package engine

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

// handle runs one piece of work as the SA's owner and returns the effects to apply.
func (e *Engine) handle(en *entry, w work) []effect {
	s := en.s
	if s.State() == ike.StateDead {
		return nil
	}
	switch w.kind {
	case workDatagram:
		if w.h.IsResponse() {
			e.receiveResponse(s, w)
		} else {
			e.receiveRequest(s, w)
		}
	case workTimer:
		e.tick(s)
	case workFunc:
		w.fn(s)
	}
	e.startNext(s)
	return e.finish(s)
}

// --- responses to our requests ---

func (e *Engine) receiveResponse(s *ikeSA, w work) {
	h := w.h
	if s.pendingMsg == nil || h.MessageID != s.pendingID || w.tcp != s.TCP {
		e.stats.drop(DropUnexpectedResponse)
		e.log.Debug("unexpected response", "msgid", h.MessageID, "exchange", h.Exchange.String())
		return
	}
	if h.Exchange == wire.ExchangeIKESAInit {
		e.receiveInitResponse(s, w)
		return
	}
	if h.Exchange == wire.ExchangeInformational && e.peerLostState(s, w) {
		return
	}
	inner, intAuth, ok := e.open(s, w)
	if !ok {
		return
	}
	e.seen(s, w)
	e.stopPending(s)
	next, err := s.ProcessResponse(&ike.Message{Exchange: h.Exchange, Payloads: inner, IntAuth: intAuth})
	if err != nil {
		e.logSA(s).Debug("exchange failed", "exchange", h.Exchange.String(), "err", err)
	}
	if next != nil {
		id := s.nextMsgID
		s.nextMsgID++
		e.sendProtected(s, next, id)
	}
}

func (e *Engine) receiveInitResponse(s *ikeSA, w work) {
	if s.State() != ike.StateInitSent || w.h.SPIi != s.SPIi {
		e.stats.drop(DropUnexpectedResponse)
		return
	}
	m, err := wire.Decode(w.b)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.enc.Debug("dropping invalid IKE_SA_INIT response", "from", w.remote, "err", err)
		return
	}
	if err := wire.CheckGrammar(m, nil); err != nil {
		e.stats.drop(DropGrammar)
		e.enc.Info("dropping malformed IKE_SA_INIT response", "from", w.remote, "err", err)
		return
	}
	e.stopPending(s)
	next, err := s.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: m.Payloads, Raw: w.b})
	if err != nil {
		return // the SA is dead; finish cleans up
	}
	if next != nil {
		e.sendRequest(s, 0, [][]byte{next.Raw})
		return
	}
	if (s.Encap() || s.Config.MOBIKE) && !s.TCP {
		// Float to the NAT-T port (RFC 7296 §2.23; also for a NAT faked by encap = yes; with MOBIKE always, RFC 4555 §3.3, so that
		// a NAT appearing after a move finds IKE there already); a TCP connection stays where it
		// is.
		s.Local = netip.AddrPortFrom(s.Local.Addr(), e.cfg.NATTPort)
		s.Remote = netip.AddrPortFrom(s.Remote.Addr(), 4500)
	}
	s.nextMsgID = 1
	s.lastSeen = e.now()
}

// peerLostState handles an unprotected INVALID_IKE_SPI answer to our outstanding request: the
// peer restarted and forgot the IKE SA (RFC 7296 §2.21.4). It is believed only when it comes from
// the peer's address and names our SPIs and the request's message ID, which an off-path attacker
// cannot guess.
func (e *Engine) peerLostState(s *ikeSA, w work) bool {
	m, err := wire.Decode(w.b)
	if err != nil || len(m.Payloads) == 0 {
		return false
	}
	switch m.Payloads[len(m.Payloads)-1].(type) {
	case *wire.Encrypted, *wire.EncryptedFragment:
		return false
	}
	if firstNotify(m.Payloads, wire.InvalidIKESPI) == nil || w.remote.Addr() != s.Remote.Addr() ||
		w.h.SPIi != s.SPIi || w.h.SPIr != s.SPIr {
		e.stats.drop(DropAuth)
		return true
	}
	e.logSA(s).Warn("peer answered INVALID_IKE_SPI: it lost the IKE SA (restarted?)", "peer", w.remote)
	e.stopPending(s)
	s.Abort()
	s.Kill(ike.ReasonPeerRestarted)
	return true
}

func (e *Engine) stopPending(s *ikeSA) {
	s.pendingMsg = nil
	s.retransmitAt = 0
}

// open authenticates a protected message and returns its inner payloads, reassembling fragments
// (nil, false until the last fragment arrives), and for IKE_INTERMEDIATE the data IKE_AUTH
// authenticates (RFC 9242 §3.3.2).
func (e *Engine) open(s *ikeSA, w work) ([]wire.Payload, []byte, bool) {
	opened, err := s.Open(w.b)
	if err != nil {
		e.stats.drop(DropAuth)
		e.enc.Debug("dropping message that does not authenticate", "conn", s.connName(), "err", err)
		return nil, nil, false
	}
	if opened.Fragment != nil {
		if s.reasm == nil {
			s.reasm = wire.NewReassembler(64, 64<<10)
		}
		first, plain, done, err := s.reasm.AddPlain(w.h.MessageID, *opened.Fragment)
		if err == nil && done {
			opened.Inner, err = wire.DecodePayloads(first, plain)
			opened.Plain = plain
			if sk, ok := opened.Payloads[len(opened.Payloads)-1].(*wire.EncryptedFragment); ok {
				sk.First = first
			}
		}
		if err != nil {
			e.stats.drop(DropFragment)
			e.enc.Debug("dropping fragment", "conn", s.connName(), "err", err)
			return nil, nil, false
		}
		if !done {
			return nil, nil, false
		}
		s.reasm = nil
	}
	var intAuth []byte
	if w.h.Exchange == wire.ExchangeIKEIntermediate {
		intAuth = wire.IntAuthData(w.h, firstInner(opened), opened.Plain)
	}
	if debugEnabled(e.enc) {
		e.enc.Debug("parsed", "conn", s.connName(), "exchange", w.h.Exchange.String(), "response", w.h.IsResponse(), "msgid", w.h.MessageID, "payloads", payloadList(opened.Inner))
	}
	if err := wire.CheckGrammar(opened.Message, opened.Inner); err != nil {
		e.stats.drop(DropGrammar)
		e.logSA(s).Warn("dropping malformed message", "exchange", w.h.Exchange.String(), "err", err)
		return nil, nil, false
	}
	return opened.Inner, intAuth, true
}

// firstInner is the type of the first inner payload of an opened message.
func firstInner(o *wire.Opened) wire.PayloadType {
	switch p := o.Payloads[len(o.Payloads)-1].(type) {
	case *wire.Encrypted:
		return p.First
	case *wire.EncryptedFragment:
		return p.First
	}
	return wire.PayloadNone
}

// seen records an authenticated message from the peer and follows the peer's address when RFC
// 7296 §2.23 says to: the peer is behind a NAT whose mapping changed. Never on unauthenticated
// input (this runs after the ICV check), and never when only we are behind the NAT.
func (e *Engine) seen(s *ikeSA, w work) {
	s.lastSeen = e.now()
	local := w.local
	if !local.Addr().IsValid() {
		// The transport could not tell our address (lost IP_PKTINFO): keep the one we have.
		local = netip.AddrPortFrom(s.Local.Addr(), local.Port())
	}
	if w.remote == s.Remote && local == s.Local {
		return
	}
	switch {
	case s.TCP:
		// A new TCP connection (the originator reconnected, RFC 9329 §6.1): answer in it. The
		// data plane sends the Child SAs' ESP in the peer's newest connection already.
		s.Remote, s.Local = w.remote, local
		s.en.remoteHint.Store(&s.Remote)
	case !s.State().Authenticated():
		// IKE_AUTH: the peer floated to the NAT-T port, or its NAT mapped it to a new one.
		s.Remote, s.Local = w.remote, local
		s.en.remoteHint.Store(&s.Remote)
	case s.NATRemote:
		old := s.Remote
		s.Remote, s.Local = w.remote, local
		s.en.remoteHint.Store(&s.Remote)
		e.logSA(s).Info("peer's NAT mapping changed: following it", "from", old, "to", w.remote)
		e.flush(s)
		info := s.Info()
		for _, c := range s.Children {
			s.out = append(s.out, ike.ChildMoved{IKE: info, Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Encap: s.Encap()})
		}
	}
}

// --- requests from the peer ---

func (e *Engine) receiveRequest(s *ikeSA, w work) {
	h := w.h
	if s.Held() {
		// The last request waits for blocking work (a RADIUS round trip): nothing to replay yet,
		// and the peer sends nothing else before it has its response (window 1).
		e.stats.drop(DropHeld)
		return
	}
	if s.hasResp && h.MessageID+1 == s.expectID {
		// A retransmitted request: replay the cached response, never recompute it.
		e.resend(s)
		return
	}
	if h.MessageID != s.expectID {
		e.stats.drop(DropMessageID)
		e.log.Debug("request with unexpected message ID", "msgid", h.MessageID, "want", s.expectID)
		return
	}
	if !requestAllowed(s, h.Exchange) {
		// RFC 7296 §1.4: INFORMATIONAL and CREATE_CHILD_SA only after IKE_AUTH completed.
		e.stats.drop(DropUnexpectedExchange)
		e.logSA(s).Info("dropping request the IKE SA's state does not allow", "exchange", h.Exchange.String(), "state", s.State().String())
		return
	}
	inner, intAuth, ok := e.open(s, w)
	if !ok {
		return
	}
	e.seen(s, w)
	s.expectID++
	s.SetRequestAddresses(w.local, w.remote)
	resp := s.ProcessRequest(&ike.Message{Exchange: h.Exchange, Payloads: inner, IntAuth: intAuth})
	if from := s.TakeMove(); from.IsValid() {
		// MOBIKE: the peer moved the IKE SA to the request's addresses (RFC 4555 §3.5).
		s.en.remoteHint.Store(&s.Remote)
		e.logSA(s).Info("peer moved the IKE SA (MOBIKE)", "from", from, "to", s.Remote)
	}
	if resp == nil && s.Held() {
		// Answered by resume once the blocking work is done.
		s.heldHdr, s.heldFrom = h, w.remote
		s.lastResp, s.hasResp = nil, false
		return
	}
	// Answer where the request came from (RFC 7296 §2.11).
	e.sendResponse(s, h, resp, w.remote)
	if r, closing := s.Closing(); closing {
		s.Kill(r)
	}
}

func requestAllowed(s *ikeSA, x wire.ExchangeType) bool {
	st := s.State()
	switch x {
	case wire.ExchangeIKEAuth:
		return !s.Initiator && st == ike.StateInitDone
	case wire.ExchangeIKEIntermediate:
		// RFC 9242 §3: after IKE_SA_INIT, before IKE_AUTH.
		return !s.Initiator && (st == ike.StateIntermediate || st == ike.StateInitDone)
	case wire.ExchangeCreateChildSA, wire.ExchangeInformational, wire.ExchangeIKEFollowupKE:
		return st.Authenticated()
	}
	return false
}

func (e *Engine) sendResponse(s *ikeSA, h wire.Header, resp *ike.Message, to netip.AddrPort) {
	if debugEnabled(e.enc) {
		e.enc.Debug("generating", "conn", s.connName(), "exchange", h.Exchange.String(), "response", true, "msgid", h.MessageID, "payloads", payloadList(resp.Payloads))
	}
	msgs, err := s.Seal(s.Header(h.Exchange, h.MessageID, true), resp.Payloads, e.maxDatagram(s))
	if err != nil {
		e.logSA(s).Error("cannot encode response", "exchange", h.Exchange.String(), "err", err)
		return
	}
	s.lastResp, s.hasResp, s.respTo = msgs, true, to
	s.respDropAt = e.now().Add(e.cfg.HalfOpenTimeout)
	e.send(s, to, msgs)
}

func (e *Engine) resend(s *ikeSA) {
	e.send(s, s.respTo, s.lastResp)
}

// --- our requests ---

// startNext starts the next queued exchange when none is outstanding.
func (e *Engine) startNext(s *ikeSA) {
	if s.pendingMsg != nil || s.State() == ike.StateDead {
		return
	}
	req, err := s.NextRequest()
	if err != nil {
		e.flush(s)
		s.out = append(s.out, ike.Failed{Conn: s.connName(), Err: err})
		s.Kill(ike.ReasonOf(err))
		return
	}
	if req == nil {
		return
	}
	if req.Exchange == wire.ExchangeIKESAInit {
		e.sendRequest(s, 0, [][]byte{req.Raw})
		return
	}
	id := s.nextMsgID
	s.nextMsgID++
	e.sendProtected(s, req, id)
}

func (e *Engine) sendProtected(s *ikeSA, req *ike.Message, id uint32) {
	if debugEnabled(e.enc) {
		e.enc.Debug("generating", "conn", s.connName(), "exchange", req.Exchange.String(), "response", false, "msgid", id, "payloads", payloadList(req.Payloads))
	}
	msgs, err := s.Seal(s.Header(req.Exchange, id, false), req.Payloads, e.maxDatagram(s))
	if err != nil {
		e.logSA(s).Error("cannot encode request", "exchange", req.Exchange.String(), "err", err)
		s.Abort()
		return
	}
	e.sendRequest(s, id, msgs)
}

// sendRequest sends a request and arms its retransmission.
func (e *Engine) sendRequest(s *ikeSA, id uint32, msgs [][]byte) {
	s.pendingID, s.pendingMsg, s.retries = id, msgs, 0
	s.retransmitAt = e.now().Add(e.retransmitDelay(0))
	e.send(s, s.Remote, msgs)
}

func (e *Engine) retransmitDelay(n int) time.Duration {
	return retransmitDelay(e.cfg.RetransmitTimeout, e.cfg.RetransmitBase, n, e.cfg.RetransmitLimit)
}

// send queues datagrams after the effects recorded so far.
func (e *Engine) send(s *ikeSA, to netip.AddrPort, msgs [][]byte) {
	e.flush(s)
	s.out = append(s.out, sendEffect{local: s.Local, remote: to, msgs: msgs, tcp: s.TCP, dial: s.TCPOriginator, en: s.en})
}

// --- timers ---

// now is the engine clock's current time as an instant.
func (e *Engine) now() instant { return e.ep.at(e.cfg.Clock.Now()) }

// tick does what is due at the current time.
func (e *Engine) tick(s *ikeSA) {
	now := e.cfg.Clock.Now()
	at := e.ep.at(now)
	if s.hasResp && !s.respDropAt.IsZero() && !at.Before(s.respDropAt) {
		s.lastResp, s.hasResp, s.respDropAt = nil, false, 0
	}
	if s.pendingMsg != nil && !s.retransmitAt.IsZero() && !at.Before(s.retransmitAt) {
		if e.fallbackToTCP(s) {
			return
		}
		if s.retries >= e.cfg.RetransmitTries {
			kind, _ := s.ActiveKind()
			err := fmt.Errorf("peer %s did not answer %d retransmissions of %s", s.Remote, s.retries, kind)
			e.flush(s)
			e.logSA(s).Warn("IKE SA failed", "err", err)
			if !s.State().Authenticated() {
				s.out = append(s.out, ike.Failed{Conn: s.connName(), Err: err})
			}
			e.stopPending(s)
			s.Abort()
			s.Kill(ike.ReasonDeadPeer)
			return
		}
		s.retries++
		e.stats.retransmits.Add(1)
		s.retransmitAt = at.Add(e.retransmitDelay(s.retries))
		e.logSA(s).Debug("retransmitting request", "msgid", s.pendingID, "try", s.retries)
		e.send(s, s.Remote, s.pendingMsg)
	}
	if !s.State().Authenticated() {
		if !s.halfOpenUntil.IsZero() && !at.Before(s.halfOpenUntil) {
			e.flush(s)
			s.out = append(s.out, ike.Failed{Conn: s.connName(), Err: fmt.Errorf("half-open IKE SA from %s timed out waiting for IKE_AUTH", s.Remote)})
			s.Kill(ike.ReasonHalfOpenTimeout)
		}
		return
	}
	if s.State().Up() {
		if !s.rekeyAt.IsZero() && !at.Before(s.rekeyAt) {
			// Tried again a minute later should this rekey fail.
			s.rekeyAt = at.Add(time.Minute)
			s.QueueRekeyIKE()
		}
		if d := s.Config.DPDDelay; d > 0 && !s.Busy() && at.Sub(s.lastSeen) >= d {
			s.QueueLiveness()
		}
		if !s.reauthAt.IsZero() && !at.Before(s.reauthAt) {
			e.reauthenticate(s, now) // reauth.go
		}
	}
	if !s.keepaliveAt.IsZero() && !at.Before(s.keepaliveAt) {
		e.flush(s)
		s.out = append(s.out, keepaliveEffect{local: s.Local, remote: s.Remote})
		s.keepaliveAt = at.Add(e.cfg.KeepaliveInterval)
	}
	s.Tick(now)
}

// deadline is the SA's next wake-up.
func (e *Engine) deadline(s *ikeSA) instant {
	var next instant
	consider := func(t instant) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if s.State() == ike.StateDead {
		return 0
	}
	if s.pendingMsg != nil {
		consider(s.retransmitAt)
	}
	if s.hasResp {
		consider(s.respDropAt)
	}
	if !s.State().Authenticated() {
		consider(s.halfOpenUntil)
		return next
	}
	if s.State().Up() {
		consider(s.rekeyAt)
		consider(s.reauthAt)
		if d := s.Config.DPDDelay; d > 0 && !s.Busy() {
			consider(s.lastSeen.Add(d))
		}
	}
	consider(s.keepaliveAt)
	consider(e.ep.at(s.NextDeadline()))
	return next
}

// --- after each piece of work ---

// flush moves the SA's recorded effects to the output, doing the engine's bookkeeping on them.
func (e *Engine) flush(s *ikeSA) {
	s.out = append(s.out, e.takeEffects(s)...)
}

func (e *Engine) takeEffects(s *ikeSA) []effect {
	effs := s.TakeEffects()
	if len(effs) == 0 {
		return nil
	}
	out := make([]effect, 0, len(effs))
	for _, x := range effs {
		switch x := x.(type) {
		case ike.ChildUp:
			e.idx.setChild(x.Child.SPIIn, s.en)
		case ike.ChildDown:
			e.idx.removeChild(x.SPIIn, s.en)
		case ike.IKEUp:
			e.established(s, x, &out)
		case ike.IKERekeyed:
			e.stats.rekeys.Add(1)
		case ike.IKEDown:
			if !x.Up && x.Reason != ike.ReasonShutdown && x.Reason != ike.ReasonDeleted {
				e.stats.handshakesFailed.Add(1)
			}
		case ike.Async:
			out = append(out, asyncEffect{en: s.en, run: x.Run})
			continue
		}
		out = append(out, x)
	}
	return out
}

// established does the engine's part when an IKE SA completes IKE_AUTH.
func (e *Engine) established(s *ikeSA, up ike.IKEUp, out *[]effect) {
	now := e.cfg.Clock.Now()
	took := e.ep.at(now).Sub(s.started)
	e.stats.handshake(took)
	*out = append(*out, handshakeEffect{took: took})
	e.leaveHalfOpen(s)
	e.idx.addConn(s, s.connName())
	e.idx.addIdentity(s)
	s.en.remoteHint.Store(&s.Remote)
	e.armIKE(s, now)
	e.reauthDone(s) // reauth.go
	cfg := s.Config
	// The index finds others by a hash of the identities; each compares them for itself.
	conn, local, remote := s.connName(), s.LocalID, s.RemoteID
	same := func(o *ikeSA) bool {
		return o.connName() == conn && o.LocalID.Equal(local) && o.RemoteID.Equal(remote)
	}
	switch {
	case cfg.Unique == ike.UniqueReplace:
		for _, en := range e.idx.others(s) {
			e.post(en, work{kind: workFunc, fn: func(o *ikeSA) {
				if same(o) {
					e.logSA(o).Info("unique = replace: a new IKE SA of the same identity replaces this one")
					o.QueueDeleteIKE(ike.ReasonUniqueReplaced)
				}
			}})
		}
	case up.InitialContact && cfg.Unique != ike.UniqueNever:
		// RFC 7296 §2.4: the peer has no other IKE SA with us; ours are stale. Deleted without a
		// Delete, which would only go to a peer that has forgotten them.
		for _, en := range e.idx.others(s) {
			e.post(en, work{kind: workFunc, fn: func(o *ikeSA) {
				if same(o) {
					e.logSA(o).Info("peer sent INITIAL_CONTACT on a new IKE SA: dropping this stale one")
					o.Kill(ike.ReasonInitialContact)
				}
			}})
		}
	}
}

// armIKE starts an established IKE SA's own timers.
func (e *Engine) armIKE(s *ikeSA, now time.Time) {
	if d := s.Config.RekeyTime; d > 0 {
		s.rekeyAt = e.ep.at(now).Add(ike.Jitter(d, e.cfg.Rand))
	}
	if d := s.Config.ReauthTime; d > 0 && s.Initiator {
		s.reauthAt = e.ep.at(now).Add(ike.Jitter(d, e.cfg.Rand))
	}
	if s.NATLocal && e.cfg.Keepalive != nil && !s.TCP {
		// Behind a NAT: keep its mapping for port 4500 alive (RFC 3948 §2.3).
		s.keepaliveAt = e.ep.at(now).Add(e.cfg.KeepaliveInterval)
	}
}

func (e *Engine) leaveHalfOpen(s *ikeSA) {
	if s.halfOpenKey == nil {
		return
	}
	if v, ok := e.halfOpen.Load(*s.halfOpenKey); ok && v.(*entry) == s.en {
		e.halfOpen.Delete(*s.halfOpenKey)
		e.nHalf.Add(-1)
	}
	s.halfOpenKey = nil
	s.halfOpenUntil = 0
}

// finish completes a piece of work: it flushes effects, registers IKE SAs a rekey created, hands
// Child SAs over, removes a dead SA and sets the next wake-up. It returns the effects to apply.
func (e *Engine) finish(s *ikeSA) []effect {
	e.flush(s)
	for _, sp := range s.TakeSpawned() {
		e.spawn(s, sp)
	}
	if h := s.TakeHandoff(); h != nil {
		if target := e.table.get(h.To.MySPI()); target != nil {
			e.post(target, work{kind: workFunc, fn: func(t *ikeSA) {
				t.Adopt(h)
				for _, c := range h.Children {
					e.idx.setChild(c.SPIIn, t.en)
				}
			}})
		}
	}
	s.Tidy() // the IKE SA's rare part goes when nothing in it is in use (ike/rare.go)
	if s.State() == ike.StateDead {
		e.remove(s)
	} else {
		e.sched.set(s.en, e.deadline(s))
	}
	if x := e.reauthHandover(s); x != nil { // reauth.go
		s.out = append(s.out, x)
	}
	out := s.out
	s.out = nil
	return out
}

// spawn registers an IKE SA a rekey created; it starts running on its own.
func (e *Engine) spawn(parent *ikeSA, sa *ike.SA) {
	en, s := e.newEntry(sa)
	en.mu.Lock()
	s.started = parent.started
	e.armIKE(s, e.cfg.Clock.Now())
	en.remoteHint.Store(&s.Remote)
	out := e.takeEffects(s)
	if !e.table.add(en) {
		en.mu.Unlock()
		e.logSA(s).Error("rekeyed IKE SA's SPI is taken; dropping it")
		sa.Kill(ike.ReasonNegotiationFailed)
		return
	}
	e.idx.addConn(s, parent.connName())
	e.idx.addIdentity(s)
	for _, c := range s.Children {
		e.idx.setChild(c.SPIIn, en)
	}
	e.logSA(s).Info("IKE SA rekeyed", "old_spi_i", fmt.Sprintf("%016x", parent.SPIi), "old_spi_r", fmt.Sprintf("%016x", parent.SPIr))
	e.sched.set(en, e.deadline(s))
	en.mu.Unlock()
	e.queueEffects(en, out)
	// Work it inherited (a queued rekey, the Delete of a redundant SA) starts on its own turn.
	e.post(en, work{kind: workFunc, fn: func(*ikeSA) {}})
}

// remove takes a dead SA out of every table.
func (e *Engine) remove(s *ikeSA) {
	e.leaveHalfOpen(s)
	e.table.remove(s.en)
	e.idx.remove(s, nil)
	e.sched.set(s.en, 0)
	s.en.qmu.Lock()
	s.en.gone = true
	s.en.inbox = nil
	s.en.qmu.Unlock()
}

// --- applying effects (outside every SA) ---

func (e *Engine) apply(x effect) {
	ev := &e.cfg.Events
	switch x := x.(type) {
	case sendEffect:
		if x.tcp {
			e.sendStream(x)
			break
		}
		for _, m := range x.msgs {
			if debugEnabled(e.net) {
				e.net.Debug("sending packet", "from", x.local, "to", x.remote, "bytes", len(m))
			}
			if err := e.cfg.Transport.Send(m, x.local, x.remote); err != nil {
				e.log.Warn("sending IKE message failed", "to", x.remote, "err", err)
			}
		}
	case keepaliveEffect:
		if e.cfg.Keepalive != nil {
			e.cfg.Keepalive(x.local, x.remote)
		}
	case handshakeEffect:
		if ev.Handshake != nil {
			ev.Handshake(x.took)
		}
	case ike.IKEUp:
		i := x.IKE
		if infoEnabled(e.log) {
			e.log.Info("IKE SA established", "conn", i.Conn, "spi_i", hex16(i.SPIi), "spi_r", hex16(i.SPIr), "local", i.Local, "remote", i.Remote,
				"local_id", i.LocalID.String(), "remote_id", i.RemoteID.String(), "proposal", i.Proposal.String(), "nat", i.NATLocal || i.NATRemote)
		}
		if ev.IKEUp != nil {
			ev.IKEUp(x)
		}
	case ike.IKEDown:
		if (x.Up || x.Reason != ike.ReasonNegotiationFailed) && infoEnabled(e.log) {
			e.log.Info("IKE SA down", "conn", x.IKE.Conn, "spi_i", hex16(x.IKE.SPIi), "spi_r", hex16(x.IKE.SPIr), "why", x.Reason.String())
		}
		if ev.IKEDown != nil {
			ev.IKEDown(x)
		}
	case ike.IKERekeyed:
		if ev.IKERekeyed != nil {
			ev.IKERekeyed(x)
		}
	case ike.ChildUp:
		c := x.Child
		if ev.ChildUp != nil {
			if err := ev.ChildUp(c); err != nil {
				e.log.Error("installing Child SA failed", "conn", c.IKE.Conn, "child", c.Name, "err", err)
				e.DeleteChildAs(c.SPIIn, ike.ReasonInstallFailed)
			}
		}
		c.Zero()
		if infoEnabled(e.log) {
			e.log.Info("Child SA established", "conn", c.IKE.Conn, "child", c.Name, "protocol", c.Protocol().String(), "spi_in", hex8(c.SPIIn), "spi_out", hex8(c.SPIOut),
				"proposal", c.Proposal.String(), "mode", c.Mode.String(), "active", c.Activate)
		}
	case ike.ChildActivate:
		if debugEnabled(e.log) {
			e.log.Debug("Child SA carries our traffic now", "conn", x.IKE.Conn, "child", x.Name, "spi_in", hex8(x.SPIIn))
		}
		if ev.ChildActivate != nil {
			ev.ChildActivate(x)
		}
	case ike.ChildDown:
		if infoEnabled(e.log) {
			e.log.Info("Child SA deleted", "conn", x.IKE.Conn, "child", x.Name, "protocol", x.Protocol.String(), "spi_in", hex8(x.SPIIn), "why", x.Reason.String())
		}
		if ev.ChildDown != nil {
			ev.ChildDown(x)
		}
	case ike.ChildMoved:
		if ev.ChildMoved != nil {
			ev.ChildMoved(x)
		}
	case ike.Failed:
		if x.Retry {
			e.log.Info("negotiation step", "conn", x.Conn, "what", x.Err.Error())
		} else {
			e.log.Warn("negotiation failed", "conn", x.Conn, "why", x.Err.Error())
		}
		if ev.Failed != nil {
			ev.Failed(x)
		}
	case ike.KeysDerived:
		if ev.Keys != nil {
			ev.Keys(x)
		}
	case asyncEffect:
		e.runAsync(x)
	case postEffect:
		e.post(x.en, work{kind: workFunc, fn: x.fn})
	case ike.Redirected:
		e.log.Info("gateway redirects us", "conn", x.IKE.Conn, "from", x.From, "to", x.To)
		if ev.Redirected != nil {
			ev.Redirected(x)
		}
	case ike.VirtualIPs:
		e.log.Info("virtual IPs received", "conn", x.IKE.Conn, "addrs", fmt.Sprint(x.Addrs), "dns", fmt.Sprint(x.DNS))
		if ev.VirtualIPs != nil {
			ev.VirtualIPs(x)
		}
	}
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func hex8(v uint32) string { return fmt.Sprintf("%08x", v) }

// payloadList names payloads the way strongSwan logs them: "IDi AUTH SA TSi TSr N(INIT_CONTACT)".
func payloadList(ps []wire.Payload) string {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		if n, ok := p.(*wire.Notify); ok {
			b = append(b, "N("+n.NotifyType.String()+")"...)
			continue
		}
		b = append(b, p.Type().String()...)
	}
	return string(b)
}
