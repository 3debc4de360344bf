package userspace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// The inbound path: one receiver per socket finds the SA by SPI; workers authenticate, decrypt and
// check the inner packet against the SA's selectors; writeTUN delivers batches in order.

func (e *Engine) startUDPReceivers() {
	for _, fn := range e.udpReceivers {
		e.wg.Add(1)
		go e.receiveUDP(fn)
	}
}

func (e *Engine) receiveUDP(fn conn.ReceiveFunc) {
	defer e.wg.Done()
	n := e.bind.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	eps := make([]conn.Endpoint, n)
	elems := make([]*elem, n)
	for {
		for i := range elems {
			if elems[i] == nil {
				elems[i] = e.pools.getBig()
			}
			bufs[i] = elems[i].big[rxHeadroom:]
		}
		count, err := fn(bufs, sizes, eps)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.isClosing() {
				for _, el := range elems {
					e.pools.put(el)
				}
				return
			}
			e.log.Debug("UDP receive", "err", err)
			continue
		}
		b := e.pools.getBatch()
		for i := 0; i < count; i++ {
			data := elems[i].big[rxHeadroom : rxHeadroom+sizes[i]]
			if e.classifyUDP(data, eps[i], elems[i]) {
				b.elems = append(b.elems, elems[i])
				elems[i] = nil
			}
			eps[i] = nil
		}
		if len(b.elems) == 0 {
			e.pools.putBatch(b)
			continue
		}
		if !e.queue(b, e.inWork, e.inOrder) {
			return
		}
	}
}

// classifyUDP sorts a datagram received on the NAT-T port (RFC 3948 §2): a single 0xFF byte is a
// NAT-keepalive, four zero bytes (the non-ESP marker) start an IKE message, anything else is ESP.
// It returns true when el now holds an ESP packet with its SA.
func (e *Engine) classifyUDP(data []byte, ep conn.Endpoint, el *elem) bool {
	switch {
	case len(data) == 1 && data[0] == 0xff:
		e.stats.keepAlives.Add(1)
		return false
	case len(data) >= 4 && binary.BigEndian.Uint32(data) == 0:
		e.stats.ikePackets.Add(1)
		if fn := e.cfg.IKE; fn != nil {
			fn(data[4:], ep.SrcIP(), netip.AddrPortFrom(ep.DstIP(), endpointPort(ep)))
		}
		return false
	case len(data) < 8:
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return false
	}
	e.stats.netPackets.Add(1)
	spi := binary.BigEndian.Uint32(data)
	sa := e.sad.lookup(dataplane.ESP, spi, ep.SrcIP())
	if sa == nil || !sa.addr.Load().encap || !sa.hold() {
		e.stats.drops[dataplane.DropNoSA].Add(1)
		return false
	}
	el.sa, el.pkt, el.ep = sa, data, ep
	el.remote = netip.AddrPortFrom(ep.DstIP(), endpointPort(ep))
	return true
}

func endpointPort(ep conn.Endpoint) uint16 {
	if s, ok := ep.(*conn.StdNetEndpoint); ok {
		return s.Port()
	}
	return 0
}

// openBatch authenticates and decrypts an inbound batch in place.
func (e *Engine) openBatch(b *batch) {
	for _, el := range b.elems {
		if r, ok := e.open(el); !ok {
			el.drop = int16(r)
			if !el.quiet {
				el.sa.drop(r)
				if e.espDebug() {
					e.cfg.ESPLogger.Debug("inbound packet dropped", "name", el.sa.params.Name, "spi", fmt.Sprintf("0x%08x", el.sa.params.SPI), "from", el.remote, "reason", r.String())
				}
			}
		}
	}
}

// espDebug reports whether per-packet ESP logs are wanted (checked first so that a flood of bad
// packets costs no formatting).
func (e *Engine) espDebug() bool {
	return e.cfg.ESPLogger.Enabled(context.Background(), slog.LevelDebug)
}

// open turns an IPsec packet into the plaintext packet to deliver, positioned in el.big so that at
// least tunOffset bytes precede it.
func (e *Engine) open(el *elem) (dataplane.DropReason, bool) {
	sa := el.sa
	if sa.has(saDead) {
		return dataplane.DropLifetime, false
	}
	var payload []byte
	var nextHeader byte
	if sa.esp != nil {
		var err error
		payload, nextHeader, _, err = sa.esp.Open(el.pkt)
		if err != nil {
			return espDropReason(err), false
		}
		e.firstInbound(sa)
		if nextHeader == protoNoNext {
			// A dummy packet (RFC 4303 §2.6): authenticated, then dropped silently.
			e.stats.dummies.Add(1)
			el.quiet = true
			return dataplane.DropMalformed, false
		}
	} else {
		res, err := sa.ah.Open(el.pkt)
		if err != nil {
			return ahDropReason(err), false
		}
		payload, nextHeader = res.Payload, res.NextHeader
		e.firstInbound(sa)
	}
	p := &sa.params
	if p.Mode == dataplane.Tunnel {
		if nextHeader != 4 && nextHeader != 41 {
			return dataplane.DropMalformed, false
		}
		f, ok := parseFlow(payload)
		if !ok || (nextHeader == 4) != f.src.Is4() {
			return dataplane.DropMalformed, false
		}
		// TFC padding (RFC 4303 §2.7) may follow the inner packet.
		el.pkt = payload[:f.totalLen]
		el.fl = f
	} else {
		// Transport mode: rebuild an IP header in front of the upper-layer payload.
		a := sa.addr.Load()
		hl := ipv4HeaderLen
		if a.src.Is6() {
			hl = ipv6HeaderLen
		}
		start := cap(el.big) - cap(payload)
		if start-hl < tunOffset || len(payload) > 0xffff-hl {
			return dataplane.DropMalformed, false
		}
		pkt := el.big[start-hl : start+len(payload)]
		writeIPHeader(pkt, a.src, a.dst, nextHeader, len(payload))
		if a.encap {
			// Behind a NAT the peer computed its TCP/UDP checksum with addresses we do not see;
			// the payload is authenticated, so recompute the checksum for the rebuilt header
			// (RFC 3948 §3.1.2).
			fixTransportChecksum(pkt, hl, nextHeader, a.src, a.dst)
		}
		f, ok := parseFlow(pkt)
		if !ok {
			return dataplane.DropMalformed, false
		}
		el.pkt, el.fl = pkt, f
	}
	// Inbound policy check (RFC 4301 §5.2): the inner packet must match the SA's selectors.
	if len(p.Remote) > 0 && len(p.Local) > 0 {
		f := &el.fl
		if !selectorsMatch(p.Remote, f.src, f, f.srcPort) || !selectorsMatch(p.Local, f.dst, f, f.dstPort) {
			return dataplane.DropPolicy, false
		}
	}
	return 0, true
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

// writeTUN delivers decrypted batches to the TUN device in the order they were received.
func (e *Engine) writeTUN() {
	defer e.wg.Done()
	bufs := make([][]byte, 0, 128)
	for {
		var b *batch
		select {
		case b = <-e.inOrder:
		case <-e.closing:
			return
		}
		b.done.Lock()
		bufs = e.deliverBatch(b, bufs)
		b.done.Unlock()
		releaseAll(b)
		e.pools.putBatch(b)
	}
}

// deliverBatch writes a decrypted batch to the TUN device, which coalesces TCP segments (GRO).
// bufs is scratch space, returned for reuse.
func (e *Engine) deliverBatch(b *batch, bufs [][]byte) [][]byte {
	bufs = bufs[:0]
	var runSA *saState
	var packets, bytes uint64
	for _, el := range b.elems {
		if el.drop >= 0 {
			continue
		}
		if el.sa != runSA {
			if runSA != nil {
				e.account(runSA, packets, bytes)
			}
			runSA, packets, bytes = el.sa, 0, 0
		}
		packets++
		bytes += uint64(len(el.pkt))
		start := cap(el.big) - cap(el.pkt)
		bufs = append(bufs, el.big[start-tunOffset:start+len(el.pkt)])
	}
	if runSA != nil {
		e.account(runSA, packets, bytes)
	}
	if len(bufs) > 0 {
		if _, err := e.tun.Write(bufs, tunOffset); err != nil {
			e.log.Debug("TUN write", "err", err)
		}
	}
	return bufs[:0]
}
