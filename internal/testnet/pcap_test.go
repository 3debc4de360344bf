package testnet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// buildPcap assembles a little-endian microsecond pcap file with the given link type and frames.
func buildPcap(linkType uint32, frames ...[]byte) []byte {
	hdr := make([]byte, pcapFileHeaderLen)
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagicMicro)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[pcapOffLinkType:], linkType)
	out := hdr
	for i, f := range frames {
		rec := make([]byte, pcapRecordHdrLen)
		binary.LittleEndian.PutUint32(rec[pcapRecOffSec:], 1700000000+uint32(i))
		binary.LittleEndian.PutUint32(rec[pcapRecOffFrac:], 250000)
		binary.LittleEndian.PutUint32(rec[pcapRecOffInclLen:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[pcapRecOffOrigLen:], uint32(len(f)))
		out = append(append(out, rec...), f...)
	}
	return out
}

// udp4Frame builds Ethernet + IPv4 + UDP around payload (checksums are not checked by the reader).
func udp4Frame(src, dst netip.AddrPort, payload []byte) []byte {
	eth := make([]byte, ethHeaderLen)
	binary.BigEndian.PutUint16(eth[ethOffType:], etherTypeIPv4)
	ip := make([]byte, ipv4MinHeaderLen)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[ipv4OffTotalLen:], uint16(ipv4MinHeaderLen+udpHeaderLen+len(payload)))
	ip[8] = 64
	ip[ipv4OffProtocol] = protoUDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[ipv4OffSrc:], s[:])
	copy(ip[ipv4OffDst:], d[:])
	u := make([]byte, udpHeaderLen)
	binary.BigEndian.PutUint16(u[udpOffSrc:], src.Port())
	binary.BigEndian.PutUint16(u[udpOffDst:], dst.Port())
	binary.BigEndian.PutUint16(u[udpOffLen:], uint16(udpHeaderLen+len(payload)))
	return append(append(append(eth, ip...), u...), payload...)
}

// udp6Raw builds a raw IPv6 + UDP packet (link type RAW).
func udp6Raw(src, dst netip.AddrPort, payload []byte) []byte {
	ip := make([]byte, ipv6HeaderLen)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[ipv6OffPayloadLen:], uint16(udpHeaderLen+len(payload)))
	ip[ipv6OffNextHeader] = protoUDP
	ip[7] = 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[ipv6OffSrc:], s[:])
	copy(ip[ipv6OffDst:], d[:])
	u := make([]byte, udpHeaderLen)
	binary.BigEndian.PutUint16(u[udpOffSrc:], src.Port())
	binary.BigEndian.PutUint16(u[udpOffDst:], dst.Port())
	binary.BigEndian.PutUint16(u[udpOffLen:], uint16(udpHeaderLen+len(payload)))
	return append(append(ip, u...), payload...)
}

var (
	src4 = netip.MustParseAddrPort("192.0.2.1:500")
	dst4 = netip.MustParseAddrPort("192.0.2.2:4500")
	src6 = netip.MustParseAddrPort("[2001:db8::1]:500")
	dst6 = netip.MustParseAddrPort("[2001:db8::2]:500")
)

func TestParsePcapUDP(t *testing.T) {
	file := buildPcap(LinkTypeEthernet, udp4Frame(src4, dst4, []byte("ike")), udp4Frame(dst4, src4, nil))
	pkts, err := ParsePcap(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 {
		t.Fatalf("%d packets, want 2", len(pkts))
	}
	if want := time.Unix(1700000000, 250000*1000); !pkts[0].Time.Equal(want) {
		t.Errorf("time %v, want %v", pkts[0].Time, want)
	}
	d, err := pkts[0].UDP()
	if err != nil {
		t.Fatal(err)
	}
	if d.Src != src4 || d.Dst != dst4 || string(d.Payload) != "ike" {
		t.Errorf("got %v -> %v %q", d.Src, d.Dst, d.Payload)
	}
	d, err = pkts[1].UDP()
	if err != nil || len(d.Payload) != 0 || d.Src != dst4 {
		t.Errorf("empty datagram: %v %v", d, err)
	}

	raw, err := ParsePcap(buildPcap(LinkTypeRaw, udp6Raw(src6, dst6, []byte("six"))))
	if err != nil {
		t.Fatal(err)
	}
	d, err = raw[0].UDP()
	if err != nil || d.Src != src6 || d.Dst != dst6 || string(d.Payload) != "six" {
		t.Errorf("IPv6: %v -> %v %q, %v", d.Src, d.Dst, d.Payload, err)
	}
}

func TestParsePcapBigEndianNano(t *testing.T) {
	file := buildPcap(LinkTypeRaw, udp6Raw(src6, dst6, []byte("x")))
	// Rewrite header and record as big-endian nanosecond format.
	binary.BigEndian.PutUint32(file[0:], pcapMagicNano)
	binary.BigEndian.PutUint32(file[pcapOffLinkType:], LinkTypeRaw)
	rec := file[pcapFileHeaderLen:]
	binary.BigEndian.PutUint32(rec[pcapRecOffSec:], 5)
	binary.BigEndian.PutUint32(rec[pcapRecOffFrac:], 7)
	n := binary.LittleEndian.Uint32(rec[pcapRecOffInclLen:])
	binary.BigEndian.PutUint32(rec[pcapRecOffInclLen:], n)
	binary.BigEndian.PutUint32(rec[pcapRecOffOrigLen:], n)
	pkts, err := ParsePcap(file)
	if err != nil {
		t.Fatal(err)
	}
	if !pkts[0].Time.Equal(time.Unix(5, 7)) {
		t.Errorf("time %v, want 5s+7ns", pkts[0].Time)
	}
}

func TestParsePcapErrors(t *testing.T) {
	good := buildPcap(LinkTypeEthernet, udp4Frame(src4, dst4, []byte("abc")))
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "0 bytes, shorter than the 24-byte file header"},
		{"magic", append([]byte{0x0a, 0x0d, 0x0d, 0x0a}, good[4:]...), "unknown magic 0a0d0d0a"},
		{"record header cut", good[:pcapFileHeaderLen+5], "packet 1: 5 bytes left, shorter than a record header"},
		{"record data cut", good[:len(good)-1], "packet 1: captured length 45, only 44 bytes left"},
	} {
		_, err := ParsePcap(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	huge := buildPcap(LinkTypeEthernet, []byte{1})
	binary.LittleEndian.PutUint32(huge[pcapFileHeaderLen+pcapRecOffInclLen:], pcapMaxRecordBytes+1)
	if _, err := ParsePcap(huge); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized record: %v", err)
	}
}

func TestPacketUDPErrors(t *testing.T) {
	frame := udp4Frame(src4, dst4, []byte("abcd"))
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), frame...)
		return f(b)
	}
	ipOff := ethHeaderLen
	for _, c := range []struct {
		name    string
		link    uint32
		data    []byte
		want    error
		wantMsg string
	}{
		{"tcp", LinkTypeEthernet, mod(func(b []byte) []byte { b[ipOff+ipv4OffProtocol] = 6; return b }), ErrNotUDP, ""},
		{"arp", LinkTypeEthernet, mod(func(b []byte) []byte { b[ethOffType+1] = 0x06; return b }), ErrNotUDP, ""},
		{"more fragments", LinkTypeEthernet, mod(func(b []byte) []byte { b[ipOff+ipv4OffFlagsFrag] = 0x20; return b }), ErrIPFragment, ""},
		{"later fragment", LinkTypeEthernet, mod(func(b []byte) []byte { b[ipOff+ipv4OffFlagsFrag+1] = 1; return b }), ErrIPFragment, ""},
		{"short ethernet", LinkTypeEthernet, frame[:10], nil, "Ethernet header truncated: 10 bytes"},
		{"short ip", LinkTypeEthernet, frame[:ethHeaderLen+10], nil, "malformed IPv4 header"},
		{"total length", LinkTypeEthernet, frame[:len(frame)-1], nil, "IPv4 header length 20, total length 32, 31 bytes captured"},
		{"udp length", LinkTypeEthernet, mod(func(b []byte) []byte { b[ipOff+ipv4MinHeaderLen+udpOffLen+1] = 40; return b }), nil, "UDP length 40, 12 bytes present"},
		{"udp length small", LinkTypeEthernet, mod(func(b []byte) []byte { b[ipOff+ipv4MinHeaderLen+udpOffLen+1] = 7; return b }), nil, "UDP length 7, 12 bytes present"},
		{"link type", 228, frame, nil, "link type 228 not supported"},
		{"raw empty", LinkTypeRaw, nil, nil, "empty raw IP packet"},
	} {
		_, err := Packet{LinkType: c.link, Data: c.data}.UDP()
		if c.want != nil {
			if !errors.Is(err, c.want) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantMsg) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.wantMsg)
		}
	}
	frag6 := udp6Raw(src6, dst6, []byte("x"))
	frag6[ipv6OffNextHeader] = ipv6NextFragment
	if _, err := (Packet{LinkType: LinkTypeRaw, Data: frag6}).UDP(); !errors.Is(err, ErrIPFragment) {
		t.Errorf("IPv6 fragment: %v", err)
	}
}

func FuzzParsePcap(f *testing.F) {
	f.Add(buildPcap(LinkTypeEthernet, udp4Frame(src4, dst4, []byte("ike"))))
	f.Add(buildPcap(LinkTypeRaw, udp6Raw(src6, dst6, []byte("six"))))
	f.Add(buildPcap(LinkTypeLinuxSLL, append(make([]byte, sllHeaderLen), udp6Raw(src6, dst6, nil)...)))
	f.Add(buildPcap(LinkTypeSLL2, make([]byte, sll2HeaderLen)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts, _ := ParsePcap(data)
		for _, p := range pkts {
			d, err := p.UDP()
			if err != nil {
				continue
			}
			if len(d.Payload) > len(p.Data) {
				t.Fatalf("payload of %d bytes from a %d-byte frame", len(d.Payload), len(p.Data))
			}
		}
	})
}

func TestTsharkICVCounts(t *testing.T) {
	out := `        Integrity Checksum Data: 5ef66c934525feaae2a92b4139f95627 (16 bytes)[correct]
        Integrity Checksum Data: 8e1b48b195fac2adaa69b2f0a1bce1b0 (16 bytes)[incorrect, should be 00112233445566778899aabbccddeeff]
        Authentication Data: [correct]
        Integrity Checksum Data: 8e1b48b195fac2adaa69b2f0a1bce1b0 (16 bytes)[correct]`
	if c, i := TsharkICVCounts(out); c != 2 || i != 1 {
		t.Errorf("TsharkICVCounts = %d, %d; want 2, 1", c, i)
	}
}

func TestUATQuote(t *testing.T) {
	if got, want := quote(`AES "x"\`), `"AES \x22x\x22\x5c"`; got != want {
		t.Errorf("quote = %s, want %s", got, want)
	}
}
