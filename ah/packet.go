package ah

import (
	"crypto/hmac"
	"encoding/binary"
	"math"
	"net/netip"

	"github.com/goipsec/goipsec/internal/appendbuf"
)

// IPv4 header layout (RFC 791).
const (
	ipv4MinHeader  = 20
	ipv4MaxHeader  = 60
	v4OffVerIHL    = 0
	v4OffTOS       = 1
	v4OffTotalLen  = 2
	v4OffID        = 4
	v4OffFlagsFrag = 6
	v4OffTTL       = 8
	v4OffProtocol  = 9
	v4OffChecksum  = 10
	v4OffSrc       = 12
	v4OffDst       = 16
	v4FlagDF       = 0x4000
	v4FlagMF       = 0x2000
	v4FragOffMask  = 0x1fff
)

// IPv4 option types (RFC 4302 Appendix A.1). Only these are immutable and enter the ICV as they
// are; every other option, including unknown ones, is zeroed whole (RFC 4302 §3.3.3.1.1.1).
const (
	v4OptEOL        = 0
	v4OptNOP        = 1
	v4OptSecurity   = 130
	v4OptLSRR       = 131
	v4OptExtSec     = 133
	v4OptCIPSO      = 134
	v4OptSSRR       = 137
	v4OptRouterAlrt = 148
	v4OptSDBM       = 149
)

func v4OptionImmutable(t byte) bool {
	switch t {
	case v4OptEOL, v4OptNOP, v4OptSecurity, v4OptExtSec, v4OptCIPSO, v4OptRouterAlrt, v4OptSDBM:
		return true
	}
	return false
}

// IPv6 header layout (RFC 8200) and the extension headers AH may follow.
const (
	ipv6HeaderLen    = 40
	v6OffPayloadLen  = 4
	v6OffNextHeader  = 6
	v6OffHopLimit    = 7
	v6OffSrc         = 8
	v6OffDst         = 24
	protoHopByHop    = 0
	protoRouting     = 43
	protoFragment    = 44
	protoDstOpts     = 60
	v6OptPad1        = 0
	v6OptMutableBit  = 0x20 // option type bit: "option data may change en route" (RFC 8200 §4.2)
	routingSegsLeft  = 3
	routingType      = 2
	routingType0     = 0
	routingType2     = 2
	extHdrUnit       = 8
	v6FlowLabelMask  = 0xfffff
	v6TrafficClassSh = 20
)

// IPv4Header gives the outer (tunnel mode) or original (transport mode) IPv4 header fields for
// SealIPv4. Protocol, total length and checksum are computed.
type IPv4Header struct {
	Src, Dst     netip.Addr
	TOS          uint8
	TTL          uint8
	ID           uint16
	DontFragment bool
	// Options are raw IPv4 options, a multiple of 4 bytes and at most 40. Source route options
	// (LSRR, SSRR) are refused: their destination address would have to be predicted.
	Options []byte
}

// IPv6Header gives the IPv6 header fields for SealIPv6. No extension headers are emitted.
type IPv6Header struct {
	Src, Dst     netip.Addr
	TrafficClass uint8
	FlowLabel    uint32 // low 20 bits
	HopLimit     uint8
}

// Result describes a verified AH packet. Offsets index the pkt given to Open.
type Result struct {
	NextHeader byte   // protocol after AH: 4 or 41 in tunnel mode, the upper layer in transport mode
	Seq        uint64 // full (ESN-inferred) sequence number
	Payload    []byte // everything after the AH header up to the IP packet's end; aliases pkt
	IPv6       bool
	AHOffset   int // where AH starts: the IP header (and IPv6 extension headers before AH) end here
	AHLen      int // AH header length including ICV and padding
	// PrevNextHeaderOffset is the offset of the Protocol (IPv4) or Next Header byte that named
	// AH; RemoveAH rewrites it to NextHeader when rebuilding a transport-mode packet.
	PrevNextHeaderOffset int
}

// layout is what parse learns about a packet that carries AH.
type layout struct {
	ipv6        bool
	ipHeaderLen int // IPv4 header length with options, or 40 for IPv6 (extension headers follow)
	prevNH      int
	ahOff       int
	end         int // IP packet length (excludes link-layer padding after it)
}

// SealIPv4 appends to dst an IPv4 packet: hdr with protocol 51, the AH header with its ICV, and
// payload. In tunnel mode payload is the inner IP packet and nextHeader 4 or 41; in transport
// mode payload is the upper-layer data, nextHeader its protocol and hdr the original header.
// It allocates nothing when dst has capacity for len(hdr.Options)+20+Overhead(false)+len(payload).
func (sa *SA) SealIPv4(dst []byte, hdr IPv4Header, seq uint64, nextHeader byte, payload []byte) ([]byte, error) {
	k, err := sa.sealChecks(seq)
	if err != nil {
		return nil, err
	}
	if !hdr.Src.Is4() || !hdr.Dst.Is4() {
		return nil, ErrAddress
	}
	if len(hdr.Options)%4 != 0 || len(hdr.Options) > ipv4MaxHeader-ipv4MinHeader || !validV4Options(hdr.Options, true) {
		return nil, ErrOptions
	}
	ihl := ipv4MinHeader + len(hdr.Options)
	ahLen := sa.ahLen(false)
	total := ihl + ahLen + len(payload)
	if total > math.MaxUint16 {
		return nil, ErrTooLong
	}
	ret, out := appendbuf.Grow(dst, total)
	copy(out[ihl+ahLen:], payload) // first: payload may lie in dst's spare capacity

	out[v4OffVerIHL] = 4<<4 | byte(ihl/4)
	out[v4OffTOS] = hdr.TOS
	binary.BigEndian.PutUint16(out[v4OffTotalLen:], uint16(total))
	binary.BigEndian.PutUint16(out[v4OffID:], hdr.ID)
	var flags uint16
	if hdr.DontFragment {
		flags = v4FlagDF
	}
	binary.BigEndian.PutUint16(out[v4OffFlagsFrag:], flags)
	out[v4OffTTL] = hdr.TTL
	out[v4OffProtocol] = ProtocolAH
	binary.BigEndian.PutUint16(out[v4OffChecksum:], 0)
	src, dstAddr := hdr.Src.As4(), hdr.Dst.As4()
	copy(out[v4OffSrc:], src[:])
	copy(out[v4OffDst:], dstAddr[:])
	copy(out[ipv4MinHeader:ihl], hdr.Options)

	sa.putAH(out[ihl:ihl+ahLen], nextHeader, seq)
	l := layout{ipHeaderLen: ihl, prevNH: v4OffProtocol, ahOff: ihl, end: total}
	sa.fillICV(k, out, l, seq)
	binary.BigEndian.PutUint16(out[v4OffChecksum:], ipv4Checksum(out[:ihl]))
	return ret, nil
}

// SealIPv6 appends to dst an IPv6 packet: hdr with next header 51, the AH header with its ICV
// (padded to 64 bits), and payload; see SealIPv4 for tunnel and transport mode.
func (sa *SA) SealIPv6(dst []byte, hdr IPv6Header, seq uint64, nextHeader byte, payload []byte) ([]byte, error) {
	k, err := sa.sealChecks(seq)
	if err != nil {
		return nil, err
	}
	if !hdr.Src.Is6() || hdr.Src.Is4In6() || !hdr.Dst.Is6() || hdr.Dst.Is4In6() {
		return nil, ErrAddress
	}
	ahLen := sa.ahLen(true)
	plen := ahLen + len(payload)
	if plen > math.MaxUint16 {
		return nil, ErrTooLong
	}
	total := ipv6HeaderLen + plen
	ret, out := appendbuf.Grow(dst, total)
	copy(out[ipv6HeaderLen+ahLen:], payload)

	binary.BigEndian.PutUint32(out[0:], 6<<28|uint32(hdr.TrafficClass)<<v6TrafficClassSh|hdr.FlowLabel&v6FlowLabelMask)
	binary.BigEndian.PutUint16(out[v6OffPayloadLen:], uint16(plen))
	out[v6OffNextHeader] = ProtocolAH
	out[v6OffHopLimit] = hdr.HopLimit
	src, dstAddr := hdr.Src.As16(), hdr.Dst.As16()
	copy(out[v6OffSrc:], src[:])
	copy(out[v6OffDst:], dstAddr[:])

	sa.putAH(out[ipv6HeaderLen:ipv6HeaderLen+ahLen], nextHeader, seq)
	l := layout{ipv6: true, ipHeaderLen: ipv6HeaderLen, prevNH: v6OffNextHeader, ahOff: ipv6HeaderLen, end: total}
	sa.fillICV(k, out, l, seq)
	return ret, nil
}

func (sa *SA) sealChecks(seq uint64) (*saKeys, error) {
	k := sa.keys.Load()
	if k == nil {
		return nil, ErrZeroed
	}
	if seq == 0 || (!sa.esn && seq > math.MaxUint32) {
		return nil, ErrSeq
	}
	return k, nil
}

// putAH writes the AH header with a zero ICV and zero padding into b (exactly ahLen bytes).
func (sa *SA) putAH(b []byte, nextHeader byte, seq uint64) {
	b[ahOffNextHeader] = nextHeader
	b[ahOffPayloadLen] = byte(len(b)/4 - 2) // RFC 4302 §2.2: 32-bit words minus 2
	b[2], b[3] = 0, 0                       // Reserved
	binary.BigEndian.PutUint32(b[ahOffSPI:], sa.spi)
	binary.BigEndian.PutUint32(b[ahOffSeq:], uint32(seq))
	clear(b[ahFixedLen:])
}

// fillICV computes the ICV of the packet (whose ICV field must be zero) and writes it.
func (sa *SA) fillICV(k *saKeys, pkt []byte, l layout, seq uint64) {
	s := k.pool.Get().(*scratch)
	defer k.pool.Put(s)
	icvOff := l.ahOff + ahFixedLen
	copy(pkt[icvOff:icvOff+sa.icvLen], sa.icv(s, pkt, l, seq))
}

// Open verifies the AH packet pkt, a complete IPv4 or IPv6 packet whose protocol chain reaches
// AH. IPv6 hop-by-hop, destination options and routing headers before AH are walked and
// included in the ICV as RFC 4302 Appendix A.2 prescribes; a fragment (IPv4 MF or offset, IPv6
// fragment header) is refused with ErrFragment, and routing headers other than types 0 and 2
// with no segments left with ErrRoutingHeader. Bytes after the IP packet's stated length (link
// layer padding) are ignored.
//
// The replay window is checked before the ICV and updated only after it verified; the ICV is
// compared in constant time. pkt is not modified.
func (sa *SA) Open(pkt []byte) (Result, error) {
	k := sa.keys.Load()
	if k == nil {
		return Result{}, ErrZeroed
	}
	l, err := sa.parse(pkt)
	if err != nil {
		return Result{}, err
	}
	pkt = pkt[:l.end]
	ah := pkt[l.ahOff:]
	if binary.BigEndian.Uint32(ah[ahOffSPI:]) != sa.spi {
		return Result{}, ErrSPIMismatch
	}
	low := binary.BigEndian.Uint32(ah[ahOffSeq:])
	seq, fresh := uint64(low), true
	switch {
	case sa.esn:
		seq, fresh = sa.window.InferAndCheck(low)
	case sa.checkSeen:
		fresh = sa.window.Check(seq)
	}
	if sa.checkSeen && !fresh {
		return Result{}, ErrReplay
	}
	s := k.pool.Get().(*scratch)
	ok := hmac.Equal(sa.icv(s, pkt, l, seq), ah[ahFixedLen:ahFixedLen+sa.icvLen])
	k.pool.Put(s)
	if !ok {
		return Result{}, ErrAuth
	}
	if sa.window != nil && !sa.window.Commit(seq) && sa.checkSeen {
		return Result{}, ErrReplay
	}
	ahLen := sa.ahLen(l.ipv6)
	return Result{
		NextHeader:           ah[ahOffNextHeader],
		Seq:                  seq,
		Payload:              pkt[l.ahOff+ahLen:],
		IPv6:                 l.ipv6,
		AHOffset:             l.ahOff,
		AHLen:                ahLen,
		PrevNextHeaderOffset: l.prevNH,
	}, nil
}

// parse validates the IP header chain up to and including the fixed part of the AH header.
func (sa *SA) parse(pkt []byte) (layout, error) {
	if len(pkt) < 1 {
		return layout{}, ErrTooShort
	}
	var l layout
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4MinHeader {
			return l, ErrTooShort
		}
		ihl := int(pkt[v4OffVerIHL]&0x0f) * 4
		if ihl < ipv4MinHeader {
			return l, ErrMalformed
		}
		total := int(binary.BigEndian.Uint16(pkt[v4OffTotalLen:]))
		if total < ihl {
			return l, ErrMalformed
		}
		if len(pkt) < total {
			return l, ErrTooShort
		}
		if ff := binary.BigEndian.Uint16(pkt[v4OffFlagsFrag:]); ff&v4FlagMF != 0 || ff&v4FragOffMask != 0 {
			return l, ErrFragment
		}
		if pkt[v4OffProtocol] != ProtocolAH {
			return l, ErrNoAH
		}
		if !validV4Options(pkt[ipv4MinHeader:ihl], false) {
			return l, ErrMalformed
		}
		l = layout{ipHeaderLen: ihl, prevNH: v4OffProtocol, ahOff: ihl, end: total}
	case 6:
		if len(pkt) < ipv6HeaderLen {
			return l, ErrTooShort
		}
		plen := int(binary.BigEndian.Uint16(pkt[v6OffPayloadLen:]))
		if plen == 0 {
			return l, ErrMalformed // jumbograms (RFC 2675) are not supported
		}
		end := ipv6HeaderLen + plen
		if len(pkt) < end {
			return l, ErrTooShort
		}
		l = layout{ipv6: true, ipHeaderLen: ipv6HeaderLen, prevNH: v6OffNextHeader, end: end}
		off, nh := ipv6HeaderLen, pkt[v6OffNextHeader]
		for nh != ProtocolAH {
			switch nh {
			case protoHopByHop, protoDstOpts, protoRouting:
			case protoFragment:
				return l, ErrFragment
			default:
				return l, ErrNoAH
			}
			if nh == protoHopByHop && off != ipv6HeaderLen {
				return l, ErrMalformed // RFC 8200 §4.1: hop-by-hop only right after the header
			}
			if off+2 > end {
				return l, ErrTooShort
			}
			hlen := (int(pkt[off+1]) + 1) * extHdrUnit
			if off+hlen > end {
				return l, ErrTooShort
			}
			ext := pkt[off : off+hlen]
			if nh == protoRouting {
				// With no segments left the header arrives exactly as the sender predicted it
				// (RFC 4302 Appendix A.2); other states or types we cannot predict.
				if ext[routingSegsLeft] != 0 || (ext[routingType] != routingType0 && ext[routingType] != routingType2) {
					return l, ErrRoutingHeader
				}
			} else if !validV6Options(ext[2:]) {
				return l, ErrMalformed
			}
			l.prevNH = off
			nh = ext[0]
			off += hlen
		}
		l.ahOff = off
	default:
		return l, ErrMalformed
	}
	if l.ahOff+ahFixedLen > l.end {
		return l, ErrTooShort
	}
	ahLen := (int(pkt[l.ahOff+ahOffPayloadLen]) + 2) * 4
	if ahLen != sa.ahLen(l.ipv6) {
		// The ICV length is fixed by the SA and padding beyond the minimum is prohibited
		// (RFC 4302 §3.3.3.2.1), so any other length is not ours to interpret.
		return l, ErrMalformed
	}
	if l.ahOff+ahLen > l.end {
		return l, ErrTooShort
	}
	return l, nil
}

// validV4Options checks the option list's structure. forOutput also refuses source routes.
func validV4Options(opts []byte, forOutput bool) bool {
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == v4OptEOL {
			return true // the rest is padding, included in the ICV as it is
		}
		if t == v4OptNOP {
			i++
			continue
		}
		if i+2 > len(opts) {
			return false
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return false
		}
		if forOutput && (t == v4OptLSRR || t == v4OptSSRR) {
			return false
		}
		i += n
	}
	return true
}

// validV6Options checks the TLV structure of a hop-by-hop or destination options area.
func validV6Options(opts []byte) bool {
	for i := 0; i < len(opts); {
		if opts[i] == v6OptPad1 {
			i++
			continue
		}
		if i+2 > len(opts) {
			return false
		}
		i += 2 + int(opts[i+1])
		if i > len(opts) {
			return false
		}
	}
	return true
}

// icv computes the truncated HMAC over the packet as RFC 4302 §3.3.3.1 defines it: mutable
// header fields and the ICV field as zeros, ESN high bits appended after the payload. It streams
// the packet into the HMAC without copying it; the result aliases s.sum.
func (sa *SA) icv(s *scratch, pkt []byte, l layout, seq uint64) []byte {
	s.mac.Reset()
	if !l.ipv6 {
		hdr := s.hdr[:l.ipHeaderLen]
		copy(hdr, pkt)
		hdr[v4OffTOS] = 0
		hdr[v4OffFlagsFrag], hdr[v4OffFlagsFrag+1] = 0, 0
		hdr[v4OffTTL] = 0
		hdr[v4OffChecksum], hdr[v4OffChecksum+1] = 0, 0
		zeroMutableV4Options(hdr[ipv4MinHeader:])
		s.mac.Write(hdr)
	} else {
		hdr := s.hdr[:ipv6HeaderLen]
		copy(hdr, pkt)
		hdr[0] &= 0xf0 // keep the version, zero traffic class and flow label
		hdr[1], hdr[2], hdr[3] = 0, 0, 0
		hdr[v6OffHopLimit] = 0
		s.mac.Write(hdr)
		nh := pkt[v6OffNextHeader]
		for off := ipv6HeaderLen; off < l.ahOff; {
			hlen := (int(pkt[off+1]) + 1) * extHdrUnit
			ext := pkt[off : off+hlen]
			if nh == protoRouting {
				s.mac.Write(ext) // as predicted by the sender: parse admitted it only when final
			} else {
				sa.writeV6Options(s, ext)
			}
			nh = ext[0]
			off += hlen
		}
	}
	ah := pkt[l.ahOff : l.ahOff+sa.ahLen(l.ipv6)]
	s.mac.Write(ah[:ahFixedLen])
	s.mac.Write(s.zeros[:sa.icvLen])
	s.mac.Write(ah[ahFixedLen+sa.icvLen:]) // ICV padding, as transmitted
	s.mac.Write(pkt[l.ahOff+len(ah) : l.end])
	if sa.esn {
		binary.BigEndian.PutUint32(s.seqHi[:], uint32(seq>>32))
		s.mac.Write(s.seqHi[:])
	}
	return s.mac.Sum(s.sum[:0])[:sa.icvLen]
}

// writeV6Options feeds a hop-by-hop or destination options header to the MAC with the data of
// options whose type has the "may change en route" bit replaced by zeros (RFC 4302 §3.3.3.1.2.2);
// option type and length stay included.
func (sa *SA) writeV6Options(s *scratch, ext []byte) {
	s.mac.Write(ext[:2])
	opts := ext[2:]
	start := 0 // beginning of the bytes not yet written
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == v6OptPad1 {
			i++
			continue
		}
		n := int(opts[i+1])
		if t&v6OptMutableBit != 0 {
			s.mac.Write(opts[start : i+2])
			for left := n; left > 0; {
				chunk := min(left, len(s.zeros))
				s.mac.Write(s.zeros[:chunk])
				left -= chunk
			}
			start = i + 2 + n
		}
		i += 2 + n
	}
	s.mac.Write(opts[start:])
}

// zeroMutableV4Options zeroes, in a copy of the options, every option that is not immutable.
func zeroMutableV4Options(opts []byte) {
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == v4OptEOL {
			return
		}
		if t == v4OptNOP {
			i++
			continue
		}
		n := int(opts[i+1])
		if !v4OptionImmutable(t) {
			clear(opts[i : i+n])
		}
		i += n
	}
}

// ipv4Checksum is the RFC 791 header checksum over hdr (whose checksum field is zero).
func ipv4Checksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// RemoveAH rebuilds a transport-mode packet in place from a packet Open verified: the AH header
// is cut out, the Protocol/Next Header byte that named AH now names r.NextHeader, and the length
// fields (and IPv4 header checksum) are updated. It returns the shortened packet.
func RemoveAH(pkt []byte, r Result) []byte {
	end := r.AHOffset + r.AHLen + len(r.Payload)
	pkt = pkt[:end]
	copy(pkt[r.AHOffset:], pkt[r.AHOffset+r.AHLen:])
	pkt = pkt[:end-r.AHLen]
	pkt[r.PrevNextHeaderOffset] = r.NextHeader
	if r.IPv6 {
		binary.BigEndian.PutUint16(pkt[v6OffPayloadLen:], uint16(len(pkt)-ipv6HeaderLen))
		return pkt
	}
	binary.BigEndian.PutUint16(pkt[v4OffTotalLen:], uint16(len(pkt)))
	ihl := int(pkt[v4OffVerIHL]&0x0f) * 4
	binary.BigEndian.PutUint16(pkt[v4OffChecksum:], 0)
	binary.BigEndian.PutUint16(pkt[v4OffChecksum:], ipv4Checksum(pkt[:ihl]))
	return pkt
}
