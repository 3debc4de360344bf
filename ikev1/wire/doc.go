// Package wire is the IKEv1 (ISAKMP, RFC 2408; IKE, RFC 2409) message codec: the ISAKMP header
// (RFC 2408 §3.1), the generic payload header (§3.2) and every payload IKEv1 uses — SA with its
// Proposal and Transform payloads and data attributes (§3.3–3.6), Key Exchange, Identification
// (with the IPsec DOI's form, RFC 2407 §4.6.2), Certificate, Certificate Request, Hash, Signature,
// Nonce, Notification, Delete, Vendor ID, the Mode Config Attribute payload
// (draft-ietf-ipsec-isakmp-mode-cfg-05 §3.2) and NAT-D/NAT-OA (RFC 3947 §3.2, §5.2).
//
// It is hand-written: no maintained Go library decodes ISAKMP. Everything is a pure function of
// bytes; encryption of message bodies (RFC 2409 Appendix B) is done by package ikev1, which hands
// the decrypted body to DecodePayloads. Every length field is checked exactly and malformed input
// is an *Error, never a panic. Each decoded payload keeps its encoded bytes (Raw), because IKEv1's
// HASH payloads are computed over payload bodies (SAi_b, IDii_b) and over whole payload chains
// (Quick Mode HASH(1), RFC 2409 §5.5). Unknown payload types are kept as *Unknown.
//
// Decoded payloads alias the input buffer: the caller must not modify it while using the result.
package wire
