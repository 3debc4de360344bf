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
	// outOffset is where the TUN device reads plaintext into an outbound buffer: room in front for
	// the ESP header and IV (at most 24 bytes), so that ESP seals in place, without a copy.
	outOffset = 64
)

// elem is one packet on its way through the engine.
type elem struct {
	pkt []byte // the packet: plaintext (outbound) or IPsec packet, then plaintext (inbound)
	out []byte // outbound: the IPsec packet to send (in big)
	// big is the packet's buffer, large enough for the TUN device's GRO writes and UDP GSO
	// coalescing, which append the following packets to the first one's buffer.
	big    []byte
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
	// scratch is reused by inline processing for the list of buffers to write.
	scratch [][]byte
}

type pools struct {
	elems   sync.Pool
	big     sync.Pool
	batches sync.Pool
}

func (p *pools) init() {
	p.elems.New = func() any { return &elem{drop: -1} }
	p.big.New = func() any { return &bigBuf{b: make([]byte, bigBufSize)} }
	p.batches.New = func() any { return &batch{elems: make([]*elem, 0, conn.IdealBatchSize)} }
}

// bigBuf wraps a large buffer so that pooling it does not allocate.
type bigBuf struct{ b []byte }

// getBig returns an element with its buffer.
func (p *pools) getBig() *elem {
	el := p.elems.Get().(*elem)
	el.bigRef = p.big.Get().(*bigBuf)
	el.big = el.bigRef.b
	return el
}

func (p *pools) put(el *elem) {
	if el.bigRef != nil {
		p.big.Put(el.bigRef)
		el.bigRef, el.big = nil, nil
	}
	el.pkt, el.out, el.sa, el.ep = nil, nil, nil, nil
	el.drop, el.quiet, el.bypass = -1, false, false
	p.elems.Put(el)
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
