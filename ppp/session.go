package ppp

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Verifier checks a client's credentials. Each method gets what its protocol carries, so that a
// RADIUS client (the remote-access work) can implement it as well as the local secrets
// (SecretsVerifier) do.
type Verifier interface {
	VerifyPAP(user, password string) bool
	VerifyCHAP(user string, id byte, challenge, response []byte) bool
	// VerifyMSCHAPv2 returns the authenticator response ("S=...") for the Success message.
	VerifyMSCHAPv2(user string, authChallenge, peerChallenge, ntResponse []byte) (string, bool)
}

// SecretsVerifier verifies against cleartext passwords (goipsec's secrets section).
type SecretsVerifier struct {
	Password func(user string) (string, bool)
}

// VerifyPAP compares in constant time.
func (s SecretsVerifier) VerifyPAP(user, password string) bool {
	want, ok := s.Password(user)
	return ok && constantEqual([]byte(want), []byte(password))
}

// VerifyCHAP recomputes the MD5 response (RFC 1994 §4.1).
func (s SecretsVerifier) VerifyCHAP(user string, id byte, challenge, response []byte) bool {
	want, ok := s.Password(user)
	return ok && constantEqual(chapMD5Response(id, []byte(want), challenge), response)
}

// VerifyMSCHAPv2 recomputes the NT-Response (RFC 2759 §8.1).
func (s SecretsVerifier) VerifyMSCHAPv2(user string, authChallenge, peerChallenge, nt []byte) (string, bool) {
	want, ok := s.Password(user)
	if !ok || !constantEqual(generateNTResponse(authChallenge, peerChallenge, user, want), nt) {
		return "", false
	}
	return authenticatorResponse(want, nt, peerChallenge, authChallenge, user), true
}

// Credentials is what a client sent to authenticate, for a check that cannot run inside the
// session: a RADIUS server answers in milliseconds or seconds, and the session's owner (the L2TP
// service) must not wait for it. With Config.Deferred the session reports them in a Verify event
// and waits for Session.Verdict.
type Credentials struct {
	Auth     Auth
	User     string
	Password string // PAP
	// ID is the CHAP Identifier; Challenge the challenge we sent; PeerChallenge MS-CHAPv2's;
	// Response CHAP-MD5's 16 bytes or MS-CHAPv2's NT-Response (24).
	ID            byte
	Challenge     []byte
	PeerChallenge []byte
	Response      []byte
}

// Verdict answers a Verify: OK, and for MS-CHAPv2 the authenticator response ("S=...") the
// client checks the server with; Reason says why a check failed (logged in the Down reason).
type Verdict struct {
	OK                    bool
	AuthenticatorResponse string
	Reason                string
}

// check runs v's method for c (the synchronous path).
func check(v Verifier, c Credentials) Verdict {
	if v == nil {
		return Verdict{Reason: "no verifier"}
	}
	switch c.Auth {
	case AuthPAP:
		return Verdict{OK: v.VerifyPAP(c.User, c.Password)}
	case AuthCHAPMD5:
		return Verdict{OK: v.VerifyCHAP(c.User, c.ID, c.Challenge, c.Response)}
	case AuthMSCHAPv2:
		ar, ok := v.VerifyMSCHAPv2(c.User, c.Challenge, c.PeerChallenge, c.Response)
		return Verdict{OK: ok, AuthenticatorResponse: ar}
	}
	return Verdict{Reason: "unknown authentication protocol"}
}

// verifyWait bounds how long a session waits for a deferred verdict (a RADIUS client tries each
// server for a few seconds).
const verifyWait = 30 * time.Second

// Addresses leases client addresses (pool.Pool implements it). A lease is ended by identity and
// address: one identity may hold several addresses at once (two sessions of one user, an IKEv2
// client of the same name), and a session returns only its own.
type Addresses interface {
	Acquire(id string) (netip.Addr, error)
	ReleaseAddr(id string, a netip.Addr) bool
}

// Config configures a Session.
type Config struct {
	// Server: we authenticate the peer and assign its address (an LNS); otherwise we are the
	// client (a LAC dialling out).
	Server bool
	// Server: the authentication protocols we accept, preferred first (default MS-CHAPv2,
	// CHAP-MD5, PAP), how to check credentials, our own address, where client addresses come
	// from and the DNS servers to hand out. LeaseID names the lease (default: the user name).
	Auths    []Auth
	Verifier Verifier
	// Deferred: credentials are not checked with Verifier inside the session but reported in a
	// Verify event; the owner checks them elsewhere (RADIUS) and calls Verdict.
	Deferred bool
	LocalIP  netip.Addr
	Pool     Addresses
	DNS      []netip.Addr
	LeaseID  func(user string) string
	// Client: our credentials.
	User, Password string
	// Name is the CHAP name we send (default "goipsec").
	Name string
	// MRU we announce (default 1360: goipsec's TUN MTU of 1400 less UDP, L2TP and PPP headers).
	MRU int
	// EchoInterval: LCP echo requests when open (0: 20 s; negative: none); after EchoFailures
	// unanswered ones (0: 3) the link is down.
	EchoInterval time.Duration
	EchoFailures int
	Rand         io.Reader
}

// Event is something a Session reports.
type Event interface{ isEvent() }

// Up: the link carries IP. Peer is the client's address (assigned by us as server).
type Up struct {
	User        string
	Local, Peer netip.Addr
	DNS         []netip.Addr
	Auth        Auth
}

// Verify asks the owner to check Credentials (Config.Deferred) and to answer with
// Session.Verdict(Token, ...). The session waits, ignoring the client's retransmissions.
type Verify struct {
	Token       uint32
	Credentials Credentials
}

// Down: the link is closed; Reason says why.
type Down struct{ Reason string }

// IPPacket is an IPv4 packet received on the link.
type IPPacket struct{ B []byte }

func (Up) isEvent()       {}
func (Verify) isEvent()   {}
func (Down) isEvent()     {}
func (IPPacket) isEvent() {}

// Output is a frame to send or an event, in order.
type Output struct {
	Frame []byte
	Event Event
}

type phase uint8

const (
	phaseEstablish phase = iota
	phaseAuth
	phaseNetwork
	phaseOpen
	phaseTerminate
	phaseDead
)

const (
	restartTimer = 3 * time.Second // RFC 1661 §4.6
	maxConfigure = 10
	maxTerminate = 2
)

// cp is the negotiation state of one control protocol (LCP or IPCP).
type cp struct {
	proto   uint16
	id      uint8
	ackRcvd bool
	ackSent bool
	tries   int
	retryAt time.Time
}

// Session is one PPP link.
type Session struct {
	cfg   Config
	now   time.Time
	phase phase
	out   []Output

	lcp, ipcp cp
	magic     uint32
	peerMagic uint32
	mru       int
	auth      Auth // server: what we ask for; client: what the server asked for
	triedAuth map[Auth]bool

	// Authentication.
	user      string
	challenge []byte
	authID    uint8
	authTries int
	authAt    time.Time
	authDone  bool
	// pending is the deferred check the session waits for (Config.Deferred).
	pending *pendingVerify

	// IPCP.
	localIP, peerIP netip.Addr
	dns             []netip.Addr
	askDNS          bool
	leased          string
	leasedIP        netip.Addr

	echoAt     time.Time
	echoMissed int
	termTries  int
	termAt     time.Time
	reason     string
}

// NewSession returns a session; Start sends the first Configure-Request.
func NewSession(cfg Config) *Session {
	if len(cfg.Auths) == 0 {
		cfg.Auths = []Auth{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}
	}
	if cfg.MRU == 0 {
		cfg.MRU = 1360
	}
	if cfg.EchoInterval == 0 {
		cfg.EchoInterval = 20 * time.Second
	}
	if cfg.EchoFailures == 0 {
		cfg.EchoFailures = 3
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Name == "" {
		cfg.Name = "goipsec"
	}
	s := &Session{cfg: cfg, lcp: cp{proto: ProtoLCP}, ipcp: cp{proto: ProtoIPCP}, mru: cfg.MRU, triedAuth: map[Auth]bool{}, askDNS: true}
	s.magic = s.random32()
	if cfg.Server {
		s.auth = cfg.Auths[0]
		s.localIP = cfg.LocalIP
	}
	return s
}

func (s *Session) random32() uint32 {
	var b [4]byte
	for {
		io.ReadFull(s.cfg.Rand, b[:])
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// Start begins LCP negotiation.
func (s *Session) Start(now time.Time) {
	s.now = now
	s.sendConfigure(&s.lcp)
}

// Take returns what the session produced since the last call.
func (s *Session) Take() []Output {
	o := s.out
	s.out = nil
	return o
}

// Up reports whether IP flows.
func (s *Session) Up() bool { return s.phase == phaseOpen }

// Dead reports whether the session has ended.
func (s *Session) Dead() bool { return s.phase == phaseDead }

// PeerIP is the client's address once the link is up.
func (s *Session) PeerIP() netip.Addr { return s.peerIP }

// User is the authenticated user name.
func (s *Session) User() string { return s.user }

func (s *Session) emit(e Event) { s.out = append(s.out, Output{Event: e}) }

func (s *Session) send(proto uint16, p Packet) {
	s.out = append(s.out, Output{Frame: AppendFrame(nil, proto, p.Append(nil))})
}

// Frame wraps an IPv4 packet for the link (nil when the link is not up).
func (s *Session) Frame(ip []byte) []byte {
	if s.phase != phaseOpen {
		return nil
	}
	return AppendFrame(make([]byte, 0, 4+len(ip)), ProtoIPv4, ip)
}

// Close ends the link with a Terminate-Request.
func (s *Session) Close(reason string) { s.closeDetail(reason, "") }

// closeDetail is Close with a detail for the Down event (our log) that the peer is not told
// (a RADIUS server's address or error).
func (s *Session) closeDetail(reason, detail string) {
	if s.phase >= phaseTerminate {
		return
	}
	s.reason = reason
	s.phase = phaseTerminate
	s.termTries = 1
	s.termAt = s.now.Add(restartTimer)
	s.lcp.id++
	s.send(ProtoLCP, Packet{Code: CodeTerminateRequest, ID: s.lcp.id, Data: []byte(reason)})
	if detail != "" {
		s.reason += ": " + detail
	}
}

func (s *Session) die(reason string) {
	if s.phase == phaseDead {
		return
	}
	s.phase = phaseDead
	if s.leased != "" && s.cfg.Pool != nil {
		s.cfg.Pool.ReleaseAddr(s.leased, s.leasedIP)
		s.leased, s.leasedIP = "", netip.Addr{}
	}
	s.emit(Down{Reason: reason})
}

// --- configure requests ---

func (s *Session) options(c *cp) []Option {
	if c.proto == ProtoLCP {
		opts := []Option{{Type: LCPMRU, Data: binary.BigEndian.AppendUint16(nil, uint16(s.mru))}}
		if s.cfg.Server {
			opts = append(opts, Option{Type: LCPAuth, Data: s.auth.lcpOption()})
		}
		return append(opts, Option{Type: LCPMagic, Data: binary.BigEndian.AppendUint32(nil, s.magic)})
	}
	addr := s.localIP
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	opts := []Option{{Type: ipcpAddress, Data: addr.AsSlice()}}
	if !s.cfg.Server && s.askDNS {
		d1, d2 := netip.IPv4Unspecified(), netip.IPv4Unspecified()
		if len(s.dns) > 0 {
			d1 = s.dns[0]
		}
		if len(s.dns) > 1 {
			d2 = s.dns[1]
		}
		opts = append(opts, Option{Type: ipcpDNS1, Data: d1.AsSlice()}, Option{Type: ipcpDNS2, Data: d2.AsSlice()})
	}
	return opts
}

func (s *Session) sendConfigure(c *cp) {
	c.id++
	c.tries++
	c.retryAt = s.now.Add(restartTimer)
	s.send(c.proto, Packet{Code: CodeConfigureRequest, ID: c.id, Data: AppendOptions(nil, s.options(c))})
}

// Input handles a received frame.
func (s *Session) Input(frame []byte, now time.Time) {
	s.now = now
	if s.phase == phaseDead {
		return
	}
	proto, info, err := DecodeFrame(frame)
	if err != nil {
		return
	}
	s.echoMissed = 0
	switch proto {
	case ProtoIPv4:
		if s.phase == phaseOpen {
			s.emit(IPPacket{B: info})
		}
		return
	case ProtoLCP:
		s.inputLCP(info)
		return
	}
	if s.phase < phaseAuth || s.phase >= phaseTerminate {
		return // RFC 1661 §3.4: other packets are silently discarded before LCP is open
	}
	switch proto {
	case ProtoPAP:
		s.inputPAP(info)
	case ProtoCHAP:
		s.inputCHAP(info)
	case ProtoIPCP:
		if s.phase >= phaseNetwork {
			s.inputCP(&s.ipcp, info)
		}
	default:
		// IPv6CP, CCP and anything else: Protocol-Reject (RFC 1661 §5.7).
		s.lcp.id++
		data := binary.BigEndian.AppendUint16(nil, proto)
		data = append(data, info[:min(len(info), s.mru-6)]...)
		s.send(ProtoLCP, Packet{Code: CodeProtocolReject, ID: s.lcp.id, Data: data})
	}
}

func (s *Session) inputLCP(info []byte) {
	p, err := DecodePacket(info)
	if err != nil {
		return
	}
	switch p.Code {
	case CodeTerminateRequest:
		s.send(ProtoLCP, Packet{Code: CodeTerminateAck, ID: p.ID})
		s.die("peer terminated the link: " + printable(p.Data))
	case CodeTerminateAck:
		if s.phase == phaseTerminate {
			s.die(s.reason)
		}
	case CodeEchoRequest:
		if s.phase >= phaseAuth && s.phase < phaseTerminate {
			d := binary.BigEndian.AppendUint32(nil, s.magic)
			if len(p.Data) > 4 {
				d = append(d, p.Data[4:]...)
			}
			s.send(ProtoLCP, Packet{Code: CodeEchoReply, ID: p.ID, Data: d})
		}
	case CodeEchoReply, CodeDiscardRequest:
	case CodeProtocolReject, CodeCodeReject:
		if len(p.Data) >= 2 && binary.BigEndian.Uint16(p.Data) == ProtoIPCP {
			s.Close("peer rejected IPCP")
		}
	default:
		s.inputCP(&s.lcp, info)
	}
}

// inputCP runs the option negotiation of LCP or IPCP (RFC 1661 §4 in two flags: our request
// acknowledged, the peer's acknowledged).
func (s *Session) inputCP(c *cp, info []byte) {
	p, err := DecodePacket(info)
	if err != nil {
		return
	}
	opts, err := DecodeOptions(p.Data)
	if err != nil {
		return
	}
	switch p.Code {
	case CodeConfigureRequest:
		if c.ackRcvd && c.ackSent {
			// Renegotiation (RFC 1661 §4: Opened + RCR): start over.
			c.ackRcvd, c.ackSent = false, false
			if c == &s.lcp {
				s.phase = phaseEstablish
			}
			s.sendConfigure(c)
		}
		code, reply := s.judge(c, opts)
		s.send(c.proto, Packet{Code: code, ID: p.ID, Data: AppendOptions(nil, reply)})
		c.ackSent = code == CodeConfigureAck
	case CodeConfigureAck:
		if p.ID != c.id {
			return
		}
		c.ackRcvd = true
	case CodeConfigureNak, CodeConfigureReject:
		if p.ID != c.id {
			return
		}
		if !s.adjust(c, p.Code, opts) {
			return
		}
		if c.tries >= maxConfigure {
			s.Close(fmt.Sprintf("%s negotiation did not converge", cpName(c.proto)))
			return
		}
		s.sendConfigure(c)
		return
	case CodeTerminateRequest:
		s.send(c.proto, Packet{Code: CodeTerminateAck, ID: p.ID})
		return
	default:
		return
	}
	if c.ackRcvd && c.ackSent {
		c.retryAt = time.Time{}
		s.opened(c)
	}
}

func cpName(proto uint16) string {
	if proto == ProtoLCP {
		return "LCP"
	}
	return "IPCP"
}

// judge answers a peer's Configure-Request: Reject beats Nak beats Ack (RFC 1661 §5.2–5.4).
func (s *Session) judge(c *cp, opts []Option) (uint8, []Option) {
	var naks, rejects []Option
	for _, o := range opts {
		var nak *Option
		reject := false
		if c.proto == ProtoLCP {
			nak, reject = s.judgeLCP(o)
		} else {
			nak, reject = s.judgeIPCP(o)
		}
		switch {
		case reject:
			rejects = append(rejects, o)
		case nak != nil:
			naks = append(naks, *nak)
		}
	}
	if len(rejects) > 0 {
		return CodeConfigureReject, rejects
	}
	if len(naks) > 0 {
		return CodeConfigureNak, naks
	}
	if c.proto == ProtoIPCP {
		s.acceptIPCP(opts)
	}
	return CodeConfigureAck, opts
}

func (s *Session) judgeLCP(o Option) (*Option, bool) {
	switch o.Type {
	case LCPMRU:
		if len(o.Data) != 2 {
			return nil, true
		}
		if binary.BigEndian.Uint16(o.Data) < 576 {
			// Below IPv4's minimum reassembly size is more pain than it is worth; ask for 576.
			return &Option{Type: LCPMRU, Data: binary.BigEndian.AppendUint16(nil, 576)}, false
		}
	case LCPACCM:
		// Asynchronous maps mean nothing inside L2TP; acknowledged and ignored.
		if len(o.Data) != 4 {
			return nil, true
		}
	case LCPMagic:
		if len(o.Data) != 4 {
			return nil, true
		}
		m := binary.BigEndian.Uint32(o.Data)
		if m == s.magic {
			// A loop (RFC 1661 §6.4): suggest another.
			return &Option{Type: LCPMagic, Data: binary.BigEndian.AppendUint32(nil, s.random32())}, false
		}
		s.peerMagic = m
	case LCPAuth:
		if s.cfg.Server {
			return nil, true // we do not authenticate ourselves to the client
		}
		a := authFromOption(o.Data)
		if a == AuthNone {
			return &Option{Type: LCPAuth, Data: AuthMSCHAPv2.lcpOption()}, false
		}
		s.auth = a
	default:
		// PFC, ACFC (we send full headers), callback, multilink, quality: rejected.
		return nil, true
	}
	return nil, false
}

func (s *Session) judgeIPCP(o Option) (*Option, bool) {
	addr, ok := netip.AddrFromSlice(o.Data)
	switch o.Type {
	case ipcpAddress:
		if !ok || !addr.Is4() {
			return nil, true
		}
		if !s.cfg.Server {
			return nil, false // the server tells its own address
		}
		if addr != s.peerIP {
			return &Option{Type: ipcpAddress, Data: s.peerIP.AsSlice()}, false
		}
	case ipcpDNS1, ipcpDNS2:
		if !s.cfg.Server || !ok || !addr.Is4() {
			return nil, true
		}
		i := 0
		if o.Type == ipcpDNS2 {
			i = 1
		}
		if i >= len(s.cfg.DNS) {
			return nil, true
		}
		if addr != s.cfg.DNS[i] {
			return &Option{Type: o.Type, Data: s.cfg.DNS[i].AsSlice()}, false
		}
	default:
		// IP-Compression (Van Jacobson), NBNS and others: rejected.
		return nil, true
	}
	return nil, false
}

func (s *Session) acceptIPCP(opts []Option) {
	for _, o := range opts {
		if o.Type == ipcpAddress && !s.cfg.Server {
			s.peerIP, _ = netip.AddrFromSlice(o.Data)
		}
	}
}

// adjust changes our next request after a Nak or Reject; false means the packet is ignored.
func (s *Session) adjust(c *cp, code uint8, opts []Option) bool {
	for _, o := range opts {
		switch {
		case c.proto == ProtoLCP && o.Type == LCPMRU && code == CodeConfigureNak && len(o.Data) == 2:
			if v := int(binary.BigEndian.Uint16(o.Data)); v >= 576 && v <= s.cfg.MRU {
				s.mru = v
			}
		case c.proto == ProtoLCP && o.Type == LCPMRU && code == CodeConfigureReject:
			s.mru = 1500
		case c.proto == ProtoLCP && o.Type == LCPMagic:
			s.magic = s.random32()
		case c.proto == ProtoLCP && o.Type == LCPAuth && s.cfg.Server:
			s.triedAuth[s.auth] = true
			next := AuthNone
			if code == CodeConfigureNak {
				if want := authFromOption(o.Data); s.allowed(want) && !s.triedAuth[want] {
					next = want
				}
			}
			if next == AuthNone {
				for _, a := range s.cfg.Auths {
					if !s.triedAuth[a] {
						next = a
						break
					}
				}
			}
			if next == AuthNone {
				s.Close("the client accepts none of the configured authentication protocols")
				return false
			}
			s.auth = next
		case c.proto == ProtoIPCP && o.Type == ipcpAddress && code == CodeConfigureNak && !s.cfg.Server:
			s.localIP, _ = netip.AddrFromSlice(o.Data)
		case c.proto == ProtoIPCP && (o.Type == ipcpDNS1 || o.Type == ipcpDNS2) && code == CodeConfigureNak:
			a, _ := netip.AddrFromSlice(o.Data)
			i := 0
			if o.Type == ipcpDNS2 {
				i = 1
			}
			for len(s.dns) <= i {
				s.dns = append(s.dns, netip.IPv4Unspecified())
			}
			s.dns[i] = a
		case c.proto == ProtoIPCP && (o.Type == ipcpDNS1 || o.Type == ipcpDNS2) && code == CodeConfigureReject:
			s.askDNS = false
		case c.proto == ProtoIPCP && o.Type == ipcpAddress && code == CodeConfigureReject:
			s.Close("peer rejected the IP-Address option")
			return false
		}
	}
	return true
}

func (s *Session) allowed(a Auth) bool {
	for _, x := range s.cfg.Auths {
		if x == a {
			return true
		}
	}
	return false
}

// opened moves on when a control protocol is open.
func (s *Session) opened(c *cp) {
	if c.proto == ProtoLCP && s.phase == phaseEstablish {
		s.phase = phaseAuth
		if s.cfg.EchoInterval > 0 {
			s.echoAt = s.now.Add(s.cfg.EchoInterval)
		}
		s.startAuth()
		return
	}
	if c.proto == ProtoIPCP && s.phase == phaseNetwork {
		s.phase = phaseOpen
		dns := s.dns
		if s.cfg.Server {
			dns = s.cfg.DNS
		}
		s.emit(Up{User: s.user, Local: s.localIP, Peer: s.peerIP, DNS: dns, Auth: s.auth})
	}
}

// --- authentication ---

func (s *Session) startAuth() {
	if !s.cfg.Server {
		s.user = s.cfg.User
		if s.auth == AuthPAP {
			s.sendPAP()
		}
		if s.auth == AuthNone {
			s.authenticated()
		}
		return
	}
	if s.auth == AuthCHAPMD5 || s.auth == AuthMSCHAPv2 {
		s.sendChallenge()
	}
	// PAP: the client speaks first; its requests are retransmitted by it.
	s.authAt = s.now.Add(30 * time.Second)
}

func (s *Session) sendPAP() {
	s.authID++
	s.authTries++
	s.authAt = s.now.Add(restartTimer)
	d := append([]byte{byte(len(s.cfg.User))}, s.cfg.User...)
	d = append(d, byte(len(s.cfg.Password)))
	d = append(d, s.cfg.Password...)
	s.send(ProtoPAP, Packet{Code: 1, ID: s.authID, Data: d})
}

func (s *Session) sendChallenge() {
	s.authID++
	s.authTries++
	s.authAt = s.now.Add(restartTimer)
	n := 16
	s.challenge = make([]byte, n)
	io.ReadFull(s.cfg.Rand, s.challenge)
	d := append([]byte{byte(n)}, s.challenge...)
	d = append(d, s.cfg.Name...)
	s.send(ProtoCHAP, Packet{Code: 1, ID: s.authID, Data: d})
}

type pendingVerify struct {
	token uint32
	c     Credentials
}

// verify checks credentials: in place with the Verifier, or (Deferred) by the owner, which
// answers with Verdict.
func (s *Session) verify(c Credentials) {
	if !s.cfg.Deferred {
		s.conclude(c, check(s.cfg.Verifier, c))
		return
	}
	c.Challenge = append([]byte(nil), c.Challenge...)
	c.PeerChallenge = append([]byte(nil), c.PeerChallenge...)
	c.Response = append([]byte(nil), c.Response...)
	s.pending = &pendingVerify{token: s.random32(), c: c}
	s.authAt = s.now.Add(verifyWait)
	s.emit(Verify{Token: s.pending.token, Credentials: c})
}

// Verdict delivers the owner's answer to a Verify. An answer for a check the session no longer
// waits for (it closed, timed out, or the token is another's) changes nothing (false).
func (s *Session) Verdict(token uint32, v Verdict) bool {
	if s.pending == nil || s.pending.token != token || s.phase != phaseAuth {
		return false
	}
	c := s.pending.c
	s.pending = nil
	s.conclude(c, v)
	return true
}

// conclude answers the client with the verdict on its credentials.
func (s *Session) conclude(c Credentials, v Verdict) {
	why := v.Reason // for our log only: the client learns that it failed, not why
	if v.OK && c.Auth == AuthMSCHAPv2 && !strings.HasPrefix(v.AuthenticatorResponse, "S=") {
		v.OK, why = false, "no authenticator response"
	}
	switch c.Auth {
	case AuthPAP:
		if !v.OK {
			s.send(ProtoPAP, Packet{Code: 3, ID: c.ID, Data: lvBytes("authentication failed")})
			s.closeDetail("PAP authentication of "+printable([]byte(c.User))+" failed", why)
			return
		}
		s.user = c.User
		s.send(ProtoPAP, Packet{Code: 2, ID: c.ID, Data: lvBytes("welcome")})
	case AuthCHAPMD5:
		if !v.OK {
			s.send(ProtoCHAP, Packet{Code: 4, ID: c.ID, Data: []byte("authentication failed")})
			s.closeDetail("CHAP authentication of "+printable([]byte(c.User))+" failed", why)
			return
		}
		s.send(ProtoCHAP, Packet{Code: 3, ID: c.ID, Data: []byte("welcome")})
	case AuthMSCHAPv2:
		if !v.OK {
			msg := fmt.Sprintf("E=691 R=0 C=%X V=3 M=authentication failed", c.Challenge)
			s.send(ProtoCHAP, Packet{Code: 4, ID: c.ID, Data: []byte(msg)})
			s.closeDetail("MS-CHAPv2 authentication of "+printable([]byte(c.User))+" failed", why)
			return
		}
		s.send(ProtoCHAP, Packet{Code: 3, ID: c.ID, Data: []byte(v.AuthenticatorResponse + " M=welcome")})
	default:
		return
	}
	s.authenticated()
}

func (s *Session) inputPAP(info []byte) {
	p, err := DecodePacket(info)
	if err != nil {
		return
	}
	switch {
	case s.cfg.Server && p.Code == 1 && s.auth == AuthPAP:
		user, rest, ok := lv(p.Data)
		pass, _, ok2 := lv(rest)
		if !ok || !ok2 {
			return
		}
		if s.authDone {
			s.send(ProtoPAP, Packet{Code: 2, ID: p.ID}) // a retransmission after our Ack was lost
			return
		}
		if s.pending != nil {
			// A retransmission while the verdict is awaited: the Ack or Nak answers its ID (the
			// client takes only an answer to its last request).
			if string(user) == s.pending.c.User && string(pass) == s.pending.c.Password {
				s.pending.c.ID = p.ID
			}
			return
		}
		s.verify(Credentials{Auth: AuthPAP, User: string(user), Password: string(pass), ID: p.ID})
	case !s.cfg.Server && p.Code == 2 && p.ID == s.authID && !s.authDone:
		s.authenticated()
	case !s.cfg.Server && p.Code == 3 && p.ID == s.authID:
		s.Close("the server refused our PAP credentials")
	}
}

func (s *Session) inputCHAP(info []byte) {
	p, err := DecodePacket(info)
	if err != nil {
		return
	}
	if s.cfg.Server {
		if p.Code != 2 || p.ID != s.authID || s.challenge == nil {
			return
		}
		val, name, ok := lv(p.Data)
		if !ok {
			return
		}
		if s.authDone || s.pending != nil {
			return
		}
		s.user = string(name)
		c := Credentials{Auth: s.auth, User: s.user, ID: p.ID, Challenge: s.challenge}
		switch s.auth {
		case AuthCHAPMD5:
			if len(val) != 16 {
				s.send(ProtoCHAP, Packet{Code: 4, ID: p.ID, Data: []byte("authentication failed")})
				s.Close("CHAP authentication of " + printable(name) + " failed: malformed response")
				return
			}
			c.Response = val
		case AuthMSCHAPv2:
			// RFC 2759 §4: Peer-Challenge 16, Reserved 8, NT-Response 24, Flags 1.
			if len(val) != 49 {
				s.Close("malformed MS-CHAPv2 response")
				return
			}
			c.PeerChallenge, c.Response = val[:16], val[24:48]
		default:
			return
		}
		s.verify(c)
		return
	}
	switch p.Code {
	case 1: // Challenge
		chal, _, ok := lv(p.Data)
		if !ok {
			return
		}
		s.authID = p.ID
		var val []byte
		switch s.auth {
		case AuthMSCHAPv2:
			if len(chal) != 16 {
				return
			}
			peer := make([]byte, 16)
			io.ReadFull(s.cfg.Rand, peer)
			s.challenge = append(append([]byte(nil), chal...), peer...)
			val = append(append(peer, make([]byte, 8)...), generateNTResponse(chal, peer, s.cfg.User, s.cfg.Password)...)
			val = append(val, 0)
		default:
			val = chapMD5Response(p.ID, []byte(s.cfg.Password), chal)
		}
		d := append([]byte{byte(len(val))}, val...)
		d = append(d, s.cfg.User...)
		s.send(ProtoCHAP, Packet{Code: 2, ID: p.ID, Data: d})
	case 3: // Success
		if p.ID != s.authID || s.authDone {
			return
		}
		if s.auth == AuthMSCHAPv2 && len(s.challenge) == 32 {
			// The server proves it knows the password too (RFC 2759 §5).
			want := authenticatorResponse(s.cfg.Password, generateNTResponse(s.challenge[:16], s.challenge[16:], s.cfg.User, s.cfg.Password),
				s.challenge[16:], s.challenge[:16], s.cfg.User)
			if !bytes.HasPrefix(p.Data, []byte(want)) {
				s.Close("the server's MS-CHAPv2 authenticator response is wrong")
				return
			}
		}
		s.authenticated()
	case 4:
		s.Close("the server refused our CHAP credentials: " + printable(p.Data))
	}
}

// lv splits a one-byte-length-prefixed field off b.
func lv(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return nil, nil, false
	}
	return b[1 : 1+int(b[0])], b[1+int(b[0]):], true
}

func lvBytes(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, string(b))
}

func (s *Session) authenticated() {
	s.authDone = true
	s.authAt = time.Time{}
	s.phase = phaseNetwork
	if s.cfg.Server {
		if s.cfg.Pool == nil {
			s.Close("no address pool")
			return
		}
		id := s.user
		if s.cfg.LeaseID != nil {
			id = s.cfg.LeaseID(s.user)
		}
		a, err := s.cfg.Pool.Acquire(id)
		if err != nil {
			s.Close("no address for " + s.user + ": " + err.Error())
			return
		}
		s.leased, s.leasedIP, s.peerIP = id, a, a
	}
	s.sendConfigure(&s.ipcp)
}

// --- timers ---

// Tick retransmits and checks liveness.
func (s *Session) Tick(now time.Time) {
	s.now = now
	switch s.phase {
	case phaseDead:
		return
	case phaseTerminate:
		if !now.Before(s.termAt) {
			if s.termTries >= maxTerminate {
				s.die(s.reason)
				return
			}
			s.termTries++
			s.termAt = now.Add(restartTimer)
			s.send(ProtoLCP, Packet{Code: CodeTerminateRequest, ID: s.lcp.id, Data: []byte(s.reason)})
		}
		return
	}
	for _, c := range []*cp{&s.lcp, &s.ipcp} {
		if !c.retryAt.IsZero() && !now.Before(c.retryAt) && !c.ackRcvd {
			if c.tries >= maxConfigure {
				s.Close(fmt.Sprintf("peer did not answer %s Configure-Request", cpName(c.proto)))
				return
			}
			s.sendConfigure(c)
		}
	}
	if s.phase == phaseAuth && s.pending != nil {
		// Waiting for a deferred verdict: no new challenge (it would void the pending one).
		if !now.Before(s.authAt) {
			s.pending = nil
			s.Close("authentication timed out: the credentials' check did not answer")
			return
		}
	} else if s.phase == phaseAuth && !s.authAt.IsZero() && !now.Before(s.authAt) {
		switch {
		case s.authTries >= maxConfigure || (s.cfg.Server && s.auth == AuthPAP):
			s.Close("authentication timed out")
			return
		case s.cfg.Server:
			s.sendChallenge()
		case s.auth == AuthPAP:
			s.sendPAP()
		}
	}
	if s.phase >= phaseAuth && !s.echoAt.IsZero() && !now.Before(s.echoAt) {
		if s.echoMissed >= s.cfg.EchoFailures {
			s.die(fmt.Sprintf("peer did not answer %d LCP echo requests", s.echoMissed))
			return
		}
		s.echoMissed++
		s.echoAt = now.Add(s.cfg.EchoInterval)
		s.lcp.id++
		s.send(ProtoLCP, Packet{Code: CodeEchoRequest, ID: s.lcp.id, Data: binary.BigEndian.AppendUint32(nil, s.magic)})
	}
}

// NextDeadline is when Tick has work (zero: none).
func (s *Session) NextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch s.phase {
	case phaseDead:
		return next
	case phaseTerminate:
		return s.termAt
	}
	for _, c := range []*cp{&s.lcp, &s.ipcp} {
		if !c.ackRcvd {
			consider(c.retryAt)
		}
	}
	if s.phase == phaseAuth {
		consider(s.authAt)
	}
	consider(s.echoAt)
	return next
}

// Abort ends the session at once, without a Terminate-Request (the call under it is gone).
func (s *Session) Abort(reason string) { s.die(reason) }

// Printable replaces control characters of peer-supplied text for logs.
func Printable(b []byte) string { return printable(b) }
