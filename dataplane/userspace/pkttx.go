package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Raw ESP leaves through an AF_PACKET socket with a TX ring (packet(7); the kernel's
// Documentation/networking/packet_mmap.rst, "TX ring"): the pipeline writes each packet with its
// Ethernet and IP headers into a frame of a ring shared with the kernel, and one sendto hands all
// the frames written to the device. A raw IP socket instead routes every packet on its own
// (route lookup, netfilter OUTPUT and POSTROUTING, neighbour lookup, IP output), which was most of
// the sender's kernel time; ESP in UDP avoids that with UDP GSO, which the kernel has no
// equivalent of for ESP outside its own ESP offload.
//
// The ring is used for ESP (not AH) on Ethernet-like interfaces when the peer's next hop has a
// resolved link-layer address; everything else — no route, a neighbour not yet resolved, a
// packet larger than the interface MTU (the kernel would fragment it) or than a frame, a full
// ring, an interface that is not Ethernet (loopback, a tunnel) — goes through the raw ESP socket
// as before. The packets go through the device's queueing discipline (no PACKET_QDISC_BYPASS),
// so traffic shaping, netdev egress hooks and packet captures still see them; netfilter's IP
// hooks (OUTPUT, POSTROUTING) do not.

const (
	txRingFrameSize = 2048 // an MTU-sized packet with its headers fits
	txRingFrames    = 512
	// txFrameData is where a TX frame's data starts: TPACKET2_HDRLEN less sizeof(struct
	// sockaddr_ll), 52 - 20 (packet_mmap.rst: "the data starts at tp_hdrlen - sizeof(struct
	// sockaddr_ll)" unless PACKET_TX_HAS_OFF is set).
	txFrameData = 32
	ethHdrLen   = 14
	// l2PathTTL is how long a resolved route and neighbour stay cached before they are looked up
	// again: routes and neighbours change, and a stale neighbour must be revalidated by the kernel.
	l2PathTTL = time.Second
)

// Frame status values of TPACKET_V2 (linux/if_packet.h): a frame is ours when AVAILABLE, the
// kernel's after we set SEND_REQUEST until it has sent it; WRONG_FORMAT marks a frame it refused.
const (
	tpStatusAvailable   = unix.TP_STATUS_AVAILABLE
	tpStatusSendRequest = unix.TP_STATUS_SEND_REQUEST
	tpStatusWrongFormat = unix.TP_STATUS_WRONG_FORMAT
)

// Neighbour states (linux/neighbour.h) in which the link-layer address may be used. In STALE the
// address is still valid but unconfirmed: the kernel revalidates it only when it sends through
// the entry itself, so a refresh that finds it STALE sends one batch through the raw socket.
const (
	nudReachable = 0x02
	nudStale     = 0x04
	nudDelay     = 0x08
	nudProbe     = 0x10
	nudNoARP     = 0x40
	nudPermanent = 0x80
)

// l2Path is where packets from src to dst leave: the interface and the Ethernet header.
type l2Path struct {
	ok      bool // usable through the ring
	stale   bool // neighbour STALE: send the next batch through the kernel
	ifindex int
	mtu     int
	eth     [ethHdrLen]byte
	at      time.Time
}

// packetTX is one pipeline's AF_PACKET socket and TX ring, and the kicker that has the kernel
// send what the pipeline wrote into the ring.
//
// The pipeline only fills frames; a goroutine of its own, the kicker, makes the sendto calls. In
// one sendto the kernel does, on the calling thread, all the per-packet work of every frame
// marked SEND_REQUEST — an skb per frame, the device's transmit, and on a veth even the peer's
// receive in softirq — which was about half of the sending daemon's time; on the pipeline's
// thread it kept the next batch from being sealed meanwhile. The ring keeps the order by itself:
// the kernel takes SEND_REQUEST frames strictly in ring order, from the frame after the last one
// it took, and stops at the first frame not marked; a frame marked while a sendto runs is taken
// by it or by the next one. So the pipeline marks frames, counts them in queued and signals the
// kicker once per batch; the kicker sends until kicked catches up with queued.
//
// Whenever a packet of an SA leaves the pipeline another way (UDP or TCP after the SA moved), the
// pipeline first waits until the kicker has handed every frame of that SA written before it to
// the device (waitSA; the ring remembers which SAs have frames not yet kicked), so that packets of
// one SA leave in the order of their sequence numbers; packets of other SAs do not wait. Packets
// the ring cannot take, which go through the raw socket, and frames for another interface wait
// for every frame before them (drain: one sendto sends every marked frame through the one
// interface it names). Turns of SAs shared with other pipelines (tx.go, saState.txTurn) that the
// pipeline would give up while its frames still wait for the kicker are given up by the kicker,
// after the sendto that sent them (deferTurn).
//
// A sendto that fails for good (the interface went down or away, a frame refused) leaves the
// frames it did not send marked, and the kernel's position at the first of them. The kicker marks
// the ring broken and goes on as if it had sent them; the pipeline, at its next use of the ring,
// takes the frames back, sends their packets through the raw socket in order and resumes filling
// the ring at the kernel's position (recover).
type packetTX struct {
	fd    int
	ring  []byte
	head  int // the next frame to fill
	nl    *netlink.Handle
	mark  uint32
	now   func() time.Time
	paths map[[2]netip.Addr]*l2Path
	id    uint16 // IPv4 identification of the next packet
	ctr   *ringCounters
	// fallback sends ESP packets from src to dst through the raw socket: those taken back from
	// the ring after a failed sendto.
	fallback func(src, dst netip.Addr, pkts [][]byte) error

	// queued counts the frames marked SEND_REQUEST; only the pipeline changes it.
	queued atomic.Uint64
	// kicked is what queued was when the kicker last started a sendto that ended (sent, or
	// failed for good); the frames counted up to it are the kernel's. Stored under turnMu.
	kicked atomic.Uint64
	// ifindex is the interface of the frames not yet kicked (set by the pipeline while none are).
	ifindex atomic.Int32
	// broken: a sendto failed for good; the pipeline takes back what is left (recover).
	broken atomic.Bool
	// wake carries the pipeline's signal that frames are queued (1-buffered: one signal per
	// batch, coalesced while the kicker is busy); done the kicker's that kicked advanced; stop
	// ends the kicker, which closes exited when it has.
	wake, done, stop, exited chan struct{}
	// turnMu guards turns, the SA turns to give up once kicked reaches their frame count. It
	// stands alone: wakeTurns (which takes Engine.turnMu) runs after it is released.
	turnMu    sync.Mutex
	turns     []ringTurn
	wakeTurns func()
	// retries counts sendto calls in a row that found the socket's send buffer or the device's
	// queue full (the kicker's alone).
	retries int
	// afterSendto, for tests, runs on the kicker after each sendto returns and before kicked
	// records it: frames queued then must go with the next sendto.
	afterSendto func()
	// beforeSendto, for tests, runs on the kicker before each sendto.
	beforeSendto func()

	// sas are the SAs with frames queued and not yet kicked, each with the value of queued after
	// its last frame (waitSA); overflow, when more than maxRingSAs SAs were queued at once, the
	// value of queued every SA then waits for. The pipeline's alone.
	sas      []ringSA
	overflow uint64
}

// ringSA is an SA with frames in the ring: the last of them is frame at (counted as queued).
type ringSA struct {
	sa *saState
	at uint64
}

// maxRingSAs bounds packetTX.sas: a pipeline rarely sends for more SAs between two kicks.
const maxRingSAs = 32

// ringCounters are the counters of an engine's TX rings (all pipelines add to the same ones),
// reported as dataplane.PacketRingStats.
type ringCounters struct {
	// sent counts packets the kernel took from the rings; sendtos the kicker's sendto calls.
	sent, sendtos atomic.Uint64
	// retries counts sendto calls that found the socket's send buffer or the device's queue
	// full (EAGAIN, ENOBUFS), retried by the kicker.
	retries atomic.Uint64
	// broken counts the times a ring was given up after a sendto failed for good (or after
	// kickRetries retries in a row); recovered the packets then taken back from it and sent
	// through the raw socket.
	broken, recovered atomic.Uint64
	// rawSocket counts raw ESP packets of a pipeline with a ring that went through the raw
	// socket instead: no usable link-layer path, larger than the MTU, or the ring full.
	rawSocket atomic.Uint64
}

// ringTurn is an SA's turn to be given to next once the kicker has sent the frames queued up
// to at.
type ringTurn struct {
	sa   *saState
	next uint64
	at   uint64
}

// newPacketTX opens an AF_PACKET socket with a TX ring. It fails where AF_PACKET is unavailable
// (no CAP_NET_RAW, a sandbox without packet sockets); the caller then sends through the raw socket.
// It starts the kicker; fallback sends ESP through the raw socket, wakeTurns wakes pipelines
// waiting for an SA's turn.
func newPacketTX(mark uint32, now func() time.Time, ctr *ringCounters, fallback func(src, dst netip.Addr, pkts [][]byte) error, wakeTurns func()) (*packetTX, error) {
	// Protocol 0: the socket sends only, and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	t := &packetTX{fd: fd, mark: mark, now: now, paths: map[[2]netip.Addr]*l2Path{}, ctr: ctr,
		fallback: fallback, wakeTurns: wakeTurns,
		wake: make(chan struct{}, 1), done: make(chan struct{}, 1), stop: make(chan struct{}), exited: make(chan struct{})}
	fail := func(what string, err error) (*packetTX, error) {
		t.close()
		return nil, fmt.Errorf("AF_PACKET TX ring: %s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("PACKET_VERSION", err)
	}
	// The mark is seen by the queueing discipline and egress hooks (routing is ours).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		return fail("SO_MARK", err)
	}
	req := unix.TpacketReq{Block_size: txRingFrameSize * 32, Block_nr: txRingFrames / 32, Frame_size: txRingFrameSize, Frame_nr: txRingFrames}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return fail("PACKET_TX_RING", err)
	}
	if t.ring, err = unix.Mmap(fd, 0, txRingFrames*txRingFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap", err)
	}
	if t.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return fail("netlink", err)
	}
	go t.kicker()
	return t, nil
}

// close stops the kicker (which first kicks what is queued) and then releases the socket and
// the ring: the ring is unmapped only once nothing can call sendto on it.
func (t *packetTX) close() {
	if t.stop != nil {
		close(t.stop)
		<-t.exited
		t.stop = nil
	}
	if t.ring != nil {
		_ = unix.Munmap(t.ring)
		t.ring = nil
	}
	if t.nl != nil {
		t.nl.Close()
		t.nl = nil
	}
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// path returns the cached path from src to dst, looked up again after l2PathTTL.
func (t *packetTX) path(src, dst netip.Addr) *l2Path {
	k := [2]netip.Addr{src, dst}
	now := t.now()
	p := t.paths[k]
	if p != nil && now.Sub(p.at) < l2PathTTL && !now.Before(p.at) {
		return p
	}
	if p == nil {
		if len(t.paths) >= 4096 {
			clear(t.paths) // peers come and go: keep the cache bounded
		}
		p = &l2Path{}
		t.paths[k] = p
	}
	*p = t.resolve(src, dst)
	p.at = now
	return p
}

// resolve asks the kernel for the route from src to dst (with the engine's mark, as the raw socket
// would be routed) and the link-layer address of its next hop.
func (t *packetTX) resolve(src, dst netip.Addr) l2Path {
	var p l2Path
	opts := &netlink.RouteGetOptions{Mark: t.mark}
	if src.IsValid() && !src.IsUnspecified() {
		opts.SrcAddr = src.AsSlice()
	}
	routes, err := t.nl.RouteGetWithOptions(dst.AsSlice(), opts)
	if err != nil || len(routes) == 0 || routes[0].Type != unix.RTN_UNICAST {
		return p
	}
	r := routes[0]
	link, err := t.nl.LinkByIndex(r.LinkIndex)
	if err != nil {
		return p
	}
	la := link.Attrs()
	if la.EncapType != "ether" || len(la.HardwareAddr) != 6 {
		return p // loopback, tunnels, PPP: no Ethernet header to write
	}
	nh := dst
	if len(r.Gw) > 0 {
		gw, ok := netip.AddrFromSlice(r.Gw)
		if !ok {
			return p
		}
		nh = gw.Unmap()
	}
	family := unix.AF_INET
	if nh.Is6() {
		family = unix.AF_INET6
	}
	neighs, err := t.nl.NeighList(r.LinkIndex, family)
	if err != nil {
		return p
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != nh || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(nudReachable|nudStale|nudDelay|nudProbe|nudNoARP|nudPermanent) == 0 {
			return p // INCOMPLETE or FAILED
		}
		p.ok, p.stale = true, n.State&nudStale != 0
		p.ifindex, p.mtu = r.LinkIndex, la.MTU
		etherType := uint16(unix.ETH_P_IP)
		if dst.Is6() {
			etherType = unix.ETH_P_IPV6
		}
		p.eth = ethHeader([6]byte(n.HardwareAddr), [6]byte(la.HardwareAddr), etherType)
		return p
	}
	return p
}

// ethHeader is an Ethernet II header (IEEE 802.3 clause 3.1.1: destination, source, EtherType).
func ethHeader(dst, src [6]byte, etherType uint16) [ethHdrLen]byte {
	var h [ethHdrLen]byte
	copy(h[0:6], dst[:])
	copy(h[6:12], src[:])
	binary.BigEndian.PutUint16(h[12:], etherType)
	return h
}

// errFrameTooSmall is returned by putESPFrame when the packet does not fit the frame.
var errFrameTooSmall = errors.New("packet does not fit a ring frame")

// putESPFrame writes a TX ring frame: the tpacket2 header's length field (tp_len, at offset 4),
// and from txFrameData the Ethernet header eth, an IP header from src to dst with protocol 50
// (IPv4 with identification id, DF set, TTL 64; IPv6 hop limit 64) and the ESP packet. It returns
// the frame's data length (tp_len), and leaves the status word (offset 0) alone.
func putESPFrame(frame []byte, eth *[ethHdrLen]byte, src, dst netip.Addr, id uint16, espPkt []byte) (int, error) {
	hl := ipv4HeaderLen
	if dst.Is6() {
		hl = ipv6HeaderLen
	}
	if src.Is4() != dst.Is4() || !src.IsValid() || !dst.IsValid() {
		return 0, errors.New("source and destination of different families")
	}
	n := ethHdrLen + hl + len(espPkt)
	if len(frame) < txFrameData || n > len(frame)-txFrameData || hl+len(espPkt) > 0xffff {
		return 0, errFrameTooSmall
	}
	d := frame[txFrameData : txFrameData+n]
	copy(d, eth[:])
	ip := d[ethHdrLen : ethHdrLen+hl]
	writeIPHeader(ip, src, dst, 50, len(espPkt))
	if hl == ipv4HeaderLen {
		binary.BigEndian.PutUint16(ip[4:], id)
		ip[ipv4Checksum], ip[ipv4Checksum+1] = 0, 0
		binary.BigEndian.PutUint16(ip[ipv4Checksum:], ipChecksum(ip))
	}
	copy(d[ethHdrLen+hl:], espPkt)
	binary.NativeEndian.PutUint32(frame[4:8], uint32(n)) // tpacket2_hdr.tp_len
	return n, nil
}

func (t *packetTX) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.ring[i*txRingFrameSize]))
}

// send writes what it can of pkts (ESP packets of sa from src to dst) into the ring for the
// kicker to send; it returns the packets left for the raw socket, in order after those in the
// ring, and only once every frame written before them has been handed to the device.
func (t *packetTX) send(sa *saState, src, dst netip.Addr, pkts [][]byte) ([][]byte, error) {
	left, err := t.write(src, dst, pkts)
	if len(left) < len(pkts) {
		t.noteSA(sa)
	}
	return left, err
}

// write is send without noting the SA.
func (t *packetTX) write(src, dst netip.Addr, pkts [][]byte) ([][]byte, error) {
	if t.broken.Load() {
		if err := t.drain(); err != nil {
			return pkts, err
		}
	}
	p := t.path(src, dst)
	if !p.ok || p.stale || !src.IsValid() || src.IsUnspecified() {
		// No usable path (or the kernel chooses the source address): the raw socket. A STALE
		// neighbour sends this batch through the kernel, which revalidates it.
		p.stale = false
		return pkts, t.drain()
	}
	if t.ifindex.Load() != int32(p.ifindex) {
		// One sendto sends every marked frame through one interface.
		if err := t.drain(); err != nil {
			return pkts, err
		}
		t.ifindex.Store(int32(p.ifindex))
	}
	hl := ipv4HeaderLen
	if dst.Is6() {
		hl = ipv6HeaderLen
	}
	n, waited := 0, false
fill:
	for n < len(pkts) {
		pkt := pkts[n]
		if hl+len(pkt) > p.mtu {
			break // the kernel fragments it (IPv4) or refuses it
		}
		st := t.status(t.head)
		switch atomic.LoadUint32(st) {
		case tpStatusAvailable:
		default:
			// Still the kernel's: the ring is full. Frames waiting for the kicker may be what
			// holds it (on a veth the kernel releases a frame in the sendto that sends it):
			// wait for the kicker once and look again.
			if waited || n == 0 && !t.pending() {
				break fill
			}
			t.publish(n)
			pkts, n, waited = pkts[n:], 0, true
			if err := t.drain(); err != nil {
				return pkts, err
			}
			continue
		}
		frame := t.ring[t.head*txRingFrameSize : (t.head+1)*txRingFrameSize]
		// Every packet here fits the MTU and carries DF, so it is atomic and its identification
		// need not be unique among pipelines (RFC 6864 §4.1); it just counts up.
		t.id++
		if _, err := putESPFrame(frame, &p.eth, src, dst, t.id, pkt); err != nil {
			break
		}
		atomic.StoreUint32(st, tpStatusSendRequest)
		t.head = (t.head + 1) % txRingFrames
		n++
	}
	t.publish(n)
	if n == len(pkts) {
		return nil, nil
	}
	return pkts[n:], t.drain()
}

// publish counts n more frames as queued and signals the kicker.
func (t *packetTX) publish(n int) {
	if n == 0 {
		return
	}
	t.queued.Add(uint64(n))
	select {
	case t.wake <- struct{}{}:
	default: // a signal is pending already: the kicker will see these frames too
	}
}

// noteSA records that frames of sa are queued, up to the frames queued now.
func (t *packetTX) noteSA(sa *saState) {
	at := t.queued.Load()
	t.pruneSAs()
	for i := range t.sas {
		if t.sas[i].sa == sa {
			t.sas[i].at = at
			return
		}
	}
	if len(t.sas) >= maxRingSAs {
		// Many SAs at once: forget them all, and make the next waitSA wait for everything.
		clear(t.sas)
		t.sas = t.sas[:0]
		t.overflow = at
		return
	}
	t.sas = append(t.sas, ringSA{sa: sa, at: at})
}

// pruneSAs forgets the SAs whose frames the kicker has all handed to the device.
func (t *packetTX) pruneSAs() {
	k := t.kicked.Load()
	n := 0
	for _, r := range t.sas {
		if r.at > k {
			t.sas[n] = r
			n++
		}
	}
	clear(t.sas[n:])
	t.sas = t.sas[:n]
}

// waitSA waits until every frame of sa queued in the ring has been handed to the device (and
// takes back what a failed sendto left, recover), so that the SA's next packets may leave
// another way; frames of other SAs may still wait for the kicker.
func (t *packetTX) waitSA(sa *saState) error {
	var at uint64
	k := t.kicked.Load()
	if t.overflow > k {
		at = t.overflow
	}
	for _, r := range t.sas {
		if r.sa == sa && r.at > k {
			at = max(at, r.at)
		}
	}
	if at == 0 {
		if t.broken.Load() {
			return t.drain()
		}
		return nil
	}
	for t.kicked.Load() < at {
		<-t.done
	}
	t.pruneSAs()
	if t.broken.Load() {
		// The failed sendto may have left frames of sa marked; recover needs the kicker idle.
		return t.drain()
	}
	return nil
}

// pending reports whether frames wait for the kicker.
func (t *packetTX) pending() bool {
	return t.kicked.Load() != t.queued.Load()
}

// drain waits until every queued frame has been handed to the device, and takes back the frames
// of a failed sendto (recover).
func (t *packetTX) drain() error {
	for t.pending() {
		<-t.done
	}
	if t.broken.Load() {
		return t.recover()
	}
	return nil
}

// kicker sends the frames the pipeline queues until the pipeline closes.
func (t *packetTX) kicker() {
	defer close(t.exited)
	var retry *time.Timer
	for {
		if t.retries == 0 {
			select {
			case <-t.wake:
			case <-t.stop:
				t.kick(true)
				return
			}
		} else {
			// The send buffer or the device's queue was full: frames are sent as the device
			// frees room, so look again shortly even if the pipeline queues nothing more.
			d := min(kickRetryMax, kickRetryMin<<min(t.retries, 16))
			if retry == nil {
				retry = time.NewTimer(d)
			} else {
				retry.Reset(d)
			}
			select {
			case <-t.wake:
			case <-retry.C:
			case <-t.stop:
				t.kick(true)
				return
			}
		}
		t.kick(false)
	}
}

const (
	// kickRetryMin and kickRetryMax bound the kicker's wait after a full send buffer or device
	// queue; after kickRetries such sendto calls in a row the ring counts as broken, and the
	// pipeline sends what is left through the raw socket.
	kickRetryMin = 20 * time.Microsecond
	kickRetryMax = time.Millisecond
	kickRetries  = 200
)

// kick makes one sendto for the frames queued, unless there are none. final: no retry will
// follow (closing), so a full buffer counts as sent.
func (t *packetTX) kick(final bool) {
	w := t.queued.Load()
	k := t.kicked.Load()
	if w == k {
		t.retries = 0
		return
	}
	ll := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: t.ifindex.Load(), Halen: 6}
	if t.beforeSendto != nil {
		t.beforeSendto()
	}
	var e syscall.Errno
	for {
		// With MSG_DONTWAIT the kernel hands every frame marked SEND_REQUEST to the device and
		// returns; a frame becomes AVAILABLE again when the device has freed its buffer.
		_, _, e = unix.Syscall6(unix.SYS_SENDTO, uintptr(t.fd), 0, 0, unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&ll)), unix.SizeofSockaddrLinklayer)
		if e != syscall.EINTR {
			break
		}
	}
	if t.afterSendto != nil {
		t.afterSendto()
	}
	t.ctr.sendtos.Add(1)
	switch {
	case e == 0:
		t.ctr.sent.Add(w - k)
	case e == syscall.EAGAIN || e == syscall.ENOBUFS:
		// The frame the kernel stopped at is still marked and goes with the next sendto.
		t.ctr.retries.Add(1)
		if !final && t.retries < kickRetries {
			t.retries++
			return
		}
		if final {
			t.ctr.sent.Add(w - k) // as the next sendto will
		} else {
			t.broken.Store(true)
			t.ctr.broken.Add(1)
		}
	default:
		// The device refused (down, gone) or a frame was refused: the frames not sent stay
		// marked; the pipeline takes them back.
		t.broken.Store(true)
		t.ctr.broken.Add(1)
	}
	t.retries = 0
	t.turnMu.Lock()
	t.kicked.Store(w)
	passed := 0
	for _, r := range t.turns {
		if r.at > w {
			break
		}
		r.sa.txTurn.Store(r.next)
		passed++
	}
	if passed > 0 {
		n := copy(t.turns, t.turns[passed:])
		clear(t.turns[n:])
		t.turns = t.turns[:n]
	}
	t.turnMu.Unlock()
	if passed > 0 && t.wakeTurns != nil {
		t.wakeTurns()
	}
	select {
	case t.done <- struct{}{}:
	default:
	}
}

// deferTurn gives sa's turn to next once the frames queued so far are sent, and reports false
// when none wait (the caller gives the turn now).
func (t *packetTX) deferTurn(sa *saState, next uint64) bool {
	t.turnMu.Lock()
	defer t.turnMu.Unlock()
	if !t.pending() {
		return false
	}
	t.turns = append(t.turns, ringTurn{sa: sa, next: next, at: t.queued.Load()})
	return true
}

// turnQueued reports whether the last turn of sa deferred here (if any) goes to next: the block
// starting at next may then follow its predecessor into the ring without waiting.
func (t *packetTX) turnQueued(sa *saState, next uint64) bool {
	t.turnMu.Lock()
	defer t.turnMu.Unlock()
	for i := len(t.turns) - 1; i >= 0; i-- {
		if t.turns[i].sa == sa {
			return t.turns[i].next == next
		}
	}
	return false
}

// recover takes back the frames a failed sendto left marked (the kicker is idle: drain), sends
// their packets through the raw socket in ring order, and has the pipeline fill the ring again
// from the first of them, where the kernel stopped.
func (t *packetTX) recover() error {
	t.broken.Store(false)
	clear(t.paths) // look the paths up again: the interface may be down or gone
	marked := func(i int) bool {
		st := atomic.LoadUint32(t.status(i))
		return st == tpStatusSendRequest || st == tpStatusWrongFormat
	}
	n := 0
	for n < txRingFrames && marked((t.head-1-n+txRingFrames)%txRingFrames) {
		n++
	}
	first := (t.head - n + txRingFrames) % txRingFrames
	var errs []error
	var src, dst netip.Addr
	var pkts [][]byte
	flush := func() {
		if len(pkts) > 0 {
			errs = append(errs, t.fallback(src, dst, pkts))
			pkts = pkts[:0]
		}
	}
	for j := range n {
		i := (first + j) % txRingFrames
		s, d, pkt, ok := ringFramePacket(t.ring[i*txRingFrameSize : (i+1)*txRingFrameSize])
		if !ok {
			continue // cannot happen: every frame was written by putESPFrame
		}
		if s != src || d != dst {
			flush()
			src, dst = s, d
		}
		pkts = append(pkts, pkt)
	}
	flush()
	t.ctr.recovered.Add(uint64(n))
	for j := range n {
		atomic.StoreUint32(t.status((first+j)%txRingFrames), tpStatusAvailable)
	}
	t.head = first
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%d packets of a failed AF_PACKET sendto through the raw socket: %w", n, err)
	}
	return nil
}

// ringFramePacket reads back a frame written by putESPFrame: the outer source and destination
// and the ESP packet, which starts after the Ethernet and IP headers and ends at tp_len.
func ringFramePacket(frame []byte) (src, dst netip.Addr, pkt []byte, ok bool) {
	if len(frame) < txFrameData+ethHdrLen+ipv4HeaderLen {
		return src, dst, nil, false
	}
	n := int(binary.NativeEndian.Uint32(frame[4:8]))
	if n < ethHdrLen+ipv4HeaderLen || n > len(frame)-txFrameData {
		return src, dst, nil, false
	}
	ip := frame[txFrameData+ethHdrLen : txFrameData+n]
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&0x0f) * 4
		if ihl < ipv4HeaderLen || ihl > len(ip) {
			return src, dst, nil, false
		}
		return netip.AddrFrom4([4]byte(ip[ipv4Src:])), netip.AddrFrom4([4]byte(ip[ipv4Dst:])), ip[ihl:], true
	case 6:
		if len(ip) < ipv6HeaderLen {
			return src, dst, nil, false
		}
		return netip.AddrFrom16([16]byte(ip[ipv6Src:])), netip.AddrFrom16([16]byte(ip[ipv6Dst:])), ip[ipv6HeaderLen:], true
	}
	return src, dst, nil, false
}
