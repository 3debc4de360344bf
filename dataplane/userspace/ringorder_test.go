package userspace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
)

// espPacket is one ESP packet seen on the wire: SPI, sequence number, and whether it was in UDP.
type espPacket struct {
	spi, seq uint32
	udp      bool
}

func (p espPacket) String() string {
	how := "raw"
	if p.udp {
		how = "udp"
	}
	return fmt.Sprintf("%x/%d/%s", p.spi, p.seq, how)
}

// espPackets reads a pcap of Ethernet frames and returns, in capture order, every ESP packet over
// IPv4, raw (IP protocol 50) or in UDP (with UDP GSO a frame holds several ESP packets: its first
// one is taken).
func espPackets(t *testing.T, path string) []espPacket {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(data[20:]) != 1 {
		t.Fatalf("%s is not a little-endian Ethernet pcap", path)
	}
	var out []espPacket
	for p := data[24:]; len(p) >= 16; {
		n := int(binary.LittleEndian.Uint32(p[8:]))
		if 16+n > len(p) {
			break // the last record may be cut off
		}
		frame := p[16 : 16+n]
		p = p[16+n:]
		// Ethernet (14), IPv4 without options (20), UDP (8) or not, SPI, sequence number.
		if len(frame) < 14+20+8+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		var esp []byte
		udp := false
		switch frame[14+9] {
		case 17:
			esp, udp = frame[14+int(frame[14]&0x0f)*4+8:], true
		case 50:
			esp = frame[14+int(frame[14]&0x0f)*4:]
		default:
			continue
		}
		out = append(out, espPacket{spi: binary.BigEndian.Uint32(esp), seq: binary.BigEndian.Uint32(esp[4:]), udp: udp})
	}
	return out
}

// TestSendBlocksOrderAcrossPaths: within one flush an SA moves from ESP in UDP to raw ESP (its
// UDP packets are still queued as GSO messages when its raw block is written into the TX ring),
// and in the next flush back to UDP (its raw frames still wait for the kicker). Its sequence
// numbers must leave in order both times; another SA's UDP packets must not wait for the
// first SA's frames in the ring. The test slows down the kicker's sendto and the UDP flush, so
// that any reordering the code allows shows on the wire: sending the UDP messages only at the
// end of the flush puts X 6 before X 1; not waiting for the ring puts X 11 before X 6; waiting
// for the whole ring before every UDP block (rather than for the SA's own frames) puts Y after
// X 6.
func TestSendBlocksOrderAcrossPaths(t *testing.T) {
	a, b := newPairWith(t, Config{})
	if ping, err := a.ns.Ping(a.outer, b.outer, 1, 10*time.Millisecond, 2*time.Second); err != nil || ping.Received != 1 {
		t.Fatalf("ping: %v %v", ping, err)
	}
	p := newTXPipeline(a.eng, nil, a.eng.udp4[0], nil)
	if err := a.ns.Do(func() error {
		var err error
		p.ptx, err = newPacketTX(a.eng.cfg.FwMark, time.Now, &a.eng.stats.ring, func(src, dst netip.Addr, pkts [][]byte) error {
			return a.eng.raw.send(dataplane.ESP, src, dst, pkts)
		}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.ptx.close)
	var kicks atomic.Int32
	p.ptx.beforeSendto = func() {
		if kicks.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // far longer than the UDP flush's 20 ms
		}
	}
	p.beforeUDPFlush = func() { time.Sleep(20 * time.Millisecond) }

	// Two outbound SAs; only their identity and protocol matter here (the packets are not
	// sealed: B drops them, the capture on A's side of the veth sees the order they left in).
	x := &saState{params: saConf{Name: "x", SPI: 0x1001, Protocol: dataplane.ESP, Direction: dataplane.Out}}
	y := &saState{params: saConf{Name: "y", SPI: 0x3001, Protocol: dataplane.ESP, Direction: dataplane.Out}}
	inUDP := &saAddr{src: a.outer, dst: b.outer, encap: true, srcPort: 4500, dstPort: 4500}
	raw := &saAddr{src: a.outer, dst: b.outer}
	block := func(sa *saState, addr *saAddr, first uint64, n int) {
		bl := txBlock{sa: sa, addr: addr, start: p.off, seg: 200, count: n, first: first, taken: n}
		for i := range n {
			pkt := p.arena[p.off : p.off+200]
			clear(pkt)
			binary.BigEndian.PutUint32(pkt, sa.params.SPI)
			binary.BigEndian.PutUint32(pkt[4:], uint32(first)+uint32(i))
			p.off += 200
		}
		bl.end = p.off
		p.blocks = append(p.blocks, bl)
	}
	send := func() {
		p.sendBlocks(0, len(p.blocks))
		p.blocks, p.off = p.blocks[:0], 0
	}

	stop := startCapture(t, a.ns, "veth0", "esp or udp port 4500")
	block(x, inUDP, 1, 5) // X in UDP, queued
	block(x, raw, 6, 5)   // X moved to raw ESP: into the ring (the kicker's first sendto is slow)
	block(y, inUDP, 1, 5) // Y in UDP: leaves at the end of the flush, X's frames still waiting
	send()
	block(x, inUDP, 11, 5) // X moved back to UDP: after its frames in the ring
	send()
	time.Sleep(100 * time.Millisecond)
	got := espPackets(t, stop())

	pos := map[string]int{}
	for i, pk := range got {
		if _, ok := pos[pk.String()]; !ok {
			pos[pk.String()] = i
		}
	}
	for _, k := range []string{"1001/1/udp", "1001/6/raw", "1001/11/udp", "3001/1/udp"} {
		if _, ok := pos[k]; !ok {
			t.Fatalf("packet %s not captured; capture order %v", k, got)
		}
	}
	var last uint32
	for _, pk := range got {
		if pk.spi != 0x1001 {
			continue
		}
		if pk.seq <= last {
			t.Fatalf("SA X: sequence number %v left after %d; capture order %v", pk, last, got)
		}
		last = pk.seq
	}
	if pos["3001/1/udp"] > pos["1001/6/raw"] {
		t.Fatalf("SA Y's UDP packets waited for SA X's frames in the ring; capture order %v", got)
	}
}
