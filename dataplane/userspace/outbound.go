package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// The outbound path: readTUN (one goroutine) classifies packets against the SPD and takes sequence
// numbers in read order; workers seal batches in parallel; sendOutbound writes batches in read order.

func (e *Engine) start() {
	e.wg.Add(2)
	go e.drainTunEvents()
	go e.readTUN()
	if !e.inline {
		e.wg.Add(2 + e.cfg.Workers)
		go e.sendOutbound()
		for range e.cfg.Workers {
			go e.worker()
		}
		go e.writeTUN()
	}
	if e.bind != nil {
		e.startUDPReceivers()
	}
	if e.raw != nil {
		e.startRawReceivers()
	}
}

// drainTunEvents empties the TUN device's event channel, which nobody else reads.
func (e *Engine) drainTunEvents() {
	defer e.wg.Done()
	for range e.tun.Events() {
	}
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for {
		select {
		case b := <-e.outWork:
			e.sealBatch(b)
			b.done.Unlock()
		case b := <-e.inWork:
			e.openBatch(b)
			b.done.Unlock()
		case <-e.closing:
			return
		}
	}
}

// queue hands a batch to the workers and to a sequencer, or, with inline processing, seals or
// opens and delivers it right here. It returns false when the engine closes.
func (e *Engine) queue(b *batch, work, order chan *batch) bool {
	if e.inline {
		if work == e.outWork {
			e.sealBatch(b)
			b.scratch = e.sendBatch(b, b.scratch)
		} else {
			e.openBatch(b)
			b.scratch = e.deliverBatch(b, b.scratch)
		}
		releaseAll(b)
		e.pools.putBatch(b)
		return !e.isClosing()
	}
	b.done.Lock()
	select {
	case order <- b:
	case <-e.closing:
		return false
	}
	select {
	case work <- b:
	case <-e.closing:
		return false
	}
	return true
}

func (e *Engine) readTUN() {
	defer e.wg.Done()
	n := e.tun.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	elems := make([]*elem, n)
	for {
		for i := range elems {
			if elems[i] == nil {
				elems[i] = e.pools.getBig()
			}
			bufs[i] = elems[i].big
		}
		count, err := e.tun.Read(bufs, sizes, outOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || e.isClosing() {
				for _, el := range elems {
					e.pools.put(el)
				}
				return
			}
			// A single unparseable virtio frame must not stop the engine.
			e.log.Debug("TUN read", "err", err)
			e.stats.drops[dataplane.DropMalformed].Add(1)
			continue
		}
		b := e.pools.getBatch()
		spd := e.spd.Load()
		for i := 0; i < count; i++ {
			el := elems[i]
			elems[i] = nil
			el.pkt = el.big[outOffset : outOffset+sizes[i]]
			e.stats.tunPackets.Add(1)
			if !e.classifyOutbound(el, spd) {
				e.pools.put(el)
				continue
			}
			b.elems = append(b.elems, el)
		}
		if len(b.elems) == 0 {
			e.pools.putBatch(b)
			continue
		}
		if !e.queue(b, e.outWork, e.outOrder) {
			return
		}
	}
}

func (e *Engine) isClosing() bool {
	select {
	case <-e.closing:
		return true
	default:
		return false
	}
}

// classifyOutbound finds the policy and SA for a plaintext packet and takes its sequence number.
// It returns false when the packet is dropped here.
func (e *Engine) classifyOutbound(el *elem, spd *spdSnapshot) bool {
	f, ok := parseFlow(el.pkt)
	if !ok {
		e.stats.drops[dataplane.DropMalformed].Add(1)
		return false
	}
	el.fl = f
	el.pkt = el.pkt[:f.totalLen]
	pol := spd.lookup(&f)
	if pol == nil {
		e.stats.drops[dataplane.DropNoPolicy].Add(1)
		return false
	}
	switch pol.params.Action {
	case dataplane.Discard:
		e.stats.drops[dataplane.DropDiscard].Add(1)
		return false
	case dataplane.Deliver:
		// Local delivery to a userspace handler (L2TP/PPP clients): not an ESP packet.
		if fn := pol.params.Deliver; fn != nil {
			fn(el.pkt)
		}
		return false
	case dataplane.Bypass:
		// A bypass policy carved out of a protected range: send the packet on in the clear,
		// re-injected through a raw socket whose fwmark keeps it off the TUN device.
		if e.raw == nil {
			e.stats.drops[dataplane.DropNoPolicy].Add(1)
			return false
		}
		el.bypass = true
		return true
	}
	sa := pol.sa.Load()
	if sa == nil || !sa.hold() {
		e.acquire(pol, &f)
		e.stats.drops[dataplane.DropNoSA].Add(1)
		return false
	}
	if sa.dead.Load() {
		sa.drop(dataplane.DropLifetime)
		sa.release()
		return false
	}
	var seq uint64
	var err error
	if sa.esp != nil {
		seq, err = sa.esp.NextSeq()
	} else {
		seq, err = sa.ah.NextSeq()
	}
	if err != nil {
		sa.dead.Store(true)
		sa.drop(dataplane.DropSeqExhausted)
		e.expire(sa, true, "sequence number space used up: rekey needed")
		sa.release()
		return false
	}
	el.sa, el.seq = sa, seq
	return true
}

// acquire asks the control plane for an SA, at most once a second per policy.
func (e *Engine) acquire(pol *policy, f *flow) {
	now := e.cfg.Now().UnixNano()
	last := pol.acquired.Load()
	if now-last < int64(time.Second) || !pol.acquired.CompareAndSwap(last, now) {
		return
	}
	if fn := e.cfg.Events.Acquire; fn != nil {
		fn(dataplane.Acquire{Policy: pol.id, Name: pol.params.Name, Src: f.src, Dst: f.dst, Protocol: f.proto})
	}
}

// sealBatch applies ESP or AH to every packet of an outbound batch.
func (e *Engine) sealBatch(b *batch) {
	for _, el := range b.elems {
		if el.bypass {
			continue
		}
		if e.tooBig(el) {
			continue
		}
		if err := e.seal(el); err != nil {
			el.drop = int16(dataplane.DropMalformed)
			if errors.Is(err, esp.ErrSeqExhausted) {
				el.drop = int16(dataplane.DropSeqExhausted)
			}
			el.sa.drop(dataplane.DropReason(el.drop))
			if e.espDebug() {
				e.cfg.ESPLogger.Debug("seal failed", "name", el.sa.params.Name, "spi", fmt.Sprintf("0x%08x", el.sa.key.SPI), "err", err)
			}
		}
	}
}

func (e *Engine) seal(el *elem) error {
	sa := el.sa
	p := &sa.params
	f := &el.fl
	var nextHeader byte
	payload, at := el.pkt, outOffset // the payload and where it starts in el.big
	if p.Mode == dataplane.Tunnel {
		nextHeader = 4
		if el.pkt[0]>>4 == 6 {
			nextHeader = 41
		}
	} else {
		nextHeader = f.proto
		payload, at = el.pkt[f.hdrLen:], outOffset+f.hdrLen
	}
	var err error
	if sa.esp != nil {
		tfc := 0
		if p.Mode == dataplane.Tunnel && p.TFCPadding > len(payload) {
			tfc = p.TFCPadding - len(payload)
		}
		// Seal in place: the ESP header goes right in front of the payload (over the IP header in
		// transport mode, which is no longer needed), the ciphertext over the plaintext.
		start := at - sa.esp.HeaderLen()
		el.out, err = sa.esp.Seal(el.big[start:start], el.seq, nextHeader, payload, tfc)
		return err
	}
	// AH builds a whole new IP packet: behind the plaintext in the same buffer.
	dst := el.big[outOffset+len(el.pkt)+64:]
	dst = dst[:0]
	if p.Src.Is4() {
		hdr := ah.IPv4Header{Src: p.Src, Dst: p.Dst, TTL: 64, ID: uint16(el.seq)}
		if p.Mode == dataplane.Transport {
			hdr.Src, hdr.Dst = f.src, f.dst
			hdr.TTL = el.pkt[8]
			hdr.TOS = el.pkt[1]
			hdr.ID = binary.BigEndian.Uint16(el.pkt[4:])
		}
		if hdr.ID == 0 {
			hdr.ID = 1 // the kernel replaces a zero ID, which would break the ICV
		}
		el.out, err = sa.ah.SealIPv4(dst, hdr, el.seq, nextHeader, payload)
		return err
	}
	hdr := ah.IPv6Header{Src: p.Src, Dst: p.Dst, HopLimit: 64}
	if p.Mode == dataplane.Transport {
		hdr.Src, hdr.Dst = f.src, f.dst
		hdr.HopLimit = el.pkt[7]
	}
	el.out, err = sa.ah.SealIPv6(dst, hdr, el.seq, nextHeader, payload)
	if err == nil {
		// The raw IPv6 socket writes its own header (with the same immutable fields).
		el.out = el.out[ipv6HeaderLen:]
	}
	return err
}

// sendOutbound writes sealed batches in order, grouping runs of packets for one destination so
// that UDP GSO can send them in one system call.
func (e *Engine) sendOutbound() {
	defer e.wg.Done()
	bufs := make([][]byte, 0, 128)
	for {
		var b *batch
		select {
		case b = <-e.outOrder:
		case <-e.closing:
			return
		}
		b.done.Lock()
		bufs = e.sendBatch(b, bufs)
		b.done.Unlock()
		releaseAll(b)
		e.pools.putBatch(b)
	}
}

// sendBatch writes a sealed batch, grouping runs of packets of one SA so that UDP GSO sends them
// in one system call. bufs is scratch space, returned for reuse.
func (e *Engine) sendBatch(b *batch, bufs [][]byte) [][]byte {
	var runSA *saState
	var bytes, packets uint64
	flush := func() {
		if len(bufs) == 0 {
			return
		}
		if err := e.transmit(runSA, bufs); err != nil {
			e.log.Debug("send failed", "name", runSA.params.Name, "err", err)
		}
		e.account(runSA, packets, bytes)
		bufs, bytes, packets = bufs[:0], 0, 0
	}
	for _, el := range b.elems {
		if el.drop >= 0 {
			continue
		}
		if el.bypass {
			if err := e.raw.sendClear(el.pkt); err != nil {
				e.log.Debug("bypass send failed", "err", err)
			}
			e.stats.bypassed.Add(1)
			continue
		}
		if el.sa != runSA {
			flush()
			runSA = el.sa
		}
		bufs = append(bufs, el.out)
		packets++
		bytes += uint64(len(el.pkt))
	}
	flush()
	return bufs[:0]
}

// transmit sends IPsec packets of one SA.
func (e *Engine) transmit(sa *saState, pkts [][]byte) error {
	p := &sa.params
	if p.Encap {
		return e.bind.Send(pkts, sa.ep)
	}
	return e.raw.send(p.Protocol, p.Src, p.Dst, pkts)
}

// releaseAll ends the holds of a finished batch's packets on their SAs.
func releaseAll(b *batch) {
	for _, el := range b.elems {
		if el.sa != nil {
			el.sa.release()
		}
	}
}

// tooBig refuses a plaintext packet whose IPsec packet would exceed the path MTU when the packet
// may not be fragmented (IPv4 with DF, every IPv6 packet): it is dropped and counted, and the
// sender learns the usable size from an ICMP "fragmentation needed" / "packet too big" written
// back into the TUN device (RFC 4301 §8.1), so that TCP lowers its segment size.
func (e *Engine) tooBig(el *elem) bool {
	sa := el.sa
	if sa.outerMTU == 0 {
		return false
	}
	inner := el.pkt
	var payload int
	if sa.params.Mode == dataplane.Tunnel {
		payload = len(inner)
	} else {
		payload = len(inner) - el.fl.hdrLen
	}
	outer := ipv4HeaderLen
	if sa.params.Dst.Is6() {
		outer = ipv6HeaderLen
	}
	if sa.params.Encap {
		outer += 8
	}
	if sa.esp != nil {
		outer += sa.esp.Overhead(payload)
	} else {
		outer += sa.ah.Overhead(sa.params.Dst.Is6())
	}
	if outer+payload <= sa.outerMTU {
		return false
	}
	is6 := inner[0]>>4 == 6
	if !is6 && inner[6]&0x40 == 0 {
		return false // the outer packet is fragmented instead
	}
	// What fits: the path MTU less this packet's overhead, less the worst padding (16 bytes).
	mtu := sa.outerMTU - (outer + payload - len(inner)) - 16
	if is6 {
		mtu = max(mtu, 1280)
	} else {
		mtu = max(mtu, 576)
	}
	el.drop = int16(dataplane.DropTooBig)
	sa.drop(dataplane.DropTooBig)
	if msg := icmpTooBig(el.big[outOffset+len(inner)+64:outOffset+len(inner)+64], inner, mtu); msg != nil {
		start := cap(el.big) - cap(msg)
		if _, err := e.tun.Write([][]byte{el.big[start-tunOffset : start+len(msg)]}, tunOffset); err != nil {
			e.log.Debug("ICMP too big", "err", err)
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
