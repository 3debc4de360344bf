package userspace

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
)

// rawSockets are the raw sockets for ESP and AH over IPv4 and IPv6 (nil where the family is not
// available), and the IPPROTO_RAW sockets through which bypassed packets leave in the clear.
//
// There is one raw socket per protocol and family: the kernel hands every incoming packet of the
// protocol to every raw socket bound to it, so more sockets would mean more copies. Pipelines
// share a socket's sending side (one sendmmsg per batch, under the socket's lock); its receiving
// side has one goroutine.
type rawSockets struct {
	conns          []*rawConn
	clear4, clear6 int // file descriptors; -1 when unavailable
}

// rawConn is one raw ESP or AH socket.
type rawConn struct {
	proto dataplane.Protocol
	sock  *batchSock
	mu    sync.Mutex // serialises senders on send
	send  *batchSender
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
			// AH's ICV covers the IPv4 identification field, so IPv4 AH packets carry their own
			// header; the kernel builds the others'.
			s, err := openRawSock(int(proto), is6, mark, proto == dataplane.AH && !is6)
			if err != nil {
				if is6 && errors.Is(err, syscall.EAFNOSUPPORT) {
					continue
				}
				rs.close()
				return nil, err
			}
			rs.conns = append(rs.conns, &rawConn{proto: proto, sock: s, send: newBatchSender()})
		}
	}
	return rs, nil
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
		errs = append(errs, c.sock.close())
	}
	return errors.Join(errs...)
}

func (rs *rawSockets) get(proto dataplane.Protocol, is6 bool) *rawConn {
	for _, c := range rs.conns {
		if c.proto == proto && c.sock.is6 == is6 {
			return c
		}
	}
	return nil
}

// send writes packets to dst in one sendmmsg call: for IPv4 AH they are complete IP packets,
// otherwise the IPsec header onwards (the kernel adds the IP header from src to dst).
func (rs *rawSockets) send(proto dataplane.Protocol, src, dst netip.Addr, pkts [][]byte) error {
	c := rs.get(proto, dst.Is6())
	if c == nil {
		return fmt.Errorf("no raw %s socket for %v", proto, dst)
	}
	if proto == dataplane.AH && dst.Is4() {
		src = netip.Addr{} // in the header already
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range pkts {
		c.send.add(p, 0, netip.AddrPortFrom(dst, 0), src)
	}
	return c.send.flush(c.sock)
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
