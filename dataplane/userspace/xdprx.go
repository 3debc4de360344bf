package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
)

// Raw ESP received through AF_XDP (Config.RawESPXDP). A raw IP socket receives each ESP packet
// after the kernel has built an skb for it, run ip_rcv, looked up the input route, run the
// netfilter PREROUTING and INPUT hooks and queued a copy on the socket with a wake-up: per
// packet, since nothing batches ESP the way GRO batches UDP. With the XDP program of xdpprog.go
// attached to the interface the SAs' packets arrive on, the ESP to our SA addresses is copied
// straight from the driver into the UMEM of an AF_XDP socket (xsk.go), and the engine reads it in
// batches of up to a ring's worth, opens it in place and hands the inner packets to the same
// groWriter the raw socket's pipeline uses.
//
// Attachment follows the inbound raw ESP SAs: installing one looks up the interface the route to
// its peer leaves through (where the peer's packets normally arrive), attaches the program there
// once, with one AF_XDP socket per RX queue, and adds the SA's local address to the program's
// address map; deleting the last SA of an address removes it from the map. The program stays on
// the interface until the engine closes. It is attached through a BPF link, which the kernel
// removes with the engine's file descriptors: a crashed daemon leaves no program behind.
//
// What the program passes (fragments, IPv4 options, extension headers, a queue beyond the sockets
// made) and every interface where XDP is not possible still reaches the raw socket, which stays
// open. Packets taken through XDP do not see netfilter's PREROUTING and INPUT hooks.

// xdpDrop classifies frames the AF_XDP path discards before SA lookup.
type xdpDrop uint8

const (
	xdpDropMalformed xdpDrop = iota // not an ESP packet with a valid IP header (counted as malformed too)
	xdpDropOtherHost                // Ethernet destination not the interface's (promiscuous mode)
	xdpDropBadDesc                  // RX descriptor outside the UMEM
	numXDPDrops
)

func (d xdpDrop) String() string {
	switch d {
	case xdpDropMalformed:
		return "malformed"
	case xdpDropOtherHost:
		return "other_host"
	case xdpDropBadDesc:
		return "bad_descriptor"
	}
	return fmt.Sprintf("xdp_drop_%d", uint8(d))
}

// xdpStats are the AF_XDP path's counters.
type xdpStats struct {
	received atomic.Uint64 // frames read from AF_XDP RX rings
	batches  atomic.Uint64 // ring reads (received/batches is the mean batch)
	drops    [numXDPDrops]atomic.Uint64
}

// xdpRX attaches the program and runs the AF_XDP sockets of one engine.
type xdpRX struct {
	e    *Engine
	ns   netns.NsHandle // the engine's network namespace: sockets and links are made there
	nl   *netlink.Handle
	maps *xdpAddrMaps

	mu     sync.Mutex // guards the fields below; taken after Engine.mu where both are held
	addrs  map[netip.Addr]int
	ifs    map[int]*xdpIface
	failed map[int]bool // interfaces where attaching failed (logged once, not retried)
	closed bool
}

// xdpIface is the program on one interface and its sockets.
type xdpIface struct {
	ifindex int
	name    string
	mac     net.HardwareAddr
	mode    string // "native" or "generic"
	prog    *ebpf.Program
	xsks    *ebpf.Map
	link    link.Link
	socks   []*xsk
	done    []chan struct{}
}

// newXDPRX prepares the AF_XDP receive path; it must run in the engine's namespace (New does).
func newXDPRX(e *Engine) (*xdpRX, error) {
	h, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	x := &xdpRX{e: e, ns: h, addrs: map[netip.Addr]int{}, ifs: map[int]*xdpIface{}, failed: map[int]bool{}}
	if x.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if x.maps, err = newXDPAddrMaps(); err != nil {
		x.nl.Close()
		h.Close()
		return nil, err
	}
	return x, nil
}

// isXDPSA reports whether an SA's packets can arrive through XDP: inbound raw ESP.
func isXDPSA(proto dataplane.Protocol, dir dataplane.Direction, a *saAddr) bool {
	return proto == dataplane.ESP && dir == dataplane.In && !a.encap && !a.tcp
}

// add makes XDP deliver ESP for a's local address: it attaches the program to the interface
// towards the peer if needed, then adds the address to the map. Failures leave the SA to the raw
// socket and are logged once per interface.
func (x *xdpRX) add(a *saAddr) {
	ifindex := 0
	// With the engine's mark, as its own packets to the peer are routed: not into the TUN device.
	opts := &netlink.RouteGetOptions{SrcAddr: net.IP(a.dst.AsSlice()), Mark: x.e.cfg.FwMark}
	if rs, err := x.nl.RouteGetWithOptions(net.IP(a.src.AsSlice()), opts); err == nil && len(rs) > 0 {
		ifindex = rs[0].LinkIndex
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	if ifindex > 0 && x.ifs[ifindex] == nil && !x.failed[ifindex] {
		ifc, err := x.attach(ifindex)
		if err != nil {
			x.failed[ifindex] = true
			x.e.log.Info("raw ESP on this interface is received through the raw socket", "ifindex", ifindex, "reason", err)
		} else {
			x.ifs[ifindex] = ifc
			x.e.log.Info("raw ESP received through AF_XDP", "interface", ifc.name, "mode", ifc.mode, "queues", len(ifc.socks))
		}
	}
	x.addrs[a.dst]++
	if x.addrs[a.dst] == 1 {
		if err := x.mapFor(a.dst).Put(a.dst.AsSlice(), uint8(1)); err != nil {
			x.e.log.Info("XDP address map", "addr", a.dst, "err", err)
		}
	}
}

// remove undoes one add for a's local address.
func (x *xdpRX) remove(a *saAddr) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed || x.addrs[a.dst] == 0 {
		return
	}
	x.addrs[a.dst]--
	if x.addrs[a.dst] == 0 {
		delete(x.addrs, a.dst)
		_ = x.mapFor(a.dst).Delete(a.dst.AsSlice())
	}
}

func (x *xdpRX) mapFor(a netip.Addr) *ebpf.Map { return x.maps.addrsFor(a) }

// inNS runs fn on a thread in the engine's namespace: AF_XDP sockets bind to interfaces of the
// namespace they were created in, and links attach to interfaces of the caller's namespace.
func (x *xdpRX) inNS(fn func() error) error {
	runtime.LockOSThread()
	cur, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer cur.Close()
	if cur.Equal(x.ns) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := netns.Set(x.ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(cur); err == nil {
		runtime.UnlockOSThread() // else the thread stays locked and exits with the goroutine
	}
	return ferr
}

// attach creates the sockets of ifindex's RX queues and attaches the program, native mode first,
// generic (SKB) mode second. Called with x.mu held.
func (x *xdpRX) attach(ifindex int) (*xdpIface, error) {
	l, err := x.nl.LinkByIndex(ifindex)
	if err != nil {
		return nil, err
	}
	attrs := l.Attrs()
	ifc := &xdpIface{ifindex: ifindex, name: attrs.Name, mac: attrs.HardwareAddr}
	if len(attrs.HardwareAddr) != 6 || attrs.EncapType != "ether" {
		return nil, fmt.Errorf("interface %s is not Ethernet (%s)", attrs.Name, attrs.EncapType)
	}
	if attrs.MTU+ethHdrLen > xskMaxPacket {
		return nil, fmt.Errorf("interface %s: MTU %d is larger than an AF_XDP frame holds (%d)", attrs.Name, attrs.MTU, xskMaxPacket-ethHdrLen)
	}
	queues := max(attrs.NumRxQueues, 1)
	if queues > xdpMaxQueues {
		x.e.log.Info("raw ESP on the RX queues beyond the AF_XDP sockets goes through the raw socket", "interface", attrs.Name, "queues", queues, "sockets", xdpMaxQueues)
		queues = xdpMaxQueues
	}
	fail := func(err error) (*xdpIface, error) {
		ifc.close()
		return nil, fmt.Errorf("interface %s: %w", attrs.Name, err)
	}
	if ifc.xsks, err = newXSKMap(); err != nil {
		return fail(fmt.Errorf("XSKMAP: %w", err))
	}
	if ifc.prog, err = newESPXDPProgram(x.maps, ifc.xsks); err != nil {
		return fail(err)
	}
	err = x.inNS(func() error {
		for q := range queues {
			s, err := newXSK(ifindex, q)
			if err != nil {
				if q > 0 && errors.Is(err, unix.EINVAL) {
					// Netlink reports the queues allocated; bind refuses those beyond the
					// ones in use (real_num_rx_queues), where no packet arrives.
					break
				}
				return fmt.Errorf("queue %d: %w", q, err)
			}
			ifc.socks = append(ifc.socks, s)
			if err := ifc.xsks.Put(uint32(q), uint32(s.fd)); err != nil {
				return fmt.Errorf("XSKMAP entry %d: %w", q, err)
			}
		}
		var errs []error
		for _, m := range []struct {
			flag link.XDPAttachFlags
			name string
		}{{link.XDPDriverMode, "native"}, {link.XDPGenericMode, "generic"}} {
			lk, err := link.AttachXDP(link.XDPOptions{Program: ifc.prog, Interface: ifindex, Flags: m.flag})
			if err == nil {
				ifc.link, ifc.mode = lk, m.name
				return nil
			}
			errs = append(errs, fmt.Errorf("%s XDP: %w", m.name, err))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fail(err)
	}
	for _, s := range ifc.socks {
		done := make(chan struct{})
		ifc.done = append(ifc.done, done)
		x.e.wg.Add(1)
		go newXSKPipeline(x.e, ifc, s).run(done)
	}
	return ifc, nil
}

// close detaches the program from every interface, then closes the sockets (which ends their
// goroutines) and unmaps their memory once the goroutines are gone.
func (ifc *xdpIface) close() {
	if ifc.link != nil {
		_ = ifc.link.Close()
	}
	for _, s := range ifc.socks {
		if s.file != nil {
			s.file.Close()
			s.file = nil
			s.fd = -1
		}
	}
	for _, d := range ifc.done {
		<-d
	}
	for _, s := range ifc.socks {
		s.close()
	}
	if ifc.prog != nil {
		ifc.prog.Close()
	}
	if ifc.xsks != nil {
		ifc.xsks.Close()
	}
}

func (x *xdpRX) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.closed = true
	for _, ifc := range x.ifs {
		ifc.close()
	}
	x.maps.close()
	x.nl.Close()
	x.ns.Close()
}

// XDPStats returns the AF_XDP receive counters (dataplane.XDPReporter); ok is false when the path
// is not in use.
func (e *Engine) XDPStats() (st dataplane.XDPStats, ok bool) {
	if e.xdp == nil {
		return st, false
	}
	st.Interfaces = e.xdp.attached()
	st.Received, st.Batches = e.stats.xdp.received.Load(), e.stats.xdp.batches.Load()
	st.Drops = map[string]uint64{}
	for r := range numXDPDrops {
		st.Drops[r.String()] = e.stats.xdp.drops[r].Load()
	}
	rs := e.xdp.ringStats()
	st.KernelDropped, st.RxRingFull, st.FillRingEmpty = rs.Rx_dropped, rs.Rx_ring_full, rs.Rx_fill_ring_empty_descs
	return st, true
}

// ringStats sums the kernel's counters of the engine's AF_XDP sockets.
func (x *xdpRX) ringStats() unix.XDPStatistics {
	x.mu.Lock()
	defer x.mu.Unlock()
	var sum unix.XDPStatistics
	for _, ifc := range x.ifs {
		for _, s := range ifc.socks {
			if st, err := s.stats(); err == nil {
				sum.Rx_dropped += st.Rx_dropped
				sum.Rx_ring_full += st.Rx_ring_full
				sum.Rx_fill_ring_empty_descs += st.Rx_fill_ring_empty_descs
				sum.Rx_invalid_descs += st.Rx_invalid_descs
			}
		}
	}
	return sum
}

// attached returns the names of the interfaces with the program, with their mode.
func (x *xdpRX) attached() map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := map[string]string{}
	for _, ifc := range x.ifs {
		m[ifc.name] = ifc.mode
	}
	return m
}

// xskPipeline is the inbound goroutine of one AF_XDP socket.
type xskPipeline struct {
	rxPipeline
	ifc *xdpIface
	x   *xsk
}

func newXSKPipeline(e *Engine, ifc *xdpIface, s *xsk) *xskPipeline {
	return &xskPipeline{rxPipeline: rxPipeline{e: e, raw: dataplane.ESP, gro: groWriter{queues: e.tun.queues}, hdrs: make([]byte, 32<<10)},
		ifc: ifc, x: s}
}

func (p *xskPipeline) run(done chan struct{}) {
	defer p.e.wg.Done()
	defer close(done)
	rc, err := p.x.file.SyscallConn()
	if err != nil {
		p.e.log.Info("AF_XDP socket", "err", err)
		return
	}
	st := &p.e.stats.xdp
	// The reader takes what is on the RX ring as soon as it wakes, with no hold: waiting in
	// short sleeps for a stream to fill the ring (about 48 frames) made the GRO writer's TUN
	// writes and the reads larger and saved 7-10% CPU time per byte, but cost four streams
	// 8-10% of their throughput in every same-run comparison, and one stream gained nothing
	// steady (docs/performance.md, "The AF_XDP receiver's hold, decided").
	for {
		var n uint32
		err := rc.Read(func(uintptr) bool {
			n = p.x.rx.available()
			return n > 0
		})
		if err != nil {
			return // closed
		}
		n = min(n, xskFrames)
		p.hoff = 0
		for i := range n {
			addr, l := p.x.rx.rxDesc(i)
			frame, ok := xskFrame(p.x.umem, addr, l)
			if !ok {
				st.drops[xdpDropBadDesc].Add(1)
				continue
			}
			p.frame(frame)
		}
		p.gro.flush()
		p.account(nil)
		if p.gro.err != nil {
			p.e.log.Debug("TUN write", "err", p.gro.err)
			p.gro.err = nil
		}
		// The frames are free once written to the TUN device: back onto the fill ring, which has
		// room for every frame there is.
		for i := range n {
			addr, _ := p.x.rx.rxDesc(i)
			p.x.fill.putAddr(i, addr&^(xskFrameSize-1))
		}
		p.x.fill.submit(n)
		p.x.rx.release(n)
		st.received.Add(uint64(n))
		st.batches.Add(1)
	}
}

// frame handles one Ethernet frame from the RX ring.
func (p *xskPipeline) frame(f []byte) {
	e := p.e
	if len(f) >= 6 && [6]byte(f[:6]) != [6]byte(p.ifc.mac) {
		e.stats.xdp.drops[xdpDropOtherHost].Add(1)
		return
	}
	e.stats.netPackets.Add(1)
	src, dst, pkt, ok := parseESPFrame(f)
	if !ok {
		e.stats.xdp.drops[xdpDropMalformed].Add(1)
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return
	}
	p.deliverRaw(dataplane.ESP, binary.BigEndian.Uint32(pkt), src, dst, pkt)
}

// parseESPFrame checks an Ethernet frame the XDP program redirected — the kernel has not looked
// at it — the way ip_rcv and ipv6_rcv would, and returns the outer addresses and the ESP packet
// (SPI onwards, Ethernet padding cut off). IPv4 (RFC 791 §3.1): version 4, a header of at least
// 20 bytes whose checksum verifies, a total length covering the header and 8 bytes of ESP and
// within the frame, not a fragment, protocol 50; IPv6 (RFC 8200 §3): version 6, next header 50, a
// payload length of at least 8 within the frame.
func parseESPFrame(f []byte) (src, dst netip.Addr, pkt []byte, ok bool) {
	if len(f) < ethHdrLen {
		return src, dst, nil, false
	}
	ip := f[ethHdrLen:]
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 {
			return src, dst, nil, false
		}
		ihl := int(ip[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < ipv4HeaderLen || tl < ihl+8 || tl > len(ip) || ip[9] != protoESP ||
			binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || ipChecksum(ip[:ihl]) != 0 {
			return src, dst, nil, false
		}
		return netip.AddrFrom4([4]byte(ip[ipv4Src:])), netip.AddrFrom4([4]byte(ip[ipv4Dst:])), ip[ihl:tl], true
	case 0x86dd:
		if len(ip) < ipv6HeaderLen || ip[0]>>4 != 6 || ip[6] != protoESP {
			return src, dst, nil, false
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if pl < 8 || ipv6HeaderLen+pl > len(ip) {
			return src, dst, nil, false
		}
		return netip.AddrFrom16([16]byte(ip[ipv6Src:])), netip.AddrFrom16([16]byte(ip[ipv6Dst:])), ip[ipv6HeaderLen : ipv6HeaderLen+pl], true
	}
	return src, dst, nil, false
}
