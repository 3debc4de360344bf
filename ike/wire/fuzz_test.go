package wire

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// bytes that decode to an equal message and re-encode identically.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{"*.hex", "strongswan/*/*.bin"} {
		names, _ := filepath.Glob(filepath.Join("testdata", pattern))
		for _, name := range names {
			rel, _ := filepath.Rel("testdata", name)
			f.Add(readTestdata(f, rel))
		}
	}
	gcm := newGCM(f)
	b, err := authMessage().EncodeEncrypted(innerGoldenPayloads(), gcm)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	frags, err := authMessage().EncodeFragments(innerGoldenPayloads(), gcm, 200)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frags[0])
	// The inner chain in the clear, as an unencrypted message.
	inner := unhex(f, innerGolden)
	hdr := unhex(f, "0102030405060708 1112131415161718 23 20 25 20 00000002 00000000")
	msg := append(hdr, inner...)
	msg[hdrLengthOff+3] = byte(len(msg))
	msg[hdrLengthOff+2] = byte(len(msg) >> 8)
	f.Add(msg)

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n%x", err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("messages differ after a round trip:\n%#v\n%#v", m, m2)
		}
		out2, err := m2.Encode()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second encoding differs: %v", err)
		}
		_ = CheckGrammar(m, nil) // must not panic on any decoded message
	})
}

// FuzzDecodePayloads does the same for inner chains, the plaintext of SK.
func FuzzDecodePayloads(f *testing.F) {
	f.Add(byte(PayloadIDi), unhex(f, innerGolden))
	f.Add(byte(PayloadSA), readTestdata(f, "ike_sa_init_request.hex")[HeaderLen:])
	f.Fuzz(func(t *testing.T, first byte, b []byte) {
		ps, err := DecodePayloads(PayloadType(first), b)
		if err != nil {
			return
		}
		gotFirst, out, err := EncodePayloads(ps)
		if err != nil {
			t.Fatalf("decoded chain does not encode: %v", err)
		}
		ps2, err := DecodePayloads(gotFirst, out)
		if err != nil || !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("chain differs after a round trip: %v", err)
		}
	})
}

// FuzzReassemble feeds the Reassembler arbitrary fragment sequences. Each
// record of the input is: message ID, fragment number, total, data length,
// data. The bounds must hold after every step, and a completed message
// must be a valid chain.
func FuzzReassemble(f *testing.F) {
	whole := []byte(vendorChain("0123456789"))
	var seed []byte
	for i, part := range [][]byte{whole[:5], whole[5:10], whole[10:]} {
		seed = append(seed, 1, byte(3-i), 3, byte(len(part)))
		seed = append(seed, part...)
	}
	f.Add(seed)
	f.Add([]byte{1, 1, 2, 3, 'a', 'b', 'c', 1, 1, 3, 0, 2, 2, 2, 0})
	const maxFragments, maxBytes = 16, 64
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReassembler(maxFragments, maxBytes)
		for len(in) >= 4 {
			id, n, total, size := in[0], in[1], in[2], int(in[3])
			in = in[4:]
			size = min(size, len(in))
			fr := Fragment{Number: uint16(n), Total: uint16(total), Data: in[:size]}
			in = in[size:]
			if n == 1 {
				fr.First = PayloadVendorID
			}
			inner, done, err := r.Add(uint32(id), fr)
			if r.bytes > maxBytes || r.received > int(r.total) || len(r.parts) != int(r.total) {
				t.Fatalf("bounds broken: %d bytes, %d of %d fragments, %d slots", r.bytes, r.received, r.total, len(r.parts))
			}
			if done {
				if err != nil {
					t.Fatalf("done with error %v", err)
				}
				if _, _, err := EncodePayloads(inner); err != nil {
					t.Fatalf("reassembled chain does not encode: %v", err)
				}
			}
		}
	})
}
