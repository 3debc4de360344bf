package credentials

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/credentials/pki"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// testPKI is a root CA, an intermediate CA and a gateway certificate under it.
type testPKI struct {
	rootKey, interKey, leafKey crypto.Signer
	root, inter, leaf          *x509.Certificate
}

func newPKI(t testing.TB, leafReq pki.Request) *testPKI {
	t.Helper()
	p := &testPKI{}
	var err error
	must := func(k crypto.Signer, err error) crypto.Signer {
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	p.rootKey = must(pki.GenerateKey(pki.ECDSA256, nil))
	p.interKey = must(pki.GenerateKey(pki.ECDSA256, nil))
	p.leafKey = must(pki.GenerateKey(pki.Ed25519, nil))
	if p.root, err = pki.Issue(pki.Request{Subject: "C=CH, O=goipsec, CN=Root CA", CA: true, PathLen: -1}, p.rootKey.Public(), nil, p.rootKey, t0); err != nil {
		t.Fatal(err)
	}
	if p.inter, err = pki.Issue(pki.Request{Subject: "C=CH, O=goipsec, CN=Intermediate CA", CA: true, PathLen: 0}, p.interKey.Public(), p.root, p.rootKey, t0); err != nil {
		t.Fatal(err)
	}
	if leafReq.Subject == "" {
		leafReq.Subject = "C=CH, O=goipsec, CN=moon.example.org"
	}
	if leafReq.SANs == nil {
		leafReq.SANs = []string{"moon.example.org", "192.0.2.1", "moon@example.org"}
	}
	if p.leaf, err = pki.Issue(leafReq, p.leafKey.Public(), p.inter, p.interKey, t0); err != nil {
		t.Fatal(err)
	}
	return p
}

func storeAt(now time.Time, f Fetcher) *Store {
	return New(Options{Now: func() time.Time { return now }, Fetcher: f})
}

func fqdn(s string) Identity { return Identity{IDFQDN, []byte(s)} }

func dnID(t testing.TB, s string) Identity {
	der, err := dn.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{IDDN, der}
}

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return 0
}

func TestVerifyChainThroughIntermediate(t *testing.T) {
	p := newPKI(t, pki.Request{})
	s := storeAt(t0.Add(time.Hour), nil)
	s.AddCert(p.root, CA, "test")
	for _, id := range []Identity{fqdn("moon.example.org"), fqdn("MOON.example.org"), dnID(t, "C=CH, O=goipsec, CN=moon.example.org"),
		{IDIPv4, []byte{192, 0, 2, 1}}, {IDRFC822, []byte("moon@example.org")}, {IDKeyID, p.leaf.SubjectKeyId}} {
		// The peer sends its certificate and the intermediate (CERT payloads).
		v, err := s.VerifyPeer(context.Background(), id, [][]byte{p.leaf.Raw, p.inter.Raw}, Policy{})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(v.Chain) != 3 || !v.Chain[2].Equal(p.root) {
			t.Fatalf("chain of %d", len(v.Chain))
		}
	}
	// Without the intermediate there is no path; the message names the issuer and our CAs.
	_, err := s.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw}, Policy{})
	if reasonOf(err) != ReasonNoTrustedPath || !strings.Contains(err.Error(), `"C=CH, O=goipsec, CN=Intermediate CA"`) || !strings.Contains(err.Error(), `trusted CAs: "C=CH, O=goipsec, CN=Root CA"`) {
		t.Fatalf("missing intermediate: %v", err)
	}
	// An intermediate we hold ourselves completes the chain.
	s.AddCert(p.inter, EndEntity, "test")
	if _, err := s.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw}, Policy{}); err != nil {
		t.Fatal(err)
	}
	// The cached chain goes with the store's trust: without the root there is no path any more.
	s2 := storeAt(t0.Add(time.Hour), nil)
	s2.AddCert(p.root, CA, "test")
	if _, err := s2.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw, p.inter.Raw}, Policy{}); err != nil {
		t.Fatal(err)
	}
	s2.Clear()
	if _, err := s2.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw, p.inter.Raw}, Policy{}); reasonOf(err) != ReasonNoTrustedPath {
		t.Fatalf("after removing the CA: %v", err)
	}
	// flush-certs type X509 empties the chain cache; a CRL or OCSP flush leaves it.
	if len(s.chains.entries) == 0 {
		t.Fatal("no chain cached")
	}
	s.FlushCaches(CachedCRLs | CachedOCSP)
	if len(s.chains.entries) == 0 {
		t.Fatal("a CRL and OCSP flush emptied the chain cache")
	}
	s.FlushCaches(CachedChains)
	if len(s.chains.entries) != 0 {
		t.Fatalf("%d chains cached after FlushCaches(CachedChains)", len(s.chains.entries))
	}
	// Our ChainFor sends the intermediate after the leaf, not the root.
	if ch := s.ChainFor(p.leaf); len(ch) != 1 || !ch[0].Equal(p.inter) {
		t.Fatalf("ChainFor: %d certs", len(ch))
	}
}

func TestVerifyRefusals(t *testing.T) {
	p := newPKI(t, pki.Request{})
	ctx := context.Background()
	certs := [][]byte{p.leaf.Raw, p.inter.Raw}
	s := storeAt(t0.Add(time.Hour), nil)
	s.AddCert(p.root, CA, "test")

	_, err := s.VerifyPeer(ctx, fqdn("sun.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonIdentity || !strings.Contains(err.Error(), "identity sun.example.org is not in the peer's certificate") || !strings.Contains(err.Error(), "moon.example.org") {
		t.Errorf("wrong identity: %v", err)
	}
	_, err = storeWithRoot(p, t0.Add(900*24*time.Hour)).VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonExpired || !strings.Contains(err.Error(), "expired on") {
		t.Errorf("expired: %v", err)
	}
	_, err = storeWithRoot(p, t0.Add(-time.Hour)).VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonNotYetValid {
		t.Errorf("not yet valid: %v", err)
	}
	// Nothing trusted at all.
	_, err = storeAt(t0.Add(time.Hour), nil).VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonNoTrustedPath || !strings.Contains(err.Error(), "trusted CAs: none") {
		t.Errorf("no CA: %v", err)
	}
	// cacerts names another CA.
	other := newPKI(t, pki.Request{})
	s.AddCert(other.root, CA, "test")
	_, err = s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{CACerts: []*x509.Certificate{other.root}})
	if reasonOf(err) != ReasonPolicy || !strings.Contains(err.Error(), "remote.cacerts") {
		t.Errorf("cacerts: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{CACerts: []*x509.Certificate{p.root}}); err != nil {
		t.Errorf("cacerts with our root: %v", err)
	}
	// ca_id.
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{CAID: dnID(t, "C=CH, O=goipsec, CN=Intermediate CA")}); err != nil {
		t.Errorf("ca_id: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{CAID: dnID(t, "CN=Other")}); reasonOf(err) != ReasonPolicy {
		t.Errorf("wrong ca_id: %v", err)
	}
	// cert_policy.
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{CertPolicies: []asn1.ObjectIdentifier{oid}}); reasonOf(err) != ReasonPolicy || !strings.Contains(err.Error(), "cert_policy") {
		t.Errorf("cert_policy: %v", err)
	}
	withPolicy := newPKI(t, pki.Request{Policies: []asn1.ObjectIdentifier{oid}})
	s.AddCert(withPolicy.root, CA, "test")
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), [][]byte{withPolicy.leaf.Raw, withPolicy.inter.Raw}, Policy{CertPolicies: []asn1.ObjectIdentifier{oid}}); err != nil {
		t.Errorf("cert_policy present: %v", err)
	}
	// Pinned certificates: trusted as they are, others refused.
	selfKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	self, err := pki.Issue(pki.Request{SANs: []string{"sun.example.org"}}, selfKey.Public(), nil, selfKey, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("sun.example.org"), [][]byte{self.Raw}, Policy{Certs: []*x509.Certificate{self}}); err != nil {
		t.Errorf("pinned self-signed: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("sun.example.org"), nil, Policy{Certs: []*x509.Certificate{self}}); err != nil {
		t.Errorf("pinned, not sent: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Certs: []*x509.Certificate{self}}); reasonOf(err) != ReasonPolicy {
		t.Errorf("other cert than the pinned one: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("sun.example.org"), nil, Policy{}); reasonOf(err) != ReasonNoCertificate {
		t.Errorf("no certificate: %v", err)
	}
	if _, err := s.VerifyPeer(ctx, fqdn("x"), [][]byte{{1, 2, 3}}, Policy{}); reasonOf(err) != ReasonMalformed {
		t.Errorf("garbage: %v", err)
	}
}

// issueFrom signs a certificate made from tmpl (for what pki.Request cannot express: other
// extended key usages, key usages, path lengths) with parent's key.
func issueFrom(t *testing.T, tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = t0, t0.Add(30*24*time.Hour)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVerifyUsageAndPathLength: key usage, extended key usage, basic constraints and path
// length, each refused (or accepted) as strongSwan 5.9.8 does, with a one-line cause naming the
// certificate and the rule.
func TestVerifyUsageAndPathLength(t *testing.T) {
	p := newPKI(t, pki.Request{})
	ctx := context.Background()
	s := storeWithRoot(p, t0.Add(time.Hour))
	id := fqdn("moon.example.org")
	leafKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	leafTmpl := func(ku x509.KeyUsage, eku []x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: "moon.example.org"}, DNSNames: []string{"moon.example.org"}, KeyUsage: ku, ExtKeyUsage: eku}
	}
	verify := func(leaf *x509.Certificate, chain ...*x509.Certificate) error {
		certs := [][]byte{leaf.Raw}
		for _, c := range chain {
			certs = append(certs, c.Raw)
		}
		_, err := s.VerifyPeer(ctx, id, certs, Policy{})
		return err
	}

	// Extended key usage is not checked (strongSwan 5.9.8 ignores it for IKE): codeSigning or
	// OCSPSigning alone, or none, is accepted like serverAuth.
	for _, eku := range [][]x509.ExtKeyUsage{{x509.ExtKeyUsageCodeSigning}, {x509.ExtKeyUsageOCSPSigning}, nil, {x509.ExtKeyUsageServerAuth}} {
		leaf := issueFrom(t, leafTmpl(x509.KeyUsageDigitalSignature, eku), p.inter, p.interKey, leafKey.Public())
		if err := verify(leaf, p.inter); err != nil {
			t.Errorf("EKU %v: %v", eku, err)
		}
	}
	// Key usage: digitalSignature or nonRepudiation (RFC 4945 5.1.3.2), or no extension at all.
	for _, ku := range []x509.KeyUsage{x509.KeyUsageContentCommitment, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, 0} {
		if err := verify(issueFrom(t, leafTmpl(ku, nil), p.inter, p.interKey, leafKey.Public()), p.inter); err != nil {
			t.Errorf("key usage %s: %v", keyUsageText(ku), err)
		}
	}
	err := verify(issueFrom(t, leafTmpl(x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment, nil), p.inter, p.interKey, leafKey.Public()), p.inter)
	if want := `certificate "CN=moon.example.org" of peer moon.example.org may not sign: its key usage (keyEncipherment, dataEncipherment) has neither digitalSignature nor nonRepudiation (RFC 4945 5.1.3.2)`; reasonOf(err) != ReasonPolicy || err.Error() != want {
		t.Errorf("key usage without digitalSignature: %v\nwant %s", err, want)
	}

	// pathLenConstraint: the test PKI's intermediate allows no CA below it; one more CA
	// under it breaks the rule, named with the CA that sets it.
	subKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	sub := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Sub CA"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign},
		p.inter, p.interKey, subKey.Public())
	underSub := issueFrom(t, leafTmpl(x509.KeyUsageDigitalSignature, nil), sub, subKey, leafKey.Public())
	err = verify(underSub, sub, p.inter)
	if want := `CA certificate "C=CH, O=goipsec, CN=Intermediate CA" allows 0 intermediate CA certificates below it (pathLenConstraint), but the chain of certificate "CN=moon.example.org" of peer moon.example.org has 1`; reasonOf(err) != ReasonPolicy || err.Error() != want {
		t.Errorf("path length: %v\nwant %s", err, want)
	}
	// The root with pathlen 1 allows the intermediate and no second one.
	rootKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	root1 := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Root 1"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign}, nil, rootKey, rootKey.Public())
	aKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	a := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "A"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign}, root1, rootKey, aKey.Public())
	bKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	b := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "B"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign}, a, aKey, bKey.Public())
	s.AddCert(root1, CA, "test")
	if err := verify(issueFrom(t, leafTmpl(x509.KeyUsageDigitalSignature, nil), a, aKey, leafKey.Public()), a); err != nil {
		t.Errorf("one intermediate under pathlen 1: %v", err)
	}
	err = verify(issueFrom(t, leafTmpl(x509.KeyUsageDigitalSignature, nil), b, bKey, leafKey.Public()), b, a)
	if reasonOf(err) != ReasonPolicy || !strings.Contains(err.Error(), `CA certificate "CN=Root 1" allows 1 intermediate CA certificates below it (pathLenConstraint)`) || !strings.HasSuffix(err.Error(), " has 2") {
		t.Errorf("two intermediates under pathlen 1: %v", err)
	}

	// basicConstraints: a certificate that is not a CA cannot issue one.
	eeKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	ee := issueFrom(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Not a CA"}, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, p.inter, p.interKey, eeKey.Public())
	underEE := issueFrom(t, leafTmpl(x509.KeyUsageDigitalSignature, nil), ee, eeKey, leafKey.Public())
	err = verify(underEE, ee, p.inter)
	if reasonOf(err) != ReasonPolicy || !strings.Contains(err.Error(), `certificate "CN=Not a CA", which issued "CN=moon.example.org" in the chain of "CN=moon.example.org" of peer moon.example.org, is not a CA (basicConstraints without cA)`) {
		t.Errorf("issuer not a CA: %v", err)
	}
}

func storeWithRoot(p *testPKI, now time.Time) *Store {
	s := storeAt(now, nil)
	s.AddCert(p.root, CA, "test")
	return s
}

// crlServer serves a CRL over HTTP and counts the fetches.
type crlServer struct {
	*httptest.Server
	crl     atomic.Pointer[[]byte]
	fetches atomic.Int32
}

func newCRLServer(t *testing.T) *crlServer {
	cs := &crlServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.fetches.Add(1)
		b := cs.crl.Load()
		if b == nil {
			http.NotFound(w, r)
			return
		}
		w.Write(*b)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func TestRevocationCRLOverHTTP(t *testing.T) {
	srv := newCRLServer(t)
	uri := srv.URL + "/inter.crl"
	p := newPKI(t, pki.Request{CRLURIs: []string{uri}})
	ctx := context.Background()
	certs := [][]byte{p.leaf.Raw, p.inter.Raw}
	now := t0.Add(time.Hour)
	clock := now
	s := New(Options{Now: func() time.Time { return clock }, Fetcher: NewHTTPFetcher(time.Second)})
	s.AddCert(p.root, CA, "test")

	// No CRL served yet: relaxed accepts, ifuri and strict refuse.
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Revocation: RevocationRelaxed}); err != nil {
		t.Fatalf("relaxed without CRL: %v", err)
	}
	_, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Revocation: RevocationIfURI})
	if reasonOf(err) != ReasonRevocationUnknown || !strings.Contains(err.Error(), "ifuri") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("ifuri without CRL: %v", err)
	}
	// The intermediate has no URI: strict refuses it even with a good CRL for the leaf.
	good, err := pki.CRL(p.inter, p.interKey, nil, 1, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.crl.Store(&good)
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Revocation: RevocationIfURI}); err != nil {
		t.Fatalf("ifuri with a good CRL: %v", err)
	}
	_, err = s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Revocation: RevocationStrict})
	if reasonOf(err) != ReasonRevocationUnknown || !strings.Contains(err.Error(), "Intermediate CA") {
		t.Fatalf("strict, intermediate without revocation info: %v", err)
	}
	rootCRL, err := pki.CRL(p.root, p.rootKey, nil, 1, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(rootCRL)
	s.AddCRL(crl)
	if _, err := s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{Revocation: RevocationStrict}); err != nil {
		t.Fatalf("strict with both CRLs: %v", err)
	}
	// Cached: no fetch while the CRL is current.
	before := srv.fetches.Load()
	s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{})
	if srv.fetches.Load() != before {
		t.Fatal("a current cached CRL was fetched again")
	}
	// The CA revokes the leaf; after the cached CRL's nextUpdate it is fetched again.
	revoked, err := pki.CRL(p.inter, p.interKey, []pki.Revoked{{Serial: p.leaf.SerialNumber, At: now, Reason: 1}}, 2, now.Add(2*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.crl.Store(&revoked)
	clock = now.Add(25 * time.Hour)
	_, err = s.VerifyPeer(ctx, fqdn("moon.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonRevoked || !strings.Contains(err.Error(), "revoked by \"C=CH, O=goipsec, CN=Intermediate CA\"") || !strings.Contains(err.Error(), "key compromise") || !strings.Contains(err.Error(), uri) {
		t.Fatalf("revoked: %v", err)
	}
	if srv.fetches.Load() != before+1 {
		t.Fatalf("%d fetches after nextUpdate, want 1", srv.fetches.Load()-before)
	}
}

func TestRevocationCRLFileAndAuthority(t *testing.T) {
	p := newPKI(t, pki.Request{})
	now := t0.Add(time.Hour)
	s := storeAt(now, nil)
	srv := newCRLServer(t)
	der, err := pki.CRL(p.inter, p.interKey, []pki.Revoked{{Serial: p.leaf.SerialNumber, At: now}}, 1, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.crl.Store(&der)
	// The authority of the intermediate names the CRL URI (the certificate names none).
	s.AddCert(p.root, CA, "test")
	s.AddAuthority(&Authority{Name: "inter", CA: p.inter, CRLURIs: []string{srv.URL}})
	_, err = s.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw}, Policy{})
	if reasonOf(err) != ReasonRevoked {
		t.Fatalf("authority crl_uris: %v", err)
	}
	// A CRL file signed by someone else does not count.
	other := newPKI(t, pki.Request{})
	forged, _ := pki.CRL(p.inter, other.interKey, nil, 1, now, time.Hour)
	if c, err := x509.ParseRevocationList(forged); err == nil {
		s2 := storeAt(now, nil)
		s2.AddCert(p.root, CA, "t")
		s2.AddCRL(c)
		if _, err := s2.VerifyPeer(context.Background(), fqdn("moon.example.org"), [][]byte{p.leaf.Raw, p.inter.Raw}, Policy{Revocation: RevocationStrict}); reasonOf(err) != ReasonRevocationUnknown {
			t.Fatalf("forged CRL: %v", err)
		}
	}
}

func TestRevocationOCSP(t *testing.T) {
	var status atomic.Int32
	var p *testPKI
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 4096)
		n, _ := r.Body.Read(buf)
		req, err := ocsp.ParseRequest(buf[:n])
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		resp, err := ocsp.CreateResponse(p.inter, p.inter, ocsp.Response{Status: int(status.Load()), SerialNumber: req.SerialNumber,
			ThisUpdate: t0, NextUpdate: t0.Add(48 * time.Hour), RevokedAt: t0, RevocationReason: ocsp.KeyCompromise}, p.interKey)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(resp)
	}))
	defer srv.Close()
	p = newPKI(t, pki.Request{OCSPURIs: []string{srv.URL}})
	certs := [][]byte{p.leaf.Raw, p.inter.Raw}
	s := storeWithRoot(p, t0.Add(time.Hour))
	status.Store(ocsp.Good)
	if _, err := s.VerifyPeer(context.Background(), fqdn("moon.example.org"), certs, Policy{Revocation: RevocationIfURI}); err != nil {
		t.Fatalf("OCSP good: %v", err)
	}
	s = storeWithRoot(p, t0.Add(time.Hour))
	status.Store(ocsp.Revoked)
	_, err := s.VerifyPeer(context.Background(), fqdn("moon.example.org"), certs, Policy{})
	if reasonOf(err) != ReasonRevoked || !strings.Contains(err.Error(), "OCSP from") {
		t.Fatalf("OCSP revoked: %v", err)
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, got Identity
		ok           bool
	}{
		{Identity{}, fqdn("x"), true},
		{fqdn("*.example.org"), fqdn("moon.example.org"), true},
		{fqdn("*.example.org"), fqdn("moon.example.com"), false},
		{Identity{IDRFC822, []byte("*@example.org")}, Identity{IDRFC822, []byte("carol@example.org")}, true},
		{dnID(t, "C=CH, O=goipsec, CN=*"), dnID(t, "C=CH, O=goipsec, CN=moon"), true},
		{dnID(t, "C=CH, O=goipsec, CN=*"), dnID(t, "C=CH, O=other, CN=moon"), false},
		{dnID(t, "CN=*, O=Example"), dnID(t, "CN=carol, O=Example"), true},
		{fqdn("moon"), dnID(t, "CN=moon"), false},
	} {
		if got := Matches(tc.pattern, tc.got); got != tc.ok {
			t.Errorf("Matches(%s, %s) = %v", tc.pattern, tc.got, got)
		}
	}
}

func TestLoadDirAndFormats(t *testing.T) {
	p := newPKI(t, pki.Request{})
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		path := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("x509ca/root.pem", pki.CertPEM(p.root))
	write("x509ca/inter.der", p.inter.Raw) // DER
	write("x509/moon.pem", pki.CertPEM(p.leaf))
	keyPEM, _ := pki.KeyPEM(p.leafKey)
	write("private/moon.pem", keyPEM)
	// An RSA key in PKCS#1 (rsa/), an EC key in SEC 1 DER (ecdsa/), an encrypted PKCS#8 key.
	rsaKey, _ := pki.GenerateKey(pki.RSA2048, nil)
	write("rsa/gw.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKeyOf(rsaKey))}))
	ecDER, _ := x509.MarshalECPrivateKey(ecKeyOf(p.rootKey))
	write("ecdsa/root.der", ecDER)
	encKey, _ := pki.GenerateKey(pki.ECDSA384, nil)
	encDER, err := pkcs8Encrypt(encKey, "secret-pass")
	if err != nil {
		t.Fatal(err)
	}
	write("pkcs8/enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER}))
	p12, err := pkcs12.Modern.Encode(p.interKey, p.inter, []*x509.Certificate{p.root}, "p12-pass")
	if err != nil {
		t.Fatal(err)
	}
	write("pkcs12/inter.p12", p12)
	pubPEM, _ := pki.PublicKeyPEM(rsaKey.Public())
	write("pubkey/gw.pub", pubPEM)
	crlDER, _ := pki.CRL(p.inter, p.interKey, nil, 1, t0, time.Hour)
	write("x509crl/inter.crl", pki.CRLPEM(crlDER))
	write("x509/garbage.pem", []byte("not a certificate"))

	s := storeAt(t0.Add(time.Minute), nil)
	pass := func(folder, file string) []byte {
		switch folder + "/" + file {
		case "pkcs8/enc.pem":
			return []byte("secret-pass")
		case "pkcs12/inter.p12":
			return []byte("p12-pass")
		}
		return nil
	}
	n, errs := s.LoadDir(dir, pass)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "garbage.pem") {
		t.Fatalf("errors: %v", errs)
	}
	if n.Keys != 5 || n.PublicKeys != 1 || n.CRLs != 1 || n.Certs < 4 {
		t.Fatalf("loaded %+v", n)
	}
	if len(s.TrustedCAs()) != 2 {
		t.Fatalf("%d CAs", len(s.TrustedCAs()))
	}
	for _, k := range []crypto.Signer{p.leafKey, rsaKey, p.rootKey, encKey, p.interKey} {
		if _, ok := s.PrivateKeyFor(k.Public()); !ok {
			t.Errorf("key %T not loaded", k)
		}
	}
	// A wrong passphrase is reported with the secrets section to add.
	_, errs = storeAt(t0, nil).LoadDir(dir, nil)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "pkcs8-<name> { file = enc.pem") || !strings.Contains(all, "pkcs12-<name>") {
		t.Fatalf("passphrase errors:\n%s", all)
	}
	if got := s.CertsWithIdentity(fqdn("moon.example.org")); len(got) != 1 || !got[0].Equal(p.leaf) {
		t.Fatalf("CertsWithIdentity: %d", len(got))
	}
}

func TestKeyIDs(t *testing.T) {
	p := newPKI(t, pki.Request{})
	// pki writes RFC 5280 method-1 subjectKeyIdentifiers, which is what PublicKeyID computes.
	if got := PublicKeyID(p.leaf.RawSubjectPublicKeyInfo); string(got) != string(p.leaf.SubjectKeyId) {
		t.Fatalf("PublicKeyID %x, SKI %x", got, p.leaf.SubjectKeyId)
	}
	s := storeAt(t0, nil)
	id, err := s.AddKey(p.leafKey, "t")
	if err != nil || len(id) != 40 || !s.RemoveKey(id) || s.RemoveKey(id) {
		t.Fatalf("AddKey/RemoveKey: %q %v", id, err)
	}
}

func rsaKeyOf(k crypto.Signer) *rsaPrivateKey  { return k.(*rsaPrivateKey) }
func ecKeyOf(k crypto.Signer) *ecdsaPrivateKey { return k.(*ecdsaPrivateKey) }

// Fuzz targets for every credential file parser: no panics, and errors instead of keys or
// certificates for garbage.
func FuzzParseCertificates(f *testing.F) {
	p := newPKI(f, pki.Request{})
	f.Add(p.leaf.Raw)
	f.Add(pki.CertPEM(p.root))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCertificates(b)
		if err == nil && len(cs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	k, _ := pki.GenerateKey(pki.ECDSA256, nil)
	b, _ := pki.KeyPEM(k)
	f.Add(b)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f.Add(der)
	enc, _ := pkcs8Encrypt(k, "x")
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePrivateKey(b, []byte("x"))
		if err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := pki.GenerateKey(pki.Ed25519, nil)
	b, _ := pki.PublicKeyPEM(k.Public())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, _, err := ParsePublicKey(b); err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}

func FuzzParseCRL(f *testing.F) {
	p := newPKI(f, pki.Request{})
	der, _ := pki.CRL(p.inter, p.interKey, []pki.Revoked{{Serial: big.NewInt(7), At: t0}}, 1, t0, time.Hour)
	f.Add(der)
	f.Add(pki.CRLPEM(der))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCRL(b); err == nil && c == nil {
			t.Fatal("no error and no CRL")
		}
	})
}

func FuzzParsePKCS12(f *testing.F) {
	p := newPKI(f, pki.Request{})
	b, _ := pkcs12.Modern.Encode(p.leafKey, p.leaf, nil, "x")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, _, _, err := ParsePKCS12(b, []byte("x")); err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}
