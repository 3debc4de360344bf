package ikebench

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/auth"
	"github.com/goipsec/goipsec/ike/wire"
)

// withCertificate makes cfg authenticate as name with a certificate issued by the CA, and expect
// peerName's certificate from the same CA (what `goipsec bench ike --cert` and the responder of
// scripts/bench-ike.sh AUTHS=ecdsa do).
func withCertificate(t *testing.T, cfg *ike.PeerConfig, ca pkiCA, name, peerName string) {
	t.Helper()
	k, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(pki.Request{Subject: "O=bench, CN=" + name, SANs: []string{name}}, k.Public(), ca.cert, ca.key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store := credentials.New(credentials.Options{})
	store.AddCert(ca.cert, credentials.CA, "ca")
	store.AddCert(c, credentials.EndEntity, name)
	if _, err := store.AddKey(k, name); err != nil {
		t.Fatal(err)
	}
	pub, err := auth.ParseConstraints("pubkey")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PSK = nil
	cfg.LocalID = ike.Identity{Type: wire.IDFQDN, Data: []byte(name)}
	cfg.Authenticator = auth.New(auth.Config{Conn: cfg.Name, Store: store, SendCertReq: true,
		Local:  auth.Local{Method: auth.MethodPubkey, Constraints: pub},
		Remote: auth.Remote{Method: auth.MethodPubkey, Constraints: pub, ID: credentials.Identity{Type: credentials.IDFQDN, Data: []byte(peerName)}}})
}

// pkiCA is a CA certificate and its key.
type pkiCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// TestRunWithCertificates: the load generator completes handshakes authenticated with
// certificates both ways. The initiator verifies the responder's AUTH as Async work off the SA
// (a certificate check may fetch a CRL); the generator must run that work and resume the held
// IKE_AUTH response, or every handshake ends without its Child SA.
func TestRunWithCertificates(t *testing.T) {
	caKey, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.Issue(pki.Request{Subject: "O=bench, CN=CA", CA: true, PathLen: -1}, caKey.Public(), nil, caKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca := pkiCA{cert: caCert, key: caKey}
	resp := responderConfig(t, testProposal)
	withCertificate(t, resp, ca, "gw.example.org", "client.example.org")
	r := startResponder(t, resp, nil)
	cfg := benchConfig(t, r, 20, 4)
	withCertificate(t, cfg.IKE, ca, "client.example.org", "gw.example.org")
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, 20)
	waitFor(t, func() bool { return r.childUp.Load() == 20 })
}
