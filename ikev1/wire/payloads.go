package wire

import (
	"encoding/binary"
	"fmt"
)

// PayloadType is an ISAKMP payload type (RFC 2408 §3.1, RFC 3947 §3.2 and §5.2).
type PayloadType uint8

// Payload types.
const (
	PayloadNone         PayloadType = 0
	PayloadSA           PayloadType = 1
	PayloadProposal     PayloadType = 2
	PayloadTransform    PayloadType = 3
	PayloadKE           PayloadType = 4
	PayloadID           PayloadType = 5
	PayloadCert         PayloadType = 6
	PayloadCertReq      PayloadType = 7
	PayloadHash         PayloadType = 8
	PayloadSig          PayloadType = 9
	PayloadNonce        PayloadType = 10
	PayloadNotify       PayloadType = 11
	PayloadDelete       PayloadType = 12
	PayloadVendorID     PayloadType = 13
	PayloadAttributes   PayloadType = 14 // Mode Config (draft-ietf-ipsec-isakmp-mode-cfg-05 §3.2)
	PayloadNATD         PayloadType = 20 // RFC 3947 §3.2
	PayloadNATOA        PayloadType = 21 // RFC 3947 §5.2
	PayloadNATDDraft    PayloadType = 130
	PayloadNATOADraft   PayloadType = 131
	payloadGenericLen               = 4
	maxPayloadsPerChain             = 256
)

var payloadNames = map[PayloadType]string{
	PayloadSA: "SA", PayloadProposal: "P", PayloadTransform: "T", PayloadKE: "KE", PayloadID: "ID", PayloadCert: "CERT",
	PayloadCertReq: "CERTREQ", PayloadHash: "HASH", PayloadSig: "SIG", PayloadNonce: "No", PayloadNotify: "N",
	PayloadDelete: "D", PayloadVendorID: "V", PayloadAttributes: "CPV1", PayloadNATD: "NAT-D", PayloadNATOA: "NAT-OA",
	PayloadNATDDraft: "NAT-D", PayloadNATOADraft: "NAT-OA",
}

func (t PayloadType) String() string {
	if s, ok := payloadNames[t]; ok {
		return s
	}
	return fmt.Sprintf("PAYLOAD(%d)", uint8(t))
}

// Payload is one decoded payload.
type Payload interface {
	Type() PayloadType
	// Raw is the payload as received, generic header included (nil for a payload built locally
	// and not yet encoded).
	Raw() []byte
	appendBody(b []byte) []byte
}

type raw struct{ b []byte }

func (r *raw) Raw() []byte { return r.b }

// Body returns a payload's body (Raw without the generic header), the "_b" of RFC 2409 §5.
func Body(p Payload) []byte {
	if r := p.Raw(); len(r) >= payloadGenericLen {
		return r[payloadGenericLen:]
	}
	return p.appendBody(nil)
}

// --- SA, proposals, transforms (RFC 2408 §3.4–3.6) ---

// SA is the Security Association payload. IKEv1 uses the IPsec DOI (1) with the situation
// SIT_IDENTITY_ONLY (RFC 2407 §4.2, §4.6.1).
type SA struct {
	raw
	DOI       uint32
	Situation uint32
	Proposals []Proposal
}

// DOIIPsec is the IPsec Domain of Interpretation (RFC 2407 §4.2).
const DOIIPsec = 1

// SituationIdentityOnly is SIT_IDENTITY_ONLY (RFC 2407 §4.2).
const SituationIdentityOnly = 1

// Proposal is a Proposal payload inside an SA payload. Proposals with the same number form one
// proposal together (for example ESP and AH); different numbers are alternatives (RFC 2408 §4.2).
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// Transform is a Transform payload: an algorithm and its attributes.
type Transform struct {
	Number uint8
	ID     uint8
	Attrs  []Attr
}

// ProtocolID is an IPsec DOI protocol identifier (RFC 2407 §4.4.1).
type ProtocolID uint8

// Protocols.
const (
	ProtoISAKMP ProtocolID = 1
	ProtoAH     ProtocolID = 2
	ProtoESP    ProtocolID = 3
	ProtoIPComp ProtocolID = 4
)

func (p ProtocolID) String() string {
	switch p {
	case ProtoISAKMP:
		return "ISAKMP"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	case ProtoIPComp:
		return "IPCOMP"
	}
	return fmt.Sprintf("PROTO(%d)", uint8(p))
}

func (*SA) Type() PayloadType { return PayloadSA }

func (p *SA) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = binary.BigEndian.AppendUint32(b, p.Situation)
	for i, pr := range p.Proposals {
		start := len(b)
		next := PayloadProposal
		if i == len(p.Proposals)-1 {
			next = PayloadNone
		}
		b = append(b, byte(next), 0, 0, 0, pr.Number, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
		b = append(b, pr.SPI...)
		for j, t := range pr.Transforms {
			tstart := len(b)
			tnext := PayloadTransform
			if j == len(pr.Transforms)-1 {
				tnext = PayloadNone
			}
			b = append(b, byte(tnext), 0, 0, 0, t.Number, t.ID, 0, 0)
			b = appendAttrs(b, t.Attrs)
			binary.BigEndian.PutUint16(b[tstart+2:], uint16(len(b)-tstart))
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	return b
}

func decodeSA(body []byte, base int) (*SA, error) {
	if len(body) < 8 {
		return nil, errorf(base, "SA payload body of %d bytes, want at least 8", len(body))
	}
	sa := &SA{DOI: binary.BigEndian.Uint32(body), Situation: binary.BigEndian.Uint32(body[4:])}
	if sa.DOI != DOIIPsec {
		// RFC 2407 §4.6.1: the situation's length depends on the DOI; only the IPsec DOI is known.
		return nil, &Error{Offset: base, Msg: fmt.Sprintf("DOI %d, want the IPsec DOI", sa.DOI), Notify: DOINotSupported}
	}
	rest, off := body[8:], base+8
	next := PayloadProposal
	for len(rest) > 0 {
		if next != PayloadProposal {
			return nil, errorf(off, "%d bytes after the last proposal", len(rest))
		}
		if len(rest) < 8 {
			return nil, errorf(off, "proposal of %d bytes, want at least 8", len(rest))
		}
		plen := int(binary.BigEndian.Uint16(rest[2:]))
		if plen < 8 || plen > len(rest) {
			return nil, errorf(off, "proposal length %d, %d bytes left", plen, len(rest))
		}
		next = PayloadType(rest[0])
		if next != PayloadProposal && next != PayloadNone {
			return nil, errorf(off, "proposal followed by payload type %d", next)
		}
		pr := Proposal{Number: rest[4], Protocol: ProtocolID(rest[5])}
		spiLen, nt := int(rest[6]), int(rest[7])
		if 8+spiLen > plen {
			return nil, errorf(off+6, "SPI of %d bytes in a proposal of %d", spiLen, plen)
		}
		pr.SPI = rest[8 : 8+spiLen]
		trest, toff := rest[8+spiLen:plen], off+8+spiLen
		tnext := PayloadTransform
		for len(trest) > 0 {
			if tnext != PayloadTransform {
				return nil, errorf(toff, "%d bytes after the last transform", len(trest))
			}
			if len(trest) < 8 {
				return nil, errorf(toff, "transform of %d bytes, want at least 8", len(trest))
			}
			tlen := int(binary.BigEndian.Uint16(trest[2:]))
			if tlen < 8 || tlen > len(trest) {
				return nil, errorf(toff, "transform length %d, %d bytes left", tlen, len(trest))
			}
			tnext = PayloadType(trest[0])
			if tnext != PayloadTransform && tnext != PayloadNone {
				return nil, errorf(toff, "transform followed by payload type %d", tnext)
			}
			attrs, err := decodeAttrs(trest[8:tlen], toff+8)
			if err != nil {
				return nil, err
			}
			pr.Transforms = append(pr.Transforms, Transform{Number: trest[4], ID: trest[5], Attrs: attrs})
			trest, toff = trest[tlen:], toff+tlen
		}
		if tnext != PayloadNone {
			return nil, errorf(toff, "last transform announces another")
		}
		if len(pr.Transforms) != nt {
			return nil, errorf(off+7, "proposal announces %d transforms, has %d", nt, len(pr.Transforms))
		}
		sa.Proposals = append(sa.Proposals, pr)
		rest, off = rest[plen:], off+plen
	}
	if next != PayloadNone {
		return nil, errorf(off, "last proposal announces another")
	}
	return sa, nil
}

// --- data attributes (RFC 2408 §3.3) ---

// Attr is a data attribute. Basic (TV) attributes carry a 16-bit value in Value; variable (TLV)
// ones carry Data.
type Attr struct {
	Type  uint16
	Basic bool
	Value uint16
	Data  []byte
}

// Uint returns the attribute's value as a number: a basic one's Value, a variable one's Data read
// big-endian (at most 8 bytes).
func (a Attr) Uint() (uint64, bool) {
	if a.Basic {
		return uint64(a.Value), true
	}
	if len(a.Data) == 0 || len(a.Data) > 8 {
		return 0, false
	}
	var v uint64
	for _, c := range a.Data {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// BasicAttr returns a TV attribute.
func BasicAttr(t, v uint16) Attr { return Attr{Type: t, Basic: true, Value: v} }

// UintAttr returns a TV attribute when v fits in 16 bits and a 4-byte TLV one otherwise (how
// lifetimes are sent, RFC 2409 Appendix A).
func UintAttr(t uint16, v uint64) Attr {
	if v <= 0xffff {
		return BasicAttr(t, uint16(v))
	}
	if v <= 0xffffffff {
		return Attr{Type: t, Data: binary.BigEndian.AppendUint32(nil, uint32(v))}
	}
	return Attr{Type: t, Data: binary.BigEndian.AppendUint64(nil, v)}
}

const attrFormatBit = 0x8000

// AppendAttrs appends encoded data attributes (the RESPONDER-LIFETIME notify carries them as its
// data, RFC 2407 §4.6.3.1).
func AppendAttrs(b []byte, attrs []Attr) []byte { return appendAttrs(b, attrs) }

// DecodeAttrs decodes a sequence of data attributes.
func DecodeAttrs(b []byte) ([]Attr, error) { return decodeAttrs(b, 0) }

func appendAttrs(b []byte, attrs []Attr) []byte {
	for _, a := range attrs {
		if a.Basic {
			b = binary.BigEndian.AppendUint16(b, a.Type|attrFormatBit)
			b = binary.BigEndian.AppendUint16(b, a.Value)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, a.Type&^attrFormatBit)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Data)))
		b = append(b, a.Data...)
	}
	return b
}

func decodeAttrs(b []byte, base int) ([]Attr, error) {
	var out []Attr
	off := 0
	for off < len(b) {
		if len(b)-off < 4 {
			return nil, errorf(base+off, "attribute of %d bytes, want at least 4", len(b)-off)
		}
		t := binary.BigEndian.Uint16(b[off:])
		v := binary.BigEndian.Uint16(b[off+2:])
		if t&attrFormatBit != 0 {
			out = append(out, Attr{Type: t &^ attrFormatBit, Basic: true, Value: v})
			off += 4
			continue
		}
		if int(v) > len(b)-off-4 {
			return nil, errorf(base+off, "attribute of %d bytes, %d left", v, len(b)-off-4)
		}
		out = append(out, Attr{Type: t, Data: b[off+4 : off+4+int(v)]})
		off += 4 + int(v)
	}
	return out, nil
}

// --- simple payloads ---

// KE is the Key Exchange payload.
type KE struct {
	raw
	Data []byte
}

// Nonce is the Nonce payload.
type Nonce struct {
	raw
	Data []byte
}

// Hash is the Hash payload.
type Hash struct {
	raw
	Data []byte
}

// Sig is the Signature payload.
type Sig struct {
	raw
	Data []byte
}

// VendorID is the Vendor ID payload.
type VendorID struct {
	raw
	Data []byte
}

// NATD is the NAT-D payload (RFC 3947 §3.2); Draft says it is the pre-RFC type 130.
type NATD struct {
	raw
	Hash  []byte
	Draft bool
}

func (*KE) Type() PayloadType       { return PayloadKE }
func (*Nonce) Type() PayloadType    { return PayloadNonce }
func (*Hash) Type() PayloadType     { return PayloadHash }
func (*Sig) Type() PayloadType      { return PayloadSig }
func (*VendorID) Type() PayloadType { return PayloadVendorID }
func (p *NATD) Type() PayloadType {
	if p.Draft {
		return PayloadNATDDraft
	}
	return PayloadNATD
}

func (p *KE) appendBody(b []byte) []byte       { return append(b, p.Data...) }
func (p *Nonce) appendBody(b []byte) []byte    { return append(b, p.Data...) }
func (p *Hash) appendBody(b []byte) []byte     { return append(b, p.Data...) }
func (p *Sig) appendBody(b []byte) []byte      { return append(b, p.Data...) }
func (p *VendorID) appendBody(b []byte) []byte { return append(b, p.Data...) }
func (p *NATD) appendBody(b []byte) []byte     { return append(b, p.Hash...) }

// --- identification (RFC 2408 §3.8, RFC 2407 §4.6.2) ---

// ID is the Identification payload in the IPsec DOI's form: type, protocol, port, data.
type ID struct {
	raw
	IDType   IDType
	Protocol uint8
	Port     uint16
	Data     []byte
}

// IDType is an IPsec DOI identification type (RFC 2407 §4.6.2.1).
type IDType uint8

// Identification types.
const (
	IDIPv4Addr     IDType = 1
	IDFQDN         IDType = 2
	IDUserFQDN     IDType = 3
	IDIPv4Subnet   IDType = 4
	IDIPv6Addr     IDType = 5
	IDIPv6Subnet   IDType = 6
	IDIPv4Range    IDType = 7
	IDIPv6Range    IDType = 8
	IDDERASN1DN    IDType = 9
	IDDERASN1GN    IDType = 10
	IDKeyID        IDType = 11
	idDataSizeIPv4        = 4
	idDataSizeIPv6        = 16
)

func (*ID) Type() PayloadType { return PayloadID }

func (p *ID) appendBody(b []byte) []byte {
	b = append(b, byte(p.IDType), p.Protocol)
	b = binary.BigEndian.AppendUint16(b, p.Port)
	return append(b, p.Data...)
}

func decodeID(body []byte, base int) (*ID, error) {
	if len(body) < 4 {
		return nil, errorf(base, "ID payload body of %d bytes, want at least 4", len(body))
	}
	id := &ID{IDType: IDType(body[0]), Protocol: body[1], Port: binary.BigEndian.Uint16(body[2:]), Data: body[4:]}
	want := 0
	switch id.IDType {
	case IDIPv4Addr:
		want = idDataSizeIPv4
	case IDIPv6Addr:
		want = idDataSizeIPv6
	case IDIPv4Subnet, IDIPv4Range:
		want = 2 * idDataSizeIPv4
	case IDIPv6Subnet, IDIPv6Range:
		want = 2 * idDataSizeIPv6
	}
	if want != 0 && len(id.Data) != want {
		return nil, &Error{Offset: base + 4, Msg: fmt.Sprintf("ID type %d with %d bytes of data, want %d", id.IDType, len(id.Data), want), Notify: InvalidIDInformation}
	}
	return id, nil
}

// --- certificates (RFC 2408 §3.9, §3.10) ---

// Cert is the Certificate payload.
type Cert struct {
	raw
	Encoding uint8
	Data     []byte
}

// CertReq is the Certificate Request payload.
type CertReq struct {
	raw
	Encoding  uint8
	Authority []byte
}

// Certificate encodings (RFC 2408 §3.9).
const (
	CertX509Sig = 4
	CertCRL     = 7
)

func (*Cert) Type() PayloadType               { return PayloadCert }
func (*CertReq) Type() PayloadType            { return PayloadCertReq }
func (p *Cert) appendBody(b []byte) []byte    { return append(append(b, p.Encoding), p.Data...) }
func (p *CertReq) appendBody(b []byte) []byte { return append(append(b, p.Encoding), p.Authority...) }

// --- notification and delete (RFC 2408 §3.14, §3.15) ---

// Notify is the Notification payload.
type Notify struct {
	raw
	DOI        uint32
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }

func (p *Notify) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = append(b, byte(p.Protocol), byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(p.NotifyType))
	b = append(b, p.SPI...)
	return append(b, p.Data...)
}

func decodeNotify(body []byte, base int) (*Notify, error) {
	if len(body) < 8 {
		return nil, errorf(base, "Notification body of %d bytes, want at least 8", len(body))
	}
	spiLen := int(body[5])
	if 8+spiLen > len(body) {
		return nil, errorf(base+5, "SPI of %d bytes in a Notification body of %d", spiLen, len(body))
	}
	return &Notify{DOI: binary.BigEndian.Uint32(body), Protocol: ProtocolID(body[4]), NotifyType: NotifyType(binary.BigEndian.Uint16(body[6:])),
		SPI: body[8 : 8+spiLen], Data: body[8+spiLen:]}, nil
}

// Delete is the Delete payload. ISAKMP SAs are named by their two cookies (a 16-byte SPI).
type Delete struct {
	raw
	DOI      uint32
	Protocol ProtocolID
	SPISize  uint8
	SPIs     [][]byte
}

func (*Delete) Type() PayloadType { return PayloadDelete }

func (p *Delete) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = append(b, byte(p.Protocol), p.SPISize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		b = append(b, s...)
	}
	return b
}

func decodeDelete(body []byte, base int) (*Delete, error) {
	if len(body) < 8 {
		return nil, errorf(base, "Delete body of %d bytes, want at least 8", len(body))
	}
	d := &Delete{DOI: binary.BigEndian.Uint32(body), Protocol: ProtocolID(body[4]), SPISize: body[5]}
	n := int(binary.BigEndian.Uint16(body[6:]))
	if n*int(d.SPISize) != len(body)-8 {
		return nil, errorf(base+6, "Delete of %d SPIs of %d bytes in %d bytes", n, d.SPISize, len(body)-8)
	}
	if d.SPISize == 0 && n > 0 {
		return nil, errorf(base+5, "Delete of %d SPIs of size 0", n)
	}
	for i := range n {
		s := int(d.SPISize)
		d.SPIs = append(d.SPIs, body[8+i*s:8+(i+1)*s])
	}
	return d, nil
}

// --- Mode Config attributes (draft-ietf-ipsec-isakmp-mode-cfg-05 §3.2) ---

// Attributes is the Mode Config / XAuth Attribute payload.
type Attributes struct {
	raw
	CfgType    CfgType
	Identifier uint16
	Attrs      []Attr
}

// CfgType is the Mode Config message type.
type CfgType uint8

// Mode Config message types.
const (
	CfgRequest CfgType = 1
	CfgReply   CfgType = 2
	CfgSet     CfgType = 3
	CfgAck     CfgType = 4
)

func (*Attributes) Type() PayloadType { return PayloadAttributes }

func (p *Attributes) appendBody(b []byte) []byte {
	b = append(b, byte(p.CfgType), 0)
	b = binary.BigEndian.AppendUint16(b, p.Identifier)
	return appendAttrs(b, p.Attrs)
}

func decodeAttributes(body []byte, base int) (*Attributes, error) {
	if len(body) < 4 {
		return nil, errorf(base, "Attribute payload body of %d bytes, want at least 4", len(body))
	}
	attrs, err := decodeAttrs(body[4:], base+4)
	if err != nil {
		return nil, err
	}
	return &Attributes{CfgType: CfgType(body[0]), Identifier: binary.BigEndian.Uint16(body[2:]), Attrs: attrs}, nil
}

// --- NAT-OA (RFC 3947 §5.2) ---

// NATOA is the NAT Original Address payload: an ID type (IPv4 or IPv6 address) and the address.
type NATOA struct {
	raw
	IDType IDType
	Addr   []byte
	Draft  bool
}

func (p *NATOA) Type() PayloadType {
	if p.Draft {
		return PayloadNATOADraft
	}
	return PayloadNATOA
}

func (p *NATOA) appendBody(b []byte) []byte {
	b = append(b, byte(p.IDType), 0, 0, 0)
	return append(b, p.Addr...)
}

func decodeNATOA(body []byte, base int) (*NATOA, error) {
	if len(body) < 4 {
		return nil, errorf(base, "NAT-OA body of %d bytes", len(body))
	}
	p := &NATOA{IDType: IDType(body[0]), Addr: body[4:]}
	switch {
	case p.IDType == IDIPv4Addr && len(p.Addr) == idDataSizeIPv4, p.IDType == IDIPv6Addr && len(p.Addr) == idDataSizeIPv6:
		return p, nil
	}
	return nil, errorf(base, "NAT-OA of ID type %d with %d address bytes", p.IDType, len(p.Addr))
}

// Unknown is a payload of a type this package does not know, kept as it came.
type Unknown struct {
	raw
	PType PayloadType
	Data  []byte
}

func (p *Unknown) Type() PayloadType          { return p.PType }
func (p *Unknown) appendBody(b []byte) []byte { return append(b, p.Data...) }

// --- chains ---

// DecodePayloads decodes a payload chain that starts with a payload of type first. With padded
// set (a decrypted body, RFC 2409 Appendix B) bytes after the last payload are padding and
// ignored; otherwise they are an error.
func DecodePayloads(first PayloadType, b []byte, padded bool) ([]Payload, error) {
	var out []Payload
	next, off := first, 0
	for next != PayloadNone {
		if len(out) == maxPayloadsPerChain {
			return nil, errorf(HeaderLen+off, "more than %d payloads", maxPayloadsPerChain)
		}
		if len(b)-off < payloadGenericLen {
			return nil, errorf(HeaderLen+off, "payload %s: %d bytes left, want a generic header", next, len(b)-off)
		}
		plen := int(binary.BigEndian.Uint16(b[off+2:]))
		if plen < payloadGenericLen || plen > len(b)-off {
			return nil, errorf(HeaderLen+off+2, "payload %s of length %d, %d bytes left", next, plen, len(b)-off)
		}
		whole := b[off : off+plen]
		body := whole[payloadGenericLen:]
		base := HeaderLen + off + payloadGenericLen
		p, err := decodeOne(next, body, base)
		if err != nil {
			return nil, err
		}
		setRaw(p, whole)
		out = append(out, p)
		next = PayloadType(b[off])
		off += plen
	}
	if off != len(b) && !padded {
		return nil, errorf(HeaderLen+off, "%d bytes after the last payload", len(b)-off)
	}
	return out, nil
}

func decodeOne(t PayloadType, body []byte, base int) (Payload, error) {
	switch t {
	case PayloadSA:
		return decodeSA(body, base)
	case PayloadKE:
		if len(body) == 0 {
			return nil, errorf(base, "empty KE payload")
		}
		return &KE{Data: body}, nil
	case PayloadID:
		return decodeID(body, base)
	case PayloadCert:
		if len(body) < 1 {
			return nil, errorf(base, "empty Certificate payload")
		}
		return &Cert{Encoding: body[0], Data: body[1:]}, nil
	case PayloadCertReq:
		if len(body) < 1 {
			return nil, errorf(base, "empty Certificate Request payload")
		}
		return &CertReq{Encoding: body[0], Authority: body[1:]}, nil
	case PayloadHash:
		return &Hash{Data: body}, nil
	case PayloadSig:
		return &Sig{Data: body}, nil
	case PayloadNonce:
		// RFC 2409 §5: nonces are 8 to 256 bytes.
		if len(body) < 8 || len(body) > 256 {
			return nil, errorf(base, "nonce of %d bytes, want 8 to 256", len(body))
		}
		return &Nonce{Data: body}, nil
	case PayloadNotify:
		return decodeNotify(body, base)
	case PayloadDelete:
		return decodeDelete(body, base)
	case PayloadVendorID:
		return &VendorID{Data: body}, nil
	case PayloadAttributes:
		return decodeAttributes(body, base)
	case PayloadNATD, PayloadNATDDraft:
		return &NATD{Hash: body, Draft: t == PayloadNATDDraft}, nil
	case PayloadNATOA, PayloadNATOADraft:
		p, err := decodeNATOA(body, base)
		if err != nil {
			return nil, err
		}
		p.Draft = t == PayloadNATOADraft
		return p, nil
	case PayloadProposal, PayloadTransform:
		// Only inside an SA payload (RFC 2408 §3.5).
		return nil, &Error{Offset: base, Msg: fmt.Sprintf("%s payload outside an SA payload", t), Notify: InvalidPayloadType}
	}
	return &Unknown{PType: t, Data: body}, nil
}

func setRaw(p Payload, b []byte) {
	switch p := p.(type) {
	case *SA:
		p.b = b
	case *KE:
		p.b = b
	case *ID:
		p.b = b
	case *Cert:
		p.b = b
	case *CertReq:
		p.b = b
	case *Hash:
		p.b = b
	case *Sig:
		p.b = b
	case *Nonce:
		p.b = b
	case *Notify:
		p.b = b
	case *Delete:
		p.b = b
	case *VendorID:
		p.b = b
	case *Attributes:
		p.b = b
	case *NATD:
		p.b = b
	case *NATOA:
		p.b = b
	case *Unknown:
		p.b = b
	}
}

// EncodePayloads encodes a payload chain (without the ISAKMP header) and records each payload's
// bytes as its Raw.
func EncodePayloads(ps []Payload) ([]byte, error) {
	var b []byte
	starts := make([]int, len(ps))
	for i, p := range ps {
		start := len(b)
		starts[i] = start
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		b = append(b, byte(next), 0, 0, 0)
		b = p.appendBody(b)
		n := len(b) - start
		if n > 0xffff {
			return nil, fmt.Errorf("ikev1/wire: %s payload of %d bytes is too long", p.Type(), n)
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	}
	for i, p := range ps {
		end := len(b)
		if i+1 < len(ps) {
			end = starts[i+1]
		}
		setRaw(p, b[starts[i]:end:end])
	}
	return b, nil
}
