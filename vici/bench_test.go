package vici

import "testing"

// listSAEvent is a list-sa event of the size charon streams per IKE SA with one CHILD_SA.
func listSAEvent() *Message {
	m := NewMessage()
	childSA(ikeSA(m.AddSection("home")).AddSection("child-sas").AddSection("net-2"), "2", "INSTALLED", "68d84a2b", "42c978e5")
	return m
}

func BenchmarkMarshal(b *testing.B) {
	m := listSAEvent()
	buf, err := m.AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	buf, err := listSAEvent().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalMessage(buf); err != nil {
			b.Fatal(err)
		}
	}
}
