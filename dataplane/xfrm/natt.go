package xfrm

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

// NATT is the NAT-T port (RFC 3948) for the kernel data plane: a UDP socket with the
// UDP_ENCAP_ESPINUDP option, so that the kernel takes the ESP packets arriving on it (and the
// one-byte NAT-keepalives) and leaves only IKE messages, which follow the 4-byte non-ESP marker,
// to be read here. It carries IKE on port 4500 for the daemon.
type NATT struct {
	port   uint16
	mark   uint32
	c4     *ipv4.PacketConn
	c6     *ipv6.PacketConn
	raw4   *net.UDPConn
	raw6   *net.UDPConn
	ike    func(b []byte, local netip.Addr, remote netip.AddrPort)
	log    *slog.Logger
	closed chan struct{}
}

// NATTConfig configures the NAT-T socket.
type NATTConfig struct {
	Port uint16
	// FwMark is set on the sockets (SO_MARK), like the daemon's IKE sockets.
	FwMark uint32
	// IKE receives each IKE message (non-ESP marker removed) with the local address it was sent
	// to and its sender.
	IKE    func(b []byte, local netip.Addr, remote netip.AddrPort)
	Logger *slog.Logger
}

// The non-ESP marker before IKE messages on port 4500 (RFC 3948 §2.2).
var nonESPMarker = []byte{0, 0, 0, 0}

// ListenNATT opens the NAT-T port (IPv4, and IPv6 where the host has it).
func ListenNATT(cfg NATTConfig) (*NATT, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &NATT{port: cfg.Port, mark: cfg.FwMark, ike: cfg.IKE, log: cfg.Logger, closed: make(chan struct{})}
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// UDP_ENCAP (100) with UDP_ENCAP_ESPINUDP: include/uapi/linux/udp.h.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP); serr != nil {
				serr = fmt.Errorf("UDP_ENCAP: %w", serr)
				return
			}
			if cfg.FwMark != 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(cfg.FwMark))
			}
			if serr == nil && network == "udp6" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c4, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("open NAT-T port %d: %w", cfg.Port, err)
	}
	n.raw4 = c4.(*net.UDPConn)
	n.c4 = ipv4.NewPacketConn(n.raw4)
	if err := n.c4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		n.Close()
		return nil, err
	}
	if c6, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf(":%d", cfg.Port)); err == nil {
		n.raw6 = c6.(*net.UDPConn)
		n.c6 = ipv6.NewPacketConn(n.raw6)
		if err := n.c6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			n.Close()
			return nil, err
		}
	}
	go n.read(func(b []byte) (int, net.IP, net.Addr, error) {
		k, cm, src, err := n.c4.ReadFrom(b)
		if cm == nil {
			return k, nil, src, err
		}
		return k, cm.Dst, src, err
	})
	if n.c6 != nil {
		go n.read(func(b []byte) (int, net.IP, net.Addr, error) {
			k, cm, src, err := n.c6.ReadFrom(b)
			if cm == nil {
				return k, nil, src, err
			}
			return k, cm.Dst, src, err
		})
	}
	return n, nil
}

func (n *NATT) read(read func([]byte) (int, net.IP, net.Addr, error)) {
	buf := make([]byte, 65536)
	for {
		k, dst, src, err := read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Debug("NAT-T read", "err", err)
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		// The kernel consumed ESP and keepalives; what is left should be IKE behind the
		// marker. Anything else is dropped.
		if k < len(nonESPMarker)+28 || [4]byte(buf[:4]) != [4]byte{} {
			continue
		}
		var local netip.Addr
		if dst != nil {
			local, _ = netip.AddrFromSlice(dst)
		}
		if n.ike != nil {
			n.ike(append([]byte(nil), buf[4:k]...), local.Unmap(), ua.AddrPort())
		}
	}
}

// SendIKE sends an IKE message to remote from the NAT-T port, behind the non-ESP marker.
func (n *NATT) SendIKE(b []byte, remote netip.AddrPort) error {
	msg := make([]byte, 0, len(b)+4)
	msg = append(append(msg, nonESPMarker...), b...)
	return n.send(msg, remote)
}

// SendKeepalive sends a NAT-keepalive (one 0xff byte, RFC 3948 §2.3).
func (n *NATT) SendKeepalive(remote netip.AddrPort) error {
	return n.send([]byte{0xff}, remote)
}

func (n *NATT) send(b []byte, remote netip.AddrPort) error {
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()))
	if remote.Addr().Unmap().Is4() {
		_, err := n.raw4.WriteToUDP(b, dst)
		return err
	}
	if n.raw6 == nil {
		return errors.New("no IPv6 NAT-T socket")
	}
	_, err := n.raw6.WriteToUDP(b, dst)
	return err
}

// NATTPort is the port the socket listens on.
func (n *NATT) NATTPort() uint16 { return n.port }

// FwMark is the mark on the socket's packets.
func (n *NATT) FwMark() uint32 { return n.mark }

// Close closes the sockets.
func (n *NATT) Close() error {
	if n.raw4 != nil {
		n.raw4.Close()
	}
	if n.raw6 != nil {
		n.raw6.Close()
	}
	return nil
}
