package userspace

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestFixTransportChecksum: a UDP datagram whose checksum was computed for other (NATed)
// addresses gets a checksum that verifies for the rebuilt header.
func TestFixTransportChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1")
	pkt := make([]byte, 20+8+5)
	writeIPHeader(pkt[:20], src, dst, 17, 13)
	binary.BigEndian.PutUint16(pkt[20:], 4000)
	binary.BigEndian.PutUint16(pkt[22:], 53)
	binary.BigEndian.PutUint16(pkt[24:], 13)
	copy(pkt[28:], "hello")
	binary.BigEndian.PutUint16(pkt[26:], 0x1234) // computed for the peer's private address
	fixTransportChecksum(pkt, 20, 17, src, dst)
	// Verifying: the one's complement sum over pseudo-header and segment is all ones.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += 17 + 13
	add(pkt[20:])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Fatalf("checksum does not verify: sum %#x", sum)
	}
}

func FuzzParseFlow(f *testing.F) {
	pkt := make([]byte, 40)
	writeIPHeader(pkt[:20], netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 6, 20)
	f.Add(pkt)
	v6 := make([]byte, 60)
	writeIPHeader(v6[:40], netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 17, 20)
	f.Add(v6)
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, ok := parseFlow(b)
		if ok && (fl.hdrLen > fl.totalLen || fl.totalLen > len(b)) {
			t.Fatalf("parseFlow gave header %d, total %d for %d bytes", fl.hdrLen, fl.totalLen, len(b))
		}
	})
}

// TestCopyCsum checks copyCsum (copySum32 on x86-64 with AVX2) against copy and csumAdd for every
// length to 300 bytes and some long ones, at every alignment of source and destination within 8
// bytes, from various starting sums, including ones near the 64-bit carry.
func TestCopyCsum(t *testing.T) {
	if !haveCopySum32 {
		t.Log("copySum32 is not used on this machine or build: checking the portable path only")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 65536+16)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	// All-ones data makes the largest lane sums.
	ones := bytes.Repeat([]byte{0xff}, 65536+16)
	lengths := []int{65535, 65536, 4096, 1400, 1448, 8960}
	for n := range 301 {
		lengths = append(lengths, n)
	}
	accs := []uint64{0, 1, 0xffff, ^uint64(0) - 5, ^uint64(0)}
	for _, data := range [][]byte{src, ones} {
		for _, n := range lengths {
			for off := range 8 {
				for _, acc := range accs {
					s := data[off : off+n]
					dst := make([]byte, n+16)
					doff := (off * 3) % 8
					got := copyCsum(dst[doff:], s, acc)
					want := csumAdd(acc, s)
					if csumFold(got) != csumFold(want) {
						t.Fatalf("len %d, offset %d, acc %#x: sum %#04x, want %#04x", n, off, acc, csumFold(got), csumFold(want))
					}
					if !bytes.Equal(dst[doff:doff+n], s) {
						t.Fatalf("len %d, offset %d: copy differs", n, off)
					}
					if dst[doff+n] != 0 {
						t.Fatalf("len %d: wrote past the end", n)
					}
				}
			}
		}
	}
}

// rfc1071 is the Internet checksum of parts computed the plain way (ipChecksum: 16-bit big-endian
// words, carries folded at the end, RFC 1071 §4.1), independent of csumAdd and copyCsum.
func rfc1071(parts ...[]byte) uint16 {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return ipChecksum(b)
}

// TestSegmentsOfSuperPacket cuts TCP super-packets (IPv4 and IPv6, as the TUN device hands them
// out with TSO) into segments and checks each against what the kernel's GSO makes: lengths, IPv4
// IDs and header checksums, sequence numbers, flags on the first and last segment only, payload,
// and TCP checksums verified the plain RFC 1071 way.
func TestSegmentsOfSuperPacket(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		gso      int
		payload  int
	}{
		{"10.1.0.1", "10.2.0.1", 1448, 3 * 1448},
		{"10.1.0.1", "10.2.0.1", 1000, 2500},
		{"10.1.0.1", "10.2.0.1", 1388, 65535 - 40 - 32},
		{"2001:db8::1", "2001:db8:1::1", 1428, 5*1428 + 7},
		{"2001:db8::1", "2001:db8:1::1", 1001, 3003},
	} {
		src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
		iph := ipv4HeaderLen
		gsoType := uint8(vnetGSOTCPv4)
		if src.Is6() {
			iph, gsoType = ipv6HeaderLen, vnetGSOTCPv6
		}
		const tcph = 32 // with a timestamps option
		pkt := make([]byte, iph+tcph+tc.payload)
		writeIPHeader(pkt[:iph], src, dst, 6, tcph+tc.payload)
		tcp := pkt[iph:]
		binary.BigEndian.PutUint16(tcp[0:], 5201)
		binary.BigEndian.PutUint16(tcp[2:], 40000)
		binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps within the packet
		binary.BigEndian.PutUint32(tcp[8:], 77)
		tcp[12] = tcph / 4 << 4
		tcp[13] = tcpACK | 0x08 | 0x01 | 0x80 // ACK, PSH, FIN, CWR
		binary.BigEndian.PutUint16(tcp[14:], 512)
		copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8})
		for i := range tc.payload {
			tcp[tcph+i] = byte(i*7 + i>>8)
		}
		h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gsoType, hdrLen: uint16(iph + tcph), gsoSize: uint16(tc.gso),
			csumStart: uint16(iph), csumOffset: 16}
		var s superPkt
		if !s.parse(&h, pkt) {
			t.Fatalf("%s: parse refused the super-packet", tc.src)
		}
		want := (tc.payload + tc.gso - 1) / tc.gso
		if s.nseg != want {
			t.Fatalf("%s: %d segments, want %d", tc.src, s.nseg, want)
		}
		dstBuf := make([]byte, 2000)
		for i := range s.nseg {
			n := s.build(dstBuf, i, true)
			seg := dstBuf[:n]
			chunk := tcp[tcph+i*tc.gso : tcph+min((i+1)*tc.gso, tc.payload)]
			if n != iph+tcph+len(chunk) || n != s.segLen(i) {
				t.Fatalf("%s segment %d: %d bytes (segLen %d), want %d", tc.src, i, n, s.segLen(i), iph+tcph+len(chunk))
			}
			l4 := seg[iph:]
			var pseudo []byte
			if src.Is4() {
				if got := binary.BigEndian.Uint16(seg[ipv4TotalLen:]); int(got) != n {
					t.Errorf("%s segment %d: IPv4 total length %d, want %d", tc.src, i, got, n)
				}
				if got := binary.BigEndian.Uint16(seg[4:]); got != uint16(i) {
					t.Errorf("%s segment %d: IPv4 ID %d, want %d", tc.src, i, got, i)
				}
				if rfc1071(seg[:iph]) != 0 {
					t.Errorf("%s segment %d: IPv4 header checksum does not verify", tc.src, i)
				}
				pseudo = append(append(append([]byte{}, seg[12:20]...), 0, 6), byte(len(l4)>>8), byte(len(l4)))
			} else {
				if got := binary.BigEndian.Uint16(seg[ipv6PayloadLen:]); int(got) != n-iph {
					t.Errorf("%s segment %d: IPv6 payload length %d, want %d", tc.src, i, got, n-iph)
				}
				pseudo = append(append([]byte{}, seg[8:40]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, 6)
			}
			if rfc1071(pseudo, l4) != 0 {
				t.Errorf("%s segment %d: TCP checksum does not verify", tc.src, i)
			}
			if got, want := binary.BigEndian.Uint32(l4[4:]), uint32(0xfffff000)+uint32(i*tc.gso); got != want {
				t.Errorf("%s segment %d: sequence number %#x, want %#x", tc.src, i, got, want)
			}
			flags := byte(tcpACK)
			if i == 0 {
				flags |= 0x80
			}
			if i == s.nseg-1 {
				flags |= 0x08 | 0x01
			}
			if l4[13] != flags {
				t.Errorf("%s segment %d: flags %#x, want %#x", tc.src, i, l4[13], flags)
			}
			if !bytes.Equal(l4[tcph:], chunk) || !bytes.Equal(l4[20:tcph], tcp[20:tcph]) {
				t.Errorf("%s segment %d: payload or options differ", tc.src, i)
			}
		}
	}
}

// BenchmarkSegmentPayload: a segment's payload copied and summed in one pass (copyCsum) against
// the copy and the sum one after the other, as before.
func BenchmarkSegmentPayload(b *testing.B) {
	src := make([]byte, 1448)
	dst := make([]byte, 1448)
	b.Run("copyCsum", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			_ = copyCsum(dst, src, 0)
		}
	})
	b.Run("copy+csumAdd", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			copy(dst, src)
			_ = csumAdd(0, dst)
		}
	})
}
