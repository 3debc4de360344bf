package vici

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// Golden packets, built from the packet layer of the VICI README: 4-byte big-endian segment length,
// type byte, 1-byte name length and name for named types, then the message.
func TestPacketGolden(t *testing.T) {
	cases := []struct {
		name string
		p    Packet
		want []byte
	}{
		{"version request", Packet{Type: CmdRequest, Name: "version"},
			append([]byte{0, 0, 0, 9, 0, 7}, "version"...)},
		{"response with README message", Packet{Type: CmdResponse, Message: readmeExampleMessage()},
			append([]byte{0, 0, 0, byte(1 + len(readmeExample)), 1}, readmeExample...)},
		{"unknown command", Packet{Type: CmdUnknown}, []byte{0, 0, 0, 1, 2}},
		{"register", Packet{Type: EventRegister, Name: "list-sa"},
			append([]byte{0, 0, 0, 9, 3, 7}, "list-sa"...)},
		{"unregister", Packet{Type: EventUnregister, Name: "log"},
			append([]byte{0, 0, 0, 5, 4, 3}, "log"...)},
		{"confirm", Packet{Type: EventConfirm}, []byte{0, 0, 0, 1, 5}},
		{"unknown event", Packet{Type: EventUnknown}, []byte{0, 0, 0, 1, 6}},
		{"event", Packet{Type: Event, Name: "log", Message: NewMessage().Set("msg", "hi")},
			[]byte{0, 0, 0, 14, 7, 3, 'l', 'o', 'g', 3, 3, 'm', 's', 'g', 0, 2, 'h', 'i'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendPacket(nil, &tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoded %x\n    want %x", got, tc.want)
			}
			p, err := ParsePacket(got[segmentLenLen:])
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != tc.p.Type || p.Name != tc.p.Name || !p.Message.Equal(tc.p.Message) {
				t.Fatalf("parsed %+v, want %+v", p, tc.p)
			}
			if tc.p.Type.HasMessage() && p.Message == nil {
				t.Fatal("message-carrying packet parsed with nil Message")
			}
			r, err := ReadPacket(bytes.NewReader(got))
			if err != nil || r.Type != tc.p.Type || r.Name != tc.p.Name {
				t.Fatalf("ReadPacket: %+v, %v", r, err)
			}
		})
	}
}

func TestParsePacketErrors(t *testing.T) {
	cases := []struct {
		name   string
		seg    []byte
		offset int
		err    error
	}{
		{"empty", nil, 0, ErrEmptySegment},
		{"type 8", []byte{8}, 0, ErrUnknownPacketType},
		{"type 255", []byte{255, 0}, 0, ErrUnknownPacketType},
		{"name length missing", []byte{byte(CmdRequest)}, 1, ErrTruncated},
		{"name cut", []byte{byte(Event), 5, 'l', 'o'}, 1, ErrTruncated},
		{"register name cut", []byte{byte(EventRegister), 1}, 1, ErrTruncated},
		{"data after unknown", []byte{byte(CmdUnknown), 0}, 1, ErrTrailingData},
		{"data after confirm", []byte{byte(EventConfirm), 3}, 1, ErrTrailingData},
		{"data after register name", []byte{byte(EventRegister), 1, 'x', 3}, 3, ErrTrailingData},
		// Message errors are reported at their offset in the segment: 1 type + 1 + 3 name.
		{"bad message in event", []byte{byte(Event), 3, 'l', 'o', 'g', 6}, 5, ErrUnexpectedElement},
		{"bad message in response", []byte{byte(CmdResponse), 3, 1}, 1, ErrTruncated},
		{"too large", append([]byte{byte(CmdResponse)}, make([]byte, MaxSegmentSize)...), 0, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePacket(tc.seg)
			if p != nil {
				t.Errorf("got packet %+v alongside error", p)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if *de != (DecodeError{Offset: tc.offset, Err: tc.err}) {
				t.Fatalf("got %v, want %v", de, &DecodeError{Offset: tc.offset, Err: tc.err})
			}
		})
	}
}

func TestParsePacketEmptyMessages(t *testing.T) {
	p, err := ParsePacket([]byte{byte(CmdRequest), 0})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "" || p.Message == nil || p.Message.Len() != 0 {
		t.Fatalf("%+v", p)
	}
}

func TestReadPacketStream(t *testing.T) {
	var stream []byte
	var err error
	for _, p := range []*Packet{
		{Type: EventRegister, Name: "list-sa"},
		{Type: CmdRequest, Name: "list-sas", Message: NewMessage().Set("noblock", "yes")},
		{Type: EventUnregister, Name: "list-sa"},
	} {
		if stream, err = AppendPacket(stream, p); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	want := []string{"EVENT_REGISTER list-sa", "CMD_REQUEST list-sas", "EVENT_UNREGISTER list-sa"}
	for _, w := range want {
		p, err := ReadPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Type.String() + " " + p.Name; got != w {
			t.Fatalf("got %s, want %s", got, w)
		}
	}
	if _, err := ReadPacket(r); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

func TestReadPacketErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		err  error
	}{
		{"partial header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"zero length", []byte{0, 0, 0, 0}, ErrEmptySegment},
		{"body cut", []byte{0, 0, 0, 5, 0, 3}, io.ErrUnexpectedEOF},
		{"body missing", []byte{0, 0, 0, 5}, io.ErrUnexpectedEOF},
		{"too large", []byte{0, 8, 0, 1}, ErrTooLarge},
		{"max uint32", []byte{0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"bad packet", []byte{0, 0, 0, 1, 9}, ErrUnknownPacketType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ReadPacket(bytes.NewReader(tc.in))
			if p != nil || !errors.Is(err, tc.err) {
				t.Fatalf("got %+v, %v; want %v", p, err, tc.err)
			}
		})
	}
}

// TestSegmentSizeLimit: a segment of exactly MaxSegmentSize bytes is accepted both ways, one byte
// more is refused by the encoder and by the reader (before reading the body).
func TestSegmentSizeLimit(t *testing.T) {
	// A response of KEY_VALUE elements: 1 type + 1 name length + 1 name + 2 value length + value.
	const perValue = 5
	msg := NewMessage()
	remaining := MaxSegmentSize - packetTypeLen
	for i := 0; remaining > 0; i++ {
		n := min(MaxValueLen, remaining-perValue)
		msg.Set(string(rune('a'+i)), strings.Repeat("v", n))
		remaining -= perValue + n
	}
	b, err := AppendPacket(nil, &Packet{Type: CmdResponse, Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != segmentLenLen+MaxSegmentSize {
		t.Fatalf("test message has %d bytes", len(b)-segmentLenLen)
	}
	if _, err := ReadPacket(bytes.NewReader(b)); err != nil {
		t.Fatalf("reading a maximal segment: %v", err)
	}
	msg.Set("z", "")
	if _, err := AppendPacket(nil, &Packet{Type: CmdResponse, Message: msg}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("encoding an oversized segment: %v", err)
	}
	over := binary.BigEndian.AppendUint32(nil, MaxSegmentSize+1)
	if _, err := ReadPacket(bytes.NewReader(over)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("reading an oversized header: %v", err)
	}
}

func TestAppendPacketErrors(t *testing.T) {
	cases := []struct {
		name string
		p    Packet
		want string
	}{
		{"invalid type", Packet{Type: 8}, "vici: unknown packet type: 8"},
		{"name on response", Packet{Type: CmdResponse, Name: "x"}, "vici: CMD_RESPONSE packet cannot carry a name"},
		{"message on confirm", Packet{Type: EventConfirm, Message: NewMessage().Set("a", "b")}, "vici: EVENT_CONFIRM packet cannot carry a message"},
		{"message on register", Packet{Type: EventRegister, Name: "log", Message: NewMessage().Set("a", "b")}, "vici: EVENT_REGISTER packet cannot carry a message"},
		{"name too long", Packet{Type: CmdRequest, Name: strings.Repeat("n", 256)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := AppendPacket([]byte{1}, &tc.p)
			if err == nil || b != nil {
				t.Fatalf("got %x, %v", b, err)
			}
			if tc.want != "" && err.Error() != tc.want {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
			if tc.want == "" && !errors.Is(err, ErrNameTooLong) {
				t.Fatalf("error %v, want ErrNameTooLong", err)
			}
		})
	}
}

func TestWritePacketSingleWrite(t *testing.T) {
	var w countingWriter
	if err := WritePacket(&w, &Packet{Type: Event, Name: "log", Message: readmeExampleMessage()}); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 {
		t.Fatalf("%d Write calls, want 1", w.calls)
	}
	if err := WritePacket(&w, &Packet{Type: 99}); !errors.Is(err, ErrUnknownPacketType) || w.calls != 1 {
		t.Fatalf("invalid packet: %v after %d writes", err, w.calls)
	}
}

type countingWriter struct {
	bytes.Buffer
	calls int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.calls++
	return w.Buffer.Write(b)
}

func TestPacketTypeMethods(t *testing.T) {
	named := map[PacketType]bool{CmdRequest: true, EventRegister: true, EventUnregister: true, Event: true}
	withMsg := map[PacketType]bool{CmdRequest: true, CmdResponse: true, Event: true}
	for pt := PacketType(0); pt < 10; pt++ {
		if pt.Named() != named[pt] || pt.HasMessage() != withMsg[pt] || pt.Valid() != (pt <= Event) {
			t.Errorf("%v: Named %v HasMessage %v Valid %v", pt, pt.Named(), pt.HasMessage(), pt.Valid())
		}
	}
	if Event.String() != "EVENT" || PacketType(9).String() != "PacketType(9)" {
		t.Errorf("String: %s %s", Event, PacketType(9))
	}
}
