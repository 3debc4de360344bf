package userspace

import (
	"encoding/binary"
	"net/netip"
)

// flow is what the SPD needs to know about an IP packet.
type flow struct {
	src, dst netip.Addr
	proto    uint8  // upper-layer protocol
	srcPort  uint16 // for ICMP: type<<8 | code
	dstPort  uint16
	hasPorts bool // false for non-first fragments and protocols without ports
	hdrLen   int  // bytes of IP header (with IPv6 extension headers) before the upper layer
	totalLen int  // IP total length from the header
}

// Offsets into IP headers.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40

	ipv4TotalLen = 2
	ipv4FragOff  = 6
	ipv4Proto    = 9
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16

	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6Src        = 8
	ipv6Dst        = 24
)

// IPv6 extension headers walked to find the upper layer.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	protoNoNext  = 59
)

// parseFlow reads the addresses, protocol and ports of an IPv4 or IPv6 packet. ok is false for
// packets too short or inconsistent to be forwarded.
func parseFlow(pkt []byte) (f flow, ok bool) {
	if len(pkt) < 1 {
		return f, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4HeaderLen {
			return f, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[ipv4TotalLen:]))
		if ihl < ipv4HeaderLen || total < ihl || total > len(pkt) {
			return f, false
		}
		f.src = netip.AddrFrom4([4]byte(pkt[ipv4Src : ipv4Src+4]))
		f.dst = netip.AddrFrom4([4]byte(pkt[ipv4Dst : ipv4Dst+4]))
		f.proto = pkt[ipv4Proto]
		f.hdrLen = ihl
		f.totalLen = total
		fragOffset := binary.BigEndian.Uint16(pkt[ipv4FragOff:]) & 0x1fff
		if fragOffset == 0 {
			f.readPorts(pkt[ihl:total])
		}
		return f, true
	case 6:
		if len(pkt) < ipv6HeaderLen {
			return f, false
		}
		total := ipv6HeaderLen + int(binary.BigEndian.Uint16(pkt[ipv6PayloadLen:]))
		if total > len(pkt) {
			return f, false
		}
		f.src = netip.AddrFrom16([16]byte(pkt[ipv6Src : ipv6Src+16]))
		f.dst = netip.AddrFrom16([16]byte(pkt[ipv6Dst : ipv6Dst+16]))
		f.totalLen = total
		next := pkt[ipv6NextHeader]
		off := ipv6HeaderLen
		firstFragment := true
		for {
			switch next {
			case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
				if off+8 > total {
					return f, false
				}
				next = pkt[off]
				off += (int(pkt[off+1]) + 1) * 8
				continue
			case ipv6Fragment:
				if off+8 > total {
					return f, false
				}
				next = pkt[off]
				firstFragment = binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 == 0
				off += 8
				continue
			}
			break
		}
		if off > total {
			return f, false
		}
		f.proto = next
		f.hdrLen = off
		if firstFragment {
			f.readPorts(pkt[off:total])
		}
		return f, true
	}
	return f, false
}

func (f *flow) readPorts(l4 []byte) {
	switch f.proto {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if len(l4) >= 4 {
			f.srcPort = binary.BigEndian.Uint16(l4[0:])
			f.dstPort = binary.BigEndian.Uint16(l4[2:])
			f.hasPorts = true
		}
	case 1, 58: // ICMP, ICMPv6: type and code travel in the port fields of selectors
		if len(l4) >= 2 {
			f.srcPort = uint16(l4[0])<<8 | uint16(l4[1])
			f.dstPort = f.srcPort
			f.hasPorts = true
		}
	}
}

// ipChecksum computes the IPv4 header checksum over hdr (with the checksum field zeroed).
func ipChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(hdr[i])<<8 | uint32(hdr[i+1])
	}
	if len(hdr)%2 == 1 {
		sum += uint32(hdr[len(hdr)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// writeIPHeader writes a minimal IP header for a transport-mode packet whose upper-layer data of
// length payloadLen follows; hdr must be 20 (IPv4) or 40 (IPv6) bytes.
func writeIPHeader(hdr []byte, src, dst netip.Addr, proto uint8, payloadLen int) {
	if src.Is4() {
		hdr[0] = 0x45
		hdr[1] = 0
		binary.BigEndian.PutUint16(hdr[ipv4TotalLen:], uint16(ipv4HeaderLen+payloadLen))
		binary.BigEndian.PutUint32(hdr[4:], 0x4000) // ID 0, DF
		hdr[8] = 64
		hdr[ipv4Proto] = proto
		hdr[ipv4Checksum], hdr[ipv4Checksum+1] = 0, 0
		s, d := src.As4(), dst.As4()
		copy(hdr[ipv4Src:], s[:])
		copy(hdr[ipv4Dst:], d[:])
		binary.BigEndian.PutUint16(hdr[ipv4Checksum:], ipChecksum(hdr[:ipv4HeaderLen]))
		return
	}
	binary.BigEndian.PutUint32(hdr[0:], 6<<28)
	binary.BigEndian.PutUint16(hdr[ipv6PayloadLen:], uint16(payloadLen))
	hdr[ipv6NextHeader] = proto
	hdr[7] = 64
	s, d := src.As16(), dst.As16()
	copy(hdr[ipv6Src:], s[:])
	copy(hdr[ipv6Dst:], d[:])
}

// fixTransportChecksum recomputes the TCP, UDP or ICMPv6 checksum of pkt (IP header of hl bytes,
// then the segment) for the pseudo-header of src and dst.
func fixTransportChecksum(pkt []byte, hl int, proto uint8, src, dst netip.Addr) {
	fixL4Checksum(pkt[hl:], proto, src, dst)
}

// fixL4Checksum recomputes the checksum of an upper-layer segment (TCP, UDP, ICMPv6: the protocols
// whose checksum covers a pseudo-header) for the pseudo-header of src and dst. Other protocols,
// and IPv4 UDP without checksum, are left alone.
func fixL4Checksum(seg []byte, proto uint8, src, dst netip.Addr) {
	var off int
	switch proto {
	case 58: // ICMPv6 (RFC 4443 §2.3: with a pseudo-header, like TCP and UDP)
		off = 2
	case 6:
		off = 16
	case 17:
		off = 6
		if len(seg) >= 8 && src.Is4() && binary.BigEndian.Uint16(seg[off:]) == 0 {
			return
		}
	default:
		return
	}
	if len(seg) < off+2 {
		return
	}
	seg[off], seg[off+1] = 0, 0
	c := ^csumFold(csumAdd(pseudoSum(src.AsSlice(), dst.AsSlice(), proto, len(seg)), seg))
	if c == 0 && proto == 17 {
		c = 0xffff // a computed zero is sent as all ones (RFC 768)
	}
	binary.BigEndian.PutUint16(seg[off:], c)
}
