package auth

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

var (
	addrI = netip.MustParseAddrPort("192.0.2.1:500")
	addrR = netip.MustParseAddrPort("192.0.2.2:500")
	now   = time.Now()
)

// side is one peer's credentials: a CA chain and its own key and certificate.
type side struct {
	store *credentials.Store
	cert  *x509.Certificate
	key   crypto.Signer
}

type testCA struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func newCA(t *testing.T, name string) testCA {
	k, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(pki.Request{Subject: "O=test, CN=" + name, CA: true, PathLen: -1}, k.Public(), nil, k, now)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{k, c}
}

func (ca testCA) issue(t *testing.T, kt pki.KeyType, req pki.Request) (crypto.Signer, *x509.Certificate) {
	k, err := pki.GenerateKey(kt, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(req, k.Public(), ca.cert, ca.key, now)
	if err != nil {
		t.Fatal(err)
	}
	return k, c
}

func newSide(t *testing.T, ca testCA, kt pki.KeyType, name string) side {
	k, c := ca.issue(t, kt, pki.Request{Subject: "O=test, CN=" + name, SANs: []string{name}})
	s := credentials.New(credentials.Options{})
	s.AddCert(ca.cert, credentials.CA, "test")
	s.AddCert(c, credentials.EndEntity, "test")
	if _, err := s.AddKey(k, "test"); err != nil {
		t.Fatal(err)
	}
	return side{s, c, k}
}

func peerConfig(t *testing.T, name string, local ike.Identity, a *Authenticator) *ike.PeerConfig {
	props, _ := proposal.ParseIKE("aes256gcm16-prfsha256-x25519")
	esp, _ := proposal.ParseESP("aes256gcm16")
	l, _ := ts.Parse("10.1.0.0/24")
	r, _ := ts.Parse("10.2.0.0/24")
	if name == "r" {
		l, r = r, l
	}
	return &ike.PeerConfig{Name: name, Proposals: props, LocalID: local, Authenticator: a,
		PSK:      func(_, _ ike.Identity) ([]byte, bool) { return []byte("psk"), true },
		Children: []*ike.ChildConfig{{Name: "net", LocalTS: []ts.Selector{l}, RemoteTS: []ts.Selector{r}, Proposals: esp}}}
}

func fqdnID(s string) ike.Identity { return ike.Identity{Type: wire.IDFQDN, Data: []byte(s)} }

// handshake runs IKE_SA_INIT and IKE_AUTH through the wire codec (the task API of package ike)
// and returns the payloads of the IKE_AUTH request and response and the first error.
func handshake(t *testing.T, ci, cr *ike.PeerConfig) (req, resp []wire.Payload, err error) {
	t.Helper()
	i, err := ike.NewInitiator(ci, ci.Children[:1], addrI, addrR, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := i.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	dm, err := wire.Decode(m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	r, rb, err := ike.RespondInit(dm, m.Raw, addrR, addrI, []*ike.PeerConfig{cr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := wire.Decode(rb)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := i.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: rm.Payloads, Raw: rb}); err != nil || again != nil {
		t.Fatalf("IKE_SA_INIT: %v", err)
	}
	authReq, err := i.NextRequest()
	if err != nil {
		return nil, nil, err
	}
	msgs, err := i.Seal(i.Header(wire.ExchangeIKEAuth, 1, false), authReq.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := r.Open(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.CheckGrammar(opened.Message, opened.Inner); err != nil {
		t.Fatalf("IKE_AUTH request: %v", err)
	}
	out := r.ProcessRequest(&ike.Message{Exchange: wire.ExchangeIKEAuth, Payloads: opened.Inner})
	var rKept []ike.Effect
	if out == nil && r.Held() {
		// The certificate is verified off the SA (ike.Async), as the engine runs it.
		var res any
		res, rKept = runAsync(t, r)
		out = r.Resume(res)
	}
	msgs, err = r.Seal(r.Header(wire.ExchangeIKEAuth, 1, true), out.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	back, err := i.Open(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if rErr := failureIn(append(rKept, r.TakeEffects()...)); rErr != nil {
		return opened.Inner, back.Inner, rErr
	}
	if err := wire.CheckGrammar(back.Message, back.Inner); err != nil {
		t.Fatalf("IKE_AUTH response: %v", err)
	}
	next, err := i.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKEAuth, Payloads: back.Inner})
	var iKept []ike.Effect
	if next == nil && err == nil && i.HoldsResponse() {
		var res any
		res, iKept = runAsync(t, i)
		_, err = i.ResumeResponse(res)
	}
	if err != nil {
		return opened.Inner, back.Inner, err
	}
	return opened.Inner, back.Inner, failureIn(append(iKept, i.TakeEffects()...))
}

// runAsync runs the one piece of blocking work an SA recorded (ike.Async) and returns its result
// with the SA's other effects.
func runAsync(t *testing.T, sa *ike.SA) (any, []ike.Effect) {
	t.Helper()
	var res any
	var kept []ike.Effect
	n := 0
	for _, e := range sa.TakeEffects() {
		if a, ok := e.(ike.Async); ok {
			res, n = a.Run(), n+1
			continue
		}
		kept = append(kept, e)
	}
	if n != 1 {
		t.Fatalf("%d pieces of blocking work, want 1", n)
	}
	return res, kept
}

// failureIn returns the first failure among an SA's effects.
func failureIn(effects []ike.Effect) error {
	for _, e := range effects {
		if f, ok := e.(ike.Failed); ok && !f.Retry {
			return f.Err
		}
	}
	return nil
}

func count[T wire.Payload](ps []wire.Payload) int {
	n := 0
	for _, p := range ps {
		if _, ok := p.(T); ok {
			n++
		}
	}
	return n
}

func TestHandshakeCertificates(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.ECDSA256, pki.ECDSA384, pki.Ed25519, pki.RSA2048} {
		for _, localAuth := range []string{"pubkey", "rsa/pss"} {
			if localAuth == "rsa/pss" && kt != pki.RSA2048 {
				continue
			}
			t.Run(string(kt)+"/"+localAuth, func(t *testing.T) {
				ca := newCA(t, "CA")
				si, sr := newSide(t, ca, kt, "moon.example.org"), newSide(t, ca, kt, "sun.example.org")
				mk := func(s side, remote string) *Authenticator {
					return New(Config{Conn: "c", Store: s.store, SendCertReq: true,
						Local:  Local{Method: MethodPubkey, Constraints: mustConstraints(t, localAuth)},
						Remote: Remote{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey"), ID: credentials.Identity{Type: credentials.IDFQDN, Data: []byte(remote)}}})
				}
				ci := peerConfig(t, "i", fqdnID("moon.example.org"), mk(si, "sun.example.org"))
				cr := peerConfig(t, "r", fqdnID("sun.example.org"), mk(sr, "moon.example.org"))
				req, resp, err := handshake(t, ci, cr)
				if err != nil {
					t.Fatal(err)
				}
				// Initiator: IDi, CERT, CERTREQ, AUTH; responder (asked by CERTREQ): IDr, CERT, AUTH.
				if count[*wire.CERT](req) != 1 || count[*wire.CERTREQ](req) != 1 || count[*wire.CERT](resp) != 1 {
					t.Fatalf("CERT/CERTREQ counts: req %d/%d resp %d", count[*wire.CERT](req), count[*wire.CERTREQ](req), count[*wire.CERT](resp))
				}
				for _, p := range append(req, resp...) {
					if a, ok := p.(*wire.AUTH); ok && a.Method != wire.AuthDigitalSignature {
						t.Fatalf("AUTH method %d, want 14 (both sides announce SIGNATURE_HASH_ALGORITHMS)", a.Method)
					}
				}
			})
		}
	}
}

func TestHandshakeRefusals(t *testing.T) {
	ca := newCA(t, "CA")
	si, sr := newSide(t, ca, pki.ECDSA256, "moon.example.org"), newSide(t, ca, pki.ECDSA256, "sun.example.org")
	base := func(s side, remote string) Config {
		return Config{Conn: "c", Store: s.store, SendCertReq: true,
			Local:  Local{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey")},
			Remote: Remote{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey"), ID: credentials.Identity{Type: credentials.IDFQDN, Data: []byte(remote)}}}
	}
	// The responder claims an identity that is not in its certificate.
	ci := peerConfig(t, "i", fqdnID("moon.example.org"), New(base(si, "%any")))
	ci.Authenticator.(*Authenticator).cfg.Remote.ID = credentials.Identity{}
	cr := peerConfig(t, "r", fqdnID("venus.example.org"), New(Config{Conn: "c", Store: sr.store, SendCertReq: true, Local: Local{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey"), Certs: []*x509.Certificate{sr.cert}},
		Remote: Remote{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey")}}))
	_, _, err := handshake(t, ci, cr)
	if err == nil || !strings.Contains(err.Error(), "identity venus.example.org is not in the peer's certificate") {
		t.Fatalf("wrong identity: %v", err)
	}
	// The initiator's certificate comes from a CA the responder does not trust.
	other := newCA(t, "Other CA")
	so := newSide(t, other, pki.ECDSA256, "moon.example.org")
	ci = peerConfig(t, "i", fqdnID("moon.example.org"), New(base(so, "sun.example.org")))
	cr = peerConfig(t, "r", fqdnID("sun.example.org"), New(base(sr, "moon.example.org")))
	_, resp, err := handshake(t, ci, cr)
	if err == nil || !strings.Contains(err.Error(), "no path to a trusted CA") || !strings.Contains(err.Error(), `"O=test, CN=Other CA"`) {
		t.Fatalf("untrusted CA: %v", err)
	}
	if count[*wire.Notify](resp) != 1 {
		t.Fatalf("responder's answer: %v", resp)
	}
	// Signature scheme constraints: the responder accepts only RSA.
	ci = peerConfig(t, "i", fqdnID("moon.example.org"), New(base(si, "sun.example.org")))
	rc := base(sr, "moon.example.org")
	rc.Remote.Constraints = mustConstraints(t, "rsa")
	cr = peerConfig(t, "r", fqdnID("sun.example.org"), New(rc))
	_, _, err = handshake(t, ci, cr)
	if err == nil || !strings.Contains(err.Error(), "not accepted by auth = rsa") {
		t.Fatalf("constraints: %v", err)
	}
	// Raw public keys both ways, no certificates.
	ki, _ := pki.GenerateKey(pki.Ed25519, nil)
	kr, _ := pki.GenerateKey(pki.Ed25519, nil)
	raw := func(own, peer crypto.Signer) *Authenticator {
		s := credentials.New(credentials.Options{})
		s.AddKey(own, "t")
		return New(Config{Conn: "c", Store: s, Local: Local{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey"), PubKey: own.Public()},
			Remote: Remote{Method: MethodPubkey, Constraints: mustConstraints(t, "pubkey"), PubKeys: []crypto.PublicKey{peer.Public()}}})
	}
	ci = peerConfig(t, "i", fqdnID("moon"), raw(ki, kr))
	cr = peerConfig(t, "r", fqdnID("sun"), raw(kr, ki))
	req, resp, err := handshake(t, ci, cr)
	if err != nil || count[*wire.CERT](req)+count[*wire.CERT](resp) != 0 {
		t.Fatalf("raw keys: %v", err)
	}
	other2, _ := pki.GenerateKey(pki.Ed25519, nil)
	cr = peerConfig(t, "r", fqdnID("sun"), raw(kr, other2))
	if _, _, err := handshake(t, ci, cr); err == nil || !strings.Contains(err.Error(), "remote.pubkeys") {
		t.Fatalf("raw key mismatch: %v", err)
	}
	// Mixed: the initiator signs, the responder uses a PSK.
	mi := base(si, "sun.example.org")
	mi.Remote.Method = MethodPSK
	mr := base(sr, "moon.example.org")
	mr.Local.Method = MethodPSK
	ci = peerConfig(t, "i", fqdnID("moon.example.org"), New(mi))
	cr = peerConfig(t, "r", fqdnID("sun.example.org"), New(mr))
	if _, resp, err := handshake(t, ci, cr); err != nil || findAuth(resp).Method != wire.AuthSharedKeyMIC {
		t.Fatalf("mixed pubkey/psk: %v", err)
	}
}

func findAuth(ps []wire.Payload) *wire.AUTH {
	for _, p := range ps {
		if a, ok := p.(*wire.AUTH); ok {
			return a
		}
	}
	return &wire.AUTH{}
}
