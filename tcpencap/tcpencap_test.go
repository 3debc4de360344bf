package tcpencap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// ikeMsg is a minimal IKE header (28 bytes), enough for the framing.
var ikeMsg = bytes.Repeat([]byte{0x11}, 28)

// espPkt is an ESP packet: SPI 0x01020304, sequence number 1, four payload bytes.
var espPkt, _ = hex.DecodeString("010203040000000161626364")

// TestGolden: the frames of RFC 9329 §3.1 and §3.2, byte for byte.
func TestGolden(t *testing.T) {
	b, err := AppendIKE([]byte(Prefix), ikeMsg)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = AppendESP(b, espPkt); err != nil {
		t.Fatal(err)
	}
	want := "494b45544350" + // "IKETCP"
		"0022" + "00000000" + hex.EncodeToString(ikeMsg) + // Length 34 = 2 + 4 + 28, marker, IKE
		"000e" + "010203040000000161626364" // Length 14 = 2 + 12, ESP
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("frames\n%s\nwant\n%s", got, want)
	}
}

// TestDecoderSplits feeds a stream one byte at a time and in one piece: the same frames come out.
func TestDecoderSplits(t *testing.T) {
	stream := []byte(Prefix)
	stream, _ = AppendIKE(stream, ikeMsg)
	stream, _ = AppendESP(stream, espPkt)
	stream, _ = AppendESP(stream, espPkt)
	for _, step := range []int{1, 3, 7, len(stream)} {
		d := NewDecoder(true)
		var kinds []Kind
		var msgs [][]byte
		for i := 0; i < len(stream); i += step {
			d.Feed(stream[i:min(i+step, len(stream))])
			for {
				k, m, ok, err := d.Next()
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if !ok {
					break
				}
				kinds = append(kinds, k)
				msgs = append(msgs, bytes.Clone(m))
			}
		}
		if len(kinds) != 3 || kinds[0] != IKE || kinds[1] != ESP || kinds[2] != ESP ||
			!bytes.Equal(msgs[0], ikeMsg) || !bytes.Equal(msgs[1], espPkt) || !bytes.Equal(msgs[2], espPkt) {
			t.Fatalf("step %d: kinds %v", step, kinds)
		}
		if d.Buffered() != 0 {
			t.Fatalf("step %d: %d bytes left", step, d.Buffered())
		}
	}
}

func TestDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix bool
		stream []byte
		want   error
	}{
		{"wrong prefix", true, []byte("IKEUDP\x00\x0e"), ErrPrefix},
		{"wrong prefix start", true, []byte("X"), ErrPrefix},
		{"short length", false, []byte{0x00, 0x05, 1, 2, 3}, ErrShortFrame},
		{"short IKE", false, append([]byte{0x00, 0x0e, 0, 0, 0, 0}, make([]byte, 8)...), ErrShortFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.prefix)
			d.Feed(tc.stream)
			_, _, ok, err := d.Next()
			if ok || !errors.Is(err, tc.want) {
				t.Fatalf("Next = %v, %v; want %v", ok, err, tc.want)
			}
			d.Feed(espPkt)
			if _, _, _, err2 := d.Next(); !errors.Is(err2, tc.want) {
				t.Fatalf("after an error Next returned %v", err2)
			}
		})
	}
	if _, err := AppendESP(nil, []byte{0, 0, 0, 0, 0, 0, 0, 1}); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("ESP with SPI 0: %v", err)
	}
	if _, err := AppendIKE(nil, make([]byte, MaxFrame)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large IKE: %v", err)
	}
	if _, err := AppendESP(nil, make([]byte, MaxFrame-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large ESP: %v", err)
	}
}

// FuzzDecoder: any byte stream, fed in any split, yields frames that re-encode to the stream
// consumed, or an error; never a panic or unbounded buffering.
func FuzzDecoder(f *testing.F) {
	seed := []byte(Prefix)
	seed, _ = AppendIKE(seed, ikeMsg)
	seed, _ = AppendESP(seed, espPkt)
	f.Add(seed, uint8(5), true)
	f.Add([]byte{0x00, 0x0e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(1), false)
	f.Fuzz(func(t *testing.T, stream []byte, split uint8, prefix bool) {
		step := int(split)%17 + 1
		d := NewDecoder(prefix)
		var re []byte
		failed := false
		for i := 0; i < len(stream) && !failed; i += step {
			d.Feed(stream[i:min(i+step, len(stream))])
			for {
				k, m, ok, err := d.Next()
				if err != nil {
					failed = true
					break
				}
				if !ok {
					break
				}
				var aerr error
				switch k {
				case IKE:
					re, aerr = AppendIKE(re, m)
				case ESP:
					re, aerr = AppendESP(re, m)
				}
				if aerr != nil {
					t.Fatalf("decoded %s frame does not re-encode: %v", k, aerr)
				}
			}
			if d.Buffered() > MaxFrame+len(Prefix) {
				t.Fatalf("%d bytes buffered", d.Buffered())
			}
		}
		if failed {
			return
		}
		consumed := stream[:len(stream)-d.Buffered()]
		if prefix && len(consumed) > 0 {
			re = append([]byte(Prefix), re...)
		}
		if !bytes.Equal(re, consumed) {
			t.Fatalf("re-encoded frames differ from the stream consumed")
		}
	})
}
