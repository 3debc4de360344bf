// Package engine drives IKEv1: it finds the ISAKMP SA a datagram belongs to (by cookie, and for a
// first message by the initiator's cookie and address), runs package ikev1's processing as the
// SA's only owner, carries out what it produced — the same ike.Effect kinds the IKEv2 engine
// applies, so the daemon installs IKEv1 Child SAs through the same handlers — and keeps one
// deadline per SA.
//
// It is a sibling of ike/engine with the same ownership model, simplified for IKEv1's smaller
// numbers: whoever has work for an SA (a receive goroutine, a timer, a command) takes the SA's
// owner lock, works, records effects on the SA's queue and lets go; the effects are then carried
// out in order by one goroutine at a time, outside the SA (so data plane installs may block
// without holding it). Different SAs are processed in parallel by the daemon's receive workers.
// Each SA has one runtime timer, armed for its earliest deadline.
package engine

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"crypto/rand"

	"github.com/goipsec/goipsec/ike"
	ikeengine "github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ikev1"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Config configures the IKEv1 engine.
type Config struct {
	Transport ikeengine.Transport
	Clock     ikeengine.Clock
	Logger    *slog.Logger
	Rand      io.Reader
	// Events are the IKEv2 engine's events: the daemon hands both engines the same handlers.
	Events ikeengine.Events
	// Configs returns the IKEv1 connections a responder may use for a peer (by addresses).
	Configs  func(local, remote netip.Addr) []*ikev1.Config
	AllocSPI func() (uint32, error)
	NATTPort uint16
	Timing   ikev1.Timing
	// Keepalive sends a NAT-keepalive from local to remote (RFC 3948 §2.3); nil: none.
	Keepalive         func(local, remote netip.AddrPort)
	KeepaliveInterval time.Duration
	// MaxHalfOpen bounds responder SAs that have not completed phase 1 (default 1000).
	MaxHalfOpen int
}

// Drop reasons, counted.
const (
	DropMalformed = iota
	DropUnknownSA
	DropHalfOpenLimit
	DropClosed
	numDrops
)

var dropNames = [numDrops]string{"malformed", "unknown_sa", "half_open_limit", "closed"}

// Engine runs ISAKMP SAs.
type Engine struct {
	cfg  Config
	deps *ike.Deps
	log  *slog.Logger

	mu       sync.Mutex
	byCookie map[uint64]*entry
	halfOpen map[initKey]*entry
	byChild  map[uint32]*entry
	nHalf    int
	closed   bool

	drops      [numDrops]atomic.Uint64
	handshakes atomic.Uint64
	failures   atomic.Uint64
}

type initKey struct {
	ckyI   uint64
	remote netip.AddrPort
}

// entry is one SA with its owner lock, effect queue and timer.
type entry struct {
	mu sync.Mutex // the owner's
	sa *ikev1.SA

	qmu      sync.Mutex
	queue    []ikev1.Output
	applying bool

	tmu   sync.Mutex
	timer ikeengine.Timer
	at    time.Time

	halfOpen *initKey // guarded by Engine.mu
	// replacing is the phase 1 started to replace this one (guarded by Engine.mu).
	replacing *entry
	keepalive time.Time
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = ikeengine.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.NATTPort == 0 {
		cfg.NATTPort = 4500
	}
	if cfg.Timing.Timeout == 0 {
		cfg.Timing.Timeout = 4 * time.Second
	}
	if cfg.Timing.Base < 1 {
		cfg.Timing.Base = 1.8
	}
	if cfg.Timing.Tries == 0 {
		cfg.Timing.Tries = 5
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = 20 * time.Second
	}
	if cfg.MaxHalfOpen == 0 {
		cfg.MaxHalfOpen = 1000
	}
	if cfg.Configs == nil {
		cfg.Configs = func(netip.Addr, netip.Addr) []*ikev1.Config { return nil }
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, byCookie: map[uint64]*entry{}, halfOpen: map[initKey]*entry{}, byChild: map[uint32]*entry{}}
	e.deps = ike.Deps{Rand: cfg.Rand, Now: cfg.Clock.Now, AllocSPI: cfg.AllocSPI,
		Illegal: func(err error) { e.log.Error("refused an illegal state change (a bug)", "err", err) }}.WithDefaults()
	return e
}

func (e *Engine) logSA(sa *ikev1.SA) *slog.Logger {
	return e.log.With("conn", sa.Name(), "version", 1, "spi_i", fmt.Sprintf("%016x", sa.CkyI), "spi_r", fmt.Sprintf("%016x", sa.CkyR))
}

// Initiate starts phase 1 for cfg towards remote.
func (e *Engine) Initiate(cfg *ikev1.Config, children []*ike.ChildConfig, local, remote netip.AddrPort) error {
	_, err := e.initiate(cfg, children, local, remote, false)
	return err
}

func (e *Engine) initiate(cfg *ikev1.Config, children []*ike.ChildConfig, local, remote netip.AddrPort, successor bool) (*entry, error) {
	sa := ikev1.New(e.deps, e.cfg.Timing, e.cfg.NATTPort)
	sa.Successor = successor
	en := &entry{sa: sa}
	en.mu.Lock()
	if err := sa.Initiate(cfg, children, local, remote); err != nil {
		en.mu.Unlock()
		return nil, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		en.mu.Unlock()
		return nil, errors.New("the IKEv1 engine is shutting down")
	}
	if _, taken := e.byCookie[sa.CkyI]; taken {
		e.mu.Unlock()
		en.mu.Unlock()
		return nil, errors.New("IKEv1 cookie collision, try again")
	}
	e.byCookie[sa.CkyI] = en
	e.mu.Unlock()
	mode := "Main Mode"
	if cfg.Aggressive {
		mode = "Aggressive Mode"
	}
	e.logSA(sa).Info("initiating "+mode, "local", local, "remote", remote)
	en.mu.Unlock()
	e.finish(en)
	return en, nil
}

// Receive handles an IKEv1 datagram (without non-ESP marker) that arrived from remote at local.
func (e *Engine) Receive(b []byte, local, remote netip.AddrPort) {
	h, err := wire.DecodeHeader(b)
	if err != nil {
		e.drops[DropMalformed].Add(1)
		e.log.Debug("dropping invalid IKEv1 message", "from", remote, "err", err)
		return
	}
	en := e.lookup(h, remote)
	if en == nil {
		if h.RCookie == 0 && h.MessageID == 0 && (h.Exchange == wire.ExchangeMain || h.Exchange == wire.ExchangeAggressive) && !h.Encrypted() {
			e.respond(b, h, local, remote)
			return
		}
		e.drops[DropUnknownSA].Add(1)
		e.log.Debug("IKEv1 message for unknown SA", "from", remote, "exchange", h.Exchange.String())
		return
	}
	en.mu.Lock()
	if en.sa.State() != ikev1.StateDead {
		en.sa.Receive(b, h, local, remote)
	}
	en.mu.Unlock()
	e.finish(en)
}

func (e *Engine) lookup(h wire.Header, remote netip.AddrPort) *entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.RCookie == 0 {
		if en := e.halfOpen[initKey{h.ICookie, remote}]; en != nil {
			return en
		}
		if en := e.byCookie[h.ICookie]; en != nil && en.sa.Initiator {
			return en
		}
		return nil
	}
	if en := e.byCookie[h.RCookie]; en != nil && !en.sa.Initiator && en.sa.CkyI == h.ICookie {
		return en
	}
	if en := e.byCookie[h.ICookie]; en != nil && en.sa.Initiator && (en.sa.CkyR == 0 || en.sa.CkyR == h.RCookie) {
		return en
	}
	return nil
}

// respond creates a responder SA for a first message.
func (e *Engine) respond(b []byte, h wire.Header, local, remote netip.AddrPort) {
	if !local.Addr().IsValid() {
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.drops[DropClosed].Add(1)
		return
	}
	if e.nHalf >= e.cfg.MaxHalfOpen {
		e.mu.Unlock()
		e.drops[DropHalfOpenLimit].Add(1)
		return
	}
	e.mu.Unlock()
	candidates := e.cfg.Configs(local.Addr(), remote.Addr())
	if len(candidates) == 0 {
		e.log.Info("IKEv1 request from a peer no IKEv1 connection accepts", "from", remote)
		e.drops[DropUnknownSA].Add(1)
		return
	}
	sa := ikev1.New(e.deps, e.cfg.Timing, e.cfg.NATTPort)
	en := &entry{sa: sa}
	en.mu.Lock()
	err := sa.RespondFirst(b, candidates, local, remote)
	if err != nil {
		var v1 *ikev1.Error
		if !errors.As(err, &v1) {
			en.mu.Unlock()
			e.drops[DropMalformed].Add(1)
			return
		}
		// Refused (no proposal, malformed): the peer is told; nothing is kept.
		sa.Fail(err)
		out := sa.TakeOutput()
		en.mu.Unlock()
		e.queue(en, out)
		return
	}
	key := initKey{h.ICookie, remote}
	e.mu.Lock()
	if _, dup := e.halfOpen[key]; dup || e.byCookie[sa.CkyR] != nil {
		e.mu.Unlock()
		en.mu.Unlock()
		return
	}
	e.halfOpen[key] = en
	en.halfOpen = &key
	e.byCookie[sa.CkyR] = en
	e.nHalf++
	e.mu.Unlock()
	e.logSA(sa).Info("IKEv1 phase 1 answered", "from", remote, "mode", modeName(sa), "proposal", sa.Proposal().String())
	if sa.Aggressive && sa.Config() != nil && sa.Config().Peer != nil {
		e.logSA(sa).Warn("Aggressive Mode with a preshared key sends a hash an eavesdropper can attack offline; prefer Main Mode")
	}
	en.mu.Unlock()
	e.finish(en)
}

func modeName(sa *ikev1.SA) string {
	if sa.Aggressive {
		return "aggressive"
	}
	return "main"
}

// finish carries out what the SA produced (in order, outside its lock), keeps the indexes and
// arms the SA's timer.
func (e *Engine) finish(en *entry) {
	en.mu.Lock()
	sa := en.sa
	out := sa.TakeOutput()
	dead := sa.State() == ikev1.StateDead
	var rekey bool
	now := e.cfg.Clock.Now()
	if sa.RekeyDue(now) {
		sa.RekeyStarted()
		rekey = true
	}
	up := sa.State() == ikev1.StateEstablished
	if up && sa.NATLocal && e.cfg.Keepalive != nil {
		if en.keepalive.IsZero() {
			en.keepalive = now.Add(e.cfg.KeepaliveInterval)
		} else if !now.Before(en.keepalive) {
			en.keepalive = now.Add(e.cfg.KeepaliveInterval)
			e.cfg.Keepalive(sa.Local, sa.Remote)
		}
	}
	next := sa.NextDeadline()
	if up && !en.keepalive.IsZero() && (next.IsZero() || en.keepalive.Before(next)) {
		next = en.keepalive
	}
	cfg := sa.Config()
	local, remote := sa.Local, sa.Remote
	en.mu.Unlock()

	e.mu.Lock()
	for _, o := range out {
		switch x := o.Effect.(type) {
		case ike.ChildUp:
			e.byChild[x.Child.SPIIn] = en
		case ike.ChildDown:
			if e.byChild[x.SPIIn] == en {
				delete(e.byChild, x.SPIIn)
			}
		case ike.IKEUp:
			if en.halfOpen != nil {
				delete(e.halfOpen, *en.halfOpen)
				en.halfOpen = nil
				e.nHalf--
			}
			e.handshakes.Add(1)
		}
	}
	if dead {
		if en.halfOpen != nil {
			delete(e.halfOpen, *en.halfOpen)
			en.halfOpen = nil
			e.nHalf--
		}
		for k, v := range e.byCookie {
			if v == en {
				delete(e.byCookie, k)
			}
		}
	}
	e.mu.Unlock()

	e.queue(en, out)
	if dead {
		e.arm(en, time.Time{})
	} else {
		e.arm(en, next)
	}
	if rekey && cfg != nil {
		e.rekeyPhase1(en, cfg, local, remote)
	}
	for _, o := range out {
		switch x := o.Effect.(type) {
		case ike.IKEUp:
			e.established(en, x)
		case ike.ChildUp:
			e.childReplaced(en, x.Child.Name)
		}
	}
}

// established starts the Quick Modes that replace a predecessor's Child SAs, and drops stale
// ISAKMP SAs of the peer when it sent INITIAL-CONTACT.
func (e *Engine) established(en *entry, up ike.IKEUp) {
	var olds, stale []*entry
	e.mu.Lock()
	for _, o := range e.byCookie {
		if o == en {
			continue
		}
		if o.replacing == en {
			olds = append(olds, o)
		} else if up.InitialContact && o.replacing == nil {
			stale = append(stale, o)
		}
	}
	e.mu.Unlock()
	for _, o := range stale {
		e.run(o, func(sa *ikev1.SA) {
			// RFC 2407 §4.6.3.3: the peer holds no other SA with us; ours of its identity are
			// stale.
			if sa.Name() == up.IKE.Conn && sa.RemoteID.Equal(up.IKE.RemoteID) && sa.State() == ikev1.StateEstablished {
				sa.Kill(ike.ReasonInitialContact)
			}
		})
	}
	for _, o := range olds {
		var configs []*ike.ChildConfig
		e.run(o, func(sa *ikev1.SA) {
			sa.Retire()
			configs = sa.ChildConfigs()
			if len(configs) == 0 {
				sa.Delete(ike.ReasonRekeyed)
			}
		})
		e.run(en, func(sa *ikev1.SA) {
			for _, c := range configs {
				sa.CreateChild(c)
			}
		})
	}
}

// childReplaced tells the predecessors of en that a Child SA of the configuration name is up on
// en: they delete theirs.
func (e *Engine) childReplaced(en *entry, name string) {
	var olds []*entry
	e.mu.Lock()
	for _, o := range e.byCookie {
		if o != en && o.replacing == en {
			olds = append(olds, o)
		}
	}
	e.mu.Unlock()
	for _, o := range olds {
		e.run(o, func(sa *ikev1.SA) { sa.ReplacedElsewhere(name) })
	}
}

// rekeyPhase1 starts a new phase 1 that will take over en's Child SAs (IKEv1 has no rekey
// exchange; RFC 2409 leaves replacing the ISAKMP SA to a new negotiation).
func (e *Engine) rekeyPhase1(en *entry, cfg *ikev1.Config, local, remote netip.AddrPort) {
	if local.Port() == e.cfg.NATTPort {
		local = netip.AddrPortFrom(local.Addr(), 500)
		remote = netip.AddrPortFrom(remote.Addr(), 500)
	}
	next, err := e.initiate(cfg, nil, local, remote, true)
	if err != nil {
		e.log.Warn("IKEv1 phase 1 rekey failed to start", "conn", cfg.Peer.Name, "err", err)
		return
	}
	e.mu.Lock()
	en.replacing = next
	e.mu.Unlock()
}

// arm points the SA's timer at its next deadline.
func (e *Engine) arm(en *entry, at time.Time) {
	en.tmu.Lock()
	defer en.tmu.Unlock()
	if en.timer != nil && at.Equal(en.at) {
		return
	}
	if en.timer != nil {
		en.timer.Stop()
		en.timer = nil
	}
	en.at = at
	if at.IsZero() {
		return
	}
	d := max(0, at.Sub(e.cfg.Clock.Now()))
	en.timer = e.cfg.Clock.AfterFunc(d, func() {
		en.tmu.Lock()
		en.timer, en.at = nil, time.Time{}
		en.tmu.Unlock()
		en.mu.Lock()
		en.sa.Tick(e.cfg.Clock.Now())
		en.mu.Unlock()
		e.finish(en)
	})
}

// queue appends outputs to the entry's queue and carries them out unless another goroutine is.
func (e *Engine) queue(en *entry, out []ikev1.Output) {
	if len(out) == 0 {
		return
	}
	en.qmu.Lock()
	en.queue = append(en.queue, out...)
	if en.applying {
		en.qmu.Unlock()
		return
	}
	en.applying = true
	for len(en.queue) > 0 {
		batch := en.queue
		en.queue = nil
		en.qmu.Unlock()
		for _, o := range batch {
			e.apply(o)
		}
		en.qmu.Lock()
	}
	en.applying = false
	en.qmu.Unlock()
}

// weak reports whether a negotiated proposal uses a legacy algorithm (3DES, SHA-1, MODP1024).
func weak(p proposal.Proposal) bool {
	for _, t := range p.Transforms {
		if proposal.Legacy(t) {
			return true
		}
	}
	return false
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }
func hex8(v uint32) string  { return fmt.Sprintf("%08x", v) }

// apply carries out one output, outside every SA.
func (e *Engine) apply(o ikev1.Output) {
	if d := o.Send; d != nil {
		if err := e.cfg.Transport.Send(d.B, d.Local, d.Remote); err != nil {
			e.log.Warn("sending IKEv1 message failed", "to", d.Remote, "err", err)
		}
		return
	}
	ev := &e.cfg.Events
	switch x := o.Effect.(type) {
	case ike.IKEUp:
		i := x.IKE
		e.log.Info("IKE SA established", "conn", i.Conn, "version", 1, "spi_i", hex16(i.SPIi), "spi_r", hex16(i.SPIr), "local", i.Local, "remote", i.Remote,
			"local_id", i.LocalID.String(), "remote_id", i.RemoteID.String(), "proposal", i.Proposal.String(), "nat", i.NATLocal || i.NATRemote)
		if weak(i.Proposal) {
			e.log.Warn("IKE SA uses weak algorithms (weak_algorithms = yes)", "conn", i.Conn, "proposal", i.Proposal.String())
		}
		if ev.IKEUp != nil {
			ev.IKEUp(x)
		}
	case ike.IKEDown:
		if !x.Up && x.Reason != ike.ReasonShutdown && x.Reason != ike.ReasonDeleted {
			e.failures.Add(1)
		}
		e.log.Info("IKE SA down", "conn", x.IKE.Conn, "version", 1, "spi_i", hex16(x.IKE.SPIi), "spi_r", hex16(x.IKE.SPIr), "why", x.Reason.String())
		if ev.IKEDown != nil {
			ev.IKEDown(x)
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
		if weak(c.Proposal) {
			e.log.Warn("Child SA uses weak algorithms (weak_algorithms = yes)", "conn", c.IKE.Conn, "child", c.Name, "proposal", c.Proposal.String())
		}
		e.log.Info("Child SA established", "conn", c.IKE.Conn, "version", 1, "child", c.Name, "spi_in", hex8(c.SPIIn), "spi_out", hex8(c.SPIOut),
			"proposal", c.Proposal.String(), "mode", c.Mode.String(), "ts", ts.FormatList(c.LocalTS)+" === "+ts.FormatList(c.RemoteTS))
	case ike.ChildDown:
		e.log.Info("Child SA deleted", "conn", x.IKE.Conn, "child", x.Name, "spi_in", hex8(x.SPIIn), "why", x.Reason.String())
		if ev.ChildDown != nil {
			ev.ChildDown(x)
		}
	case ike.ChildMoved:
		if ev.ChildMoved != nil {
			ev.ChildMoved(x)
		}
	case ike.Failed:
		e.log.Warn("negotiation failed", "conn", x.Conn, "version", 1, "why", x.Err.Error())
		if ev.Failed != nil {
			ev.Failed(x)
		}
	}
}

// --- commands ---

func (e *Engine) entries(conn string) []*entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[*entry]bool{}
	var out []*entry
	for _, en := range e.byCookie {
		if !seen[en] && (conn == "" || en.sa.Name() == conn) {
			seen[en] = true
			out = append(out, en)
		}
	}
	return out
}

// run runs fn as the owner of en and carries out the result.
func (e *Engine) run(en *entry, fn func(sa *ikev1.SA)) {
	en.mu.Lock()
	if en.sa.State() != ikev1.StateDead {
		fn(en.sa)
	}
	en.mu.Unlock()
	e.finish(en)
}

// Terminate deletes every ISAKMP SA of the connection (all when name is "") and its Child SAs.
func (e *Engine) Terminate(name string) int {
	n := 0
	for _, en := range e.entries(name) {
		e.run(en, func(sa *ikev1.SA) { sa.Delete(ike.ReasonDeleted); n++ })
	}
	return n
}

// Connecting reports whether the connection has an ISAKMP SA that is up or on its way.
func (e *Engine) Connecting(name string) bool {
	for _, en := range e.entries(name) {
		en.mu.Lock()
		st := en.sa.State()
		en.mu.Unlock()
		if st < ikev1.StateDeleting {
			return true
		}
	}
	return false
}

// CreateChild negotiates a Child SA on the connection's ISAKMP SA.
func (e *Engine) CreateChild(name string, c *ike.ChildConfig) bool {
	for _, en := range e.entries(name) {
		ok := false
		e.run(en, func(sa *ikev1.SA) {
			if sa.State() < ikev1.StateDeleting {
				sa.CreateChild(c)
				ok = true
			}
		})
		if ok {
			return true
		}
	}
	return false
}

func (e *Engine) child(spi uint32) *entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byChild[spi]
}

// HasChild reports whether an IKEv1 SA owns the Child SA with inbound SPI spi.
func (e *Engine) HasChild(spi uint32) bool { return e.child(spi) != nil }

// RekeyChild rekeys a Child SA by its inbound SPI.
func (e *Engine) RekeyChild(spi uint32) bool {
	en := e.child(spi)
	if en == nil {
		return false
	}
	ok := false
	e.run(en, func(sa *ikev1.SA) { ok = sa.RekeyChild(spi) })
	return ok
}

// DeleteChildAs deletes a Child SA by its inbound SPI.
func (e *Engine) DeleteChildAs(spi uint32, reason ike.Reason) bool {
	en := e.child(spi)
	if en == nil {
		return false
	}
	// Not on this goroutine: it may be an applier of en's own effects (an install that failed).
	go e.run(en, func(sa *ikev1.SA) { sa.DeleteChild(spi, reason) })
	return true
}

// Close deletes every SA (sending Deletes) and stops the timers.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	for _, en := range e.entries("") {
		e.run(en, func(sa *ikev1.SA) { sa.Delete(ike.ReasonShutdown) })
		e.arm(en, time.Time{})
	}
}

// SAs lists the ISAKMP SAs for status, in the IKEv2 engine's form (Version 1).
func (e *Engine) SAs() []ikeengine.SAInfo {
	var out []ikeengine.SAInfo
	for _, en := range e.entries("") {
		en.mu.Lock()
		sa := en.sa
		if sa.State() == ikev1.StateDead {
			en.mu.Unlock()
			continue
		}
		state := ike.StateInitSent
		switch sa.State() {
		case ikev1.StateKESent, ikev1.StateAuthSent:
			state = ike.StateAuthSent
		case ikev1.StateEstablished:
			state = ike.StateEstablished
		case ikev1.StateDeleting:
			state = ike.StateDeleting
		}
		info := ikeengine.SAInfo{Name: sa.Name(), Version: 1, SPIi: sa.CkyI, SPIr: sa.CkyR, Initiator: sa.Initiator, State: state,
			Local: sa.Local, Remote: sa.Remote, Proposal: sa.Proposal().String(), Transforms: sa.Proposal(), NAT: sa.NAT(),
			NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, Established: sa.Established}
		if state == ike.StateEstablished {
			info.LocalID, info.RemoteID = sa.LocalID.String(), sa.RemoteID.String()
		}
		for _, c := range sa.Children {
			ci := ikeengine.ChildInfo{Name: c.Name, State: ike.ChildInstalled, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Mode: c.Mode,
				Proposal: c.Proposal.String(), Transforms: c.Proposal, LocalTS: append([]ts.Selector(nil), c.LocalTS...),
				RemoteTS: append([]ts.Selector(nil), c.RemoteTS...), Created: c.Created, RekeyAt: c.RekeyAt, ExpireAt: c.ExpireAt}
			if c.Config != nil {
				ci.RekeyTime = c.Config.RekeyTime
			}
			info.Children = append(info.Children, ci)
		}
		en.mu.Unlock()
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

// Stats are the engine's counters for metrics.
type Stats struct {
	Drops            map[string]uint64
	HandshakesOK     uint64
	HandshakesFailed uint64
	HalfOpen         int
	SAs              int
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	st := Stats{Drops: map[string]uint64{}, HandshakesOK: e.handshakes.Load(), HandshakesFailed: e.failures.Load()}
	for i := range e.drops {
		st.Drops[dropNames[i]] = e.drops[i].Load()
	}
	e.mu.Lock()
	st.HalfOpen = e.nHalf
	st.SAs = len(e.byCookie)
	e.mu.Unlock()
	return st
}
