package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// The outbound path. Each TUN queue has one pipeline, a single goroutine that reads, encrypts and
// sends without handing packets to anyone:
//
//  1. read: one read returns one packet or, with TSO, a TCP super-packet of up to 64 KiB that the
//     kernel did not segment; while more is waiting and there is room, it reads on (no waiting).
//  2. classify: one SPD lookup per read (all segments of a super-packet share their flow), one
//     block of consecutive sequence numbers per read.
//  3. segment and seal: each segment's headers (IP length and ID, TCP sequence number and flags,
//     the TCP/UDP checksum) and payload are written straight into its place in a send arena, where
//     ESP seals it in place; the IPsec packets of an SA lie back to back.
//  4. send: runs of equal-sized packets to one peer leave in one sendmmsg message with UDP GSO
//     (UDP_SEGMENT); raw ESP is written into the pipeline's AF_PACKET TX ring, whose kicker
//     goroutine has the kernel send it (pkttx.go), and what the ring cannot take and AH leave
//     through the raw socket in one sendmmsg call with a message per packet.
//
// Sequence numbers of an SA leave in order although several pipelines may send on one SA (their
// flows hashed to different queues): a pipeline sends a block only when the SA's turn has come
// to the block's first number (saState.txTurn), and sends everything it holds before it waits.
// A pipeline sends its blocks in the order it took their numbers, so the block taken earliest
// among all unsent ones can always go: no pipeline waits for one that waits for it. A block
// written into a TX ring counts as sent once the kicker has handed it to the device, which is
// when the kicker passes the SA's turn on (packetTX.deferTurn); the kicker never waits for a
// turn, so this adds no cycle. Within a pipeline, an SA that moves between raw ESP and UDP or TCP
// keeps its order too: its packets queued one way leave before its next packets go another
// (sendBlocks: packetTX.waitSA, flushUDPOf).

const (
	// tunReadSize holds the largest packet the TUN device hands out: a 64 KiB GSO super-packet and
	// its virtio-net header.
	tunReadSize = vnetHdrLen + 65535 + 1024
	// txArenaSize holds the IPsec packets of several super-packets between sends.
	txArenaSize = 512 << 10
	// slotExtra is the room an IPsec packet needs beyond its inner packet: ESP header and IV,
	// padding, trailer and ICV (at most 8+16+15+2+32), or AH's outer IPv6 header and AH header.
	slotExtra = 128
	// UDP GSO limits: at most 64 segments (UDP_MAX_SEGMENTS) and 64 KiB per message with headers.
	maxUDPSegs  = 64
	maxGSOBytes = 65535 - 8 - ipv6HeaderLen
)

// txBlock is what one read became: IPsec packets of one SA back to back in the arena, all of
// seg bytes but the last, sealed with the sequence numbers first..first+taken-1.
type txBlock struct {
	sa         *saState // nil: bypassed packets (clear) or nothing to send
	addr       *saAddr
	start, end int // the packets in the arena
	seg        int // size of every packet but the last
	count      int // packets
	first      uint64
	taken      int    // sequence numbers taken (packets dropped after sealing leave gaps)
	bytes      uint64 // plaintext bytes, for the SA's counters
	clear      bool   // bypass: complete IP packets of seg bytes (the last may be shorter) in the clear
}

// txPipeline is the outbound goroutine of one TUN queue.
type txPipeline struct {
	e       *Engine
	tun     *tunQueue
	udp     [2]*batchSock // IPv4, IPv6 (nil when absent)
	send    [2]*batchSender
	rbuf    []byte
	arena   []byte
	off     int
	blocks  []txBlock
	memo    flowMemo
	pkts    [][]byte // raw send scratch
	scratch []byte   // AH and ICMP building
	vhdr    [vnetHdrLen]byte
	iov     []unix.Iovec
	// sent counts the IPsec packets this pipeline sent.
	sent atomic.Uint64
	// ptx is the AF_PACKET TX ring for raw ESP (nil: the raw socket alone).
	ptx *packetTX
	// udpSAs are the SAs with packets in the UDP messages queued in send (a block's SA is added
	// unless it is the last one already).
	udpSAs []*saState
	// beforeUDPFlush, for tests, runs before the queued UDP messages are sent.
	beforeUDPFlush func()
}

func newTXPipeline(e *Engine, q *tunQueue, udp4, udp6 *batchSock) *txPipeline {
	return &txPipeline{e: e, tun: q, udp: [2]*batchSock{udp4, udp6}, send: [2]*batchSender{newBatchSender(), newBatchSender()},
		rbuf: make([]byte, tunReadSize), arena: make([]byte, txArenaSize), scratch: make([]byte, 65536+256)}
}

// run reads the TUN queue until the engine closes.
func (p *txPipeline) run() {
	defer p.e.wg.Done()
	for {
		n, err := p.tun.read(p.rbuf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || p.e.isClosing() {
				p.flush()
				if p.ptx != nil {
					p.ptx.close()
				}
				return
			}
			p.e.log.Debug("TUN read", "err", err)
			continue
		}
		// A policy remembered from an earlier batch may have been deleted since.
		p.memo = flowMemo{}
		p.handle(n)
		// Take what else is waiting while it fits, then send it all.
		for p.off+maxSuperSize <= len(p.arena) && len(p.blocks) < 64 {
			n, ok, err := p.tun.tryRead(p.rbuf)
			if err != nil || !ok {
				break
			}
			p.handle(n)
		}
		p.flush()
	}
}

// maxSuperSize is the arena room one read may need: 64 segments of an MTU-sized packet each.
const maxSuperSize = 64 * (1500 + slotExtra)

// superPkt describes a packet read from the TUN device: one packet, or a GSO super-packet to be
// cut into segments (RFC 9293 TCP, RFC 768 UDP), as the kernel's GSO would.
type superPkt struct {
	pkt     []byte
	is6     bool
	proto   uint8
	iphLen  int // IP header bytes (with IPv6 extension headers): where the L4 header starts
	hdrLen  int // IP and L4 header bytes: where the first segment's payload starts
	gsoSize int // payload bytes per segment; 0: a single packet
	nseg    int
}

// parse validates the virtio-net header and the packet it describes. For a single packet whose
// checksum the kernel left to us (NEEDS_CSUM, CHECKSUM_PARTIAL) it completes the checksum.
func (s *superPkt) parse(h *vnetHdr, pkt []byte) bool {
	*s = superPkt{pkt: pkt, nseg: 1}
	if len(pkt) < 1 {
		return false
	}
	s.is6 = pkt[0]>>4 == 6
	if h.gsoType == vnetGSONone {
		if h.flags&vnetFlagNeedsCsum != 0 {
			at := int(h.csumStart) + int(h.csumOffset)
			if int(h.csumStart) >= len(pkt) || at+2 > len(pkt) {
				return false
			}
			// The field holds the pseudo-header sum; the sum over the rest completes it.
			initial := binary.BigEndian.Uint16(pkt[at:])
			pkt[at], pkt[at+1] = 0, 0
			c := ^csumFold(csumAddWord(csumAdd(0, pkt[h.csumStart:]), initial))
			if c == 0 && pkt[at-6+2] == 0 && int(h.csumOffset) == 6 {
				c = 0xffff // UDP sends a computed zero as all ones (RFC 768)
			}
			binary.BigEndian.PutUint16(pkt[at:], c)
		}
		return true
	}
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSOTCPv4:
		s.proto = 6
		if s.is6 {
			return false
		}
	case vnetGSOTCPv6:
		s.proto = 6
		if !s.is6 {
			return false
		}
	case vnetGSOUDPL4:
		s.proto = 17
	default:
		return false
	}
	// As wireguard-go does, do not trust hdrLen (on the forwarding path it can cover the whole
	// first packet): the L4 header starts at csumStart and has its own length.
	s.iphLen = int(h.csumStart)
	minIP := ipv4HeaderLen
	if s.is6 {
		minIP = ipv6HeaderLen
	}
	if s.iphLen < minIP || s.iphLen+20 > len(pkt) {
		return false
	}
	if s.proto == 6 {
		th := int(pkt[s.iphLen+12]>>4) * 4
		if th < 20 || th > 60 || int(h.csumOffset) != 16 {
			return false
		}
		s.hdrLen = s.iphLen + th
	} else {
		if int(h.csumOffset) != 6 {
			return false
		}
		s.hdrLen = s.iphLen + 8
	}
	s.gsoSize = int(h.gsoSize)
	if s.gsoSize == 0 || s.hdrLen > len(pkt) {
		return false
	}
	payload := len(pkt) - s.hdrLen
	s.nseg = max(1, (payload+s.gsoSize-1)/s.gsoSize)
	return s.nseg <= 256
}

// segLen returns the length of segment i: the whole packet, or headers and payload chunk.
func (s *superPkt) segLen(i int) int {
	if s.gsoSize == 0 {
		return len(s.pkt)
	}
	start := s.hdrLen + i*s.gsoSize
	return s.hdrLen + min(s.gsoSize, len(s.pkt)-start)
}

// build writes segment i into dst: the whole packet with its IP header (ip) or from its L4
// header on (transport mode). It returns the bytes written.
func (s *superPkt) build(dst []byte, i int, ip bool) int {
	skip := 0
	if !ip {
		skip = s.iphLen
	}
	if s.gsoSize == 0 {
		if !ip {
			// A single packet in transport mode: what follows the IP header (and its extension
			// headers, which parseFlow found).
			f, _ := parseFlow(s.pkt)
			return copy(dst, s.pkt[f.hdrLen:])
		}
		return copy(dst, s.pkt)
	}
	start := s.hdrLen + i*s.gsoSize
	chunk := s.pkt[start:min(start+s.gsoSize, len(s.pkt))]
	total := s.hdrLen + len(chunk)
	n := copy(dst, s.pkt[skip:s.hdrLen])
	// The payload's checksum is summed while it is copied; the headers' after they are rewritten.
	chunkSum := copyCsum(dst[n:], chunk, 0)
	n += len(chunk)
	l4 := dst[s.iphLen-skip : n]
	if ip {
		h := dst[:s.iphLen]
		if !s.is6 {
			binary.BigEndian.PutUint16(h[ipv4TotalLen:], uint16(total))
			if i > 0 {
				// The kernel's GSO numbers the segments' IDs up from the first (tcp_gso_segment).
				binary.BigEndian.PutUint16(h[4:], binary.BigEndian.Uint16(h[4:])+uint16(i))
			}
			h[ipv4Checksum], h[ipv4Checksum+1] = 0, 0
			binary.BigEndian.PutUint16(h[ipv4Checksum:], ipChecksum(h[:ipv4HeaderLen]))
		} else {
			binary.BigEndian.PutUint16(h[ipv6PayloadLen:], uint16(total-ipv6HeaderLen))
		}
	}
	var csumAt int
	if s.proto == 6 {
		binary.BigEndian.PutUint32(l4[4:], binary.BigEndian.Uint32(s.pkt[s.iphLen+4:])+uint32(i*s.gsoSize))
		if i < s.nseg-1 {
			l4[13] &^= 0x01 | 0x08 // FIN and PSH only on the last segment
		}
		if i > 0 {
			l4[13] &^= 0x80 // CWR only on the first
		}
		csumAt = 16
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		csumAt = 6
	}
	l4[csumAt], l4[csumAt+1] = 0, 0
	var acc uint64
	if s.is6 {
		acc = pseudoSum(s.pkt[ipv6Src:ipv6Src+16], s.pkt[ipv6Dst:ipv6Dst+16], s.proto, len(l4))
	} else {
		acc = pseudoSum(s.pkt[ipv4Src:ipv4Src+4], s.pkt[ipv4Dst:ipv4Dst+4], s.proto, len(l4))
	}
	c := ^csumFold(csumAddSum(csumAdd(acc, l4[:len(l4)-len(chunk)]), chunkSum))
	if c == 0 && s.proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[csumAt:], c)
	return n
}

// handle processes one read of n bytes in p.rbuf.
func (p *txPipeline) handle(n int) {
	e := p.e
	if n <= vnetHdrLen {
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return
	}
	var h vnetHdr
	h.decode(p.rbuf)
	var s superPkt
	if !s.parse(&h, p.rbuf[vnetHdrLen:n]) {
		e.stats.tunPackets.Add(1)
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return
	}
	e.stats.tunPackets.Add(uint64(s.nseg))
	f, ok := parseFlow(s.pkt)
	if !ok {
		e.stats.drops[dataplane.DropMalformed].Add(uint64(s.nseg))
		return
	}
	if s.gsoSize == 0 {
		s.pkt = s.pkt[:f.totalLen]
	}
	pol := p.memo.lookup(e.spd, &f)
	if pol == nil {
		e.stats.drops[dataplane.DropNoPolicy].Add(uint64(s.nseg))
		return
	}
	switch pol.params.Action {
	case dataplane.Discard:
		e.stats.drops[dataplane.DropDiscard].Add(uint64(s.nseg))
		return
	case dataplane.Bypass:
		p.bypass(&s)
		return
	case dataplane.Deliver:
		p.deliver(pol, &s)
		return
	}
	sa := pol.sa.Load()
	if sa == nil || !sa.hold() {
		e.acquire(pol, &f)
		e.stats.drops[dataplane.DropNoSA].Add(uint64(s.nseg))
		return
	}
	if sa.has(saDead) {
		sa.dropN(dataplane.DropLifetime, s.nseg)
		sa.release()
		return
	}
	a := sa.addr.Load()
	if sa.params.ClampMSS != 0 && f.proto == 6 && s.gsoSize == 0 {
		e.clampMSS(sa, a, s.pkt[f.hdrLen:f.totalLen], s.is6)
	}
	if p.tooBig(sa, a, &s, &f) {
		sa.release()
		return
	}
	if len(p.arena)-p.off < s.nseg*(s.segLen(0)+slotExtra+int(sa.params.TFCPadding)) {
		p.flush()
	}
	var first uint64
	var err error
	if sa.esp != nil {
		first, err = sa.esp.NextSeqs(s.nseg)
	} else {
		first, err = sa.ah.NextSeqs(s.nseg)
	}
	if err != nil {
		sa.setFlag(saDead)
		sa.dropN(dataplane.DropSeqExhausted, s.nseg)
		e.expire(sa, true, "sequence number space used up: rekey needed")
		sa.release()
		return
	}
	b := txBlock{sa: sa, addr: a, start: p.off, first: first, taken: s.nseg}
	for i := range s.nseg {
		size, err := p.seal(sa, a, &s, &f, i, first+uint64(i))
		if err != nil {
			r := dataplane.DropMalformed
			if errors.Is(err, esp.ErrSeqExhausted) || errors.Is(err, ah.ErrSeqExhausted) {
				r = dataplane.DropSeqExhausted
			}
			sa.drop(r)
			if e.espDebug() {
				e.cfg.ESPLogger.Debug("seal failed", "name", sa.params.Name, "spi", fmt.Sprintf("0x%08x", sa.params.SPI), "err", err)
			}
			continue
		}
		if b.count == 0 {
			b.seg = size
		}
		b.count++
		b.bytes += uint64(s.segLen(i))
		p.off += size
	}
	b.end = p.off
	p.blocks = append(p.blocks, b)
}

// seal writes segment i as an IPsec packet at p.off and returns its size.
func (p *txPipeline) seal(sa *saState, a *saAddr, s *superPkt, f *flow, i int, seq uint64) (int, error) {
	c := &sa.params
	slot := p.arena[p.off:]
	if sa.esp != nil {
		hl := sa.esp.HeaderLen()
		var nextHeader byte
		var n int
		if c.Mode == dataplane.Tunnel {
			nextHeader = 4
			if s.is6 {
				nextHeader = 41
			}
			n = s.build(slot[hl:], i, true)
		} else {
			nextHeader = f.proto
			n = s.build(slot[hl:], i, false)
		}
		tfc := 0
		if c.Mode == dataplane.Tunnel && int(c.TFCPadding) > n {
			tfc = int(c.TFCPadding) - n
		}
		out, err := sa.esp.Seal(slot[:0], seq, nextHeader, slot[hl:hl+n], tfc)
		return len(out), err
	}
	// AH protects a whole IP packet: build the segment aside, then the AH packet in the slot.
	inner := p.scratch[:s.build(p.scratch, i, true)]
	var nextHeader byte
	var payload []byte
	if c.Mode == dataplane.Tunnel {
		nextHeader, payload = 4, inner
		if s.is6 {
			nextHeader = 41
		}
	} else {
		g, ok := parseFlow(inner)
		if !ok {
			return 0, errors.New("segment does not parse")
		}
		nextHeader, payload = g.proto, inner[g.hdrLen:]
	}
	if a.src.Is4() {
		hdr := ah.IPv4Header{Src: a.src, Dst: a.dst, TTL: 64, ID: uint16(seq)}
		if c.Mode == dataplane.Transport {
			hdr.Src, hdr.Dst = f.src, f.dst
			hdr.TTL, hdr.TOS = inner[8], inner[1]
			hdr.ID = binary.BigEndian.Uint16(inner[4:])
		}
		if hdr.ID == 0 {
			hdr.ID = 1 // the kernel replaces a zero ID, which would break the ICV
		}
		out, err := sa.ah.SealIPv4(slot[:0], hdr, seq, nextHeader, payload)
		return len(out), err
	}
	hdr := ah.IPv6Header{Src: a.src, Dst: a.dst, HopLimit: 64}
	if c.Mode == dataplane.Transport {
		hdr.Src, hdr.Dst, hdr.HopLimit = f.src, f.dst, inner[7]
	}
	out, err := sa.ah.SealIPv6(slot[:0], hdr, seq, nextHeader, payload)
	if err != nil {
		return 0, err
	}
	// The raw IPv6 socket writes its own header (with the same immutable fields).
	copy(slot, out[ipv6HeaderLen:])
	return len(out) - ipv6HeaderLen, nil
}

// bypass queues the segments of s to go out in the clear, through a raw socket whose fwmark keeps
// them off the TUN device.
func (p *txPipeline) bypass(s *superPkt) {
	e := p.e
	if e.raw == nil {
		e.stats.drops[dataplane.DropNoPolicy].Add(uint64(s.nseg))
		return
	}
	if len(p.arena)-p.off < s.nseg*(s.segLen(0)+slotExtra) {
		p.flush()
	}
	b := txBlock{clear: true, start: p.off}
	for i := range s.nseg {
		n := s.build(p.arena[p.off:], i, true)
		if b.count == 0 {
			b.seg = n
		}
		b.count++
		p.off += n
	}
	b.end = p.off
	p.blocks = append(p.blocks, b)
}

// deliver hands a packet of a Deliver policy (an L2TP/PPP client's address) to its handler, one
// segment at a time: the handler gets whole IP packets, never a GSO super-packet.
func (p *txPipeline) deliver(pol *policy, s *superPkt) {
	fn := pol.params.Deliver
	if fn == nil {
		return
	}
	if s.gsoSize == 0 {
		fn(s.pkt)
		return
	}
	buf := make([]byte, s.segLen(0)+slotExtra)
	for i := range s.nseg {
		n := s.build(buf, i, true)
		fn(buf[:n])
	}
}

// flush sends the queued blocks and resets the arena.
func (p *txPipeline) flush() {
	if len(p.blocks) == 0 {
		p.off = 0
		return
	}
	multi := p.e.queues > 1
	start := 0
	for i := range p.blocks {
		b := &p.blocks[i]
		if multi && b.sa != nil && !p.turnReady(start, i) {
			p.sendBlocks(start, i)
			start = i
			p.e.waitTurn(b.sa, b.first)
		}
	}
	p.sendBlocks(start, len(p.blocks))
	for i := range p.blocks {
		b := &p.blocks[i]
		if b.sa != nil {
			if b.count > 0 {
				p.e.account(b.sa, uint64(b.count), b.bytes)
				p.sent.Add(uint64(b.count))
			}
			b.sa.release()
		}
		*b = txBlock{}
	}
	p.blocks = p.blocks[:0]
	p.off = 0
}

// turnReady reports whether block i may be sent now: its SA's turn is at its first sequence
// number, or the block right before it in the SA's order is among those about to be sent or in
// this pipeline's TX ring waiting for the kicker.
func (p *txPipeline) turnReady(start, i int) bool {
	b := &p.blocks[i]
	if b.sa.txTurn.Load() == b.first {
		return true
	}
	if p.ptx != nil && p.ptx.turnQueued(b.sa, b.first) {
		return true // the block before it waits in this pipeline's ring, which keeps the order
	}
	for j := i - 1; j >= start; j-- {
		if o := &p.blocks[j]; o.sa == b.sa {
			return o.first+uint64(o.taken) == b.first
		}
	}
	return false
}

// sendBlocks sends blocks[from:to] and then gives each SA's turn to the next block.
func (p *txPipeline) sendBlocks(from, to int) {
	if from >= to {
		return
	}
	e := p.e
	for i := from; i < to; i++ {
		b := &p.blocks[i]
		if b.sa != nil && b.count > 0 {
			// Packets of an SA leave in the order of their numbers, also when the SA moves
			// between raw ESP and UDP (or TCP) — UpdateSAAddresses, between two reads of a batch:
			// what of the SA waits in the TX ring goes before it leaves another way, and what of
			// it waits in the UDP messages queued below goes before it leaves another way.
			// Other SAs' packets need not wait for either.
			if !b.addr.encap {
				p.flushUDPOf(b.sa)
			}
			if p.ptx != nil && (b.addr.encap || b.addr.tcp) {
				if err := p.ptx.waitSA(b.sa); err != nil {
					e.log.Debug("send through the AF_PACKET ring failed", "err", err)
				}
			}
		}
		switch {
		case b.count == 0:
		case b.clear:
			for off := b.start; off < b.end; {
				n := min(b.seg, b.end-off)
				// Counted before it leaves: whoever sees the packet arrive sees it counted
				// (TestBypassAndDiscard read the counter right after the packet and, now and
				// then, before this pipeline had counted it).
				e.stats.bypassed.Add(1)
				if err := e.raw.sendClear(p.arena[off : off+n]); err != nil {
					e.log.Debug("bypass send failed", "err", err)
				}
				off += n
			}
		case b.addr.encap:
			p.queueUDP(b)
		case b.addr.tcp:
			p.pkts = p.pkts[:0]
			for off := b.start; off < b.end; {
				n := min(b.seg, b.end-off)
				p.pkts = append(p.pkts, p.arena[off:off+n])
				off += n
			}
			if err := e.sendTCP(b.sa, b.addr, p.pkts); err != nil {
				e.log.Debug("send in TCP failed", "name", b.sa.params.Name, "err", err)
			}
			clear(p.pkts)
		default:
			p.pkts = p.pkts[:0]
			for off := b.start; off < b.end; {
				n := min(b.seg, b.end-off)
				p.pkts = append(p.pkts, p.arena[off:off+n])
				off += n
			}
			pkts := p.pkts
			if p.ptx != nil && b.sa.params.Protocol == dataplane.ESP {
				var err error
				if pkts, err = p.ptx.send(b.sa, b.addr.src, b.addr.dst, pkts); err != nil {
					e.log.Debug("send through the AF_PACKET ring failed", "name", b.sa.params.Name, "err", err)
				}
				e.stats.ring.rawSocket.Add(uint64(len(pkts)))
			}
			if len(pkts) > 0 {
				if err := e.raw.send(b.sa.params.Protocol, b.addr.src, b.addr.dst, pkts); err != nil {
					e.log.Debug("send failed", "name", b.sa.params.Name, "err", err)
				}
			}
			clear(p.pkts)
		}
	}
	p.flushUDP()
	if e.queues > 1 {
		for i := from; i < to; i++ {
			if b := &p.blocks[i]; b.sa != nil {
				// While frames wait in the TX ring, the kicker gives the turn after sending them.
				if p.ptx == nil || !p.ptx.deferTurn(b.sa, b.first+uint64(b.taken)) {
					e.passTurn(b.sa, b.first+uint64(b.taken))
				}
			}
		}
	}
}

// flushUDP sends the queued UDP messages.
func (p *txPipeline) flushUDP() {
	if p.beforeUDPFlush != nil {
		p.beforeUDPFlush()
	}
	for fam, s := range p.send {
		if s.pending() == 0 {
			continue
		}
		if err := s.flush(p.udp[fam]); err != nil {
			p.e.log.Debug("UDP send failed", "err", err)
		}
	}
	clear(p.udpSAs)
	p.udpSAs = p.udpSAs[:0]
}

// flushUDPOf sends the queued UDP messages if packets of sa are among them.
func (p *txPipeline) flushUDPOf(sa *saState) {
	for _, s := range p.udpSAs {
		if s == sa {
			p.flushUDP()
			return
		}
	}
}

// queueUDP queues a block's packets as GSO messages: at most maxUDPSegs packets and maxGSOBytes
// each, all of b.seg bytes but the last. It extends the previous message when the block continues
// it in the arena.
func (p *txPipeline) queueUDP(b *txBlock) {
	fam := 0
	if b.addr.dst.Is6() {
		fam = 1
	}
	s := p.send[fam]
	if n := len(p.udpSAs); n == 0 || p.udpSAs[n-1] != b.sa {
		p.udpSAs = append(p.udpSAs, b.sa)
	}
	to := netip.AddrPortFrom(b.addr.dst, b.addr.dstPort)
	perMsg := min(maxUDPSegs, max(1, maxGSOBytes/b.seg))
	for off := b.start; off < b.end; {
		n := min(b.end-off, perMsg*b.seg)
		if k := len(s.bufs) - 1; k >= 0 {
			last := &s.bufs[k]
			// The previous message ends where this one starts, to the same peer, with packets of
			// the same size, none of them short: one message.
			if last.to == to && last.segSize == b.seg && len(last.b)%b.seg == 0 &&
				cap(last.b) > len(last.b) && &last.b[:len(last.b)+1][len(last.b)] == &p.arena[off] {
				room := min(maxUDPSegs*b.seg, (maxGSOBytes/b.seg)*b.seg) - len(last.b)
				if room > 0 {
					take := min(room, n)
					last.b = last.b[:len(last.b)+take]
					off += take
					continue
				}
			}
		}
		src := netip.Addr{}
		if b.addr.src.IsValid() && !b.addr.src.IsUnspecified() {
			src = b.addr.src
		}
		s.add(p.arena[off:off+n], b.seg, to, src)
		off += n
	}
}

// tooBig refuses a packet (all segments of a super-packet) whose IPsec packets would exceed the
// path MTU when it may not be fragmented (IPv4 with DF, every IPv6 packet): the segments are
// dropped and counted, and the sender learns the usable size from an ICMP "fragmentation needed"
// / "packet too big" written back into the TUN device (RFC 4301 §8.1), so that TCP lowers its
// segment size.
func (p *txPipeline) tooBig(sa *saState, a *saAddr, s *superPkt, f *flow) bool {
	if a.outerMTU == 0 {
		return false
	}
	inner := s.segLen(0)
	payload := inner
	if sa.params.Mode == dataplane.Transport {
		payload -= f.hdrLen
	}
	outer := ipv4HeaderLen
	if a.dst.Is6() {
		outer = ipv6HeaderLen
	}
	if a.encap {
		outer += 8
	}
	if sa.esp != nil {
		outer += sa.esp.Overhead(payload)
	} else {
		outer += sa.ah.Overhead(a.dst.Is6())
	}
	if outer+payload <= a.outerMTU {
		return false
	}
	if !s.is6 && s.pkt[6]&0x40 == 0 {
		return false // the outer packet is fragmented instead
	}
	// What fits: the path MTU less this packet's overhead, less the worst padding (16 bytes).
	mtu := a.outerMTU - (outer + payload - inner) - 16
	if s.is6 {
		mtu = max(mtu, 1280)
	} else {
		mtu = max(mtu, 576)
	}
	sa.dropN(dataplane.DropTooBig, s.nseg)
	first := p.scratch[:s.build(p.scratch, 0, true)]
	if msg := icmpTooBig(p.scratch[len(first):len(first)], first, mtu); msg != nil {
		clear(p.vhdr[:])
		if err := p.tun.writev([][]byte{p.vhdr[:], msg}, &p.iov); err != nil {
			p.e.log.Debug("ICMP too big", "err", err)
		}
	}
	return true
}

// icmpTooBig appends to dst an ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big"
// about pkt, sent as if from pkt's destination (a local address would be dropped as martian), and
// returns it (nil when pkt is too short to quote).
func icmpTooBig(dst, pkt []byte, mtu int) []byte {
	f, ok := parseFlow(pkt)
	if !ok {
		return nil
	}
	if f.src.Is4() {
		quote := pkt[:min(len(pkt), f.hdrLen+8)]
		n := ipv4HeaderLen + 8 + len(quote)
		out := append(dst, make([]byte, n)...)
		writeIPHeader(out[:ipv4HeaderLen], f.dst, f.src, 1, 8+len(quote))
		icmp := out[ipv4HeaderLen:]
		icmp[0], icmp[1] = 3, 4 // destination unreachable, fragmentation needed and DF set
		binary.BigEndian.PutUint16(icmp[6:], uint16(mtu))
		copy(icmp[8:], quote)
		binary.BigEndian.PutUint16(icmp[2:], ipChecksum(icmp))
		return out
	}
	// ICMPv6: the quote fills the message up to the minimum MTU (RFC 4443 §3.2).
	quote := pkt[:min(len(pkt), 1280-ipv6HeaderLen-8)]
	n := ipv6HeaderLen + 8 + len(quote)
	out := append(dst, make([]byte, n)...)
	writeIPHeader(out[:ipv6HeaderLen], f.dst, f.src, 58, 8+len(quote))
	icmp := out[ipv6HeaderLen:]
	icmp[0] = 2 // packet too big
	binary.BigEndian.PutUint32(icmp[4:], uint32(mtu))
	copy(icmp[8:], quote)
	fixTransportChecksum(out, ipv6HeaderLen, 58, f.dst, f.src)
	return out
}

// acquire asks the control plane for an SA, at most once a second per policy.
func (e *Engine) acquire(pol *policy, f *flow) {
	now := e.cfg.Now().UnixNano()
	last := pol.acquired.Load()
	if now-last < int64(time.Second) || !pol.acquired.CompareAndSwap(last, now) {
		return
	}
	if fn := e.cfg.Events.Acquire; fn != nil {
		fn(dataplane.Acquire{Policy: pol.rank.ID, Name: pol.params.Name, Src: f.src, Dst: f.dst, Protocol: f.proto})
	}
}

// waitTurn blocks until sa's next sequence number to send is first (another pipeline sends the
// block before it), or the engine closes. It spins briefly: the block ahead is usually being
// sent right now.
func (e *Engine) waitTurn(sa *saState, first uint64) {
	for range 64 {
		if sa.txTurn.Load() == first {
			return
		}
		runtime.Gosched()
	}
	e.turnMu.Lock()
	e.turnWaiters++
	for sa.txTurn.Load() != first && !e.isClosing() {
		e.turnCond.Wait()
	}
	e.turnWaiters--
	e.turnMu.Unlock()
}

// passTurn gives sa's turn to sequence number next and wakes pipelines waiting for a turn.
func (e *Engine) passTurn(sa *saState, next uint64) {
	sa.txTurn.Store(next)
	e.wakeTurnWaiters()
}

// wakeTurnWaiters wakes the pipelines waiting for an SA's turn to look at it again.
func (e *Engine) wakeTurnWaiters() {
	e.turnMu.Lock()
	if e.turnWaiters > 0 {
		e.turnCond.Broadcast()
	}
	e.turnMu.Unlock()
}
