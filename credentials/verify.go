package credentials

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goipsec/goipsec/credentials/dn"
)

// Reason classifies why a peer's credentials were refused.
type Reason uint8

// Reasons, each a one-line cause in Error.Msg.
const (
	ReasonNoTrustedPath Reason = iota + 1 // no path to a trusted CA
	ReasonExpired
	ReasonNotYetValid
	ReasonRevoked
	ReasonRevocationUnknown // the revocation policy wants a status that could not be had
	ReasonIdentity          // identity not in the certificate
	ReasonPolicy            // cacerts, ca_id, cert_policy, pinned certs, key usage, key strength
	ReasonNoCertificate     // the peer sent none and none is stored for its identity
	ReasonMalformed         // a CERT payload that does not parse
)

var reasonNames = map[Reason]string{
	ReasonNoTrustedPath: "no_trusted_path", ReasonExpired: "expired", ReasonNotYetValid: "not_yet_valid",
	ReasonRevoked: "revoked", ReasonRevocationUnknown: "revocation_unknown", ReasonIdentity: "identity",
	ReasonPolicy: "policy", ReasonNoCertificate: "no_certificate", ReasonMalformed: "malformed",
}

// String is a short name for metrics.
func (r Reason) String() string { return reasonNames[r] }

// Error is a refused credential with its one-line cause.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// Policy is what a connection's remote round requires of the peer's credentials.
type Policy struct {
	// CACerts: remote.cacerts; the trust chain must contain one of them.
	CACerts []*x509.Certificate
	// Certs: remote.certs; the peer must use one of these certificates (pinned: trusted as such).
	Certs []*x509.Certificate
	// CAID: remote.ca_id; a CA in the chain must have this identity.
	CAID Identity
	// CertPolicies: remote.cert_policy; the certificate must carry each of these policy OIDs.
	CertPolicies []asn1.ObjectIdentifier
	// Revocation: remote.revocation.
	Revocation Revocation
	// KeyOK checks a public key of the chain (strength constraints of remote.auth); nil accepts
	// all.
	KeyOK func(pub crypto.PublicKey) error
}

// Verified is a peer's certificate and trust chain, leaf first, ending at the anchor.
type Verified struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate
}

// VerifyPeer decides which of the peer's certificates is its own (the first CERT payload, or a
// stored or pinned certificate holding id), checks that it holds id, builds and verifies its
// chain to a trusted CA (validity, basic constraints, path length, name constraints, key usage),
// applies policy and checks revocation. presented are the DER certificates of the peer's CERT
// payloads in order.
func (s *Store) VerifyPeer(ctx context.Context, id Identity, presented [][]byte, p Policy) (*Verified, error) {
	now := s.clock()
	var sent []*x509.Certificate
	for i, der := range presented {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, errorf(ReasonMalformed, "certificate %d the peer sent does not parse: %v", i+1, err)
		}
		sent = append(sent, c)
	}
	var leaf *x509.Certificate
	switch {
	case len(sent) > 0:
		leaf = sent[0]
	case len(p.Certs) > 0:
		for _, c := range p.Certs {
			if CertHasIdentity(c, id) {
				leaf = c
				break
			}
		}
		if leaf == nil {
			leaf = p.Certs[0]
		}
	default:
		if cs := s.CertsWithIdentity(id); len(cs) > 0 {
			leaf = cs[0]
		}
	}
	if leaf == nil {
		return nil, errorf(ReasonNoCertificate, "peer %s sent no certificate and none is stored for it", id)
	}
	if !CertHasIdentity(leaf, id) {
		return nil, errorf(ReasonIdentity, "identity %s is not in the peer's certificate (it holds %s)", id, CertIdentities(leaf))
	}
	if now.After(leaf.NotAfter) {
		return nil, errorf(ReasonExpired, "certificate %s of peer %s expired on %s", Describe(leaf), id, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, errorf(ReasonNotYetValid, "certificate %s of peer %s is not valid before %s", Describe(leaf), id, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	// RFC 4945 §5.1.3.2: a key usage extension must allow digitalSignature or nonRepudiation
	// for the key to sign IKE AUTH; strongSwan 5.9.8 refuses the peer's certificate otherwise
	// (pubkey_authenticator.c, is_compliant_cert; only the end entity, CAs are judged by
	// basicConstraints).
	//
	// Extended key usages are not checked, as in strongSwan 5.9.8: its x509 plugin reads
	// serverAuth, clientAuth, iKEIntermediate and OCSPSigning into flags that only its printer,
	// PKCS#10 and OCSP responder checks use, so charon accepts a peer whose certificate says
	// codeSigning only. RFC 4945 §5.1.3.12 leaves EKU support optional (and CAs SHOULD NOT put an
	// EKU in IKE certificates); refusing what charon accepts would break deployments that move
	// from strongSwan (Windows wants serverAuth on gateways, so CAs issue them anyway).
	if leaf.KeyUsage != 0 && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, errorf(ReasonPolicy, "certificate %s of peer %s may not sign: its key usage (%s) has neither digitalSignature nor nonRepudiation (RFC 4945 5.1.3.2)",
			Describe(leaf), id, keyUsageText(leaf.KeyUsage))
	}
	for _, oid := range p.CertPolicies {
		if !slices.ContainsFunc(leaf.PolicyIdentifiers, oid.Equal) {
			return nil, errorf(ReasonPolicy, "certificate %s of peer %s lacks the certificate policy %s (cert_policy)", Describe(leaf), id, oid)
		}
	}
	if p.KeyOK != nil {
		if err := p.KeyOK(leaf.PublicKey); err != nil {
			return nil, errorf(ReasonPolicy, "certificate %s of peer %s: %v", Describe(leaf), id, err)
		}
	}

	// A pinned certificate is trusted as it is.
	if len(p.Certs) > 0 {
		if !slices.ContainsFunc(p.Certs, leaf.Equal) {
			return nil, errorf(ReasonPolicy, "peer %s uses certificate %s, which is not among the configured remote certs", id, Describe(leaf))
		}
		return &Verified{Leaf: leaf, Chain: []*x509.Certificate{leaf}}, nil
	}

	chains, cas, err := s.verifyChains(leaf, sent[min(1, len(sent)):], now)
	if err != nil {
		return nil, s.explainChainError(leaf, id, sent, cas, err, now)
	}
	var problems []string
	for _, chain := range chains {
		vf, err := s.checkChain(ctx, chain, id, p)
		if err == nil {
			return vf, nil
		}
		var ce *Error
		if errors.As(err, &ce) && (ce.Reason == ReasonRevoked || len(chains) == 1) {
			return nil, err
		}
		problems = append(problems, err.Error())
	}
	return nil, errorf(ReasonPolicy, "no trust chain of peer %s satisfies the connection: %s", id, strings.Join(problems, "; "))
}

// checkChain applies the policy and revocation checks to one verified chain.
func (s *Store) checkChain(ctx context.Context, chain []*x509.Certificate, id Identity, p Policy) (*Verified, error) {
	leaf := chain[0]
	if len(p.CACerts) > 0 && !slices.ContainsFunc(chain[1:], func(c *x509.Certificate) bool { return slices.ContainsFunc(p.CACerts, c.Equal) }) {
		return nil, errorf(ReasonPolicy, "certificate %s of peer %s chains to %s, not to a CA in remote.cacerts (%s)", Describe(leaf), id, Describe(chain[len(chain)-1]), describeAll(p.CACerts))
	}
	if !p.CAID.IsAny() && !slices.ContainsFunc(chain[1:], func(c *x509.Certificate) bool { return CertHasIdentity(c, p.CAID) }) {
		return nil, errorf(ReasonPolicy, "certificate %s of peer %s is not issued under CA %s (remote.ca_id)", Describe(leaf), id, p.CAID)
	}
	if p.KeyOK != nil {
		for _, c := range chain[1:] {
			if err := p.KeyOK(c.PublicKey); err != nil {
				return nil, errorf(ReasonPolicy, "CA certificate %s in the chain of peer %s: %v", Describe(c), id, err)
			}
		}
	}
	// Revocation of every certificate but the anchor.
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		r := s.checkRevocation(ctx, c, issuer)
		switch {
		case r.st == statusRevoked:
			return nil, errorf(ReasonRevoked, "certificate %s (serial %x) of peer %s was revoked by %s on %s%s (%s)", Describe(c), c.SerialNumber, id,
				Describe(issuer), r.at.UTC().Format(time.RFC3339), reasonText(r.reason), r.via)
		case r.st == statusGood:
		case p.Revocation == RevocationStrict:
			why := "no CRL or OCSP URI and no CRL loaded"
			if r.detail != "" {
				why = r.detail
			}
			return nil, errorf(ReasonRevocationUnknown, "revocation status of certificate %s of peer %s is unknown (%s) and revocation = strict", Describe(c), id, why)
		case p.Revocation == RevocationIfURI && r.st == statusFailed:
			return nil, errorf(ReasonRevocationUnknown, "revocation status of certificate %s of peer %s could not be fetched (%s) and revocation = ifuri", Describe(c), id, r.detail)
		}
	}
	return &Verified{Leaf: leaf, Chain: chain}, nil
}

func reasonText(code int) string {
	names := map[int]string{1: "key compromise", 2: "CA compromise", 3: "affiliation changed", 4: "superseded", 5: "cessation of operation", 6: "certificate hold", 9: "privilege withdrawn", 10: "AA compromise"}
	if n, ok := names[code]; ok {
		return ", reason: " + n
	}
	return ""
}

// explainChainError turns crypto/x509's verification error into a one-line cause naming the
// certificates and the trusted CAs.
func (s *Store) explainChainError(leaf *x509.Certificate, id Identity, sent, cas []*x509.Certificate, err error, now time.Time) error {
	// Expired or not yet valid CAs in the chain the peer sent or we hold.
	for _, c := range append(append([]*x509.Certificate{}, sent...), cas...) {
		if c == leaf || (!isIssuerOf(c, leaf) && !slices.ContainsFunc(sent, func(x *x509.Certificate) bool { return isIssuerOf(c, x) })) {
			continue
		}
		if now.After(c.NotAfter) {
			return errorf(ReasonExpired, "CA certificate %s in the chain of peer %s expired on %s", Describe(c), id, c.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(c.NotBefore) {
			return errorf(ReasonNotYetValid, "CA certificate %s in the chain of peer %s is not valid before %s", Describe(c), id, c.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		// crypto/x509 reports an issuer that is no CA as an unknown authority (its signature
		// check refuses the parent before the chain's constraints are looked at).
		pool := append(append([]*x509.Certificate{}, sent...), cas...)
		if issuer, child := nonCAIssuer(leaf, pool); issuer != nil {
			return errorf(ReasonPolicy, "certificate %s, which issued %s in the chain of %s of peer %s, is not a CA (basicConstraints without cA)", Describe(issuer), Describe(child), Describe(leaf), id)
		}
		return errorf(ReasonNoTrustedPath, "no path to a trusted CA for certificate %s of peer %s, issued by %q; trusted CAs: %s", Describe(leaf), id, dn.String(leaf.RawIssuer), describeAll(cas))
	case errors.As(err, &ci):
		return explainInvalid(leaf, id, append(append([]*x509.Certificate{}, sent...), cas...), ci)
	}
	return errorf(ReasonNoTrustedPath, "certificate %s of peer %s does not verify: %v", Describe(leaf), id, err)
}

// explainInvalid names the CA certificate whose constraint the chain breaks and the rule (the
// checks strongSwan's constraints plugin makes too: basicConstraints, pathLenConstraint, name
// constraints). pool holds the certificates the chain can be made of.
func explainInvalid(leaf *x509.Certificate, id Identity, pool []*x509.Certificate, ci x509.CertificateInvalidError) error {
	c := ci.Cert
	switch ci.Reason {
	case x509.TooManyIntermediates:
		// crypto/x509 counts every CA certificate between the leaf and c, as strongSwan's
		// check_pathlen does (RFC 5280 4.2.1.9 would leave self-issued ones out).
		below := "more"
		if n, ok := casBetween(leaf, c, pool); ok {
			below = fmt.Sprint(n)
		}
		return errorf(ReasonPolicy, "CA certificate %s allows %d intermediate CA certificates below it (pathLenConstraint), but the chain of certificate %s of peer %s has %s",
			Describe(c), c.MaxPathLen, Describe(leaf), id, below)
	case x509.CANotAuthorizedForThisName, x509.CANotAuthorizedForExtKeyUsage:
		return errorf(ReasonPolicy, "CA certificate %s in the chain of certificate %s of peer %s does not allow it: %s", Describe(c), Describe(leaf), id, ci.Detail)
	}
	return errorf(ReasonPolicy, "certificate chain of peer %s (%s) is invalid at %s: %v", id, Describe(leaf), Describe(c), ci)
}

// nonCAIssuer follows the issuers of leaf through pool (by name and signature, whatever their
// basic constraints) and returns the first issuer that is not a CA, and the certificate it signed.
func nonCAIssuer(leaf *x509.Certificate, pool []*x509.Certificate) (issuer, child *x509.Certificate) {
	cur := leaf
	for range len(pool) + 1 {
		i := slices.IndexFunc(pool, func(p *x509.Certificate) bool {
			return !p.Equal(cur) && dn.Equal(p.RawSubject, cur.RawIssuer) && p.CheckSignature(cur.SignatureAlgorithm, cur.RawTBSCertificate, cur.Signature) == nil
		})
		if i < 0 {
			return nil, nil
		}
		if !pool[i].BasicConstraintsValid || !pool[i].IsCA {
			return pool[i], cur
		}
		cur = pool[i]
	}
	return nil, nil
}

// casBetween counts the CA certificates between leaf and ca by following issuers through pool.
func casBetween(leaf, ca *x509.Certificate, pool []*x509.Certificate) (int, bool) {
	cur := leaf
	for n := 0; n <= len(pool); n++ {
		if isIssuerOf(ca, cur) {
			return n, true
		}
		i := slices.IndexFunc(pool, func(p *x509.Certificate) bool { return !p.Equal(cur) && isIssuerOf(p, cur) })
		if i < 0 {
			return 0, false
		}
		cur = pool[i]
	}
	return 0, false
}

// keyUsageText names the bits of a key usage extension as RFC 5280 does.
func keyUsageText(u x509.KeyUsage) string {
	names := []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if u&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

func isIssuerOf(ca, c *x509.Certificate) bool {
	return dn.Equal(ca.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(ca) == nil
}

func describeAll(cs []*x509.Certificate) string {
	if len(cs) == 0 {
		return "none"
	}
	var out []string
	for _, c := range cs {
		out = append(out, Describe(c))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// ChainFor returns the CA certificates we hold that chain cert up to (not including) a trust
// anchor: the intermediates to send in CERT payloads after our own certificate.
func (s *Store) ChainFor(cert *x509.Certificate) []*x509.Certificate {
	chains, _, err := s.verifyChains(cert, nil, s.clock())
	if err != nil || len(chains) == 0 {
		return nil
	}
	// Leave out the leaf and a self-signed root, which the peer must have; an anchor that is an
	// intermediate CA (an x509ca/ file not signed by itself) is sent, as strongSwan does.
	chain := chains[0][1:]
	if n := len(chain); n > 0 && selfSigned(chain[n-1]) {
		chain = chain[:n-1]
	}
	return chain
}

// chainCache remembers verified chains (crypto/x509's Verify checks a signature per link, the
// largest cost of a certificate handshake after the AUTH signature itself). Entries are valid for
// one store generation and while every certificate of the chains is within its validity; the
// revocation check is not cached here (its CRLs and OCSP answers have their own cache).
type chainCache struct {
	mu      sync.Mutex
	entries map[[32]byte]chainEntry
}

type chainEntry struct {
	gen              uint64
	chains           [][]*x509.Certificate
	notBefore, until time.Time
}

// maxChainCache bounds the cache; it is emptied when full (peers are few, certificates fewer).
const maxChainCache = 4096

func newChainCache() *chainCache { return &chainCache{entries: map[[32]byte]chainEntry{}} }

// verifyChains returns the verified chains of leaf through intermediates to the trust anchors, from
// the cache when it can.
func (s *Store) verifyChains(leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) ([][]*x509.Certificate, []*x509.Certificate, error) {
	h := sha256.New()
	h.Write(leaf.Raw)
	for _, c := range intermediates {
		h.Write(c.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	cas, stored, gen := s.anchors()
	s.chains.mu.Lock()
	e, ok := s.chains.entries[key]
	s.chains.mu.Unlock()
	if ok && e.gen == gen && !now.Before(e.notBefore) && now.Before(e.until) {
		return e.chains, cas, nil
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	for _, c := range stored {
		if c.IsCA {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, cas, err
	}
	e = chainEntry{gen: gen, chains: chains, notBefore: leaf.NotBefore, until: leaf.NotAfter}
	for _, chain := range chains {
		for _, c := range chain {
			if c.NotBefore.After(e.notBefore) {
				e.notBefore = c.NotBefore
			}
			if c.NotAfter.Before(e.until) {
				e.until = c.NotAfter
			}
		}
	}
	s.chains.mu.Lock()
	if len(s.chains.entries) >= maxChainCache {
		s.chains.entries = map[[32]byte]chainEntry{}
	}
	s.chains.entries[key] = e
	s.chains.mu.Unlock()
	return chains, cas, nil
}

// selfSigned tells a root from an intermediate anchor by names and key identifiers (the chain was
// verified, so no signature needs checking again).
func selfSigned(c *x509.Certificate) bool {
	return dn.Equal(c.RawSubject, c.RawIssuer) && (len(c.AuthorityKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId))
}
