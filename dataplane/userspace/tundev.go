package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TUN device, opened by the engine itself rather than through wireguard-go's tun package:
// that package hands out one packet per buffer (it splits every TSO super-packet into copies and
// checksums each, and coalesces writes by copying), and it opens a single queue. The engine needs
// the super-packet as the kernel gave it (it encrypts the segments straight into the UDP send
// buffer), scatter-gather writes (decrypted segments go to the kernel as one GSO packet without
// being copied together) and one queue per pipeline (IFF_MULTI_QUEUE).

// virtio-net header (the "legacy" 10-byte struct virtio_net_hdr that IFF_VNET_HDR puts in front of
// every packet, include/uapi/linux/virtio_net.h), in host byte order.
const (
	vnetHdrLen = 10

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum from csumStart, stored at +csumOffset
	vnetFlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	vnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4 = 1
	vnetGSOUDP   = 3 // UFO: never offered
	vnetGSOTCPv6 = 4
	vnetGSOUDPL4 = 5 // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
	vnetGSOECN   = 0x80
)

// vnetHdr is a decoded virtio-net header.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h *vnetHdr) decode(b []byte) {
	h.flags = b[0]
	h.gsoType = b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0] = h.flags
	b[1] = h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// tunQueue is one queue (file descriptor) of the multi-queue TUN device. One goroutine reads a
// queue; any may write to it.
type tunQueue struct {
	f  *os.File
	rc syscall.RawConn
}

// tunDevice is the engine's TUN device: its queues, each read and written by one pipeline.
type tunDevice struct {
	name   string
	queues []*tunQueue
	uso    bool // the kernel takes UDP segmentation offload (Linux 6.2+)
}

// TUN ioctl flags (include/uapi/linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

// openTUN creates (or attaches to) the TUN device name with n queues, virtio-net headers and TCP
// (and, where the kernel has them, UDP) segmentation offloads.
func openTUN(name string, n int) (*tunDevice, error) {
	d := &tunDevice{name: name}
	for i := range n {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			d.close()
			return nil, err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			d.close()
			return nil, fmt.Errorf("TUNSETIFF %s (queue %d): %w", name, i, err)
		}
		if i == 0 {
			// TCP segmentation offload has been there since Linux 2.6; UDP's since 6.2.
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6); err == nil {
				d.uso = true
			} else if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
				unix.Close(fd)
				d.close()
				return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
			}
		}
		f := os.NewFile(uintptr(fd), "/dev/net/tun")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			d.close()
			return nil, err
		}
		d.queues = append(d.queues, &tunQueue{f: f, rc: rc})
	}
	return d, nil
}

func (d *tunDevice) close() error {
	var errs []error
	for _, q := range d.queues {
		errs = append(errs, q.f.Close())
	}
	return errors.Join(errs...)
}

// read reads one packet (virtio-net header first) into b, waiting for one. It returns
// os.ErrClosed once the queue is closed.
func (q *tunQueue) read(b []byte) (int, error) {
	var n int
	var err error
	rerr := q.rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), b)
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return 0, os.ErrClosed
	}
	if errors.Is(err, unix.EBADFD) {
		return 0, os.ErrClosed
	}
	return n, err
}

// tryRead reads one packet if one is waiting; ok is false when none is.
func (q *tunQueue) tryRead(b []byte) (n int, ok bool, err error) {
	rerr := q.rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), b)
		return true
	})
	if rerr != nil {
		return 0, false, os.ErrClosed
	}
	if err == unix.EAGAIN {
		return 0, false, nil
	}
	return n, err == nil, err
}

// writev writes one packet gathered from parts (the virtio-net header first); iov is the
// caller's scratch.
func (q *tunQueue) writev(parts [][]byte, iov *[]unix.Iovec) error {
	v := (*iov)[:0]
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		var e unix.Iovec
		e.Base = &p[0]
		e.SetLen(len(p))
		v = append(v, e)
	}
	*iov = v
	var err error
	werr := q.rc.Write(func(fd uintptr) bool {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
		if e == unix.EAGAIN {
			return false
		}
		if e != 0 {
			err = e
		}
		return true
	})
	// The iovecs point into the caller's buffers; drop them so nothing keeps them alive.
	clear(v)
	if werr != nil {
		return os.ErrClosed
	}
	return err
}
