// Package tcpencap is the framing of IKE and ESP in TCP (RFC 9329, which obsoletes RFC 8229).
//
// The peer that opens the TCP connection first sends the stream prefix "IKETCP" (RFC 9329 §4).
// After it, in both directions, every message is one frame:
//
//	Length (2 octets, including itself) | Non-ESP Marker (4 zero octets) | IKE message
//	Length (2 octets, including itself) | ESP packet (starting with its non-zero SPI)
//
// (RFC 9329 §3.1, §3.2). NAT-keepalives do not exist in TCP (§3). The package is a pure codec: it
// appends frames to buffers and splits a byte stream into frames, with exact length checks; the
// sockets are its callers' business.
package tcpencap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Prefix is the stream prefix the connection's originator sends once (RFC 9329 §4).
const Prefix = "IKETCP"

// Sizes of the framing.
const (
	LengthLen = 2 // the Length field
	MarkerLen = 4 // the non-ESP marker in front of IKE messages
	// MaxFrame is the largest frame: the Length field is 16 bits and counts itself.
	MaxFrame = 0xffff
	// minESP is the smallest ESP packet: SPI and Sequence Number (RFC 4303 §2).
	minESP = 8
	// minIKE is the smallest IKE message: its header (RFC 7296 §3.1).
	minIKE = 28
)

// Kind says what a frame carries.
type Kind uint8

const (
	IKE Kind = iota + 1
	ESP
)

func (k Kind) String() string {
	switch k {
	case IKE:
		return "IKE"
	case ESP:
		return "ESP"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Errors of the decoder. Each of them leaves the stream unusable: RFC 9329 §3 gives no way to find
// the next frame after a bad one, so the connection is to be closed.
var (
	ErrPrefix      = errors.New("tcpencap: stream does not start with \"IKETCP\"")
	ErrShortFrame  = errors.New("tcpencap: frame shorter than an ESP packet or an IKE header")
	ErrTooLarge    = errors.New("tcpencap: message too large for a 16-bit length")
	ErrEmptyPacket = errors.New("tcpencap: empty message")
)

// AppendIKE appends an IKE message as a frame: length, non-ESP marker, message.
func AppendIKE(dst, msg []byte) ([]byte, error) {
	n := LengthLen + MarkerLen + len(msg)
	if n > MaxFrame {
		return dst, ErrTooLarge
	}
	if len(msg) == 0 {
		return dst, ErrEmptyPacket
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = append(dst, 0, 0, 0, 0)
	return append(dst, msg...), nil
}

// AppendESP appends an ESP packet as a frame: length, packet. The packet's SPI (its first four
// octets) must not be zero, or the receiver would take it for an IKE message.
func AppendESP(dst, pkt []byte) ([]byte, error) {
	n := LengthLen + len(pkt)
	if n > MaxFrame {
		return dst, ErrTooLarge
	}
	if len(pkt) < minESP || binary.BigEndian.Uint32(pkt) == 0 {
		return dst, ErrShortFrame
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	return append(dst, pkt...), nil
}

// Decoder splits a received byte stream into frames. Feed it what the socket delivers, in order;
// Next returns complete frames. It keeps at most one partial frame (64 KiB).
type Decoder struct {
	// prefix: the stream must start with Prefix (we accepted the connection).
	prefix bool
	buf    []byte
	off    int
	err    error
}

// NewDecoder returns a decoder; expectPrefix is set on the accepting side, whose peer sends
// "IKETCP" first.
func NewDecoder(expectPrefix bool) *Decoder { return &Decoder{prefix: expectPrefix} }

// Feed appends received bytes.
func (d *Decoder) Feed(b []byte) {
	if d.err != nil {
		return
	}
	if d.off > 0 && d.off == len(d.buf) {
		d.buf, d.off = d.buf[:0], 0
	}
	if d.off > 0 && len(d.buf)+len(b) > cap(d.buf) {
		// Move the unread part to the front instead of growing without bound.
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, b...)
}

// Next returns the next complete frame's kind and message (the IKE message without the marker,
// or the ESP packet). ok is false when more bytes are needed. The message aliases the decoder's
// buffer and is valid until the next Feed. After an error every call returns it again.
func (d *Decoder) Next() (kind Kind, msg []byte, ok bool, err error) {
	if d.err != nil {
		return 0, nil, false, d.err
	}
	rest := d.buf[d.off:]
	if d.prefix {
		if len(rest) < len(Prefix) {
			if string(rest) != Prefix[:len(rest)] {
				d.err = ErrPrefix
				return 0, nil, false, d.err
			}
			return 0, nil, false, nil
		}
		if string(rest[:len(Prefix)]) != Prefix {
			d.err = ErrPrefix
			return 0, nil, false, d.err
		}
		d.prefix = false
		d.off += len(Prefix)
		rest = rest[len(Prefix):]
	}
	if len(rest) < LengthLen {
		return 0, nil, false, nil
	}
	n := int(binary.BigEndian.Uint16(rest))
	if n < LengthLen+minESP {
		d.err = fmt.Errorf("%w: Length %d", ErrShortFrame, n)
		return 0, nil, false, d.err
	}
	if len(rest) < n {
		return 0, nil, false, nil
	}
	body := rest[LengthLen:n]
	d.off += n
	if binary.BigEndian.Uint32(body) != 0 {
		return ESP, body, true, nil
	}
	if len(body) < MarkerLen+minIKE {
		d.err = fmt.Errorf("%w: IKE frame of %d bytes", ErrShortFrame, n)
		return 0, nil, false, d.err
	}
	return IKE, body[MarkerLen:], true, nil
}

// Buffered is the number of received bytes not yet returned as frames.
func (d *Decoder) Buffered() int { return len(d.buf) - d.off }
