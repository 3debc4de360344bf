package wire

import (
	"encoding/binary"
	"fmt"
)

// Offsets shared by payloads whose body starts with a one-octet type and
// three RESERVED octets: IDi/IDr (§3.5), AUTH (§3.8), CP (§3.15), TSi/TSr
// (§3.13, where the first octet is the count).
const (
	typedTypeOff   = 0
	typedHeaderLen = 4
)

// KE is the Key Exchange payload (RFC 7296 §3.4). Data is the public value
// exactly as sent; its length is the group's business (ike/suite).
type KE struct {
	Group uint16 // transform ID of type 4 (key exchange method)
	Data  []byte
}

const (
	keGroupOff  = 0
	keHeaderLen = 4 // group (2) and RESERVED (2)
)

// Type implements Payload.
func (p *KE) Type() PayloadType { return PayloadKE }

func decodeKE(body []byte, base int) (*KE, error) {
	if len(body) < keHeaderLen {
		return nil, syntaxError(base, "KE body of %d bytes is shorter than %d", len(body), keHeaderLen)
	}
	return &KE{Group: binary.BigEndian.Uint16(body[keGroupOff:]), Data: body[keHeaderLen:]}, nil
}

func (p *KE) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, p.Group)
	b = append(b, 0, 0)
	return append(b, p.Data...), nil
}

// Identification is the body shared by IDi and IDr (RFC 7296 §3.5); it
// is not a Payload itself.
type Identification struct {
	IDType IDType
	Data   []byte
}

// IDi is the initiator's Identification payload.
type IDi Identification

// IDr is the responder's Identification payload.
type IDr Identification

// Type implements Payload.
func (p *IDi) Type() PayloadType { return PayloadIDi }

// Type implements Payload.
func (p *IDr) Type() PayloadType { return PayloadIDr }

func (p *IDi) appendBody(b []byte) ([]byte, error) { return (*Identification)(p).appendBody(b) }
func (p *IDr) appendBody(b []byte) ([]byte, error) { return (*Identification)(p).appendBody(b) }

// RestOfPayload is the payload body after the generic header (ID Type,
// RESERVED, Identification Data): the octets RFC 7296 §2.15 calls
// RestOfInitIDPayload, which the AUTH computation signs.
func (p *IDi) RestOfPayload() []byte { b, _ := (*Identification)(p).appendBody(nil); return b }

// RestOfPayload is RestOfRespIDPayload of RFC 7296 §2.15.
func (p *IDr) RestOfPayload() []byte { b, _ := (*Identification)(p).appendBody(nil); return b }

// Address identities have a fixed length (RFC 7296 §3.5).
const (
	idIPv4Len = 4
	idIPv6Len = 16
)

func checkIDData(t IDType, data []byte) error {
	switch {
	case t == IDIPv4Addr && len(data) != idIPv4Len:
		return fmt.Errorf("ID_IPV4_ADDR of %d bytes, want %d", len(data), idIPv4Len)
	case t == IDIPv6Addr && len(data) != idIPv6Len:
		return fmt.Errorf("ID_IPV6_ADDR of %d bytes, want %d", len(data), idIPv6Len)
	}
	return nil
}

func decodeID(body []byte, base int) (*Identification, error) {
	if len(body) < typedHeaderLen {
		return nil, syntaxError(base, "ID body of %d bytes is shorter than %d", len(body), typedHeaderLen)
	}
	p := &Identification{IDType: IDType(body[typedTypeOff]), Data: body[typedHeaderLen:]}
	if err := checkIDData(p.IDType, p.Data); err != nil {
		return nil, syntaxError(base+typedHeaderLen, "%v", err)
	}
	return p, nil
}

func (p *Identification) appendBody(b []byte) ([]byte, error) {
	if err := checkIDData(p.IDType, p.Data); err != nil {
		return nil, encodeError("%v", err)
	}
	b = append(b, byte(p.IDType), 0, 0, 0)
	return append(b, p.Data...), nil
}

// Certificate is the body shared by CERT and CERTREQ (RFC 7296 §3.6,
// §3.7); it is not a Payload itself.
type Certificate struct {
	Encoding CertEncoding
	Data     []byte
}

// CERT is the Certificate payload (RFC 7296 §3.6).
type CERT Certificate

// CERTREQ is the Certificate Request payload (RFC 7296 §3.7). For X.509
// encodings Data is a concatenation of SHA-1 hashes of trusted CA public
// keys, kept opaque here.
type CERTREQ Certificate

// Type implements Payload.
func (p *CERT) Type() PayloadType { return PayloadCERT }

// Type implements Payload.
func (p *CERTREQ) Type() PayloadType { return PayloadCERTREQ }

func (p *CERT) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.Encoding)), p.Data...), nil
}

func (p *CERTREQ) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.Encoding)), p.Data...), nil
}

const certEncodingLen = 1

func decodeCert(body []byte, base int) (*Certificate, error) {
	if len(body) < certEncodingLen {
		return nil, syntaxError(base, "certificate payload without Cert Encoding")
	}
	return &Certificate{Encoding: CertEncoding(body[0]), Data: body[certEncodingLen:]}, nil
}

// AUTH is the Authentication payload (RFC 7296 §3.8).
type AUTH struct {
	Method AuthMethod
	Data   []byte
}

// Type implements Payload.
func (p *AUTH) Type() PayloadType { return PayloadAUTH }

func decodeAUTH(body []byte, base int) (*AUTH, error) {
	if len(body) < typedHeaderLen {
		return nil, syntaxError(base, "AUTH body of %d bytes is shorter than %d", len(body), typedHeaderLen)
	}
	return &AUTH{Method: AuthMethod(body[typedTypeOff]), Data: body[typedHeaderLen:]}, nil
}

func (p *AUTH) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(p.Method), 0, 0, 0)
	return append(b, p.Data...), nil
}

// Nonce is the Nonce payload, Ni or Nr (RFC 7296 §3.9).
type Nonce struct {
	Data []byte
}

// Nonce lengths RFC 7296 §3.9 allows.
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// Type implements Payload.
func (p *Nonce) Type() PayloadType { return PayloadNonce }

func decodeNonce(body []byte, base int) (*Nonce, error) {
	if len(body) < MinNonceLen || len(body) > MaxNonceLen {
		return nil, syntaxError(base, "nonce of %d bytes outside %d..%d", len(body), MinNonceLen, MaxNonceLen)
	}
	return &Nonce{Data: body}, nil
}

func (p *Nonce) appendBody(b []byte) ([]byte, error) {
	if len(p.Data) < MinNonceLen || len(p.Data) > MaxNonceLen {
		return nil, encodeError("nonce of %d bytes outside %d..%d", len(p.Data), MinNonceLen, MaxNonceLen)
	}
	return append(b, p.Data...), nil
}

// Notify is the Notify payload (RFC 7296 §3.10). SPI is empty unless the
// notification concerns a Child SA (INVALID_SELECTORS, REKEY_SA,
// CHILD_SA_NOT_FOUND); its length is sent as the SPI Size.
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

const (
	notifyProtocolOff = 0
	notifySPISizeOff  = 1
	notifyTypeOff     = 2
	notifyHeaderLen   = 4
)

// Type implements Payload.
func (p *Notify) Type() PayloadType { return PayloadNotify }

func decodeNotify(body []byte, base int) (*Notify, error) {
	if len(body) < notifyHeaderLen {
		return nil, syntaxError(base, "Notify body of %d bytes is shorter than %d", len(body), notifyHeaderLen)
	}
	spiSize := int(body[notifySPISizeOff])
	if spiSize > len(body)-notifyHeaderLen {
		return nil, syntaxError(base+notifySPISizeOff, "SPI Size %d exceeds the %d bytes after the Notify header", spiSize, len(body)-notifyHeaderLen)
	}
	n := &Notify{
		Protocol:   ProtocolID(body[notifyProtocolOff]),
		NotifyType: NotifyType(binary.BigEndian.Uint16(body[notifyTypeOff:])),
		Data:       body[notifyHeaderLen+spiSize:],
	}
	if spiSize > 0 {
		n.SPI = body[notifyHeaderLen : notifyHeaderLen+spiSize]
	}
	return n, nil
}

func (p *Notify) appendBody(b []byte) ([]byte, error) {
	if len(p.SPI) > 0xff {
		return nil, encodeError("Notify SPI of %d bytes", len(p.SPI))
	}
	b = append(b, byte(p.Protocol), byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(p.NotifyType))
	b = append(b, p.SPI...)
	return append(b, p.Data...), nil
}

// Delete is the Delete payload (RFC 7296 §3.11). Deleting the IKE SA
// carries no SPI (it is in the header); AH and ESP carry 4-byte SPIs.
type Delete struct {
	Protocol ProtocolID
	SPIs     [][]byte
}

const (
	delProtocolOff = 0
	delSPISizeOff  = 1
	delNumSPIsOff  = 2
	delHeaderLen   = 4
)

// Type implements Payload.
func (p *Delete) Type() PayloadType { return PayloadDelete }

// deleteSPISize is the SPI Size RFC 7296 §3.11 requires for a protocol.
func deleteSPISize(proto ProtocolID) (int, error) {
	switch proto {
	case ProtoIKE:
		return 0, nil
	case ProtoAH, ProtoESP:
		return spiSizeChild, nil
	}
	return 0, fmt.Errorf("Delete for protocol %d, want IKE, AH or ESP", proto)
}

func decodeDelete(body []byte, base int) (*Delete, error) {
	if len(body) < delHeaderLen {
		return nil, syntaxError(base, "Delete body of %d bytes is shorter than %d", len(body), delHeaderLen)
	}
	d := &Delete{Protocol: ProtocolID(body[delProtocolOff])}
	want, err := deleteSPISize(d.Protocol)
	if err != nil {
		return nil, syntaxError(base+delProtocolOff, "%v", err)
	}
	spiSize := int(body[delSPISizeOff])
	if spiSize != want {
		return nil, syntaxError(base+delSPISizeOff, "Delete for protocol %d with SPI Size %d, want %d", d.Protocol, spiSize, want)
	}
	num := int(binary.BigEndian.Uint16(body[delNumSPIsOff:]))
	if d.Protocol == ProtoIKE && num != 0 {
		return nil, syntaxError(base+delNumSPIsOff, "IKE SA Delete with Num of SPIs %d, want 0", num)
	}
	if num*spiSize != len(body)-delHeaderLen {
		return nil, syntaxError(base+delNumSPIsOff, "%d SPIs of %d bytes but %d bytes follow the Delete header", num, spiSize, len(body)-delHeaderLen)
	}
	for i := range num {
		off := delHeaderLen + i*spiSize
		d.SPIs = append(d.SPIs, body[off:off+spiSize])
	}
	return d, nil
}

func (p *Delete) appendBody(b []byte) ([]byte, error) {
	size, err := deleteSPISize(p.Protocol)
	if err != nil {
		return nil, encodeError("%v", err)
	}
	if p.Protocol == ProtoIKE && len(p.SPIs) != 0 {
		return nil, encodeError("IKE SA Delete with %d SPIs, want none", len(p.SPIs))
	}
	if len(p.SPIs) > 0xffff {
		return nil, encodeError("Delete with %d SPIs", len(p.SPIs))
	}
	b = append(b, byte(p.Protocol), byte(size))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for i, spi := range p.SPIs {
		if len(spi) != size {
			return nil, encodeError("Delete SPI %d of %d bytes, want %d", i, len(spi), size)
		}
		b = append(b, spi...)
	}
	return b, nil
}

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

// Type implements Payload.
func (p *VendorID) Type() PayloadType                   { return PayloadVendorID }
func (p *VendorID) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

// CP is the Configuration payload (RFC 7296 §3.15).
type CP struct {
	CFGType    CFGType
	Attributes []CPAttribute
}

// CPAttribute is one configuration attribute (RFC 7296 §3.15.1). An empty
// Value asks for the attribute in a CFG_REQUEST.
type CPAttribute struct {
	Type  CPAttributeType
	Value []byte
}

const (
	cpAttrTypeOff   = 0
	cpAttrLengthOff = 2
	cpAttrHeaderLen = 4
	cpAttrReserved  = 0x8000 // the R bit before the 15-bit type
)

// Type implements Payload.
func (p *CP) Type() PayloadType { return PayloadCP }

func decodeCP(body []byte, base int) (*CP, error) {
	if len(body) < typedHeaderLen {
		return nil, syntaxError(base, "CP body of %d bytes is shorter than %d", len(body), typedHeaderLen)
	}
	cp := &CP{CFGType: CFGType(body[typedTypeOff])}
	for off := typedHeaderLen; off < len(body); {
		if len(body)-off < cpAttrHeaderLen {
			return nil, syntaxError(base+off, "configuration attribute header needs %d bytes, %d left", cpAttrHeaderLen, len(body)-off)
		}
		length := int(binary.BigEndian.Uint16(body[off+cpAttrLengthOff:]))
		if length > len(body)-off-cpAttrHeaderLen {
			return nil, syntaxError(base+off+cpAttrLengthOff, "configuration attribute Length %d exceeds the %d bytes left", length, len(body)-off-cpAttrHeaderLen)
		}
		cp.Attributes = append(cp.Attributes, CPAttribute{
			Type:  CPAttributeType(binary.BigEndian.Uint16(body[off+cpAttrTypeOff:]) &^ cpAttrReserved),
			Value: body[off+cpAttrHeaderLen : off+cpAttrHeaderLen+length],
		})
		off += cpAttrHeaderLen + length
	}
	return cp, nil
}

func (p *CP) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(p.CFGType), 0, 0, 0)
	for i, a := range p.Attributes {
		if a.Type&cpAttrReserved != 0 {
			return nil, encodeError("configuration attribute %d: type %#x does not fit in 15 bits", i, uint16(a.Type))
		}
		if len(a.Value) > 0xffff {
			return nil, encodeError("configuration attribute %d: value of %d bytes", i, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(a.Type))
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}

// EAP is the EAP payload (RFC 7296 §3.16): one EAP packet (RFC 3748 §4),
// kept opaque beyond its header. EAPType is the Type octet of Request and
// Response packets and zero otherwise; Data is what follows it (or the
// header, for other codes).
type EAP struct {
	Code       uint8
	Identifier uint8
	EAPType    uint8
	Data       []byte
}

const (
	eapCodeOff       = 0
	eapIdentifierOff = 1
	eapLengthOff     = 2
	eapHeaderLen     = 4
	eapTypeOff       = 4
	eapTypedLen      = 5 // header and Type octet
)

// Type implements Payload.
func (p *EAP) Type() PayloadType { return PayloadEAP }

func eapHasType(code uint8) bool { return code == EAPRequest || code == EAPResponse }

func decodeEAP(body []byte, base int) (*EAP, error) {
	if len(body) < eapHeaderLen {
		return nil, syntaxError(base, "EAP body of %d bytes is shorter than %d", len(body), eapHeaderLen)
	}
	// The EAP Length covers the whole EAP packet, which is the whole
	// payload body (RFC 7296 §3.16).
	if length := int(binary.BigEndian.Uint16(body[eapLengthOff:])); length != len(body) {
		return nil, syntaxError(base+eapLengthOff, "EAP Length %d does not match the %d-byte payload body", length, len(body))
	}
	e := &EAP{Code: body[eapCodeOff], Identifier: body[eapIdentifierOff]}
	if !eapHasType(e.Code) {
		e.Data = body[eapHeaderLen:]
		return e, nil
	}
	if len(body) < eapTypedLen {
		return nil, syntaxError(base, "EAP code %d without Type octet", e.Code)
	}
	e.EAPType = body[eapTypeOff]
	e.Data = body[eapTypedLen:]
	return e, nil
}

func (p *EAP) appendBody(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, p.Code, p.Identifier, 0, 0)
	if eapHasType(p.Code) {
		b = append(b, p.EAPType)
	} else if p.EAPType != 0 {
		return nil, encodeError("EAP code %d carries no Type, got %d", p.Code, p.EAPType)
	}
	b = append(b, p.Data...)
	if err := putLen16(b, start+eapLengthOff, len(b)-start); err != nil {
		return nil, encodeError("EAP: %v", err)
	}
	return b, nil
}
