package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ikeSockets carries IKE: its own UDP sockets on the IKE port (500), and the data plane's NAT-T
// socket (4500) for messages behind the non-ESP marker.
type ikeSockets struct {
	port     uint16
	nattPort uint16
	c4       *ipv4.PacketConn
	c6       *ipv6.PacketConn
	raw4     *net.UDPConn
	raw6     *net.UDPConn
	natt     func(b []byte, remote netip.AddrPort) error
	log      *slog.Logger
}

// listenIKE opens the IKE port on all addresses, IPv4 and IPv6, marked with fwmark so that policy
// routing never sends IKE into the tunnel.
func listenIKE(port, nattPort uint16, mark uint32, natt func([]byte, netip.AddrPort) error, log *slog.Logger) (*ikeSockets, error) {
	s := &ikeSockets{port: port, nattPort: nattPort, natt: natt, log: log}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			if serr == nil && network == "udp6" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c4, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("open IKE port %d (IPv4): %w", port, err)
	}
	s.raw4 = c4.(*net.UDPConn)
	s.c4 = ipv4.NewPacketConn(s.raw4)
	if err := s.c4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		s.close()
		return nil, err
	}
	if c6, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf(":%d", port)); err == nil {
		s.raw6 = c6.(*net.UDPConn)
		s.c6 = ipv6.NewPacketConn(s.raw6)
		if err := s.c6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			s.close()
			return nil, err
		}
	} else if !errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EADDRNOTAVAIL) {
		s.close()
		return nil, fmt.Errorf("open IKE port %d (IPv6): %w", port, err)
	}
	return s, nil
}

func (s *ikeSockets) close() {
	if s.raw4 != nil {
		s.raw4.Close()
	}
	if s.raw6 != nil {
		s.raw6.Close()
	}
}

// Send implements engine.Transport.
func (s *ikeSockets) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == s.nattPort && local.Port() != s.port {
		return s.natt(b, remote)
	}
	dst := net.UDPAddrFromAddrPort(remote)
	if remote.Addr().Is4() || remote.Addr().Is4In6() {
		var cm *ipv4.ControlMessage
		if local.Addr().IsValid() && !local.Addr().IsUnspecified() {
			cm = &ipv4.ControlMessage{Src: local.Addr().AsSlice()}
		}
		_, err := s.c4.WriteTo(b, cm, dst)
		return err
	}
	if s.c6 == nil {
		return errors.New("no IPv6 IKE socket")
	}
	var cm *ipv6.ControlMessage
	if local.Addr().IsValid() && !local.Addr().IsUnspecified() {
		cm = &ipv6.ControlMessage{Src: local.Addr().AsSlice()}
	}
	_, err := s.c6.WriteTo(b, cm, dst)
	return err
}

// serve reads IKE messages until the sockets close and hands each to receive.
func (s *ikeSockets) serve(receive func(b []byte, local, remote netip.AddrPort)) {
	go s.readLoop(receive, func(buf []byte) (int, net.IP, net.Addr, error) {
		n, cm, src, err := s.c4.ReadFrom(buf)
		if cm == nil {
			return n, nil, src, err
		}
		return n, cm.Dst, src, err
	})
	if s.c6 != nil {
		go s.readLoop(receive, func(buf []byte) (int, net.IP, net.Addr, error) {
			n, cm, src, err := s.c6.ReadFrom(buf)
			if cm == nil {
				return n, nil, src, err
			}
			return n, cm.Dst, src, err
		})
	}
}

// readLoop reads one socket: read returns the datagram's length, our address it was sent to and
// the sender.
func (s *ikeSockets) readLoop(receive func(b []byte, local, remote netip.AddrPort), read func([]byte) (int, net.IP, net.Addr, error)) {
	buf := make([]byte, 65536)
	for {
		n, dstIP, src, err := read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok || dstIP == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(dstIP)
		ap := ua.AddrPort()
		receive(buf[:n], netip.AddrPortFrom(dst.Unmap(), s.port), netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
}
