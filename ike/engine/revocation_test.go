package engine_test

import (
	"crypto"
	"crypto/x509"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/auth"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
)

// slowCRL serves a CA's CRL over HTTP after a delay (a slow CRL distribution point) and counts
// the fetches.
type slowCRL struct {
	*httptest.Server
	delay   time.Duration
	der     atomic.Pointer[[]byte]
	fetches atomic.Int32
}

func newSlowCRL(t *testing.T, delay time.Duration) *slowCRL {
	s := &slowCRL{delay: delay}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		time.Sleep(s.delay)
		if b := s.der.Load(); b != nil {
			w.Write(*b)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// certPKI is a CA whose certificates name the slow CRL server, and the CA's key to sign CRLs.
type certPKI struct {
	ca    *x509.Certificate
	caKey crypto.Signer
	crl   *slowCRL
}

func newCertPKI(t *testing.T, crl *slowCRL) certPKI {
	k, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(pki.Request{Subject: "O=test, CN=CA", CA: true, PathLen: -1}, k.Public(), nil, k, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return certPKI{ca: c, caKey: k, crl: crl}
}

// publish serves a CRL revoking the given serials.
func (p certPKI) publish(t *testing.T, revoked ...*big.Int) {
	var list []pki.Revoked
	for _, s := range revoked {
		list = append(list, pki.Revoked{Serial: s, At: time.Now().Add(-time.Minute), Reason: 1})
	}
	der, err := pki.CRL(p.ca, p.caKey, list, 1, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p.crl.der.Store(&der)
}

// certConfig turns a PSK peer configuration into one that authenticates both ways with
// certificates of the PKI, checking the peer's strictly against the CRL (fetched over HTTP).
func certConfig(t *testing.T, p certPKI, cfg *ike.PeerConfig, name, peerName string) *x509.Certificate {
	k, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(pki.Request{Subject: "O=test, CN=" + name, SANs: []string{name}, CRLURIs: []string{p.crl.URL + "/ca.crl"}}, k.Public(), p.ca, p.caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store := credentials.New(credentials.Options{Fetcher: credentials.NewHTTPFetcher(credentials.DefaultFetchTimeout)})
	store.AddCert(p.ca, credentials.CA, "test")
	store.AddCert(c, credentials.EndEntity, "test")
	if _, err := store.AddKey(k, "test"); err != nil {
		t.Fatal(err)
	}
	pub, err := auth.ParseConstraints("pubkey")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalID = ike.Identity{Type: wire.IDFQDN, Data: []byte(name)}
	cfg.Authenticator = auth.New(auth.Config{Conn: cfg.Name, Store: store, SendCertReq: true,
		Local: auth.Local{Method: auth.MethodPubkey, Constraints: pub},
		Remote: auth.Remote{Method: auth.MethodPubkey, Constraints: pub, ID: credentials.Identity{Type: credentials.IDFQDN, Data: []byte(peerName)},
			Policy: credentials.Policy{Revocation: credentials.RevocationStrict}}})
	return c
}

// revocationNet is A and B authenticating with certificates checked against a slow CRL, and C,
// which has PSK connections with both: A initiates to B and to C, C to B. A and B hold their
// blocking work (engine.Config.HoldAsync) until the test runs it.
type revocationNet struct {
	net          *enginetest.Net
	a, b, c      *enginetest.Host
	ab, ac, cb   *ike.PeerConfig // initiators' configurations
	ba, ca, bc   *ike.PeerConfig // responders' configurations
	addrA, addrB netip.AddrPort
	addrC        netip.AddrPort
	certA, certB *x509.Certificate
	pki          certPKI
}

func newRevocationNet(t *testing.T, delay time.Duration) *revocationNet {
	r := &revocationNet{net: enginetest.NewNet(), addrA: netip.MustParseAddrPort("192.0.2.1:500"), addrB: netip.MustParseAddrPort("192.0.2.2:500"),
		addrC: netip.MustParseAddrPort("192.0.2.3:500")}
	r.pki = newCertPKI(t, newSlowCRL(t, delay))
	r.ab, r.ba = peerConfig(t, "ab", "10.1.0.0/24", "10.2.0.0/24"), peerConfig(t, "ba", "10.2.0.0/24", "10.1.0.0/24")
	r.ac, r.ca = peerConfig(t, "ac", "10.1.0.0/24", "10.3.0.0/24"), peerConfig(t, "ca", "10.3.0.0/24", "10.1.0.0/24")
	r.cb, r.bc = peerConfig(t, "cb", "10.3.0.0/24", "10.2.0.0/24"), peerConfig(t, "bc", "10.2.0.0/24", "10.3.0.0/24")
	r.certA = certConfig(t, r.pki, r.ab, "a.example.org", "b.example.org")
	r.certB = certConfig(t, r.pki, r.ba, "b.example.org", "a.example.org")
	hold := func(c *engine.Config) { c.HoldAsync = true }
	by := func(m map[netip.Addr]*ike.PeerConfig) func(netip.Addr, netip.Addr) []*ike.PeerConfig {
		return func(_, remote netip.Addr) []*ike.PeerConfig {
			if c := m[remote]; c != nil {
				return []*ike.PeerConfig{c}
			}
			return nil
		}
	}
	r.a = r.net.AddHost(t, "A", r.addrA.Addr(), enginetest.HostOptions{Modify: hold})
	r.b = r.net.AddHost(t, "B", r.addrB.Addr(), enginetest.HostOptions{Modify: hold,
		Configs: by(map[netip.Addr]*ike.PeerConfig{r.addrA.Addr(): r.ba, r.addrC.Addr(): r.bc})})
	r.c = r.net.AddHost(t, "C", r.addrC.Addr(), enginetest.HostOptions{Configs: by(map[netip.Addr]*ike.PeerConfig{r.addrA.Addr(): r.ca})})
	return r
}

func (r *revocationNet) run(d time.Duration) { r.net.Run(d, 100*time.Millisecond, false) }

func (r *revocationNet) initiate(t *testing.T, h *enginetest.Host, cfg *ike.PeerConfig, from, to netip.AddrPort) {
	t.Helper()
	if err := h.Engine.Initiate(cfg, cfg.Children, from, to); err != nil {
		t.Fatal(err)
	}
}

// upWith counts a host's established IKE SAs of a connection.
func upWith(h *enginetest.Host, conn string) int {
	n := 0
	for _, u := range h.IKEUp() {
		if u.IKE.Conn == conn {
			n++
		}
	}
	return n
}

// TestRevocationCheckOffTheSA: the responder's check of the initiator's certificate and the
// initiator's check of the responder's both fetch a CRL from a server that takes 300 ms; while
// each waits, the same engines complete other handshakes (their workers are not held), and once
// the fetches are done the certificate IKE SA comes up.
func TestRevocationCheckOffTheSA(t *testing.T) {
	const delay = 300 * time.Millisecond
	r := newRevocationNet(t, delay)
	r.pki.publish(t) // nothing revoked
	r.initiate(t, r.a, r.ab, r.addrA, r.addrB)
	r.initiate(t, r.c, r.cb, r.addrC, r.addrB)
	r.run(time.Second)
	// B holds A's IKE_AUTH request (its certificate check waits), and has completed C's PSK SA.
	if upWith(r.b, "bc") != 1 || upWith(r.c, "cb") != 1 {
		t.Fatalf("C's handshake with B did not complete while B checked A's certificate: B %v, C %v", r.b.Failures(true), r.c.Failures(true))
	}
	if upWith(r.b, "ba") != 0 || upWith(r.a, "ab") != 0 || r.pki.crl.fetches.Load() != 0 {
		t.Fatal("the certificate SA is up before the revocation check ran")
	}
	start := time.Now()
	if n := r.b.Engine.RunHeldAsync(); n != 1 {
		t.Fatalf("B held %d pieces of blocking work, want 1", n)
	}
	if took := time.Since(start); took < delay || r.pki.crl.fetches.Load() != 1 {
		t.Fatalf("B's check took %v with %d fetches: the CRL was not fetched", took, r.pki.crl.fetches.Load())
	}
	r.run(time.Second)
	// B answered; A holds B's response while it checks B's certificate (A's store fetches the
	// CRL itself). Meanwhile A completes a PSK handshake with C.
	if upWith(r.b, "ba") != 1 || upWith(r.a, "ab") != 0 {
		t.Fatalf("after B's check: B up %d, A up %d (A must still be checking B's certificate)", upWith(r.b, "ba"), upWith(r.a, "ab"))
	}
	r.initiate(t, r.a, r.ac, r.addrA, r.addrC)
	r.run(time.Second)
	if upWith(r.a, "ac") != 1 || upWith(r.c, "ca") != 1 {
		t.Fatalf("A's handshake with C did not complete while A checked B's certificate: A %v", r.a.Failures(true))
	}
	if n := r.a.Engine.RunHeldAsync(); n != 1 || r.pki.crl.fetches.Load() != 2 {
		t.Fatalf("A held %d pieces of blocking work (fetches %d), want 1 (2)", n, r.pki.crl.fetches.Load())
	}
	r.run(time.Second)
	if upWith(r.a, "ab") != 1 || len(r.a.Children()) != 2 {
		t.Fatalf("A's certificate SA not up after the check: %v", r.a.Failures(true))
	}
}

// TestRevocationVerdictEnforced: a certificate the CRL lists is refused after the check off the
// SA, by the responder (A's certificate revoked) and by the initiator (B's certificate revoked).
func TestRevocationVerdictEnforced(t *testing.T) {
	t.Run("responder", func(t *testing.T) {
		r := newRevocationNet(t, 50*time.Millisecond)
		r.pki.publish(t, r.certA.SerialNumber)
		r.initiate(t, r.a, r.ab, r.addrA, r.addrB)
		r.run(time.Second)
		if n := r.b.Engine.RunHeldAsync(); n != 1 {
			t.Fatalf("B held %d pieces of blocking work", n)
		}
		r.run(time.Second)
		if upWith(r.b, "ba") != 0 || upWith(r.a, "ab") != 0 {
			t.Fatal("an IKE SA came up with a revoked certificate")
		}
		if f := strings.Join(r.b.Failures(true), "\n"); !strings.Contains(f, "revoked") {
			t.Fatalf("B's failures do not name the revocation: %s", f)
		}
		if f := strings.Join(r.a.Failures(true), "\n"); !strings.Contains(f, "AUTHENTICATION_FAILED") {
			t.Fatalf("A was not refused: %s", f)
		}
	})
	t.Run("initiator", func(t *testing.T) {
		r := newRevocationNet(t, 50*time.Millisecond)
		r.pki.publish(t, r.certB.SerialNumber)
		r.initiate(t, r.a, r.ab, r.addrA, r.addrB)
		r.run(time.Second)
		r.b.Engine.RunHeldAsync() // A's certificate is fine
		r.run(time.Second)
		if n := r.a.Engine.RunHeldAsync(); n != 1 {
			t.Fatalf("A held %d pieces of blocking work", n)
		}
		r.run(time.Second)
		if upWith(r.a, "ab") != 0 {
			t.Fatal("A took B's revoked certificate")
		}
		if f := strings.Join(r.a.Failures(true), "\n"); !strings.Contains(f, "revoked") {
			t.Fatalf("A's failures do not name the revocation: %s", f)
		}
	})
}
