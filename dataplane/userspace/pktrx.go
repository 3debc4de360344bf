package userspace

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
)

// EXPERIMENT (issue 14): raw ESP received through AF_PACKET TPACKET_V2 RX rings that tap the
// interface ahead of its ingress hook (ETH_P_ALL sockets see a packet in
// __netif_receive_skb_core before tc and nftables' netdev ingress), while an nftables netdev
// ingress chain on the interface drops ESP, so that the kernel's IP input (ip_rcv, the input route
// lookup, raw socket delivery) never sees it — what AF_XDP achieves, without an XDP program and
// without veth's copy of every packet into a page with XDP headroom. The reader holds a stream
// the way the AF_XDP reader does: it sleeps on a timer while frames keep coming, so the packets
// arriving meanwhile wake nobody. GOIPSEC_EXPERIMENT_PKTRX=IFNAME turns it on; the nftables rule
// is the operator's (scripts/bench.sh sets it for KIND rawpkt).

const (
	pktRXFrameSize = 2048
	pktRXFrames    = 1024
	pktRXBlockSize = 64 << 10
	// tpacket2_hdr (linux/if_packet.h): tp_status u32, tp_len u32, tp_snaplen u32, tp_mac u16,
	// tp_net u16, ...; struct sockaddr_ll follows at TPACKET_ALIGN(32), sll_pkttype at 10 in it.
	tpHdrSnaplen = 8
	tpHdrMac     = 12
	tpSllPkttype = 32 + 10
	tpStatusUser = 1
)

// pktRX is one AF_PACKET socket with an RX ring.
type pktRX struct {
	fd   int
	file *os.File
	ring []byte
	head int
}

// espFilter is a classic BPF program that accepts IPv4 and IPv6 packets of protocol 50 (ESP) and
// nothing else; offsets are from the Ethernet header.
var espFilter = []unix.SockFilter{
	{Code: 0x28, K: 12},                   // ldh [12] (EtherType)
	{Code: 0x15, Jt: 0, Jf: 2, K: 0x0800}, // IPv4?
	{Code: 0x30, K: 14 + 9},               // ldb [23] (protocol)
	{Code: 0x15, Jt: 3, Jf: 4, K: 50},     // ESP: accept, else drop
	{Code: 0x15, Jt: 0, Jf: 3, K: 0x86dd}, // IPv6?
	{Code: 0x30, K: 14 + 6},               // ldb [20] (next header)
	{Code: 0x15, Jt: 0, Jf: 1, K: 50},     // ESP?
	{Code: 0x06, K: 0xffff},               // accept
	{Code: 0x06, K: 0},                    // drop
}

func newPktRX(ifindex, fanout int) (*pktRX, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	r := &pktRX{fd: fd}
	fail := func(what string, err error) (*pktRX, error) {
		if r.ring != nil {
			_ = unix.Munmap(r.ring)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("AF_PACKET RX ring: %s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("PACKET_VERSION", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	prog := unix.SockFprog{Len: uint16(len(espFilter)), Filter: &espFilter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fail("SO_ATTACH_FILTER", err)
	}
	req := unix.TpacketReq{Block_size: pktRXBlockSize, Block_nr: pktRXFrames * pktRXFrameSize / pktRXBlockSize, Frame_size: pktRXFrameSize, Frame_nr: pktRXFrames}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	if r.ring, err = unix.Mmap(fd, 0, pktRXFrames*pktRXFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	if fanout > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, fanout|unix.PACKET_FANOUT_HASH<<16); err != nil {
			return fail("PACKET_FANOUT", err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("nonblock", err)
	}
	r.file = os.NewFile(uintptr(fd), "packet-rx")
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *pktRX) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.ring[i*pktRXFrameSize]))
}

// available counts the frames the kernel has handed over, from head on (at most max).
func (r *pktRX) available(max int) int {
	n := 0
	for n < max && atomic.LoadUint32(r.status((r.head+n)%pktRXFrames))&tpStatusUser != 0 {
		n++
	}
	return n
}

// startPktRX starts the experiment's readers when GOIPSEC_EXPERIMENT_PKTRX names an interface.
func (e *Engine) startPktRX() {
	name := os.Getenv("GOIPSEC_EXPERIMENT_PKTRX")
	if name == "" {
		return
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		e.log.Info("EXPERIMENT packet RX", "err", err)
		return
	}
	n := len(e.tun.queues)
	for range n {
		fanout := 0
		if n > 1 {
			fanout = 0x6e00 + os.Getpid()&0xff
		}
		r, err := newPktRX(ifc.Index, fanout)
		if err != nil {
			e.log.Info("EXPERIMENT packet RX", "err", err)
			return
		}
		e.pktrx = append(e.pktrx, r)
		e.wg.Add(1)
		p := &pktRXPipeline{rxPipeline: rxPipeline{e: e, raw: dataplane.ESP, gro: groWriter{queues: e.tun.queues}, hdrs: make([]byte, 32<<10)}, r: r}
		go p.run()
	}
	e.log.Info("EXPERIMENT raw ESP received through AF_PACKET RX rings", "interface", name, "sockets", n)
}

type pktRXPipeline struct {
	rxPipeline
	r *pktRX
}

func (p *pktRXPipeline) run() {
	defer p.e.wg.Done()
	rc, err := p.r.file.SyscallConn()
	if err != nil {
		return
	}
	r := p.r
	st := &p.e.stats.xdp
	hold := unix.NsecToTimespec(xskHoldSleep.Nanoseconds())
	holdFrames := xskHoldFrames
	const maxBatch = 256
	for {
		var n int
		err := rc.Read(func(uintptr) bool {
			n = r.available(maxBatch)
			return n > 0
		})
		if err != nil {
			return // closed
		}
		for n >= 2 && n < holdFrames {
			_ = unix.Nanosleep(&hold, nil)
			m := r.available(maxBatch)
			if m == n {
				break
			}
			n = m
		}
		p.hoff = 0
		for i := range n {
			f := r.ring[((r.head+i)%pktRXFrames)*pktRXFrameSize:][:pktRXFrameSize]
			mac := int(binary.NativeEndian.Uint16(f[tpHdrMac:]))
			snap := int(binary.NativeEndian.Uint32(f[tpHdrSnaplen:]))
			if f[tpSllPkttype] != unix.PACKET_HOST {
				st.drops[xdpDropOtherHost].Add(1)
				continue
			}
			if mac+snap > len(f) {
				st.drops[xdpDropBadDesc].Add(1)
				continue
			}
			p.e.stats.netPackets.Add(1)
			src, dst, pkt, ok := parseESPFrame(f[mac : mac+snap])
			if !ok {
				st.drops[xdpDropMalformed].Add(1)
				p.e.stats.drops[dataplane.DropMalformed].Add(1)
				continue
			}
			p.deliverRaw(dataplane.ESP, binary.BigEndian.Uint32(pkt), src, dst, pkt)
		}
		p.gro.flush()
		p.account(nil)
		if p.gro.err != nil {
			p.gro.err = nil
		}
		for i := range n {
			atomic.StoreUint32(r.status((r.head+i)%pktRXFrames), 0)
		}
		r.head = (r.head + n) % pktRXFrames
		st.received.Add(uint64(n))
		st.batches.Add(1)
	}
}

func (r *pktRX) close() {
	if r.file != nil {
		r.file.Close()
	}
}

// unmap releases the ring once the reader is gone.
func (r *pktRX) unmap() {
	if r.ring != nil {
		_ = unix.Munmap(r.ring)
		r.ring = nil
	}
}
