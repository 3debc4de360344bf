package userspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

var (
	testMACDst = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	testMACSrc = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

// TestPutESPFrameIPv4 checks a whole IPv4 frame byte for byte: the tpacket2 length, the Ethernet
// header, the IPv4 header (checksum computed by hand below) and the ESP packet.
func TestPutESPFrameIPv4(t *testing.T) {
	eth := ethHeader(testMACDst, testMACSrc, 0x0800)
	espPkt := []byte{0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x07, 0xaa, 0xbb}
	frame := bytes.Repeat([]byte{0xee}, 128)
	binary.NativeEndian.PutUint32(frame, 0) // status: available
	n, err := putESPFrame(frame, &eth, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 0x1234, espPkt)
	if err != nil {
		t.Fatal(err)
	}
	// IPv4 header: 45 00 001e (30 = 20 + 10) 1234 4000 (DF) 40 (TTL 64) 32 (ESP) cksum c000 0201 c000 0202.
	// Checksum (RFC 1071): 4500+001e+1234+4000+4032+c000+0201+c000+0202 = 0x25b87, folded 0x5b89,
	// complemented 0xa476.
	want := "020000000002" + "020000000001" + "0800" +
		"4500001e" + "12344000" + "4032" + "a476" + "c0000201" + "c0000202" + hex.EncodeToString(espPkt)
	if n != ethHdrLen+ipv4HeaderLen+len(espPkt) {
		t.Fatalf("length %d", n)
	}
	if got := hex.EncodeToString(frame[txFrameData : txFrameData+n]); got != want {
		t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
	if l := binary.NativeEndian.Uint32(frame[4:]); l != uint32(n) {
		t.Fatalf("tp_len %d, want %d", l, n)
	}
	if binary.NativeEndian.Uint32(frame) != 0 {
		t.Fatal("status word changed")
	}
	if frame[txFrameData+n] != 0xee {
		t.Fatal("wrote past the packet")
	}
	if ipChecksum(frame[txFrameData+ethHdrLen:txFrameData+ethHdrLen+ipv4HeaderLen]) != 0 {
		t.Fatal("IPv4 header checksum does not verify")
	}
}

func TestPutESPFrameIPv6(t *testing.T) {
	eth := ethHeader(testMACDst, testMACSrc, 0x86dd)
	espPkt := []byte{0, 0, 0x20, 0x01, 0, 0, 0, 1}
	frame := make([]byte, 200)
	n, err := putESPFrame(frame, &eth, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 7, espPkt)
	if err != nil {
		t.Fatal(err)
	}
	// IPv6 header (RFC 8200 §3): version 6, payload length 8, next header 50, hop limit 64.
	want := "020000000002" + "020000000001" + "86dd" + "60000000" + "0008" + "32" + "40" +
		"20010db8000000000000000000000001" + "20010db8000000000000000000000002" + hex.EncodeToString(espPkt)
	if got := hex.EncodeToString(frame[txFrameData : txFrameData+n]); got != want {
		t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
}

// TestPutESPFrameLimits checks the exact size limit and the refusals.
func TestPutESPFrameLimits(t *testing.T) {
	eth := ethHeader(testMACDst, testMACSrc, 0x0800)
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	room := txRingFrameSize - txFrameData - ethHdrLen - ipv4HeaderLen
	frame := make([]byte, txRingFrameSize)
	if n, err := putESPFrame(frame, &eth, src, dst, 1, make([]byte, room)); err != nil || n != txRingFrameSize-txFrameData {
		t.Fatalf("a packet filling the frame: %d, %v", n, err)
	}
	if _, err := putESPFrame(frame, &eth, src, dst, 1, make([]byte, room+1)); !errors.Is(err, errFrameTooSmall) {
		t.Fatalf("one byte more: %v", err)
	}
	if _, err := putESPFrame(frame[:txFrameData-1], &eth, src, dst, 1, nil); !errors.Is(err, errFrameTooSmall) {
		t.Fatalf("frame shorter than its header: %v", err)
	}
	if _, err := putESPFrame(frame, &eth, src, netip.MustParseAddr("2001:db8::2"), 1, []byte{1}); err == nil {
		t.Fatal("mixed families accepted")
	}
	if _, err := putESPFrame(frame, &eth, netip.Addr{}, dst, 1, []byte{1}); err == nil {
		t.Fatal("invalid source accepted")
	}
}

// FuzzPutESPFrame writes frames of any size with packets of any size: a frame is written exactly
// when it fits, never beyond its length, and reads back as the packet given.
func FuzzPutESPFrame(f *testing.F) {
	f.Add(2048, []byte{1, 2, 3, 4, 5, 6, 7, 8}, false, uint16(1))
	f.Add(66, []byte{1, 2, 3, 4}, false, uint16(0))
	f.Add(100, bytes.Repeat([]byte{9}, 54), true, uint16(9))
	f.Fuzz(func(t *testing.T, size int, espPkt []byte, v6 bool, id uint16) {
		if size < 0 || size > 1<<17 {
			return
		}
		src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
		hl, et := ipv4HeaderLen, uint16(0x0800)
		if v6 {
			src, dst, hl, et = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::7"), ipv6HeaderLen, 0x86dd
		}
		eth := ethHeader(testMACDst, testMACSrc, et)
		buf := make([]byte, size+16)
		for i := range buf {
			buf[i] = 0xee
		}
		frame := buf[:size]
		n, err := putESPFrame(frame, &eth, src, dst, id, espPkt)
		fits := size >= txFrameData && txFrameData+ethHdrLen+hl+len(espPkt) <= size
		if (err == nil) != fits {
			t.Fatalf("size %d, packet %d: err %v, fits %v", size, len(espPkt), err, fits)
		}
		for _, b := range buf[size:] {
			if b != 0xee {
				t.Fatal("wrote beyond the frame")
			}
		}
		if err != nil {
			return
		}
		d := frame[txFrameData : txFrameData+n]
		if n != ethHdrLen+hl+len(espPkt) || !bytes.Equal(d[:ethHdrLen], eth[:]) || !bytes.Equal(d[ethHdrLen+hl:], espPkt) {
			t.Fatal("frame does not read back")
		}
		ip := d[ethHdrLen : ethHdrLen+hl]
		f, ok := parseFlow(append(append([]byte{}, ip...), espPkt...))
		if !ok || f.src != src || f.dst != dst || f.proto != 50 || f.totalLen != hl+len(espPkt) {
			t.Fatalf("IP header does not parse back: %+v %v", f, ok)
		}
		if !v6 && (ipChecksum(ip) != 0 || binary.BigEndian.Uint16(ip[4:]) != id) {
			t.Fatal("IPv4 checksum or identification wrong")
		}
	})
}

// TestRawESPPacketRing carries byte-checked TCP both ways over raw ESP (AES-GCM, IPv4 and IPv6
// outer addresses) between two namespaces, with the AF_PACKET TX ring and with the raw socket
// alone, and checks which path the packets took.
func TestRawESPPacketRing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noRing bool
		outer6 bool
	}{
		{name: "ring-outer4"},
		{name: "ring-outer6", outer6: true},
		{name: "rawsocket-outer4", noRing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPairWith(t, Config{NoPacketRing: tc.noRing})
			sc := scenario{name: "raw-" + tc.name, proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: tc.outer6}
			inst := install(t, sc, a, b)
			// The first packets resolve the peer's link-layer address (through the raw socket);
			// the ring takes over when the path is looked up again.
			if ping, err := a.ns.Ping(inst.src, inst.dst, 2, 50*time.Millisecond, 2*time.Second); err != nil || ping.Received != 2 {
				t.Fatalf("ping: %v %v", ping, err)
			}
			time.Sleep(l2PathTTL + 100*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7779), 4<<20); err != nil {
				t.Fatalf("TCP echo: %v; engine A %+v, engine B %+v", err, a.eng.Stats(), b.eng.Stats())
			}
			for _, s := range []*side{a, b} {
				ring := s.eng.stats.ring.sent.Load()
				if tc.noRing && ring != 0 {
					t.Errorf("%s: %d packets through the ring with NoPacketRing", s.ns.Name, ring)
				}
				if !tc.noRing && ring < 1000 {
					t.Errorf("%s: only %d packets through the ring", s.ns.Name, ring)
				}
				for _, sa := range s.eng.SAs() {
					if sa.Stats.Packets == 0 {
						t.Errorf("%s: SA %s carried no packets", s.ns.Name, sa.Key)
					}
					if d := sa.Stats.Drops; d[dataplane.DropAuth] != 0 || d[dataplane.DropMalformed] != 0 || d[dataplane.DropPolicy] != 0 {
						t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
					}
				}
				// What the status reports (dataplane.PacketRingStats): a ring per pipeline, the
				// same packets, each sendto carrying one or more, nothing broken on a healthy link.
				st, ok := s.eng.PacketRingStats()
				if ok == tc.noRing {
					t.Errorf("%s: PacketRingStats ok = %v with NoPacketRing %v", s.ns.Name, ok, tc.noRing)
				}
				if ok {
					if st.Rings != len(s.eng.txp) || st.Sent != s.eng.stats.ring.sent.Load() || st.Sent < ring ||
						st.Sendtos == 0 || st.Sendtos > st.Sent || st.Broken != 0 || st.Recovered != 0 {
						t.Errorf("%s: ring stats %+v with %d pipelines and %d packets sent", s.ns.Name, st, len(s.eng.txp), ring)
					}
				}
				t.Logf("%s: %d packets through the ring; %+v", s.ns.Name, ring, st)
			}
		})
	}
}

// FuzzSplitRawIPv4 feeds the raw socket's IPv4 parser any bytes: it accepts exactly the packets
// with a header length of at least 20 bytes followed by at least 8 bytes, and returns the bytes
// after the header.
func FuzzSplitRawIPv4(f *testing.F) {
	f.Add([]byte("\x45\x00\x00\x1c\x00\x00\x40\x00\x40\x32\x00\x00\xc0\x00\x02\x01\xc0\x00\x02\x02\x00\x00\x10\x01\x00\x00\x00\x01"))
	f.Add([]byte{0x4f, 1, 2})
	f.Add([]byte{0x44})
	f.Fuzz(func(t *testing.T, d []byte) {
		src, dst, pkt, ok := splitRawIPv4(d)
		ihl := 0
		if len(d) > 0 {
			ihl = int(d[0]&0x0f) * 4
		}
		want := len(d) >= ipv4HeaderLen && ihl >= ipv4HeaderLen && len(d) >= ihl+8
		if ok != want {
			t.Fatalf("ok %v for %x", ok, d)
		}
		if !ok {
			return
		}
		if len(pkt) != len(d)-ihl || &pkt[0] != &d[ihl] || src != netip.AddrFrom4([4]byte(d[12:16])) || dst != netip.AddrFrom4([4]byte(d[16:20])) {
			t.Fatalf("split %v %v %x of %x", src, dst, pkt, d)
		}
	})
}

// TestRawESPRingRevalidatesStaleNeighbour: the ring bypasses the kernel's neighbour output, which
// is what revalidates a STALE entry; so a path found STALE sends one batch through the raw socket,
// after which the kernel has moved the entry on (DELAY, PROBE or REACHABLE) and the ring takes
// the traffic again.
func TestRawESPRingRevalidatesStaleNeighbour(t *testing.T) {
	a, b := newPair(t)
	sc := scenario{name: "raw-stale", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36}
	inst := install(t, sc, a, b)
	ping := func() {
		t.Helper()
		if r, err := a.ns.Ping(inst.src, inst.dst, 3, 20*time.Millisecond, 2*time.Second); err != nil || r.Received != 3 {
			t.Fatalf("ping: %v %v", r, err)
		}
	}
	neigh := func() []string {
		t.Helper()
		out, err := a.ns.IP("neigh", "show", inst.outerB.String(), "dev", "veth0")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(out)
	}
	ping()
	time.Sleep(l2PathTTL + 100*time.Millisecond)
	ping()
	before := a.eng.stats.ring.sent.Load()
	if before == 0 {
		t.Fatal("the ring carried nothing once the neighbour was resolved")
	}
	f := neigh() // 192.0.2.2 lladdr 02:.. REACHABLE
	if len(f) < 4 || f[1] != "lladdr" {
		t.Fatalf("neighbour entry %q", f)
	}
	if _, err := a.ns.IP("neigh", "replace", inst.outerB.String(), "dev", "veth0", "lladdr", f[2], "nud", "stale"); err != nil {
		t.Fatal(err)
	}
	if f := neigh(); f[len(f)-1] != "STALE" {
		t.Fatalf("neighbour entry %q, want STALE", f)
	}
	time.Sleep(l2PathTTL + 100*time.Millisecond)
	ping()
	f = neigh()
	if state := f[len(f)-1]; state != "DELAY" && state != "PROBE" && state != "REACHABLE" {
		t.Fatalf("neighbour entry %q after sending: the kernel did not revalidate it", f)
	}
	if after := a.eng.stats.ring.sent.Load(); after <= before {
		t.Fatalf("the ring carried nothing after the revalidating batch (%d, %d before)", after, before)
	}
}
