package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
)

// rawConn is one raw IP socket for ESP or AH, IPv4 or IPv6, read and written in batches.
type rawConn struct {
	proto dataplane.Protocol
	is6   bool
	conn  *net.IPConn
	pc4   *ipv4.PacketConn
	pc6   *ipv6.PacketConn

	// Send scratch, reused so that sending allocates nothing per packet. One goroutine sends
	// (the TUN reader or the outbound sequencer); sendMu keeps that an assumption, not a hazard.
	sendMu sync.Mutex
	msgs4  []ipv4.Message
	msgs6  []ipv6.Message
	bufs   [][]byte // one slot per message, backing their Buffers
}

// rawSockets are the raw sockets for ESP and AH over IPv4 and IPv6 (nil where the family is not
// available), and the IPPROTO_RAW sockets through which bypassed packets leave in the clear.
type rawSockets struct {
	conns          []*rawConn
	clear4, clear6 int // file descriptors; -1 when unavailable
}

func openRawSockets(mark uint32) (*rawSockets, error) {
	rs := &rawSockets{clear4: -1, clear6: -1}
	// IPPROTO_RAW implies that we write the IP header (IP_HDRINCL, and IPV6_HDRINCL on Linux).
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			if fam == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			rs.close()
			return nil, fmt.Errorf("open raw socket for bypassed packets: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			unix.Close(fd)
			rs.close()
			return nil, fmt.Errorf("set fwmark on raw socket: %w", err)
		}
		if fam == unix.AF_INET {
			rs.clear4 = fd
		} else {
			rs.clear6 = fd
		}
	}
	for _, proto := range []dataplane.Protocol{dataplane.ESP, dataplane.AH} {
		for _, is6 := range []bool{false, true} {
			c, err := openRaw(proto, is6, mark)
			if err != nil {
				if is6 && errors.Is(err, syscall.EAFNOSUPPORT) {
					continue
				}
				rs.close()
				return nil, err
			}
			rs.conns = append(rs.conns, c)
		}
	}
	return rs, nil
}

func openRaw(proto dataplane.Protocol, is6 bool, mark uint32) (*rawConn, error) {
	network := fmt.Sprintf("ip4:%d", proto)
	if is6 {
		network = fmt.Sprintf("ip6:%d", proto)
	}
	pconn, err := net.ListenPacket(network, "")
	if err != nil {
		return nil, fmt.Errorf("open raw %s socket (%s): %w", proto, network, err)
	}
	c := &rawConn{proto: proto, is6: is6, conn: pconn.(*net.IPConn)}
	sc, err := c.conn.SyscallConn()
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); serr != nil {
			return
		}
		// Large buffers absorb bursts while a goroutine is descheduled (needs CAP_NET_ADMIN).
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 7<<20)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 7<<20)
		if proto == dataplane.AH && !is6 {
			// AH's ICV covers the IPv4 identification field, so we write the header ourselves.
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("configure raw %s socket: %w", proto, err)
	}
	if is6 {
		c.pc6 = ipv6.NewPacketConn(c.conn)
		if err := c.pc6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			c.conn.Close()
			return nil, err
		}
	} else {
		c.pc4 = ipv4.NewPacketConn(c.conn)
	}
	return c, nil
}

func (rs *rawSockets) close() error {
	var errs []error
	for _, fd := range []int{rs.clear4, rs.clear6} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	rs.clear4, rs.clear6 = -1, -1
	for _, c := range rs.conns {
		errs = append(errs, c.conn.Close())
	}
	return errors.Join(errs...)
}

func (rs *rawSockets) get(proto dataplane.Protocol, is6 bool) *rawConn {
	for _, c := range rs.conns {
		if c.proto == proto && c.is6 == is6 {
			return c
		}
	}
	return nil
}

// send writes packets to dst: for IPv4 AH they are complete IP packets, otherwise the IPsec header
// onwards (the kernel adds the IP header from src to dst).
func (rs *rawSockets) send(proto dataplane.Protocol, src, dst netip.Addr, pkts [][]byte) error {
	c := rs.get(proto, dst.Is6())
	if c == nil {
		return fmt.Errorf("no raw %s socket for %v", proto, dst)
	}
	addr := &net.IPAddr{IP: dst.AsSlice()}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for len(c.bufs) < len(pkts) {
		c.bufs = append(c.bufs, nil)
	}
	if c.is6 {
		oob := (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
		c.msgs6 = c.msgs6[:0]
		for i, p := range pkts {
			c.bufs[i] = p
			c.msgs6 = append(c.msgs6, ipv6.Message{Buffers: c.bufs[i : i+1 : i+1], OOB: oob, Addr: addr})
		}
		msgs := c.msgs6
		return writeAll(func(m int) (int, error) { return c.pc6.WriteBatch(msgs[m:], 0) }, len(msgs))
	}
	var oob []byte
	if proto != dataplane.AH {
		oob = (&ipv4.ControlMessage{Src: src.AsSlice()}).Marshal()
	}
	c.msgs4 = c.msgs4[:0]
	for i, p := range pkts {
		c.bufs[i] = p
		c.msgs4 = append(c.msgs4, ipv4.Message{Buffers: c.bufs[i : i+1 : i+1], OOB: oob, Addr: addr})
	}
	msgs := c.msgs4
	return writeAll(func(m int) (int, error) { return c.pc4.WriteBatch(msgs[m:], 0) }, len(msgs))
}

// sendClear sends a complete IP packet unprotected. Bypassed traffic is rare (a hole punched into
// a protected range), so it is written one packet at a time.
func (rs *rawSockets) sendClear(pkt []byte) error {
	if len(pkt) < ipv4HeaderLen {
		return errors.New("short packet")
	}
	if pkt[0]>>4 == 4 {
		if rs.clear4 < 0 {
			return errors.New("no IPv4 raw socket")
		}
		var sa unix.SockaddrInet4
		copy(sa.Addr[:], pkt[ipv4Dst:ipv4Dst+4])
		return unix.Sendto(rs.clear4, pkt, unix.MSG_DONTWAIT, &sa)
	}
	if rs.clear6 < 0 || len(pkt) < ipv6HeaderLen {
		return errors.New("no IPv6 raw socket")
	}
	var sa unix.SockaddrInet6
	copy(sa.Addr[:], pkt[ipv6Dst:ipv6Dst+16])
	return unix.Sendto(rs.clear6, pkt, unix.MSG_DONTWAIT, &sa)
}

func writeAll(write func(from int) (int, error), total int) error {
	for done := 0; done < total; {
		n, err := write(done)
		if err != nil {
			return err
		}
		done += n
	}
	return nil
}

func (e *Engine) startRawReceivers() {
	for _, c := range e.raw.conns {
		e.wg.Add(1)
		go e.receiveRaw(c)
	}
}

const rawBatch = 64

func (e *Engine) receiveRaw(c *rawConn) {
	defer e.wg.Done()
	elems := make([]*elem, rawBatch)
	msgs4 := make([]ipv4.Message, rawBatch)
	msgs6 := make([]ipv6.Message, rawBatch)
	for i := range msgs6 {
		msgs6[i].OOB = ipv6.NewControlMessage(ipv6.FlagDst)
	}
	for {
		for i := range elems {
			if elems[i] == nil {
				elems[i] = e.pools.getBig()
			}
			// IPv6 raw sockets deliver no IP header; leave room to rebuild one for AH.
			buf := elems[i].big[rxHeadroom:]
			if c.is6 {
				msgs6[i].Buffers = [][]byte{buf[ipv6HeaderLen:]}
				msgs6[i].OOB = msgs6[i].OOB[:cap(msgs6[i].OOB)]
			} else {
				msgs4[i].Buffers = [][]byte{buf}
			}
		}
		var count int
		var err error
		if c.is6 {
			count, err = c.pc6.ReadBatch(msgs6, 0)
		} else {
			count, err = c.pc4.ReadBatch(msgs4, 0)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.isClosing() {
				for _, el := range elems {
					e.pools.put(el)
				}
				return
			}
			e.log.Debug("raw receive", "proto", c.proto.String(), "err", err)
			continue
		}
		b := e.pools.getBatch()
		for i := 0; i < count; i++ {
			el := elems[i]
			var ok bool
			if c.is6 {
				ok = e.classifyRaw6(c, el, &msgs6[i])
			} else {
				ok = e.classifyRaw4(c, el, msgs4[i].N)
			}
			if ok {
				b.elems = append(b.elems, el)
				elems[i] = nil
			}
		}
		if len(b.elems) == 0 {
			e.pools.putBatch(b)
			continue
		}
		if !e.queue(b, e.inWork, e.inOrder) {
			return
		}
	}
}

// classifyRaw4 handles a packet from a raw IPv4 socket (the kernel includes the IP header).
func (e *Engine) classifyRaw4(c *rawConn, el *elem, n int) bool {
	pkt := el.big[rxHeadroom : rxHeadroom+n]
	e.stats.netPackets.Add(1)
	if len(pkt) < ipv4HeaderLen {
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(pkt) < ihl+8 {
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return false
	}
	src := netip.AddrFrom4([4]byte(pkt[ipv4Src:]))
	dst := netip.AddrFrom4([4]byte(pkt[ipv4Dst:]))
	var spi uint32
	if c.proto == dataplane.ESP {
		spi = binary.BigEndian.Uint32(pkt[ihl:])
	} else {
		spi = binary.BigEndian.Uint32(pkt[ihl+4:])
	}
	sa := e.sad.lookup(c.proto, spi, dst)
	if sa == nil || sa.addr.Load().encap || !sa.hold() {
		e.stats.drops[dataplane.DropNoSA].Add(1)
		return false
	}
	el.sa, el.local, el.remote = sa, dst, netip.AddrPortFrom(src, 0)
	if c.proto == dataplane.ESP {
		el.pkt = pkt[ihl:]
	} else {
		el.pkt = pkt // AH authenticates the IP header too
	}
	return true
}

// classifyRaw6 handles a packet from a raw IPv6 socket (no IP header; the destination comes from
// IPV6_PKTINFO). For AH the IPv6 header is rebuilt in front: its immutable fields are exactly the
// addresses, the payload length and next header 51.
func (e *Engine) classifyRaw6(c *rawConn, el *elem, m *ipv6.Message) bool {
	e.stats.netPackets.Add(1)
	payload := el.big[rxHeadroom+ipv6HeaderLen : rxHeadroom+ipv6HeaderLen+m.N]
	var cm ipv6.ControlMessage
	ia, _ := m.Addr.(*net.IPAddr)
	if ia == nil || cm.Parse(m.OOB[:m.NN]) != nil || cm.Dst == nil || len(payload) < 8 {
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return false
	}
	src, _ := netip.AddrFromSlice(ia.IP)
	dst, _ := netip.AddrFromSlice(cm.Dst)
	src, dst = src.Unmap(), dst.Unmap()
	var spi uint32
	if c.proto == dataplane.ESP {
		spi = binary.BigEndian.Uint32(payload)
	} else {
		spi = binary.BigEndian.Uint32(payload[4:])
	}
	sa := e.sad.lookup(c.proto, spi, dst)
	if sa == nil || sa.addr.Load().encap || !sa.hold() {
		e.stats.drops[dataplane.DropNoSA].Add(1)
		return false
	}
	el.sa, el.local, el.remote = sa, dst, netip.AddrPortFrom(src, 0)
	if c.proto == dataplane.ESP {
		el.pkt = payload
		return true
	}
	full := el.big[rxHeadroom : rxHeadroom+ipv6HeaderLen+m.N]
	writeIPHeader(full[:ipv6HeaderLen], src, dst, byte(dataplane.AH), m.N)
	el.pkt = full
	return true
}
