// Package l2tp is L2TP version 2 (RFC 2661) over UDP port 1701, both ends: the L2TP Network
// Server (LNS) that L2TP/IPsec clients dial, and the L2TP Access Concentrator (LAC) that dials
// one. It carries PPP (package ppp) in userspace, so goipsec needs no L2TP or PPP kernel modules.
//
// It is hand-written: no maintained Go L2TP implementation exists, and the kernel's L2TP needs
// pppd. The codec is pure with exact length checks; the control connection (reliable delivery
// with Ns/Nr, ZLB acknowledgements, retransmission, HELLO) and the tunnel and session state
// machines are pure too: they take datagrams and ticks and return datagrams and events. Hidden
// AVPs and tunnel authentication (a shared secret, RFC 2661 §4.3 and §5.1.1) are not
// implemented: the built-in L2TP/IPsec clients do not use them (IPsec authenticates the peer).
package l2tp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header flag bits (RFC 2661 §3.1).
const (
	flagType     = 0x8000 // control message
	flagLength   = 0x4000
	flagSequence = 0x0800
	flagOffset   = 0x0200
	flagPriority = 0x0100
	versionMask  = 0x000f
	version2     = 2
)

// Port is the L2TP UDP port.
const Port = 1701

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("l2tp: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Header is the L2TP header. HasSeq says whether Ns and Nr are present (always for control
// messages, optional for data).
type Header struct {
	Control         bool
	Tunnel, Session uint16
	HasSeq          bool
	Ns, Nr          uint16
}

// DecodeHeader decodes the header and returns the payload after it (the AVPs of a control
// message, the PPP frame of a data message).
func DecodeHeader(b []byte) (Header, []byte, error) {
	if len(b) < 6 {
		return Header{}, nil, malformed("message of %d bytes", len(b))
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&versionMask != version2 {
		// Version 3 (RFC 3931) and L2F (1) are not this protocol.
		return Header{}, nil, malformed("version %d", flags&versionMask)
	}
	h := Header{Control: flags&flagType != 0}
	off := 2
	end := len(b)
	if flags&flagLength != 0 {
		n := int(binary.BigEndian.Uint16(b[off:]))
		if n < 6 || n > len(b) {
			return Header{}, nil, malformed("length %d in %d bytes", n, len(b))
		}
		end = n
		off += 2
	}
	if h.Control && (flags&flagLength == 0 || flags&flagSequence == 0 || flags&flagOffset != 0) {
		// RFC 2661 §3.1: control messages have L and S set and O clear.
		return Header{}, nil, malformed("control message flags %04x", flags)
	}
	need := off + 4
	if flags&flagSequence != 0 {
		need += 4
	}
	if flags&flagOffset != 0 {
		need += 2
	}
	if need > end {
		return Header{}, nil, malformed("header of %d bytes in %d", need, end)
	}
	h.Tunnel = binary.BigEndian.Uint16(b[off:])
	h.Session = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	if flags&flagSequence != 0 {
		h.HasSeq = true
		h.Ns = binary.BigEndian.Uint16(b[off:])
		h.Nr = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if flags&flagOffset != 0 {
		pad := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if pad > end-off {
			return Header{}, nil, malformed("offset padding of %d bytes, %d left", pad, end-off)
		}
		off += pad
	}
	return h, b[off:end], nil
}

// AppendControl appends a control message (L, S set).
func AppendControl(dst []byte, h Header, avps []AVP) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, flagType|flagLength|flagSequence|version2)
	dst = append(dst, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, h.Tunnel)
	dst = binary.BigEndian.AppendUint16(dst, h.Session)
	dst = binary.BigEndian.AppendUint16(dst, h.Ns)
	dst = binary.BigEndian.AppendUint16(dst, h.Nr)
	for _, a := range avps {
		dst = a.append(dst)
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	return dst
}

// AppendData appends a data message: no length, no sequence numbers (RFC 2661 §3.1 leaves both
// optional; the built-in clients send neither).
func AppendData(dst []byte, tunnel, session uint16, ppp []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, version2)
	dst = binary.BigEndian.AppendUint16(dst, tunnel)
	dst = binary.BigEndian.AppendUint16(dst, session)
	return append(dst, ppp...)
}

// AVP is an attribute-value pair (RFC 2661 §4.1).
type AVP struct {
	Mandatory bool
	Hidden    bool
	Vendor    uint16
	Type      uint16
	Value     []byte
}

const avpHeaderLen = 6

func (a AVP) append(dst []byte) []byte {
	var f uint16
	if a.Mandatory {
		f |= 0x8000
	}
	if a.Hidden {
		f |= 0x4000
	}
	dst = binary.BigEndian.AppendUint16(dst, f|uint16(avpHeaderLen+len(a.Value)))
	dst = binary.BigEndian.AppendUint16(dst, a.Vendor)
	dst = binary.BigEndian.AppendUint16(dst, a.Type)
	return append(dst, a.Value...)
}

// DecodeAVPs decodes a control message's AVPs.
func DecodeAVPs(b []byte) ([]AVP, error) {
	var out []AVP
	for len(b) > 0 {
		if len(b) < avpHeaderLen {
			return nil, malformed("AVP of %d bytes", len(b))
		}
		f := binary.BigEndian.Uint16(b)
		n := int(f & 0x03ff)
		if n < avpHeaderLen || n > len(b) {
			return nil, malformed("AVP length %d in %d bytes", n, len(b))
		}
		if f&0x3c00 != 0 {
			// RFC 2661 §4.1: reserved bits must be zero; an AVP with them set is unknown, and
			// treated as such (mandatory ones end the tunnel).
			out = append(out, AVP{Mandatory: f&0x8000 != 0, Vendor: 0xffff, Type: 0xffff})
			b = b[n:]
			continue
		}
		out = append(out, AVP{Mandatory: f&0x8000 != 0, Hidden: f&0x4000 != 0, Vendor: binary.BigEndian.Uint16(b[2:]),
			Type: binary.BigEndian.Uint16(b[4:]), Value: b[avpHeaderLen:n]})
		b = b[n:]
	}
	return out, nil
}

// Message types (RFC 2661 §3.2).
const (
	MsgSCCRQ   = 1
	MsgSCCRP   = 2
	MsgSCCCN   = 3
	MsgStopCCN = 4
	MsgHello   = 6
	MsgOCRQ    = 7
	MsgOCRP    = 8
	MsgOCCN    = 9
	MsgICRQ    = 10
	MsgICRP    = 11
	MsgICCN    = 12
	MsgCDN     = 14
	MsgWEN     = 15
	MsgSLI     = 16
)

var msgNames = map[uint16]string{MsgSCCRQ: "SCCRQ", MsgSCCRP: "SCCRP", MsgSCCCN: "SCCCN", MsgStopCCN: "StopCCN", MsgHello: "HELLO",
	MsgOCRQ: "OCRQ", MsgOCRP: "OCRP", MsgOCCN: "OCCN", MsgICRQ: "ICRQ", MsgICRP: "ICRP", MsgICCN: "ICCN", MsgCDN: "CDN", MsgWEN: "WEN", MsgSLI: "SLI"}

// MsgName names a message type.
func MsgName(t uint16) string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MSG(%d)", t)
}

// AVP types (RFC 2661 §4.4).
const (
	AVPMessageType     = 0
	AVPResultCode      = 1
	AVPProtocolVersion = 2
	AVPFraming         = 3
	AVPBearer          = 4
	AVPFirmware        = 6
	AVPHostName        = 7
	AVPVendorName      = 8
	AVPTunnelID        = 9
	AVPWindow          = 10
	AVPChallenge       = 11
	AVPChallengeResp   = 13
	AVPCauseCode       = 12
	AVPSessionID       = 14
	AVPCallSerial      = 15
	AVPBearerType      = 18
	AVPFramingType     = 19
	AVPTxSpeed         = 24
	AVPRxSpeed         = 38
	AVPSequencing      = 39
)

// Message is a decoded control message: its type and AVPs.
type Message struct {
	Type uint16
	AVPs []AVP
}

// ParseMessage reads the AVPs of a control message. A ZLB (no AVPs) has Type 0 and is only an
// acknowledgement (RFC 2661 §5.8).
func ParseMessage(payload []byte) (Message, error) {
	avps, err := DecodeAVPs(payload)
	if err != nil {
		return Message{}, err
	}
	if len(avps) == 0 {
		return Message{}, nil
	}
	first := avps[0]
	if first.Vendor != 0 || first.Type != AVPMessageType || len(first.Value) != 2 || first.Hidden {
		return Message{}, malformed("first AVP is not the Message Type")
	}
	return Message{Type: binary.BigEndian.Uint16(first.Value), AVPs: avps[1:]}, nil
}

// find returns the value of an IETF AVP.
func (m Message) find(t uint16) ([]byte, bool) {
	for _, a := range m.AVPs {
		if a.Vendor == 0 && a.Type == t && !a.Hidden {
			return a.Value, true
		}
	}
	return nil, false
}

func (m Message) u16(t uint16) (uint16, bool) {
	v, ok := m.find(t)
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

// unknownMandatory returns an AVP the message requires us to understand and we do not: hidden
// AVPs (no tunnel secret) and unknown mandatory ones (RFC 2661 §4.2).
func (m Message) unknownMandatory() (AVP, bool) {
	for _, a := range m.AVPs {
		if a.Mandatory && (a.Hidden || a.Vendor != 0 || !knownAVP(a.Type)) {
			return a, true
		}
	}
	return AVP{}, false
}

func knownAVP(t uint16) bool {
	switch t {
	case AVPResultCode, AVPProtocolVersion, AVPFraming, AVPBearer, AVPFirmware, AVPHostName, AVPVendorName, AVPTunnelID,
		AVPWindow, AVPCauseCode, AVPSessionID, AVPCallSerial, AVPBearerType, AVPFramingType, AVPTxSpeed, AVPRxSpeed, AVPSequencing,
		5 /* Tie Breaker */, 16, 17, 20, 21, 22, 23, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37:
		return true
	}
	return false
}

func u16AVP(t, v uint16) AVP {
	return AVP{Mandatory: true, Type: t, Value: binary.BigEndian.AppendUint16(nil, v)}
}

func u32AVP(t uint16, v uint32) AVP {
	return AVP{Mandatory: true, Type: t, Value: binary.BigEndian.AppendUint32(nil, v)}
}

func msgAVP(t uint16) AVP { return u16AVP(AVPMessageType, t) }

// resultAVP is a Result Code AVP (RFC 2661 §4.4.2) with an error code and message.
func resultAVP(result, errCode uint16, msg string) AVP {
	v := binary.BigEndian.AppendUint16(nil, result)
	v = binary.BigEndian.AppendUint16(v, errCode)
	return AVP{Mandatory: true, Type: AVPResultCode, Value: append(v, msg...)}
}
