package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSock is one UDP socket on the NAT-T port, read and written in batches (recvmmsg and sendmmsg)
// with UDP generic receive and segmentation offload: the kernel hands over runs of equal-sized
// datagrams from one sender as one buffer (UDP_GRO) and takes runs of equal-sized datagrams to
// one destination as one buffer (UDP_SEGMENT), so a 64 KiB run costs one pass through the stack.
// Each pipeline has its own socket (SO_REUSEPORT; the kernel spreads senders over them by their
// address hash).
type batchSock struct {
	f   *os.File
	rc  syscall.RawConn
	is6 bool
	gro bool // UDP_GRO is on: received buffers may hold several datagrams
	// gsoOff is set when the kernel refused a segmented send (then every datagram goes alone).
	gsoOff bool
}

// openUDP opens a UDP socket bound to port on every address of one family.
func openUDP(port int, is6 bool, mark uint32, reusePort bool) (*batchSock, error) {
	family := unix.AF_INET
	if is6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	s := &batchSock{is6: is6}
	fail := func(what string, err error) (*batchSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("UDP port %d: %s: %w", port, what, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		return fail("SO_MARK", err)
	}
	// Large buffers absorb bursts while a goroutine is descheduled; the forced variants need
	// CAP_NET_ADMIN, the plain ones are capped by the host's limits.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 7<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 7<<20)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 7<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 7<<20)
	}
	if is6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fail("IPV6_RECVPKTINFO", err)
		}
	} else if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fail("IP_PKTINFO", err)
	}
	// UDP GRO is in Linux since 5.0; without it every datagram arrives alone.
	s.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: port}
	if is6 {
		sa = &unix.SockaddrInet6{Port: port}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return s.finish(fd, "udp")
}

// finish wraps fd for the runtime's poller.
func (s *batchSock) finish(fd int, name string) (*batchSock, error) {
	s.f = os.NewFile(uintptr(fd), name)
	var err error
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

// openRawSock opens a raw IP socket for protocol proto (ESP or AH) of one family. IPv4 raw
// sockets deliver packets with their IP header, IPv6 ones without (the destination then comes
// from IPV6_PKTINFO). With hdrincl, sent packets carry their own IPv4 header.
func openRawSock(proto int, is6 bool, mark uint32, hdrincl bool) (*batchSock, error) {
	family := unix.AF_INET
	if is6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*batchSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("raw socket for protocol %d: %s: %w", proto, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		return fail("SO_MARK", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 7<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 7<<20)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 7<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 7<<20)
	}
	if is6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fail("IPV6_RECVPKTINFO", err)
		}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			return fail("IP_PKTINFO", err)
		}
		if hdrincl {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
				return fail("IP_HDRINCL", err)
			}
		}
	}
	return (&batchSock{is6: is6}).finish(fd, "raw")
}

func (s *batchSock) close() error { return s.f.Close() }

// mmsghdr is struct mmsghdr (unix.Mmsghdr without its blank padding field, which Go cannot set).
type mmsghdr = unix.Mmsghdr

// Control message space: UDP_GRO delivers an int, UDP_SEGMENT takes a uint16, IP_PKTINFO and
// IPV6_PKTINFO carry a local address.
var (
	cmsgSpaceGRO     = unix.CmsgSpace(4)
	cmsgSpaceSegment = unix.CmsgSpace(2)
	cmsgSpacePktinfo = max(unix.CmsgSpace(unix.SizeofInet4Pktinfo), unix.CmsgSpace(unix.SizeofInet6Pktinfo))
)

// rxMsg is one receive slot: its buffer and what recvmmsg reported.
type rxMsg struct {
	whole   []byte         // the slot with its headroom
	buf     []byte         // where datagrams are received
	n       int            // bytes received
	segSize int            // UDP GRO segment size; the buffer holds datagrams of segSize bytes (the last may be shorter)
	from    netip.AddrPort // sender
	local   netip.Addr     // our address the datagrams were sent to
}

// batchReceiver is the receive state of one socket's reader.
type batchReceiver struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	slots []rxMsg
}

// rxHeadroom is left free in front of each received datagram, where a raw IPv6 AH packet's IP
// header is rebuilt.
const rxHeadroom = 64

// newBatchReceiver makes n receive slots of bufSize bytes each (after the headroom).
func newBatchReceiver(n, bufSize int) *batchReceiver {
	r := &batchReceiver{msgs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrInet6, n),
		oob: make([]byte, n*(cmsgSpaceGRO+cmsgSpacePktinfo)), slots: make([]rxMsg, n)}
	for i := range r.slots {
		r.slots[i].whole = make([]byte, rxHeadroom+bufSize)
		r.slots[i].buf = r.slots[i].whole[rxHeadroom:]
	}
	return r
}

// receive waits for datagrams and fills r.slots[:n].
func (s *batchSock) receive(r *batchReceiver) (int, error) {
	oobLen := cmsgSpaceGRO + cmsgSpacePktinfo
	for i := range r.msgs {
		r.iovs[i].Base = &r.slots[i].buf[0]
		r.slots[i].buf = r.slots[i].whole[rxHeadroom:]
		r.iovs[i].SetLen(len(r.slots[i].buf))
		h := &r.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &r.iovs[i]
		h.Iovlen = 1
		h.Control = &r.oob[i*oobLen]
		h.SetControllen(oobLen)
		h.Flags = 0
		r.msgs[i].Len = 0
	}
	var n int
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		r0, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		n, errno = int(r0), e
		return true
	})
	if err != nil {
		return 0, os.ErrClosed
	}
	if errno != 0 {
		return 0, errno
	}
	for i := range n {
		m := &r.msgs[i]
		sl := &r.slots[i]
		sl.n = int(m.Len)
		sl.segSize = 0
		sl.from = sockaddrToAddrPort(&r.names[i])
		sl.local = netip.Addr{}
		s.parseControl(r.oob[i*oobLen:i*oobLen+int(m.Hdr.Controllen)], sl)
		if sl.segSize == 0 || sl.segSize > sl.n {
			sl.segSize = sl.n
		}
	}
	return n, nil
}

// parseControl reads the GRO segment size and the local address from a message's control data.
func (s *batchSock) parseControl(oob []byte, sl *rxMsg) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return
		}
		data := oob[unix.SizeofCmsghdr:h.Len]
		switch {
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			sl.segSize = int(binary.NativeEndian.Uint32(data))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			sl.local = netip.AddrFrom4(info.Addr)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			sl.local = netip.AddrFrom16(info.Addr).Unmap()
		}
		oob = oob[unix.CmsgSpace(int(h.Len)-unix.SizeofCmsghdr):]
	}
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:]))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	}
	return netip.AddrPort{}
}

// batchSender builds sendmmsg calls: each message is one buffer sent to one peer, as one datagram
// or, with segSize, as datagrams of segSize bytes (UDP GSO).
type batchSender struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	// bufs are the messages' buffers, kept for a retry without segmentation.
	bufs []udpOut
}

type udpOut struct {
	b       []byte
	segSize int
	to      netip.AddrPort
	src     netip.Addr
}

const maxSendMsgs = 64

func newBatchSender() *batchSender {
	return &batchSender{msgs: make([]mmsghdr, 0, maxSendMsgs), iovs: make([]unix.Iovec, maxSendMsgs),
		names: make([]unix.RawSockaddrInet6, maxSendMsgs), oob: make([]byte, maxSendMsgs*(cmsgSpaceSegment+cmsgSpacePktinfo))}
}

// pending is the number of queued messages.
func (u *batchSender) pending() int { return len(u.bufs) }

// add queues b for to (from src when valid), in datagrams of segSize bytes when segSize > 0.
func (u *batchSender) add(b []byte, segSize int, to netip.AddrPort, src netip.Addr) {
	u.bufs = append(u.bufs, udpOut{b: b, segSize: segSize, to: to, src: src})
}

// flush sends what is queued on s. It always empties the queue.
func (u *batchSender) flush(s *batchSock) error {
	defer func() {
		clear(u.bufs)
		u.bufs = u.bufs[:0]
	}()
	if s.gsoOff {
		return u.flushSplit(s)
	}
	err := u.send(s, u.bufs)
	if errors.Is(err, unix.EIO) {
		// The route's device cannot take segmented sends (a kernel or driver without UDP GSO
		// support): send every datagram alone from now on.
		s.gsoOff = true
		return u.flushSplit(s)
	}
	return err
}

// flushSplit sends every queued datagram as its own message.
func (u *batchSender) flushSplit(s *batchSock) error {
	var split []udpOut
	for _, o := range u.bufs {
		if o.segSize <= 0 || o.segSize >= len(o.b) {
			split = append(split, udpOut{b: o.b, to: o.to, src: o.src})
			continue
		}
		for b := o.b; len(b) > 0; {
			n := min(o.segSize, len(b))
			split = append(split, udpOut{b: b[:n], to: o.to, src: o.src})
			b = b[n:]
		}
	}
	return u.send(s, split)
}

// send writes outs with as few sendmmsg calls as possible.
func (u *batchSender) send(s *batchSock, outs []udpOut) error {
	var errs []error
	for len(outs) > 0 {
		n := min(len(outs), maxSendMsgs)
		if err := u.sendmmsg(s, outs[:n]); err != nil {
			errs = append(errs, err)
			if errors.Is(err, os.ErrClosed) {
				break
			}
		}
		outs = outs[n:]
	}
	return errors.Join(errs...)
}

func (u *batchSender) sendmmsg(s *batchSock, outs []udpOut) error {
	oobLen := cmsgSpaceSegment + cmsgSpacePktinfo
	u.msgs = u.msgs[:len(outs)]
	for i, o := range outs {
		u.iovs[i].Base = &o.b[0]
		u.iovs[i].SetLen(len(o.b))
		h := &u.msgs[i].Hdr
		*h = unix.Msghdr{}
		u.msgs[i].Len = 0
		h.Name = (*byte)(unsafe.Pointer(&u.names[i]))
		h.Namelen = putSockaddr(&u.names[i], o.to)
		h.Iov = &u.iovs[i]
		h.Iovlen = 1
		oob := u.oob[i*oobLen : i*oobLen]
		if o.segSize > 0 && o.segSize < len(o.b) {
			oob = appendCmsg(oob, unix.IPPROTO_UDP, unix.UDP_SEGMENT, 2, func(d []byte) { binary.NativeEndian.PutUint16(d, uint16(o.segSize)) })
		}
		if o.src.IsValid() {
			if s.is6 {
				oob = appendCmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo, func(d []byte) {
					info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&d[0]))
					info.Addr = o.src.As16()
				})
			} else {
				oob = appendCmsg(oob, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo, func(d []byte) {
					info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&d[0]))
					info.Spec_dst = o.src.As4()
				})
			}
		}
		if len(oob) > 0 {
			h.Control = &oob[0]
			h.SetControllen(len(oob))
		}
	}
	var errno syscall.Errno
	sent := 0
	err := s.rc.Write(func(fd uintptr) bool {
		for sent < len(u.msgs) {
			r0, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.msgs[sent])), uintptr(len(u.msgs)-sent),
				unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			if e != 0 {
				// The message at sent failed; skip it and go on with the rest.
				errno = e
				sent++
				continue
			}
			sent += int(r0)
		}
		return true
	})
	for i := range u.iovs[:len(outs)] {
		u.iovs[i].Base = nil
	}
	if err != nil {
		return os.ErrClosed
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// appendCmsg appends a control message of the given data length, filled by put.
func appendCmsg(oob []byte, level, typ int32, dataLen int, put func([]byte)) []byte {
	start := len(oob)
	oob = oob[:start+unix.CmsgSpace(dataLen)]
	clear(oob[start:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[start]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(dataLen))
	put(oob[start+unix.CmsgLen(0):])
	return oob
}

// putSockaddr writes ap as a sockaddr_in or sockaddr_in6 into sa and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	*sa = unix.RawSockaddrInet6{}
	if ap.Addr().Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		sa4.Addr = ap.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As16()
	return unix.SizeofSockaddrInet6
}
