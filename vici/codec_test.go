package vici

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// readmeExample is the encoding example of strongSwan's VICI documentation,
// src/libcharon/plugins/vici/README.md (5.9.8), section "Encoding example":
//
//	key1 = value1
//	section1 = {
//		sub-section = {
//			key2 = value2
//		}
//		list1 = [ item1, item2 ]
//	}
var readmeExample = []byte{
	// key1 = value1
	3, 4, 'k', 'e', 'y', '1', 0, 6, 'v', 'a', 'l', 'u', 'e', '1',
	// section1
	1, 8, 's', 'e', 'c', 't', 'i', 'o', 'n', '1',
	// sub-section
	1, 11, 's', 'u', 'b', '-', 's', 'e', 'c', 't', 'i', 'o', 'n',
	// key2 = value2
	3, 4, 'k', 'e', 'y', '2', 0, 6, 'v', 'a', 'l', 'u', 'e', '2',
	// sub-section end
	2,
	// list1
	4, 5, 'l', 'i', 's', 't', '1',
	// item1
	5, 0, 5, 'i', 't', 'e', 'm', '1',
	// item2
	5, 0, 5, 'i', 't', 'e', 'm', '2',
	// list1 end
	6,
	// section1 end
	2,
}

func readmeExampleMessage() *Message {
	m := NewMessage().Set("key1", "value1")
	s := m.AddSection("section1")
	s.AddSection("sub-section").Set("key2", "value2")
	s.SetList("list1", "item1", "item2")
	return m
}

func TestREADMEExampleEncode(t *testing.T) {
	got, err := readmeExampleMessage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, readmeExample) {
		t.Fatalf("encoding differs from the README example:\n got %q\nwant %q", got, readmeExample)
	}
}

func TestREADMEExampleDecode(t *testing.T) {
	m, err := UnmarshalMessage(readmeExample)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Equal(readmeExampleMessage()) {
		t.Fatalf("decoded:\n%s", m)
	}
	if got := m.Get("key1"); got != "value1" {
		t.Errorf("key1 = %q", got)
	}
	if got := m.Section("section1").Section("sub-section").Get("key2"); got != "value2" {
		t.Errorf("section1.sub-section.key2 = %q", got)
	}
	if got := m.Section("section1").List("list1"); len(got) != 2 || got[0] != "item1" || got[1] != "item2" {
		t.Errorf("section1.list1 = %q", got)
	}
	if got := m.Section("section1").Keys(); strings.Join(got, ",") != "sub-section,list1" {
		t.Errorf("section1 keys in order = %q", got)
	}
}

// TestRoundTrip encodes messages covering every element and edge size, decodes them, and checks the
// result equals the original and re-encodes to the same bytes.
func TestRoundTrip(t *testing.T) {
	deep := NewMessage()
	s := deep
	for range MaxDepth {
		s = s.AddSection("d")
	}
	s.Set("bottom", "yes")

	cases := map[string]*Message{
		"empty":         NewMessage(),
		"readme":        readmeExampleMessage(),
		"empty names":   NewMessage().Set("", "v").SetList("").SetSection("", NewMessage().Set("", "")),
		"empty list":    NewMessage().SetList("l"),
		"empty section": NewMessage().SetSection("s", nil),
		"binary value":  NewMessage().Set("data", "\x00\x01\xff\x02\x03"),
		"max sizes": NewMessage().
			Set(strings.Repeat("k", MaxNameLen), strings.Repeat("v", MaxValueLen)).
			SetList(strings.Repeat("l", MaxNameLen), strings.Repeat("i", MaxValueLen), ""),
		"max depth": deep,
		"order kept": NewMessage().Set("z", "1").Set("a", "2").SetList("m", "x").Set("b", "3").
			SetSection("c", NewMessage().Set("y", "4").Set("x", "5")),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			d, err := UnmarshalMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Equal(m) {
				t.Fatalf("round trip changed the message:\n got %s\nwant %s", d, m)
			}
			b2, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

// TestDecodeKeepsDuplicates: VICI asks for unique keys but the decoder keeps what it receives, so
// re-encoding stays byte-exact; lookups return the first.
func TestDecodeKeepsDuplicates(t *testing.T) {
	b := []byte{
		3, 1, 'k', 0, 1, 'a',
		3, 1, 'k', 0, 1, 'b',
	}
	m, err := UnmarshalMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 || m.Get("k") != "a" {
		t.Fatalf("decoded %s", m)
	}
	out, err := m.MarshalBinary()
	if err != nil || !bytes.Equal(out, b) {
		t.Fatalf("re-encoded %q, %v", out, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	nested := bytes.Repeat([]byte{elemSectionStart, 1, 'd'}, MaxDepth+1)
	cases := []struct {
		name   string
		in     []byte
		offset int
		err    error
	}{
		{"unknown type 0", []byte{0}, 0, ErrUnknownElement},
		{"unknown type 7", []byte{3, 1, 'k', 0, 0, 7}, 5, ErrUnknownElement},
		{"name length missing", []byte{3}, 0, ErrTruncated},
		{"name cut", []byte{3, 4, 'k', 'e'}, 0, ErrTruncated},
		{"value length missing", []byte{3, 1, 'k'}, 0, ErrTruncated},
		{"value length half", []byte{3, 1, 'k', 0}, 0, ErrTruncated},
		{"value cut", []byte{3, 1, 'k', 0, 3, 'v'}, 0, ErrTruncated},
		{"section name cut", []byte{1, 2, 's'}, 0, ErrTruncated},
		{"list name cut", []byte{4, 9}, 0, ErrTruncated},
		{"list item cut", []byte{4, 1, 'l', 5, 0}, 3, ErrTruncated},
		{"section end at root", []byte{3, 1, 'k', 0, 0, 2}, 5, ErrUnbalanced},
		{"section not closed", []byte{1, 1, 's', 3, 1, 'k', 0, 0}, 8, ErrUnbalanced},
		{"list not closed", []byte{4, 1, 'l', 5, 0, 0}, 6, ErrUnbalanced},
		{"list end outside list", []byte{6}, 0, ErrUnexpectedElement},
		{"list item outside list", []byte{5, 0, 0}, 0, ErrUnexpectedElement},
		{"nested list", []byte{4, 1, 'l', 4, 1, 'm'}, 3, ErrUnexpectedElement},
		{"key-value in list", []byte{4, 1, 'l', 3, 1, 'k', 0, 0}, 3, ErrUnexpectedElement},
		{"section in list", []byte{4, 1, 'l', 1, 1, 's'}, 3, ErrUnexpectedElement},
		{"section end in list", []byte{1, 1, 's', 4, 1, 'l', 2}, 6, ErrUnexpectedElement},
		{"too deep", nested, 3 * MaxDepth, ErrTooDeep},
		{"too large", make([]byte, MaxSegmentSize+1), 0, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := UnmarshalMessage(tc.in)
			if m != nil {
				t.Errorf("got message %s alongside error", m)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if *de != (DecodeError{Offset: tc.offset, Err: tc.err}) {
				t.Fatalf("got %v, want %v", de, &DecodeError{Offset: tc.offset, Err: tc.err})
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.err)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tooDeep := NewMessage()
	s := tooDeep
	for range MaxDepth + 1 {
		s = s.AddSection("d")
	}
	cyclic := NewMessage()
	cyclic.SetSection("self", cyclic)

	cases := []struct {
		name string
		m    *Message
		err  error
	}{
		{"name too long", NewMessage().Set(strings.Repeat("k", MaxNameLen+1), ""), ErrNameTooLong},
		{"section name too long", NewMessage().SetSection(strings.Repeat("s", MaxNameLen+1), nil), ErrNameTooLong},
		{"list name too long", NewMessage().SetList(strings.Repeat("l", MaxNameLen+1)), ErrNameTooLong},
		{"value too long", NewMessage().Set("k", strings.Repeat("v", MaxValueLen+1)), ErrValueTooLong},
		{"list item too long", NewMessage().SetList("l", strings.Repeat("v", MaxValueLen+1)), ErrValueTooLong},
		{"too deep", tooDeep, ErrTooDeep},
		{"cycle", cyclic, ErrTooDeep},
		{"zero kind", &Message{items: []Item{{Key: "k"}}}, ErrInvalidItem},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if b != nil {
				t.Fatalf("got %d bytes alongside error", len(b))
			}
		})
	}
}

func TestAppendBinaryKeepsPrefix(t *testing.T) {
	b, err := NewMessage().Set("a", "b").AppendBinary([]byte{0xaa})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xaa, 3, 1, 'a', 0, 1, 'b'}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
}

func TestValueLengthIsBigEndian(t *testing.T) {
	v := strings.Repeat("x", 0x0102)
	b, err := NewMessage().Set("k", v).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(b[3:5]); got != 0x0102 || b[3] != 0x01 {
		t.Fatalf("value length bytes %x", b[3:5])
	}
}
