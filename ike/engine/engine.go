// Package engine drives IKEv2: it owns the IKE sockets' traffic (through a Transport), message
// IDs, retransmission of cached requests, the responder's cache of its last response, IKEv2
// fragments, cookies, NAT-T port floating and the timers for rekeying, dead peer detection and
// lifetimes. The protocol logic lives in package ike as state machines; the daemon receives the
// results (Child SAs to install or remove) through Events.
//
// Concurrency: one mutex guards all state. Entry points (Receive, Initiate, Terminate, timer
// callbacks) take it; Events callbacks run with it held and must not call back into the Engine.
package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Transport sends IKE messages. When local's port is the NAT-T port it prepends the non-ESP marker
// (RFC 3948 §2.2).
type Transport interface {
	Send(b []byte, local, remote netip.AddrPort) error
}

// Events report what the engine did; every field may be nil. They run with the engine's lock
// held: they must not block and must not call the Engine.
type Events struct {
	IKEUp     func(sa *ike.SA)
	IKEDown   func(sa *ike.SA, reason string)
	ChildUp   func(sa *ike.SA, c *ike.ChildSA) error
	ChildDown func(sa *ike.SA, c *ike.ChildSA, reason string)
	// IKERekeyed reports that next replaced old.
	IKERekeyed func(old, next *ike.SA)
	// Failed reports a negotiation failure of a connection in one line.
	Failed func(conn string, err error)
	// Keys is called when an IKE SA has its keys (for debug key logging).
	Keys func(sa *ike.SA)
	// Handshake reports how long an IKE SA took from its first message to being established.
	Handshake func(took time.Duration)
}

// Config configures an Engine.
type Config struct {
	Transport Transport
	Clock     Clock
	Logger    *slog.Logger
	// NetLogger logs every IKE datagram sent and received, EncLogger message parsing and
	// generation (payload lists, decoding errors); both default to Logger.
	NetLogger *slog.Logger
	EncLogger *slog.Logger
	Rand      io.Reader
	Events    Events
	// Configs returns the connections a responder may use for a peer (by addresses).
	Configs func(local, remote netip.Addr) []*ike.PeerConfig
	// AllocSPI allocates inbound Child SA SPIs unique on this host.
	AllocSPI func() (uint32, error)
	// NATTPort is the local NAT-T port (default 4500).
	NATTPort uint16
	// Retransmission: the n-th retransmission waits RetransmitTimeout*RetransmitBase^n (at most
	// RetransmitLimit when set); after RetransmitTries the peer is declared dead.
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	RetransmitTries   int
	RetransmitLimit   time.Duration
	// MaxDatagram is the largest IKE message sent unfragmented when the peer supports
	// fragmentation (default 1280).
	MaxDatagram int
	// CookieThreshold is the number of half-open SAs above which IKE_SA_INIT requests must carry a
	// cookie (RFC 7296 §2.6); 0 means the default (100), negative means always.
	CookieThreshold int
	// HalfOpenTimeout drops responder SAs that never complete IKE_AUTH (default 30s).
	HalfOpenTimeout time.Duration
	// Keepalive sends a NAT-keepalive (RFC 3948 §2.3) from local to remote; KeepaliveInterval
	// (default 20s) is how often an SA behind a NAT sends one. Nil disables keepalives.
	Keepalive         func(local, remote netip.AddrPort)
	KeepaliveInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NetLogger == nil {
		c.NetLogger = c.Logger
	}
	if c.EncLogger == nil {
		c.EncLogger = c.Logger
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.NATTPort == 0 {
		c.NATTPort = 4500
	}
	if c.RetransmitTimeout == 0 {
		c.RetransmitTimeout = 4 * time.Second
	}
	if c.RetransmitBase < 1 {
		c.RetransmitBase = 1.8
	}
	if c.RetransmitTries == 0 {
		c.RetransmitTries = 5
	}
	if c.MaxDatagram == 0 {
		c.MaxDatagram = 1280
	}
	if c.CookieThreshold == 0 {
		c.CookieThreshold = 100
	}
	if c.HalfOpenTimeout == 0 {
		c.HalfOpenTimeout = 30 * time.Second
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 20 * time.Second
	}
	if c.Configs == nil {
		c.Configs = func(netip.Addr, netip.Addr) []*ike.PeerConfig { return nil }
	}
}

// Engine runs IKE SAs.
type Engine struct {
	cfg Config
	log *slog.Logger
	net *slog.Logger
	enc *slog.Logger

	mu       sync.Mutex
	sas      map[uint64]*ikeSA  // by our SPI
	halfOpen map[initKey]*ikeSA // responder SAs by the initiator's SPI and address, until IKE_AUTH
	cookie   [32]byte           // secret for stateless cookies
	stats    Stats
	closed   bool
}

type initKey struct {
	spii   uint64
	remote netip.AddrPort
}

// Stats count engine events (for metrics).
type Stats struct {
	Retransmits      uint64
	InvalidMessages  uint64
	CookiesSent      uint64
	HandshakesOK     uint64
	HandshakesFailed uint64
	Rekeys           uint64
	HandshakeSeconds []float64 // latencies of completed handshakes since the last StatsReset
}

// ikeSA is an IKE SA with its driver state.
type ikeSA struct {
	*ike.SA
	name    string
	started time.Time

	// Requests we initiate (window size 1).
	nextMsgID  uint32
	pending    *ike.Pending
	pendingID  uint32
	pendingMsg [][]byte
	retries    int
	retransmit Timer
	queue      []queued
	initChild  *ike.ChildConfig // child to create in IKE_AUTH (initiator)

	// Requests the peer sends.
	expectID   uint32
	lastResp   [][]byte
	lastRespID uint32
	hasResp    bool
	reasm      *wire.Reassembler

	timers []Timer
	// childTimers are the rekey and lifetime timers of each Child SA. They belong to the Child SA,
	// not to the IKE SA: an IKE rekey hands them to the new IKE SA unchanged.
	childTimers map[*ike.ChildSA][]Timer
	lastSeen    time.Time // last authenticated message from the peer
	rekeyAt     time.Time // when the IKE SA rekeys (zero: never)
	// childDeadlines are each Child SA's rekey and hard-lifetime deadlines (for status).
	childDeadlines map[*ike.ChildSA][2]time.Time
	dead           bool
	replaced       bool // rekeyed: its end is not the connection's end

	// peerRekeys records Child SAs the peer rekeyed while our own rekey of them was outstanding
	// (a collision, RFC 7296 §2.8.1): replaced Child SA → the one the peer's exchange created.
	peerRekeys map[*ike.ChildSA]*ike.ChildSA
	// peerIKERekey is the IKE SA the peer's rekey of this one created while our own rekey of it was
	// outstanding (RFC 7296 §2.8.2).
	peerIKERekey *ikeSA
}

// queued is an exchange waiting for the request window.
type queued struct {
	kind  ike.PendingKind
	child *ike.ChildConfig
	old   *ike.ChildSA
}

// New returns an engine; it starts no goroutines (timers run on the Clock).
func New(cfg Config) *Engine {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, log: cfg.Logger, net: cfg.NetLogger, enc: cfg.EncLogger, sas: map[uint64]*ikeSA{}, halfOpen: map[initKey]*ikeSA{}}
	io.ReadFull(cfg.Rand, e.cookie[:])
	return e
}

func (e *Engine) deps() ike.Deps {
	return ike.Deps{Rand: e.cfg.Rand, Now: e.cfg.Clock.Now, AllocSPI: e.cfg.AllocSPI}
}

func (e *Engine) logSA(s *ikeSA) *slog.Logger {
	return e.log.With("conn", s.name, "spi_i", fmt.Sprintf("%016x", s.SPIi), "spi_r", fmt.Sprintf("%016x", s.SPIr))
}

// Initiate starts an IKE SA for cfg towards remote and negotiates child with it.
func (e *Engine) Initiate(cfg *ike.PeerConfig, child *ike.ChildConfig, local, remote netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sa, err := ike.NewInitiator(cfg, local, remote, e.deps())
	if err != nil {
		return err
	}
	s := &ikeSA{SA: sa, name: cfg.Name, started: e.cfg.Clock.Now(), initChild: child, nextMsgID: 0}
	e.sas[sa.SPIi] = s
	b, err := sa.InitRequest()
	if err != nil {
		delete(e.sas, sa.SPIi)
		return err
	}
	e.logSA(s).Info("initiating IKE_SA_INIT", "local", local, "remote", remote)
	e.sendRequest(s, nil, 0, [][]byte{b})
	return nil
}

// Receive handles one IKE message (without non-ESP marker) that arrived from remote at local.
func (e *Engine) Receive(b []byte, local, remote netip.AddrPort) {
	e.net.Debug("received packet", "from", remote, "to", local, "bytes", len(b))
	h, err := wire.DecodeHeader(b)
	if err != nil {
		e.mu.Lock()
		e.stats.InvalidMessages++
		e.mu.Unlock()
		e.enc.Debug("dropping invalid IKE message", "from", remote, "err", err)
		return
	}
	if h.Exchange == wire.ExchangeIKESAInit && !h.IsResponse() && h.SPIr == 0 {
		if !local.Addr().IsValid() {
			e.log.Debug("dropping IKE_SA_INIT: the transport did not tell our address", "from", remote)
			return
		}
		// Takes the lock itself: its key exchange runs outside it, so that several new IKE SAs
		// are computed in parallel.
		e.receiveInitRequest(b, h, local, remote)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	mySPI := h.SPIi
	if h.IsInitiator() {
		mySPI = h.SPIr
	}
	s := e.sas[mySPI]
	if s == nil || s.dead {
		e.stats.InvalidMessages++
		e.log.Debug("IKE message for unknown SA", "from", remote, "spi_i", fmt.Sprintf("%016x", h.SPIi), "spi_r", fmt.Sprintf("%016x", h.SPIr), "exchange", h.Exchange.String())
		return
	}
	if h.IsResponse() {
		e.receiveResponse(s, b, h, local, remote)
	} else {
		e.receiveRequest(s, b, h, local, remote)
	}
}

// sendRequest sends a request and arms its retransmission.
func (e *Engine) sendRequest(s *ikeSA, p *ike.Pending, id uint32, msgs [][]byte) {
	s.pending, s.pendingID, s.pendingMsg, s.retries = p, id, msgs, 0
	e.transmit(s, msgs)
	e.armRetransmit(s)
}

func (e *Engine) transmit(s *ikeSA, msgs [][]byte) {
	for _, m := range msgs {
		e.net.Debug("sending packet", "from", s.Local, "to", s.Remote, "bytes", len(m))
		if err := e.cfg.Transport.Send(m, s.Local, s.Remote); err != nil {
			e.logSA(s).Warn("sending IKE message failed", "to", s.Remote, "err", err)
		}
	}
}

func (e *Engine) armRetransmit(s *ikeSA) {
	if s.retransmit != nil {
		s.retransmit.Stop()
	}
	d := float64(e.cfg.RetransmitTimeout) * math.Pow(e.cfg.RetransmitBase, float64(s.retries))
	if e.cfg.RetransmitLimit > 0 && d > float64(e.cfg.RetransmitLimit) {
		d = float64(e.cfg.RetransmitLimit)
	}
	id := s.pendingID
	s.retransmit = e.cfg.Clock.AfterFunc(time.Duration(d), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if s.dead || s.pendingMsg == nil || s.pendingID != id {
			return
		}
		if s.retries >= e.cfg.RetransmitTries {
			e.fail(s, fmt.Errorf("peer %s did not answer %d retransmissions", s.Remote, s.retries), true)
			return
		}
		s.retries++
		e.stats.Retransmits++
		e.logSA(s).Debug("retransmitting request", "msgid", id, "try", s.retries)
		e.transmit(s, s.pendingMsg)
		e.armRetransmit(s)
	})
}

// fail ends an IKE SA after an error.
func (e *Engine) fail(s *ikeSA, err error, notifyDown bool) {
	if s.State != ike.StateEstablished && s.State != ike.StateDeleting {
		e.stats.HandshakesFailed++
		if f := e.cfg.Events.Failed; f != nil {
			f(s.name, err)
		}
	}
	e.logSA(s).Warn("IKE SA failed", "err", err)
	e.destroy(s, err.Error())
}

// destroy removes an IKE SA and reports its Child SAs and itself down.
func (e *Engine) destroy(s *ikeSA, reason string) {
	if s.dead {
		return
	}
	s.dead = true
	for _, c := range s.Children {
		if f := e.cfg.Events.ChildDown; f != nil {
			f(s.SA, c, reason)
		}
	}
	wasUp := s.State == ike.StateEstablished || s.State == ike.StateDeleting
	if wasUp && !s.replaced {
		if f := e.cfg.Events.IKEDown; f != nil {
			f(s.SA, reason)
		}
	}
	if s.retransmit != nil {
		s.retransmit.Stop()
	}
	for _, t := range s.timers {
		t.Stop()
	}
	for _, ts := range s.childTimers {
		for _, t := range ts {
			t.Stop()
		}
	}
	delete(e.sas, s.MySPI())
	for k, v := range e.halfOpen {
		if v == s {
			delete(e.halfOpen, k)
		}
	}
	s.Zero()
}

// --- responder side of IKE_SA_INIT ---

func (e *Engine) receiveInitRequest(b []byte, h wire.Header, local, remote netip.AddrPort) {
	key := initKey{h.SPIi, remote}
	// Under the lock: is this a retransmission, and must the initiator prove its address?
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if s := e.halfOpen[key]; s != nil {
		// A retransmitted IKE_SA_INIT: answer from the cache.
		if s.hasResp && s.lastRespID == 0 {
			e.transmit(s, s.lastResp)
		}
		e.mu.Unlock()
		return
	}
	needCookie := e.needCookie()
	e.mu.Unlock()

	// Without the lock: decoding, the cookie check, the key exchange and key derivation.
	m, err := wire.Decode(b)
	if err != nil {
		e.countInvalid()
		e.enc.Debug("dropping invalid IKE_SA_INIT", "from", remote, "err", err)
		return
	}
	if needCookie {
		want := e.cookieFor(m, remote)
		got := firstNotify(m.Payloads, wire.Cookie)
		if got == nil || !hmac.Equal(got.Data, want) {
			e.mu.Lock()
			e.stats.CookiesSent++
			e.mu.Unlock()
			resp := &wire.Message{Header: wire.Header{SPIi: h.SPIi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse},
				Payloads: []wire.Payload{&wire.Notify{NotifyType: wire.Cookie, Data: want}}}
			if out, err := resp.Encode(); err == nil {
				e.cfg.Transport.Send(out, local, remote)
			}
			return
		}
	}
	candidates := e.cfg.Configs(local.Addr(), remote.Addr())
	sa, resp, err := ike.RespondInit(m, b, local, remote, candidates, e.deps())

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		if sa != nil {
			sa.Zero()
		}
		return
	}
	if s := e.halfOpen[key]; s != nil {
		// A duplicate of the request was answered meanwhile: keep that answer.
		if sa != nil {
			sa.Zero()
		}
		return
	}
	if resp != nil {
		e.cfg.Transport.Send(resp, local, remote)
	}
	if err != nil {
		e.stats.HandshakesFailed++
		name := "(unknown)"
		if len(candidates) > 0 {
			name = candidates[0].Name
		}
		e.log.Warn("IKE_SA_INIT refused", "from", remote, "err", err)
		if f := e.cfg.Events.Failed; f != nil {
			f(name, err)
		}
		return
	}
	s := &ikeSA{SA: sa, name: sa.Config.Name, started: e.cfg.Clock.Now(), expectID: 1, lastResp: [][]byte{resp}, lastRespID: 0, hasResp: true, lastSeen: e.cfg.Clock.Now()}
	e.sas[sa.SPIr] = s
	e.halfOpen[key] = s
	if f := e.cfg.Events.Keys; f != nil {
		f(sa)
	}
	s.timers = append(s.timers, e.cfg.Clock.AfterFunc(e.cfg.HalfOpenTimeout, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !s.dead && s.State != ike.StateEstablished {
			e.fail(s, errors.New("half-open IKE SA timed out waiting for IKE_AUTH"), false)
		}
	}))
	e.logSA(s).Info("IKE_SA_INIT answered", "from", remote, "proposal", sa.Proposal.String(), "nat", sa.NAT())
}

func (e *Engine) countInvalid() {
	e.mu.Lock()
	e.stats.InvalidMessages++
	e.mu.Unlock()
}

func (e *Engine) needCookie() bool {
	if e.cfg.CookieThreshold < 0 {
		return true
	}
	return len(e.halfOpen) >= e.cfg.CookieThreshold
}

// cookieFor computes a stateless cookie: Hash(Ni | IPi | SPIi | secret) (RFC 7296 §2.6).
func (e *Engine) cookieFor(m *wire.Message, remote netip.AddrPort) []byte {
	mac := hmac.New(sha256.New, e.cookie[:])
	for _, p := range m.Payloads {
		if n, ok := p.(*wire.Nonce); ok {
			mac.Write(n.Data)
		}
	}
	mac.Write(remote.Addr().AsSlice())
	var spi [8]byte
	binary.BigEndian.PutUint64(spi[:], m.SPIi)
	mac.Write(spi[:])
	return append([]byte{0, 0, 0, 1}, mac.Sum(nil)[:16]...)
}

func firstNotify(ps []wire.Payload, t wire.NotifyType) *wire.Notify {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// --- responses to our requests ---

func (e *Engine) receiveResponse(s *ikeSA, b []byte, h wire.Header, local, remote netip.AddrPort) {
	if s.pendingMsg == nil || h.MessageID != s.pendingID {
		e.log.Debug("unexpected response", "msgid", h.MessageID)
		return
	}
	if h.Exchange == wire.ExchangeIKESAInit {
		m, err := wire.Decode(b)
		if err != nil {
			e.stats.InvalidMessages++
			return
		}
		e.stopPending(s)
		res, err := s.HandleInitResponse(b, m)
		if err != nil {
			e.fail(s, err, false)
			return
		}
		if res == ike.InitRetry {
			out, err := s.InitRequest()
			if err != nil {
				e.fail(s, err, false)
				return
			}
			e.sendRequest(s, nil, 0, [][]byte{out})
			return
		}
		if f := e.cfg.Events.Keys; f != nil {
			f(s.SA)
		}
		if s.NAT() {
			// Float to the NAT-T port (RFC 7296 §2.23).
			s.Local = netip.AddrPortFrom(s.Local.Addr(), e.cfg.NATTPort)
			s.Remote = netip.AddrPortFrom(s.Remote.Addr(), 4500)
		}
		ps, err := s.AuthRequest(s.initChild)
		if err != nil {
			e.fail(s, err, false)
			return
		}
		s.nextMsgID = 2
		e.sendProtected(s, wire.ExchangeIKEAuth, 1, false, ps, &ike.Pending{Exchange: wire.ExchangeIKEAuth})
		return
	}
	inner, ok := e.open(s, b, h)
	if !ok {
		return
	}
	s.lastSeen = e.cfg.Clock.Now()
	p := s.pending
	e.stopPending(s)
	if h.Exchange == wire.ExchangeIKEAuth {
		c, childErr, err := s.HandleAuthResponse(inner)
		if err != nil {
			e.fail(s, err, false)
			return
		}
		e.established(s)
		if childErr != nil {
			e.childFailed(s, childErr)
		} else if c != nil {
			e.childUp(s, c)
		}
		e.next(s)
		return
	}
	res, err := s.HandleResponse(p, inner)
	if err != nil {
		e.logSA(s).Warn("exchange failed", "exchange", p.Kind.String(), "err", err)
		if p.Kind == ike.PendingNewChild || p.Kind == ike.PendingRekeyChild {
			e.childFailed(s, err)
		}
		e.next(s)
		return
	}
	e.apply(s, res, true)
	if res.IKEDeleted {
		e.destroy(s, "deleted")
		return
	}
	e.next(s)
}

func (e *Engine) stopPending(s *ikeSA) {
	if s.retransmit != nil {
		s.retransmit.Stop()
	}
	s.pending, s.pendingMsg = nil, nil
}

// open authenticates a protected message and returns its inner payloads, reassembling fragments.
func (e *Engine) open(s *ikeSA, b []byte, h wire.Header) ([]wire.Payload, bool) {
	opened, err := s.Open(b)
	if err != nil {
		e.stats.InvalidMessages++
		e.enc.Debug("dropping message that does not authenticate", "conn", s.name, "err", err)
		return nil, false
	}
	if opened.Fragment == nil {
		if e.enc.Enabled(context.Background(), slog.LevelDebug) {
			e.enc.Debug("parsed", "conn", s.name, "exchange", h.Exchange.String(), "response", h.IsResponse(), "msgid", h.MessageID, "payloads", payloadList(opened.Inner))
		}
		if err := wire.CheckGrammar(opened.Message, opened.Inner); err != nil {
			e.stats.InvalidMessages++
			e.logSA(s).Warn("dropping malformed message", "exchange", h.Exchange.String(), "err", err)
			return nil, false
		}
		return opened.Inner, true
	}
	if s.reasm == nil {
		s.reasm = wire.NewReassembler(64, 64<<10)
	}
	inner, done, err := s.reasm.Add(h.MessageID, *opened.Fragment)
	if err != nil || !done {
		return nil, false
	}
	return inner, true
}

// sendProtected encodes, protects and sends a message; requests are remembered for retransmission.
func (e *Engine) sendProtected(s *ikeSA, ex wire.ExchangeType, id uint32, response bool, ps []wire.Payload, p *ike.Pending) {
	if e.enc.Enabled(context.Background(), slog.LevelDebug) {
		e.enc.Debug("generating", "conn", s.name, "exchange", ex.String(), "response", response, "msgid", id, "payloads", payloadList(ps))
	}
	msgs, err := s.Seal(s.Header(ex, id, response), ps, e.cfg.MaxDatagram)
	if err != nil {
		e.logSA(s).Error("cannot encode message", "exchange", ex.String(), "err", err)
		return
	}
	if response {
		s.lastResp, s.lastRespID, s.hasResp = msgs, id, true
		e.transmit(s, msgs)
		return
	}
	e.sendRequest(s, p, id, msgs)
}

// --- requests from the peer ---

func (e *Engine) receiveRequest(s *ikeSA, b []byte, h wire.Header, local, remote netip.AddrPort) {
	if s.hasResp && h.MessageID == s.lastRespID && h.MessageID+1 == s.expectID {
		// A retransmitted request: replay the cached response, never recompute it.
		e.transmit(s, s.lastResp)
		return
	}
	if h.MessageID != s.expectID {
		e.log.Debug("request with unexpected message ID", "msgid", h.MessageID, "want", s.expectID)
		return
	}
	inner, ok := e.open(s, b, h)
	if !ok {
		return
	}
	s.lastSeen = e.cfg.Clock.Now()
	// The peer may have moved to the NAT-T port or behind a NAT: answer where it came from. A
	// transport that could not tell our address (invalid) keeps the one the SA has.
	if local.Addr().IsValid() {
		s.Local = local
	} else {
		s.Local = netip.AddrPortFrom(s.Local.Addr(), local.Port())
	}
	s.Remote = remote
	s.expectID++
	switch h.Exchange {
	case wire.ExchangeIKEAuth:
		resp, c, childErr, err := s.HandleAuthRequest(inner)
		if err != nil {
			e.sendProtected(s, wire.ExchangeIKEAuth, h.MessageID, true, resp, nil)
			e.fail(s, err, false)
			return
		}
		s.name = s.Config.Name
		delete(e.halfOpen, initKey{s.SPIi, remote})
		for k, v := range e.halfOpen {
			if v == s {
				delete(e.halfOpen, k)
			}
		}
		e.established(s)
		if childErr != nil {
			e.childFailed(s, childErr)
		} else if c != nil {
			if err := e.installChild(s, c); err != nil {
				resp = failChildResponse(resp)
				s.Children = nil
			}
		}
		e.sendProtected(s, wire.ExchangeIKEAuth, h.MessageID, true, resp, nil)
	case wire.ExchangeCreateChildSA, wire.ExchangeInformational:
		resp, res, err := s.HandleRequest(h.Exchange, inner)
		if err != nil {
			e.logSA(s).Warn("refused peer's request", "exchange", h.Exchange.String(), "err", err)
		}
		if res.ChildUp != nil {
			if err := e.installChild(s, res.ChildUp); err != nil {
				resp = []wire.Payload{&wire.Notify{NotifyType: wire.NoProposalChosen}}
				res.ChildUp = nil
			}
		}
		e.sendProtected(s, h.Exchange, h.MessageID, true, resp, nil)
		e.apply(s, res, false)
		if res.IKEDeleted {
			e.destroy(s, "deleted by peer")
			return
		}
		e.next(s)
	default:
		e.sendProtected(s, h.Exchange, h.MessageID, true, []wire.Payload{&wire.Notify{NotifyType: wire.InvalidSyntax}}, nil)
	}
}

func failChildResponse(resp []wire.Payload) []wire.Payload {
	out := []wire.Payload{}
	for _, p := range resp {
		switch p.(type) {
		case *wire.IDr, *wire.AUTH:
			out = append(out, p)
		}
	}
	return append(out, &wire.Notify{NotifyType: wire.TemporaryFailure})
}

// established marks an IKE SA up and arms its timers.
func (e *Engine) established(s *ikeSA) {
	e.stats.HandshakesOK++
	took := e.cfg.Clock.Now().Sub(s.started)
	if f := e.cfg.Events.Handshake; f != nil {
		f(took)
	}
	e.stats.HandshakeSeconds = append(e.stats.HandshakeSeconds, took.Seconds())
	if len(e.stats.HandshakeSeconds) > 10000 {
		e.stats.HandshakeSeconds = e.stats.HandshakeSeconds[len(e.stats.HandshakeSeconds)-10000:]
	}
	e.logSA(s).Info("IKE SA established", "local", s.Local, "remote", s.Remote, "local_id", s.LocalID.String(),
		"remote_id", s.RemoteID.String(), "proposal", s.Proposal.String(), "nat", s.NAT())
	if f := e.cfg.Events.IKEUp; f != nil {
		f(s.SA)
	}
	e.armIKETimers(s)
}

func (e *Engine) armIKETimers(s *ikeSA) {
	if s.NATLocal && e.cfg.Keepalive != nil {
		// Behind a NAT: keep its mapping for port 4500 alive (RFC 3948 §2.3).
		var tick func()
		tick = func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if s.dead || s.replaced {
				return
			}
			e.cfg.Keepalive(s.Local, s.Remote)
			s.timers = append(s.timers, e.cfg.Clock.AfterFunc(e.cfg.KeepaliveInterval, tick))
		}
		s.timers = append(s.timers, e.cfg.Clock.AfterFunc(e.cfg.KeepaliveInterval, tick))
	}
	if d := s.Config.RekeyTime; d > 0 {
		d = jitter(d, e.cfg.Rand)
		s.rekeyAt = e.cfg.Clock.Now().Add(d)
		s.timers = append(s.timers, e.cfg.Clock.AfterFunc(d, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if !s.dead {
				e.enqueue(s, queued{kind: ike.PendingRekeyIKE})
			}
		}))
	}
	if d := s.Config.DPDDelay; d > 0 {
		var tick func()
		tick = func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if s.dead {
				return
			}
			if e.cfg.Clock.Now().Sub(s.lastSeen) >= d {
				e.enqueue(s, queued{kind: ike.PendingLiveness})
			}
			s.timers = append(s.timers, e.cfg.Clock.AfterFunc(d, tick))
		}
		s.timers = append(s.timers, e.cfg.Clock.AfterFunc(d, tick))
	}
}

// jitter shortens d by up to 10% so that both peers do not rekey at the same moment.
func jitter(d time.Duration, r io.Reader) time.Duration {
	var b [2]byte
	io.ReadFull(r, b[:])
	frac := float64(binary.BigEndian.Uint16(b[:])) / 65535 * 0.1
	return d - time.Duration(float64(d)*frac)
}

func (e *Engine) childFailed(s *ikeSA, err error) {
	e.logSA(s).Warn("Child SA failed", "err", err)
	if f := e.cfg.Events.Failed; f != nil {
		f(s.name, err)
	}
}

func (e *Engine) installChild(s *ikeSA, c *ike.ChildSA) error {
	if f := e.cfg.Events.ChildUp; f != nil {
		if err := f(s.SA, c); err != nil {
			e.logSA(s).Error("installing Child SA failed", "child", c.Name, "err", err)
			return err
		}
	}
	e.logSA(s).Info("Child SA established", "child", c.Name, "spi_in", fmt.Sprintf("%08x", c.SPIIn), "spi_out", fmt.Sprintf("%08x", c.SPIOut),
		"proposal", c.Proposal.String(), "mode", c.Mode.String())
	e.armChildTimers(s, c)
	return nil
}

func (e *Engine) childUp(s *ikeSA, c *ike.ChildSA) {
	if err := e.installChild(s, c); err != nil {
		e.enqueue(s, queued{kind: ike.PendingDeleteChild, old: c})
	}
}

// armChildTimers starts a Child SA's rekey and lifetime timers. The callbacks look up the IKE SA
// that carries the Child SA when they fire, because an IKE rekey may have moved it meanwhile.
func (e *Engine) armChildTimers(s *ikeSA, c *ike.ChildSA) {
	cc := c.Config
	if cc == nil {
		return
	}
	if s.childTimers == nil {
		s.childTimers = map[*ike.ChildSA][]Timer{}
	}
	if s.childDeadlines == nil {
		s.childDeadlines = map[*ike.ChildSA][2]time.Time{}
	}
	var deadlines [2]time.Time
	if cc.LifeTime > 0 {
		deadlines[1] = e.cfg.Clock.Now().Add(cc.LifeTime)
	}
	if cc.RekeyTime > 0 {
		d := jitter(cc.RekeyTime, e.cfg.Rand)
		deadlines[0] = e.cfg.Clock.Now().Add(d)
		s.childTimers[c] = append(s.childTimers[c], e.cfg.Clock.AfterFunc(d, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if owner := e.carrierOf(c); owner != nil {
				e.enqueue(owner, queued{kind: ike.PendingRekeyChild, child: cc, old: c})
			}
		}))
	}
	if cc.LifeTime > 0 {
		s.childTimers[c] = append(s.childTimers[c], e.cfg.Clock.AfterFunc(cc.LifeTime, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if owner := e.carrierOf(c); owner != nil {
				e.logSA(owner).Info("Child SA reached its hard lifetime", "child", c.Name)
				e.enqueue(owner, queued{kind: ike.PendingDeleteChild, old: c})
			}
		}))
	}
	s.childDeadlines[c] = deadlines
}

// carrierOf returns the live IKE SA that carries the Child SA, or nil when it is gone.
func (e *Engine) carrierOf(c *ike.ChildSA) *ikeSA {
	for _, s := range e.sas {
		if !s.dead && s.ChildBySPI(c.SPIIn, true) == c {
			return s
		}
	}
	return nil
}

// stopChildTimers stops the timers of a Child SA that is gone.
func (e *Engine) stopChildTimers(s *ikeSA, c *ike.ChildSA) {
	for _, t := range s.childTimers[c] {
		t.Stop()
	}
	delete(s.childTimers, c)
	delete(s.childDeadlines, c)
}

// apply carries out the result of an exchange.
func (e *Engine) apply(s *ikeSA, res ike.Result, weInitiated bool) {
	if res.ChildUp != nil && weInitiated {
		e.childUp(s, res.ChildUp)
	}
	if res.Replaced != nil {
		e.stats.Rekeys++
		if weInitiated {
			if peerNew, collided := s.peerRekeys[res.Replaced]; collided && res.ChildUp != nil {
				// Both sides rekeyed the same Child SA. The Child SA created by the exchange with
				// the lowest of the four nonces is redundant and its creator deletes it; the
				// creator of the surviving one deletes the replaced SA (RFC 7296 §2.8.1).
				delete(s.peerRekeys, res.Replaced)
				if bytes.Compare(minNonce(res.ChildUp), minNonce(peerNew)) < 0 {
					e.logSA(s).Info("rekey collision: deleting our redundant Child SA", "child", res.ChildUp.Name, "spi_in", fmt.Sprintf("%08x", res.ChildUp.SPIIn))
					e.enqueue(s, queued{kind: ike.PendingDeleteChild, old: res.ChildUp})
				} else {
					e.enqueue(s, queued{kind: ike.PendingDeleteChild, old: res.Replaced})
				}
			} else {
				// The initiator of a rekey deletes the old Child SA (RFC 7296 §2.8).
				e.enqueue(s, queued{kind: ike.PendingDeleteChild, old: res.Replaced})
			}
		} else if p := s.pending; p != nil && p.Kind == ike.PendingRekeyChild && p.Child == res.Replaced && res.ChildUp != nil {
			if s.peerRekeys == nil {
				s.peerRekeys = map[*ike.ChildSA]*ike.ChildSA{}
			}
			s.peerRekeys[res.Replaced] = res.ChildUp
		}
	}
	for _, c := range res.ChildDown {
		if f := e.cfg.Events.ChildDown; f != nil {
			f(s.SA, c, "deleted")
		}
		e.logSA(s).Info("Child SA deleted", "child", c.Name, "spi_in", fmt.Sprintf("%08x", c.SPIIn))
		e.stopChildTimers(s, c)
		c.Zero()
	}
	if res.NewIKE != nil {
		e.stats.Rekeys++
		next := &ikeSA{SA: res.NewIKE, name: s.name, started: e.cfg.Clock.Now(), lastSeen: e.cfg.Clock.Now()}
		if !weInitiated {
			next.expectID = 0
		}
		e.sas[next.MySPI()] = next
		if f := e.cfg.Events.Keys; f != nil {
			f(next.SA)
		}
		if f := e.cfg.Events.IKERekeyed; f != nil {
			f(s.SA, next.SA)
		}
		e.logSA(next).Info("IKE SA rekeyed", "old_spi_i", fmt.Sprintf("%016x", s.SPIi), "old_spi_r", fmt.Sprintf("%016x", s.SPIr))
		e.armIKETimers(next)
		// The Child SAs keep their own deadlines: restarting their timers here would postpone
		// their rekeys with every IKE rekey (forever when the IKE SA rekeys more often).
		next.childTimers, s.childTimers = s.childTimers, nil
		next.childDeadlines, s.childDeadlines = s.childDeadlines, nil
		// Pending work moves to the new SA.
		next.queue, s.queue = s.queue, nil
		s.replaced = true
		switch peerNext := s.peerIKERekey; {
		case !weInitiated:
			if p := s.pending; p != nil && p.Kind == ike.PendingRekeyIKE {
				// The peer rekeys this IKE SA while our own rekey of it is outstanding.
				s.peerIKERekey = next
			}
		case peerNext != nil && !peerNext.dead:
			// Both sides rekeyed the IKE SA at once (RFC 7296 §2.8.2): the new IKE SA made by the
			// exchange with the lowest of the four nonces is redundant and its creator deletes it;
			// the creator of the survivor deletes the old one. The Child SAs live on the survivor.
			s.peerIKERekey = nil
			if bytes.Compare(lower(next.Ni, next.Nr), lower(peerNext.Ni, peerNext.Nr)) < 0 {
				e.logSA(next).Info("IKE rekey collision: deleting our redundant IKE SA")
				next.replaced = true
				next.queue = append(next.queue, queued{kind: ike.PendingDeleteIKE})
				e.next(next)
			} else {
				next.Children, peerNext.Children = peerNext.Children, nil
				next.childTimers, peerNext.childTimers = peerNext.childTimers, nil
				next.childDeadlines, peerNext.childDeadlines = peerNext.childDeadlines, nil
				peerNext.replaced = true
				e.enqueue(s, queued{kind: ike.PendingDeleteIKE})
			}
		default:
			e.enqueue(s, queued{kind: ike.PendingDeleteIKE})
		}
	}
}

// lower returns the lower of two nonces.
func lower(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

// enqueue adds an exchange and starts it when the window is free.
func (e *Engine) enqueue(s *ikeSA, q queued) {
	s.queue = append(s.queue, q)
	e.next(s)
}

// next starts the first queued exchange if no request is outstanding.
func (e *Engine) next(s *ikeSA) {
	for !s.dead && s.pendingMsg == nil && len(s.queue) > 0 && s.State == ike.StateEstablished {
		q := s.queue[0]
		s.queue = s.queue[1:]
		var p *ike.Pending
		var ps []wire.Payload
		var err error
		switch q.kind {
		case ike.PendingNewChild:
			p, ps, err = s.CreateChildRequest(q.child, nil)
		case ike.PendingRekeyChild:
			if s.ChildBySPI(q.old.SPIIn, true) != q.old {
				continue
			}
			p, ps, err = s.CreateChildRequest(q.child, q.old)
		case ike.PendingRekeyIKE:
			p, ps, err = s.RekeyIKERequest()
		case ike.PendingDeleteChild:
			if s.ChildBySPI(q.old.SPIIn, true) != q.old {
				continue
			}
			p, ps = s.DeleteChildRequest(q.old)
		case ike.PendingDeleteIKE:
			p, ps = s.DeleteIKERequest()
		case ike.PendingLiveness:
			p, ps = s.LivenessRequest()
		}
		if err != nil {
			e.logSA(s).Warn("cannot start exchange", "exchange", q.kind.String(), "err", err)
			continue
		}
		id := s.nextMsgID
		s.nextMsgID++
		e.sendProtected(s, p.Exchange, id, false, ps, p)
	}
	// A deleted IKE SA whose Delete was answered is gone.
	if s.State == ike.StateDeleting && s.pendingMsg == nil && !s.dead {
		e.destroy(s, "deleted")
	}
}

// after an answered Delete of the IKE SA, HandleResponse returns IKEDeleted; destroy handles it.

// SAInfo is a snapshot of an IKE SA for status listings, safe to read after the engine moves on.
type SAInfo struct {
	Name          string
	SPIi, SPIr    uint64
	Initiator     bool
	State         ike.State
	Local, Remote netip.AddrPort
	LocalID       string
	RemoteID      string
	Proposal      string
	Transforms    proposal.Proposal
	NAT           bool
	// NATLocal: a NAT is in front of us; NATRemote: in front of the peer.
	NATLocal, NATRemote bool
	Established         time.Time
	// RekeyAt is when the IKE SA will be rekeyed (zero: never); LastReceived is when the last
	// authenticated message from the peer arrived.
	RekeyAt, LastReceived time.Time
	Children              []ChildInfo
	Queued                int // exchanges waiting to be started
}

// ChildInfo is a snapshot of a Child SA.
type ChildInfo struct {
	Name              string
	SPIIn, SPIOut     uint32
	Mode              ike.Mode
	Proposal          string
	Transforms        proposal.Proposal
	ESN               bool
	LocalTS, RemoteTS []ts.Selector
	Created           time.Time
	RekeyTime         time.Duration // from the configuration; 0: no rekeying
	// RekeyAt and ExpireAt are when the Child SA is rekeyed and when it reaches its hard lifetime
	// (zero: never).
	RekeyAt, ExpireAt time.Time
}

// SAs lists the IKE SAs, sorted by name.
func (e *Engine) SAs() []SAInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []SAInfo
	for _, s := range e.sas {
		if s.dead {
			continue
		}
		info := SAInfo{Name: s.name, SPIi: s.SPIi, SPIr: s.SPIr, Initiator: s.Initiator, State: s.State,
			Local: s.Local, Remote: s.Remote, Proposal: s.Proposal.String(), Transforms: s.Proposal, NAT: s.NAT(),
			NATLocal: s.NATLocal, NATRemote: s.NATRemote,
			Established: s.Established, RekeyAt: s.rekeyAt, LastReceived: s.lastSeen, Queued: len(s.queue)}
		if s.State == ike.StateEstablished || s.State == ike.StateDeleting {
			info.LocalID, info.RemoteID = s.LocalID.String(), s.RemoteID.String()
		}
		for _, c := range s.Children {
			ci := ChildInfo{Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Mode: c.Mode, Proposal: c.Proposal.String(), Transforms: c.Proposal, ESN: c.ESN,
				LocalTS: append([]ts.Selector(nil), c.LocalTS...), RemoteTS: append([]ts.Selector(nil), c.RemoteTS...), Created: c.Created}
			if c.Config != nil {
				ci.RekeyTime = c.Config.RekeyTime
			}
			dl := s.childDeadlines[c]
			ci.RekeyAt, ci.ExpireAt = dl[0], dl[1]
			info.Children = append(info.Children, ci)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].SPIi < out[j].SPIi
	})
	return out
}

// Stats returns a copy of the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.HandshakeSeconds = append([]float64(nil), e.stats.HandshakeSeconds...)
	return st
}

// Terminate deletes every IKE SA of the named connection (sending Delete), or all when name is "".
func (e *Engine) Terminate(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.sas {
		if s.dead || (name != "" && s.name != name) {
			continue
		}
		n++
		if s.State != ike.StateEstablished {
			e.destroy(s, "terminated")
			continue
		}
		// Drop queued work; the Delete goes out next.
		s.queue = []queued{{kind: ike.PendingDeleteIKE}}
		e.next(s)
	}
	return n
}

// CreateChild negotiates an additional Child SA on an established IKE SA of the connection.
func (e *Engine) CreateChild(conn string, child *ike.ChildConfig) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sas {
		if !s.dead && s.name == conn && s.State == ike.StateEstablished {
			e.enqueue(s, queued{kind: ike.PendingNewChild, child: child})
			return true
		}
	}
	return false
}

// RekeyChild rekeys the Child SA with the given inbound SPI; RekeyIKE rekeys an IKE SA. They exist
// for the control interface and tests.
func (e *Engine) RekeyChild(spiIn uint32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sas {
		if c := s.ChildBySPI(spiIn, true); c != nil && !s.dead {
			e.enqueue(s, queued{kind: ike.PendingRekeyChild, child: c.Config, old: c})
			return true
		}
	}
	return false
}

// DeleteChild deletes the Child SA with the given inbound SPI (sending Delete); its IKE SA stays.
func (e *Engine) DeleteChild(spiIn uint32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sas {
		if c := s.ChildBySPI(spiIn, true); c != nil && !s.dead {
			e.enqueue(s, queued{kind: ike.PendingDeleteChild, old: c})
			return true
		}
	}
	return false
}

func (e *Engine) RekeyIKE(conn string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sas {
		if !s.dead && s.name == conn && s.State == ike.StateEstablished {
			e.enqueue(s, queued{kind: ike.PendingRekeyIKE})
			return true
		}
	}
	return false
}

// Close terminates every IKE SA (sending Deletes without waiting) and stops the engine.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sas {
		if s.dead {
			continue
		}
		if s.State == ike.StateEstablished {
			p, ps := s.DeleteIKERequest()
			id := s.nextMsgID
			s.nextMsgID++
			if msgs, err := s.Seal(s.Header(p.Exchange, id, false), ps, e.cfg.MaxDatagram); err == nil {
				e.transmit(s, msgs)
			}
		}
		e.destroy(s, "shutdown")
	}
	e.closed = true
}

// minNonce is the lower of the two nonces of the exchange that created c.
func minNonce(c *ike.ChildSA) []byte { return lower(c.Ni, c.Nr) }

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
