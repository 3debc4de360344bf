package suite

import (
	"crypto/hmac"
	"crypto/sha1"
	"fmt"
	"hash"
	"io"
)

// Legacy algorithms. IKEv1 peers — above all the L2TP/IPsec clients built into Windows — still
// offer only MODP1024 and HMAC-SHA-1. They are weak (1024-bit discrete logarithms are within reach
// of a well-funded attacker; SHA-1 has practical collisions), so NewKeyExchange and NewPRF refuse
// them; only the Legacy constructors below make them, and callers reach those only with a
// connection's explicit weak-algorithm opt-in, which they log.
const (
	// MODP_1024 is the Second Oakley Group (RFC 2409 §6.2).
	MODP_1024 uint16 = 2
	// PRF_HMAC_SHA1 is HMAC-SHA-1 (RFC 2104), IANA PRF transform 2.
	PRF_HMAC_SHA1 uint16 = 2
)

// RFC 2409 §6.2, transcribed; TestMODPPrimes recomputes it from the formula given there:
// 2^1024 - 2^960 - 1 + 2^64 * { [2^894 pi] + 129093 }.
const modp1024Hex = "" +
	"FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1" +
	"29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD" +
	"EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245" +
	"E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED" +
	"EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381" +
	"FFFFFFFF FFFFFFFF"

// modp1024 has a 160-bit exponent: twice the group's ~80-bit strength.
var modp1024 = mustMODP(modp1024Hex, 1024, 20)

// NewLegacyKeyExchange is NewKeyExchange that also makes MODP1024. Only for connections that opted
// in to weak algorithms.
func NewLegacyKeyExchange(group uint16, rand io.Reader) (KeyExchange, error) {
	if group != MODP_1024 {
		return NewKeyExchange(group, rand)
	}
	return newMODPParams(group, modp1024, orDefaultRand(rand))
}

// LegacyPublicValueSize is PublicValueSize that knows MODP1024.
func LegacyPublicValueSize(group uint16) (int, error) {
	if group == MODP_1024 {
		return modp1024.size, nil
	}
	return PublicValueSize(group, true)
}

// NewLegacyPRF is NewPRF that also makes HMAC-SHA-1. Only for connections that opted in to weak
// algorithms.
func NewLegacyPRF(id uint16) (PRF, error) {
	if id == PRF_HMAC_SHA1 {
		return PRF{id: id, newHash: sha1.New, mac: hmacSHA1, size: sha1.Size}, nil
	}
	return NewPRF(id)
}

// IsWeak reports whether a PRF or key exchange group ID is one of the legacy algorithms.
func IsWeak(kind string, id uint16) bool {
	switch kind {
	case "prf":
		return id == PRF_HMAC_SHA1
	case "group":
		return id == MODP_1024
	}
	panic(fmt.Sprintf("suite.IsWeak: unknown kind %q", kind))
}

// NewHash returns the PRF's underlying hash function, which IKEv1 also uses unkeyed (the
// phase 1 IV and NAT-D hashes, RFC 2409 Appendix B, RFC 3947 §3.2).
func (p PRF) NewHash() hash.Hash { return p.newHash() }

// HMAC returns a keyed hash of the PRF, for callers that feed it in pieces.
func (p PRF) HMAC(key []byte) hash.Hash { return hmac.New(p.newHash, key) }
