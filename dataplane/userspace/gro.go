package userspace

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// groWriter delivers decrypted packets to the TUN device, coalescing consecutive TCP segments of
// one flow into one GSO packet (what the kernel's GRO does for a NIC) so that the kernel's TCP
// stack takes a 64 KiB packet in one pass. Nothing is copied: a coalesced packet is written with
// writev from the places the segments were decrypted in (the first one's headers, then every
// segment's payload).
//
// The coalesced packet carries CHECKSUM_PARTIAL (VIRTIO_NET_HDR_F_NEEDS_CSUM, the pseudo-header
// sum in the TCP checksum field), as wireguard-go's TUN writes do: the kernel trusts it for local
// delivery and computes it when it forwards the packet. The segments' own checksums are not
// verified first, unlike wireguard-go: ESP's ICV (or AH's) has already authenticated each segment
// end to end, which a 16-bit checksum cannot add to.
//
// Coalescing follows the kernel's GRO rules (net/ipv4/tcp_offload.c tcp_gro_receive): same
// addresses and ports, IP header fields that GRO compares equal (TOS/traffic class, TTL/hop
// limit, DF), the same TCP header apart from sequence number and checksum, sequence numbers that
// follow on, segments of one size with possibly a shorter last one, PSH only on the last, no
// flags besides ACK and PSH. Other packets are written one by one.
//
// A packet goes to the TUN queue its flow hashes to. The kernel remembers, per flow, the queue a
// packet of the flow was written to and hands the flow's outbound packets to that queue's reader
// (tun's automatic flow steering), so spreading the flows here spreads the outbound work over the
// pipelines; one writer keeps each flow in order.
type groWriter struct {
	queues []*tunQueue
	iov    []unix.Iovec
	parts  [][]byte // the coalesced packet: virtio-net header, IP header, TCP header and payload, more payloads
	vhdr   [vnetHdrLen]byte
	zero   [vnetHdrLen]byte

	active  bool
	is6     bool
	ip, l4  []byte // the first segment's IP header and its TCP header plus payload
	tcphLen int
	gsoSize int
	nextSeq uint32
	total   int // IP packet length so far
	count   int
	ended   bool // a shorter segment or PSH came: nothing may follow
	psh     bool
	err     error
}

// maxGROLen is the largest coalesced IP packet: the 16-bit IP length fields.
const maxGROLen = 65535

// add delivers one packet: ip is its IP header (with IPv6 extension headers), l4 the rest. Both
// must stay untouched until flush.
func (g *groWriter) add(ip, l4 []byte) {
	if g.active && g.appendable(ip, l4) {
		seg := l4[g.tcphLen:]
		g.parts = append(g.parts, seg)
		g.total += len(seg)
		g.nextSeq += uint32(len(seg))
		g.count++
		if len(seg) < g.gsoSize {
			g.ended = true
		}
		if l4[13]&tcpPSH != 0 {
			g.ended, g.psh = true, true
		}
		return
	}
	g.flush()
	if !groCandidate(ip, l4) {
		g.write(g.zero[:], ip, l4)
		return
	}
	g.active, g.is6 = true, ip[0]>>4 == 6
	g.ip, g.l4 = ip, l4
	g.tcphLen = int(l4[12]>>4) * 4
	g.gsoSize = len(l4) - g.tcphLen
	g.nextSeq = binary.BigEndian.Uint32(l4[4:]) + uint32(g.gsoSize)
	g.total = len(ip) + len(l4)
	g.count = 1
	g.ended = l4[13]&tcpPSH != 0
	g.psh = g.ended
	g.parts = append(g.parts[:0], g.vhdr[:], ip, l4)
}

// TCP header flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// groCandidate reports whether a packet may start a coalesced one: TCP with payload, only ACK
// (and PSH) set, IPv4 without options and not fragmented, IPv6 without extension headers.
func groCandidate(ip, l4 []byte) bool {
	if len(l4) < 20 {
		return false
	}
	th := int(l4[12]>>4) * 4
	if th < 20 || th >= len(l4) || l4[13]&^(tcpACK|tcpPSH) != 0 || l4[13]&tcpACK == 0 {
		return false
	}
	switch ip[0] >> 4 {
	case 4:
		return len(ip) == ipv4HeaderLen && ip[ipv4Proto] == 6 && binary.BigEndian.Uint16(ip[ipv4FragOff:])&0x3fff == 0
	case 6:
		return len(ip) == ipv6HeaderLen && ip[ipv6NextHeader] == 6
	}
	return false
}

// appendable reports whether (ip, l4) continues the coalesced packet.
func (g *groWriter) appendable(ip, l4 []byte) bool {
	if g.ended || len(ip) != len(g.ip) || len(l4) <= g.tcphLen || int(l4[12]>>4)*4 != g.tcphLen {
		return false
	}
	seg := len(l4) - g.tcphLen
	if seg > g.gsoSize || g.total+seg > maxGROLen || binary.BigEndian.Uint32(l4[4:]) != g.nextSeq {
		return false
	}
	if l4[13]&^(tcpACK|tcpPSH) != 0 {
		return false
	}
	// Ports, acknowledgment number, data offset and window equal; options equal.
	if !bytes.Equal(l4[:4], g.l4[:4]) || !bytes.Equal(l4[8:13], g.l4[8:13]) || !bytes.Equal(l4[14:16], g.l4[14:16]) ||
		!bytes.Equal(l4[18:g.tcphLen], g.l4[18:g.tcphLen]) {
		return false
	}
	if g.is6 {
		// Version, traffic class and flow label; next header and hop limit; addresses.
		return ip[0]>>4 == 6 && bytes.Equal(ip[:4], g.ip[:4]) && bytes.Equal(ip[6:40], g.ip[6:40])
	}
	// TOS; DF and the reserved bit; TTL and protocol; addresses.
	return ip[0] == g.ip[0] && ip[1] == g.ip[1] && ip[6]>>5 == g.ip[6]>>5 && binary.BigEndian.Uint16(ip[ipv4FragOff:])&0x1fff == 0 &&
		bytes.Equal(ip[8:10], g.ip[8:10]) && bytes.Equal(ip[12:20], g.ip[12:20])
}

// flush writes the coalesced packet, if any.
func (g *groWriter) flush() {
	if !g.active {
		return
	}
	g.active = false
	if g.count == 1 {
		g.write(g.zero[:], g.ip, g.l4)
		return
	}
	ip, l4 := g.ip, g.l4
	h := vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: uint16(len(ip) + g.tcphLen), gsoSize: uint16(g.gsoSize),
		csumStart: uint16(len(ip)), csumOffset: 16}
	l4Len := g.total - len(ip)
	if g.is6 {
		h.gsoType = vnetGSOTCPv6
		binary.BigEndian.PutUint16(ip[ipv6PayloadLen:], uint16(l4Len))
		binary.BigEndian.PutUint16(l4[16:], csumFold(pseudoSum(ip[ipv6Src:ipv6Src+16], ip[ipv6Dst:ipv6Dst+16], 6, l4Len)))
	} else {
		h.gsoType = vnetGSOTCPv4
		binary.BigEndian.PutUint16(ip[ipv4TotalLen:], uint16(g.total))
		ip[ipv4Checksum], ip[ipv4Checksum+1] = 0, 0
		binary.BigEndian.PutUint16(ip[ipv4Checksum:], ipChecksum(ip))
		binary.BigEndian.PutUint16(l4[16:], csumFold(pseudoSum(ip[ipv4Src:ipv4Src+4], ip[ipv4Dst:ipv4Dst+4], 6, l4Len)))
	}
	if g.psh {
		l4[13] |= tcpPSH
	}
	h.encode(g.vhdr[:])
	if err := g.queue(ip, l4).writev(g.parts, &g.iov); err != nil {
		g.err = err
	}
	clear(g.parts)
	g.parts = g.parts[:0]
	g.ip, g.l4 = nil, nil
}

// write writes one packet with the given virtio-net header.
func (g *groWriter) write(vhdr, ip, l4 []byte) {
	parts := append(g.parts[:0], vhdr, ip, l4)
	if err := g.queue(ip, l4).writev(parts, &g.iov); err != nil {
		g.err = err
	}
	clear(parts)
	g.parts = parts[:0]
}

// queue picks the TUN queue of a packet's flow: a hash of its addresses and, for TCP and UDP, its
// ports (the same for both directions, as the kernel's flow table keys are).
func (g *groWriter) queue(ip, l4 []byte) *tunQueue {
	n := len(g.queues)
	if n == 1 {
		return g.queues[0]
	}
	var h uint64
	var proto byte
	if ip[0]>>4 == 4 {
		h = uint64(binary.BigEndian.Uint32(ip[ipv4Src:])) ^ uint64(binary.BigEndian.Uint32(ip[ipv4Dst:]))
		proto = ip[ipv4Proto]
	} else {
		h = binary.BigEndian.Uint64(ip[ipv6Src+8:]) ^ binary.BigEndian.Uint64(ip[ipv6Dst+8:]) ^
			binary.BigEndian.Uint64(ip[ipv6Src:]) ^ binary.BigEndian.Uint64(ip[ipv6Dst:])
		proto = ip[ipv6NextHeader]
	}
	if (proto == 6 || proto == 17) && len(l4) >= 4 {
		h ^= uint64(binary.BigEndian.Uint16(l4) ^ binary.BigEndian.Uint16(l4[2:]))
	}
	return g.queues[mix64(h^uint64(proto))%uint64(n)]
}
