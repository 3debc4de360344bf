// Package userspace is goipsec's packet engine: it applies ESP and AH in user space, reading
// plaintext from a TUN device and carrying IPsec packets over UDP (RFC 3948, port 4500) or raw IP
// sockets (protocols 50 and 51). It implements dataplane.Backend.
//
// Throughput comes from batching, as in wireguard-go: the TUN device is opened with virtio-net
// offloads (TSO/GSO, GRO) so one read or write moves up to 64 KiB, UDP is read and written with
// recvmmsg/sendmmsg and UDP GSO/GRO (golang.zx2c4.com/wireguard/conn), buffers come from pools,
// and crypto runs on worker goroutines while a per-direction sequencer keeps every SA's packets in
// order (sequence numbers are taken in read order; batches are written in read order).
//
// Lock order: Engine.mu, then routes.mu. The packet path takes no locks: it reads immutable
// snapshots of the SAD and SPD through atomic pointers.
package userspace

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

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
	// FwMark marks the engine's own packets so that policy routing keeps them off the TUN device
	// (default 0x4500). RouteTable holds the routes to the TUN device (default 4500), consulted by a
	// rule "not fwmark FwMark lookup RouteTable" at RulePriority (default 4500).
	FwMark       uint32
	RouteTable   int
	RulePriority int
	// Workers is the number of crypto goroutines; -1 processes each batch inline, in the goroutine
	// that read it (no hand-over between goroutines). Default: inline with up to two CPUs,
	// GOMAXPROCS workers with more.
	Workers int
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
	if c.Workers == 0 {
		// On one or two CPUs handing batches between goroutines costs more than it gains (measured:
		// about 20% of throughput); with more CPUs, crypto workers spread a flow over them.
		c.Workers = runtime.GOMAXPROCS(0)
		if c.Workers <= 2 {
			c.Workers = -1
		}
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
	tun    tun.Device
	tunIdx int
	bind   conn.Bind // UDP 4500; nil when disabled
	// udpReceivers are the bind's receive functions (IPv4, IPv6).
	udpReceivers []conn.ReceiveFunc
	raw          *rawSockets
	routes       *routeTable

	sad atomic.Pointer[sadSnapshot]
	spd atomic.Pointer[spdSnapshot]

	mu         sync.Mutex // guards the fields below and serialises SAD/SPD updates
	sas        map[dataplane.SAKey]*saState
	policies   map[dataplane.PolicyID]*policy
	nextPolicy dataplane.PolicyID

	stats engineStats
	// inline: readers seal/open and write their batches themselves (Workers = -1).
	inline bool

	pools    pools
	outWork  chan *batch
	inWork   chan *batch
	outOrder chan *batch
	inOrder  chan *batch
	closing  chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Once
	closeErr error
}

// engineStats are counters not attributable to one SA.
type engineStats struct {
	drops                                                             [len(dataplane.DropCounts{})]atomic.Uint64
	tunPackets, netPackets, ikePackets, keepAlives, dummies, bypassed atomic.Uint64
}

// saState is one installed SA: its transform, addressing and counters.
type saState struct {
	key     dataplane.SAKey
	params  dataplane.SAParams // keys cleared
	esp     *esp.SA
	ah      *ah.SA
	ep      conn.Endpoint // UDP destination for outbound encapsulated SAs
	created time.Time
	// outerMTU is the path MTU towards the peer (outbound SAs): larger IPsec packets of inner
	// packets that may not be fragmented are refused with an ICMP "too big" (RFC 4301 §8).
	outerMTU int

	packets, bytes atomic.Uint64
	drops          [len(dataplane.DropCounts{})]atomic.Uint64
	lastUsed       atomic.Int64 // unix nanoseconds
	softSent       atomic.Bool
	hardSent       atomic.Bool
	dead           atomic.Bool // hard lifetime or sequence space exhausted: no more traffic

	// inflight counts packets on their way through the engine with this SA; the keys are wiped
	// when the SA is deleted and the last of them is done, never under a running Seal or Open.
	inflight atomic.Int64
	deleted  atomic.Bool
	zeroed   atomic.Bool
}

// hold pins the SA for one packet. It fails once the SA is deleted. The order (count, then check)
// pairs with DeleteSA's (mark, then check the count): one of the two always sees the other.
func (s *saState) hold() bool {
	s.inflight.Add(1)
	if s.deleted.Load() {
		s.release()
		return false
	}
	return true
}

// release ends a hold; the last release of a deleted SA wipes its keys.
func (s *saState) release() {
	if s.inflight.Add(-1) == 0 && s.deleted.Load() {
		s.zeroOnce()
	}
}

func (s *saState) zeroOnce() {
	if s.zeroed.CompareAndSwap(false, true) {
		s.zero()
	}
}

func (s *saState) drop(r dataplane.DropReason) { s.drops[r].Add(1) }

// policy is one installed outbound policy.
type policy struct {
	id     dataplane.PolicyID
	params dataplane.PolicyParams
	sa     atomic.Pointer[saState] // outbound SA for Protect, nil until installed
	// acquired rate-limits Acquire events (unix nanoseconds of the last one).
	acquired atomic.Int64
}

// sadSnapshot maps inbound (protocol, SPI) to SAs. Inbound SPIs are chosen by this host, so the
// SPI alone normally identifies the SA (RFC 4301 §4.1); the destination disambiguates manual SAs
// that reuse an SPI for different local addresses.
type sadSnapshot struct {
	in map[spiKey][]*saState
}

type spiKey struct {
	proto dataplane.Protocol
	spi   uint32
}

func (s *sadSnapshot) lookup(proto dataplane.Protocol, spi uint32, dst netip.Addr) *saState {
	list := s.in[spiKey{proto, spi}]
	if len(list) == 1 {
		return list[0]
	}
	for _, sa := range list {
		if sa.key.Dst == dst {
			return sa
		}
	}
	return nil
}

// spdSnapshot is the ordered outbound policy list.
type spdSnapshot struct {
	policies []*policy
}

// lookup returns the first policy, in priority order, that matches the packet.
func (s *spdSnapshot) lookup(f *flow) *policy {
	for _, p := range s.policies {
		if p.matches(f) {
			return p
		}
	}
	return nil
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
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		sas:      make(map[dataplane.SAKey]*saState),
		policies: make(map[dataplane.PolicyID]*policy),
		outWork:  make(chan *batch, queueBatches),
		inWork:   make(chan *batch, queueBatches),
		outOrder: make(chan *batch, queueBatches),
		inOrder:  make(chan *batch, queueBatches),
		closing:  make(chan struct{}),
	}
	e.pools.init()
	e.inline = cfg.Workers < 0
	e.sad.Store(&sadSnapshot{in: map[spiKey][]*saState{}})
	e.spd.Store(&spdSnapshot{})

	dev, err := tun.CreateTUN(cfg.TunName, cfg.MTU)
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
	e.tunIdx = e.routes.tunIndex
	if cfg.NATTPort > 0 {
		b := conn.NewStdNetBind()
		fns, _, err := b.Open(uint16(cfg.NATTPort))
		if err != nil {
			return fail(fmt.Errorf("open UDP port %d for ESP in UDP: %w", cfg.NATTPort, err))
		}
		if err := b.SetMark(cfg.FwMark); err != nil {
			b.Close()
			return fail(fmt.Errorf("set fwmark on UDP socket: %w", err))
		}
		e.bind = b
		e.udpReceivers = fns
	}
	if !cfg.NoRawSockets {
		if e.raw, err = openRawSockets(cfg.FwMark); err != nil {
			return fail(err)
		}
	}
	e.start()
	return e, nil
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
		e.closeErr = e.closeResources()
		e.wg.Wait()
		e.mu.Lock()
		for _, sa := range e.sas {
			sa.zeroOnce()
		}
		e.sas = map[dataplane.SAKey]*saState{}
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
		errs = append(errs, e.tun.Close())
	}
	if e.bind != nil {
		errs = append(errs, e.bind.Close())
	}
	if e.raw != nil {
		errs = append(errs, e.raw.close())
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
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
		return fmt.Errorf("SA %s: outer addresses %v and %v must be two addresses of one family", p.Name, p.Src, p.Dst)
	}
	p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
	key := dataplane.SAKey{Protocol: p.Protocol, SPI: p.SPI, Dst: p.Dst}
	sa := &saState{key: key, created: e.cfg.Now()}
	switch p.Protocol {
	case dataplane.ESP:
		s, err := esp.NewSA(esp.Params{SPI: p.SPI, Encryption: p.Encryption, EncKey: p.EncKey,
			Integrity: p.Integrity, IntegKey: p.IntegKey, ESN: p.ESN, ReplayWindow: p.ReplayWindow})
		if err != nil {
			return fmt.Errorf("SA %s (%s): %w", p.Name, key, err)
		}
		sa.esp = s
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
	if p.Encap {
		if e.bind == nil {
			return fmt.Errorf("SA %s (%s): ESP in UDP needs the NAT-T port, which is disabled", p.Name, key)
		}
		if p.Direction == dataplane.Out {
			ep, err := e.bind.ParseEndpoint(netip.AddrPortFrom(p.Dst, p.DstPort).String())
			if err != nil {
				sa.zero()
				return fmt.Errorf("SA %s: %w", p.Name, err)
			}
			sa.ep = ep
		}
	} else if e.raw == nil {
		sa.zero()
		return fmt.Errorf("SA %s (%s): raw %s needs raw sockets, which are disabled", p.Name, key, p.Protocol)
	}
	// Keep the parameters for listing, without key material.
	p.EncKey, p.IntegKey = nil, nil
	sa.params = p
	if p.Direction == dataplane.Out {
		sa.outerMTU = e.routes.pathMTU(p.Dst, e.cfg.FwMark)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sas[key]; ok {
		sa.zero()
		return fmt.Errorf("SA %s (%s): %w", p.Name, key, dataplane.ErrSAExists)
	}
	e.sas[key] = sa
	if p.Direction == dataplane.In {
		e.publishSADLocked()
	} else {
		for _, pol := range e.policies {
			if pol.params.Action == dataplane.Protect && pol.params.SA == key {
				pol.sa.Store(sa)
			}
		}
	}
	e.log.Info("SA installed", "name", p.Name, "dir", p.Direction.String(), "proto", p.Protocol.String(),
		"spi", fmt.Sprintf("0x%08x", p.SPI), "src", p.Src, "dst", p.Dst, "mode", p.Mode.String(), "encap", p.Encap)
	return nil
}

// DeleteSA implements dataplane.Backend. The SA's keys are wiped.
func (e *Engine) DeleteSA(key dataplane.SAKey) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sa, ok := e.sas[key]
	if !ok {
		return fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
	}
	delete(e.sas, key)
	sa.dead.Store(true)
	sa.deleted.Store(true)
	if sa.params.Direction == dataplane.In {
		e.publishSADLocked()
	} else {
		for _, pol := range e.policies {
			pol.sa.CompareAndSwap(sa, nil)
		}
	}
	// Packets in flight may still hold the SA: the last of them wipes the keys.
	if sa.inflight.Load() == 0 {
		sa.zeroOnce()
	}
	e.log.Info("SA deleted", "name", sa.params.Name, "dir", sa.params.Direction.String(), "spi", fmt.Sprintf("0x%08x", key.SPI))
	return nil
}

// UpdateSAAddresses implements dataplane.Backend.
func (e *Engine) UpdateSAAddresses(key dataplane.SAKey, u dataplane.AddressUpdate) (dataplane.SAKey, error) {
	return key, fmt.Errorf("%s: moving an SA to new addresses: %w", key, dataplane.ErrUnsupported)
}

func (e *Engine) publishSADLocked() {
	snap := &sadSnapshot{in: make(map[spiKey][]*saState)}
	for k, sa := range e.sas {
		if sa.params.Direction == dataplane.In {
			sk := spiKey{k.Protocol, k.SPI}
			snap.in[sk] = append(snap.in[sk], sa)
		}
	}
	e.sad.Store(snap)
}

// InstallPolicy implements dataplane.Backend.
func (e *Engine) InstallPolicy(p dataplane.PolicyParams) (dataplane.PolicyID, error) {
	if len(p.Local) == 0 || len(p.Remote) == 0 {
		return 0, fmt.Errorf("policy %s: needs local and remote traffic selectors", p.Name)
	}
	for _, s := range append(append([]ts.Selector{}, p.Local...), p.Remote...) {
		if !s.Valid() {
			return 0, fmt.Errorf("policy %s: invalid traffic selector %v", p.Name, s)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextPolicy++
	pol := &policy{id: e.nextPolicy, params: p}
	if p.Action == dataplane.Protect {
		if sa, ok := e.sas[p.SA]; ok && sa.params.Direction == dataplane.Out {
			pol.sa.Store(sa)
		}
	}
	if p.Route && (p.Action == dataplane.Protect || p.Action == dataplane.Deliver) {
		if err := e.routes.add(pol.id, p); err != nil {
			return 0, fmt.Errorf("policy %s: %w", p.Name, err)
		}
	}
	e.policies[pol.id] = pol
	e.publishSPDLocked()
	return pol.id, nil
}

// SetPolicySA implements dataplane.Backend.
func (e *Engine) SetPolicySA(id dataplane.PolicyID, key dataplane.SAKey) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pol, ok := e.policies[id]
	if !ok {
		return dataplane.ErrNoPolicy
	}
	// params is read by the packet path only for Action and selectors, which do not change here.
	pol.params.SA = key
	if sa, ok := e.sas[key]; ok && sa.params.Direction == dataplane.Out {
		pol.sa.Store(sa)
	} else {
		pol.sa.Store(nil)
	}
	return nil
}

// SendIKE sends an IKE message from the NAT-T port, behind the non-ESP marker (RFC 3948 §2.2).
// The kernel picks the source address.
func (e *Engine) SendIKE(b []byte, remote netip.AddrPort) error {
	if e.bind == nil {
		return errors.New("the NAT-T port is disabled")
	}
	ep, err := e.bind.ParseEndpoint(remote.String())
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(b))
	copy(buf[4:], b)
	return e.bind.Send([][]byte{buf}, ep)
}

// SendKeepalive sends a NAT-keepalive, the single byte 0xFF (RFC 3948 §2.3), from the NAT-T port.
func (e *Engine) SendKeepalive(remote netip.AddrPort) error {
	if e.bind == nil {
		return errors.New("the NAT-T port is disabled")
	}
	ep, err := e.bind.ParseEndpoint(remote.String())
	if err != nil {
		return err
	}
	return e.bind.Send([][]byte{{0xff}}, ep)
}

// NATTPort is the local UDP port for ESP in UDP and IKE behind NAT (0 when disabled).
func (e *Engine) NATTPort() uint16 {
	if e.bind == nil {
		return 0
	}
	return uint16(e.cfg.NATTPort)
}

// DeletePolicy implements dataplane.Backend.
func (e *Engine) DeletePolicy(id dataplane.PolicyID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pol, ok := e.policies[id]
	if !ok {
		return dataplane.ErrNoPolicy
	}
	delete(e.policies, id)
	e.publishSPDLocked()
	if pol.params.Route {
		return e.routes.remove(id)
	}
	return nil
}

func (e *Engine) publishSPDLocked() {
	list := make([]*policy, 0, len(e.policies))
	for _, p := range e.policies {
		list = append(list, p)
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.params.Priority != b.params.Priority {
			return a.params.Priority < b.params.Priority
		}
		if sa, sb := specificity(a.params.Remote), specificity(b.params.Remote); sa != sb {
			return sa > sb
		}
		if sa, sb := specificity(a.params.Local), specificity(b.params.Local); sa != sb {
			return sa > sb
		}
		return a.id < b.id
	})
	e.spd.Store(&spdSnapshot{policies: list})
}

// specificity ranks selector lists: longer prefixes and restricted protocols/ports rank higher.
func specificity(list []ts.Selector) int {
	best := 0
	for _, s := range list {
		n := 0
		if p, ok := s.Prefix(); ok {
			n = p.Bits() * 4
		}
		if s.Protocol != 0 {
			n += 2
		}
		if !s.AnyPort() {
			n++
		}
		best = max(best, n)
	}
	return best
}

// SAs implements dataplane.Backend.
func (e *Engine) SAs() []dataplane.SAInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]dataplane.SAInfo, 0, len(e.sas))
	for k, sa := range e.sas {
		out = append(out, dataplane.SAInfo{Key: k, Params: sa.params, Stats: sa.stats()})
	}
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
	sa, ok := e.sas[key]
	e.mu.Unlock()
	if !ok {
		return dataplane.SAStats{}, false
	}
	return sa.stats(), true
}

func (s *saState) stats() dataplane.SAStats {
	st := dataplane.SAStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Established: s.created}
	for i := range s.drops {
		st.Drops[i] = s.drops[i].Load()
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
	return st
}

// account adds traffic to an SA's counters and raises lifetime events.
func (e *Engine) account(sa *saState, packets, bytes uint64) {
	if packets == 0 {
		return
	}
	p := sa.packets.Add(packets)
	b := sa.bytes.Add(bytes)
	sa.lastUsed.Store(e.cfg.Now().UnixNano())
	lt := &sa.params.Lifetime
	if (lt.HardBytes != 0 && b >= lt.HardBytes) || (lt.HardPackets != 0 && p >= lt.HardPackets) {
		sa.dead.Store(true)
		e.expire(sa, true, "hard lifetime reached")
	} else if (lt.SoftBytes != 0 && b >= lt.SoftBytes) || (lt.SoftPackets != 0 && p >= lt.SoftPackets) {
		e.expire(sa, false, "soft lifetime reached")
	}
}

func (e *Engine) expire(sa *saState, hard bool, why string) {
	flag := &sa.softSent
	if hard {
		flag = &sa.hardSent
	}
	if !flag.CompareAndSwap(false, true) {
		return
	}
	e.log.Info("SA expired", "name", sa.params.Name, "spi", fmt.Sprintf("0x%08x", sa.key.SPI), "hard", hard, "why", why)
	if f := e.cfg.Events.Expire; f != nil {
		f(dataplane.Expire{SA: sa.key, Name: sa.params.Name, Hard: hard, Why: why})
	}
}

var _ dataplane.Backend = (*Engine)(nil)

// Inject implements dataplane.Injector: the packet is written to the TUN device, so the host
// receives it as if it had come through a tunnel.
func (e *Engine) Inject(pkt []byte) error {
	if e.tun == nil {
		return errors.New("no TUN device")
	}
	buf := make([]byte, tunOffset+len(pkt))
	copy(buf[tunOffset:], pkt)
	_, err := e.tun.Write([][]byte{buf}, tunOffset)
	return err
}
