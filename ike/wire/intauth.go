package wire

import "encoding/binary"

// IntAuthData returns the octets an IKE_INTERMEDIATE message contributes to the IntAuth chain
// (RFC 9242 §3.3.2, Figure 1): IntAuth_A, the message from the first octet of the IKE header
// through the Encrypted payload's generic header, followed by IntAuth_P, the inner payloads in
// plaintext. IV, padding, Pad Length and ICV are left out, and the two length fields are
// "adjusted" to what they would be without them, so the result is the same whether the message
// travelled whole or in fragments (RFC 7383) and whatever cipher protected it. h is the message's
// header (its NextPayload and Length are ignored), first the type of the first inner payload and
// plain the inner payload chain. The messages of this package carry no unencrypted payloads in
// front of SK, so there are none in IntAuth_A.
func IntAuthData(h Header, first PayloadType, plain []byte) []byte {
	out := make([]byte, 0, HeaderLen+genHeaderLen+len(plain))
	hh := h
	hh.MinorVersion &= maxMinorVersion
	out, _ = appendHeader(out, &hh, PayloadSK)
	binary.BigEndian.PutUint32(out[hdrLengthOff:], uint32(HeaderLen+genHeaderLen+len(plain)))
	// The SK generic header: Next Payload is the first inner payload, C and RESERVED zero (RFC
	// 7296 §3.2: senders set RESERVED to zero; SK is never critical).
	out = append(out, byte(first), 0)
	out = binary.BigEndian.AppendUint16(out, uint16(genHeaderLen+len(plain)))
	return append(out, plain...)
}
