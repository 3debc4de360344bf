package auth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/goipsec/goipsec/ike/wire"
)

// Constraints are strongSwan's public key authentication constraints, from an auth value such as
// pubkey, pubkey-sha256-sha512, rsa-2048, rsa/pss-sha384, ecdsa-384-sha384, ed25519 or
// rsa-2048-ecdsa-256-sha256 (swanctl.conf(5), connections.<conn>.remote.auth). Key types and
// strengths constrain the peer's key (and every key of its trust chain); hashes the signature
// hashes. An "ike:" part (pubkey-sha256-ike:rsa/pss-sha256) constrains only the IKE signature
// scheme and then replaces the others for it.
//
// Following strongSwan, RSASSA-PSS is used and accepted only with rsa/pss named, or with no
// constraint at all (plain pubkey accepts every scheme goipsec supports, except the weak SHA-1
// ones).
type Constraints struct {
	// Keys lists the allowed key types with a minimum size in bits (0: any); empty allows all.
	Keys []KeyConstraint
	// Hashes lists the allowed hashes in order of preference; empty allows SHA-2.
	Hashes []wire.HashAlgorithm
	// IKE, when set, constrains the IKE signature scheme instead (the "ike:" part).
	IKE *Constraints
	// Text is the value as configured, for messages.
	Text string
}

// KeyConstraint is one allowed key type.
type KeyConstraint struct {
	Type    KeyType
	PSS     bool // rsa/pss: RSASSA-PSS signatures (RSA only)
	MinBits int
}

// ParseConstraints reads the auth value of a pubkey round: pubkey, rsa, rsa/pss, ecdsa or
// ed25519, each with optional strengths and hashes joined by '-'.
func ParseConstraints(s string) (Constraints, error) {
	c := Constraints{Text: s}
	main, ike, hasIKE := strings.Cut(s, "ike:")
	main = strings.TrimSuffix(main, "-")
	if main != "" {
		if err := c.parse(main, true); err != nil {
			return Constraints{}, err
		}
	}
	if hasIKE {
		ic := Constraints{Text: "ike:" + ike}
		if err := ic.parse(ike, false); err != nil {
			return Constraints{}, err
		}
		c.IKE = &ic
	}
	return c, nil
}

func (c *Constraints) parse(s string, first bool) error {
	tokens := strings.Split(s, "-")
	for i, tok := range tokens {
		switch tok {
		case "pubkey":
			if i != 0 {
				return fmt.Errorf("pubkey must come first in %q", c.Text)
			}
		case "rsa":
			c.Keys = append(c.Keys, KeyConstraint{Type: KeyRSA})
		case "rsa/pss":
			c.Keys = append(c.Keys, KeyConstraint{Type: KeyRSA, PSS: true})
		case "ecdsa":
			c.Keys = append(c.Keys, KeyConstraint{Type: KeyECDSA})
		case "ed25519":
			c.Keys = append(c.Keys, KeyConstraint{Type: KeyEd25519})
		case "sha1":
			c.Hashes = append(c.Hashes, wire.HashSHA1)
		case "sha256", "sha2_256":
			c.Hashes = append(c.Hashes, wire.HashSHA2_256)
		case "sha384", "sha2_384":
			c.Hashes = append(c.Hashes, wire.HashSHA2_384)
		case "sha512", "sha2_512":
			c.Hashes = append(c.Hashes, wire.HashSHA2_512)
		case "ed448", "bliss":
			return fmt.Errorf("%s keys are not supported by goipsec", tok)
		default:
			n, err := strconv.Atoi(tok)
			if err != nil || n <= 0 || len(c.Keys) == 0 || c.Keys[len(c.Keys)-1].MinBits != 0 {
				return fmt.Errorf("invalid public key constraint %q in %q (expected pubkey, rsa, rsa/pss, ecdsa or ed25519, key sizes after a key type, and sha256, sha384, sha512)", tok, c.Text)
			}
			c.Keys[len(c.Keys)-1].MinBits = n
		}
	}
	_ = first
	return nil
}

// AllowsWeak reports whether SHA-1 signatures were configured explicitly.
func (c Constraints) AllowsWeak() bool {
	return slices.Contains(c.Hashes, wire.HashSHA1) || (c.IKE != nil && c.IKE.AllowsWeak())
}

// sigConstraints are the constraints that apply to the IKE signature scheme.
func (c Constraints) sigConstraints() Constraints {
	if c.IKE != nil {
		return *c.IKE
	}
	return c
}

// unconstrained: plain pubkey.
func (c Constraints) unconstrained() bool { return len(c.Keys) == 0 && len(c.Hashes) == 0 }

// AcceptsKey checks a public key's type and size against the key constraints (used for the peer's
// key and the keys of its trust chain).
func (c Constraints) AcceptsKey(t KeyType, bits int) error {
	if len(c.Keys) == 0 {
		return nil
	}
	for _, k := range c.Keys {
		if k.Type == t && bits >= k.MinBits {
			return nil
		}
	}
	return fmt.Errorf("%d-bit %s key not accepted by auth = %s", bits, t, c.Text)
}

// AcceptsScheme checks a signature scheme the peer used (with its key's size).
func (c Constraints) AcceptsScheme(s Scheme, bits int) error {
	sc := c.sigConstraints()
	if s.Weak() && !c.AllowsWeak() {
		return fmt.Errorf("signature scheme %s uses SHA-1, which is weak and not configured (auth = %s)", s, c.Text)
	}
	if sc.unconstrained() {
		return nil
	}
	keyOK := len(sc.Keys) == 0 && (s.Padding != PSS || s.Key != KeyRSA)
	for _, k := range sc.Keys {
		if k.Type == s.Key && bits >= k.MinBits && (s.Key != KeyRSA || k.PSS == (s.Padding == PSS)) {
			keyOK = true
		}
	}
	if !keyOK {
		return fmt.Errorf("signature scheme %s not accepted by auth = %s", s, c.Text)
	}
	if len(sc.Hashes) > 0 && s.Key != KeyEd25519 && !slices.Contains(sc.Hashes, s.Hash) {
		return fmt.Errorf("signature scheme %s not accepted by auth = %s (hash not allowed)", s, c.Text)
	}
	if len(sc.Hashes) > 0 && s.Key == KeyEd25519 && !sc.namesKey(KeyEd25519) {
		return fmt.Errorf("signature scheme %s not accepted by auth = %s (hash constraints without ed25519)", s, c.Text)
	}
	return nil
}

func (c Constraints) namesKey(t KeyType) bool {
	for _, k := range c.Keys {
		if k.Type == t {
			return true
		}
	}
	return false
}

// defaultHashes is the preference without hash constraints.
var defaultHashes = []wire.HashAlgorithm{wire.HashSHA2_256, wire.HashSHA2_384, wire.HashSHA2_512}

// candidates lists the schemes we may sign with for a key, in order of preference.
func (c Constraints) candidates(t KeyType, curveHash wire.HashAlgorithm, bits int) []Scheme {
	sc := c.sigConstraints()
	if t == KeyEd25519 {
		if sc.AcceptsScheme(Ed25519, bits) == nil || sc.unconstrained() {
			return []Scheme{Ed25519}
		}
		return nil
	}
	hashes := sc.Hashes
	if len(hashes) == 0 {
		hashes = defaultHashes
		if t == KeyECDSA && curveHash != 0 {
			// The curve's own hash first (RFC 4754's pairing; what strongSwan picks).
			hashes = append([]wire.HashAlgorithm{curveHash}, slices.DeleteFunc(slices.Clone(defaultHashes), func(h wire.HashAlgorithm) bool { return h == curveHash })...)
		}
	}
	var out []Scheme
	for _, h := range hashes {
		if t == KeyRSA {
			pss := sc.namesPSS()
			s := Scheme{KeyRSA, h, PKCS1v15}
			if pss {
				s.Padding = PSS
			}
			if s.Weak() && s.Padding == PSS {
				continue
			}
			if c.AcceptsScheme(s, bits) == nil {
				out = append(out, s)
			}
			continue
		}
		if s := (Scheme{KeyECDSA, h, 0}); h != wire.HashSHA1 && c.AcceptsScheme(s, bits) == nil {
			out = append(out, s)
		}
	}
	return out
}

func (c Constraints) namesPSS() bool {
	for _, k := range c.Keys {
		if k.Type == KeyRSA && k.PSS {
			return true
		}
	}
	return false
}
