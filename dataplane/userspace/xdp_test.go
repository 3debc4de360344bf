package userspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// espFrame builds an Ethernet frame with an ESP packet from src to dst through putESPFrame (the
// TX ring's writer, whose output TestPutESPFrameIPv4 checks byte for byte).
func espFrame(t testing.TB, src, dst netip.Addr, espPkt []byte) []byte {
	t.Helper()
	et := uint16(0x0800)
	if dst.Is6() {
		et = 0x86dd
	}
	eth := ethHeader(testMACDst, testMACSrc, et)
	buf := make([]byte, txFrameData+ethHdrLen+ipv6HeaderLen+len(espPkt))
	n, err := putESPFrame(buf, &eth, src, dst, 0x1234, espPkt)
	if err != nil {
		t.Fatal(err)
	}
	return buf[txFrameData : txFrameData+n]
}

var (
	xdpSrc4, xdpDst4 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	xdpSrc6, xdpDst6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	xdpESP           = []byte{0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x07, 0xaa, 0xbb}
)

// TestParseESPFrame checks the AF_XDP path's frame parser on frames byte-checked elsewhere and on
// each way a frame can be wrong.
func TestParseESPFrame(t *testing.T) {
	for _, tc := range []struct{ src, dst netip.Addr }{{xdpSrc4, xdpDst4}, {xdpSrc6, xdpDst6}} {
		f := espFrame(t, tc.src, tc.dst, xdpESP)
		// Ethernet padding after the packet is not part of it.
		padded := append(append([]byte{}, f...), 0, 0, 0, 0)
		src, dst, pkt, ok := parseESPFrame(padded)
		if !ok || src != tc.src || dst != tc.dst || !bytes.Equal(pkt, xdpESP) {
			t.Fatalf("%v: %v %v %x %v", tc.dst, src, dst, pkt, ok)
		}
		if &pkt[0] != &padded[len(f)-len(xdpESP)] {
			t.Fatal("the ESP packet is not opened in place")
		}
		if _, _, _, ok := parseESPFrame(f[:len(f)-1]); ok {
			t.Fatalf("%v: a frame shorter than its IP length accepted", tc.dst)
		}
	}
	f4 := espFrame(t, xdpSrc4, xdpDst4, xdpESP)
	mutate := func(name string, fn func(ip []byte)) {
		t.Helper()
		f := append([]byte{}, f4...)
		fn(f[ethHdrLen:])
		if _, _, _, ok := parseESPFrame(f); ok {
			t.Errorf("%s accepted: %s", name, hex.EncodeToString(f))
		}
	}
	refix := func(ip []byte) {
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	}
	mutate("bad checksum", func(ip []byte) { ip[10] ^= 1 })
	mutate("fragment (MF)", func(ip []byte) { ip[6] |= 0x20; refix(ip) })
	mutate("fragment (offset)", func(ip []byte) { ip[7] = 1; refix(ip) })
	mutate("UDP", func(ip []byte) { ip[9] = 17; refix(ip) })
	mutate("version 5", func(ip []byte) { ip[0] = 0x55; refix(ip) })
	mutate("IHL 4", func(ip []byte) { ip[0] = 0x44; refix(ip) })
	mutate("total length 27", func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 27); refix(ip) })
	if f := append([]byte{}, f4...); true {
		f[12], f[13] = 0x08, 0x06
		if _, _, _, ok := parseESPFrame(f); ok {
			t.Error("ARP EtherType accepted")
		}
	}
	f6 := espFrame(t, xdpSrc6, xdpDst6, xdpESP)
	f6[ethHdrLen+6] = 0 // hop-by-hop options
	if _, _, _, ok := parseESPFrame(f6); ok {
		t.Error("IPv6 with an extension header accepted")
	}
}

// FuzzParseESPFrame feeds the parser any bytes: it never panics, and what it accepts lies inside
// the frame, is at least 8 bytes, and comes with addresses of the frame's family.
func FuzzParseESPFrame(f *testing.F) {
	f.Add(espFrame(f, xdpSrc4, xdpDst4, xdpESP))
	f.Add(espFrame(f, xdpSrc6, xdpDst6, xdpESP))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45})
	f.Fuzz(func(t *testing.T, d []byte) {
		src, dst, pkt, ok := parseESPFrame(d)
		if !ok {
			return
		}
		if len(pkt) < 8 || src.Is4() != dst.Is4() || !src.IsValid() {
			t.Fatalf("accepted %x: %v %v %x", d, src, dst, pkt)
		}
		start := -1
		for i := range d {
			if &d[i] == &pkt[0] {
				start = i
			}
		}
		if start < ethHdrLen+ipv4HeaderLen || start+len(pkt) > len(d) {
			t.Fatalf("packet outside the frame: start %d", start)
		}
	})
}

// TestXSKRing checks the ring index arithmetic across the wrap of the free-running uint32
// indexes, with the layout the kernel gives (producer, consumer, then descriptors).
func TestXSKRing(t *testing.T) {
	mem := make([]byte, 128+4*xskRxDescSize)
	off := unix.XDPRingOffset{Producer: 0, Consumer: 64, Desc: 128}
	r, err := newXSKRing(mem, off, 4, xskRxDescSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newXSKRing(mem, off, 3, xskRxDescSize); err == nil {
		t.Fatal("a ring of 3 accepted")
	}
	if _, err := newXSKRing(mem[:128+3*xskRxDescSize], off, 4, xskRxDescSize); err == nil {
		t.Fatal("descriptors beyond the mapping accepted")
	}
	// Start two short of the wrap, as after 2^32-2 packets.
	*r.prod, *r.cons = 0xfffffffe, 0xfffffffe
	if r.available() != 0 || r.free() != 4 {
		t.Fatalf("empty ring: available %d, free %d", r.available(), r.free())
	}
	// The kernel produces three descriptors, crossing the wrap.
	for i, a := range []uint64{0x1000, 0x2100, 0x3100} {
		d := mem[128+int((0xfffffffe+uint32(i))&3)*xskRxDescSize:]
		binary.NativeEndian.PutUint64(d, a)
		binary.NativeEndian.PutUint32(d[8:], uint32(60+i))
	}
	*r.prod += 3
	if *r.prod != 1 || r.available() != 3 || r.free() != 1 {
		t.Fatalf("after the wrap: prod %d, available %d, free %d", *r.prod, r.available(), r.free())
	}
	for i, want := range []uint64{0x1000, 0x2100, 0x3100} {
		if a, n := r.rxDesc(uint32(i)); a != want || n != uint32(60+i) {
			t.Fatalf("descriptor %d: %#x/%d", i, a, n)
		}
	}
	r.release(3)
	if *r.cons != 1 || r.available() != 0 {
		t.Fatalf("after release: cons %d, available %d", *r.cons, r.available())
	}
	// As a producer (the fill ring): addresses land in the slots after the producer index.
	r.putAddr(0, 0xabc000)
	r.putAddr(1, 0xdef000)
	r.submit(2)
	if *r.prod != 3 || binary.NativeEndian.Uint64(mem[128+1*xskRxDescSize:]) != 0xabc000 || binary.NativeEndian.Uint64(mem[128+2*xskRxDescSize:]) != 0xdef000 {
		t.Fatalf("fill: prod %d, slots %x", *r.prod, mem[128:])
	}
	umem := make([]byte, 2*xskFrameSize)
	if f, ok := xskFrame(umem, xskFrameSize+256, 100); !ok || len(f) != 100 || &f[0] != &umem[xskFrameSize+256] {
		t.Fatal("frame inside the UMEM refused")
	}
	for _, d := range []struct {
		addr uint64
		n    uint32
	}{{2 * xskFrameSize, 1}, {2*xskFrameSize - 10, 11}, {1 << 63, 1 << 31}, {0, 1<<32 - 1}} {
		if _, ok := xskFrame(umem, d.addr, d.n); ok {
			t.Fatalf("descriptor %#x/%d outside the UMEM accepted", d.addr, d.n)
		}
	}
}

// TestESPXDPProgram runs the XDP program (the kernel's BPF_PROG_TEST_RUN) on frames: ESP to an
// address in the map is redirected (XDP_TX in the test variant), everything else passes.
func TestESPXDPProgram(t *testing.T) {
	requireNetTests(t)
	maps, err := newXDPAddrMaps()
	if err != nil {
		t.Fatal(err)
	}
	defer maps.close()
	prog, err := newESPXDPProgram(maps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	for _, a := range []netip.Addr{xdpDst4, xdpDst6} {
		if err := maps.addrsFor(a).Put(a.AsSlice(), uint8(1)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(f []byte) uint32 {
		t.Helper()
		// Test runs need room for the minimal Ethernet frame.
		in := append(append([]byte{}, f...), make([]byte, max(0, 64-len(f)))...)
		ret, err := prog.Run(&ebpf.RunOptions{Data: in})
		if err != nil {
			t.Fatal(err)
		}
		return ret
	}
	frag := espFrame(t, xdpSrc4, xdpDst4, xdpESP)
	frag[ethHdrLen+6] |= 0x20
	opts := espFrame(t, xdpSrc4, xdpDst4, xdpESP)
	opts[ethHdrLen] = 0x46
	udp := espFrame(t, xdpSrc4, xdpDst4, xdpESP)
	udp[ethHdrLen+9] = 17
	ext6 := espFrame(t, xdpSrc6, xdpDst6, xdpESP)
	ext6[ethHdrLen+6] = 0
	vlan := espFrame(t, xdpSrc4, xdpDst4, xdpESP)
	vlan[12], vlan[13] = 0x81, 0x00
	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"ESP to a local SA address", espFrame(t, xdpSrc4, xdpDst4, xdpESP), xdpTX},
		{"IPv6 ESP to a local SA address", espFrame(t, xdpSrc6, xdpDst6, xdpESP), xdpTX},
		{"ESP to another address", espFrame(t, xdpSrc4, netip.MustParseAddr("192.0.2.9"), xdpESP), xdpPass},
		{"IPv6 ESP to another address", espFrame(t, xdpSrc6, netip.MustParseAddr("2001:db8::9"), xdpESP), xdpPass},
		{"fragment", frag, xdpPass},
		{"IPv4 options", opts, xdpPass},
		{"UDP", udp, xdpPass},
		{"IPv6 extension header", ext6, xdpPass},
		{"VLAN tag", vlan, xdpPass},
	} {
		if got := run(tc.frame); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	// ESP shorter than SPI and sequence number: the program's length check cuts at the frame's
	// end, so give it the exact length with no padding.
	short := espFrame(t, xdpSrc6, xdpDst6, xdpESP[:7])
	if ret, err := prog.Run(&ebpf.RunOptions{Data: short}); err != nil || ret != xdpPass {
		t.Errorf("IPv6 ESP of 7 bytes: verdict %d, %v", ret, err)
	}
	if err := maps.addrs4.Delete(xdpDst4.AsSlice()); err != nil {
		t.Fatal(err)
	}
	if got := run(espFrame(t, xdpSrc4, xdpDst4, xdpESP)); got != xdpPass {
		t.Errorf("ESP to an address removed from the map: verdict %d", got)
	}
}

// TestRawESPXDP carries byte-checked TCP both ways over raw ESP received through AF_XDP between
// two namespaces (each engine attaches the program to its own veth), checks that the packets came
// through the AF_XDP sockets, that ping and an IKE-like UDP exchange between the outer addresses
// still pass while the program is attached, and that closing the engine detaches it.
func TestRawESPXDP(t *testing.T) {
	for _, outer6 := range []bool{false, true} {
		name := "outer4"
		if outer6 {
			name = "outer6"
		}
		t.Run(name, func(t *testing.T) {
			a, b := newPairWith(t, Config{RawESPXDP: true, Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
			sc := scenario{name: "xdp-" + name, proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: outer6}
			inst := install(t, sc, a, b)
			for _, s := range []*side{a, b} {
				if s.eng.xdp == nil {
					t.Fatalf("%s: no AF_XDP receive path", s.ns.Name)
				}
				if m := s.eng.xdp.attached(); m["veth0"] != "native" {
					t.Fatalf("%s: attached %v, want veth0 in native mode", s.ns.Name, m)
				}
				if out, err := s.ns.IP("link", "show", "veth0"); err != nil || !strings.Contains(out, "xdp") {
					t.Fatalf("%s: ip link show veth0 has no XDP program: %q %v", s.ns.Name, out, err)
				}
			}
			if ping, err := a.ns.Ping(inst.src, inst.dst, 3, 50*time.Millisecond, 2*time.Second); err != nil || ping.Received != 3 {
				t.Fatalf("ping through the tunnel: %v %v", ping, err)
			}
			// Not ESP: the program passes it to the kernel.
			if ping, err := a.ns.Ping(inst.outerA, inst.outerB, 3, 50*time.Millisecond, 2*time.Second); err != nil || ping.Received != 3 {
				t.Fatalf("ping between the outer addresses: %v %v", ping, err)
			}
			udpExchange(t, a, b, inst.outerA, inst.outerB)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7781), 4<<20); err != nil {
				t.Fatalf("TCP echo: %v; engine A %+v, engine B %+v", err, a.eng.Stats(), b.eng.Stats())
			}
			for _, s := range []*side{a, b} {
				st, ok := s.eng.XDPStats()
				if !ok || st.Received < 1000 || st.Batches == 0 || st.Batches > st.Received {
					t.Errorf("%s: only %d packets through AF_XDP in %d batches", s.ns.Name, st.Received, st.Batches)
				}
				if len(st.Drops) != int(numXDPDrops) {
					t.Errorf("%s: drop reasons %v", s.ns.Name, st.Drops)
				}
				for r, d := range st.Drops {
					if d != 0 {
						t.Errorf("%s: %d frames dropped (%s)", s.ns.Name, d, r)
					}
				}
				if st.KernelDropped != 0 || st.RxRingFull != 0 {
					t.Errorf("%s: the kernel dropped frames: %+v", s.ns.Name, st)
				}
				for _, sa := range s.eng.SAs() {
					if sa.Stats.Packets == 0 {
						t.Errorf("%s: SA %s carried no packets", s.ns.Name, sa.Key)
					}
					if d := sa.Stats.Drops; d[dataplane.DropAuth] != 0 || d[dataplane.DropMalformed] != 0 || d[dataplane.DropPolicy] != 0 {
						t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
					}
				}
				t.Logf("%s: %+v", s.ns.Name, st)
			}
			// Deleting B's inbound SA takes its address out of the program's map: ESP to it goes
			// to the kernel (and the raw socket) again.
			inMap := func() bool {
				var v uint8
				return b.eng.xdp.maps.addrsFor(inst.outerB).Lookup(inst.outerB.AsSlice(), &v) == nil
			}
			if !inMap() {
				t.Fatal("B's SA address is not in the map")
			}
			for _, sa := range b.eng.SAs() {
				if sa.Params.Direction == dataplane.In {
					if err := b.eng.DeleteSA(sa.Key); err != nil {
						t.Fatal(err)
					}
				}
			}
			if inMap() {
				t.Fatal("B's SA address still in the map after its SA was deleted")
			}
			for _, s := range []*side{a, b} {
				if err := s.eng.Close(); err != nil {
					t.Fatalf("%s: close: %v", s.ns.Name, err)
				}
				if out, err := s.ns.IP("link", "show", "veth0"); err != nil || strings.Contains(out, "xdp") {
					t.Fatalf("%s: XDP program left on veth0 after Close: %q %v", s.ns.Name, out, err)
				}
			}
		})
	}
}

// TestRawESPXDPGeneric: where the driver has no native XDP (here a macvlan on B's veth, which
// carries B's outer address), the program is attached in generic mode and the AF_XDP sockets
// still receive the ESP: byte-checked TCP both ways, B's packets through AF_XDP on mv0.
func TestRawESPXDPGeneric(t *testing.T) {
	a, b := newPairWith(t, Config{RawESPXDP: true, Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	for _, args := range [][]string{
		{"link", "add", "mv0", "link", "veth0", "type", "macvlan", "mode", "bridge"},
		{"addr", "del", "192.0.2.2/24", "dev", "veth0"},
		{"addr", "add", "192.0.2.2/24", "dev", "mv0"},
		{"link", "set", "mv0", "up"},
	} {
		if out, err := b.ns.IP(args...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	// Else veth0 answers A's ARP for mv0's address too (Linux answers for any local address on
	// any interface), and the ESP arrives on veth0, never reaching mv0.
	if err := b.ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/veth0/arp_ignore", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	sc := scenario{name: "xdp-generic", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36}
	inst := install(t, sc, a, b)
	if m := b.eng.xdp.attached(); m["mv0"] != "generic" || len(m) != 1 {
		t.Fatalf("B attached %v, want mv0 in generic mode", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7782), 1<<20); err != nil {
		t.Fatalf("TCP echo: %v; engine A %+v, engine B %+v", err, a.eng.Stats(), b.eng.Stats())
	}
	st, ok := b.eng.XDPStats()
	if !ok || st.Received < 300 || st.Interfaces["mv0"] != "generic" {
		t.Fatalf("B: %+v", st)
	}
	for r, d := range st.Drops {
		if d != 0 {
			t.Errorf("B: %d frames dropped (%s)", d, r)
		}
	}
	t.Logf("B: %+v", st)
	if err := b.eng.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := b.ns.IP("link", "show", "mv0"); err != nil || strings.Contains(out, "xdp") {
		t.Fatalf("XDP program left on mv0 after Close: %q %v", out, err)
	}
}

// udpExchange sends a datagram from a's outer address to b's port 500 and back, as IKE does.
func udpExchange(t *testing.T, a, b *side, outerA, outerB netip.Addr) {
	t.Helper()
	var srv *net.UDPConn
	if err := b.ns.Do(func() error {
		var err error
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(outerB, 500)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cl *net.UDPConn
	if err := a.ns.Do(func() error {
		var err error
		cl, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(outerA, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(outerB, 500)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(3 * time.Second)
	srv.SetDeadline(deadline)
	cl.SetDeadline(deadline)
	msg := []byte("IKE_SA_INIT stand-in")
	if _, err := cl.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("UDP to port 500 with the program attached: %q %v", buf[:n], err)
	}
	if _, err := srv.WriteToUDPAddrPort(msg, from); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.Read(buf); err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("UDP reply with the program attached: %q %v", buf[:n], err)
	}
}

// testLogWriter sends engine logs to the test's log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
