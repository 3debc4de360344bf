package userspace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// The inbound path. Every socket — the UDP socket of each pipeline on the NAT-T port, and each raw
// ESP/AH socket — has one goroutine that receives a batch (recvmmsg; on UDP with GRO, so one
// message holds a run of datagrams from one sender), finds each packet's SA by SPI, authenticates
// and decrypts it in place (replay check before, commit after), checks the inner packet against
// the SA's selectors, and writes the result to its TUN queue through groWriter, which coalesces
// the TCP segments of a flow into one GSO packet written with writev: nothing is copied between
// the receive buffer and the kernel. One socket's packets stay in order.

// rxPipeline is the inbound goroutine of one socket.
type rxPipeline struct {
	e     *Engine
	sock  *batchSock
	raw   dataplane.Protocol // ESP or AH for a raw socket, 0 for UDP
	recv  *batchReceiver
	gro   groWriter
	hdrs  []byte // transport-mode IP headers rebuilt for this batch
	hoff  int
	runSA *saState // accounting of consecutive packets of one SA
	runN  uint64
	runB  uint64
	// passed is the last inner flow that passed its SA's inbound policy check in this batch: the
	// segments of one TCP flow received together need the check once.
	passed inboundFlow
}

// inboundFlow is an inner packet's flow as the inbound policy check sees it, with its SA.
type inboundFlow struct {
	sa       *saState
	src, dst netip.Addr
	proto    uint8
	srcPort  uint16
	dstPort  uint16
	hasPorts bool
}

const (
	udpRxSlots = 8  // messages per recvmmsg on a UDP socket (each up to 64 KiB with GRO)
	rawRxSlots = 16 // messages per recvmmsg on a raw socket (one packet each)
	rxBufSize  = 65535
)

func newRXPipeline(e *Engine, s *batchSock, raw dataplane.Protocol) *rxPipeline {
	slots := udpRxSlots
	if raw != 0 {
		slots = rawRxSlots
	}
	return &rxPipeline{e: e, sock: s, raw: raw, recv: newBatchReceiver(slots, rxBufSize), gro: groWriter{queues: e.tun.queues},
		hdrs: make([]byte, 32<<10)}
}

func (p *rxPipeline) run() {
	defer p.e.wg.Done()
	for {
		n, err := p.sock.receive(p.recv)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || p.e.isClosing() {
				return
			}
			p.e.log.Debug("receive", "err", err)
			continue
		}
		p.hoff = 0
		p.passed = inboundFlow{}
		for i := range n {
			sl := &p.recv.slots[i]
			data := sl.buf[:sl.n]
			for off := 0; off < len(data); off += sl.segSize {
				d := data[off:min(off+sl.segSize, len(data))]
				if p.raw == 0 {
					p.datagram(d, sl)
				} else {
					p.rawPacket(d, sl)
				}
			}
		}
		p.gro.flush()
		p.account(nil)
		if p.gro.err != nil {
			p.e.log.Debug("TUN write", "err", p.gro.err)
			p.gro.err = nil
		}
	}
}

// account adds the run of packets of one SA to its counters when the next packet belongs to
// another SA (sa) or the batch ends (nil).
func (p *rxPipeline) account(sa *saState) {
	if sa == p.runSA {
		return
	}
	if p.runSA != nil {
		p.e.account(p.runSA, p.runN, p.runB)
	}
	p.runSA, p.runN, p.runB = sa, 0, 0
}

// datagram sorts a datagram received on the NAT-T port (RFC 3948 §2): a single 0xFF byte is a
// NAT-keepalive, four zero bytes (the non-ESP marker) start an IKE message, anything else is ESP.
func (p *rxPipeline) datagram(d []byte, sl *rxMsg) {
	e := p.e
	switch {
	case len(d) == 1 && d[0] == 0xff:
		e.stats.keepAlives.Add(1)
		return
	case len(d) >= 4 && binary.BigEndian.Uint32(d) == 0:
		e.stats.ikePackets.Add(1)
		if fn := e.cfg.IKE; fn != nil {
			fn(d[4:], sl.local, sl.from)
		}
		return
	case len(d) < 8:
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return
	}
	e.stats.netPackets.Add(1)
	sa := e.sad.lookup(dataplane.ESP, binary.BigEndian.Uint32(d), sl.local)
	if sa == nil || !sa.addr.Load().encap || !sa.hold() {
		e.stats.drops[dataplane.DropNoSA].Add(1)
		return
	}
	p.deliver(sa, d, sl.from)
}

// rawPacket handles a packet from a raw ESP or AH socket. IPv4 raw sockets include the IP header;
// IPv6 ones do not, and for AH (whose ICV covers it) the header is rebuilt in the headroom: its
// immutable fields are exactly the addresses, the payload length and next header 51.
func (p *rxPipeline) rawPacket(d []byte, sl *rxMsg) {
	e := p.e
	e.stats.netPackets.Add(1)
	var src, dst netip.Addr
	var pkt []byte
	if !p.sock.is6 {
		var ok bool
		if src, dst, pkt, ok = splitRawIPv4(d); !ok {
			e.stats.drops[dataplane.DropMalformed].Add(1)
			return
		}
		if p.raw == dataplane.AH {
			pkt = d // AH authenticates the IP header too
		}
	} else {
		src, dst = sl.from.Addr(), sl.local
		if !dst.IsValid() || len(d) < 8 {
			e.stats.drops[dataplane.DropMalformed].Add(1)
			return
		}
		pkt = d
		if p.raw == dataplane.AH {
			start := len(sl.whole) - len(sl.buf) // d starts the slot's buffer: one packet per message
			full := sl.whole[start-ipv6HeaderLen : start+len(d)]
			writeIPHeader(full[:ipv6HeaderLen], src, dst, byte(dataplane.AH), len(d))
			pkt = full
		}
	}
	var spi uint32
	if p.raw == dataplane.ESP {
		spi = binary.BigEndian.Uint32(pkt)
	} else {
		spi = binary.BigEndian.Uint32(ahSPI(pkt, p.sock.is6))
	}
	p.deliverRaw(p.raw, spi, src, dst, pkt)
}

// deliverRaw hands an IPsec packet that arrived without UDP (raw socket or AF_XDP) to its inbound
// SA, which must be one that expects it so (not ESP in UDP); otherwise it counts no_sa.
func (p *rxPipeline) deliverRaw(proto dataplane.Protocol, spi uint32, src, dst netip.Addr, pkt []byte) {
	sa := p.e.sad.lookup(proto, spi, dst)
	if sa == nil || sa.addr.Load().encap || !sa.hold() {
		p.e.stats.drops[dataplane.DropNoSA].Add(1)
		return
	}
	p.deliver(sa, pkt, netip.AddrPortFrom(src, 0))
}

// splitRawIPv4 splits what an IPv4 raw socket delivers — the IP header (RFC 791 §3.1), then the
// IPsec packet — into the addresses and the IPsec packet, which must hold at least an SPI and a
// sequence number (8 bytes, for ESP and AH alike). The kernel has checked the header (version,
// checksum, total length) before delivering it.
func splitRawIPv4(d []byte) (src, dst netip.Addr, pkt []byte, ok bool) {
	if len(d) < ipv4HeaderLen {
		return src, dst, nil, false
	}
	ihl := int(d[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(d) < ihl+8 {
		return src, dst, nil, false
	}
	return netip.AddrFrom4([4]byte(d[ipv4Src:])), netip.AddrFrom4([4]byte(d[ipv4Dst:])), d[ihl:], true
}

// ahSPI returns the 4 bytes of the SPI of an AH packet that starts with its IP header.
func ahSPI(pkt []byte, is6 bool) []byte {
	off := ipv6HeaderLen
	if !is6 {
		off = int(pkt[0]&0x0f) * 4
	}
	return pkt[off+4 : off+8]
}

// deliver opens an IPsec packet of sa (held by the caller) and passes the inner packet on.
func (p *rxPipeline) deliver(sa *saState, pkt []byte, from netip.AddrPort) {
	e := p.e
	ip, l4, r, ok := p.open(sa, pkt)
	sa.release()
	if !ok {
		if r != dropQuiet {
			sa.drop(r)
			if e.espDebug() {
				e.cfg.ESPLogger.Debug("inbound packet dropped", "name", sa.params.Name, "spi", fmt.Sprintf("0x%08x", sa.params.SPI),
					"from", from, "reason", r.String())
			}
		}
		return
	}
	p.account(sa)
	p.runN++
	p.runB += uint64(len(ip) + len(l4))
	p.gro.add(ip, l4)
}

// dropQuiet marks a packet dropped without counting against its SA (ESP dummy packets).
const dropQuiet = dataplane.DropReason(255)

// open authenticates and decrypts an IPsec packet in place and returns the inner packet as its IP
// header and the rest. In transport mode the IP header is rebuilt in p.hdrs.
func (p *rxPipeline) open(sa *saState, pkt []byte) (ip, l4 []byte, r dataplane.DropReason, ok bool) {
	e := p.e
	if sa.has(saDead) {
		return nil, nil, dataplane.DropLifetime, false
	}
	var payload []byte
	var nextHeader byte
	if sa.esp != nil {
		var err error
		payload, nextHeader, _, err = sa.esp.Open(pkt)
		if err != nil {
			return nil, nil, espDropReason(err), false
		}
		e.firstInbound(sa)
		if nextHeader == protoNoNext {
			// A dummy packet (RFC 4303 §2.6): authenticated, then dropped silently.
			e.stats.dummies.Add(1)
			return nil, nil, dropQuiet, false
		}
	} else {
		res, err := sa.ah.Open(pkt)
		if err != nil {
			return nil, nil, ahDropReason(err), false
		}
		payload, nextHeader = res.Payload, res.NextHeader
		e.firstInbound(sa)
	}
	c := &sa.params
	var f flow
	if c.Mode == dataplane.Tunnel {
		if nextHeader != 4 && nextHeader != 41 {
			return nil, nil, dataplane.DropMalformed, false
		}
		var fok bool
		f, fok = parseFlow(payload)
		if !fok || (nextHeader == 4) != f.src.Is4() {
			return nil, nil, dataplane.DropMalformed, false
		}
		// TFC padding (RFC 4303 §2.7) may follow the inner packet.
		ip, l4 = payload[:f.hdrLen], payload[f.hdrLen:f.totalLen]
	} else {
		// Transport mode: an IP header rebuilt in front of the upper-layer payload.
		a := sa.addr.Load()
		hl := ipv4HeaderLen
		if a.src.Is6() {
			hl = ipv6HeaderLen
		}
		if len(payload) > 0xffff-hl {
			return nil, nil, dataplane.DropMalformed, false
		}
		if p.hoff+hl > len(p.hdrs) {
			p.gro.flush() // frees the headers of the packets written
			p.hoff = 0
		}
		ip = p.hdrs[p.hoff : p.hoff+hl]
		p.hoff += hl
		writeIPHeader(ip, a.src, a.dst, nextHeader, len(payload))
		if a.encap {
			// Behind a NAT the peer computed its TCP/UDP checksum with addresses we do not see;
			// the payload is authenticated, so recompute the checksum for the rebuilt header
			// (RFC 3948 §3.1.2).
			fixL4Checksum(payload, nextHeader, a.src, a.dst)
		}
		l4 = payload
		f = flow{src: a.src, dst: a.dst, proto: nextHeader, hdrLen: hl, totalLen: hl + len(payload)}
		f.readPorts(payload)
	}
	// Inbound policy check (RFC 4301 §5.2): the inner packet must match the SA's selectors.
	if len(c.Remote) > 0 && len(c.Local) > 0 {
		in := inboundFlow{sa: sa, src: f.src, dst: f.dst, proto: f.proto, srcPort: f.srcPort, dstPort: f.dstPort, hasPorts: f.hasPorts}
		if in != p.passed {
			if !selectorsMatch(c.Remote, f.src, &f, f.srcPort) || !selectorsMatch(c.Local, f.dst, &f, f.dstPort) {
				return nil, nil, dataplane.DropPolicy, false
			}
			p.passed = in // an SA's selectors never change (InstallSA sets them once)
		}
	}
	if c.ClampMSS != 0 && f.proto == 6 {
		e.clampMSS(sa, sa.addr.Load(), l4, f.dst.Is6())
	}
	return ip, l4, 0, true
}

// firstInbound raises Events.FirstInbound for the first authenticated packet of an inbound SA
// that asked for it (make-before-break rekeys: the peer now sends on the new SA). It runs on the
// packet path; the callback must not block.
func (e *Engine) firstInbound(sa *saState) {
	if !sa.params.NotifyFirstInbound || sa.has(saFirstIn) || !sa.setFlag(saFirstIn) {
		return
	}
	if f := e.cfg.Events.FirstInbound; f != nil {
		f(sa.key(), sa.params.Name)
	}
}

// espDebug reports whether per-packet ESP logs are wanted (checked first so that a flood of bad
// packets costs no formatting).
func (e *Engine) espDebug() bool {
	return e.cfg.ESPLogger.Enabled(context.Background(), slog.LevelDebug)
}

func espDropReason(err error) dataplane.DropReason {
	switch {
	case errors.Is(err, esp.ErrReplay):
		return dataplane.DropReplay
	case errors.Is(err, esp.ErrAuth):
		return dataplane.DropAuth
	case errors.Is(err, esp.ErrPadding):
		return dataplane.DropPadding
	}
	return dataplane.DropMalformed
}

func ahDropReason(err error) dataplane.DropReason {
	switch {
	case errors.Is(err, ah.ErrReplay):
		return dataplane.DropReplay
	case errors.Is(err, ah.ErrAuth):
		return dataplane.DropAuth
	}
	return dataplane.DropMalformed
}
