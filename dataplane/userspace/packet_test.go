package userspace

import (
	"encoding/binary"
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
