package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mainMode1 is a Main Mode first message laid out by hand from RFC 2408 §3.1–3.6 and RFC 2409
// Appendix A: one proposal (ISAKMP, one transform KEY_IKE with AES-256, SHA2-256, PSK, MODP2048,
// lifetime 10800 s) and the RFC 3947 NAT-T vendor ID.
const mainMode1 = `
0102030405060708 0000000000000000 01 10 02 00 00000000 00000068
0d 00 0038 00000001 00000001
  00 00 002c 01 01 00 01
    00 00 0024 01 01 0000
      8001 0007 800e 0100 8002 0004 8003 0001 8004 000e 800b 0001 800c 2a30
00 00 0014 4a131c81070358455c5728f20e95452f`

func TestMainMode1Golden(t *testing.T) {
	b := unhex(t, mainMode1)
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.ICookie != 0x0102030405060708 || m.Header.Exchange != ExchangeMain || len(m.Payloads) != 2 {
		t.Fatalf("header %+v, %d payloads", m.Header, len(m.Payloads))
	}
	sa := m.Payloads[0].(*SA)
	want := []Attr{BasicAttr(1, 7), BasicAttr(14, 256), BasicAttr(2, 4), BasicAttr(3, 1), BasicAttr(4, 14), BasicAttr(11, 1), BasicAttr(12, 10800)}
	if len(sa.Proposals) != 1 || sa.Proposals[0].Protocol != ProtoISAKMP || len(sa.Proposals[0].Transforms) != 1 ||
		!reflect.DeepEqual(sa.Proposals[0].Transforms[0].Attrs, want) {
		t.Fatalf("SA %+v", sa)
	}
	if got := Body(sa); !bytes.Equal(got, b[HeaderLen+4:HeaderLen+0x38]) {
		t.Fatalf("SA body is not the bytes received")
	}
	// Built from values, the message encodes to the same bytes.
	built := &Message{Header: Header{ICookie: 0x0102030405060708, Exchange: ExchangeMain}, Payloads: []Payload{
		&SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: []Proposal{{Number: 1, Protocol: ProtoISAKMP,
			Transforms: []Transform{{Number: 1, ID: 1, Attrs: want}}}}},
		&VendorID{Data: unhex(t, "4a131c81070358455c5728f20e95452f")},
	}}
	out, err := built.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("encoded\n%x\nwant\n%x", out, b)
	}
}

func TestPayloadRoundTrips(t *testing.T) {
	ps := []Payload{
		&KE{Data: bytes.Repeat([]byte{7}, 256)},
		&Nonce{Data: bytes.Repeat([]byte{1}, 32)},
		&ID{IDType: IDIPv4Subnet, Data: []byte{10, 1, 0, 0, 255, 255, 255, 0}},
		&ID{IDType: IDFQDN, Protocol: 17, Port: 500, Data: []byte("gw.example.org")},
		&Hash{Data: bytes.Repeat([]byte{2}, 32)},
		&Notify{DOI: 1, Protocol: ProtoISAKMP, SPI: bytes.Repeat([]byte{3}, 16), NotifyType: RUThere, Data: []byte{0, 0, 0, 9}},
		&Delete{DOI: 1, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
		&Attributes{CfgType: CfgReply, Identifier: 77, Attrs: []Attr{{Type: 1, Data: []byte{10, 3, 0, 1}}, BasicAttr(16520, 1)}},
		&NATD{Hash: bytes.Repeat([]byte{4}, 20)},
		&NATOA{IDType: IDIPv4Addr, Addr: []byte{192, 0, 2, 1}},
		&Cert{Encoding: CertX509Sig, Data: []byte{0x30, 0}},
		&CertReq{Encoding: CertX509Sig},
		&Sig{Data: []byte{9, 9}},
		&Unknown{PType: 99, Data: []byte{1}},
	}
	body, err := EncodePayloads(ps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayloads(ps[0].Type(), body, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EncodePayloads(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, again) {
		t.Fatal("re-encoding differs")
	}
	if len(got) != len(ps) {
		t.Fatalf("%d payloads back", len(got))
	}
	for i := range ps {
		if !bytes.Equal(got[i].Raw(), ps[i].Raw()) {
			t.Fatalf("payload %d: raw bytes differ", i)
		}
	}
	// Padding after the chain: refused unless the body was decrypted.
	if _, err := DecodePayloads(ps[0].Type(), append(body, 0, 0, 0), false); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	if _, err := DecodePayloads(ps[0].Type(), append(body, 0, 0, 0), true); err != nil {
		t.Fatalf("padding refused: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	good := unhex(t, mainMode1)
	cases := map[string]func(b []byte) []byte{
		"short":            func(b []byte) []byte { return b[:20] },
		"length too long":  func(b []byte) []byte { b[27]++; return b },
		"length too short": func(b []byte) []byte { b[27]--; return b },
		"IKEv2":            func(b []byte) []byte { b[17] = 0x20; return b },
		"zero cookie":      func(b []byte) []byte { copy(b, make([]byte, 8)); return b },
		"payload overruns": func(b []byte) []byte { b[HeaderLen+3] = 0xff; return b },
		"proposal overruns": func(b []byte) []byte {
			b[HeaderLen+12+3] = 0x40
			return b
		},
		"transform count": func(b []byte) []byte { b[HeaderLen+12+7] = 2; return b },
		"attribute cut":   func(b []byte) []byte { b[HeaderLen+20+3] = 0x23; return b },
		"DOI":             func(b []byte) []byte { b[HeaderLen+7] = 2; return b },
		"transform outside": func(b []byte) []byte {
			b[16] = byte(PayloadTransform)
			return b
		},
	}
	for name, mutate := range cases {
		b := mutate(append([]byte(nil), good...))
		_, err := Decode(b)
		var we *Error
		if !errors.As(err, &we) {
			t.Errorf("%s: error %v, want a *wire.Error", name, err)
		}
	}
}

func TestDeleteAndNotifyLengths(t *testing.T) {
	for _, body := range [][]byte{
		unhex(t, "00000001 03 04 0002 01020304"), // two SPIs announced, one given
		unhex(t, "00000001 01 10 0001 0102"),     // ISAKMP SPI cut short
		unhex(t, "00000001 03 00 0001"),          // SPIs of size zero
		unhex(t, "00000001 03 04"),               // cut
	} {
		if _, err := decodeDelete(body, 0); err == nil {
			t.Errorf("Delete %x accepted", body)
		}
	}
	if _, err := decodeNotify(unhex(t, "00000001 01 10 8d28 0102"), 0); err == nil {
		t.Error("Notify with a short SPI accepted")
	}
}

func TestIsIKEv1(t *testing.T) {
	b := unhex(t, mainMode1)
	if !IsIKEv1(b) {
		t.Fatal("IKEv1 message not recognised")
	}
	b[17] = 0x20
	if IsIKEv1(b) || IsIKEv1(b[:10]) {
		t.Fatal("IKEv2 or short message taken for IKEv1")
	}
}

// FuzzDecode: never panics; what decodes re-encodes to bytes that decode to the same payloads.
func FuzzDecode(f *testing.F) {
	f.Add(unhex(f, mainMode1))
	body, _ := EncodePayloads([]Payload{&Nonce{Data: make([]byte, 16)}, &Delete{DOI: 1, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}}},
		&Attributes{CfgType: CfgRequest, Attrs: []Attr{{Type: 1}}}, &NATOA{IDType: IDIPv4Addr, Addr: make([]byte, 4)}})
	f.Add(Assemble(Header{ICookie: 1, Exchange: ExchangeQuick}, PayloadNonce, body))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		out2, err := m2.Encode()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second encoding differs")
		}
	})
}
