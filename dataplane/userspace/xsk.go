package userspace

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An AF_XDP socket (the kernel's Documentation/networking/af_xdp.rst) receives the frames the XDP
// program (xdpprog.go) redirects to it into a region of our memory, the UMEM, divided into
// frames. Two single-producer single-consumer rings shared with the kernel pass frame addresses
// back and forth: we give empty frames to the kernel on the fill ring, and it hands them back,
// filled, on the RX ring as descriptors (address, length). A third ring, the completion ring,
// is required by bind even though nothing is transmitted on this socket.
//
// The rings' producer and consumer indexes are free-running uint32 counters (af_xdp.rst, "Rings":
// "the ring size must be a power of two"; an entry's slot is its index masked by size-1), so the
// number of entries in a ring is producer-consumer in uint32 arithmetic, wrap-around included.

const (
	// xskFrameSize is a UMEM frame: in copy mode the kernel leaves XDP_PACKET_HEADROOM (256)
	// bytes in front of the packet, so a frame holds an Ethernet frame of up to 3840 bytes.
	xskFrameSize = 4096
	// xskFrames is the number of UMEM frames and the size of each ring: all frames start on the
	// fill ring, so the RX ring can never overflow for lack of room (it holds at most every frame).
	xskFrames = 1024
	// xskRxDescSize is sizeof(struct xdp_desc) (linux/if_xdp.h): u64 addr, u32 len, u32 options.
	xskRxDescSize = 16
	// xskFillDescSize is a fill or completion ring entry: a u64 UMEM address.
	xskFillDescSize = 8
	// xskCompRingSize is the completion ring's size: unused, but bind needs one.
	xskCompRingSize = 64
)

// xskMaxPacket is the largest Ethernet frame a UMEM frame holds in copy mode.
const xskMaxPacket = xskFrameSize - unix.XDP_PACKET_HEADROOM

// xskRing is one ring: the producer and consumer indexes and the descriptor array, all in
// memory shared with the kernel (or, in tests, in an ordinary slice).
type xskRing struct {
	prod, cons *uint32
	descs      []byte // size*descSize bytes
	mask       uint32
	descSize   int
}

func newXSKRing(mem []byte, off unix.XDPRingOffset, size uint32, descSize int) (*xskRing, error) {
	if size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring size %d is not a power of two", size)
	}
	need := off.Desc + uint64(size)*uint64(descSize)
	if off.Producer+4 > uint64(len(mem)) || off.Consumer+4 > uint64(len(mem)) || need > uint64(len(mem)) ||
		off.Producer%4 != 0 || off.Consumer%4 != 0 {
		return nil, fmt.Errorf("ring offsets %+v do not fit %d bytes", off, len(mem))
	}
	return &xskRing{
		prod:     (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		cons:     (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		descs:    mem[off.Desc:need],
		mask:     size - 1,
		descSize: descSize,
	}, nil
}

// available is the number of entries a consumer may read: producer - consumer, modulo 2^32.
func (r *xskRing) available() uint32 {
	return atomic.LoadUint32(r.prod) - atomic.LoadUint32(r.cons)
}

// free is the number of entries a producer may write.
func (r *xskRing) free() uint32 {
	return r.mask + 1 - (atomic.LoadUint32(r.prod) - atomic.LoadUint32(r.cons))
}

// slot returns entry idx's descriptor bytes.
func (r *xskRing) slot(idx uint32) []byte {
	o := int(idx&r.mask) * r.descSize
	return r.descs[o : o+r.descSize]
}

// rxDesc reads the i-th available RX descriptor (0 is the oldest).
func (r *xskRing) rxDesc(i uint32) (addr uint64, n uint32) {
	d := r.slot(atomic.LoadUint32(r.cons) + i)
	return binary.NativeEndian.Uint64(d), binary.NativeEndian.Uint32(d[8:])
}

// release hands n consumed entries back to the producer. The atomic store orders our reads of
// the descriptors before the kernel's reuse of their slots.
func (r *xskRing) release(n uint32) {
	atomic.StoreUint32(r.cons, atomic.LoadUint32(r.cons)+n)
}

// putAddr writes a fill ring entry i places past the producer index; submit publishes them.
func (r *xskRing) putAddr(i uint32, addr uint64) {
	binary.NativeEndian.PutUint64(r.slot(atomic.LoadUint32(r.prod)+i), addr)
}

// submit publishes n entries written with putAddr; the atomic store orders the writes before it.
func (r *xskRing) submit(n uint32) {
	atomic.StoreUint32(r.prod, atomic.LoadUint32(r.prod)+n)
}

// xskFrame returns the packet a RX descriptor points at, or false when the descriptor lies
// outside the UMEM (the kernel never does that; the check keeps a bad index from panicking).
func xskFrame(umem []byte, addr uint64, n uint32) ([]byte, bool) {
	if addr >= uint64(len(umem)) || uint64(n) > uint64(len(umem))-addr {
		return nil, false
	}
	return umem[addr : addr+uint64(n)], true
}

// xsk is one AF_XDP socket bound to one queue of one interface, with its own UMEM.
type xsk struct {
	fd      int
	file    *os.File // the fd registered with the runtime's poller, to wait for packets
	umem    []byte
	ringMem [3][]byte // fill, completion and RX ring mappings
	fill    *xskRing
	rx      *xskRing
	queue   int
}

// newXSK opens an AF_XDP socket in copy mode on queue of ifindex, with every UMEM frame on the
// fill ring. The XSKMAP entry that sends packets to it is the caller's.
func newXSK(ifindex, queue int) (*xsk, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_XDP socket: %w", err)
	}
	x := &xsk{fd: fd, queue: queue}
	fail := func(what string, err error) (*xsk, error) {
		x.close()
		return nil, fmt.Errorf("AF_XDP %s: %w", what, err)
	}
	if x.umem, err = unix.Mmap(-1, 0, xskFrames*xskFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return fail("UMEM", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))), Len: uint64(len(x.umem)), Size: xskFrameSize}
	if err := setsockoptPtr(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fail("XDP_UMEM_REG", err)
	}
	for _, r := range []struct {
		opt, size int
	}{{unix.XDP_UMEM_FILL_RING, xskFrames}, {unix.XDP_UMEM_COMPLETION_RING, xskCompRingSize}, {unix.XDP_RX_RING, xskFrames}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, r.size); err != nil {
			return fail(fmt.Sprintf("ring option %d", r.opt), err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockoptPtr(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return fail("XDP_MMAP_OFFSETS", err)
	}
	maps := []struct {
		off      unix.XDPRingOffset
		pgoff    int64
		size     uint32
		descSize int
	}{
		{off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, xskFrames, xskFillDescSize},
		{off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, xskCompRingSize, xskFillDescSize},
		{off.Rx, unix.XDP_PGOFF_RX_RING, xskFrames, xskRxDescSize},
	}
	var rings [3]*xskRing
	for i, m := range maps {
		n := int(m.off.Desc) + int(m.size)*m.descSize
		if x.ringMem[i], err = unix.Mmap(fd, m.pgoff, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fail("ring mmap", err)
		}
		if rings[i], err = newXSKRing(x.ringMem[i], m.off, m.size, m.descSize); err != nil {
			return fail("ring", err)
		}
	}
	x.fill, x.rx = rings[0], rings[2]
	for i := range uint32(xskFrames) {
		x.fill.putAddr(i, uint64(i)*xskFrameSize)
	}
	x.fill.submit(xskFrames)
	// Copy mode: veth and most drivers cannot DMA into our memory; the kernel copies each packet
	// from its buffer into a frame at redirect time.
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("nonblock", err)
	}
	// The runtime's poller wakes the reader when the RX ring has entries (the socket's poll
	// reports EPOLLIN then), so waiting costs no thread.
	x.file = os.NewFile(uintptr(fd), "xsk")
	return x, nil
}

// stats reads the socket's drop counters (struct xdp_statistics).
func (x *xsk) stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockoptPtr(x.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

func (x *xsk) close() {
	if x.file != nil {
		x.file.Close() // closes fd
		x.file = nil
	} else if x.fd >= 0 {
		unix.Close(x.fd)
	}
	x.fd = -1
	for i, m := range x.ringMem {
		if m != nil {
			_ = unix.Munmap(m)
			x.ringMem[i] = nil
		}
	}
	if x.umem != nil {
		_ = unix.Munmap(x.umem)
		x.umem = nil
	}
}

func setsockoptPtr(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockoptPtr(fd, opt int, p unsafe.Pointer, n uintptr) error {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	if uintptr(l) != n {
		return fmt.Errorf("option %d: kernel returned %d bytes, want %d", opt, l, n)
	}
	return nil
}
