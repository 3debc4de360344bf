package userspace

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// synWithOptions builds an IPv4 TCP SYN with the options MSS mss, SACK permitted, timestamps,
// NOP and window scale (what Linux sends), with a valid checksum.
func synWithOptions(mss uint16) []byte {
	opts := []byte{2, 4, byte(mss >> 8), byte(mss), 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	pkt := make([]byte, 20+20+len(opts))
	src, dst := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1")
	writeIPHeader(pkt[:20], src, dst, 6, 20+len(opts))
	tcp := pkt[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 12345)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = tcpSYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	fixTransportChecksum(pkt, 20, 6, src, dst)
	return pkt
}

// tcpChecksumOK verifies the TCP checksum of an IPv4 packet.
func tcpChecksumOK(pkt []byte) bool {
	seg := pkt[20:]
	return csumFold(csumAdd(pseudoSum(pkt[12:16], pkt[16:20], 6, len(seg)), seg)) == 0xffff
}

// TestClampMSSOption: the MSS option is lowered to the bound with an incrementally updated
// checksum that still verifies, never raised, and left alone in packets that are not SYNs.
func TestClampMSSOption(t *testing.T) {
	e := headless(t, dataplane.Events{})
	sa := &saState{params: saConf{ClampMSS: 1300}}
	for _, tc := range []struct {
		mss, want uint16
		syn       bool
	}{{1460, 1300, true}, {1200, 1200, true}, {1460, 1460, false}} {
		pkt := synWithOptions(tc.mss)
		if !tc.syn {
			pkt[20+13] = tcpACK
			fixTransportChecksum(pkt, 20, 6, netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"))
		}
		e.clampMSS(sa, &saAddr{}, pkt[20:], false)
		if got := binary.BigEndian.Uint16(pkt[40+2:]); got != tc.want {
			t.Errorf("MSS %d (SYN %v): now %d, want %d", tc.mss, tc.syn, got, tc.want)
		}
		if !tcpChecksumOK(pkt) {
			t.Errorf("MSS %d (SYN %v): checksum no longer verifies", tc.mss, tc.syn)
		}
	}
	// Malformed options (a length running past the header, before the MSS option) leave the
	// packet as it is.
	pkt := synWithOptions(1460)
	copy(pkt[40:], []byte{1, 1, 8, 40, 2, 4, 0x05, 0xb4})
	before := string(pkt)
	e.clampMSS(sa, &saAddr{}, pkt[20:], false)
	if string(pkt) != before {
		t.Error("a SYN with malformed options was changed")
	}
}

// TestMSSLimitAuto: the automatic bound is the largest MSS whose segments, IP and TCP headers
// added and encapsulated, fit the path.
func TestMSSLimitAuto(t *testing.T) {
	e := headless(t, dataplane.Events{})
	e.cfg.MTU = 1500
	gcm, err := esp.NewSA(esp.Params{Encryption: esp.EncrAESGCM16, EncKey: make([]byte, 36)})
	if err != nil {
		t.Fatal(err)
	}
	sa := &saState{esp: gcm, params: saConf{ClampMSS: clampAuto, Mode: dataplane.Tunnel}}
	udp4 := &saAddr{src: netip.MustParseAddr("192.0.2.1"), dst: netip.MustParseAddr("192.0.2.2"), encap: true, outerMTU: 1500}
	// 1500 - 20 (outer IPv4) - 8 (UDP) - 8 (SPI, sequence number) - 8 (IV) - 16 (ICV) - 2 (pad
	// length, next header) = 1438, a multiple of 4 with the trailer: no padding. Less 20 (inner
	// IPv4) and 20 (TCP): 1398.
	if got := e.mssLimit(sa, udp4, false); got != 1398 {
		t.Errorf("IPv4 in UDP over IPv4, path MTU 1500: %d, want 1398", got)
	}
	// Raw ESP (no UDP header): 1446 less 2 bytes of padding to the 4-byte boundary = 1444 (1446
	// + 2 = 1448 is aligned; 1447 would need padding past the path), less 40: 1406. IPv6 inner
	// packets lose 20 more: 1386.
	raw := *udp4
	raw.encap = false
	if got := e.mssLimit(sa, &raw, false); got != 1406 {
		t.Errorf("raw ESP, path MTU 1500: %d, want 1406", got)
	}
	if got := e.mssLimit(sa, &raw, true); got != 1386 {
		t.Errorf("raw ESP, inner IPv6: %d, want 1386", got)
	}
	// The TUN device's MTU bounds it too: 1400 - 40.
	e.cfg.MTU = 1400
	if got := e.mssLimit(sa, udp4, false); got != 1360 {
		t.Errorf("TUN MTU 1400: %d, want 1360", got)
	}
}

var mssRE = regexp.MustCompile(`mss (\d+)`)

// synMSS reads a capture and returns the MSS option of the first packet whose TCP flags are
// exactly flags.
func synMSS(t *testing.T, pcap, flags string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", pcap, "-nn", "-v", "tcp[tcpflags] == "+flags).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v: %s", err, out)
	}
	m := mssRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no %s with an MSS option in the capture:\n%s", flags, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestMSSClamping: a tunnel whose TUN devices have a 1500-byte MTU over a 1500-byte path, so that
// full-sized segments would not fit once encapsulated. With clamping, the SYN that reaches the
// far end announces the MSS that fits (the near end clamped it on the way in) and so does the
// SYN-ACK that reaches the near end (clamped on the way out of the tunnel), and a transfer needs
// no "too big" drops; without it, the SYN arrives with the 1460 its sender chose.
func TestMSSClamping(t *testing.T) {
	for _, clamp := range []bool{true, false} {
		name := "clamp"
		if !clamp {
			name = "no-clamp"
		}
		t.Run(name, func(t *testing.T) {
			a, b := newPairWith(t, Config{MTU: 1500})
			sc := scenario{name: "mss", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36}
			if clamp {
				sc.clampMSS = dataplane.ClampMSSAuto
			}
			inst := install(t, sc, a, b)
			stopA := startCapture(t, a.ns, "goipsec0", "tcp[tcpflags] & tcp-syn != 0")
			stopB := startCapture(t, b.ns, "goipsec0", "tcp[tcpflags] & tcp-syn != 0")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7795), 1<<20); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			synAtB := synMSS(t, stopB(), "tcp-syn")
			synAckAtA := synMSS(t, stopA(), "(tcp-syn|tcp-ack)")
			outA := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: inst.outerB}
			outB := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x2001, Dst: inst.outerA}
			stA, _ := a.eng.SAStats(outA)
			stB, _ := b.eng.SAStats(outB)
			if !clamp {
				if synAtB != 1460 {
					t.Fatalf("without clamping the SYN arrived with MSS %d, want the sender's 1460", synAtB)
				}
				// And full-sized segments did not fit: path MTU discovery had to step in.
				if stA.Drops[dataplane.DropTooBig]+stB.Drops[dataplane.DropTooBig] == 0 {
					t.Fatal("without clamping no packet was too big: the test's path would not need clamping")
				}
				return
			}
			// 1500 − 20 (IPv4) − 8 (UDP) − 8 (ESP header) − 8 (IV) − 16 (ICV) − 2 (trailer) − 40.
			if synAtB != 1398 || synAckAtA != 1398 {
				t.Fatalf("MSS of the SYN at the far end %d, of the SYN-ACK at the near end %d; want 1398 both", synAtB, synAckAtA)
			}
			if n := stA.Drops[dataplane.DropTooBig] + stB.Drops[dataplane.DropTooBig]; n != 0 {
				t.Fatalf("%d packets too big although the MSS was clamped", n)
			}
			// A clamped the SYN on its way in, B the SYN-ACK.
			if a.eng.Stats().MSSClamped == 0 || b.eng.Stats().MSSClamped == 0 {
				t.Fatalf("SYNs counted as clamped: A %d, B %d", a.eng.Stats().MSSClamped, b.eng.Stats().MSSClamped)
			}
		})
	}
}
