// Package ppp is PPP (RFC 1661) in userspace, as L2TP carries it: no HDLC framing, no FCS. It
// has the frame and control packet codecs, LCP (MRU, magic number, echo), the authentication
// protocols PAP (RFC 1334), CHAP with MD5 (RFC 1994) and MS-CHAPv2 (RFC 2759), and IPCP with
// addresses from a pool and DNS servers (RFC 1332, RFC 1877) — both the authenticator (server)
// and the peer (client) side. IPv6CP is not implemented: it is answered with Protocol-Reject,
// which every client takes as "IPv4 only".
//
// It is hand-written: the kernels goipsec targets have no PPP, and pppd is a C program with a
// device model; no maintained Go PPP implementation exists. Everything here is pure: a Session
// takes received frames and ticks and returns frames to send and events; the L2TP layer moves
// them. Decoding checks every length exactly and never panics.
package ppp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol numbers (RFC 1661 §2, IANA PPP DLL protocol numbers).
const (
	ProtoIPv4     uint16 = 0x0021
	ProtoIPv6     uint16 = 0x0057
	ProtoIPCP     uint16 = 0x8021
	ProtoIPv6CP   uint16 = 0x8057
	ProtoCCP      uint16 = 0x80fd
	ProtoLCP      uint16 = 0xc021
	ProtoPAP      uint16 = 0xc023
	ProtoCHAP     uint16 = 0xc223
	addrControlFF        = 0xff
	addrControl03        = 0x03
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("ppp: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// DecodeFrame splits a PPP frame into protocol and information field. The Address and Control
// fields (0xff 0x03) may be absent (Address-and-Control-Field-Compression) and the protocol may
// be one byte (Protocol-Field-Compression, RFC 1661 §6.5–6.6): receivers accept both whatever
// was negotiated.
func DecodeFrame(b []byte) (proto uint16, info []byte, err error) {
	if len(b) >= 2 && b[0] == addrControlFF && b[1] == addrControl03 {
		b = b[2:]
	}
	if len(b) == 0 {
		return 0, nil, malformed("empty frame")
	}
	if b[0]&1 == 1 {
		// A compressed protocol: one byte, odd (RFC 1661 §2).
		return uint16(b[0]), b[1:], nil
	}
	if len(b) < 2 {
		return 0, nil, malformed("frame of %d bytes has no protocol", len(b))
	}
	proto = binary.BigEndian.Uint16(b)
	if proto&1 == 0 || proto&0x100 != 0 {
		// RFC 1661 §2: the protocol's least significant octet is odd, the most significant even.
		return 0, nil, malformed("invalid protocol 0x%04x", proto)
	}
	return proto, b[2:], nil
}

// AppendFrame appends a frame with Address, Control and a two-byte protocol (never compressed:
// goipsec rejects PFC and ACFC, they save nothing inside L2TP).
func AppendFrame(dst []byte, proto uint16, info []byte) []byte {
	dst = append(dst, addrControlFF, addrControl03)
	dst = binary.BigEndian.AppendUint16(dst, proto)
	return append(dst, info...)
}

// Packet is a control protocol packet (LCP, IPCP, PAP, CHAP: RFC 1661 §5).
type Packet struct {
	Code uint8
	ID   uint8
	Data []byte
}

// DecodePacket decodes a control packet. Bytes after Length are padding and ignored (RFC 1661
// §5: "Octets outside the range of the Length field are treated as padding").
func DecodePacket(b []byte) (Packet, error) {
	if len(b) < 4 {
		return Packet{}, malformed("control packet of %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4 || n > len(b) {
		return Packet{}, malformed("control packet length %d in %d bytes", n, len(b))
	}
	return Packet{Code: b[0], ID: b[1], Data: b[4:n]}, nil
}

// Append appends the encoded packet.
func (p Packet) Append(dst []byte) []byte {
	dst = append(dst, p.Code, p.ID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+len(p.Data)))
	return append(dst, p.Data...)
}

// Option is a configuration option (RFC 1661 §6).
type Option struct {
	Type uint8
	Data []byte
}

// DecodeOptions decodes the options of a Configure-Request/Ack/Nak/Reject.
func DecodeOptions(b []byte) ([]Option, error) {
	var out []Option
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, malformed("option of %d bytes", len(b))
		}
		n := int(b[1])
		if n < 2 || n > len(b) {
			return nil, malformed("option %d of length %d in %d bytes", b[0], n, len(b))
		}
		out = append(out, Option{Type: b[0], Data: b[2:n]})
		b = b[n:]
	}
	return out, nil
}

// AppendOptions appends encoded options.
func AppendOptions(dst []byte, opts []Option) []byte {
	for _, o := range opts {
		dst = append(dst, o.Type, byte(2+len(o.Data)))
		dst = append(dst, o.Data...)
	}
	return dst
}

// Control protocol codes (RFC 1661 §5).
const (
	CodeConfigureRequest = 1
	CodeConfigureAck     = 2
	CodeConfigureNak     = 3
	CodeConfigureReject  = 4
	CodeTerminateRequest = 5
	CodeTerminateAck     = 6
	CodeCodeReject       = 7
	CodeProtocolReject   = 8
	CodeEchoRequest      = 9
	CodeEchoReply        = 10
	CodeDiscardRequest   = 11
)

// LCP options (RFC 1661 §6, RFC 1570).
const (
	LCPMRU      = 1
	LCPACCM     = 2
	LCPAuth     = 3
	LCPQuality  = 4
	LCPMagic    = 5
	LCPPFC      = 7
	LCPACFC     = 8
	chapMD5     = 5    // RFC 1994 §3 algorithm
	chapMSv2    = 0x81 // RFC 2759 §2
	ipcpAddress = 3    // RFC 1332 §3.3
	ipcpCompr   = 2    // RFC 1332 §3.2
	ipcpDNS1    = 129  // RFC 1877 §1.1
	ipcpNBNS1   = 130
	ipcpDNS2    = 131
	ipcpNBNS2   = 132
)
