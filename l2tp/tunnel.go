package l2tp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ppp"
)

// Config configures the tunnels of one end.
type Config struct {
	// HostName is sent in SCCRQ/SCCRP (default "goipsec").
	HostName string
	// PPP returns the PPP configuration of a new session (server side for an LNS, client side
	// for a LAC).
	PPP func(peer netip.AddrPort) ppp.Config
	// HelloInterval: a HELLO when the control connection was quiet this long (0: 60 s,
	// RFC 2661 §6.5 leaves it open; strongSwan/xl2tpd use 60 s).
	HelloInterval time.Duration
	// Retries of an unacknowledged control message before the tunnel is given up (0: 5, the
	// number RFC 2661 §5.8 recommends).
	Retries int
	Rand    io.Reader
}

func (c *Config) defaults() {
	if c.HostName == "" {
		c.HostName = "goipsec"
	}
	if c.HelloInterval == 0 {
		c.HelloInterval = 60 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 5
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
}

// Event is something a tunnel reports.
type Event interface{ isEvent() }

// SessionUp: a session's PPP link carries IP.
type SessionUp struct {
	Tunnel, Session uint16 // our IDs
	Peer            netip.AddrPort
	PPP             ppp.Up
}

// SessionDown: a session ended.
type SessionDown struct {
	Tunnel, Session uint16
	Peer            netip.AddrPort
	PeerIP          netip.Addr // the PPP peer's address, when it had one
	Reason          string
}

// SessionPacket: an IPv4 packet from a session's PPP peer.
type SessionPacket struct {
	Tunnel, Session uint16
	B               []byte
}

// SessionVerify: a session's PPP asks its owner to check credentials away from the tunnel
// (ppp.Config.Deferred, a RADIUS server); the answer goes back with Server.Verdict or
// Tunnel.Verdict.
type SessionVerify struct {
	Tunnel, Session uint16
	Peer            netip.AddrPort
	Verify          ppp.Verify
}

// TunnelDown: the control connection ended (its sessions were reported down first).
type TunnelDown struct {
	Tunnel uint16
	Peer   netip.AddrPort
	Reason string
}

func (SessionUp) isEvent()     {}
func (SessionDown) isEvent()   {}
func (SessionPacket) isEvent() {}
func (TunnelDown) isEvent()    {}
func (SessionVerify) isEvent() {}

// Output is a datagram to send or an event, in order.
type Output struct {
	To    netip.AddrPort
	B     []byte
	Event Event
}

type tunnelState uint8

const (
	tunnelWaitReply tunnelState = iota // LAC: SCCRQ sent
	tunnelWaitConn                     // LNS: SCCRP sent
	tunnelEstablished
	tunnelClosed
)

type sessionState uint8

const (
	sessionWaitReply   sessionState = iota // LAC: ICRQ sent
	sessionWaitConnect                     // LNS: ICRP sent
	sessionEstablished
)

// Session is one call in a tunnel, carrying a PPP link.
type Session struct {
	LocalID, PeerID uint16
	state           sessionState
	serial          uint32
	PPP             *ppp.Session
	up              bool
}

type pending struct {
	ns    uint16
	b     []byte
	tries int
	next  time.Time
}

// Tunnel is one control connection and its sessions.
type Tunnel struct {
	cfg     Config
	lns     bool
	Peer    netip.AddrPort
	LocalID uint16
	PeerID  uint16
	state   tunnelState

	ns, nr     uint16 // next Ns we send, next Ns we expect
	peerWindow int
	unacked    []pending
	waiting    [][]AVP // control messages the peer's window holds back (with their session IDs)
	waitingSID []uint16
	lastCtl    time.Time

	sessions     map[uint16]*Session
	pendingCalls int // LAC: calls to place once established

	now time.Time
	out []Output
	// sentCtl: a control message left during this input (its Nr acknowledges).
	sentCtl bool
	reason  string
}

func randomID(r io.Reader) uint16 {
	var b [2]byte
	for {
		io.ReadFull(r, b[:])
		if v := binary.BigEndian.Uint16(b[:]); v != 0 {
			return v
		}
	}
}

// newTunnel makes a tunnel with a fresh local ID.
func newTunnel(cfg Config, lns bool, peer netip.AddrPort, localID uint16, now time.Time) *Tunnel {
	return &Tunnel{cfg: cfg, lns: lns, Peer: peer, LocalID: localID, peerWindow: 4, sessions: map[uint16]*Session{}, now: now, lastCtl: now}
}

// Dial starts a LAC tunnel to peer that places one call once the tunnel is up.
func Dial(cfg Config, peer netip.AddrPort, now time.Time) *Tunnel {
	cfg.defaults()
	t := newTunnel(cfg, false, peer, randomID(cfg.Rand), now)
	t.state = tunnelWaitReply
	t.pendingCalls = 1
	t.sendControl(0, t.startAVPs(MsgSCCRQ))
	return t
}

// Take returns what the tunnel produced.
func (t *Tunnel) Take() []Output {
	o := t.out
	t.out = nil
	return o
}

// Closed reports whether the tunnel has ended.
func (t *Tunnel) Closed() bool { return t.state == tunnelClosed }

// Sessions returns the tunnel's sessions.
func (t *Tunnel) Sessions() []*Session {
	out := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		out = append(out, s)
	}
	return out
}

func (t *Tunnel) emit(e Event) { t.out = append(t.out, Output{Event: e}) }

// startAVPs are the AVPs of SCCRQ and SCCRP (RFC 2661 §6.1, §6.2).
func (t *Tunnel) startAVPs(msg uint16) []AVP {
	return []AVP{msgAVP(msg),
		{Mandatory: true, Type: AVPProtocolVersion, Value: []byte{1, 0}},
		{Mandatory: true, Type: AVPHostName, Value: []byte(t.cfg.HostName)},
		u32AVP(AVPFraming, 3), // synchronous and asynchronous framing
		u16AVP(AVPTunnelID, t.LocalID),
		u16AVP(AVPWindow, 16),
		{Type: AVPFirmware, Value: []byte{1, 0}},
		{Type: AVPVendorName, Value: []byte("goipsec")},
	}
}

// sendControl sends (or queues, when the peer's window is full) a control message.
func (t *Tunnel) sendControl(session uint16, avps []AVP) {
	if len(t.unacked) >= t.peerWindow {
		t.waiting = append(t.waiting, avps)
		t.waitingSID = append(t.waitingSID, session)
		return
	}
	h := Header{Control: true, Tunnel: t.PeerID, Session: session, Ns: t.ns, Nr: t.nr}
	b := AppendControl(nil, h, avps)
	t.unacked = append(t.unacked, pending{ns: t.ns, b: b, next: t.now.Add(time.Second)})
	t.ns++
	t.sentCtl = true
	t.lastCtl = t.now
	t.out = append(t.out, Output{To: t.Peer, B: b})
}

// zlb acknowledges without a message (RFC 2661 §5.8).
func (t *Tunnel) zlb() {
	b := AppendControl(nil, Header{Control: true, Tunnel: t.PeerID, Ns: t.ns, Nr: t.nr}, nil)
	t.out = append(t.out, Output{To: t.Peer, B: b})
}

// seqBefore reports a < b in 16-bit sequence arithmetic.
func seqBefore(a, b uint16) bool { return int16(a-b) < 0 }

// Input handles a datagram of this tunnel.
func (t *Tunnel) Input(h Header, payload []byte, now time.Time) {
	t.now = now
	if t.state == tunnelClosed {
		return
	}
	if !h.Control {
		if s := t.sessions[h.Session]; s != nil && s.state == sessionEstablished && s.PPP != nil {
			s.PPP.Input(payload, now)
			t.drainPPP(s)
		}
		return
	}
	t.sentCtl = false
	t.ack(h.Nr)
	m, err := ParseMessage(payload)
	if err != nil {
		return
	}
	if m.Type == 0 {
		return // a ZLB: only an acknowledgement
	}
	switch {
	case h.Ns == t.nr:
		t.nr++
	case seqBefore(h.Ns, t.nr):
		t.zlb() // a retransmission of what we have: acknowledge it again
		return
	default:
		return // ahead of a lost message: dropped, the peer retransmits in order
	}
	t.lastCtl = now
	t.handle(h, m)
	if !t.sentCtl && t.state != tunnelClosed {
		t.zlb()
	}
}

// ack drops acknowledged messages and sends what the window held back.
func (t *Tunnel) ack(nr uint16) {
	keep := t.unacked[:0]
	for _, p := range t.unacked {
		if !seqBefore(p.ns, nr) {
			keep = append(keep, p)
		}
	}
	t.unacked = keep
	for len(t.waiting) > 0 && len(t.unacked) < t.peerWindow {
		avps, sid := t.waiting[0], t.waitingSID[0]
		t.waiting, t.waitingSID = t.waiting[1:], t.waitingSID[1:]
		t.sendControl(sid, avps)
	}
}

func (t *Tunnel) handle(h Header, m Message) {
	if a, bad := m.unknownMandatory(); bad {
		reason := fmt.Sprintf("%s carries an unknown mandatory or hidden AVP (vendor %d, type %d)", MsgName(m.Type), a.Vendor, a.Type)
		if s := t.sessions[h.Session]; s != nil && h.Session != 0 {
			t.closeSession(s, reason, true)
			return
		}
		t.stop(2, 8, reason)
		return
	}
	switch m.Type {
	case MsgSCCRQ:
		if !t.lns {
			return
		}
		t.PeerID, _ = m.u16(AVPTunnelID)
		if w, ok := m.u16(AVPWindow); ok && w > 0 {
			t.peerWindow = int(w)
		}
		t.state = tunnelWaitConn
		t.sendControl(0, t.startAVPs(MsgSCCRP))
	case MsgSCCRP:
		if t.lns || t.state != tunnelWaitReply {
			return
		}
		id, ok := m.u16(AVPTunnelID)
		if !ok || id == 0 {
			t.stop(2, 6, "SCCRP without Assigned Tunnel ID")
			return
		}
		t.PeerID = id
		if w, ok := m.u16(AVPWindow); ok && w > 0 {
			t.peerWindow = int(w)
		}
		t.sendControl(0, []AVP{msgAVP(MsgSCCCN)})
		t.established()
	case MsgSCCCN:
		if t.lns && t.state == tunnelWaitConn {
			t.established()
		}
	case MsgStopCCN:
		t.down("peer closed the tunnel: " + resultText(m))
	case MsgHello:
	case MsgICRQ:
		if !t.lns || t.state != tunnelEstablished {
			return
		}
		peer, ok := m.u16(AVPSessionID)
		if !ok || peer == 0 {
			return
		}
		for _, s := range t.sessions {
			if s.PeerID == peer {
				return // a second ICRQ for one call
			}
		}
		s := &Session{LocalID: t.newSessionID(), PeerID: peer, state: sessionWaitConnect}
		t.sessions[s.LocalID] = s
		t.sendControl(peer, []AVP{msgAVP(MsgICRP), u16AVP(AVPSessionID, s.LocalID)})
	case MsgICRP:
		s := t.sessions[h.Session]
		if t.lns || s == nil || s.state != sessionWaitReply {
			return
		}
		peer, ok := m.u16(AVPSessionID)
		if !ok || peer == 0 {
			t.closeSession(s, "ICRP without Assigned Session ID", true)
			return
		}
		s.PeerID = peer
		t.sendControl(peer, []AVP{msgAVP(MsgICCN), u32AVP(AVPTxSpeed, 100000000), u32AVP(AVPFramingType, 1)})
		t.startPPP(s)
	case MsgICCN:
		s := t.sessions[h.Session]
		if !t.lns || s == nil || s.state != sessionWaitConnect {
			return
		}
		t.startPPP(s)
	case MsgCDN:
		if s := t.sessions[h.Session]; s != nil {
			t.closeSession(s, "peer disconnected the call: "+resultText(m), false)
		}
	case MsgOCRQ:
		// Outgoing calls (LNS asks the LAC to dial) make no sense over IPsec: refused.
		if peer, ok := m.u16(AVPSessionID); ok {
			t.sendControl(peer, []AVP{msgAVP(MsgCDN), resultAVP(2, 6, "outgoing calls are not supported"), u16AVP(AVPSessionID, 0)})
		}
	}
}

func resultText(m Message) string {
	v, ok := m.find(AVPResultCode)
	if !ok || len(v) < 2 {
		return "no result code"
	}
	s := fmt.Sprintf("result %d", binary.BigEndian.Uint16(v))
	if len(v) >= 4 {
		s += fmt.Sprintf(" error %d", binary.BigEndian.Uint16(v[2:]))
	}
	if len(v) > 4 {
		s += " " + ppp.Printable(v[4:])
	}
	return s
}

func (t *Tunnel) newSessionID() uint16 {
	for {
		id := randomID(t.cfg.Rand)
		if _, taken := t.sessions[id]; !taken {
			return id
		}
	}
}

func (t *Tunnel) established() {
	t.state = tunnelEstablished
	for ; t.pendingCalls > 0; t.pendingCalls-- {
		s := &Session{LocalID: t.newSessionID(), state: sessionWaitReply}
		var b [4]byte
		io.ReadFull(t.cfg.Rand, b[:])
		s.serial = binary.BigEndian.Uint32(b[:])
		t.sessions[s.LocalID] = s
		t.sendControl(0, []AVP{msgAVP(MsgICRQ), u16AVP(AVPSessionID, s.LocalID), u32AVP(AVPCallSerial, s.serial),
			u32AVP(AVPBearerType, 3)})
	}
}

func (t *Tunnel) startPPP(s *Session) {
	s.state = sessionEstablished
	var cfg ppp.Config
	if t.cfg.PPP != nil {
		cfg = t.cfg.PPP(t.Peer)
	}
	s.PPP = ppp.NewSession(cfg)
	s.PPP.Start(t.now)
	t.drainPPP(s)
}

// drainPPP carries PPP's frames to the peer and its events up.
func (t *Tunnel) drainPPP(s *Session) {
	for _, o := range s.PPP.Take() {
		switch e := o.Event.(type) {
		case nil:
			t.out = append(t.out, Output{To: t.Peer, B: AppendData(nil, t.PeerID, s.PeerID, o.Frame)})
		case ppp.Up:
			s.up = true
			t.emit(SessionUp{Tunnel: t.LocalID, Session: s.LocalID, Peer: t.Peer, PPP: e})
		case ppp.IPPacket:
			t.emit(SessionPacket{Tunnel: t.LocalID, Session: s.LocalID, B: e.B})
		case ppp.Verify:
			t.emit(SessionVerify{Tunnel: t.LocalID, Session: s.LocalID, Peer: t.Peer, Verify: e})
		case ppp.Down:
			t.closeSession(s, e.Reason, true)
			return
		}
	}
}

// Verdict hands a session's PPP the answer to its SessionVerify; false when the session is gone
// or no longer waits for it (a session ID reused since carries another token).
func (t *Tunnel) Verdict(session uint16, token uint32, v ppp.Verdict) bool {
	s := t.sessions[session]
	if s == nil || s.PPP == nil || !s.PPP.Verdict(token, v) {
		return false
	}
	t.drainPPP(s)
	return true
}

// Send wraps an IPv4 packet for a session; nil when the session's link is not up.
func (t *Tunnel) Send(session uint16, ip []byte) []byte {
	s := t.sessions[session]
	if s == nil || !s.up {
		return nil
	}
	f := s.PPP.Frame(ip)
	if f == nil {
		return nil
	}
	return AppendData(make([]byte, 0, 6+len(f)), t.PeerID, s.PeerID, f)
}

// closeSession ends a session; notify sends CDN.
func (t *Tunnel) closeSession(s *Session, reason string, notify bool) {
	if _, ok := t.sessions[s.LocalID]; !ok {
		return
	}
	delete(t.sessions, s.LocalID)
	var peerIP netip.Addr
	if s.PPP != nil {
		peerIP = s.PPP.PeerIP()
		if !s.PPP.Dead() {
			s.PPP.Close(reason)
			t.drainPPPFrames(s)
			s.PPP.Abort(reason)
		}
	}
	if notify && s.PeerID != 0 {
		t.sendControl(s.PeerID, []AVP{msgAVP(MsgCDN), resultAVP(3, 0, reason), u16AVP(AVPSessionID, s.LocalID)})
	}
	t.emit(SessionDown{Tunnel: t.LocalID, Session: s.LocalID, Peer: t.Peer, PeerIP: peerIP, Reason: reason})
}

// drainPPPFrames sends the PPP frames of a session that is going away (its Terminate-Request).
func (t *Tunnel) drainPPPFrames(s *Session) {
	for _, o := range s.PPP.Take() {
		if o.Frame != nil {
			t.out = append(t.out, Output{To: t.Peer, B: AppendData(nil, t.PeerID, s.PeerID, o.Frame)})
		}
	}
}

// CloseSession hangs up a session (sending CDN).
func (t *Tunnel) CloseSession(id uint16, reason string) {
	if s := t.sessions[id]; s != nil {
		t.closeSession(s, reason, true)
	}
}

// Close ends the tunnel with StopCCN (result 1: general request to clear the control connection).
func (t *Tunnel) Close(reason string) { t.stop(1, 0, reason) }

func (t *Tunnel) stop(result, errCode uint16, reason string) {
	if t.state == tunnelClosed {
		return
	}
	for _, s := range t.Sessions() {
		t.closeSession(s, reason, false)
	}
	t.sendControl(0, []AVP{msgAVP(MsgStopCCN), u16AVP(AVPTunnelID, t.LocalID), resultAVP(result, errCode, reason)})
	t.down(reason)
}

func (t *Tunnel) down(reason string) {
	if t.state == tunnelClosed {
		return
	}
	for _, s := range t.Sessions() {
		t.closeSession(s, reason, false)
	}
	t.state = tunnelClosed
	t.reason = reason
	t.emit(TunnelDown{Tunnel: t.LocalID, Peer: t.Peer, Reason: reason})
}

// Tick retransmits, sends HELLO and runs the sessions' timers.
func (t *Tunnel) Tick(now time.Time) {
	t.now = now
	if t.state == tunnelClosed {
		return
	}
	for i := range t.unacked {
		p := &t.unacked[i]
		if now.Before(p.next) {
			continue
		}
		if p.tries >= t.cfg.Retries {
			t.down(fmt.Sprintf("peer %s did not acknowledge a control message after %d retransmissions", t.Peer, p.tries))
			return
		}
		p.tries++
		// RFC 2661 §5.8: exponential back-off, at most 8 seconds between retransmissions.
		p.next = now.Add(min(time.Second<<p.tries, 8*time.Second))
		// The retransmission carries the current Nr.
		binary.BigEndian.PutUint16(p.b[10:], t.nr)
		t.out = append(t.out, Output{To: t.Peer, B: p.b})
	}
	if t.state == tunnelEstablished && len(t.unacked) == 0 && !now.Before(t.lastCtl.Add(t.cfg.HelloInterval)) {
		t.sendControl(0, []AVP{msgAVP(MsgHello)})
	}
	for _, s := range t.Sessions() {
		if s.PPP != nil {
			s.PPP.Tick(now)
			t.drainPPP(s)
		}
	}
}

// NextDeadline is when Tick has work.
func (t *Tunnel) NextDeadline() time.Time {
	var next time.Time
	consider := func(x time.Time) {
		if !x.IsZero() && (next.IsZero() || x.Before(next)) {
			next = x
		}
	}
	if t.state == tunnelClosed {
		return next
	}
	for _, p := range t.unacked {
		consider(p.next)
	}
	if t.state == tunnelEstablished {
		consider(t.lastCtl.Add(t.cfg.HelloInterval))
	}
	for _, s := range t.sessions {
		if s.PPP != nil {
			consider(s.PPP.NextDeadline())
		}
	}
	return next
}

// RetransmitNow resends the unacknowledged control messages at once (the IPsec SA that protects
// the tunnel just came up: what was sent before it was dropped by its trap policy). It does not
// count as a retransmission: the back-off starts over at one second.
func (t *Tunnel) RetransmitNow(now time.Time) {
	t.now = now
	if t.state == tunnelClosed {
		return
	}
	for i := range t.unacked {
		p := &t.unacked[i]
		binary.BigEndian.PutUint16(p.b[10:], t.nr)
		p.next = now.Add(time.Second)
		t.out = append(t.out, Output{To: t.Peer, B: p.b})
	}
}
