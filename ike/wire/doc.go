// Package wire is the IKEv2 message codec: the IKE header (RFC 7296 §3.1),
// every payload of RFC 7296 §3.2–3.16, the Encrypted Fragment payload and its
// reassembly (RFC 7383), and the payload grammar of each exchange (RFC 7296
// §1.2–1.5, RFC 9242, RFC 9370).
//
// It is written by hand because no maintained Go library decodes IKEv2; the
// few that exist are unmaintained or round-trip public values through
// big.Int. Everything here is a pure function of bytes: no I/O, no state
// beyond the Reassembler, no cryptography. Encryption and integrity of the
// Encrypted (SK) and Encrypted Fragment (SKF) payloads are delegated to a
// Sealer and an Opener supplied by the caller (ike/suite provides them); this
// package only lays out the bytes and hands them the exact associated data
// the RFCs require.
//
// Decoding checks every length field exactly and never panics on malformed
// input. Failures are *Error values that carry the Notify type the exchange
// layer should answer with (INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD,
// INVALID_MAJOR_VERSION) and say where in the input the problem was found.
// Unknown payload types are kept as *Unknown so that a decoded message can be
// re-encoded byte for byte; RESERVED fields are ignored on receipt and sent as
// zero, as RFC 7296 §3.2 asks.
//
// Decoded payloads alias the input buffer: the caller must not modify it
// while using the result.
package wire
