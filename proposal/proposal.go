// Package proposal turns strongSwan's algorithm proposal keywords ("aes256gcm16-prfsha256-x25519",
// "aes128-sha256-modp2048", "default") into IKEv2 transforms with their IANA numbers (RFC 7296
// §3.3.2, RFC 9370 for additional key exchanges) and back.
//
// The parser is hand-written: the keyword language is strongSwan's own and no Go library reads it.
// It follows strongSwan's documented rules where they are safe and is stricter where strongSwan is
// silent:
//
//   - Keywords are separated by "-", proposals by ",". Several keywords of one transform type in a
//     proposal are alternatives, in order of preference.
//   - IKE: without a "prf..." keyword the PRFs are derived from the integrity keywords (sha256 →
//     prfsha256), as strongSwan does. With AEAD algorithms the integrity keywords only serve that
//     derivation and are then dropped (an AEAD proposal must not carry integrity transforms,
//     RFC 7296 §3.3). A PRF and a key exchange method are mandatory.
//   - ESP: an AEAD algorithm together with an integrity algorithm is an error (strongSwan silently
//     drops the integrity algorithm); classic encryption, NULL included, needs an integrity
//     algorithm (strongSwan would allow encryption without integrity). Without "esn"/"noesn" the
//     proposal gets "noesn", as in strongSwan. A key exchange method asks for PFS.
//   - AH: integrity algorithms only.
//   - Weak algorithms (DES, 3DES, MD5, SHA-1, MODP groups below 2048 bits, …) are refused; known
//     algorithms goipsec does not implement are refused as not supported; unknown keywords are
//     refused with a suggestion.
//
// "default" expands to goipsec's default proposals, see DefaultIKE and DefaultESP.
package proposal

import (
	"fmt"
	"strings"
)

// Protocol is the IKEv2 Security Protocol ID of a proposal (RFC 7296 §3.3.1).
type Protocol uint8

// Security Protocol IDs.
const (
	ProtoIKE Protocol = 1
	ProtoAH  Protocol = 2
	ProtoESP Protocol = 3
)

func (p Protocol) String() string {
	switch p {
	case ProtoIKE:
		return "IKE"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// TransformType is the IKEv2 transform type (RFC 7296 §3.3.2; types 6-12 from RFC 9370).
type TransformType uint8

// Transform types. Type 4 was renamed from "Diffie-Hellman Group" to "Key Exchange Method" by
// RFC 9370, which also added the seven additional key exchange types.
const (
	TypeEncryption    TransformType = 1
	TypePRF           TransformType = 2
	TypeIntegrity     TransformType = 3
	TypeKeyExchange   TransformType = 4
	TypeESN           TransformType = 5
	TypeAdditionalKE1 TransformType = 6
	TypeAdditionalKE7 TransformType = 12
)

// IsKeyExchange reports whether t is the key exchange type or one of the additional ones.
func (t TransformType) IsKeyExchange() bool {
	return t == TypeKeyExchange || (t >= TypeAdditionalKE1 && t <= TypeAdditionalKE7)
}

func (t TransformType) String() string {
	switch {
	case t == TypeEncryption:
		return "ENCR"
	case t == TypePRF:
		return "PRF"
	case t == TypeIntegrity:
		return "INTEG"
	case t == TypeKeyExchange:
		return "KE"
	case t == TypeESN:
		return "ESN"
	case t >= TypeAdditionalKE1 && t <= TypeAdditionalKE7:
		return fmt.Sprintf("ADDKE%d", t-TypeAdditionalKE1+1)
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Encryption algorithm transform IDs (IANA "Transform Type 1").
const (
	EncrDES              uint16 = 2
	Encr3DES             uint16 = 3
	EncrCAST             uint16 = 6
	EncrBlowfish         uint16 = 7
	EncrNull             uint16 = 11 // RFC 2410
	EncrAESCBC           uint16 = 12 // RFC 3602
	EncrAESCTR           uint16 = 13 // RFC 3686
	EncrAESCCM8          uint16 = 14 // RFC 4309
	EncrAESCCM12         uint16 = 15
	EncrAESCCM16         uint16 = 16
	EncrAESGCM8          uint16 = 18 // RFC 4106
	EncrAESGCM12         uint16 = 19
	EncrAESGCM16         uint16 = 20
	EncrNullAESGMAC      uint16 = 21 // RFC 4543
	EncrCamelliaCBC      uint16 = 23 // RFC 5529
	EncrCamelliaCTR      uint16 = 24
	EncrChaCha20Poly1305 uint16 = 28 // RFC 7634
)

// Pseudorandom function transform IDs (IANA "Transform Type 2").
const (
	PRFHMACMD5     uint16 = 1
	PRFHMACSHA1    uint16 = 2
	PRFAES128XCBC  uint16 = 4 // RFC 4434
	PRFHMACSHA2256 uint16 = 5 // RFC 4868
	PRFHMACSHA2384 uint16 = 6
	PRFHMACSHA2512 uint16 = 7
	PRFAES128CMAC  uint16 = 8 // RFC 4615
)

// Integrity algorithm transform IDs (IANA "Transform Type 3").
const (
	IntegNone           uint16 = 0
	IntegHMACMD596      uint16 = 1
	IntegHMACSHA196     uint16 = 2
	IntegAESXCBC96      uint16 = 5
	IntegHMACMD5128     uint16 = 6
	IntegHMACSHA1160    uint16 = 7
	IntegAESCMAC96      uint16 = 8
	IntegAES128GMAC     uint16 = 9
	IntegAES192GMAC     uint16 = 10
	IntegAES256GMAC     uint16 = 11
	IntegHMACSHA2256128 uint16 = 12 // RFC 4868
	IntegHMACSHA2384192 uint16 = 13
	IntegHMACSHA2512256 uint16 = 14
)

// Key exchange method transform IDs (IANA "Transform Type 4").
const (
	KENone        uint16 = 0
	KEMODP768     uint16 = 1  // RFC 2409
	KEMODP1024    uint16 = 2  // RFC 2409
	KEMODP1536    uint16 = 5  // RFC 3526
	KEMODP2048    uint16 = 14 // RFC 3526
	KEMODP3072    uint16 = 15
	KEMODP4096    uint16 = 16
	KEMODP6144    uint16 = 17
	KEMODP8192    uint16 = 18
	KEECP256      uint16 = 19 // RFC 5903
	KEECP384      uint16 = 20
	KEECP521      uint16 = 21
	KEMODP1024160 uint16 = 22 // RFC 5114
	KEMODP2048224 uint16 = 23
	KEMODP2048256 uint16 = 24
	KEECP192      uint16 = 25
	KEECP224      uint16 = 26
	KEECP224BP    uint16 = 27 // RFC 6954
	KEECP256BP    uint16 = 28
	KEECP384BP    uint16 = 29
	KEECP512BP    uint16 = 30
	KECurve25519  uint16 = 31 // RFC 8031
	KECurve448    uint16 = 32
	KEMLKEM512    uint16 = 35 // draft-ietf-ipsecme-ikev2-mlkem
	KEMLKEM768    uint16 = 36
	KEMLKEM1024   uint16 = 37
)

// Extended sequence number transform IDs (IANA "Transform Type 5").
const (
	ESNNo  uint16 = 0
	ESNYes uint16 = 1
)

// Transform is one transform of a proposal. KeyLength is the Key Length attribute in bits
// (RFC 7296 §3.3.5), 0 for algorithms with a fixed key size.
type Transform struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16
}

// Proposal is one proposal: a protocol and its transforms, grouped by type in the order ENCR,
// INTEG, PRF, KE, ADDKE1..7, ESN, and within a type in order of preference.
type Proposal struct {
	Protocol   Protocol
	Transforms []Transform
}

// Of returns the transforms of type t in order of preference.
func (p Proposal) Of(t TransformType) []Transform {
	var out []Transform
	for _, tr := range p.Transforms {
		if tr.Type == t {
			out = append(out, tr)
		}
	}
	return out
}

// Has reports whether the proposal has a transform of type t.
func (p Proposal) Has(t TransformType) bool {
	for _, tr := range p.Transforms {
		if tr.Type == t {
			return true
		}
	}
	return false
}

// Equal reports whether two proposals have the same protocol and the same transforms in the same
// order.
func (p Proposal) Equal(o Proposal) bool {
	if p.Protocol != o.Protocol || len(p.Transforms) != len(o.Transforms) {
		return false
	}
	for i := range p.Transforms {
		if p.Transforms[i] != o.Transforms[i] {
			return false
		}
	}
	return true
}

// String formats the proposal in strongSwan keyword form, e.g. "aes256gcm16-prfsha256-x25519" or
// "aes128-sha256-noesn", so that a mismatch can be shown in the words the configuration uses.
// Transforms without a keyword appear as "encr(99)" or "encr(99,256)".
func (p Proposal) String() string {
	var b strings.Builder
	for _, t := range sortedTransforms(p.Transforms) {
		if b.Len() > 0 {
			b.WriteByte('-')
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// String returns the keyword of a transform, e.g. "aes256gcm16", "prfsha384", "ke1_mlkem768".
func (t Transform) String() string {
	lookupType := t.Type
	prefix := ""
	if t.Type >= TypeAdditionalKE1 && t.Type <= TypeAdditionalKE7 {
		lookupType = TypeKeyExchange
		prefix = fmt.Sprintf("ke%d_", t.Type-TypeAdditionalKE1+1)
		if t.ID == KENone {
			return prefix + "none"
		}
	}
	for _, k := range keywords {
		if k.typ == lookupType && k.id == t.ID && k.keyLength == t.KeyLength {
			return prefix + k.name
		}
	}
	name := strings.ToLower(t.Type.String())
	if t.KeyLength != 0 {
		return fmt.Sprintf("%s(%d,%d)", name, t.ID, t.KeyLength)
	}
	return fmt.Sprintf("%s(%d)", name, t.ID)
}

// FormatList joins proposals with ", " the way a proposals setting is written.
func FormatList(list []Proposal) string {
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// IsAEAD reports whether an encryption transform ID is a combined-mode (AEAD) algorithm, which
// takes no integrity algorithm. AES-GMAC counts: it is a combined mode that only authenticates
// (RFC 4543 §3).
func IsAEAD(encrID uint16) bool {
	switch encrID {
	case EncrAESCCM8, EncrAESCCM12, EncrAESCCM16, EncrAESGCM8, EncrAESGCM12, EncrAESGCM16,
		EncrNullAESGMAC, EncrChaCha20Poly1305:
		return true
	}
	return false
}

// typeOrder is the order in which transform types are kept in a Proposal and printed by String.
var typeOrder = [...]TransformType{TypeEncryption, TypeIntegrity, TypePRF, TypeKeyExchange,
	TypeAdditionalKE1, TypeAdditionalKE1 + 1, TypeAdditionalKE1 + 2, TypeAdditionalKE1 + 3,
	TypeAdditionalKE1 + 4, TypeAdditionalKE1 + 5, TypeAdditionalKE7, TypeESN}

func typeRank(t TransformType) int {
	for i, x := range typeOrder {
		if x == t {
			return i
		}
	}
	return len(typeOrder) + int(t)
}

// sortedTransforms returns the transforms grouped by type in typeOrder, keeping the order within a
// type (a stable sort; proposals are short so insertion sort is enough).
func sortedTransforms(in []Transform) []Transform {
	out := make([]Transform, len(in))
	copy(out, in)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && typeRank(out[j].Type) < typeRank(out[j-1].Type); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
