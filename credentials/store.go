// Package credentials is goipsec's credential store: X.509 certificates (end entity, CA,
// attribute authority, OCSP signer), private keys, raw public keys, certification authorities
// with their CRL and OCSP URIs, and CRLs. It loads strongSwan's swanctl directory layout (x509/,
// x509ca/, x509aa/, x509crl/, x509ocsp/, private/, rsa/, ecdsa/, pkcs8/, pkcs12/, pubkey/) in PEM
// or DER, builds and verifies trust chains with crypto/x509, binds identities to certificates as
// strongSwan does, and checks revocation with CRLs (files and HTTP distribution points, cached)
// and OCSP.
//
// It knows nothing of IKE: package ike/auth uses it for IKEv2, and IKEv1 or EAP-TLS can too. The
// store is safe for concurrent use; the clock and the HTTP fetcher are injected.
package credentials

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/goipsec/goipsec/credentials/dn"
)

// StoreRef prefixes a credential named by its place in the store instead of a file: a
// certificate's Fingerprint or a public key's ID. Configurations loaded over VICI carry the
// certificates and keys swanctl sends inline this way.
const StoreRef = "vici:"

// CertKind is the role a certificate was loaded in.
type CertKind uint8

// Certificate roles (the swanctl folders).
const (
	EndEntity  CertKind = iota // x509/: our own or peers' certificates
	CA                         // x509ca/ or an authority: trust anchors
	AA                         // x509aa/: attribute authorities (listed, not used)
	OCSPSigner                 // x509ocsp/: trusted OCSP responders
)

func (k CertKind) String() string {
	return [...]string{"end entity", "CA", "attribute authority", "OCSP signer"}[k]
}

// VICIFlag is the flag strongSwan's list-certs reports for the role (swanctl --list-certs).
func (k CertKind) VICIFlag() string {
	return [...]string{"NONE", "CA", "AA", "OCSP"}[k]
}

// Cert is a stored certificate.
type Cert struct {
	X509   *x509.Certificate
	Kind   CertKind
	Source string // the file or "vici"
}

// Fingerprint is the SHA-256 of the DER certificate, hex.
func (c *Cert) Fingerprint() string {
	sum := sha256.Sum256(c.X509.Raw)
	return hex.EncodeToString(sum[:])
}

// Key is a stored private key.
type Key struct {
	Signer crypto.Signer
	ID     string // hex PublicKeyID
	Source string
}

// PublicKey is a stored raw public key (pubkey/ or a connection's pubkeys).
type PublicKey struct {
	Key    crypto.PublicKey
	SPKI   []byte
	ID     string
	Source string
}

// Authority is an authorities { } section: a CA with where to find revocation information.
type Authority struct {
	Name        string
	CA          *x509.Certificate
	CRLURIs     []string
	OCSPURIs    []string
	CertURIBase string
	Source      string
}

// Store holds credentials. The zero value is not usable; use New.
type Store struct {
	clock   func() time.Time
	fetcher Fetcher

	mu          sync.RWMutex
	certs       map[string]*Cert // by fingerprint
	keys        map[string]*Key  // by ID
	pubkeys     map[string]*PublicKey
	crls        []*x509.RevocationList // from files or VICI
	authorities map[string]*Authority

	crlCache  *fetchCache[*x509.RevocationList]
	ocspCache *fetchCache[*ocspEntry]

	// gen counts changes of the certificates and authorities; chains caches verified chains
	// (verify.go) and is valid for one gen.
	gen    uint64
	chains *chainCache
}

// Options configure a Store.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fetcher fetches CRLs and OCSP responses (default: HTTP with a 5 s timeout).
	Fetcher Fetcher
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Fetcher == nil {
		opts.Fetcher = NewHTTPFetcher(DefaultFetchTimeout)
	}
	return &Store{
		clock: opts.Now, fetcher: opts.Fetcher,
		certs: map[string]*Cert{}, keys: map[string]*Key{}, pubkeys: map[string]*PublicKey{},
		authorities: map[string]*Authority{},
		crlCache:    newFetchCache[*x509.RevocationList](), ocspCache: newFetchCache[*ocspEntry](),
		chains: newChainCache(),
	}
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// AddCert stores a certificate in a role; adding it again changes nothing but the role.
func (s *Store) AddCert(c *x509.Certificate, kind CertKind, source string) *Cert {
	sc := &Cert{X509: c, Kind: kind, Source: source}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if old, ok := s.certs[sc.Fingerprint()]; ok {
		if kind > old.Kind {
			old.Kind = kind
		}
		return old
	}
	s.certs[sc.Fingerprint()] = sc
	return sc
}

// AddKey stores a private key and returns its ID.
func (s *Store) AddKey(k crypto.Signer, source string) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return "", err
	}
	id := hex.EncodeToString(PublicKeyID(spki))
	s.mu.Lock()
	s.keys[id] = &Key{Signer: k, ID: id, Source: source}
	s.mu.Unlock()
	return id, nil
}

// RemoveKey removes a private key by ID.
func (s *Store) RemoveKey(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[id]
	delete(s.keys, id)
	return ok
}

// AddPublicKey stores a raw public key.
func (s *Store) AddPublicKey(k crypto.PublicKey, source string) (*PublicKey, error) {
	spki, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	pk := &PublicKey{Key: k, SPKI: spki, ID: hex.EncodeToString(PublicKeyID(spki)), Source: source}
	s.mu.Lock()
	s.pubkeys[pk.ID] = pk
	s.mu.Unlock()
	return pk, nil
}

// AddCRL stores a CRL (its signature is checked when it is used, against the issuer of the
// certificate in question).
func (s *Store) AddCRL(crl *x509.RevocationList) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, old := range s.crls {
		if dn.Equal(old.RawIssuer, crl.RawIssuer) && sameAuthorityKey(old, crl) {
			// A newer CRL of the same issuer replaces the older one.
			if crl.Number != nil && old.Number != nil && crl.Number.Cmp(old.Number) < 0 {
				return
			}
			s.crls[i] = crl
			return
		}
	}
	s.crls = append(s.crls, crl)
}

func sameAuthorityKey(a, b *x509.RevocationList) bool {
	return len(a.AuthorityKeyId) == 0 || len(b.AuthorityKeyId) == 0 || slices.Equal(a.AuthorityKeyId, b.AuthorityKeyId)
}

// AddAuthority stores an authorities section; its CA becomes a trust anchor.
func (s *Store) AddAuthority(a *Authority) {
	if a.CA != nil {
		s.AddCert(a.CA, CA, a.Source)
	}
	s.mu.Lock()
	s.authorities[a.Name] = a
	s.gen++
	s.mu.Unlock()
}

// RemoveAuthority removes an authority (its CA certificate stays if it was loaded otherwise too).
func (s *Store) RemoveAuthority(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authorities[name]
	if !ok {
		return false
	}
	delete(s.authorities, name)
	s.gen++
	if a.CA != nil {
		sc := &Cert{X509: a.CA}
		if c := s.certs[sc.Fingerprint()]; c != nil && c.Source == a.Source {
			delete(s.certs, sc.Fingerprint())
		}
	}
	return true
}

// Authorities lists the authorities by name.
func (s *Store) Authorities() []*Authority {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Authority, 0, len(s.authorities))
	for _, a := range s.authorities {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Authority returns one authority.
func (s *Store) Authority(name string) *Authority {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.authorities[name]
}

// Caches selects what FlushCaches empties.
type Caches uint8

// The store's caches.
const (
	CachedCRLs   Caches = 1 << iota // CRLs fetched from distribution points and authorities' crl_uris
	CachedOCSP                      // OCSP responses
	CachedChains                    // verified certificate chains
	AllCaches    = CachedCRLs | CachedOCSP | CachedChains
)

// FlushCaches empties the caches c selects; the next verification fetches and verifies again.
func (s *Store) FlushCaches(c Caches) {
	if c&CachedCRLs != 0 {
		s.crlCache.flush()
	}
	if c&CachedOCSP != 0 {
		s.ocspCache.flush()
	}
	if c&CachedChains != 0 {
		s.chains.mu.Lock()
		s.chains.entries = map[[32]byte]chainEntry{}
		s.chains.mu.Unlock()
	}
}

// Clear removes the loaded credentials — certificates, private keys, raw public keys and CRLs —
// and empties the caches, as strongSwan's clear-creds does (vici_cred.c). Authorities stay, with
// their CA certificates (strongSwan keeps those in the authority, not in the cleared set).
func (s *Store) Clear() {
	s.mu.Lock()
	keep := map[string]bool{}
	for _, a := range s.authorities {
		if a.CA != nil {
			keep[(&Cert{X509: a.CA}).Fingerprint()] = true
		}
	}
	for fp := range s.certs {
		if !keep[fp] {
			delete(s.certs, fp)
		}
	}
	s.keys = map[string]*Key{}
	s.pubkeys = map[string]*PublicKey{}
	s.crls = nil
	s.gen++
	s.mu.Unlock()
	s.FlushCaches(AllCaches)
}

// Certs lists the stored certificates, CAs last, each group by subject.
func (s *Store) Certs() []*Cert {
	s.mu.RLock()
	out := make([]*Cert, 0, len(s.certs))
	for _, c := range s.certs {
		out = append(out, c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return dn.String(out[i].X509.RawSubject) < dn.String(out[j].X509.RawSubject)
	})
	return out
}

// Keys lists the stored private keys.
func (s *Store) Keys() []*Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CRLs lists the CRLs loaded from files or VICI.
func (s *Store) CRLs() []*x509.RevocationList {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.crls)
}

// PrivateKeyFor returns the private key of a public key, if stored.
func (s *Store) PrivateKeyFor(pub crypto.PublicKey) (crypto.Signer, bool) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[hex.EncodeToString(PublicKeyID(spki))]
	if !ok {
		return nil, false
	}
	return k.Signer, true
}

// PublicKeyByID returns a stored raw public key.
func (s *Store) PublicKeyByID(id string) *PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pubkeys[id]
}

// anchors returns the trust anchors (CA certificates) and every certificate that can serve as an
// intermediate, and the generation they belong to.
func (s *Store) anchors() (cas []*x509.Certificate, all []*x509.Certificate, gen uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	gen = s.gen
	for _, c := range s.certs {
		if c.Kind == CA {
			cas = append(cas, c.X509)
		}
		all = append(all, c.X509)
	}
	return cas, all, gen
}

// TrustedCAs returns the CA certificates (trust anchors).
func (s *Store) TrustedCAs() []*x509.Certificate {
	cas, _, _ := s.anchors()
	sort.Slice(cas, func(i, j int) bool { return dn.String(cas[i].RawSubject) < dn.String(cas[j].RawSubject) })
	return cas
}

// CertsWithIdentity returns stored end-entity certificates that hold id (strongSwan picks a local
// certificate by identity when none is named, and uses stored peer certificates when the peer
// sends none).
func (s *Store) CertsWithIdentity(id Identity) []*x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*x509.Certificate
	for _, c := range s.certs {
		if c.Kind == EndEntity && CertHasIdentity(c.X509, id) {
			out = append(out, c.X509)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NotBefore.After(out[j].NotBefore) })
	return out
}

// authorityFor returns the authority whose CA issued c (by subject and key).
func (s *Store) authorityFor(issuer *x509.Certificate) *Authority {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.authorities {
		if a.CA != nil && a.CA.Equal(issuer) {
			return a
		}
	}
	return nil
}

// Describe names a certificate for messages: its subject, and the issuer when it differs.
func Describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q", dn.String(c.RawSubject))
}
