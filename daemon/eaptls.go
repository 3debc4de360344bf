package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/eap"
	"github.com/goipsec/goipsec/ike/wire"
)

// EAP-TLS and EAP-TTLS take their certificates from the credential store: the gateway proves
// itself with its IKE certificate, a client with the certificate that holds its EAP identity; each
// checks the other's chain against the trust anchors (and revocation) like an IKE signature's.

// verifyTimeoutTLS bounds a chain check inside EAP (CRL or OCSP fetches).
const verifyTimeoutTLS = 10 * time.Second

// tlsCert builds a tls.Certificate of cert (with the chain the store holds) and its private key.
func (d *Daemon) tlsCert(cert *x509.Certificate) (*tls.Certificate, error) {
	store := d.Credentials()
	key, ok := store.PrivateKeyFor(cert.PublicKey)
	if !ok {
		return nil, fmt.Errorf("no private key for certificate %s", credentials.Describe(cert))
	}
	tc := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range store.ChainFor(cert) {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

// verifyFor checks a peer's chain (DER, leaf first) for identity id.
func (d *Daemon) verifyFor(id credentials.Identity) func([][]byte) error {
	return func(chain [][]byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeoutTLS)
		defer cancel()
		_, err := d.Credentials().VerifyPeer(ctx, id, chain, credentials.Policy{})
		return err
	}
}

// eapIdentity reads an EAP identity the way certificates are matched (carol@example.org is an
// e-mail address, CN=... a DN, anything else a name).
func eapIdentity(s string) credentials.Identity {
	id, err := config.ParseIdentity(s)
	if err != nil || id.IsAny() {
		return credentials.Identity{Type: credentials.IDType(wire.IDFQDN), Data: []byte(s)}
	}
	return credentials.Identity{Type: credentials.IDType(id.Type), Data: id.Data}
}

// serverTLS is the gateway's side: its own certificate (the one its IKE AUTH uses).
func (d *Daemon) serverTLS(conn *connection, user string) (*eap.TLSConfig, error) {
	cert := d.localCert(conn)
	if cert == nil {
		return nil, errors.New("EAP-TLS/TTLS: the gateway has no certificate (local.certs)")
	}
	tc, err := d.tlsCert(cert)
	if err != nil {
		return nil, err
	}
	return &eap.TLSConfig{Certificate: tc, VerifyPeer: d.verifyFor(eapIdentity(user))}, nil
}

// clientTLS is the road warrior's side: the certificate holding our EAP identity (EAP-TLS),
// and the server's identity to check: aaa_id, else the gateway's IKE identity.
func (d *Daemon) clientTLS(conn *connection, user string, aaa config.Identity, withCert bool) (*eap.TLSConfig, error) {
	want := credentials.Identity{Type: credentials.IDType(aaa.Type), Data: aaa.Data}
	if aaa.IsAny() {
		rid := conn.peer.RemoteID
		if rid.IsAny() {
			return nil, errors.New("EAP-TLS/TTLS: set remote.id or local.aaa_id: the server's certificate must be checked against a name")
		}
		want = credentials.Identity{Type: credentials.IDType(rid.Type), Data: rid.Data}
	}
	tc := &eap.TLSConfig{VerifyPeer: d.verifyFor(want)}
	if withCert {
		certs := d.Credentials().CertsWithIdentity(eapIdentity(user))
		if len(certs) == 0 {
			return nil, fmt.Errorf("EAP-TLS: no certificate holds our EAP identity %q (x509/)", user)
		}
		c, err := d.tlsCert(certs[0])
		if err != nil {
			return nil, err
		}
		tc.Certificate = c
	}
	return tc, nil
}

// localCert is the certificate a connection authenticates with (nil: none).
func (d *Daemon) localCert(conn *connection) *x509.Certificate {
	if conn.peer.Authenticator == nil {
		return nil
	}
	type localCerter interface {
		LocalCert(ike.Identity) *x509.Certificate
	}
	if a, ok := conn.peer.Authenticator.(localCerter); ok {
		return a.LocalCert(conn.peer.LocalID)
	}
	return nil
}
