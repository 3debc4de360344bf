package credentials

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/goipsec/goipsec/credentials/dn"
)

// Revocation is strongSwan's remote.revocation policy.
type Revocation uint8

// Revocation policies (swanctl.conf(5)): relaxed fails only when a certificate is known to be
// revoked; ifuri also when the certificate names a CRL or OCSP URI but no answer could be had;
// strict whenever the status is not known to be good.
const (
	RevocationRelaxed Revocation = iota
	RevocationIfURI
	RevocationStrict
)

// ParseRevocation reads strict, ifuri or relaxed.
func ParseRevocation(s string) (Revocation, error) {
	switch s {
	case "relaxed", "":
		return RevocationRelaxed, nil
	case "ifuri":
		return RevocationIfURI, nil
	case "strict":
		return RevocationStrict, nil
	}
	return 0, fmt.Errorf("invalid value %q (expected strict, ifuri or relaxed)", s)
}

func (r Revocation) String() string { return [...]string{"relaxed", "ifuri", "strict"}[r] }

// Fetcher fetches a URI; body is POSTed with contentType when non-nil (OCSP), else it is a GET.
type Fetcher interface {
	Fetch(ctx context.Context, uri string, body []byte, contentType string) ([]byte, error)
}

// DefaultFetchTimeout bounds one CRL or OCSP fetch. IKEv2 verifies off the IKE SA (ike/verify.go),
// but the peer's IKE_AUTH waits for it (and IKEv1 verifies inside the SA's processing), so it must
// stay short; a cached CRL answers later checks without a fetch.
const DefaultFetchTimeout = 5 * time.Second

// HTTPFetcher fetches http:// and https:// URIs; ldap:// is not supported.
type HTTPFetcher struct{ client *http.Client }

// NewHTTPFetcher returns a fetcher with a timeout per request.
func NewHTTPFetcher(timeout time.Duration) *HTTPFetcher {
	return &HTTPFetcher{client: &http.Client{Timeout: timeout}}
}

// Fetch implements Fetcher.
func (f *HTTPFetcher) Fetch(ctx context.Context, uri string, body []byte, contentType string) ([]byte, error) {
	if !strings.HasPrefix(uri, "http://") && !strings.HasPrefix(uri, "https://") {
		return nil, fmt.Errorf("%s: only http and https URIs are supported", uri)
	}
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, uri, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", uri, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxFileSize))
}

// fetchCache keeps fetched CRLs and OCSP responses until their next update.
type fetchCache[T any] struct {
	mu      sync.Mutex
	entries map[string]cached[T]
}

type cached[T any] struct {
	v     T
	until time.Time // refetch after this (zero: keep)
}

func newFetchCache[T any]() *fetchCache[T] {
	return &fetchCache[T]{entries: map[string]cached[T]{}}
}

func (c *fetchCache[T]) get(key string, now time.Time) (T, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	fresh := ok && (e.until.IsZero() || now.Before(e.until))
	return e.v, ok, fresh
}

func (c *fetchCache[T]) put(key string, v T, until time.Time) {
	c.mu.Lock()
	c.entries[key] = cached[T]{v, until}
	c.mu.Unlock()
}

func (c *fetchCache[T]) flush() {
	c.mu.Lock()
	c.entries = map[string]cached[T]{}
	c.mu.Unlock()
}

// crlRefetch is how long a CRL without nextUpdate is kept before fetching again.
const crlRefetch = time.Hour

// status is the revocation status of one certificate.
type status uint8

const (
	statusUnknown status = iota // no information (no URI, nothing loaded)
	statusFailed                // a URI was there, but no usable answer came
	statusGood
	statusRevoked
)

type revocationResult struct {
	st     status
	at     time.Time
	reason int
	via    string // "CRL from URI", "OCSP from URI", "CRL file"
	detail string // why failed
}

// checkRevocation finds the status of cert, issued by issuer: OCSP first, then CRLs (loaded, or
// fetched from the certificate's distribution points and the authority's crl_uris), as strongSwan's
// revocation plugin does.
func (s *Store) checkRevocation(ctx context.Context, cert, issuer *x509.Certificate) revocationResult {
	now := s.clock()
	auth := s.authorityFor(issuer)
	var failures []string
	ocspURIs := append([]string(nil), cert.OCSPServer...)
	if auth != nil {
		ocspURIs = append(ocspURIs, auth.OCSPURIs...)
	}
	for _, uri := range ocspURIs {
		r := s.ocspStatus(ctx, uri, cert, issuer, now)
		if r.st == statusGood || r.st == statusRevoked {
			return r
		}
		failures = append(failures, r.detail)
	}
	// CRLs loaded from files or VICI.
	for _, crl := range s.CRLs() {
		if r, ok := crlStatus(crl, cert, issuer, now, "CRL file"); ok {
			return r
		}
	}
	crlURIs := append([]string(nil), cert.CRLDistributionPoints...)
	if auth != nil {
		crlURIs = append(crlURIs, auth.CRLURIs...)
	}
	var stale *revocationResult
	for _, uri := range crlURIs {
		crl, err := s.fetchCRL(ctx, uri, now)
		if err != nil {
			failures = append(failures, err.Error())
			continue
		}
		r, ok := crlStatus(crl, cert, issuer, now, "CRL from "+uri)
		if !ok {
			failures = append(failures, fmt.Sprintf("CRL from %s is not signed by %s", uri, Describe(issuer)))
			continue
		}
		if r.st == statusRevoked {
			return r
		}
		if r.st == statusGood {
			return r
		}
		stale = &r
	}
	if stale != nil {
		return *stale
	}
	if len(ocspURIs)+len(crlURIs) > 0 {
		return revocationResult{st: statusFailed, detail: strings.Join(failures, "; ")}
	}
	return revocationResult{st: statusUnknown}
}

// crlStatus checks cert against a CRL; ok is false when the CRL is not issued by issuer.
func crlStatus(crl *x509.RevocationList, cert, issuer *x509.Certificate, now time.Time, via string) (revocationResult, bool) {
	if !dn.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
		return revocationResult{}, false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return revocationResult{st: statusRevoked, at: e.RevocationTime, reason: e.ReasonCode, via: via}, true
		}
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		// A stale CRL proves nothing good (strongSwan: "crl is stale").
		return revocationResult{st: statusFailed, via: via, detail: fmt.Sprintf("%s is stale (next update was %s)", via, crl.NextUpdate.UTC().Format(time.RFC3339))}, true
	}
	return revocationResult{st: statusGood, via: via}, true
}

// fetchCRL returns the CRL of a distribution point, from the cache while it is current.
func (s *Store) fetchCRL(ctx context.Context, uri string, now time.Time) (*x509.RevocationList, error) {
	if crl, ok, fresh := s.crlCache.get(uri, now); ok && fresh {
		return crl, nil
	}
	data, err := s.fetcher.Fetch(ctx, uri, nil, "")
	if err != nil {
		if crl, ok, _ := s.crlCache.get(uri, now); ok {
			return crl, nil // stale, but it may still show a revocation
		}
		return nil, fmt.Errorf("fetching CRL %s: %v", uri, err)
	}
	crl, err := ParseCRL(data)
	if err != nil {
		return nil, fmt.Errorf("CRL from %s: %v", uri, err)
	}
	until := crl.NextUpdate
	if until.IsZero() {
		until = now.Add(crlRefetch)
	}
	s.crlCache.put(uri, crl, until)
	return crl, nil
}

type ocspEntry struct{ resp *ocsp.Response }

// ocspStatus asks an OCSP responder (RFC 6960) about cert, caching the answer until its next
// update.
func (s *Store) ocspStatus(ctx context.Context, uri string, cert, issuer *x509.Certificate, now time.Time) revocationResult {
	key := uri + "|" + cert.SerialNumber.String() + "|" + string(issuer.RawSubjectPublicKeyInfo)
	via := "OCSP from " + uri
	if e, ok, fresh := s.ocspCache.get(key, now); ok && fresh {
		return ocspResult(e.resp, via)
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return revocationResult{st: statusFailed, detail: fmt.Sprintf("%s: %v", via, err)}
	}
	body, err := s.fetcher.Fetch(ctx, uri, req, "application/ocsp-request")
	if err != nil {
		return revocationResult{st: statusFailed, detail: fmt.Sprintf("%s: %v", via, err)}
	}
	resp, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		// A delegated responder certificate we trust explicitly (x509ocsp/) may sign instead.
		resp, err = s.parseWithOCSPSigner(body, cert)
		if err != nil {
			return revocationResult{st: statusFailed, detail: fmt.Sprintf("%s: %v", via, err)}
		}
	}
	if !resp.NextUpdate.IsZero() && now.After(resp.NextUpdate) {
		return revocationResult{st: statusFailed, detail: fmt.Sprintf("%s: response is stale", via)}
	}
	until := resp.NextUpdate
	if until.IsZero() {
		until = now.Add(5 * time.Minute)
	}
	s.ocspCache.put(key, &ocspEntry{resp}, until)
	return ocspResult(resp, via)
}

func (s *Store) parseWithOCSPSigner(body []byte, cert *x509.Certificate) (*ocsp.Response, error) {
	s.mu.RLock()
	var signers []*x509.Certificate
	for _, c := range s.certs {
		if c.Kind == OCSPSigner {
			signers = append(signers, c.X509)
		}
	}
	s.mu.RUnlock()
	for _, sg := range signers {
		if r, err := ocsp.ParseResponse(body, sg); err == nil && r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return r, nil
		}
	}
	return nil, errors.New("response not signed by the issuer or a trusted OCSP signer")
}

func ocspResult(r *ocsp.Response, via string) revocationResult {
	switch r.Status {
	case ocsp.Good:
		return revocationResult{st: statusGood, via: via}
	case ocsp.Revoked:
		return revocationResult{st: statusRevoked, at: r.RevokedAt, reason: r.RevocationReason, via: via}
	}
	return revocationResult{st: statusFailed, via: via, detail: via + ": status unknown"}
}
