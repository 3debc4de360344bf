package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// wantError checks that err is exactly the *Error described.
func wantError(t *testing.T, err error, notify NotifyType, offset int, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error %q", err, err, msg)
	}
	if e.Notify != notify || e.Offset != offset || e.Msg != msg {
		t.Fatalf("error {%v, %d, %q}, want {%v, %d, %q}", e.Notify, e.Offset, e.Msg, notify, offset, msg)
	}
}

// lengthCase moves one length field by delta; the decoder must fail with
// INVALID_SYNTAX, exactly where and how the case says.
type lengthCase struct {
	field   string
	off     int // offset of the length field
	delta   int
	errOff  int
	errText string
}

func addToField(b []byte, off, width, delta int) {
	if width == 4 {
		binary.BigEndian.PutUint32(b[off:], uint32(int(binary.BigEndian.Uint32(b[off:]))+delta))
		return
	}
	binary.BigEndian.PutUint16(b[off:], uint16(int(binary.BigEndian.Uint16(b[off:]))+delta))
}

// TestLengthFieldsOffByOne moves every length field of the golden messages
// (header, payload, proposal, transform, attribute, selector, EAP, Delete
// count) one up and one down. Where a payload length is wrong the damage
// often surfaces at the next payload's header, which is where the error
// points.
func TestLengthFieldsOffByOne(t *testing.T) {
	outer := []lengthCase{
		{"header", 24, 1, 24, "header Length 209 does not match datagram length 208"},
		{"header", 24, -1, 24, "header Length 207 does not match datagram length 208"},
		{"SA", 30, 1, 32, "proposal: Last Substruc 0 but more follow, want 2"},
		{"SA", 30, -1, 34, "Proposal Length 44 outside 8..43"},
		{"proposal", 34, 1, 34, "Proposal Length 45 outside 8..44"},
		{"proposal", 34, -1, 32, "proposal: Last Substruc 0 but more follow, want 2"},
		{"transform1", 42, 1, 52, "attribute header needs 4 bytes, 1 left in the transform"},
		{"transform1", 42, -1, 48, "attribute header needs 4 bytes, 3 left in the transform"},
		{"transform4", 70, 1, 70, "Transform Length 9 outside 8..8"},
		{"transform4", 70, -1, 70, "Transform Length 7 outside 8..8"},
		{"KE", 78, 1, 119, "Nonce Payload Length 9408 outside 4..91"},
		{"KE", 78, -1, 117, "Nonce Payload Length 0 outside 4..93"},
		{"Nonce", 118, 1, 155, "N Payload Length 7168 outside 4..55"},
		{"Nonce", 118, -1, 153, "N Payload Length 0 outside 4..57"},
		{"N1", 154, 1, 183, "N Payload Length 2048 outside 4..27"},
		{"N1", 154, -1, 181, "N Payload Length 0 outside 4..29"},
		{"N2", 182, 1, 191, "V Payload Length 5223 outside 4..19"},
		{"N2", 182, -1, 184, "Notify body of 3 bytes is shorter than 4"},
		{"V", 190, 1, 190, "V Payload Length 21 outside 4..20"},
		{"V", 190, -1, 207, "1 bytes after the last payload"},
	}
	base := readTestdata(t, "ike_sa_init_request.hex")
	for _, c := range outer {
		b := bytes.Clone(base)
		width := 2
		if c.field == "header" {
			width = 4
		}
		addToField(b, c.off, width, c.delta)
		_, err := Decode(b)
		wantError(t, err, InvalidSyntax, c.errOff, c.errText)
	}

	inner := []lengthCase{
		{"IDi", 2, 1, 26, "CERT Payload Length 3332 outside 4..260"},
		{"IDi", 2, -1, 24, "CERT Payload Length 0 outside 4..262"},
		{"CERT", 25, 1, 39, "CERTREQ Payload Length 6404 outside 4..247"},
		{"CERT", 25, -1, 37, "CERTREQ Payload Length 0 outside 4..249"},
		{"CERTREQ", 38, 1, 64, "AUTH Payload Length 6146 outside 4..222"},
		{"CERTREQ", 38, -1, 62, "AUTH Payload Length 0 outside 4..224"},
		{"AUTH", 63, 1, 88, "CP Payload Length 5121 outside 4..198"},
		{"AUTH", 63, -1, 86, "CP Payload Length 0 outside 4..200"},
		{"CP", 87, 1, 105, "configuration attribute header needs 4 bytes, 1 left"},
		{"CP", 87, -1, 101, "configuration attribute header needs 4 bytes, 3 left"},
		{"SA", 107, 1, 109, "proposal: Last Substruc 0 but more follow, want 2"},
		{"SA", 107, -1, 111, "Proposal Length 46 outside 8..45"},
		{"proposal", 111, 1, 111, "Proposal Length 47 outside 8..46"},
		{"proposal", 111, -1, 109, "proposal: Last Substruc 0 but more follow, want 2"},
		{"transform1", 123, 1, 133, "attribute header needs 4 bytes, 1 left in the transform"},
		{"transform1", 123, -1, 129, "attribute header needs 4 bytes, 3 left in the transform"},
		{"transform3", 143, 1, 143, "Transform Length 15 outside 8..14"},
		{"transform3", 143, -1, 141, "transform: Last Substruc 0 but more follow, want 3"},
		{"attribute", 151, 1, 151, "Attribute Length 3 exceeds the 2 bytes left in the transform"},
		{"attribute", 151, -1, 154, "attribute header needs 4 bytes, 1 left in the transform"},
		{"TSi", 157, 1, 179, "traffic selector header needs 4 bytes, 1 left"},
		{"TSi", 157, -1, 165, "Selector Length 16 outside 4..15"},
		{"TSi selector", 165, 1, 165, "Selector Length 17 outside 4..16"},
		{"TSi selector", 165, -1, 165, "Selector Length 15 for TS type 7, want 16"},
		{"TSr", 181, 1, 227, "traffic selector header needs 4 bytes, 1 left"},
		{"TSr", 181, -1, 189, "Selector Length 40 outside 4..39"},
		{"TSr selector", 189, 1, 189, "Selector Length 41 outside 4..40"},
		{"TSr selector", 189, -1, 189, "Selector Length 39 for TS type 8, want 40"},
		{"N", 229, 1, 242, "D Payload Length 4099 outside 4..44"},
		{"N", 229, -1, 232, "SPI Size 4 exceeds the 3 bytes after the Notify header"},
		{"D", 241, 1, 245, "2 SPIs of 4 bytes but 9 bytes follow the Delete header"},
		{"D", 241, -1, 245, "2 SPIs of 4 bytes but 7 bytes follow the Delete header"},
		{"D num", 245, 1, 245, "3 SPIs of 4 bytes but 8 bytes follow the Delete header"},
		{"D num", 245, -1, 245, "1 SPIs of 4 bytes but 8 bytes follow the Delete header"},
		{"EAP", 257, 1, 261, "EAP Length 10 does not match the 11-byte payload body"},
		{"EAP", 257, -1, 261, "EAP Length 10 does not match the 9-byte payload body"},
		{"EAP length", 261, 1, 261, "EAP Length 11 does not match the 10-byte payload body"},
		{"EAP length", 261, -1, 261, "EAP Length 9 does not match the 10-byte payload body"},
		{"V", 271, 1, 280, "payload(128) Payload Length 1802 outside 4..6"},
		{"V", 271, -1, 278, "payload(128) Payload Length 0 outside 4..8"},
		{"unknown", 279, 1, 279, "payload(128) Payload Length 8 outside 4..7"},
		{"unknown", 279, -1, 283, "1 bytes after the last payload"},
	}
	innerBase := unhex(t, innerGolden)
	for _, c := range inner {
		b := bytes.Clone(innerBase)
		addToField(b, c.off, 2, c.delta)
		_, err := DecodePayloads(PayloadIDi, b)
		wantError(t, err, InvalidSyntax, c.errOff, c.errText)
	}
}

// TestTruncated cuts the golden message at every length, with the header
// Length left alone and with it patched to match; both must fail cleanly.
func TestTruncated(t *testing.T) {
	base := readTestdata(t, "ike_sa_init_request.hex")
	for n := range len(base) {
		b := bytes.Clone(base[:n])
		if _, err := Decode(b); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
		if n >= HeaderLen {
			binary.BigEndian.PutUint32(b[hdrLengthOff:], uint32(n))
			var e *Error
			if _, err := Decode(b); !errors.As(err, &e) || e.Notify != InvalidSyntax {
				t.Fatalf("truncated to %d bytes, Length patched: %v", n, err)
			}
		}
	}
	_, err := Decode(base[:HeaderLen-1])
	wantError(t, err, InvalidSyntax, 0, "message of 27 bytes is shorter than the 28-byte IKE header")
	b := bytes.Clone(base[:30])
	binary.BigEndian.PutUint32(b[hdrLengthOff:], 30)
	_, err = Decode(b)
	wantError(t, err, InvalidSyntax, 28, "SA payload header needs 4 bytes, 2 left")
}

func TestWrongMajorVersion(t *testing.T) {
	for _, c := range []struct {
		version byte
		msg     string
	}{
		{0x10, "IKE major version 1, only 2 is supported"},
		{0x30, "IKE major version 3, only 2 is supported"},
	} {
		b := readTestdata(t, "ike_sa_init_request.hex")
		b[hdrVersionOff] = c.version
		_, err := DecodeHeader(b)
		wantError(t, err, InvalidMajorVersion, hdrVersionOff, c.msg)
		_, err = Decode(b)
		wantError(t, err, InvalidMajorVersion, hdrVersionOff, c.msg)
	}
}

func TestCriticalUnknownPayload(t *testing.T) {
	// IKE_SA_INIT request whose only payload is type 153 with C set.
	b := unhex(t, `0102030405060708 0000000000000000 99 20 22 08 00000000 00000021
		00 80 0005 ff`)
	_, err := Decode(b)
	wantError(t, err, UnsupportedCriticalPayload, 28, "unsupported critical payload payload(153)")
	if e := err.(*Error); !bytes.Equal(e.Data, []byte{153}) {
		t.Fatalf("Notification Data %x, want the payload type 99", e.Data)
	}
	// The same payload without C is kept and skipped.
	b[HeaderLen+genFlagsOff] = 0
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := m.Payloads[0].(*Unknown); !ok || u.PayloadType != 153 || u.Critical || !bytes.Equal(u.Body, []byte{0xff}) {
		t.Fatalf("payload %#v", m.Payloads[0])
	}
	// C on a payload type this package knows is ignored (RFC 7296 §2.5).
	ps, err := DecodePayloads(PayloadVendorID, unhex(t, "00 80 0005 ff"))
	if err != nil || len(ps) != 1 {
		t.Fatalf("critical Vendor ID: %v", err)
	}
}

// TestMalformedPayloads: each body breaks one rule of RFC 7296 §3 or
// RFC 7383; offsets are within the given chain.
func TestMalformedPayloads(t *testing.T) {
	for _, c := range []struct {
		name  string
		first PayloadType
		hex   string
		off   int
		msg   string
	}{
		{"nonce too short", PayloadNonce, "00 00 0013 000102030405060708090a0b0c0d0e", 4, "nonce of 15 bytes outside 16..256"},
		{"nonce too long", PayloadNonce, "00 00 0105" + hexRepeat("ab", 257), 4, "nonce of 257 bytes outside 16..256"},
		{"ESP proposal SPI size 8", PayloadSA, "00 00 0014 00 00 0010 01 03 08 00 0102030405060708", 10, "protocol 3 proposal with SPI Size 8, want 4"},
		{"IKE proposal SPI size 4", PayloadSA, "00 00 0010 00 00 000c 01 01 04 00 01020304", 10, "IKE proposal with SPI Size 4, want 0 or 8"},
		{"SPI beyond proposal", PayloadSA, "00 00 0010 00 00 000c 01 01 08 00 01020304", 10, "SPI Size 8 exceeds the 4 bytes after the proposal header"},
		{"Num Transforms", PayloadSA, "00 00 0014 00 00 0010 01 01 00 02 00 00 0008 01 00 0014", 11, "Num Transforms 2 but the proposal holds 1"},
		{"transform Last Substruc", PayloadSA, "00 00 0014 00 00 0010 01 01 00 01 03 00 0008 01 00 0014", 12, "transform: Last Substruc 3 on the last substructure, want 0"},
		{"empty SA", PayloadSA, "00 00 0004", 4, "SA payload has no proposal"},
		{"Delete ESP SPI size 8", PayloadDelete, "00 00 0010 03 08 0001 0102030405060708", 5, "Delete for protocol 3 with SPI Size 8, want 4"},
		{"Delete IKE with SPIs", PayloadDelete, "00 00 0008 01 00 0001", 6, "IKE SA Delete with Num of SPIs 1, want 0"},
		{"Delete unknown protocol", PayloadDelete, "00 00 0008 07 04 0000", 4, "Delete for protocol 7, want IKE, AH or ESP"},
		{"Notify SPI size", PayloadNotify, "00 00 000a 03 04 4009 aabb", 5, "SPI Size 4 exceeds the 2 bytes after the Notify header"},
		{"ID_IPV4_ADDR of 5 bytes", PayloadIDi, "00 00 000d 01 000000 0102030405", 8, "ID_IPV4_ADDR of 5 bytes, want 4"},
		{"ID_IPV6_ADDR of 4 bytes", PayloadIDr, "00 00 000c 05 000000 01020304", 8, "ID_IPV6_ADDR of 4 bytes, want 16"},
		{"EAP request without Type", PayloadEAP, "00 00 0008 01 01 0004", 4, "EAP code 1 without Type octet"},
		{"Number of TSs", PayloadTSi, "00 00 0018 02 000000 07 00 0010 0000 ffff 0a000000 0affffff", 4, "Number of TSs 2 but the payload holds 1"},
		{"KE too short", PayloadKE, "00 00 0006 001f", 4, "KE body of 2 bytes is shorter than 4"},
		{"CERT without encoding", PayloadCERT, "00 00 0004", 4, "certificate payload without Cert Encoding"},
		{"payload length 3", PayloadVendorID, "00 00 0003 00", 2, "V Payload Length 3 outside 4..5"},
		{"SK inside SK", PayloadSK, "00 00 0004", 0, "SK payload inside an encrypted payload"},
		{"SKF inside SK", PayloadSKF, "00 00 0008 00010001", 0, "SKF payload inside an encrypted payload"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodePayloads(c.first, unhex(t, c.hex))
			wantError(t, err, InvalidSyntax, c.off, c.msg)
		})
	}
}

func hexRepeat(s string, n int) string { return string(bytes.Repeat([]byte(s), n)) }

func TestMalformedProtectedPayloads(t *testing.T) {
	for _, c := range []struct {
		name string
		hex  string
		off  int
		msg  string
	}{
		{"SK not last", "0102030405060708 1112131415161718 2e 20 25 20 00000001 00000028 00 00 0008 aabbccdd 2b000004", 28, "SK payload is not the last payload: 4 bytes follow it"},
		{"SKF number 0", "0102030405060708 1112131415161718 35 20 25 20 00000001 00000024 00 00 0008 0000 0003", 32, "Fragment Number 0"},
		{"SKF total 0", "0102030405060708 1112131415161718 35 20 25 20 00000001 00000024 00 00 0008 0001 0000", 32, "Total Fragments 0"},
		{"SKF number above total", "0102030405060708 1112131415161718 35 20 25 20 00000001 00000024 00 00 0008 0004 0003", 32, "Fragment Number 4 exceeds Total Fragments 3"},
		{"SKF short", "0102030405060708 1112131415161718 35 20 25 20 00000001 00000022 00 00 0006 0001", 32, "SKF body of 2 bytes is shorter than 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(unhex(t, c.hex))
			wantError(t, err, InvalidSyntax, c.off, c.msg)
		})
	}
}

// TestEncodeRejects: values that cannot be put on the wire are refused
// with an error, never encoded wrongly.
func TestEncodeRejects(t *testing.T) {
	v6 := TrafficSelector{TSType: TSIPv4AddrRange, Start: mustAddr("2001:db8::"), End: mustAddr("2001:db8::")}
	for _, c := range []struct {
		name string
		ps   []Payload
		msg  string
	}{
		{"nonce too short", []Payload{&Nonce{Data: make([]byte, 15)}}, "nonce of 15 bytes outside 16..256"},
		{"nonce too long", []Payload{&Nonce{Data: make([]byte, 257)}}, "nonce of 257 bytes outside 16..256"},
		{"TV attribute of 3 bytes", []Payload{&SA{Proposals: []Proposal{{Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformENCR, ID: 20, Attributes: []Attribute{{Type: AttrKeyLength, TV: true, Value: []byte{1, 2, 3}}}},
		}}}}}, "proposal 0 transform 0: TV attribute 14 with a 3-byte value, want 2"},
		{"ESP proposal without SPI", []Payload{&SA{Proposals: []Proposal{{Protocol: ProtoESP}}}}, "proposal 0: protocol 3 proposal with SPI Size 0, want 4"},
		{"empty SA", []Payload{&SA{}}, "SA payload has no proposal"},
		{"Delete SPI of 3 bytes", []Payload{&Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3}}}}, "Delete SPI 0 of 3 bytes, want 4"},
		{"IKE Delete with SPI", []Payload{&Delete{Protocol: ProtoIKE, SPIs: [][]byte{{}}}}, "IKE SA Delete with 1 SPIs, want none"},
		{"TS family", []Payload{&TSi{Selectors: []TrafficSelector{v6}}}, "traffic selector 0: TS type 7 with addresses 2001:db8:: and 2001:db8:: of the wrong family"},
		{"ID_IPV6_ADDR of 4 bytes", []Payload{&IDr{IDType: IDIPv6Addr, Data: []byte{1, 2, 3, 4}}}, "ID_IPV6_ADDR of 4 bytes, want 16"},
		{"EAP Success with Type", []Payload{&EAP{Code: EAPSuccess, EAPType: 1}}, "EAP code 3 carries no Type, got 1"},
		{"SK inside SK", []Payload{&Encrypted{}}, "SK payload at position 0 inside an encrypted payload"},
		{"payload too long", []Payload{&VendorID{Data: make([]byte, 0xffff)}}, "V payload of 65539 bytes exceeds the 16-bit Payload Length"},
		{"nil payload", []Payload{nil}, "nil payload at position 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := EncodePayloads(c.ps)
			wantError(t, err, InvalidSyntax, -1, c.msg)
		})
	}

	m := &Message{Payloads: []Payload{&Encrypted{}, &VendorID{}}}
	_, err := m.Encode()
	wantError(t, err, InvalidSyntax, -1, "SK payload at position 0 is not the last payload")
	m = &Message{Header: Header{MinorVersion: 16}}
	_, err = m.Encode()
	wantError(t, err, InvalidSyntax, -1, "minor version 16 does not fit in 4 bits")
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
