package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Offsets of the Traffic Selector payload and of one selector
// (RFC 7296 §3.13, §3.13.1).
const (
	tsNumOff       = 0
	tsHeaderLen    = 4 // Number of TSs and RESERVED
	selTypeOff     = 0
	selProtoOff    = 1
	selLengthOff   = 2
	selHeaderLen   = 4 // TS Type, IP Protocol ID, Selector Length
	selStartPort   = 4
	selEndPort     = 6
	selAddrOff     = 8
	selIPv4Len     = selAddrOff + 2*4  // 16
	selIPv6Len     = selAddrOff + 2*16 // 40
	maxSelectorLen = 0xffff
)

// TrafficSelectors is the body shared by TSi and TSr; it is not a Payload
// itself.
type TrafficSelectors struct {
	Selectors []TrafficSelector
}

// TSi is the initiator's Traffic Selector payload (RFC 7296 §3.13).
type TSi TrafficSelectors

// TSr is the responder's Traffic Selector payload.
type TSr TrafficSelectors

// Type implements Payload.
func (p *TSi) Type() PayloadType { return PayloadTSi }

// Type implements Payload.
func (p *TSr) Type() PayloadType { return PayloadTSr }

func (p *TSi) appendBody(b []byte) ([]byte, error) { return (*TrafficSelectors)(p).appendBody(b) }
func (p *TSr) appendBody(b []byte) ([]byte, error) { return (*TrafficSelectors)(p).appendBody(b) }

// TrafficSelector is one selector (RFC 7296 §3.13.1). For
// TS_IPV4_ADDR_RANGE and TS_IPV6_ADDR_RANGE the address range and ports are
// decoded; for other TS types (RFC 9478 security labels, future ones) Raw
// keeps the bytes after the Selector Length field and the other fields are
// zero.
type TrafficSelector struct {
	TSType     TSType
	IPProtocol uint8 // 0 means any protocol
	StartPort  uint16
	EndPort    uint16
	Start, End netip.Addr
	Raw        []byte
}

func decodeTS(body []byte, base int) (*TrafficSelectors, error) {
	if len(body) < tsHeaderLen {
		return nil, syntaxError(base, "TS body of %d bytes is shorter than %d", len(body), tsHeaderLen)
	}
	num := int(body[tsNumOff])
	p := &TrafficSelectors{}
	off := tsHeaderLen
	for off < len(body) {
		if len(body)-off < selHeaderLen {
			return nil, syntaxError(base+off, "traffic selector header needs %d bytes, %d left", selHeaderLen, len(body)-off)
		}
		length := int(binary.BigEndian.Uint16(body[off+selLengthOff:]))
		if length < selHeaderLen || length > len(body)-off {
			return nil, syntaxError(base+off+selLengthOff, "Selector Length %d outside %d..%d", length, selHeaderLen, len(body)-off)
		}
		s, err := decodeSelector(body[off:off+length], base+off)
		if err != nil {
			return nil, err
		}
		p.Selectors = append(p.Selectors, s)
		off += length
	}
	if len(p.Selectors) != num {
		return nil, syntaxError(base+tsNumOff, "Number of TSs %d but the payload holds %d", num, len(p.Selectors))
	}
	return p, nil
}

// decodeSelector decodes one selector b whose Selector Length equals len(b).
func decodeSelector(b []byte, base int) (TrafficSelector, error) {
	s := TrafficSelector{TSType: TSType(b[selTypeOff])}
	var addrLen int
	switch s.TSType {
	case TSIPv4AddrRange:
		addrLen = 4
	case TSIPv6AddrRange:
		addrLen = 16
	default:
		s.IPProtocol = b[selProtoOff]
		s.Raw = b[selHeaderLen:]
		return s, nil
	}
	if want := selAddrOff + 2*addrLen; len(b) != want {
		return s, syntaxError(base+selLengthOff, "Selector Length %d for TS type %d, want %d", len(b), s.TSType, want)
	}
	s.IPProtocol = b[selProtoOff]
	s.StartPort = binary.BigEndian.Uint16(b[selStartPort:])
	s.EndPort = binary.BigEndian.Uint16(b[selEndPort:])
	s.Start, _ = netip.AddrFromSlice(b[selAddrOff : selAddrOff+addrLen])
	s.End, _ = netip.AddrFromSlice(b[selAddrOff+addrLen : selAddrOff+2*addrLen])
	return s, nil
}

func (p *TrafficSelectors) appendBody(b []byte) ([]byte, error) {
	if len(p.Selectors) > 0xff {
		return nil, encodeError("%d traffic selectors exceed the 8-bit count", len(p.Selectors))
	}
	b = append(b, byte(len(p.Selectors)), 0, 0, 0)
	for i := range p.Selectors {
		var err error
		if b, err = p.Selectors[i].appendTo(b); err != nil {
			return nil, encodeError("traffic selector %d: %v", i, err)
		}
	}
	return b, nil
}

func (s *TrafficSelector) appendTo(b []byte) ([]byte, error) {
	var want func(netip.Addr) bool
	switch s.TSType {
	case TSIPv4AddrRange:
		want = netip.Addr.Is4
	case TSIPv6AddrRange:
		want = netip.Addr.Is6
	default:
		if selHeaderLen+len(s.Raw) > maxSelectorLen {
			return nil, fmt.Errorf("TS type %d body of %d bytes", s.TSType, len(s.Raw))
		}
		b = append(b, byte(s.TSType), s.IPProtocol)
		b = binary.BigEndian.AppendUint16(b, uint16(selHeaderLen+len(s.Raw)))
		return append(b, s.Raw...), nil
	}
	// Is6 accepts IPv4-mapped addresses, which are 16 bytes on the wire
	// too; Is4 rejects them, so no address changes size.
	if !want(s.Start) || !want(s.End) {
		return nil, fmt.Errorf("TS type %d with addresses %v and %v of the wrong family", s.TSType, s.Start, s.End)
	}
	start, end := s.Start.AsSlice(), s.End.AsSlice()
	b = append(b, byte(s.TSType), s.IPProtocol)
	b = binary.BigEndian.AppendUint16(b, uint16(selAddrOff+len(start)+len(end)))
	b = binary.BigEndian.AppendUint16(b, s.StartPort)
	b = binary.BigEndian.AppendUint16(b, s.EndPort)
	b = append(b, start...)
	return append(b, end...), nil
}
