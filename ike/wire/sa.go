package wire

import (
	"encoding/binary"
	"fmt"
)

// Offsets of the Proposal substructure (RFC 7296 §3.3.1).
const (
	propLastOff         = 0
	propLengthOff       = 2
	propNumberOff       = 4
	propProtocolOff     = 5
	propSPISizeOff      = 6
	propNumTransformOff = 7
	propHeaderLen       = 8
	propMore            = 2 // Last Substruc value when another proposal follows
)

// Offsets of the Transform substructure (RFC 7296 §3.3.2).
const (
	xfLastOff   = 0
	xfLengthOff = 2
	xfTypeOff   = 4
	xfIDOff     = 6
	xfHeaderLen = 8
	xfMore      = 3 // Last Substruc value when another transform follows
)

// Offsets of a transform attribute (RFC 7296 §3.3.5).
const (
	attrTypeOff   = 0
	attrLengthOff = 2 // TLV: Attribute Length; TV: the value itself
	attrHeaderLen = 4
	attrTVBit     = 0x8000 // AF bit: Type/Value format
	attrTVLen     = 2      // value length of the TV format
	lastSubstruc  = 0      // Last Substruc value of the last substructure
)

// SA is the Security Association payload: proposals in order of
// preference (RFC 7296 §3.3).
type SA struct {
	Proposals []Proposal
}

// Proposal is one proposal of an SA payload (RFC 7296 §3.3.1). SPI is
// empty for an initial IKE SA, 8 bytes when rekeying an IKE SA and 4
// bytes for AH and ESP.
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// Transform is one transform of a proposal (RFC 7296 §3.3.2). ID is the
// transform ID within Type (the ike/suite constants).
type Transform struct {
	Type       TransformType
	ID         uint16
	Attributes []Attribute
}

// Attribute is a transform attribute (RFC 7296 §3.3.5). TV selects the
// short Type/Value format, whose Value is exactly two bytes; otherwise the
// attribute is Type/Length/Value.
type Attribute struct {
	Type  AttributeType
	TV    bool
	Value []byte
}

// KeyLengthAttribute is the Key Length attribute in the TV format RFC 7296
// §3.3.5 prescribes.
func KeyLengthAttribute(bits uint16) Attribute {
	return Attribute{Type: AttrKeyLength, TV: true, Value: binary.BigEndian.AppendUint16(nil, bits)}
}

// KeyLength returns the Key Length attribute of t, if it has one in TV
// format.
func (t *Transform) KeyLength() (bits uint16, ok bool) {
	for _, a := range t.Attributes {
		if a.Type == AttrKeyLength && a.TV && len(a.Value) == attrTVLen {
			return binary.BigEndian.Uint16(a.Value), true
		}
	}
	return 0, false
}

// Type implements Payload.
func (p *SA) Type() PayloadType { return PayloadSA }

// checkSPISize enforces the SPI sizes RFC 7296 §3.3.1 gives for the known
// protocols; other protocols' sizes are taken as they come.
func checkSPISize(proto ProtocolID, size int) error {
	switch proto {
	case ProtoIKE:
		if size != 0 && size != spiSizeIKE {
			return fmt.Errorf("IKE proposal with SPI Size %d, want 0 or %d", size, spiSizeIKE)
		}
	case ProtoAH, ProtoESP:
		if size != spiSizeChild {
			return fmt.Errorf("protocol %d proposal with SPI Size %d, want %d", proto, size, spiSizeChild)
		}
	}
	return nil
}

func decodeSA(body []byte, base int) (*SA, error) {
	if len(body) == 0 {
		return nil, syntaxError(base, "SA payload has no proposal")
	}
	sa := &SA{}
	for off := 0; off < len(body); {
		if len(body)-off < propHeaderLen {
			return nil, syntaxError(base+off, "proposal header needs %d bytes, %d left", propHeaderLen, len(body)-off)
		}
		length := int(binary.BigEndian.Uint16(body[off+propLengthOff:]))
		if length < propHeaderLen || length > len(body)-off {
			return nil, syntaxError(base+off+propLengthOff, "Proposal Length %d outside %d..%d", length, propHeaderLen, len(body)-off)
		}
		if err := checkLast(body[off+propLastOff], propMore, off+length == len(body)); err != nil {
			return nil, syntaxError(base+off+propLastOff, "proposal: %v", err)
		}
		p, err := decodeProposal(body[off:off+length], base+off)
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, p)
		off += length
	}
	return sa, nil
}

// checkLast checks a Last Substruc field against where the substructure
// ends: lastSubstruc for the last one, more for every other.
func checkLast(v, more byte, isLast bool) error {
	switch {
	case isLast && v != lastSubstruc:
		return fmt.Errorf("Last Substruc %d on the last substructure, want %d", v, lastSubstruc)
	case !isLast && v != more:
		return fmt.Errorf("Last Substruc %d but more follow, want %d", v, more)
	}
	return nil
}

// decodeProposal decodes one proposal b (its header included), whose
// Proposal Length has been checked to equal len(b).
func decodeProposal(b []byte, base int) (Proposal, error) {
	p := Proposal{Number: b[propNumberOff], Protocol: ProtocolID(b[propProtocolOff])}
	spiSize := int(b[propSPISizeOff])
	numTransforms := int(b[propNumTransformOff])
	// Room for what the header announces (at most 255, and no more than the bytes can hold):
	// one allocation per proposal instead of the appends' growth steps.
	p.Transforms = make([]Transform, 0, min(numTransforms, len(b)/xfHeaderLen))
	if err := checkSPISize(p.Protocol, spiSize); err != nil {
		return p, syntaxError(base+propSPISizeOff, "%v", err)
	}
	if spiSize > len(b)-propHeaderLen {
		return p, syntaxError(base+propSPISizeOff, "SPI Size %d exceeds the %d bytes after the proposal header", spiSize, len(b)-propHeaderLen)
	}
	if spiSize > 0 {
		p.SPI = b[propHeaderLen : propHeaderLen+spiSize]
	}
	off := propHeaderLen + spiSize
	for off < len(b) {
		if len(b)-off < xfHeaderLen {
			return p, syntaxError(base+off, "transform header needs %d bytes, %d left in the proposal", xfHeaderLen, len(b)-off)
		}
		length := int(binary.BigEndian.Uint16(b[off+xfLengthOff:]))
		if length < xfHeaderLen || length > len(b)-off {
			return p, syntaxError(base+off+xfLengthOff, "Transform Length %d outside %d..%d", length, xfHeaderLen, len(b)-off)
		}
		if err := checkLast(b[off+xfLastOff], xfMore, off+length == len(b)); err != nil {
			return p, syntaxError(base+off+xfLastOff, "transform: %v", err)
		}
		t, err := decodeTransform(b[off:off+length], base+off)
		if err != nil {
			return p, err
		}
		p.Transforms = append(p.Transforms, t)
		off += length
	}
	if len(p.Transforms) != numTransforms {
		return p, syntaxError(base+propNumTransformOff, "Num Transforms %d but the proposal holds %d", numTransforms, len(p.Transforms))
	}
	return p, nil
}

func decodeTransform(b []byte, base int) (Transform, error) {
	t := Transform{Type: TransformType(b[xfTypeOff]), ID: binary.BigEndian.Uint16(b[xfIDOff:])}
	for off := xfHeaderLen; off < len(b); {
		if len(b)-off < attrHeaderLen {
			return t, syntaxError(base+off, "attribute header needs %d bytes, %d left in the transform", attrHeaderLen, len(b)-off)
		}
		typ := binary.BigEndian.Uint16(b[off+attrTypeOff:])
		a := Attribute{Type: AttributeType(typ &^ attrTVBit), TV: typ&attrTVBit != 0}
		if a.TV {
			a.Value = b[off+attrLengthOff : off+attrHeaderLen]
			off += attrHeaderLen
		} else {
			length := int(binary.BigEndian.Uint16(b[off+attrLengthOff:]))
			if length > len(b)-off-attrHeaderLen {
				return t, syntaxError(base+off+attrLengthOff, "Attribute Length %d exceeds the %d bytes left in the transform", length, len(b)-off-attrHeaderLen)
			}
			a.Value = b[off+attrHeaderLen : off+attrHeaderLen+length]
			off += attrHeaderLen + length
		}
		t.Attributes = append(t.Attributes, a)
	}
	return t, nil
}

func (p *SA) appendBody(b []byte) ([]byte, error) {
	if len(p.Proposals) == 0 {
		return nil, encodeError("SA payload has no proposal")
	}
	for i := range p.Proposals {
		prop := &p.Proposals[i]
		if err := checkSPISize(prop.Protocol, len(prop.SPI)); err != nil {
			return nil, encodeError("proposal %d: %v", i, err)
		}
		if len(prop.SPI) > 0xff {
			return nil, encodeError("proposal %d: SPI of %d bytes", i, len(prop.SPI))
		}
		if len(prop.Transforms) > 0xff {
			return nil, encodeError("proposal %d: %d transforms exceed the 8-bit count", i, len(prop.Transforms))
		}
		last := byte(propMore)
		if i == len(p.Proposals)-1 {
			last = lastSubstruc
		}
		start := len(b)
		b = append(b, last, 0, 0, 0, prop.Number, byte(prop.Protocol), byte(len(prop.SPI)), byte(len(prop.Transforms)))
		b = append(b, prop.SPI...)
		for j := range prop.Transforms {
			var err error
			if b, err = appendTransform(b, &prop.Transforms[j], j == len(prop.Transforms)-1); err != nil {
				return nil, encodeError("proposal %d transform %d: %v", i, j, err)
			}
		}
		if err := putLen16(b, start+propLengthOff, len(b)-start); err != nil {
			return nil, encodeError("proposal %d: %v", i, err)
		}
	}
	return b, nil
}

func appendTransform(b []byte, t *Transform, isLast bool) ([]byte, error) {
	last := byte(xfMore)
	if isLast {
		last = lastSubstruc
	}
	start := len(b)
	b = append(b, last, 0, 0, 0, byte(t.Type), 0)
	b = binary.BigEndian.AppendUint16(b, t.ID)
	for _, a := range t.Attributes {
		if a.Type&attrTVBit != 0 {
			return nil, fmt.Errorf("attribute type %#x does not fit in 15 bits", uint16(a.Type))
		}
		if a.TV {
			if len(a.Value) != attrTVLen {
				return nil, fmt.Errorf("TV attribute %d with a %d-byte value, want %d", a.Type, len(a.Value), attrTVLen)
			}
			b = binary.BigEndian.AppendUint16(b, uint16(a.Type)|attrTVBit)
			b = append(b, a.Value...)
			continue
		}
		if len(a.Value) > 0xffff {
			return nil, fmt.Errorf("attribute %d value of %d bytes", a.Type, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(a.Type))
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, putLen16(b, start+xfLengthOff, len(b)-start)
}

// putLen16 writes a 16-bit length field at b[off:].
func putLen16(b []byte, off, length int) error {
	if length > 0xffff {
		return fmt.Errorf("length %d exceeds 16 bits", length)
	}
	binary.BigEndian.PutUint16(b[off:], uint16(length))
	return nil
}
