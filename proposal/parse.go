package proposal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The default proposals. They are written as keyword strings so that the documentation can quote
// them verbatim; each offers only algorithms goipsec implements and considers strong. The AEAD
// proposal comes first because it is preferred; the classic one keeps interoperability with peers
// that still use strongSwan's default (AES-CBC with HMAC-SHA2). MODP-2048 is left out on purpose
// (about 112-bit strength); name it explicitly for peers that need it.
//
// The first IKE proposal is a post-quantum hybrid: X25519 in IKE_SA_INIT, then ML-KEM-768 as an
// additional key exchange in IKE_INTERMEDIATE (RFC 9370, draft-ietf-ipsecme-ikev2-mlkem). A peer
// that does not implement it chooses one of the classic proposals; because they too prefer X25519,
// the KE payload of IKE_SA_INIT (always X25519 here) fits them without an INVALID_KE_PAYLOAD round
// trip unless the peer insists on another group.
const (
	DefaultIKEString = "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ke1_mlkem768, " +
		"aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-ecp521-modp3072-modp4096, " +
		"aes256-aes128-sha256-sha384-sha512-x25519-ecp256-ecp384-ecp521-modp3072-modp4096"
	DefaultESPString = "aes256gcm16-aes128gcm16-chacha20poly1305, aes256-aes128-sha256-sha384-sha512"
	DefaultAHString  = "sha256-sha384-sha512"
)

// ParseIKE parses a comma separated list of IKE proposals, e.g.
// "aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048" or "default".
func ParseIKE(s string) ([]Proposal, error) { return parseList(ProtoIKE, s, false) }

// ParseESP parses a comma separated list of ESP proposals, e.g. "aes256gcm16",
// "aes128-sha256-modp2048" (with PFS), "chacha20poly1305-esn" or "default".
func ParseESP(s string) ([]Proposal, error) { return parseList(ProtoESP, s, false) }

// ParseIKELegacy and ParseESPLegacy also accept the legacy algorithms 3DES ("3des"), HMAC-SHA-1
// ("sha1", "sha", "prfsha1") and MODP1024 ("modp1024"), which IKEv1 clients such as Windows'
// built-in L2TP/IPsec client still offer. They are for connections that opted in to weak
// algorithms (weak_algorithms = yes) and nothing else.
func ParseIKELegacy(s string) ([]Proposal, error) { return parseList(ProtoIKE, s, true) }

// ParseESPLegacy is ParseESP with the legacy algorithms (see ParseIKELegacy).
func ParseESPLegacy(s string) ([]Proposal, error) { return parseList(ProtoESP, s, true) }

// Legacy reports whether a transform is one of the legacy algorithms ParseIKELegacy admits.
func Legacy(t Transform) bool {
	switch t.Type {
	case TypeEncryption:
		return t.ID == Encr3DES
	case TypeIntegrity:
		return t.ID == IntegHMACSHA196
	case TypePRF:
		return t.ID == PRFHMACSHA1
	case TypeKeyExchange:
		return t.ID == KEMODP1024
	}
	return false
}

// ParseAH parses a comma separated list of AH proposals, e.g. "sha256-sha512" or "default".
func ParseAH(s string) ([]Proposal, error) { return parseList(ProtoAH, s, false) }

// Default returns goipsec's default proposals for a protocol (what "default" expands to).
func Default(proto Protocol) ([]Proposal, error) {
	switch proto {
	case ProtoIKE:
		return parseList(proto, DefaultIKEString, false)
	case ProtoESP:
		return parseList(proto, DefaultESPString, false)
	case ProtoAH:
		return parseList(proto, DefaultAHString, false)
	}
	return nil, fmt.Errorf("no default proposals for %s", proto)
}

func parseList(proto Protocol, s string, legacy bool) ([]Proposal, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no proposals given")
	}
	var out []Proposal
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("empty proposal in %q", s)
		}
		if part == "default" {
			defaults, err := Default(proto)
			if err != nil {
				return nil, err
			}
			out = append(out, defaults...)
			continue
		}
		p, err := parseOne(proto, part, legacy)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parseOne parses one dash separated proposal and checks it (see the package comment).
func parseOne(proto Protocol, s string, legacy bool) (Proposal, error) {
	var ts []Transform
	var names []string // keyword as written, parallel to ts, for error messages
	for _, name := range strings.Split(s, "-") {
		name = strings.TrimSpace(name)
		if name == "" {
			return Proposal{}, fmt.Errorf("empty algorithm in proposal %q", s)
		}
		t, err := parseKeyword(name, legacy)
		if err != nil {
			return Proposal{}, err
		}
		for i, have := range ts {
			if have == t {
				if names[i] == name {
					return Proposal{}, fmt.Errorf("%q appears twice in proposal %q", name, s)
				}
				return Proposal{}, fmt.Errorf("%q and %q are the same algorithm in proposal %q", names[i], name, s)
			}
		}
		ts = append(ts, t)
		names = append(names, name)
	}
	p := Proposal{Protocol: proto, Transforms: ts}
	var err error
	switch proto {
	case ProtoIKE:
		p, err = checkIKE(p, names, s)
	case ProtoESP:
		p, err = checkESP(p, names, s)
	case ProtoAH:
		p, err = checkAH(p, names, s)
	default:
		err = fmt.Errorf("unknown protocol %d", proto)
	}
	if err != nil {
		return Proposal{}, err
	}
	p.Transforms = sortedTransforms(p.Transforms)
	return p, nil
}

// parseKeyword maps one keyword, possibly with a "keN_" prefix for an additional key exchange
// (RFC 9370), to its transform.
func parseKeyword(name string, legacy bool) (Transform, error) {
	base, addKE := name, 0
	if rest, ok := strings.CutPrefix(name, "ke"); ok {
		if num, kw, ok := strings.Cut(rest, "_"); ok {
			n, err := strconv.Atoi(num)
			if err != nil || n < 1 || n > 7 || num != strconv.Itoa(n) {
				return Transform{}, fmt.Errorf("%q: additional key exchanges are numbered ke1_ to ke7_", name)
			}
			base, addKE = kw, n
		}
	}
	k, ok := lookupKeyword(base)
	if !ok {
		if s := suggest(base); s != "" {
			if addKE != 0 {
				s = fmt.Sprintf("ke%d_%s", addKE, s)
			}
			return Transform{}, fmt.Errorf("unknown algorithm %q; did you mean %q?", name, s)
		}
		return Transform{}, fmt.Errorf("unknown algorithm %q", name)
	}
	switch {
	case k.status == weak && legacy && addKE == 0 && Legacy(Transform{Type: k.typ, ID: k.id, KeyLength: k.keyLength}):
	case k.status == weak:
		if Legacy(Transform{Type: k.typ, ID: k.id, KeyLength: k.keyLength}) {
			return Transform{}, fmt.Errorf("%q is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)", name)
		}
		return Transform{}, fmt.Errorf("%q is a weak algorithm, not offered", name)
	case k.status == unsupported:
		return Transform{}, fmt.Errorf("%q is not supported by goipsec yet", name)
	}
	t := Transform{Type: k.typ, ID: k.id, KeyLength: k.keyLength}
	if addKE != 0 {
		if k.typ != TypeKeyExchange {
			return Transform{}, fmt.Errorf("%q: ke%d_ must be followed by a key exchange method such as mlkem768", name, addKE)
		}
		t.Type = TypeAdditionalKE1 + TransformType(addKE-1)
	}
	return t, nil
}

// nameOf returns the keyword as written for the first transform matching pred.
func nameOf(p Proposal, names []string, pred func(Transform) bool) string {
	for i, t := range p.Transforms {
		if pred(t) {
			return names[i]
		}
	}
	return ""
}

func ofType(t TransformType) func(Transform) bool {
	return func(x Transform) bool { return x.Type == t }
}

// checkEncryption applies the rules shared by IKE and ESP: at least one encryption algorithm, and
// either all AEAD or all classic. It reports whether the proposal is AEAD.
func checkEncryption(p Proposal, s string) (aead bool, err error) {
	encr := p.Of(TypeEncryption)
	if len(encr) == 0 {
		return false, fmt.Errorf("proposal %q has no encryption algorithm", s)
	}
	nAEAD := 0
	for _, t := range encr {
		if IsAEAD(t.ID) {
			nAEAD++
		}
	}
	if nAEAD != 0 && nAEAD != len(encr) {
		return false, fmt.Errorf("proposal %q mixes classic and combined-mode (AEAD) encryption algorithms; write them as two proposals separated by a comma", s)
	}
	return nAEAD != 0, nil
}

// checkAdditionalKE refuses additional key exchanges without a key exchange method: RFC 9370 runs
// them after the initial one, so they make no sense alone.
func checkAdditionalKE(p Proposal, s string) error {
	hasAdd := false
	for _, t := range p.Transforms {
		if t.Type >= TypeAdditionalKE1 && t.Type <= TypeAdditionalKE7 {
			hasAdd = true
		}
	}
	if hasAdd && !p.Has(TypeKeyExchange) {
		return fmt.Errorf("proposal %q has additional key exchanges (keN_) but no key exchange method", s)
	}
	return nil
}

func checkIKE(p Proposal, names []string, s string) (Proposal, error) {
	if n := nameOf(p, names, ofType(TypeESN)); n != "" {
		return Proposal{}, fmt.Errorf("%q can only be used in ESP and AH proposals", n)
	}
	if n := nameOf(p, names, func(t Transform) bool { return t.Type == TypeEncryption && t.ID == EncrNull }); n != "" {
		return Proposal{}, fmt.Errorf("%q encryption is not allowed in IKE proposals", n)
	}
	if n := nameOf(p, names, func(t Transform) bool { return t.Type == TypeKeyExchange && t.ID == KENone }); n != "" {
		return Proposal{}, fmt.Errorf("%q is not allowed in IKE proposals, which need a key exchange", n)
	}
	if n := nameOf(p, names, childOnlyTransform); n != "" {
		return Proposal{}, fmt.Errorf("%q is supported for ESP and AH (Child SAs) but not for the IKE SA", n)
	}
	aead, err := checkEncryption(p, s)
	if err != nil {
		return Proposal{}, err
	}
	if !aead && !p.Has(TypeIntegrity) {
		return Proposal{}, fmt.Errorf("proposal %q needs an integrity algorithm (e.g. sha256) with classic encryption", s)
	}
	if !p.Has(TypePRF) {
		// strongSwan's rule: without an explicit PRF, use the PRFs matching the integrity
		// algorithms.
		for _, t := range p.Of(TypeIntegrity) {
			if prf, ok := integrityPRF(t.ID); ok {
				p.Transforms = append(p.Transforms, Transform{Type: TypePRF, ID: prf})
			}
		}
	}
	if !p.Has(TypePRF) {
		return Proposal{}, fmt.Errorf("proposal %q needs a PRF (e.g. prfsha256)", s)
	}
	if aead {
		// RFC 7296 §3.3: an AEAD proposal must not contain integrity transforms; in IKE they only
		// served to derive the PRFs above.
		p.Transforms = without(p.Transforms, TypeIntegrity)
	}
	if !p.Has(TypeKeyExchange) {
		return Proposal{}, fmt.Errorf("proposal %q needs a key exchange method (e.g. x25519)", s)
	}
	if err := checkAdditionalKE(p, s); err != nil {
		return Proposal{}, err
	}
	return p, nil
}

func checkESP(p Proposal, names []string, s string) (Proposal, error) {
	if n := nameOf(p, names, ofType(TypePRF)); n != "" {
		return Proposal{}, fmt.Errorf("%q can only be used in IKE proposals", n)
	}
	aead, err := checkEncryption(p, s)
	if err != nil {
		return Proposal{}, err
	}
	if aead && p.Has(TypeIntegrity) {
		return Proposal{}, fmt.Errorf("%q can't be combined with %q in an ESP proposal: AEAD algorithms protect integrity themselves",
			nameOf(p, names, ofType(TypeIntegrity)), nameOf(p, names, ofType(TypeEncryption)))
	}
	if !aead && !p.Has(TypeIntegrity) {
		return Proposal{}, fmt.Errorf("proposal %q needs an integrity algorithm (e.g. sha256) with %q", s, nameOf(p, names, ofType(TypeEncryption)))
	}
	if err := checkAdditionalKE(p, s); err != nil {
		return Proposal{}, err
	}
	return withESN(p), nil
}

func checkAH(p Proposal, names []string, s string) (Proposal, error) {
	if n := nameOf(p, names, ofType(TypePRF)); n != "" {
		return Proposal{}, fmt.Errorf("%q can only be used in IKE proposals", n)
	}
	if n := nameOf(p, names, ofType(TypeEncryption)); n != "" {
		return Proposal{}, fmt.Errorf("%q is an encryption algorithm; AH proposals take integrity algorithms only", n)
	}
	if !p.Has(TypeIntegrity) {
		return Proposal{}, fmt.Errorf("proposal %q needs an integrity algorithm (e.g. sha256)", s)
	}
	if err := checkAdditionalKE(p, s); err != nil {
		return Proposal{}, err
	}
	return withESN(p), nil
}

// withESN adds "noesn" when the proposal says nothing about extended sequence numbers, as
// strongSwan does; an SA proposal for ESP or AH must carry the ESN transform (RFC 7296 §3.3.3).
func withESN(p Proposal) Proposal {
	if !p.Has(TypeESN) {
		p.Transforms = append(p.Transforms, Transform{Type: TypeESN, ID: ESNNo})
	}
	return p
}

func without(ts []Transform, typ TransformType) []Transform {
	out := ts[:0:0]
	for _, t := range ts {
		if t.Type != typ {
			out = append(out, t)
		}
	}
	return out
}

// KeyMaterialBytes returns how many bytes of keying material an ESP or AH SA needs for an
// encryption or integrity transform, and false for transforms goipsec does not implement:
// AES-CBC its key (RFC 3602); AES-GCM, AES-GMAC and AES-CTR the key plus a 4-byte salt or nonce
// (RFC 4106 §8.1, RFC 4543 §8.1, RFC 3686 §5.1); AES-CCM the key plus a 3-byte salt (RFC 4309
// §7.1); ChaCha20-Poly1305 a 32-byte key plus a 4-byte salt (RFC 7634 §2); NULL nothing;
// HMAC-SHA2 a key as long as the hash output (RFC 4868 §2.1.1); AES-XCBC-MAC-96 and AES-CMAC-96
// a 16-byte key (RFC 3566 §2.1, RFC 4494 §2.1). AES keys are 128, 192 or 256 bits.
func KeyMaterialBytes(t Transform) (int, bool) {
	switch t.Type {
	case TypeEncryption:
		switch t.ID {
		case EncrNull:
			return 0, true
		case EncrChaCha20Poly1305:
			if t.KeyLength == 0 {
				return 32 + 4, true
			}
		case EncrAESCBC, EncrAESCTR, EncrAESCCM8, EncrAESCCM12, EncrAESCCM16, EncrAESGCM12, EncrAESGCM16, EncrNullAESGMAC:
			if t.KeyLength == 128 || t.KeyLength == 192 || t.KeyLength == 256 {
				return int(t.KeyLength/8) + SaltBytes(t), true
			}
		}
	case TypeIntegrity:
		switch t.ID {
		case IntegHMACSHA2256128:
			return 32, true
		case IntegHMACSHA2384192:
			return 48, true
		case IntegHMACSHA2512256:
			return 64, true
		case IntegHMACSHA196:
			return 20, true // RFC 2404; legacy, reachable only through weak_algorithms
		case IntegAESXCBC96, IntegAESCMAC96:
			return 16, true
		}
	}
	return 0, false
}

// SaltBytes returns how many bytes at the end of an encryption transform's keying material are a
// salt (or, for AES-CTR, the nonce) rather than the key: 4 for AES-GCM, AES-GMAC, AES-CTR and
// ChaCha20-Poly1305, 3 for AES-CCM, 0 otherwise.
func SaltBytes(t Transform) int {
	if t.Type != TypeEncryption {
		return 0
	}
	switch t.ID {
	case EncrAESCCM8, EncrAESCCM12, EncrAESCCM16:
		return 3
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16, EncrNullAESGMAC, EncrAESCTR, EncrChaCha20Poly1305:
		return 4
	}
	return 0
}
