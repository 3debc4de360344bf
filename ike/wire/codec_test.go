package wire

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".hex") {
		return unhex(t, string(raw))
	}
	return raw
}

// TestRoundTripTestdata decodes every datagram in testdata/ and demands
// that re-encoding gives the identical bytes.
func TestRoundTripTestdata(t *testing.T) {
	// Walk subdirectories too, so captured sets (testdata/<source>/...)
	// slot in without touching this test.
	var names []string
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".hex" || ext == ".bin") {
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no testdata")
	}
	for _, path := range names {
		name, _ := filepath.Rel("testdata", path)
		t.Run(name, func(t *testing.T) {
			b := readTestdata(t, name)
			m, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			out, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("round trip differs:\n got %x\nwant %x", out, b)
			}
		})
	}
}

// TestDecodeIKESAInitRequest checks every field of the annotated golden
// message against what the annotations say.
func TestDecodeIKESAInitRequest(t *testing.T) {
	b := readTestdata(t, "ike_sa_init_request.hex")
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{
		Header: Header{
			SPIi: 0x0102030405060708, NextPayload: PayloadSA, Exchange: ExchangeIKESAInit,
			Flags: FlagInitiator, Length: 208,
		},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{
				Number: 1, Protocol: ProtoIKE,
				Transforms: []Transform{
					{Type: TransformENCR, ID: 20, Attributes: []Attribute{KeyLengthAttribute(128)}},
					{Type: TransformPRF, ID: 5},
					{Type: TransformKE, ID: 31},
					{Type: TransformKE, ID: 14},
				},
			}}},
			&KE{Group: 31, Data: seq(0xa0, 32)},
			&Nonce{Data: seq(0xc0, 32)},
			&Notify{NotifyType: NATDetectionSourceIP, Data: seq(0xe0, 20)},
			&Notify{NotifyType: FragmentationSupported, Data: []byte{}},
			&VendorID{Data: []byte("goipsec-test-vid")},
		},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded\n%#v\nwant\n%#v", m, want)
	}
	if !m.IsInitiator() || m.IsResponse() {
		t.Fatalf("flags %#x", m.Flags)
	}
	sa := m.Payloads[0].(*SA)
	if bits, ok := sa.Proposals[0].Transforms[0].KeyLength(); !ok || bits != 128 {
		t.Fatalf("KeyLength = %d, %v", bits, ok)
	}
	if _, ok := sa.Proposals[0].Transforms[1].KeyLength(); ok {
		t.Fatal("PRF transform has no Key Length")
	}
	// Built from the struct, the message is the annotated bytes.
	want.Header.NextPayload, want.Header.Length = 0, 0 // computed by Encode
	out, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("Encode:\n got %x\nwant %x", out, b)
	}
}

// innerGolden is an inner payload chain with one of every payload type an
// SK payload can hold, hand-built from RFC 7296 §3.5-3.16.
const innerGolden = `
# IDi (§3.5): next CERT, length 23, ID_FQDN "vpn.example.com"
25 00 0017 02 000000 76706e2e6578616d706c652e636f6d
# CERT (§3.6): next CERTREQ, length 13, X.509 signature, 8 bytes
26 00 000d 04 3082000430020500
# CERTREQ (§3.7): next AUTH, length 25, X.509, one SHA-1 hash
27 00 0019 04 505152535455565758595a5b5c5d5e5f60616263
# AUTH (§3.8): next CP, length 24, shared key MIC, 16 bytes
2f 00 0018 02 000000 606162636465666768696a6b6c6d6e6f
# CP (§3.15): next SA, length 20, CFG_REQUEST, empty attributes 1, 3, 8
21 00 0014 01 000000 0001 0000 0003 0000 0008 0000
# SA (§3.3): next TSi, length 50, one ESP proposal with SPI 0a0b0c0d
2c 00 0032
  00 00 002e 01 03 04 03 0a0b0c0d
    03 00 000c 01 00 0014 800e 0100     # ENCR 20, Key Length 256
    03 00 0008 05 00 0001               # ESN 1
    00 00 000e 05 00 0000 0011 0002 abcd  # ESN 0 with a TLV attribute 17
# TSi (§3.13): next TSr, length 24, 10.0.0.0-10.255.255.255 any protocol/port
2d 00 0018 01 000000 07 00 0010 0000 ffff 0a000000 0affffff
# TSr: next N, length 48, TCP port 443, 2001:db8::-2001:db8::ffff
29 00 0030 01 000000 08 06 0028 01bb 01bb
  20010db8000000000000000000000000 20010db800000000000000000000ffff
# N (§3.10): next D, length 12, ESP, SPI size 4, REKEY_SA, SPI aabbccdd
2a 00 000c 03 04 4009 aabbccdd
# D (§3.11): next EAP, length 16, ESP, SPI size 4, 2 SPIs
30 00 0010 03 04 0002 11223344 55667788
# EAP (§3.16): next V, length 14, Response id 7, length 10, Identity "alice"
2b 00 000e 02 07 000a 01 616c696365
# V (§3.12): next private type 128, length 8
80 00 0008 01020304
# unknown payload 128, not critical: last, length 7
00 00 0007 0a0b0c
`

func innerGoldenPayloads() []Payload {
	return []Payload{
		&IDi{IDType: IDFQDN, Data: []byte("vpn.example.com")},
		&CERT{Encoding: CertX509Signature, Data: unhexString("3082000430020500")},
		&CERTREQ{Encoding: CertX509Signature, Data: seq(0x50, 20)},
		&AUTH{Method: AuthSharedKeyMIC, Data: seq(0x60, 16)},
		&CP{CFGType: CFGRequest, Attributes: []CPAttribute{
			{Type: InternalIP4Address, Value: []byte{}},
			{Type: InternalIP4DNS, Value: []byte{}},
			{Type: InternalIP6Address, Value: []byte{}},
		}},
		&SA{Proposals: []Proposal{{
			Number: 1, Protocol: ProtoESP, SPI: []byte{0x0a, 0x0b, 0x0c, 0x0d},
			Transforms: []Transform{
				{Type: TransformENCR, ID: 20, Attributes: []Attribute{KeyLengthAttribute(256)}},
				{Type: TransformESN, ID: 1},
				{Type: TransformESN, ID: 0, Attributes: []Attribute{{Type: 17, Value: []byte{0xab, 0xcd}}}},
			},
		}}},
		&TSi{Selectors: []TrafficSelector{{
			TSType: TSIPv4AddrRange, StartPort: 0, EndPort: 0xffff,
			Start: netip.MustParseAddr("10.0.0.0"), End: netip.MustParseAddr("10.255.255.255"),
		}}},
		&TSr{Selectors: []TrafficSelector{{
			TSType: TSIPv6AddrRange, IPProtocol: 6, StartPort: 443, EndPort: 443,
			Start: netip.MustParseAddr("2001:db8::"), End: netip.MustParseAddr("2001:db8::ffff"),
		}}},
		&Notify{Protocol: ProtoESP, SPI: []byte{0xaa, 0xbb, 0xcc, 0xdd}, NotifyType: RekeySA, Data: []byte{}},
		&Delete{Protocol: ProtoESP, SPIs: [][]byte{{0x11, 0x22, 0x33, 0x44}, {0x55, 0x66, 0x77, 0x88}}},
		&EAP{Code: EAPResponse, Identifier: 7, EAPType: 1, Data: []byte("alice")},
		&VendorID{Data: []byte{1, 2, 3, 4}},
		&Unknown{PayloadType: 128, Body: []byte{0x0a, 0x0b, 0x0c}},
	}
}

func unhexString(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestInnerPayloadsGolden(t *testing.T) {
	b := unhex(t, innerGolden)
	got, err := DecodePayloads(PayloadIDi, b)
	if err != nil {
		t.Fatal(err)
	}
	want := innerGoldenPayloads()
	if len(got) != len(want) {
		t.Fatalf("%d payloads, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("payload %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}
	first, out, err := EncodePayloads(want)
	if err != nil {
		t.Fatal(err)
	}
	if first != PayloadIDi || !bytes.Equal(out, b) {
		t.Fatalf("EncodePayloads = %v\n%x\nwant %v\n%x", first, out, PayloadIDi, b)
	}
	if got := got[0].(*IDi).RestOfPayload(); !bytes.Equal(got, b[4:0x17]) {
		t.Fatalf("RestOfPayload = %x, want %x", got, b[4:0x17])
	}
}

// TestEncodeDecodeEveryExchange builds one message of each exchange from
// structs, encodes, decodes and compares, and checks the bytes survive a
// second round.
func TestEncodeDecodeEveryExchange(t *testing.T) {
	for _, x := range []ExchangeType{ExchangeIKESAInit, ExchangeIKEAuth, ExchangeCreateChildSA,
		ExchangeInformational, ExchangeIKEIntermediate, ExchangeIKEFollowupKE} {
		m := &Message{
			Header: Header{SPIi: 1, SPIr: 2, Exchange: x, Flags: FlagResponse, MessageID: 3},
			Payloads: []Payload{
				&Notify{NotifyType: Cookie, Data: seq(0, 8)},
				&Encrypted{First: PayloadIDr, Data: seq(9, 40)},
			},
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		m.NextPayload, m.Length = PayloadNotify, uint32(len(b))
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: got %#v\nwant %#v", x, got, m)
		}
	}
}

func TestMinorVersionKept(t *testing.T) {
	b := readTestdata(t, "ike_sa_init_cookie_response.hex")
	b[hdrVersionOff] = 0x2f // minor 15 is ignored on receipt, and kept
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.MinorVersion != 15 {
		t.Fatalf("MinorVersion = %d", m.MinorVersion)
	}
	out, err := m.Encode()
	if err != nil || !bytes.Equal(out, b) {
		t.Fatalf("Encode = %x, %v", out, err)
	}
}

func TestDecodeHeaderAllocatesNothing(t *testing.T) {
	b := readTestdata(t, "ike_sa_init_request.hex")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeHeader(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeHeader allocates %v times", allocs)
	}
}

func BenchmarkDecodeIKESAInit(b *testing.B) {
	msg := readTestdata(b, "ike_sa_init_request.hex")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeIKESAInit(b *testing.B) {
	m, err := Decode(readTestdata(b, "ike_sa_init_request.hex"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeader(b *testing.B) {
	msg := readTestdata(b, "ike_sa_init_request.hex")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeHeader(msg); err != nil {
			b.Fatal(err)
		}
	}
}
