// Package engine drives IKEv2: it moves messages between the network and the IKE SAs of package
// ike, and owns message IDs, retransmission of cached requests, the responder's cache of its last
// response, IKEv2 fragments, cookies, NAT-T port floating, NAT mapping changes and the timers for
// rekeying, dead peer detection and lifetimes. The protocol — each exchange kind, its collision
// rules, the state tables — lives in package ike.
//
// Concurrency: each IKE SA has one owner at a time (see entry.go); messages of different SAs are
// processed in parallel on all cores, and what an SA's processing wants done outside it is applied
// in order, after the SA is released, through Events. Nothing blocking runs while an SA is held.
package engine

import (
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
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
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

// Events report what the engine did; every field may be nil. They run on the engine's applier
// goroutines, in order for each IKE SA, while no SA is held: they may block briefly and may call
// the Engine.
type Events struct {
	IKEUp      func(ike.IKEUp)
	IKEDown    func(ike.IKEDown)
	IKERekeyed func(ike.IKERekeyed)
	// ChildUp installs a Child SA. An error makes the engine delete the Child SA again.
	ChildUp       func(*ike.ChildInstall) error
	ChildActivate func(ike.ChildActivate)
	ChildDown     func(ike.ChildDown)
	ChildMoved    func(ike.ChildMoved)
	// Failed reports a negotiation failure (or, with Retry, a normal retry) in one line.
	Failed func(ike.Failed)
	// Keys reports an IKE SA's keys (only with Config.KeyLog).
	Keys func(ike.KeysDerived)
	// Handshake reports how long an IKE SA took from its first message to being established.
	Handshake func(took time.Duration)
	// VirtualIPs reports the addresses a client received (before its Child SAs are installed).
	VirtualIPs func(ike.VirtualIPs)
	// Redirected reports that a gateway sent a client elsewhere (RFC 5685).
	Redirected func(ike.Redirected)
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
	// Nonce, when set, supplies the nonces (tests script them to decide rekey collisions).
	Nonce  func(n int) ([]byte, error)
	Events Events
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
	// cookie (RFC 7296 §2.6); 0 means the default (1000), negative means always.
	CookieThreshold int
	// HalfOpenTimeout drops responder SAs that never complete IKE_AUTH. The default is the
	// initiator's whole retransmission schedule (as this engine's settings give it) plus a margin,
	// so that a retransmitted IKE_AUTH is always answered.
	HalfOpenTimeout time.Duration
	// Keepalive sends a NAT-keepalive (RFC 3948 §2.3) from local to remote; KeepaliveInterval
	// (default 20s) is how often an SA behind a NAT sends one. Nil disables keepalives.
	Keepalive         func(local, remote netip.AddrPort)
	KeepaliveInterval time.Duration
	// Workers process IKE SAs (default GOMAXPROCS); Appliers apply effects (default
	// 2*GOMAXPROCS+2, since the data plane may block on netlink). Manual starts no goroutines:
	// the owner of the Engine calls Poll (tests in virtual time).
	Workers, Appliers int
	Manual            bool
	// HoldAsync (manual mode only) keeps SAs' blocking work (ike.Async) until RunHeldAsync: tests
	// see a RADIUS round trip that takes a while.
	HoldAsync bool
	// KeyLog reports IKE keys through Events.Keys (debugging only).
	KeyLog bool
	// InvalidSPIRate bounds INVALID_IKE_SPI answers to requests for unknown SAs per second
	// (default 50; negative: never answer).
	InvalidSPIRate int
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
		c.CookieThreshold = 1000
	}
	if c.HalfOpenTimeout == 0 {
		c.HalfOpenTimeout = RetransmitBudget(c.RetransmitTimeout, c.RetransmitBase, c.RetransmitTries, c.RetransmitLimit) + 10*time.Second
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 20 * time.Second
	}
	if c.Configs == nil {
		c.Configs = func(netip.Addr, netip.Addr) []*ike.PeerConfig { return nil }
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Appliers <= 0 {
		c.Appliers = 2*runtime.GOMAXPROCS(0) + 2
	}
	if c.InvalidSPIRate == 0 {
		c.InvalidSPIRate = 50
	}
}

// RetransmitBudget is how long an initiator retransmits one request before giving up: the sum of
// every wait of its schedule.
func RetransmitBudget(timeout time.Duration, base float64, tries int, limit time.Duration) time.Duration {
	var total time.Duration
	for n := 0; n <= tries; n++ {
		total += retransmitDelay(timeout, base, n, limit)
	}
	return total
}

func retransmitDelay(timeout time.Duration, base float64, n int, limit time.Duration) time.Duration {
	d := float64(timeout) * math.Pow(base, float64(n))
	if limit > 0 && d > float64(limit) {
		d = float64(limit)
	}
	return time.Duration(d)
}

// Engine runs IKE SAs.
type Engine struct {
	cfg  Config
	deps *ike.Deps
	log  *slog.Logger
	net  *slog.Logger
	enc  *slog.Logger

	table    saTable
	halfOpen sync.Map // initKey → *entry, responder SAs until IKE_AUTH
	nHalf    atomic.Int64
	idx      indexes
	sched    *scheduler
	ep       epoch // the instants of the IKE SAs' deadlines count from it
	runq     *fifo
	applyq   *fifo
	// stateless queues the effects that belong to no SA (refused IKE_SA_INIT requests).
	stateless *entry
	cookie    [32]byte // secret for stateless cookies
	invalid   rateLimit

	stop    chan struct{}
	workers sync.WaitGroup
	asyncs  sync.WaitGroup // blocking work of SAs (ike.Async)
	heldMu  sync.Mutex
	held    []func() // HoldAsync: blocking work waiting for RunHeldAsync
	closed  atomic.Bool

	stats counters
}

type initKey struct {
	spii   uint64
	remote netip.AddrPort
}

// New returns an engine with its worker goroutines running (none with Config.Manual).
func New(cfg Config) *Engine {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, log: cfg.Logger, net: cfg.NetLogger, enc: cfg.EncLogger,
		runq: newFIFO(), applyq: newFIFO(), stateless: &entry{}, stop: make(chan struct{})}
	e.table.init()
	e.idx.init()
	io.ReadFull(cfg.Rand, e.cookie[:])
	e.invalid = rateLimit{perSecond: cfg.InvalidSPIRate}
	e.deps = ike.Deps{Rand: cfg.Rand, Now: cfg.Clock.Now, AllocSPI: cfg.AllocSPI, Nonce: cfg.Nonce, KeyLog: cfg.KeyLog,
		Unique: e.uniqueness, Illegal: func(err error) { e.log.Error("refused an illegal state change (a bug)", "err", err) }}.WithDefaults()
	e.ep = newEpoch(cfg.Clock.Now())
	e.sched = &scheduler{clock: cfg.Clock, ep: e.ep, fire: func(en *entry) { e.post(en, work{kind: workTimer}) }}
	if !cfg.Manual {
		for range cfg.Workers {
			e.workers.Add(1)
			go e.runq.loop(e.stop, e.drain, &e.workers)
		}
		for range cfg.Appliers {
			e.workers.Add(1)
			go e.applyq.loop(e.stop, e.applyAll, &e.workers)
		}
	}
	return e
}

// Poll runs every queued piece of work and effect on the calling goroutine until nothing is left;
// only for engines made with Config.Manual (tests in virtual time).
func (e *Engine) Poll() {
	for {
		did := false
		for en := e.runq.tryPop(); en != nil; en = e.runq.tryPop() {
			e.drain(en)
			did = true
		}
		for en := e.applyq.tryPop(); en != nil; en = e.applyq.tryPop() {
			e.applyAll(en)
			did = true
		}
		if !did {
			return
		}
	}
}

// Idle reports whether no work and no effects wait (for tests with real goroutines).
func (e *Engine) Idle() bool {
	return e.runq.len() == 0 && e.applyq.len() == 0
}

func (e *Engine) logSA(s *ikeSA) saLogger {
	return saLogger{l: e.log, s: s}
}

// saLogger logs with the IKE SA's connection and SPIs in front of the other attributes. It
// formats them only for a record that is logged (a disabled Debug costs nothing), and without
// the logger copy slog.Logger.With makes: a handshake logs several lines.
type saLogger struct {
	l *slog.Logger
	s *ikeSA
}

func (x saLogger) Debug(msg string, args ...any) { x.log(slog.LevelDebug, msg, args) }
func (x saLogger) Info(msg string, args ...any)  { x.log(slog.LevelInfo, msg, args) }
func (x saLogger) Warn(msg string, args ...any)  { x.log(slog.LevelWarn, msg, args) }
func (x saLogger) Error(msg string, args ...any) { x.log(slog.LevelError, msg, args) }

func (x saLogger) log(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !x.l.Enabled(ctx, level) {
		return
	}
	all := make([]any, 0, 6+len(args))
	all = append(all, "conn", x.s.connName(), "spi_i", hex16(x.s.SPIi), "spi_r", hex16(x.s.SPIr))
	x.l.Log(ctx, level, msg, append(all, args...)...)
}

func (s *ikeSA) connName() string {
	if s.Config == nil {
		return ""
	}
	return s.Config.Name
}

// newEntry wraps an SA in an entry with its driver state. The two live and die together (an
// entry's s is set once), so they are one allocation: one object less per held IKE SA for the
// garbage collector to mark at every cycle (docs/performance.md, "IKE with tunnels held").
func (e *Engine) newEntry(sa *ike.SA) (*entry, *ikeSA) {
	both := &struct {
		en entry
		s  ikeSA
	}{}
	en, s := &both.en, &both.s
	now := e.now()
	en.spi = sa.MySPI()
	*s = ikeSA{SA: sa, en: en, started: now, lastSeen: now}
	en.s = s
	return en, s
}

// Initiate starts an IKE SA for cfg towards remote; the first of children is negotiated in
// IKE_AUTH, the others with CREATE_CHILD_SA.
func (e *Engine) Initiate(cfg *ike.PeerConfig, children []*ike.ChildConfig, local, remote netip.AddrPort) error {
	if e.closed.Load() {
		return errors.New("the IKE engine is shutting down")
	}
	sa, err := ike.NewInitiator(cfg, children, local, remote, e.deps)
	if err != nil {
		return err
	}
	sa.TCP, sa.TCPOriginator = cfg.ForceTCP, cfg.ForceTCP
	en, s := e.newEntry(sa)
	if !e.table.add(en) {
		return errors.New("IKE SPI collision, try again")
	}
	e.idx.addConn(s, cfg.Name)
	e.logSA(s).Info("initiating IKE_SA_INIT", "local", local, "remote", remote)
	e.post(en, work{kind: workFunc, fn: func(*ikeSA) {}})
	return nil
}

// Receive handles one IKE message (without non-ESP marker) that arrived from remote at local. It
// decodes only the header here; the IKE SA's owner does the rest. A new IKE SA's key exchange runs
// on the calling goroutine, so callers on several goroutines use several cores.
func (e *Engine) Receive(b []byte, local, remote netip.AddrPort) { e.receive(b, local, remote, false) }

// receive handles a message that came in UDP or, with tcp, in a TCP connection (RFC 9329).
func (e *Engine) receive(b []byte, local, remote netip.AddrPort, tcp bool) {
	if e.closed.Load() {
		e.stats.drop(DropClosed)
		return
	}
	if debugEnabled(e.net) {
		e.net.Debug("received packet", "from", remote, "to", local, "bytes", len(b))
	}
	h, err := wire.DecodeHeader(b)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.enc.Debug("dropping invalid IKE message", "from", remote, "err", err)
		return
	}
	if h.Exchange == wire.ExchangeIKESAInit && !h.IsResponse() && h.SPIr == 0 {
		e.receiveInitRequest(b, h, local, remote, tcp)
		return
	}
	mySPI := h.SPIi
	if h.IsInitiator() {
		mySPI = h.SPIr
	}
	en := e.table.get(mySPI)
	if en == nil && h.Exchange == wire.ExchangeIKESAInit && h.IsResponse() {
		// IKE_SA_INIT responses name our SPI as SPIi (the responder's SPIr is new to us).
		en = e.table.get(h.SPIi)
	}
	if en == nil {
		e.stats.drop(DropUnknownSPI)
		e.log.Debug("IKE message for unknown SA", "from", remote, "spi_i", fmt.Sprintf("%016x", h.SPIi), "spi_r", fmt.Sprintf("%016x", h.SPIr), "exchange", h.Exchange.String())
		e.answerInvalidSPI(b, h, local, remote, tcp)
		return
	}
	if !e.post(en, work{kind: workDatagram, b: append([]byte(nil), b...), h: h, local: local, remote: remote, tcp: tcp}) {
		e.stats.drop(DropOverload)
	}
}

// answerInvalidSPI tells a peer that sent a request for an IKE SA we do not know (we restarted,
// most likely) with an unprotected INVALID_IKE_SPI response (RFC 7296 §2.21.4), rate-limited.
func (e *Engine) answerInvalidSPI(b []byte, h wire.Header, local, remote netip.AddrPort, tcp bool) {
	if h.IsResponse() || h.Exchange == wire.ExchangeIKESAInit || h.SPIi == 0 || !local.Addr().IsValid() {
		return
	}
	if !e.invalid.allow(e.cfg.Clock.Now()) {
		return
	}
	// Same SPIs and message ID; the response flag set; the initiator flag says whether we are
	// the original initiator, which we are when the request's sender is not.
	rh := wire.Header{SPIi: h.SPIi, SPIr: h.SPIr, Exchange: h.Exchange, MessageID: h.MessageID, Flags: wire.FlagResponse}
	if !h.IsInitiator() {
		rh.Flags |= wire.FlagInitiator
	}
	m := &wire.Message{Header: rh, Payloads: []wire.Payload{&wire.Notify{NotifyType: wire.InvalidIKESPI}}}
	out, err := m.Encode()
	if err != nil {
		return
	}
	e.queueEffects(e.stateless, []effect{sendEffect{local: local, remote: remote, msgs: [][]byte{out}, tcp: tcp}})
}

// --- responder side of IKE_SA_INIT ---

func (e *Engine) receiveInitRequest(b []byte, h wire.Header, local, remote netip.AddrPort, tcp bool) {
	switch {
	case h.SPIi == 0:
		// RFC 7296 §3.1: the initiator's SPI MUST NOT be zero.
		e.stats.drop(DropZeroSPI)
		return
	case h.MessageID != 0:
		// RFC 7296 §2.2: IKE_SA_INIT is message 0.
		e.stats.drop(DropMessageID)
		return
	case !local.Addr().IsValid():
		// Without our address we could not answer from it, and the NAT detection hash would be
		// wrong.
		e.stats.drop(DropNoLocalAddr)
		return
	}
	key := initKey{h.SPIi, remote}
	if v, ok := e.halfOpen.Load(key); ok {
		// A retransmitted IKE_SA_INIT: its owner answers from the cache.
		en := v.(*entry)
		e.post(en, work{kind: workFunc, fn: func(s *ikeSA) {
			if s.hasResp && s.expectID == 1 {
				e.resend(s)
			}
		}})
		return
	}
	m, err := wire.Decode(b)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.enc.Debug("dropping invalid IKE_SA_INIT", "from", remote, "err", err)
		return
	}
	if err := wire.CheckGrammar(m, nil); err != nil {
		// Duplicate or missing SA, KE or Nonce: RFC 7296 §1.2 and §2.21 — INVALID_SYNTAX.
		e.stats.drop(DropGrammar)
		e.enc.Info("IKE_SA_INIT request refused: INVALID_SYNTAX", "from", remote, "err", err)
		e.refuseInit(h, local, remote, wire.InvalidSyntax, nil, tcp)
		return
	}
	if e.needCookie() {
		want := e.cookieFor(m, remote)
		got := firstNotify(m.Payloads, wire.Cookie)
		if got == nil || !hmac.Equal(got.Data, want) {
			e.stats.cookiesSent.Add(1)
			e.refuseInit(h, local, remote, wire.Cookie, want, tcp)
			return
		}
	}
	candidates := e.cfg.Configs(local.Addr(), remote.Addr())
	sa, resp, err := ike.RespondInit(m, b, local, remote, candidates, e.deps)
	if err != nil || sa == nil {
		name := "(unknown)"
		if len(candidates) > 0 {
			name = candidates[0].Name
		}
		var out []effect
		if resp != nil {
			out = append(out, sendEffect{local: local, remote: remote, msgs: [][]byte{resp}, tcp: tcp})
		}
		if err != nil {
			retry := ike.IsStep(err)
			if !retry {
				e.stats.handshakesFailed.Add(1)
			}
			out = append(out, ike.Failed{Conn: name, Err: err, Retry: retry})
		}
		e.queueEffects(e.stateless, out)
		return
	}
	sa.TCP = tcp
	en, s := e.newEntry(sa)
	s.expectID = 1
	s.lastResp, s.hasResp, s.respTo = [][]byte{resp}, true, remote
	s.halfOpenUntil = e.now().Add(e.cfg.HalfOpenTimeout)
	if _, loaded := e.halfOpen.LoadOrStore(key, en); loaded {
		// A copy of the request was answered meanwhile: keep that answer.
		sa.Zero()
		return
	}
	if !e.table.add(en) {
		e.halfOpen.Delete(key)
		sa.Zero()
		return
	}
	e.nHalf.Add(1)
	s.halfOpenKey = &key
	en.mu.Lock()
	s.out = append(s.out, e.takeEffects(s)...)
	s.out = append(s.out, sendEffect{local: local, remote: remote, msgs: s.lastResp, tcp: tcp})
	if infoEnabled(e.log) {
		e.logSA(s).Info("IKE_SA_INIT answered", "from", remote, "proposal", sa.Proposal.String(), "nat", sa.NAT())
	}
	out := e.finish(s)
	en.mu.Unlock()
	e.queueEffects(en, out)
}

// refuseInit answers an IKE_SA_INIT request with one Notify, keeping no state.
func (e *Engine) refuseInit(h wire.Header, local, remote netip.AddrPort, n wire.NotifyType, data []byte, tcp bool) {
	resp := &wire.Message{Header: wire.Header{SPIi: h.SPIi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse},
		Payloads: []wire.Payload{&wire.Notify{NotifyType: n, Data: data}}}
	if out, err := resp.Encode(); err == nil {
		e.queueEffects(e.stateless, []effect{sendEffect{local: local, remote: remote, msgs: [][]byte{out}, tcp: tcp}})
	}
}

func (e *Engine) needCookie() bool {
	if e.cfg.CookieThreshold < 0 {
		return true
	}
	return e.nHalf.Load() >= int64(e.cfg.CookieThreshold)
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

// --- commands ---

// command runs fn as the owner of the live IKE SAs of the connection (all when conn is "") that
// pick accepts, at most limit of them (0: all), and returns how many it ran on.
func (e *Engine) command(conn string, limit int, pick func(*ikeSA) bool, fn func(*ikeSA)) int {
	n := 0
	for _, en := range e.idx.conn(conn) {
		en.mu.Lock()
		ok := en.s != nil && en.s.State() != ike.StateDead && pick(en.s)
		en.mu.Unlock()
		if ok && e.post(en, work{kind: workFunc, fn: fn}) {
			if n++; n == limit {
				break
			}
		}
	}
	return n
}

// Terminate deletes every IKE SA of the named connection (sending Delete), or all when name is "".
func (e *Engine) Terminate(name string) int {
	return e.command(name, 0, func(*ikeSA) bool { return true }, func(s *ikeSA) {
		if !s.State().Authenticated() {
			e.logSA(s).Info("terminating IKE SA that is not up yet")
			s.Kill(ike.ReasonDeleted)
			return
		}
		s.QueueDeleteIKE(ike.ReasonDeleted)
	})
}

// TerminateSA deletes one IKE SA (sending Delete), found by its SPIs; it reports whether it exists
// (RADIUS Disconnect-Request, redirects).
func (e *Engine) TerminateSA(spii, spir uint64) bool {
	for _, spi := range []uint64{spii, spir} {
		en := e.table.get(spi)
		if en == nil {
			continue
		}
		en.mu.Lock()
		ok := en.s != nil && en.s.SPIi == spii && en.s.SPIr == spir && en.s.State() != ike.StateDead
		en.mu.Unlock()
		if ok {
			return e.post(en, work{kind: workFunc, fn: func(s *ikeSA) {
				if !s.State().Authenticated() {
					s.Kill(ike.ReasonDeleted)
					return
				}
				s.QueueDeleteIKE(ike.ReasonDeleted)
			}})
		}
	}
	return false
}

// Roam moves IKE SAs to new local addresses (MOBIKE, RFC 4555): pick gets each MOBIKE
// initiator's current local and remote address and returns the local address to use (invalid or
// the same: stay). It returns how many IKE SAs it asked to move.
func (e *Engine) Roam(pick func(local, remote netip.AddrPort) netip.Addr) int {
	type cand struct {
		en            *entry
		local, remote netip.AddrPort
	}
	var list []cand
	for _, en := range e.table.all() {
		en.mu.Lock()
		if s := en.s; s != nil && s.MOBIKE() && s.Initiator && s.State().Up() {
			list = append(list, cand{en, s.Local, s.Remote})
		}
		en.mu.Unlock()
	}
	n := 0
	for _, c := range list {
		to := pick(c.local, c.remote) // may ask the kernel for a route: outside every SA
		if !to.IsValid() || to == c.local.Addr() {
			continue
		}
		if e.post(c.en, work{kind: workFunc, fn: func(s *ikeSA) {
			if s.Roam(to) {
				e.logSA(s).Info("our address changed: moving the IKE SA (MOBIKE)", "from", c.local, "to", s.Local)
			}
		}}) {
			n++
		}
	}
	return n
}

// Redirect sends the clients of the established IKE SAs pick selects to another gateway (RFC 5685
// §5); it returns how many it asked.
func (e *Engine) Redirect(pick func(SAInfo) bool, gw string) int {
	n := 0
	for _, en := range e.table.all() {
		en.mu.Lock()
		ok := en.s != nil && en.s.State().Up() && !en.s.Initiator && pick(en.s.info(e.ep))
		en.mu.Unlock()
		if ok && e.post(en, work{kind: workFunc, fn: func(s *ikeSA) {
			if s.QueueRedirect(gw) {
				e.logSA(s).Info("redirecting the client", "to", gw)
			}
		}}) {
			n++
		}
	}
	return n
}

// CreateChild negotiates an additional Child SA on an established IKE SA of the connection; it
// reports whether one was found.
func (e *Engine) CreateChild(conn string, child *ike.ChildConfig) bool {
	// One IKE SA takes it (a responder's connection may have many); one still connecting
	// negotiates it after IKE_AUTH.
	return e.command(conn, 1, func(s *ikeSA) bool { return s.State().Up() || s.State() < ike.StateEstablished },
		func(s *ikeSA) { s.QueueCreateChild(child) }) > 0
}

// Connecting reports whether the connection has an IKE SA that is up or on its way up.
func (e *Engine) Connecting(conn string) bool {
	for _, en := range e.idx.conn(conn) {
		en.mu.Lock()
		ok := en.s != nil && (en.s.State() < ike.StateRekeyed)
		en.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// RekeyChild rekeys the Child SA with the given inbound SPI; DeleteChild deletes it (sending
// Delete); RekeyIKE rekeys the connection's IKE SAs.
func (e *Engine) RekeyChild(spiIn uint32) bool {
	return e.onChild(spiIn, func(s *ikeSA) { s.QueueRekeyChild(spiIn) })
}

func (e *Engine) DeleteChild(spiIn uint32) bool {
	return e.onChild(spiIn, func(s *ikeSA) { s.QueueDeleteChild(spiIn, ike.ReasonLifetime) })
}

// DeleteChildAs deletes a Child SA giving the reason (install failures, hard limits).
func (e *Engine) DeleteChildAs(spiIn uint32, reason ike.Reason) bool {
	return e.onChild(spiIn, func(s *ikeSA) { s.QueueDeleteChild(spiIn, reason) })
}

// InboundActive passes on the data plane's news that the peer sends on the Child SA with inbound
// SPI spiIn (make-before-break rekeys). It returns at once.
func (e *Engine) InboundActive(spiIn uint32) {
	e.onChild(spiIn, func(s *ikeSA) { s.SA.InboundActive(spiIn) })
}

func (e *Engine) onChild(spiIn uint32, fn func(*ikeSA)) bool {
	en := e.idx.child(spiIn)
	if en == nil {
		return false
	}
	return e.post(en, work{kind: workFunc, fn: func(s *ikeSA) {
		if s.Child(spiIn) == nil {
			// The Child SA moved to a rekeyed IKE SA meanwhile: follow it.
			if other := e.idx.child(spiIn); other != nil && other != s.en {
				e.post(other, work{kind: workFunc, fn: func(o *ikeSA) {
					if o.Child(spiIn) != nil {
						fn(o)
					}
				}})
			}
			return
		}
		fn(s)
	}})
}

func (e *Engine) RekeyIKE(conn string) bool {
	return e.command(conn, 0, func(s *ikeSA) bool { return s.State().Up() }, func(s *ikeSA) { s.QueueRekeyIKE() }) > 0
}

// Close deletes every established IKE SA (sending its Delete without waiting for the answer),
// applies the resulting effects and stops the engine's goroutines.
func (e *Engine) Close() {
	if e.closed.Swap(true) {
		return
	}
	e.sched.close()
	for _, en := range e.table.all() {
		en.mu.Lock()
		s := en.s
		var out []effect
		if s != nil && s.State() != ike.StateDead {
			if s.State().Authenticated() && s.State() != ike.StateDeleting {
				h := s.Header(wire.ExchangeInformational, s.nextMsgID, false)
				if msgs, err := s.Seal(h, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}}, e.maxDatagram(s)); err == nil {
					s.out = append(s.out, sendEffect{local: s.Local, remote: s.Remote, msgs: msgs, tcp: s.TCP, dial: s.TCPOriginator})
				}
			}
			s.Kill(ike.ReasonShutdown)
			out = e.finish(s)
		}
		en.mu.Unlock()
		e.queueEffects(en, out)
	}
	if e.cfg.Manual {
		e.Poll()
	} else {
		e.waitIdle()
		close(e.stop)
		e.workers.Wait()
	}
}

// waitIdle waits until the queues are empty and no worker is busy (at most a few seconds).
func (e *Engine) waitIdle() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.Idle() && e.allSettled() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allSettled reports whether no entry has queued or running work.
func (e *Engine) allSettled() bool {
	settled := true
	e.table.each(func(en *entry) {
		en.qmu.Lock()
		if en.queued || en.applying {
			settled = false
		}
		en.qmu.Unlock()
	})
	e.stateless.qmu.Lock()
	if e.stateless.applying {
		settled = false
	}
	e.stateless.qmu.Unlock()
	return settled
}

// --- status ---

// SAInfo is a snapshot of an IKE SA for status listings, safe to read after the engine moves on.
type SAInfo struct {
	Name string
	// Version is the IKE version: 0 or 2 for IKEv2, 1 for an ISAKMP SA of the IKEv1 engine.
	Version       int
	SPIi, SPIr    uint64
	Initiator     bool
	State         ike.State
	Local, Remote netip.AddrPort
	LocalID       string
	RemoteID      string
	Proposal      string
	Transforms    proposal.Proposal
	NAT           bool
	// NATLocal: a NAT is in front of us; NATRemote: in front of the peer; NATFake: none, but
	// encap = yes made the peer believe one is in front of us.
	NATLocal, NATRemote, NATFake bool
	// TCP: IKE and ESP travel in TCP (RFC 9329); TCPOriginator: we opened the connection.
	TCP, TCPOriginator bool
	// PPK: a post-quantum preshared key is in the keys (RFC 9867 or RFC 8784).
	PPK         bool
	Established time.Time
	// RekeyAt is when the IKE SA will be rekeyed (zero: never); LastReceived is when the last
	// authenticated message from the peer arrived.
	RekeyAt, LastReceived time.Time
	Children              []ChildInfo
	Queued                int // exchanges waiting to be started
	// LocalVIPs and RemoteVIPs are the virtual IPs we got and gave; EAPID the EAP identity.
	LocalVIPs, RemoteVIPs []netip.Addr
	EAPID                 string
}

// ChildInfo is a snapshot of a Child SA.
type ChildInfo struct {
	Name              string
	State             ike.ChildState
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
	var out []SAInfo
	for _, en := range e.table.all() {
		en.mu.Lock()
		if s := en.s; s != nil && s.State() != ike.StateDead {
			out = append(out, s.info(e.ep))
		}
		en.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].SPIi < out[j].SPIi
	})
	return out
}

func (s *ikeSA) info(ep epoch) SAInfo {
	info := SAInfo{Name: s.connName(), SPIi: s.SPIi, SPIr: s.SPIr, Initiator: s.Initiator, State: s.State(),
		Local: s.Local, Remote: s.Remote, Proposal: s.Proposal.String(), Transforms: s.Proposal, NAT: s.NAT() || s.NATFake, NATFake: s.NATFake,
		NATLocal: s.NATLocal, NATRemote: s.NATRemote, Established: s.Established, RekeyAt: ep.time(s.rekeyAt),
		TCP: s.TCP, TCPOriginator: s.TCPOriginator, PPK: s.PPK,
		LastReceived: ep.time(s.lastSeen), LocalVIPs: s.LocalVIPs, RemoteVIPs: s.RemoteVIPs, EAPID: s.EAPID()}
	if s.HasWork() {
		info.Queued = 1
	}
	if s.State().Authenticated() {
		info.LocalID, info.RemoteID = s.LocalID.String(), s.RemoteID.String()
	}
	for _, c := range s.Children {
		ci := ChildInfo{Name: c.Name, State: c.State(), SPIIn: c.SPIIn, SPIOut: c.SPIOut, Mode: c.Mode, Proposal: c.Proposal.String(),
			Transforms: c.Proposal, ESN: c.ESN, LocalTS: append([]ts.Selector(nil), c.LocalTS...),
			RemoteTS: append([]ts.Selector(nil), c.RemoteTS...), Created: c.Created, RekeyAt: c.RekeyAt, ExpireAt: c.ExpireAt}
		if c.Config != nil {
			ci.RekeyTime = c.Config.RekeyTime
		}
		info.Children = append(info.Children, ci)
	}
	return info
}

// Count returns the number of IKE SAs the engine holds (any state).
func (e *Engine) Count() int { return e.table.count() }

// Stats are engine-wide counters (for metrics).
type Stats struct {
	Retransmits      uint64
	InvalidMessages  uint64 // every dropped message (the sum of Drops)
	Drops            DropCounts
	CookiesSent      uint64
	HandshakesOK     uint64
	HandshakesFailed uint64
	Rekeys           uint64
	HalfOpen         int64
	HandshakeSeconds []float64 // latencies of the most recent completed handshakes
}

// Stats returns a copy of the engine's counters.
func (e *Engine) Stats() Stats {
	st := Stats{Retransmits: e.stats.retransmits.Load(), CookiesSent: e.stats.cookiesSent.Load(),
		HandshakesOK: e.stats.handshakesOK.Load(), HandshakesFailed: e.stats.handshakesFailed.Load(),
		Rekeys: e.stats.rekeys.Load(), HalfOpen: e.nHalf.Load()}
	for i := range st.Drops {
		st.Drops[i] = e.stats.drops[i].Load()
	}
	st.InvalidMessages = st.Drops.Total()
	e.stats.mu.Lock()
	st.HandshakeSeconds = append([]float64(nil), e.stats.latencies...)
	e.stats.mu.Unlock()
	return st
}

// counters are the engine's statistics.
type counters struct {
	retransmits, cookiesSent, handshakesOK, handshakesFailed, rekeys atomic.Uint64
	drops                                                            [numDropReasons]atomic.Uint64

	mu        sync.Mutex
	latencies []float64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

func (c *counters) handshake(took time.Duration) {
	c.handshakesOK.Add(1)
	c.mu.Lock()
	c.latencies = append(c.latencies, took.Seconds())
	if len(c.latencies) > 10000 {
		c.latencies = append(c.latencies[:0], c.latencies[len(c.latencies)-5000:]...)
	}
	c.mu.Unlock()
}

// rateLimit is a token bucket refilled perSecond times a second.
type rateLimit struct {
	perSecond int
	mu        sync.Mutex
	tokens    float64
	last      time.Time
}

func (r *rateLimit) allow(now time.Time) bool {
	if r.perSecond < 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() {
		r.tokens = min(float64(r.perSecond), r.tokens+now.Sub(r.last).Seconds()*float64(r.perSecond))
	} else {
		r.tokens = float64(r.perSecond)
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// debugEnabled reports whether a logger would write debug records (to skip building them).
func debugEnabled(l *slog.Logger) bool { return l.Enabled(context.Background(), slog.LevelDebug) }

// infoEnabled guards the Info lines of every handshake: their arguments (strings boxed into
// interfaces, formatted SPIs, proposals and identities) were a fifth of the heap objects a
// responder allocated per handshake even with the log at warn.
func infoEnabled(l *slog.Logger) bool { return l.Enabled(context.Background(), slog.LevelInfo) }
