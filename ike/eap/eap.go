// Package eap runs EAP conversations (RFC 3748) for IKEv2 (RFC 7296 §2.16): a Server (the
// gateway, or a relay to RADIUS) and a Client (the road warrior), with the methods Identity, MD5
// (RFC 3748 §5.4, legacy: no key, no mutual authentication) and MS-CHAPv2
// (draft-kamath-pppext-eap-mschapv2 with RFC 2759/3079). Conversations are state machines without
// I/O: each step takes one EAP packet and returns the next.
package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Codes (RFC 3748 §4).
const (
	CodeRequest  uint8 = 1
	CodeResponse uint8 = 2
	CodeSuccess  uint8 = 3
	CodeFailure  uint8 = 4
)

// Type is an EAP method type (RFC 3748 §5, IANA "EAP Method Types").
type Type uint8

// Method types.
const (
	TypeIdentity Type = 1
	TypeNotify   Type = 2
	TypeNak      Type = 3
	TypeMD5      Type = 4
	TypeTLS      Type = 13
	TypeTTLS     Type = 21
	TypeMSCHAPv2 Type = 26
)

func (t Type) String() string {
	switch t {
	case TypeIdentity:
		return "Identity"
	case TypeNotify:
		return "Notification"
	case TypeNak:
		return "Nak"
	case TypeMD5:
		return "MD5"
	case TypeTLS:
		return "TLS"
	case TypeTTLS:
		return "TTLS"
	case TypeMSCHAPv2:
		return "MSCHAPv2"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// ParseType reads a method name as swanctl.conf spells it after "eap-".
func ParseType(s string) (Type, bool) {
	switch s {
	case "md5":
		return TypeMD5, true
	case "mschapv2":
		return TypeMSCHAPv2, true
	case "tls":
		return TypeTLS, true
	case "ttls":
		return TypeTTLS, true
	}
	return 0, false
}

// Packet is one EAP packet. Type and Data exist for requests and responses only.
type Packet struct {
	Code       uint8
	Identifier uint8
	Type       Type
	Data       []byte
}

// Offsets of the EAP header (RFC 3748 §4).
const (
	codeOff   = 0
	idOff     = 1
	lengthOff = 2
	headerLen = 4
	typeOff   = 4
	typedLen  = 5
)

// ErrMalformed is returned for packets that do not parse.
var ErrMalformed = errors.New("eap: malformed packet")

// Parse decodes an EAP packet; its Length must cover exactly b.
func Parse(b []byte) (*Packet, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if l := int(binary.BigEndian.Uint16(b[lengthOff:])); l != len(b) {
		return nil, fmt.Errorf("%w: Length %d in %d bytes", ErrMalformed, l, len(b))
	}
	p := &Packet{Code: b[codeOff], Identifier: b[idOff]}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if len(b) < typedLen {
			return nil, fmt.Errorf("%w: request or response without Type", ErrMalformed)
		}
		p.Type, p.Data = Type(b[typeOff]), b[typedLen:]
	case CodeSuccess, CodeFailure:
		if len(b) != headerLen {
			return nil, fmt.Errorf("%w: Success/Failure with %d bytes of data", ErrMalformed, len(b)-headerLen)
		}
	default:
		return nil, fmt.Errorf("%w: code %d", ErrMalformed, p.Code)
	}
	return p, nil
}

// Marshal encodes the packet.
func (p *Packet) Marshal() []byte {
	n := headerLen
	if p.Code == CodeRequest || p.Code == CodeResponse {
		n += 1 + len(p.Data)
	}
	b := make([]byte, n)
	b[codeOff], b[idOff] = p.Code, p.Identifier
	binary.BigEndian.PutUint16(b[lengthOff:], uint16(n))
	if n > headerLen {
		b[typeOff] = byte(p.Type)
		copy(b[typedLen:], p.Data)
	}
	return b
}
