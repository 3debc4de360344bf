package testnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// A minimal reader for the classic pcap file format that tcpdump -w writes, and for the Ethernet/IP/UDP
// headers inside, so tests can pull IKE and ESP datagrams out of captures without cgo or libpcap.
// (gopacket would need libpcap for writing and is not a module dependency.)

// pcap file header layout (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
const (
	pcapFileHeaderLen  = 24
	pcapRecordHdrLen   = 16
	pcapMagicMicro     = 0xa1b2c3d4
	pcapMagicNano      = 0xa1b23c4d
	pcapOffMagic       = 0
	pcapOffLinkType    = 20
	pcapRecOffSec      = 0
	pcapRecOffFrac     = 4
	pcapRecOffInclLen  = 8
	pcapRecOffOrigLen  = 12
	pcapMaxRecordBytes = 1 << 18 // 256 KiB: tcpdump's largest snap length
)

// Link types this reader decodes (https://www.tcpdump.org/linktypes.html).
const (
	LinkTypeEthernet = 1   // veth, tcpdump -i IFACE
	LinkTypeRaw      = 101 // raw IPv4/IPv6, e.g. TUN devices
	LinkTypeLinuxSLL = 113 // tcpdump -i any, old cooked header
	LinkTypeSLL2     = 276 // tcpdump -i any, cooked header v2
)

// Header sizes and offsets below the link layer.
const (
	ethHeaderLen    = 14
	ethOffType      = 12
	sllHeaderLen    = 16
	sllOffProtocol  = 14
	sll2HeaderLen   = 20
	sll2OffProtocol = 0
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherTypeVLAN   = 0x8100

	ipv4MinHeaderLen = 20
	ipv4OffTotalLen  = 2
	ipv4OffFlagsFrag = 6
	ipv4OffProtocol  = 9
	ipv4OffSrc       = 12
	ipv4OffDst       = 16
	ipv4FlagMF       = 0x2000
	ipv4FragOffMask  = 0x1fff

	ipv6HeaderLen     = 40
	ipv6OffPayloadLen = 4
	ipv6OffNextHeader = 6
	ipv6OffSrc        = 8
	ipv6OffDst        = 24
	ipv6NextFragment  = 44

	udpHeaderLen = 8
	udpOffSrc    = 0
	udpOffDst    = 2
	udpOffLen    = 4
	protoUDP     = 17
)

// Errors from Packet.UDP for packets that are fine but not what the caller wants.
var (
	ErrNotUDP     = errors.New("testnet: not a UDP packet")
	ErrIPFragment = errors.New("testnet: IP fragment, cannot extract UDP payload")
)

// Packet is one captured frame.
type Packet struct {
	Time     time.Time
	LinkType uint32
	Data     []byte // the captured bytes from the link-layer header on
	OrigLen  int    // length on the wire; more than len(Data) if the capture truncated it
}

// UDPDatagram is a UDP datagram found in a Packet. Payload aliases the Packet's Data.
type UDPDatagram struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

// ReadPcap reads a whole pcap file.
func ReadPcap(path string) ([]Packet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePcap(data)
}

// ParsePcap decodes a pcap file held in memory; the packets alias data.
func ParsePcap(data []byte) ([]Packet, error) {
	if len(data) < pcapFileHeaderLen {
		return nil, fmt.Errorf("testnet: pcap: %d bytes, shorter than the %d-byte file header", len(data), pcapFileHeaderLen)
	}
	var order binary.ByteOrder
	var nano bool
	switch {
	case binary.LittleEndian.Uint32(data[pcapOffMagic:]) == pcapMagicMicro:
		order = binary.LittleEndian
	case binary.BigEndian.Uint32(data[pcapOffMagic:]) == pcapMagicMicro:
		order = binary.BigEndian
	case binary.LittleEndian.Uint32(data[pcapOffMagic:]) == pcapMagicNano:
		order, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(data[pcapOffMagic:]) == pcapMagicNano:
		order, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("testnet: pcap: unknown magic %x (pcapng is not supported)", data[:4])
	}
	// The upper bits of the link type field carry FCS information; the type is the low 16 bits.
	linkType := order.Uint32(data[pcapOffLinkType:]) & 0xffff
	var pkts []Packet
	rest := data[pcapFileHeaderLen:]
	for len(rest) > 0 {
		if len(rest) < pcapRecordHdrLen {
			return pkts, fmt.Errorf("testnet: pcap: packet %d: %d bytes left, shorter than a record header", len(pkts)+1, len(rest))
		}
		sec := order.Uint32(rest[pcapRecOffSec:])
		frac := order.Uint32(rest[pcapRecOffFrac:])
		incl := order.Uint32(rest[pcapRecOffInclLen:])
		orig := order.Uint32(rest[pcapRecOffOrigLen:])
		if incl > pcapMaxRecordBytes {
			return pkts, fmt.Errorf("testnet: pcap: packet %d: captured length %d exceeds %d", len(pkts)+1, incl, pcapMaxRecordBytes)
		}
		rest = rest[pcapRecordHdrLen:]
		if uint32(len(rest)) < incl {
			return pkts, fmt.Errorf("testnet: pcap: packet %d: captured length %d, only %d bytes left", len(pkts)+1, incl, len(rest))
		}
		nsec := int64(frac)
		if !nano {
			nsec *= 1000
		}
		pkts = append(pkts, Packet{
			Time:     time.Unix(int64(sec), nsec),
			LinkType: linkType,
			Data:     rest[:incl:incl],
			OrigLen:  int(orig),
		})
		rest = rest[incl:]
	}
	return pkts, nil
}

// UDP decodes the link, IP and UDP headers. It returns ErrNotUDP for other packets and ErrIPFragment
// for fragments, and another error for truncated or malformed headers.
func (p Packet) UDP() (UDPDatagram, error) {
	ip, etherType, err := p.network()
	if err != nil {
		return UDPDatagram{}, err
	}
	var src, dst netip.Addr
	var transport []byte
	switch etherType {
	case etherTypeIPv4:
		if len(ip) < ipv4MinHeaderLen || ip[0]>>4 != 4 {
			return UDPDatagram{}, fmt.Errorf("testnet: malformed IPv4 header")
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[ipv4OffTotalLen:]))
		if ihl < ipv4MinHeaderLen || total < ihl || total > len(ip) {
			return UDPDatagram{}, fmt.Errorf("testnet: IPv4 header length %d, total length %d, %d bytes captured", ihl, total, len(ip))
		}
		if ip[ipv4OffProtocol] != protoUDP {
			return UDPDatagram{}, ErrNotUDP
		}
		ff := binary.BigEndian.Uint16(ip[ipv4OffFlagsFrag:])
		if ff&ipv4FlagMF != 0 || ff&ipv4FragOffMask != 0 {
			return UDPDatagram{}, ErrIPFragment
		}
		src = netip.AddrFrom4([4]byte(ip[ipv4OffSrc : ipv4OffSrc+4]))
		dst = netip.AddrFrom4([4]byte(ip[ipv4OffDst : ipv4OffDst+4]))
		transport = ip[ihl:total]
	case etherTypeIPv6:
		if len(ip) < ipv6HeaderLen || ip[0]>>4 != 6 {
			return UDPDatagram{}, fmt.Errorf("testnet: malformed IPv6 header")
		}
		plen := int(binary.BigEndian.Uint16(ip[ipv6OffPayloadLen:]))
		if ipv6HeaderLen+plen > len(ip) {
			return UDPDatagram{}, fmt.Errorf("testnet: IPv6 payload length %d, %d bytes captured", plen, len(ip)-ipv6HeaderLen)
		}
		// Extension headers other than a fragment header do not occur in what these tests send.
		switch ip[ipv6OffNextHeader] {
		case protoUDP:
		case ipv6NextFragment:
			return UDPDatagram{}, ErrIPFragment
		default:
			return UDPDatagram{}, ErrNotUDP
		}
		src = netip.AddrFrom16([16]byte(ip[ipv6OffSrc : ipv6OffSrc+16]))
		dst = netip.AddrFrom16([16]byte(ip[ipv6OffDst : ipv6OffDst+16]))
		transport = ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	default:
		return UDPDatagram{}, ErrNotUDP
	}
	if len(transport) < udpHeaderLen {
		return UDPDatagram{}, fmt.Errorf("testnet: UDP header truncated: %d bytes", len(transport))
	}
	ulen := int(binary.BigEndian.Uint16(transport[udpOffLen:]))
	if ulen < udpHeaderLen || ulen > len(transport) {
		return UDPDatagram{}, fmt.Errorf("testnet: UDP length %d, %d bytes present", ulen, len(transport))
	}
	return UDPDatagram{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(transport[udpOffSrc:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(transport[udpOffDst:])),
		Payload: transport[udpHeaderLen:ulen:ulen],
	}, nil
}

// network strips the link-layer header and returns the IP packet and its EtherType.
func (p Packet) network() ([]byte, uint16, error) {
	d := p.Data
	switch p.LinkType {
	case LinkTypeEthernet:
		if len(d) < ethHeaderLen {
			return nil, 0, fmt.Errorf("testnet: Ethernet header truncated: %d bytes", len(d))
		}
		et := binary.BigEndian.Uint16(d[ethOffType:])
		d = d[ethHeaderLen:]
		if et == etherTypeVLAN {
			// 802.1Q: 2 bytes tag control, 2 bytes inner EtherType.
			if len(d) < 4 {
				return nil, 0, fmt.Errorf("testnet: VLAN header truncated")
			}
			et = binary.BigEndian.Uint16(d[2:])
			d = d[4:]
		}
		return d, et, nil
	case LinkTypeLinuxSLL:
		if len(d) < sllHeaderLen {
			return nil, 0, fmt.Errorf("testnet: SLL header truncated: %d bytes", len(d))
		}
		return d[sllHeaderLen:], binary.BigEndian.Uint16(d[sllOffProtocol:]), nil
	case LinkTypeSLL2:
		if len(d) < sll2HeaderLen {
			return nil, 0, fmt.Errorf("testnet: SLL2 header truncated: %d bytes", len(d))
		}
		return d[sll2HeaderLen:], binary.BigEndian.Uint16(d[sll2OffProtocol:]), nil
	case LinkTypeRaw:
		if len(d) == 0 {
			return nil, 0, fmt.Errorf("testnet: empty raw IP packet")
		}
		switch d[0] >> 4 {
		case 4:
			return d, etherTypeIPv4, nil
		case 6:
			return d, etherTypeIPv6, nil
		}
		return nil, 0, ErrNotUDP
	}
	return nil, 0, fmt.Errorf("testnet: link type %d not supported", p.LinkType)
}
