package ikev1

import (
	"fmt"
	"time"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Phase 1 attribute types (RFC 2409 Appendix A).
const (
	attrEncryption = 1
	attrHash       = 2
	attrAuthMethod = 3
	attrGroup      = 4
	attrLifeType   = 11
	attrLifeDur    = 12
	attrKeyLength  = 14
)

// Authentication methods (RFC 2409 Appendix A; XAuth: draft-ietf-ipsec-isakmp-xauth-06 §4.1).
const (
	authPSK             = 1
	authRSASig          = 3
	authXAuthInitPSK    = 65001
	authXAuthRespPSK    = 65002
	authXAuthInitRSASig = 65005
)

// Phase 1 hash values (RFC 2409 Appendix A; the SHA-2 values are IANA's "IPSEC Hash Algorithm" registry).
const (
	hashSHA1   = 2
	hashSHA256 = 4
	hashSHA384 = 5
	hashSHA512 = 6
)

const (
	lifeSeconds     = 1
	transformKeyIKE = 1 // KEY_IKE (RFC 2407 §4.4.2)
)

// IPsec DOI attribute types of phase 2 transforms (RFC 2407 §4.5).
const (
	attrSALifeType  = 1
	attrSALifeDur   = 2
	attrGroupDesc   = 3
	attrEncapMode   = 4
	attrAuthAlg     = 5
	attrP2KeyLength = 6
)

// Encapsulation modes (RFC 2407 §4.5, RFC 3947 §5; the draft values some old peers send).
const (
	encapTunnel         = 1
	encapTransport      = 2
	encapUDPTunnel      = 3
	encapUDPTransport   = 4
	encapUDPTunnelDraft = 61443
	encapUDPTransDraft  = 61444
)

// Phase 2 authentication algorithms (RFC 2407 §4.5; SHA-2: RFC 4868 §2, IANA "IPSEC Authentication Algorithm").
const (
	authAlgSHA1   = 2
	authAlgSHA256 = 5
	authAlgSHA384 = 6
	authAlgSHA512 = 7
)

// p1Transform is one fully specified phase 1 transform.
type p1Transform struct {
	encr     uint16 // IKEv1 encryption value
	keyBits  int
	hash     uint16
	group    uint16
	auth     uint16
	lifetime time.Duration
}

func (t p1Transform) attrs() []wire.Attr {
	a := []wire.Attr{wire.BasicAttr(attrEncryption, t.encr)}
	if t.keyBits != 0 {
		a = append(a, wire.BasicAttr(attrKeyLength, uint16(t.keyBits)))
	}
	a = append(a, wire.BasicAttr(attrHash, t.hash), wire.BasicAttr(attrAuthMethod, t.auth), wire.BasicAttr(attrGroup, t.group))
	if t.lifetime > 0 {
		a = append(a, wire.BasicAttr(attrLifeType, lifeSeconds), wire.UintAttr(attrLifeDur, uint64(t.lifetime/time.Second)))
	}
	return a
}

// String names the transform the way the configuration does, e.g. "aes256-sha256-modp2048".
func (t p1Transform) String() string { return t.proposal().String() }

// proposal converts to the IKEv2 keyword form used in logs and status.
func (t p1Transform) proposal() proposal.Proposal {
	p := proposal.Proposal{Protocol: proposal.ProtoIKE}
	switch t.encr {
	case p1EncAES:
		p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeEncryption, ID: proposal.EncrAESCBC, KeyLength: uint16(t.keyBits)})
	case p1Enc3DES:
		p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeEncryption, ID: proposal.Encr3DES})
	}
	prf, integ := hashToIKEv2(t.hash)
	p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeIntegrity, ID: integ},
		proposal.Transform{Type: proposal.TypePRF, ID: prf},
		proposal.Transform{Type: proposal.TypeKeyExchange, ID: t.group})
	return p
}

func hashToIKEv2(h uint16) (prf, integ uint16) {
	switch h {
	case hashSHA1:
		return proposal.PRFHMACSHA1, proposal.IntegHMACSHA196
	case hashSHA256:
		return proposal.PRFHMACSHA2256, proposal.IntegHMACSHA2256128
	case hashSHA384:
		return proposal.PRFHMACSHA2384, proposal.IntegHMACSHA2384192
	case hashSHA512:
		return proposal.PRFHMACSHA2512, proposal.IntegHMACSHA2512256
	}
	return 0, 0
}

func prfToHash(prf uint16) (uint16, bool) {
	switch prf {
	case proposal.PRFHMACSHA1:
		return hashSHA1, true
	case proposal.PRFHMACSHA2256:
		return hashSHA256, true
	case proposal.PRFHMACSHA2384:
		return hashSHA384, true
	case proposal.PRFHMACSHA2512:
		return hashSHA512, true
	}
	return 0, false
}

// weak reports whether the transform uses one of the legacy algorithms.
func (t p1Transform) weak() bool {
	return t.encr == p1Enc3DES || t.hash == hashSHA1 || t.group == suite.MODP_1024
}

// prf returns the transform's PRF (HMAC with its hash).
func (t p1Transform) prf() (suite.PRF, error) {
	prf, _ := hashToIKEv2(t.hash)
	return suite.NewLegacyPRF(prf)
}

// phase1Transforms expands configured IKE proposals into IKEv1 transforms, one per combination
// (IKEv1 has no alternatives inside a transform). AEAD ciphers have no IKEv1 phase 1 form and are
// skipped; so are PRFs and groups without one.
func phase1Transforms(props []proposal.Proposal, auth uint16, lifetime time.Duration) []p1Transform {
	var out []p1Transform
	for _, p := range props {
		for _, e := range p.Of(proposal.TypeEncryption) {
			var encr uint16
			switch e.ID {
			case proposal.EncrAESCBC:
				encr = p1EncAES
			case proposal.Encr3DES:
				encr = p1Enc3DES
			default:
				continue
			}
			for _, f := range p.Of(proposal.TypePRF) {
				h, ok := prfToHash(f.ID)
				if !ok {
					continue
				}
				for _, g := range p.Of(proposal.TypeKeyExchange) {
					if suite.IsKEM(g.ID) {
						continue
					}
					out = append(out, p1Transform{encr: encr, keyBits: int(e.KeyLength), hash: h, group: g.ID, auth: auth, lifetime: lifetime})
				}
			}
		}
	}
	return out
}

// parseP1Transform reads a received phase 1 transform; unknown attributes make it unusable
// (RFC 2409 §5: the responder must not accept a transform it does not understand fully).
func parseP1Transform(t wire.Transform) (p1Transform, error) {
	if t.ID != transformKeyIKE {
		return p1Transform{}, fmt.Errorf("transform ID %d is not KEY_IKE", t.ID)
	}
	var x p1Transform
	lifeType := uint64(0)
	for _, a := range t.Attrs {
		v, ok := a.Uint()
		if !ok {
			return x, fmt.Errorf("attribute %d has no numeric value", a.Type)
		}
		switch a.Type {
		case attrEncryption:
			x.encr = uint16(v)
		case attrKeyLength:
			x.keyBits = int(v)
		case attrHash:
			x.hash = uint16(v)
		case attrAuthMethod:
			x.auth = uint16(v)
		case attrGroup:
			x.group = uint16(v)
		case attrLifeType:
			lifeType = v
		case attrLifeDur:
			if lifeType == lifeSeconds && v < 1<<32 {
				x.lifetime = time.Duration(v) * time.Second
			}
		default:
			return x, fmt.Errorf("attribute %d not supported", a.Type)
		}
	}
	if x.encr == p1EncAES && x.keyBits == 0 {
		// RFC 3602 §5.3 requires the Key Length attribute with AES; a peer that leaves it out gets
		// AES-128, the only length that could then be meant.
		x.keyBits = 128
	}
	return x, nil
}

// sameAlgorithms compares two transforms apart from the lifetime.
func (t p1Transform) sameAlgorithms(o p1Transform) bool {
	return t.encr == o.encr && t.keyBits == o.keyBits && t.hash == o.hash && t.group == o.group && t.auth == o.auth
}

// p2Transform is one fully specified ESP transform.
type p2Transform struct {
	encr     uint16 // ESP transform ID (same numbers as IKEv2's encryption IDs, RFC 2407 §4.4.4)
	keyBits  int
	authAlg  uint16 // 0 with AEAD
	group    uint16 // PFS group, 0 without
	mode     uint16 // encapsulation mode attribute
	lifetime time.Duration
}

func (t p2Transform) attrs() []wire.Attr {
	var a []wire.Attr
	if t.lifetime > 0 {
		a = append(a, wire.BasicAttr(attrSALifeType, lifeSeconds), wire.UintAttr(attrSALifeDur, uint64(t.lifetime/time.Second)))
	}
	if t.group != 0 {
		a = append(a, wire.BasicAttr(attrGroupDesc, t.group))
	}
	a = append(a, wire.BasicAttr(attrEncapMode, t.mode))
	if t.authAlg != 0 {
		a = append(a, wire.BasicAttr(attrAuthAlg, t.authAlg))
	}
	if t.keyBits != 0 {
		a = append(a, wire.BasicAttr(attrP2KeyLength, uint16(t.keyBits)))
	}
	return a
}

func (t p2Transform) sameAlgorithms(o p2Transform) bool {
	return t.encr == o.encr && t.keyBits == o.keyBits && t.authAlg == o.authAlg && t.group == o.group
}

// proposal converts to the IKEv2 form the data plane and status understand.
func (t p2Transform) proposal() proposal.Proposal {
	p := proposal.Proposal{Protocol: proposal.ProtoESP}
	p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeEncryption, ID: t.encr, KeyLength: uint16(t.keyBits)})
	if t.authAlg != 0 {
		var integ uint16
		switch t.authAlg {
		case authAlgSHA1:
			integ = proposal.IntegHMACSHA196
		case authAlgSHA256:
			integ = proposal.IntegHMACSHA2256128
		case authAlgSHA384:
			integ = proposal.IntegHMACSHA2384192
		case authAlgSHA512:
			integ = proposal.IntegHMACSHA2512256
		}
		p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeIntegrity, ID: integ})
	}
	if t.group != 0 {
		p.Transforms = append(p.Transforms, proposal.Transform{Type: proposal.TypeKeyExchange, ID: t.group})
	}
	return p
}

// keyBytes is how much KEYMAT one direction takes: the cipher key (with the salt for AES-GCM,
// RFC 4106 §8.1) and the integrity key.
func (t p2Transform) keyBytes() (encr, integ int, err error) {
	pr := t.proposal()
	for _, tr := range pr.Transforms {
		switch tr.Type {
		case proposal.TypeEncryption:
			n, ok := proposal.KeyMaterialBytes(tr)
			if !ok {
				if tr.ID == proposal.Encr3DES {
					n, ok = 24, true
				} else {
					return 0, 0, fmt.Errorf("ESP encryption %s not supported", tr)
				}
			}
			encr = n
		case proposal.TypeIntegrity:
			n, ok := proposal.KeyMaterialBytes(tr)
			if !ok {
				if tr.ID == proposal.IntegHMACSHA196 {
					n, ok = 20, true
				} else {
					return 0, 0, fmt.Errorf("ESP integrity %s not supported", tr)
				}
			}
			integ = n
		}
	}
	return encr, integ, nil
}

func integToAuthAlg(id uint16) (uint16, bool) {
	switch id {
	case proposal.IntegHMACSHA196:
		return authAlgSHA1, true
	case proposal.IntegHMACSHA2256128:
		return authAlgSHA256, true
	case proposal.IntegHMACSHA2384192:
		return authAlgSHA384, true
	case proposal.IntegHMACSHA2512256:
		return authAlgSHA512, true
	}
	return 0, false
}

// phase2Transforms expands configured ESP proposals into IKEv1 transforms.
func phase2Transforms(props []proposal.Proposal, mode uint16, lifetime time.Duration) []p2Transform {
	var out []p2Transform
	for _, p := range props {
		groups := []uint16{0}
		if kes := p.Of(proposal.TypeKeyExchange); len(kes) > 0 {
			groups = groups[:0]
			for _, g := range kes {
				groups = append(groups, g.ID)
			}
		}
		integs := []uint16{0}
		if !aead(p) {
			integs = integs[:0]
			for _, i := range p.Of(proposal.TypeIntegrity) {
				if a, ok := integToAuthAlg(i.ID); ok {
					integs = append(integs, a)
				}
			}
		}
		for _, e := range p.Of(proposal.TypeEncryption) {
			for _, a := range integs {
				for _, g := range groups {
					out = append(out, p2Transform{encr: e.ID, keyBits: int(e.KeyLength), authAlg: a, group: g, mode: mode, lifetime: lifetime})
				}
			}
		}
	}
	return out
}

func aead(p proposal.Proposal) bool {
	for _, e := range p.Of(proposal.TypeEncryption) {
		if proposal.IsAEAD(e.ID) {
			return true
		}
	}
	return false
}

func parseP2Transform(t wire.Transform) (p2Transform, error) {
	x := p2Transform{encr: uint16(t.ID)}
	lifeType := uint64(0)
	for _, a := range t.Attrs {
		v, ok := a.Uint()
		if !ok {
			return x, fmt.Errorf("attribute %d has no numeric value", a.Type)
		}
		switch a.Type {
		case attrSALifeType:
			lifeType = v
		case attrSALifeDur:
			if lifeType == lifeSeconds && v < 1<<32 {
				x.lifetime = time.Duration(v) * time.Second
			}
		case attrGroupDesc:
			x.group = uint16(v)
		case attrEncapMode:
			x.mode = uint16(v)
		case attrAuthAlg:
			x.authAlg = uint16(v)
		case attrP2KeyLength:
			x.keyBits = int(v)
		default:
			return x, fmt.Errorf("attribute %d not supported", a.Type)
		}
	}
	return x, nil
}
