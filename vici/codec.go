package vici

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Element types of the message encoding (README "Message format").
const (
	elemSectionStart = 1
	elemSectionEnd   = 2
	elemKeyValue     = 3
	elemListStart    = 4
	elemListItem     = 5
	elemListEnd      = 6
)

// Field sizes of the message encoding.
const (
	elemTypeLen   = 1 // element type byte
	nameLenLen    = 1 // length prefix of names
	valueLenLen   = 2 // big-endian length prefix of values
	MaxNameLen    = 1<<(8*nameLenLen) - 1
	MaxValueLen   = 1<<(8*valueLenLen) - 1
	MaxDepth      = 64 // sections nested below the root; swanctl.conf needs about 5
	maxDecodeSize = MaxSegmentSize
)

// Decoding and encoding errors. A *DecodeError wraps one of the decoding errors.
var (
	ErrTruncated         = errors.New("vici: truncated")
	ErrUnknownElement    = errors.New("vici: unknown element type")
	ErrUnexpectedElement = errors.New("vici: element not allowed here")
	ErrUnbalanced        = errors.New("vici: unbalanced section or list")
	ErrTooDeep           = errors.New("vici: sections nested too deeply")
	ErrTooLarge          = errors.New("vici: too large")
	ErrNameTooLong       = errors.New("vici: name longer than 255 bytes")
	ErrValueTooLong      = errors.New("vici: value longer than 65535 bytes")
	ErrInvalidItem       = errors.New("vici: item with invalid kind")
)

// DecodeError says where decoding failed: Offset is the byte offset, within the decoded buffer, of
// the element (or packet field) that could not be decoded.
type DecodeError struct {
	Offset int
	Err    error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%v at offset %d", e.Err, e.Offset) }
func (e *DecodeError) Unwrap() error { return e.Err }

// MarshalBinary encodes m in the VICI message encoding.
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to dst. It fails if a name or value does not fit its
// length field or sections nest deeper than MaxDepth, so whatever it produces decodes again.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	return m.appendItems(dst, 0)
}

func (m *Message) appendItems(dst []byte, depth int) ([]byte, error) {
	var err error
	for i := range m.Len() {
		it := &m.items[i]
		switch it.Kind {
		case KindValue:
			dst = append(dst, elemKeyValue)
			if dst, err = appendName(dst, it.Key); err != nil {
				return nil, err
			}
			if dst, err = appendValue(dst, it.Value); err != nil {
				return nil, err
			}
		case KindList:
			dst = append(dst, elemListStart)
			if dst, err = appendName(dst, it.Key); err != nil {
				return nil, err
			}
			for _, v := range it.List {
				dst = append(dst, elemListItem)
				if dst, err = appendValue(dst, v); err != nil {
					return nil, err
				}
			}
			dst = append(dst, elemListEnd)
		case KindSection:
			if depth >= MaxDepth {
				return nil, ErrTooDeep
			}
			dst = append(dst, elemSectionStart)
			if dst, err = appendName(dst, it.Key); err != nil {
				return nil, err
			}
			if dst, err = it.Section.appendItems(dst, depth+1); err != nil {
				return nil, err
			}
			dst = append(dst, elemSectionEnd)
		default:
			return nil, fmt.Errorf("%w: %q is %v", ErrInvalidItem, it.Key, it.Kind)
		}
	}
	return dst, nil
}

func appendName(dst []byte, name string) ([]byte, error) {
	if len(name) > MaxNameLen {
		return nil, fmt.Errorf("%w: %.32q (truncated)", ErrNameTooLong, name)
	}
	dst = append(dst, byte(len(name)))
	return append(dst, name...), nil
}

func appendValue(dst []byte, value string) ([]byte, error) {
	if len(value) > MaxValueLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrValueTooLong, len(value))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(value)))
	return append(dst, value...), nil
}

// UnmarshalMessage decodes a complete VICI message. It checks the grammar of the README: sections
// balanced, lists not nested and holding only items, no items outside lists, every element complete
// and nothing left over. Input longer than MaxSegmentSize is refused before decoding.
func UnmarshalMessage(b []byte) (*Message, error) {
	if len(b) > maxDecodeSize {
		return nil, &DecodeError{Offset: 0, Err: ErrTooLarge}
	}
	d := decoder{buf: b}
	return d.message()
}

// UnmarshalBinary decodes b into m, replacing its contents.
func (m *Message) UnmarshalBinary(b []byte) error {
	dec, err := UnmarshalMessage(b)
	if err != nil {
		return err
	}
	*m = *dec
	return nil
}

type decoder struct {
	buf []byte
	off int // next unread byte
}

// message decodes elements until the buffer ends. open holds the sections from the root down to the
// one receiving items; list is the list being filled, if any.
func (d *decoder) message() (*Message, error) {
	root := &Message{}
	open := []*Message{root}
	var list *Item // the open list, not yet appended to its section
	for d.off < len(d.buf) {
		start := d.off
		fail := func(err error) (*Message, error) { return nil, &DecodeError{Offset: start, Err: err} }
		typ := d.buf[d.off]
		d.off += elemTypeLen
		cur := open[len(open)-1]
		switch typ {
		case elemSectionStart:
			if list != nil {
				return fail(ErrUnexpectedElement)
			}
			if len(open) > MaxDepth {
				return fail(ErrTooDeep)
			}
			name, ok := d.name()
			if !ok {
				return fail(ErrTruncated)
			}
			s := cur.AddSection(name)
			open = append(open, s)
		case elemSectionEnd:
			if list != nil {
				return fail(ErrUnexpectedElement)
			}
			if len(open) == 1 {
				return fail(ErrUnbalanced)
			}
			open = open[:len(open)-1]
		case elemKeyValue:
			if list != nil {
				return fail(ErrUnexpectedElement)
			}
			name, ok := d.name()
			if !ok {
				return fail(ErrTruncated)
			}
			value, ok := d.value()
			if !ok {
				return fail(ErrTruncated)
			}
			cur.items = append(cur.items, Item{Key: name, Kind: KindValue, Value: value})
		case elemListStart:
			if list != nil {
				return fail(ErrUnexpectedElement)
			}
			name, ok := d.name()
			if !ok {
				return fail(ErrTruncated)
			}
			list = &Item{Key: name, Kind: KindList, List: []string{}}
		case elemListItem:
			if list == nil {
				return fail(ErrUnexpectedElement)
			}
			value, ok := d.value()
			if !ok {
				return fail(ErrTruncated)
			}
			list.List = append(list.List, value)
		case elemListEnd:
			if list == nil {
				return fail(ErrUnexpectedElement)
			}
			cur.items = append(cur.items, *list)
			list = nil
		default:
			return fail(ErrUnknownElement)
		}
	}
	if list != nil || len(open) != 1 {
		return nil, &DecodeError{Offset: d.off, Err: ErrUnbalanced}
	}
	return root, nil
}

// name reads a 1-byte length and that many bytes.
func (d *decoder) name() (string, bool) {
	if len(d.buf)-d.off < nameLenLen {
		return "", false
	}
	n := int(d.buf[d.off])
	d.off += nameLenLen
	return d.bytes(n)
}

// value reads a 2-byte big-endian length and that many bytes.
func (d *decoder) value() (string, bool) {
	if len(d.buf)-d.off < valueLenLen {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(d.buf[d.off:]))
	d.off += valueLenLen
	return d.bytes(n)
}

func (d *decoder) bytes(n int) (string, bool) {
	if len(d.buf)-d.off < n {
		return "", false
	}
	s := string(d.buf[d.off : d.off+n])
	d.off += n
	return s, true
}
