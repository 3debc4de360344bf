package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
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

// packetTX is one pipeline's AF_PACKET socket and TX ring.
type packetTX struct {
	fd    int
	ring  []byte
	head  int // the next frame to fill
	nl    *netlink.Handle
	mark  uint32
	now   func() time.Time
	paths map[[2]netip.Addr]*l2Path
	id    uint16 // IPv4 identification of the next packet
	sent  *atomic.Uint64
}

// newPacketTX opens an AF_PACKET socket with a TX ring. It fails where AF_PACKET is unavailable
// (no CAP_NET_RAW, a sandbox without packet sockets); the caller then sends through the raw socket.
func newPacketTX(mark uint32, now func() time.Time, sent *atomic.Uint64) (*packetTX, error) {
	// Protocol 0: the socket sends only, and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	t := &packetTX{fd: fd, mark: mark, now: now, paths: map[[2]netip.Addr]*l2Path{}, sent: sent}
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
	return t, nil
}

func (t *packetTX) close() {
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

// send writes what it can of pkts (ESP packets from src to dst) into the ring and has the kernel
// send them; it returns the packets left for the raw socket, in order after those sent.
func (t *packetTX) send(src, dst netip.Addr, pkts [][]byte) ([][]byte, error) {
	p := t.path(src, dst)
	if !p.ok {
		return pkts, nil
	}
	if p.stale {
		p.stale = false // this batch through the kernel, which revalidates the neighbour
		return pkts, nil
	}
	if !src.IsValid() || src.IsUnspecified() {
		return pkts, nil // the kernel chooses the source address
	}
	hl := ipv4HeaderLen
	if dst.Is6() {
		hl = ipv6HeaderLen
	}
	n := 0
fill:
	for _, pkt := range pkts {
		if hl+len(pkt) > p.mtu {
			break // the kernel fragments it (IPv4) or refuses it
		}
		st := t.status(t.head)
		switch atomic.LoadUint32(st) {
		case tpStatusAvailable:
		case tpStatusWrongFormat:
			// A frame the kernel refused (cannot happen with the frames written here): take it back.
			atomic.StoreUint32(st, tpStatusAvailable)
		default:
			break fill // still being sent: the ring is full
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
	if n == 0 {
		return pkts, nil
	}
	ll := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(p.ifindex), Halen: 6}
	copy(ll.Addr[:], p.eth[0:6])
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
	if e == 0 || e == syscall.EAGAIN || e == syscall.ENOBUFS {
		t.sent.Add(uint64(n))
		return pkts[n:], nil
	}
	// The device refused (down, gone) before taking some frames: those still marked SEND_REQUEST
	// were not sent. Take them back and leave their packets to the raw socket; look the path up
	// again next time.
	p.at = time.Time{}
	var left [][]byte
	first := (t.head - n + txRingFrames) % txRingFrames
	for i := range n {
		if atomic.CompareAndSwapUint32(t.status((first+i)%txRingFrames), tpStatusSendRequest, tpStatusAvailable) {
			left = append(left, pkts[i])
		}
	}
	t.sent.Add(uint64(n - len(left)))
	return append(left, pkts[n:]...), os.NewSyscallError("sendto (AF_PACKET)", e)
}
