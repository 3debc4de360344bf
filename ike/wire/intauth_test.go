package wire

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestIntAuthData checks IntAuth_A | IntAuth_P byte for byte against RFC 9242 §3.3.2 Figure 1:
// the IKE header with Next Payload SK and the Length of the message without IV, padding and ICV,
// the SK generic header with the first inner payload type and the adjusted Payload Length, then
// the inner payloads in plaintext.
func TestIntAuthData(t *testing.T) {
	h := Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: ExchangeIKEIntermediate, Flags: FlagInitiator, MessageID: 1,
		NextPayload: PayloadSKF, Length: 9999}
	first, plain, err := EncodePayloads([]Payload{&KE{Group: 36, Data: []byte{0xaa, 0xbb}}})
	if err != nil {
		t.Fatal(err)
	}
	got := IntAuthData(h, first, plain)
	want, _ := hex.DecodeString(
		"0102030405060708" + "1112131415161718" + // SPIs
			"2e" + "20" + "2b" + "08" + // Next Payload SK, version 2.0, IKE_INTERMEDIATE, Initiator
			"00000001" + // Message ID
			"0000002a" + // Adjusted Length: 28 + 4 + 10
			"22" + "00" + "000e" + // SK: first inner KE, C=0, adjusted Payload Length 4 + 10
			"0000000a" + "0024" + "0000" + "aabb") // KE: generic header (length 10), group 36, reserved, data
	if !bytes.Equal(got, want) {
		t.Fatalf("IntAuthData =\n%x, want\n%x", got, want)
	}
}
