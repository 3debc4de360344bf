package vici

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PacketType is the first byte of every segment (README "Packet layer").
type PacketType uint8

// Packet types.
const (
	CmdRequest      PacketType = 0 // named request message
	CmdResponse     PacketType = 1 // unnamed response message
	CmdUnknown      PacketType = 2 // unnamed, no message: the requested command does not exist
	EventRegister   PacketType = 3 // named, no message
	EventUnregister PacketType = 4 // named, no message
	EventConfirm    PacketType = 5 // unnamed, no message: (un)registration succeeded
	EventUnknown    PacketType = 6 // unnamed, no message: no such event
	Event           PacketType = 7 // named event message
)

// Transport and packet layer sizes.
const (
	segmentLenLen  = 4 // big-endian length prefix of a segment, not counting itself
	packetTypeLen  = 1
	MaxSegmentSize = 512 * 1024 // strongSwan's VICI_MESSAGE_SIZE_MAX; both sides refuse larger segments
)

// Packet layer errors.
var (
	ErrUnknownPacketType = errors.New("vici: unknown packet type")
	ErrTrailingData      = errors.New("vici: data after packet without message")
	ErrEmptySegment      = errors.New("vici: empty segment")
)

var packetTypeNames = [...]string{
	CmdRequest:      "CMD_REQUEST",
	CmdResponse:     "CMD_RESPONSE",
	CmdUnknown:      "CMD_UNKNOWN",
	EventRegister:   "EVENT_REGISTER",
	EventUnregister: "EVENT_UNREGISTER",
	EventConfirm:    "EVENT_CONFIRM",
	EventUnknown:    "EVENT_UNKNOWN",
	Event:           "EVENT",
}

func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return fmt.Sprintf("PacketType(%d)", uint8(t))
}

// Valid reports whether t is one of the defined packet types.
func (t PacketType) Valid() bool { return int(t) < len(packetTypeNames) }

// Named reports whether packets of type t carry a name after the type byte.
func (t PacketType) Named() bool {
	return t == CmdRequest || t == EventRegister || t == EventUnregister || t == Event
}

// HasMessage reports whether packets of type t carry a message.
func (t PacketType) HasMessage() bool {
	return t == CmdRequest || t == CmdResponse || t == Event
}

// Packet is one decoded segment. Name is set for named types only, Message for types with a
// message only (a nil Message encodes as an empty one).
type Packet struct {
	Type    PacketType
	Name    string
	Message *Message
}

// AppendPacket appends p, with its 4-byte segment length, to dst. It fails if p has a name or message
// its type does not allow, or if the segment would exceed MaxSegmentSize.
func AppendPacket(dst []byte, p *Packet) ([]byte, error) {
	if !p.Type.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownPacketType, uint8(p.Type))
	}
	if !p.Type.Named() && p.Name != "" {
		return nil, fmt.Errorf("vici: %v packet cannot carry a name", p.Type)
	}
	if !p.Type.HasMessage() && p.Message.Len() != 0 {
		return nil, fmt.Errorf("vici: %v packet cannot carry a message", p.Type)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // segment length, filled in below
	dst = append(dst, byte(p.Type))
	var err error
	if p.Type.Named() {
		if dst, err = appendName(dst, p.Name); err != nil {
			return nil, err
		}
	}
	if p.Type.HasMessage() {
		if dst, err = p.Message.AppendBinary(dst); err != nil {
			return nil, err
		}
	}
	n := len(dst) - start - segmentLenLen
	if n > MaxSegmentSize {
		return nil, fmt.Errorf("%w: %v packet of %d bytes exceeds %d", ErrTooLarge, p.Type, n, MaxSegmentSize)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// ParsePacket decodes one segment's contents (without the 4-byte length).
func ParsePacket(seg []byte) (*Packet, error) {
	if len(seg) == 0 {
		return nil, &DecodeError{Offset: 0, Err: ErrEmptySegment}
	}
	if len(seg) > MaxSegmentSize {
		return nil, &DecodeError{Offset: 0, Err: ErrTooLarge}
	}
	p := &Packet{Type: PacketType(seg[0])}
	if !p.Type.Valid() {
		return nil, &DecodeError{Offset: 0, Err: ErrUnknownPacketType}
	}
	off := packetTypeLen
	if p.Type.Named() {
		d := decoder{buf: seg, off: off}
		name, ok := d.name()
		if !ok {
			return nil, &DecodeError{Offset: off, Err: ErrTruncated}
		}
		p.Name, off = name, d.off
	}
	if !p.Type.HasMessage() {
		if off != len(seg) {
			return nil, &DecodeError{Offset: off, Err: ErrTrailingData}
		}
		return p, nil
	}
	m, err := UnmarshalMessage(seg[off:])
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			// Report offsets relative to the segment, not to the message inside it.
			return nil, &DecodeError{Offset: off + de.Offset, Err: de.Err}
		}
		return nil, err
	}
	p.Message = m
	return p, nil
}

// ReadPacket reads and decodes one segment from r. It returns io.EOF if r ends cleanly before a
// segment starts and io.ErrUnexpectedEOF if it ends inside one. An announced length above
// MaxSegmentSize is refused before anything is allocated for it.
func ReadPacket(r io.Reader) (*Packet, error) {
	var hdr [segmentLenLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxSegmentSize {
		return nil, fmt.Errorf("%w: segment of %d bytes exceeds %d", ErrTooLarge, n, MaxSegmentSize)
	}
	if n == 0 {
		return nil, &DecodeError{Offset: 0, Err: ErrEmptySegment}
	}
	seg := make([]byte, n)
	if _, err := io.ReadFull(r, seg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return ParsePacket(seg)
}

// WritePacket encodes p and writes it to w in a single Write call, so that a writer shared under a
// lock never sees half a packet.
func WritePacket(w io.Writer, p *Packet) error {
	b, err := AppendPacket(nil, p)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
