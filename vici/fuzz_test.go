package vici

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode checks that any input either fails with a *DecodeError or decodes to a message that
// re-encodes to exactly the input (the encoding has one form per message) and decodes again to an
// equal message.
func FuzzDecode(f *testing.F) {
	f.Add(readmeExample)
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0})
	f.Add([]byte{4, 1, 'l', 5, 0, 1, 'x', 6})
	f.Add([]byte{1, 0, 1, 0, 2, 2})
	f.Add([]byte{1, 1, 's', 4, 1, 'l', 2})
	f.Add(bytes.Repeat([]byte{1, 0}, MaxDepth+1))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := UnmarshalMessage(in)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(in) {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v\n%s", err, m)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
		m2, err := UnmarshalMessage(out)
		if err != nil || !m2.Equal(m) {
			t.Fatalf("second decode: %v\n%s\nvs\n%s", err, m2, m)
		}
	})
}

// FuzzPacket feeds arbitrary bytes to ReadPacket as a stream of segments and ParsePacket as one
// segment; whatever parses must re-encode to the same bytes.
func FuzzPacket(f *testing.F) {
	for _, p := range []*Packet{
		{Type: CmdRequest, Name: "list-sas", Message: NewMessage().Set("noblock", "yes")},
		{Type: CmdResponse, Message: readmeExampleMessage()},
		{Type: CmdUnknown},
		{Type: EventRegister, Name: "list-sa"},
		{Type: EventUnregister, Name: "log"},
		{Type: EventConfirm},
		{Type: EventUnknown},
		{Type: Event, Name: "ike-updown", Message: NewMessage().Set("up", "yes")},
	} {
		b, err := AppendPacket(nil, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			start := len(in) - r.Len()
			p, err := ReadPacket(r)
			if err != nil {
				break
			}
			end := len(in) - r.Len()
			out, err := AppendPacket(nil, p)
			if err != nil {
				t.Fatalf("parsed packet does not encode: %v", err)
			}
			if !bytes.Equal(out, in[start:end]) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", in[start:end], out)
			}
		}
		p, err := ParsePacket(in)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("ParsePacket error %#v is not a *DecodeError", err)
			}
			return
		}
		out, err := AppendPacket(nil, p)
		if err != nil {
			t.Fatalf("parsed packet does not encode: %v", err)
		}
		if !bytes.Equal(out[segmentLenLen:], in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out[segmentLenLen:])
		}
	})
}
