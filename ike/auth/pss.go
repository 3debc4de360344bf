package auth

import (
	"bytes"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/goipsec/goipsec/ike/wire"
)

// PSSParams are the RSASSA-PSS-params of a received AlgorithmIdentifier (RFC 4055 §3.1).
type PSSParams struct {
	Hash       wire.HashAlgorithm
	SaltLength int
}

// OIDs of RFC 4055 and NIST.
var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidMGF1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

func hashFromOID(oid asn1.ObjectIdentifier) (wire.HashAlgorithm, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return wire.HashSHA1, true
	case oid.Equal(oidSHA256):
		return wire.HashSHA2_256, true
	case oid.Equal(oidSHA384):
		return wire.HashSHA2_384, true
	case oid.Equal(oidSHA512):
		return wire.HashSHA2_512, true
	}
	return 0, false
}

// readHashAlgID reads an AlgorithmIdentifier of a hash: the OID and optional NULL parameters.
func readHashAlgID(s *cryptobyte.String) (wire.HashAlgorithm, bool) {
	var seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return 0, false
	}
	if seq.PeekASN1Tag(cbasn1.NULL) {
		var null cryptobyte.String
		if !seq.ReadASN1(&null, cbasn1.NULL) || len(null) != 0 {
			return 0, false
		}
	}
	if !seq.Empty() {
		return 0, false
	}
	return hashFromOID(oid)
}

// parsePSSAlgID reads an id-RSASSA-PSS AlgorithmIdentifier with explicit parameters. The hash and
// the MGF1 hash must be the same SHA-2 function (crypto/rsa implements only that) and the trailer
// field must be 1; absent fields take RFC 4055's defaults (SHA-1), which are then refused as weak
// by the constraints.
func parsePSSAlgID(der []byte) (PSSParams, bool) {
	s := cryptobyte.String(der)
	var outer, oidBytes, params cryptobyte.String
	if !s.ReadASN1(&outer, cbasn1.SEQUENCE) || !s.Empty() {
		return PSSParams{}, false
	}
	if !outer.ReadASN1Element(&oidBytes, cbasn1.OBJECT_IDENTIFIER) || !bytes.Equal(oidBytes, pssOID) {
		return PSSParams{}, false
	}
	if !outer.ReadASN1(&params, cbasn1.SEQUENCE) || !outer.Empty() {
		return PSSParams{}, false
	}
	p := PSSParams{Hash: wire.HashSHA1, SaltLength: 20}
	mgfHash := wire.HashSHA1
	tag0, tag1, tag2, tag3 := cbasn1.Tag(0).Constructed().ContextSpecific(), cbasn1.Tag(1).Constructed().ContextSpecific(),
		cbasn1.Tag(2).Constructed().ContextSpecific(), cbasn1.Tag(3).Constructed().ContextSpecific()
	if params.PeekASN1Tag(tag0) {
		var f cryptobyte.String
		var ok bool
		if !params.ReadASN1(&f, tag0) {
			return PSSParams{}, false
		}
		if p.Hash, ok = readHashAlgID(&f); !ok || !f.Empty() {
			return PSSParams{}, false
		}
	}
	if params.PeekASN1Tag(tag1) {
		var f, seq cryptobyte.String
		var oid asn1.ObjectIdentifier
		var ok bool
		if !params.ReadASN1(&f, tag1) || !f.ReadASN1(&seq, cbasn1.SEQUENCE) || !f.Empty() ||
			!seq.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidMGF1) {
			return PSSParams{}, false
		}
		if mgfHash, ok = readHashAlgID(&seq); !ok || !seq.Empty() {
			return PSSParams{}, false
		}
	}
	if params.PeekASN1Tag(tag2) {
		var f cryptobyte.String
		var salt int
		if !params.ReadASN1(&f, tag2) || !f.ReadASN1Integer(&salt) || !f.Empty() || salt < 0 || salt > 1024 {
			return PSSParams{}, false
		}
		p.SaltLength = salt
	}
	if params.PeekASN1Tag(tag3) {
		var f cryptobyte.String
		var trailer int
		if !params.ReadASN1(&f, tag3) || !f.ReadASN1Integer(&trailer) || !f.Empty() || trailer != 1 {
			return PSSParams{}, false
		}
	}
	if !params.Empty() || mgfHash != p.Hash {
		return PSSParams{}, false
	}
	return p, true
}
