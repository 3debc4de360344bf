// Package userspace is goipsec's packet engine: it applies ESP and AH in user space, reading
// plaintext from a TUN device and carrying IPsec packets over UDP (RFC 3948, port 4500) or raw IP
// sockets (protocols 50 and 51). It implements dataplane.Backend.
//
// Throughput comes from moving 64 KiB at a time through every system call, touching each byte as
// few times as possible, and never handing packets between goroutines: the TUN device has one
// queue per pipeline (IFF_MULTI_QUEUE) with virtio-net offloads, so a read returns a TCP
// super-packet that is cut into segments and encrypted straight into the UDP send buffer, which
// leaves with UDP GSO; received runs of datagrams (UDP GRO) are decrypted in place and written to
// the TUN device as one GSO packet with writev. Each pipeline (a TUN queue and a UDP socket on
// the NAT-T port, SO_REUSEPORT) has one goroutine per direction that does everything inline; tx.go
// and rx.go describe the two paths.
//
// Lock order: Engine.mu, then routes.mu; turnMu and each TX ring's turnMu (pkttx.go) stand
// alone. The packet path takes no locks but those of SA turns shared by pipelines: the SAD and
// SPD are read-copy-update tables (rcutable.go).
package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// Config configures an Engine. The zero value of every field has a usable default.
type Config struct {
	// TunName is the TUN device's name (default "goipsec0").
	TunName string
	// MTU of the TUN device (default 1400, like strongSwan's kernel-libipsec: room for ESP, UDP and
	// an IPv6 outer header inside a 1500-byte path).
	MTU int
	// NATTPort is the local UDP port for ESP in UDP and IKE over NAT-T (default 4500); -1 disables
	// the UDP socket.
	NATTPort int
	// NoRawSockets disables raw ESP/AH sockets (then only UDP-encapsulated SAs can be installed).
	NoRawSockets bool
	// NoPacketRing sends raw ESP through the raw socket alone. By default each pipeline sends it
	// through an AF_PACKET TX ring where it can (pkttx.go), and through the raw socket otherwise.
	NoPacketRing bool
	// RawESPXDP receives raw ESP through AF_XDP sockets fed by an XDP program on the interfaces
	// the inbound raw ESP SAs' packets arrive on (xdprx.go), where XDP is available; the raw
	// socket receives the rest.
	RawESPXDP bool
	// FwMark marks the engine's own packets so that policy routing keeps them off the TUN device
	// (default 0x4500). RouteTable holds the routes to the TUN device (default 4500), consulted by a
	// rule "not fwmark FwMark lookup RouteTable" at RulePriority (default 4500).
	FwMark       uint32
	RouteTable   int
	RulePriority int
	// Queues is the number of pipelines: TUN queues and UDP sockets on the NAT-T port, each with
	// an outbound and an inbound goroutine (default: GOMAXPROCS, at most 16). The kernel spreads
	// flows over the TUN queues and peers over the sockets by hash, so one flow uses one pipeline
	// and many flows use all of them.
	Queues int
	// Logger receives engine logs (default: discard); ESPLogger the per-packet ESP/AH failures
	// (default: Logger).
	Logger    *slog.Logger
	ESPLogger *slog.Logger
	// Events receives acquires and expiries.
	Events dataplane.Events
	// IKE receives IKE messages that arrive on the NAT-T port (non-ESP marker removed). It must not
	// block; pkt is only valid during the call.
	IKE func(pkt []byte, local netip.Addr, remote netip.AddrPort)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.TunName == "" {
		c.TunName = "goipsec0"
	}
	if c.MTU == 0 {
		c.MTU = 1400
	}
	if c.NATTPort == 0 {
		c.NATTPort = 4500
	}
	if c.FwMark == 0 {
		c.FwMark = 0x4500
	}
	if c.RouteTable == 0 {
		c.RouteTable = 4500
	}
	if c.RulePriority == 0 {
		c.RulePriority = 4500
	}
	if c.Queues <= 0 {
		c.Queues = min(runtime.GOMAXPROCS(0), 16)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ESPLogger == nil {
		c.ESPLogger = c.Logger
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Engine is the userspace data plane. Create it with New inside the network namespace it should
// serve (its TUN device, sockets and netlink handle stay in that namespace), and Close it to remove
// everything it created.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	tun    *tunDevice
	queues int
	// udp4 and udp6 are the NAT-T sockets, one per pipeline (nil entries where the family is not
	// available); natt is false when the NAT-T port is disabled.
	udp4, udp6 []*batchSock
	natt       bool
	raw        *rawSockets
	routes     *routeTable
	xdp        *xdpRX // nil unless Config.RawESPXDP and XDP is available

	// sad and spd are read by the packet path without locks and written under mu.
	sad *sad
	spd *spd

	mu sync.Mutex // guards the fields below and serialises SAD/SPD updates
	// out holds the outbound SAs; inbound ones are only in the SAD (one index entry less per SA).
	out      map[dataplane.SAKey]*saState
	policies map[dataplane.PolicyID]*policy
	// bySA lists (through policy.nextSA) the Protect policies that name each outbound SA key,
	// installed or not, so that installing, moving or deleting an SA finds its policies without
	// scanning them all.
	bySA       map[dataplane.SAKey]*policy
	nextPolicy atomic.Uint64

	stats engineStats
	// tcp carries IKE and ESP in TCP (tcp.go), created on first use.
	tcp     *tcpCarrier
	tcpOnce sync.Once

	// turnMu and turnCond park pipelines waiting for an SA's turn to send (tx.go); turnWaiters
	// counts them (guarded by turnMu).
	turnMu      sync.Mutex
	turnCond    *sync.Cond
	turnWaiters int

	// txp are the outbound pipelines (their counters tell tests which ones carried traffic).
	txp []*txPipeline

	closing  chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Once
	closeErr error
}

// engineStats are counters not attributable to one SA.
type engineStats struct {
	drops                                                             [len(dataplane.DropCounts{})]atomic.Uint64
	tunPackets, netPackets, ikePackets, keepAlives, dummies, bypassed atomic.Uint64
	mssClamped                                                        atomic.Uint64
	// ring counts raw ESP sent through the pipelines' AF_PACKET TX rings (pkttx.go).
	ring ringCounters
	xdp  xdpStats
}

// saState is one installed SA: its transform, addressing and counters. A gateway holds hundreds
// of thousands of them, so it keeps only what the engine needs, in few bytes.
type saState struct {
	params saConf
	esp    *esp.SA // &espMem for ESP SAs
	ah     *ah.SA
	// espMem holds an ESP SA's state in the record's own allocation (one object less per SA).
	espMem esp.SA
	// addr is the SA's current outer addressing, replaced as a whole by UpdateSAAddresses while
	// packets use the SA; the packet path loads it once per packet or run of packets.
	addr atomic.Pointer[saAddr]
	// addrMem is the addressing the SA is installed with, where addr first points: part of the
	// SA's own allocation, one object less per SA for the collector of a gateway holding many.
	// A move (UpdateSAAddresses) points addr at a new one; addrMem is never written again.
	addrMem saAddr
	created int64 // unix nanoseconds

	packets, bytes atomic.Uint64
	lastUsed       atomic.Int64 // unix nanoseconds
	// drops are allocated with the SA's first drop: most SAs never drop a packet.
	drops atomic.Pointer[dropCounters]
	flags atomic.Uint32 // saDead, saSoftSent, ...
	// inflight counts packets on their way through the engine with this SA; the keys are wiped
	// when the SA is deleted and the last of them is done, never under a running Seal or Open.
	inflight atomic.Int32
	// txTurn is the next outbound sequence number allowed onto the wire: pipelines send their
	// blocks of an SA in sequence order (tx.go).
	txTurn atomic.Uint64
}

type dropCounters [len(dataplane.DropCounts{})]atomic.Uint64

// SA flags.
const (
	saDead     uint32 = 1 << iota // hard lifetime or sequence space exhausted: no more traffic
	saSoftSent                    // soft Expire raised
	saHardSent                    // hard Expire raised
	saFirstIn                     // FirstInbound raised (NotifyFirstInbound)
	saDeleted                     // out of the SAD: holds fail
	saZeroed                      // keys wiped
)

// setFlag sets f and reports whether this call set it.
func (s *saState) setFlag(f uint32) bool {
	for {
		old := s.flags.Load()
		if old&f != 0 {
			return false
		}
		if s.flags.CompareAndSwap(old, old|f) {
			return true
		}
	}
}

func (s *saState) has(f uint32) bool { return s.flags.Load()&f != 0 }

// saConf is what the engine keeps of an SA's parameters: SAParams without keys and outer
// addressing (which live in saAddr), in half the bytes.
type saConf struct {
	Name               string
	Local, Remote      []ts.Selector
	Lifetime           *dataplane.Lifetime // nil: unlimited
	SPI                uint32
	TFCPadding         int32
	ReplayWindow       int32
	Encryption         esp.Encryption
	Integrity          esp.Integrity
	Direction          dataplane.Direction
	Protocol           dataplane.Protocol
	Mode               dataplane.Mode
	ESN                bool
	NotifyFirstInbound bool
	// ClampMSS: 0 off, clampAuto from the path, else the MSS bound (SAParams.ClampMSS).
	ClampMSS uint16
}

// clampAuto is saConf.ClampMSS for dataplane.ClampMSSAuto.
const clampAuto = 0xffff

func newSAConf(p *dataplane.SAParams) saConf {
	c := saConf{Name: p.Name, Local: p.Local, Remote: p.Remote, SPI: p.SPI, TFCPadding: int32(p.TFCPadding),
		ReplayWindow: int32(p.ReplayWindow), Encryption: p.Encryption, Integrity: p.Integrity, Direction: p.Direction,
		Protocol: p.Protocol, Mode: p.Mode, ESN: p.ESN, NotifyFirstInbound: p.NotifyFirstInbound}
	switch {
	case p.ClampMSS < 0:
		c.ClampMSS = clampAuto
	case p.ClampMSS > 0:
		c.ClampMSS = uint16(min(p.ClampMSS, clampAuto-1))
	}
	if p.Lifetime != (dataplane.Lifetime{}) {
		lt := p.Lifetime
		c.Lifetime = &lt
	}
	return c
}

// saAddr is an SA's outer addressing. It is immutable: a move publishes a new one.
type saAddr struct {
	src, dst         netip.Addr
	encap            bool
	tcp              bool // ESP in TCP (RFC 9329, tcp.go)
	srcPort, dstPort uint16
	// outerMTU is the path MTU towards the peer (outbound SAs): larger IPsec packets of inner
	// packets that may not be fragmented are refused with an ICMP "too big" (RFC 4301 §8).
	outerMTU int
}

// key returns the SA's current SAD key.
func (s *saState) key() dataplane.SAKey {
	return dataplane.SAKey{Protocol: s.params.Protocol, SPI: s.params.SPI, Dst: s.addr.Load().dst}
}

// hold pins the SA for one packet. It fails once the SA is deleted. The order (count, then check)
// pairs with DeleteSA's (mark, then check the count): one of the two always sees the other.
func (s *saState) hold() bool {
	s.inflight.Add(1)
	if s.has(saDeleted) {
		s.release()
		return false
	}
	return true
}

// release ends a hold; the last release of a deleted SA wipes its keys.
func (s *saState) release() {
	if s.inflight.Add(-1) == 0 && s.has(saDeleted) {
		s.zeroOnce()
	}
}

func (s *saState) zeroOnce() {
	if s.setFlag(saZeroed) {
		s.zero()
	}
}

func (s *saState) drop(r dataplane.DropReason) { s.dropN(r, 1) }

// dropN counts n packets dropped for reason r.
func (s *saState) dropN(r dataplane.DropReason, n int) {
	d := s.drops.Load()
	if d == nil {
		d = new(dropCounters)
		if !s.drops.CompareAndSwap(nil, d) {
			d = s.drops.Load()
		}
	}
	d[r].Add(uint64(n))
}

// policy is one installed outbound policy.
type policy struct {
	params dataplane.PolicyParams // params.SA is guarded by Engine.mu; the rest is immutable
	rank   dataplane.PolicyRank   // rank.ID is the policy's ID
	// prefixes cover the remote selectors: the policy's keys in the SPD index.
	prefixes []spdKey
	sa       atomic.Pointer[saState] // outbound SA for Protect, nil until installed
	nextSA   *policy                 // the next policy naming the same SA key (Engine.bySA)
	// acquired rate-limits Acquire events (unix nanoseconds of the last one).
	acquired atomic.Int64
}

func (p *policy) matches(f *flow) bool {
	return selectorsMatch(p.params.Local, f.src, f, f.srcPort) && selectorsMatch(p.params.Remote, f.dst, f, f.dstPort)
}

func selectorsMatch(list []ts.Selector, a netip.Addr, f *flow, port uint16) bool {
	for i := range list {
		if list[i].Matches(a, f.proto, port, f.hasPorts) {
			return true
		}
	}
	return false
}

// New creates the TUN device and sockets and starts the engine's goroutines.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	e := newEngine(cfg)
	dev, err := openTUN(cfg.TunName, e.queues)
	if err != nil {
		return nil, fmt.Errorf("create TUN device %q: %w", cfg.TunName, err)
	}
	e.tun = dev
	fail := func(err error) (*Engine, error) {
		e.closeResources()
		return nil, err
	}
	if e.routes, err = newRouteTable(cfg, cfg.TunName); err != nil {
		return fail(err)
	}
	if cfg.NATTPort > 0 {
		for range e.queues {
			s4, err := openUDP(cfg.NATTPort, false, cfg.FwMark, e.queues > 1)
			if err != nil {
				return fail(fmt.Errorf("open UDP port %d for ESP in UDP: %w", cfg.NATTPort, err))
			}
			e.udp4 = append(e.udp4, s4)
			s6, err := openUDP(cfg.NATTPort, true, cfg.FwMark, e.queues > 1)
			if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
				return fail(fmt.Errorf("open UDP port %d for ESP in UDP over IPv6: %w", cfg.NATTPort, err))
			}
			e.udp6 = append(e.udp6, s6)
		}
		e.natt = true
	}
	if !cfg.NoRawSockets {
		if e.raw, err = openRawSockets(cfg.FwMark); err != nil {
			return fail(err)
		}
		if cfg.RawESPXDP {
			if e.xdp, err = newXDPRX(e); err != nil {
				e.log.Info("raw ESP is received through the raw socket alone", "reason", err)
			}
		}
	}
	e.start()
	return e, nil
}

// newEngine builds the engine's tables and queues, without devices or goroutines (New adds them;
// table tests use it alone).
func newEngine(cfg Config) *Engine {
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		out:      make(map[dataplane.SAKey]*saState),
		policies: make(map[dataplane.PolicyID]*policy),
		bySA:     make(map[dataplane.SAKey]*policy),
		closing:  make(chan struct{}),
		queues:   cfg.Queues,
	}
	e.turnCond = sync.NewCond(&e.turnMu)
	seed := rand.Uint64()
	e.sad = newSAD(seed)
	e.spd = newSPD(seed)
	return e
}

// Name is the TUN device name.
func (e *Engine) Name() string { return e.cfg.TunName }

// FwMark is the mark the engine puts on its own packets; the IKE daemon marks its sockets with it
// too so that IKE traffic is never routed into the tunnel.
func (e *Engine) FwMark() uint32 { return e.cfg.FwMark }

// Close stops the engine and removes its TUN device, routes and rules.
func (e *Engine) Close() error {
	e.closeMu.Do(func() {
		close(e.closing)
		e.turnMu.Lock()
		e.turnCond.Broadcast()
		e.turnMu.Unlock()
		e.closeErr = e.closeResources()
		e.wg.Wait()
		e.mu.Lock()
		for _, sa := range e.out {
			sa.zeroOnce()
		}
		e.sad.table.each(func(_ spiKey, sa *saState) bool {
			sa.zeroOnce()
			return true
		})
		e.out = map[dataplane.SAKey]*saState{}
		e.sad = newSAD(0)
		e.mu.Unlock()
	})
	return e.closeErr
}

func (e *Engine) closeResources() error {
	var errs []error
	if e.routes != nil {
		errs = append(errs, e.routes.close())
	}
	if e.tun != nil {
		errs = append(errs, e.tun.close())
	}
	for _, s := range append(append([]*batchSock{}, e.udp4...), e.udp6...) {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	if e.raw != nil {
		errs = append(errs, e.raw.close())
	}
	if e.xdp != nil {
		e.xdp.close() // after the TUN device: its goroutines must not be stuck writing to it
	}
	return errors.Join(errs...)
}

func (s *saState) zero() {
	if s.esp != nil {
		s.esp.Zero()
	}
	if s.ah != nil {
		s.ah.Zero()
	}
}

// InstallSA implements dataplane.Backend.
func (e *Engine) InstallSA(p dataplane.SAParams) error {
	if p.IfID != 0 || p.Mark != (dataplane.Mark{}) || p.SetMark != (dataplane.Mark{}) {
		return fmt.Errorf("SA %s: XFRM interface IDs and marks: %w", p.Name, dataplane.ErrUnsupported)
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
		return fmt.Errorf("SA %s: outer addresses %v and %v must be two addresses of one family", p.Name, p.Src, p.Dst)
	}
	p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
	key := dataplane.SAKey{Protocol: p.Protocol, SPI: p.SPI, Dst: p.Dst}
	sa := &saState{created: e.cfg.Now().UnixNano()}
	switch p.Protocol {
	case dataplane.ESP:
		if err := esp.InitSA(&sa.espMem, esp.Params{SPI: p.SPI, Encryption: p.Encryption, EncKey: p.EncKey,
			Integrity: p.Integrity, IntegKey: p.IntegKey, ESN: p.ESN, ReplayWindow: p.ReplayWindow,
			Outbound: p.Direction == dataplane.Out}); err != nil {
			return fmt.Errorf("SA %s (%s): %w", p.Name, key, err)
		}
		sa.esp = &sa.espMem
	case dataplane.AH:
		if p.Encap {
			return fmt.Errorf("SA %s (%s): AH cannot be carried in UDP (RFC 3948 encapsulates ESP only)", p.Name, key)
		}
		s, err := ah.NewSA(ah.Params{SPI: p.SPI, Integrity: ah.Integrity(p.Integrity), IntegKey: p.IntegKey,
			ESN: p.ESN, ReplayWindow: p.ReplayWindow})
		if err != nil {
			return fmt.Errorf("SA %s (%s): %w", p.Name, key, err)
		}
		sa.ah = s
	default:
		return fmt.Errorf("SA %s: unknown protocol %d", p.Name, p.Protocol)
	}
	addr, err := e.addressing(p.Protocol, p.Direction, key, dataplane.AddressUpdate{Src: p.Src, Dst: p.Dst,
		Encap: p.Encap, SrcPort: p.SrcPort, DstPort: p.DstPort, TCP: p.TCP})
	if err != nil {
		sa.zero()
		return fmt.Errorf("SA %s: %w", p.Name, err)
	}
	sa.addrMem = *addr
	sa.addr.Store(&sa.addrMem)
	sa.params = newSAConf(&p)
	sa.txTurn.Store(1)
	xdp := e.xdp != nil && isXDPSA(p.Protocol, p.Direction, addr)
	if xdp {
		e.xdp.add(addr)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.findLocked(key) != nil {
		if xdp {
			e.xdp.remove(addr)
		}
		sa.zero()
		return fmt.Errorf("SA %s (%s): %w", p.Name, key, dataplane.ErrSAExists)
	}
	if p.Direction == dataplane.In {
		e.sad.add(sa)
	} else {
		e.out[key] = sa
		e.bindPoliciesLocked(key, sa)
	}
	if e.log.Enabled(context.Background(), slog.LevelInfo) {
		e.log.Info("SA installed", "name", p.Name, "dir", p.Direction.String(), "proto", p.Protocol.String(),
			"spi", fmt.Sprintf("0x%08x", p.SPI), "src", p.Src, "dst", p.Dst, "mode", p.Mode.String(), "encap", p.Encap)
	}
	return nil
}

// addressing checks and prepares an SA's outer addressing: the UDP endpoint of an outbound ESP in
// UDP SA and the path MTU towards the peer. It makes system calls (netlink), so it runs before
// Engine.mu is taken.
func (e *Engine) addressing(proto dataplane.Protocol, dir dataplane.Direction, key dataplane.SAKey, u dataplane.AddressUpdate) (*saAddr, error) {
	if !u.Src.IsValid() || !u.Dst.IsValid() || u.Src.Is4() != u.Dst.Is4() {
		return nil, fmt.Errorf("%s: outer addresses %v and %v must be two addresses of one family", key, u.Src, u.Dst)
	}
	a := &saAddr{src: u.Src.Unmap(), dst: u.Dst.Unmap(), encap: u.Encap && !u.TCP, tcp: u.TCP, srcPort: u.SrcPort, dstPort: u.DstPort}
	if u.TCP {
		if proto != dataplane.ESP {
			return nil, fmt.Errorf("%s: only ESP can be carried in TCP (RFC 9329)", key)
		}
		// TCP segments the ESP stream itself: no path MTU applies to the packets.
		return a, nil
	}
	if u.Encap {
		if proto == dataplane.AH {
			return nil, fmt.Errorf("%s: AH cannot be carried in UDP (RFC 3948 encapsulates ESP only)", key)
		}
		if !e.natt {
			return nil, fmt.Errorf("%s: ESP in UDP needs the NAT-T port, which is disabled", key)
		}
		if dir == dataplane.Out && u.DstPort == 0 {
			return nil, fmt.Errorf("%s: ESP in UDP needs the peer's port", key)
		}
	} else if e.raw == nil {
		return nil, fmt.Errorf("%s: raw %s needs raw sockets, which are disabled", key, proto)
	}
	if e.routes != nil {
		// Outbound: refuses oversized packets (tooBig) and clamps MSS; inbound: clamps the MSS of
		// SYNs leaving the tunnel, whose replies go back to the peer.
		peer := a.dst
		if dir == dataplane.In {
			peer = a.src
		}
		a.outerMTU = e.routes.pathMTU(peer, e.cfg.FwMark)
	}
	return a, nil
}

// findLocked returns the SA installed under key, inbound or outbound.
func (e *Engine) findLocked(key dataplane.SAKey) *saState {
	if sa, ok := e.out[key]; ok {
		return sa
	}
	return e.sad.find(key)
}

// bindPoliciesLocked points the Protect policies that name key at sa (nil: at no SA).
func (e *Engine) bindPoliciesLocked(key dataplane.SAKey, sa *saState) {
	for pol := e.bySA[key]; pol != nil; pol = pol.nextSA {
		pol.sa.Store(sa)
	}
}

// DeleteSA implements dataplane.Backend. The SA's keys are wiped.
func (e *Engine) DeleteSA(key dataplane.SAKey) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sa := e.findLocked(key)
	if sa == nil {
		return fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
	}
	sa.setFlag(saDead | saDeleted)
	if sa.params.Direction == dataplane.In {
		e.sad.remove(sa)
		if a := sa.addr.Load(); e.xdp != nil && isXDPSA(sa.params.Protocol, dataplane.In, a) {
			e.xdp.remove(a)
		}
	} else {
		delete(e.out, key)
		e.bindPoliciesLocked(key, nil)
	}
	// Packets in flight may still hold the SA: the last of them wipes the keys.
	if sa.inflight.Load() == 0 {
		sa.zeroOnce()
	}
	if e.log.Enabled(context.Background(), slog.LevelInfo) {
		e.log.Info("SA deleted", "name", sa.params.Name, "dir", sa.params.Direction.String(), "spi", fmt.Sprintf("0x%08x", key.SPI))
	}
	return nil
}

// UpdateSAAddresses implements dataplane.Backend. The SA keeps its cipher state, sequence
// numbers, replay window and counters; packets in flight finish with the old addressing, the next
// ones use the new. Policies naming the SA are repointed to its new key.
func (e *Engine) UpdateSAAddresses(key dataplane.SAKey, u dataplane.AddressUpdate) (dataplane.SAKey, error) {
	e.mu.Lock()
	sa := e.findLocked(key)
	e.mu.Unlock()
	if sa == nil {
		return key, fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
	}
	addr, err := e.addressing(sa.params.Protocol, sa.params.Direction, key, u)
	if err != nil {
		return key, fmt.Errorf("SA %s: move: %w", sa.params.Name, err)
	}
	newKey := dataplane.SAKey{Protocol: key.Protocol, SPI: key.SPI, Dst: addr.dst}
	xdp := e.xdp != nil && isXDPSA(sa.params.Protocol, sa.params.Direction, addr)
	if xdp {
		e.xdp.add(addr) // before the SA uses the address; undone below if the move fails
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.findLocked(key) != sa {
		if xdp {
			e.xdp.remove(addr)
		}
		return key, fmt.Errorf("%s: %w", key, dataplane.ErrNoSA) // deleted meanwhile
	}
	if newKey != key && e.findLocked(newKey) != nil {
		if xdp {
			e.xdp.remove(addr)
		}
		return key, fmt.Errorf("SA %s: move to %s: %w", sa.params.Name, newKey, dataplane.ErrSAExists)
	}
	// The SAD finds inbound SAs by SPI, which a move keeps; the destination it compares comes from
	// the addressing published here.
	old := sa.addr.Swap(addr)
	if e.xdp != nil && sa.params.Direction == dataplane.In && isXDPSA(sa.params.Protocol, dataplane.In, old) {
		e.xdp.remove(old)
	}
	if sa.params.Direction == dataplane.Out && newKey != key {
		delete(e.out, key)
		e.out[newKey] = sa
		// The policies naming the old key now name the new one; policies that waited for an SA
		// under the new key bind too.
		moved := e.bySA[key]
		delete(e.bySA, key)
		for pol := moved; pol != nil; {
			next := pol.nextSA
			pol.params.SA = newKey
			pol.nextSA = e.bySA[newKey]
			e.bySA[newKey] = pol
			pol = next
		}
		e.bindPoliciesLocked(newKey, sa)
	}
	e.log.Info("SA moved", "name", sa.params.Name, "dir", sa.params.Direction.String(),
		"spi", fmt.Sprintf("0x%08x", key.SPI), "src", addr.src, "dst", addr.dst, "encap", addr.encap,
		"src_port", addr.srcPort, "dst_port", addr.dstPort)
	return newKey, nil
}

// InstallPolicy implements dataplane.Backend.
func (e *Engine) InstallPolicy(p dataplane.PolicyParams) (dataplane.PolicyID, error) {
	if !p.Kernel.IsZero() {
		return 0, fmt.Errorf("policy %s: XFRM interface IDs, marks, interfaces and forward policies: %w", p.Name, dataplane.ErrUnsupported)
	}
	if len(p.Local) == 0 || len(p.Remote) == 0 {
		return 0, fmt.Errorf("policy %s: needs local and remote traffic selectors", p.Name)
	}
	for _, list := range [][]ts.Selector{p.Local, p.Remote} {
		for _, s := range list {
			if !s.Valid() {
				return 0, fmt.Errorf("policy %s: invalid traffic selector %v", p.Name, s)
			}
		}
	}
	id := dataplane.PolicyID(e.nextPolicy.Add(1))
	pol := &policy{params: p, rank: dataplane.RankOf(id, &p), prefixes: remotePrefixes(&p)}
	// Routes are netlink requests: made before taking the engine's lock.
	if p.Route && (p.Action == dataplane.Protect || p.Action == dataplane.Deliver) && e.routes != nil {
		if err := e.routes.add(p.Local, pol.routePrefixes(), p.RouteMTU); err != nil {
			return 0, fmt.Errorf("policy %s: %w", p.Name, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.Action == dataplane.Protect && p.SA != (dataplane.SAKey{}) {
		e.linkLocked(pol)
		if sa, ok := e.out[p.SA]; ok {
			pol.sa.Store(sa)
		}
	}
	e.policies[id] = pol
	e.spd.add(pol)
	return id, nil
}

// SetPolicySA implements dataplane.Backend.
func (e *Engine) SetPolicySA(id dataplane.PolicyID, key dataplane.SAKey) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pol, ok := e.policies[id]
	if !ok {
		return dataplane.ErrNoPolicy
	}
	if pol.params.Action == dataplane.Protect {
		e.unlinkLocked(pol)
		pol.params.SA = key
		if key != (dataplane.SAKey{}) {
			e.linkLocked(pol)
		}
	}
	pol.params.SA = key
	if sa, ok := e.out[key]; ok {
		pol.sa.Store(sa)
	} else {
		pol.sa.Store(nil)
	}
	return nil
}

// linkLocked adds pol to the list of policies of the SA key it names.
func (e *Engine) linkLocked(pol *policy) {
	pol.nextSA = e.bySA[pol.params.SA]
	e.bySA[pol.params.SA] = pol
}

// unlinkLocked removes pol from the list of policies of the SA key it names.
func (e *Engine) unlinkLocked(pol *policy) {
	k := pol.params.SA
	for link := e.bySA[k]; link != nil; link = link.nextSA {
		if link == pol {
			break
		}
		if link.nextSA == pol {
			link.nextSA = pol.nextSA
			pol.nextSA = nil
			return
		}
	}
	if e.bySA[k] != pol {
		return
	}
	if pol.nextSA == nil {
		delete(e.bySA, k)
	} else {
		e.bySA[k] = pol.nextSA
	}
	pol.nextSA = nil
}

// SendIKE sends an IKE message from the NAT-T port, behind the non-ESP marker (RFC 3948 §2.2).
// The kernel picks the source address.
func (e *Engine) SendIKE(b []byte, remote netip.AddrPort) error {
	buf := make([]byte, 4+len(b))
	copy(buf[4:], b)
	return e.sendControl(buf, remote)
}

// SendKeepalive sends a NAT-keepalive, the single byte 0xFF (RFC 3948 §2.3), from the NAT-T port.
func (e *Engine) SendKeepalive(remote netip.AddrPort) error {
	return e.sendControl([]byte{0xff}, remote)
}

// sendControl sends one datagram from the first pipeline's NAT-T socket of remote's family.
func (e *Engine) sendControl(b []byte, remote netip.AddrPort) error {
	if !e.natt {
		return errors.New("the NAT-T port is disabled")
	}
	s := e.udp4[0]
	if remote.Addr().Is6() && !remote.Addr().Is4In6() {
		s = e.udp6[0]
	}
	if s == nil {
		return fmt.Errorf("no NAT-T socket for %v", remote)
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var sa unix.Sockaddr
	if remote.Addr().Is4() {
		sa = &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}
	} else {
		sa = &unix.SockaddrInet6{Addr: remote.Addr().As16(), Port: int(remote.Port())}
	}
	var err error
	werr := s.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, sa)
		return err != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return err
}

// NATTPort is the local UDP port for ESP in UDP and IKE behind NAT (0 when disabled).
func (e *Engine) NATTPort() uint16 {
	if !e.natt {
		return 0
	}
	return uint16(e.cfg.NATTPort)
}

// start launches the pipelines: for each queue an outbound goroutine (TUN queue to network) and an
// inbound goroutine per NAT-T socket, and one inbound goroutine per raw socket.
func (e *Engine) start() {
	for i, q := range e.tun.queues {
		var s4, s6 *batchSock
		if e.natt {
			s4, s6 = e.udp4[i], e.udp6[i]
		}
		tx := newTXPipeline(e, q, s4, s6)
		if e.raw != nil && !e.cfg.NoPacketRing {
			fallback := func(src, dst netip.Addr, pkts [][]byte) error {
				return e.raw.send(dataplane.ESP, src, dst, pkts)
			}
			ptx, err := newPacketTX(e.cfg.FwMark, e.cfg.Now, &e.stats.ring, fallback, e.wakeTurnWaiters)
			if err != nil {
				if i == 0 {
					e.log.Info("raw ESP goes through the raw socket alone", "reason", err)
				}
			} else {
				tx.ptx = ptx
			}
		}
		e.txp = append(e.txp, tx)
		e.wg.Add(1)
		go tx.run()
		for _, s := range []*batchSock{s4, s6} {
			if s != nil {
				e.wg.Add(1)
				go newRXPipeline(e, s, 0).run()
			}
		}
	}
	if e.raw != nil {
		for _, c := range e.raw.conns {
			e.wg.Add(1)
			go newRXPipeline(e, c.sock, c.proto).run()
		}
	}
}

func (e *Engine) isClosing() bool {
	select {
	case <-e.closing:
		return true
	default:
		return false
	}
}

// DeletePolicy implements dataplane.Backend.
func (e *Engine) DeletePolicy(id dataplane.PolicyID) error {
	e.mu.Lock()
	pol, ok := e.policies[id]
	if !ok {
		e.mu.Unlock()
		return dataplane.ErrNoPolicy
	}
	delete(e.policies, id)
	e.spd.remove(pol)
	if pol.params.Action == dataplane.Protect {
		e.unlinkLocked(pol)
	}
	e.mu.Unlock()
	if pol.params.Route && (pol.params.Action == dataplane.Protect || pol.params.Action == dataplane.Deliver) && e.routes != nil {
		return e.routes.remove(pol.routePrefixes())
	}
	return nil
}

// SAs implements dataplane.Backend.
func (e *Engine) SAs() []dataplane.SAInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]dataplane.SAInfo, 0, len(e.out)+e.sad.table.len())
	for k, sa := range e.out {
		out = append(out, dataplane.SAInfo{Key: k, Params: sa.listParams(), Stats: sa.stats()})
	}
	e.sad.table.each(func(_ spiKey, sa *saState) bool {
		out = append(out, dataplane.SAInfo{Key: sa.key(), Params: sa.listParams(), Stats: sa.stats()})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Params.Name != out[j].Params.Name {
			return out[i].Params.Name < out[j].Params.Name
		}
		return out[i].Key.SPI < out[j].Key.SPI
	})
	return out
}

// SAStats implements dataplane.Backend.
func (e *Engine) SAStats(key dataplane.SAKey) (dataplane.SAStats, bool) {
	e.mu.Lock()
	sa := e.findLocked(key)
	e.mu.Unlock()
	if sa == nil {
		return dataplane.SAStats{}, false
	}
	return sa.stats(), true
}

// listParams are the SA's parameters (without keys) with its current outer addressing.
func (s *saState) listParams() dataplane.SAParams {
	c := &s.params
	a := s.addr.Load()
	p := dataplane.SAParams{Name: c.Name, Direction: c.Direction, Protocol: c.Protocol, Mode: c.Mode, SPI: c.SPI,
		Src: a.src, Dst: a.dst, Encap: a.encap, SrcPort: a.srcPort, DstPort: a.dstPort,
		Encryption: c.Encryption, Integrity: c.Integrity, ESN: c.ESN, ReplayWindow: int(c.ReplayWindow),
		TFCPadding: int(c.TFCPadding), Local: c.Local, Remote: c.Remote, NotifyFirstInbound: c.NotifyFirstInbound}
	switch c.ClampMSS {
	case 0:
	case clampAuto:
		p.ClampMSS = dataplane.ClampMSSAuto
	default:
		p.ClampMSS = int(c.ClampMSS)
	}
	if c.Lifetime != nil {
		p.Lifetime = *c.Lifetime
	}
	return p
}

func (s *saState) stats() dataplane.SAStats {
	st := dataplane.SAStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Established: time.Unix(0, s.created)}
	if d := s.drops.Load(); d != nil {
		for i := range d {
			st.Drops[i] = d[i].Load()
		}
	}
	if t := s.lastUsed.Load(); t != 0 {
		st.LastUsed = time.Unix(0, t)
	}
	return st
}

// Stats implements dataplane.Backend.
func (e *Engine) Stats() dataplane.Stats {
	var st dataplane.Stats
	for i := range e.stats.drops {
		st.Drops[i] = e.stats.drops[i].Load()
	}
	st.TunPackets = e.stats.tunPackets.Load()
	st.NetPackets = e.stats.netPackets.Load()
	st.IKEPackets = e.stats.ikePackets.Load()
	st.KeepAlives = e.stats.keepAlives.Load()
	st.DummyPackets = e.stats.dummies.Load()
	st.Bypassed = e.stats.bypassed.Load()
	st.MSSClamped = e.stats.mssClamped.Load()
	return st
}

// PacketRingStats returns the counters of raw ESP sent through the pipelines' AF_PACKET TX rings
// (dataplane.PacketRingReporter); ok is false when no pipeline has a ring (no raw socket,
// Config.NoPacketRing, or AF_PACKET unavailable).
func (e *Engine) PacketRingStats() (st dataplane.PacketRingStats, ok bool) {
	for _, p := range e.txp {
		if p.ptx != nil {
			st.Rings++
		}
	}
	if st.Rings == 0 {
		return st, false
	}
	c := &e.stats.ring
	st.Sent, st.Sendtos, st.Retries = c.sent.Load(), c.sendtos.Load(), c.retries.Load()
	st.Broken, st.Recovered, st.RawSocket = c.broken.Load(), c.recovered.Load(), c.rawSocket.Load()
	return st, true
}

// account adds traffic to an SA's counters and raises lifetime events.
func (e *Engine) account(sa *saState, packets, bytes uint64) {
	if packets == 0 {
		return
	}
	p := sa.packets.Add(packets)
	b := sa.bytes.Add(bytes)
	sa.lastUsed.Store(e.cfg.Now().UnixNano())
	lt := sa.params.Lifetime
	if lt == nil {
		return
	}
	if (lt.HardBytes != 0 && b >= lt.HardBytes) || (lt.HardPackets != 0 && p >= lt.HardPackets) {
		sa.setFlag(saDead)
		e.expire(sa, true, "hard lifetime reached")
	} else if (lt.SoftBytes != 0 && b >= lt.SoftBytes) || (lt.SoftPackets != 0 && p >= lt.SoftPackets) {
		e.expire(sa, false, "soft lifetime reached")
	}
}

func (e *Engine) expire(sa *saState, hard bool, why string) {
	flag := saSoftSent
	if hard {
		flag = saHardSent
	}
	if !sa.setFlag(flag) {
		return
	}
	key := sa.key()
	e.log.Info("SA expired", "name", sa.params.Name, "spi", fmt.Sprintf("0x%08x", key.SPI), "hard", hard, "why", why)
	if f := e.cfg.Events.Expire; f != nil {
		f(dataplane.Expire{SA: key, Name: sa.params.Name, Hard: hard, Why: why})
	}
}

var _ dataplane.Backend = (*Engine)(nil)
var _ dataplane.XDPReporter = (*Engine)(nil)

// Inject implements dataplane.Injector: the packet is written to the TUN device (behind an
// all-zero virtio-net header: no offload), so the host receives it as if it had come through a
// tunnel. A TUN write is one syscall per packet, safe beside the pipelines' own writes.
func (e *Engine) Inject(pkt []byte) error {
	if e.tun == nil || len(e.tun.queues) == 0 {
		return errors.New("no TUN device")
	}
	var hdr [vnetHdrLen]byte
	iov := make([]unix.Iovec, 0, 2)
	return e.tun.queues[0].writev([][]byte{hdr[:], pkt}, &iov)
}
