package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/auth"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/status"
)

// expiryWarning is when status and doctor start warning about a certificate's expiry.
const expiryWarning = 30 * 24 * time.Hour

// printCertificates lists certificates for `goipsec status`: subject, kind, expiry, whether we
// hold the private key, and which connections use it. Nothing is printed without certificates.
func printCertificates(w io.Writer, certs []status.Certificate, now time.Time) {
	if len(certs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "certificates:")
	for _, c := range certs {
		key := ""
		if c.HasPrivateKey {
			key = ", private key loaded"
		}
		used := ""
		if len(c.UsedBy) > 0 {
			used = ", used by " + strings.Join(c.UsedBy, ", ")
		}
		fmt.Fprintf(w, "  %q (%s), expires %s%s%s\n", c.Subject, strings.ReplaceAll(c.Kind, "_", " "), expiryText(c, now), key, used)
	}
}

func expiryText(c status.Certificate, now time.Time) string {
	left := c.NotAfter.Sub(now)
	day := c.NotAfter.UTC().Format("2006-01-02")
	switch {
	case left < 0:
		return "EXPIRED " + day
	case left < expiryWarning:
		return fmt.Sprintf("%s (in %d days!)", day, int(left.Hours()/24))
	}
	return fmt.Sprintf("%s (in %d days)", day, int(left.Hours()/24))
}

// doctorCertificates reports the certificates a connection uses and warns about expiry, for
// `goipsec doctor NAME`.
func doctorCertificates(w io.Writer, st *status.Status, name string, now time.Time) {
	for _, c := range st.Certificates {
		for _, u := range c.UsedBy {
			if !strings.HasPrefix(u, name+" ") {
				continue
			}
			fmt.Fprintf(w, "  certificate %q %s issued by %q, expires %s\n", c.Subject, strings.TrimPrefix(u, name+" "), c.Issuer, expiryText(c, now))
			if !c.NotAfter.After(now) {
				fmt.Fprintln(w, "  hint: the certificate has expired; issue a new one (goipsec pki issue) and reload")
			}
		}
	}
}

// certFailureHint gives advice for the certificate failures of credentials and ike/auth.
func certFailureHint(msg string) string {
	switch {
	case strings.Contains(msg, "no path to a trusted CA"):
		return "put the CA certificate that issued the peer's certificate into x509ca/ (and intermediates the peer does not send into x509ca/ or x509/), then reload"
	case strings.Contains(msg, "revoked"):
		return "the peer's certificate was revoked by its CA: the peer needs a new certificate"
	case strings.Contains(msg, "expired on"), strings.Contains(msg, "not valid before"):
		return "a certificate is outside its validity: renew it, or check both clocks"
	case strings.Contains(msg, "is not in the peer's certificate"):
		return "remote.id must be the certificate's subject DN or one of its subjectAltNames (goipsec pki print shows them)"
	case strings.Contains(msg, "revocation status"):
		return "make the CRL or OCSP URI reachable, load a CRL into x509crl/, or relax remote.revocation"
	case strings.Contains(msg, "not accepted by auth ="), strings.Contains(msg, "signature scheme"):
		return "the signature scheme is refused by the auth constraints (rsa, rsa/pss, ecdsa, -sha256 ...) on one side"
	case strings.Contains(msg, "no private key for our"):
		return "load the private key of our certificate into private/ (with a secrets private-<name> passphrase if it is encrypted)"
	case strings.Contains(msg, "no certificate for our identity"):
		return "name our certificate in local.certs, or set local.id to a name in a certificate in x509/"
	}
	return ""
}

// benchCertFlags make `goipsec bench ike` authenticate with a certificate both ways.
type benchCertFlags struct{ cert, key, cacert string }

func (b benchCertFlags) apply(cfg *ike.PeerConfig) error {
	if b.cert == "" && b.key == "" && b.cacert == "" {
		return nil
	}
	if b.cert == "" || b.key == "" || b.cacert == "" {
		return errors.New("--cert, --key and --cacert go together")
	}
	st := credentials.New(credentials.Options{})
	cert, err := readCert(b.cert)
	if err != nil {
		return err
	}
	ca, err := readCert(b.cacert)
	if err != nil {
		return err
	}
	key, err := readKey(b.key)
	if err != nil {
		return err
	}
	st.AddCert(cert, credentials.EndEntity, b.cert)
	st.AddCert(ca, credentials.CA, b.cacert)
	if _, err := st.AddKey(key, b.key); err != nil {
		return err
	}
	pubkey, _ := auth.ParseConstraints("pubkey")
	a := auth.New(auth.Config{Conn: cfg.Name, Store: st, SendCertReq: true,
		Local:  auth.Local{Method: auth.MethodPubkey, Constraints: pubkey, Certs: []*x509.Certificate{cert}},
		Remote: auth.Remote{Method: auth.MethodPubkey, Constraints: pubkey, ID: credentials.Identity{Type: credentials.IDType(cfg.RemoteID.Type), Data: cfg.RemoteID.Data}}})
	cfg.Authenticator = a
	if cfg.LocalID.IsAny() {
		cfg.LocalID = ike.Identity{Type: wire.IDDERASN1DN, Data: cert.RawSubject}
	}
	return nil
}
