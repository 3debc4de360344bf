package wire

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the ISAKMP header's size (RFC 2408 §3.1).
const HeaderLen = 28

// Offsets in the ISAKMP header (RFC 2408 §3.1).
const (
	offICookie   = 0
	offRCookie   = 8
	offNext      = 16
	offVersion   = 17
	offExchange  = 18
	offFlags     = 19
	offMessageID = 20
	offLength    = 24
)

// Version is the ISAKMP version byte of IKEv1: major 1, minor 0 (RFC 2408 §3.1). IKEv2 sends 0x20
// in the same place, which is how one socket tells the two apart.
const Version = 0x10

// Flags of the ISAKMP header (RFC 2408 §3.1).
const (
	FlagEncryption = 0x01 // the payloads after the header are encrypted
	FlagCommit     = 0x02 // the sender wants a CONNECTED notification (RFC 2408 §3.1, RFC 2409 §5.5)
	FlagAuthOnly   = 0x04 // authentication only (not used by IKE)
)

// ExchangeType is the ISAKMP exchange type (RFC 2408 §3.1, RFC 2409 §9).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeBase          ExchangeType = 1
	ExchangeMain          ExchangeType = 2 // Identity Protection
	ExchangeAuthOnly      ExchangeType = 3
	ExchangeAggressive    ExchangeType = 4
	ExchangeInformational ExchangeType = 5
	ExchangeTransaction   ExchangeType = 6 // Mode Config / XAuth (draft-ietf-ipsec-isakmp-mode-cfg §3.1)
	ExchangeQuick         ExchangeType = 32
	ExchangeNewGroup      ExchangeType = 33
)

func (x ExchangeType) String() string {
	switch x {
	case ExchangeBase:
		return "BASE"
	case ExchangeMain:
		return "ID_PROT"
	case ExchangeAuthOnly:
		return "AUTH_ONLY"
	case ExchangeAggressive:
		return "AGGRESSIVE"
	case ExchangeInformational:
		return "INFORMATIONAL_V1"
	case ExchangeTransaction:
		return "TRANSACTION"
	case ExchangeQuick:
		return "QUICK_MODE"
	case ExchangeNewGroup:
		return "NEW_GROUP"
	}
	return fmt.Sprintf("EXCHANGE(%d)", uint8(x))
}

// Header is the ISAKMP header.
type Header struct {
	ICookie, RCookie uint64
	NextPayload      PayloadType
	Version          uint8
	Exchange         ExchangeType
	Flags            uint8
	MessageID        uint32
	Length           uint32
}

// Encrypted reports whether the body is encrypted.
func (h Header) Encrypted() bool { return h.Flags&FlagEncryption != 0 }

// DecodeHeader decodes the header of the message b and checks that its Length field is the
// message's exact length and its version is IKEv1's.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errorf(0, "message of %d bytes is shorter than the ISAKMP header", len(b))
	}
	h := Header{
		ICookie:     binary.BigEndian.Uint64(b[offICookie:]),
		RCookie:     binary.BigEndian.Uint64(b[offRCookie:]),
		NextPayload: PayloadType(b[offNext]),
		Version:     b[offVersion],
		Exchange:    ExchangeType(b[offExchange]),
		Flags:       b[offFlags],
		MessageID:   binary.BigEndian.Uint32(b[offMessageID:]),
		Length:      binary.BigEndian.Uint32(b[offLength:]),
	}
	if h.Version>>4 != 1 {
		return h, &Error{Offset: offVersion, Msg: fmt.Sprintf("ISAKMP major version %d, want 1", h.Version>>4), Notify: InvalidMajorVersion}
	}
	if int64(h.Length) != int64(len(b)) {
		return h, errorf(offLength, "header length %d but message of %d bytes", h.Length, len(b))
	}
	if h.ICookie == 0 {
		// RFC 2408 §3.1: the initiator cookie is never zero.
		return h, &Error{Offset: offICookie, Msg: "initiator cookie is zero", Notify: InvalidCookie}
	}
	return h, nil
}

// AppendHeader appends the encoded header to b. The Length field is written as given.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint64(b, h.ICookie)
	b = binary.BigEndian.AppendUint64(b, h.RCookie)
	v := h.Version
	if v == 0 {
		v = Version
	}
	b = append(b, byte(h.NextPayload), v, byte(h.Exchange), h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// IsIKEv1 reports whether a datagram (without non-ESP marker) carries an ISAKMP/IKEv1 header: the
// demultiplexer's question in front of the IKEv2 engine.
func IsIKEv1(b []byte) bool { return len(b) >= HeaderLen && b[offVersion]>>4 == 1 }

// Message is a decoded plaintext message: its header and payloads.
type Message struct {
	Header   Header
	Payloads []Payload
}

// Decode decodes a message whose body is not encrypted.
func Decode(b []byte) (*Message, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Encrypted() {
		return nil, errorf(offFlags, "message is encrypted")
	}
	ps, err := DecodePayloads(h.NextPayload, b[HeaderLen:], false)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// Encode encodes a plaintext message, setting the header's length and next payload.
func (m *Message) Encode() ([]byte, error) {
	body, err := EncodePayloads(m.Payloads)
	if err != nil {
		return nil, err
	}
	return Assemble(m.Header, firstType(m.Payloads), body), nil
}

// Assemble puts a header in front of an encoded (possibly encrypted) body, filling in next payload
// and length.
func Assemble(h Header, first PayloadType, body []byte) []byte {
	h.NextPayload = first
	h.Length = uint32(HeaderLen + len(body))
	out := make([]byte, 0, HeaderLen+len(body))
	out = AppendHeader(out, h)
	return append(out, body...)
}

func firstType(ps []Payload) PayloadType {
	if len(ps) == 0 {
		return PayloadNone
	}
	return ps[0].Type()
}

// FirstType is the type of the first of ps (PayloadNone when empty), for the header.
func FirstType(ps []Payload) PayloadType { return firstType(ps) }
