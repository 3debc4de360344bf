package userspace

import (
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

const (
	// queueBatches bounds the batches in flight per direction; with up to conn.IdealBatchSize packets
	// each this absorbs bursts while a goroutine is descheduled, without unbounded memory.
	queueBatches = 16
	// bigBufSize holds a coalesced 64 KiB UDP GRO read or TUN GRO write, with headroom.
	bigBufSize = 65535 + rxHeadroom
	// rxHeadroom is left in front of received packets so that a transport-mode IP header can be
	// rebuilt in front of the decrypted payload, and tunOffset bytes stay free for the TUN device's
	// virtio-net header.
	rxHeadroom = 128
	// tunOffset is where packets start in buffers handed to the TUN device (≥ its 10-byte virtio-net
	// header).
	tunOffset = 16
)

// elem is one packet on its way through the engine.
type elem struct {
	buf []byte // backing buffer
	pkt []byte // the packet: plaintext (outbound) or IPsec packet, then plaintext (inbound)
	out []byte // outbound: the IPsec packet to send (in big)
	big []byte // inbound: the received packet's buffer; outbound: the result buffer (both large
	// enough for GRO/GSO coalescing)
	bigRef *bigBuf

	sa     *saState
	fl     flow
	seq    uint64
	drop   int16 // -1: not dropped; otherwise a dataplane.DropReason
	quiet  bool  // dropped without counting against the SA (dummy packets)
	bypass bool  // outbound: matched a bypass policy, sent in the clear

	local  netip.Addr     // inbound: our address the packet was sent to
	remote netip.AddrPort // inbound: sender
	ep     conn.Endpoint  // inbound UDP: sender endpoint
}

// batch is the unit of work: the packets of one read, processed by one worker, written in order.
type batch struct {
	elems []*elem
	done  sync.Mutex // held from queuing until the worker has processed the batch
	src   *rawConn   // inbound: the socket the batch came from (nil for UDP)
}

type pools struct {
	small   sync.Pool // outbound plaintext buffers (TUN reads)
	big     sync.Pool // inbound buffers and outbound results
	batches sync.Pool
}

func (p *pools) init(mtu int) {
	smallSize := tunOffset + max(mtu, 1280) + 64
	p.small.New = func() any { return &elem{buf: make([]byte, smallSize), drop: -1} }
	p.big.New = func() any { return &bigBuf{b: make([]byte, bigBufSize)} }
	p.batches.New = func() any { return &batch{elems: make([]*elem, 0, conn.IdealBatchSize)} }
}

// getOut returns an outbound element with a small buffer.
func (p *pools) getOut() *elem { return p.small.Get().(*elem) }

// bigBuf wraps a large buffer so that pooling it does not allocate.
type bigBuf struct{ b []byte }

// getBig returns an element with a big buffer (inbound packets, outbound results).
func (p *pools) getBig() *elem {
	el := p.small.Get().(*elem)
	el.bigRef = p.big.Get().(*bigBuf)
	el.big = el.bigRef.b
	return el
}

// addBig gives an outbound element its result buffer.
func (p *pools) addBig(el *elem) {
	el.bigRef = p.big.Get().(*bigBuf)
	el.big = el.bigRef.b
}

func (p *pools) put(el *elem) {
	if el.bigRef != nil {
		p.big.Put(el.bigRef)
		el.bigRef, el.big = nil, nil
	}
	el.pkt, el.out, el.sa, el.ep = nil, nil, nil, nil
	el.drop, el.quiet, el.bypass = -1, false, false
	p.small.Put(el)
}

func (p *pools) getBatch() *batch { return p.batches.Get().(*batch) }

func (p *pools) putBatch(b *batch) {
	for i, el := range b.elems {
		p.put(el)
		b.elems[i] = nil
	}
	b.elems = b.elems[:0]
	b.src = nil
	p.batches.Put(b)
}
