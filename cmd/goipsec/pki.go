package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/credentials/pki"
)

// newPKICommand is `goipsec pki`: keys, a CA, certificates and CRLs for IKE, in PEM files that
// goipsec and strongSwan both load (private/, x509ca/, x509/, x509crl/ of a swanctl directory).
func newPKICommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "pki",
		Short: "Make keys, a CA, certificates and CRLs for IKE (PEM files for goipsec and strongSwan)",
		Long: `Make keys, a CA, certificates and CRLs for IKE authentication.

A gateway for Windows, macOS and iOS clients:
  goipsec pki key --type ecdsa > private/ca.key
  goipsec pki ca --key private/ca.key --dn "C=CH, O=Example, CN=Example CA" > x509ca/ca.pem
  goipsec pki key --type ecdsa > private/gw.key
  goipsec pki issue --cacert x509ca/ca.pem --cakey private/ca.key --key private/gw.key \
      --san vpn.example.com --crl http://vpn.example.com/ca.crl > x509/gw.pem
Certificates carry the names given with --san in subjectAltName (and the first as CN) and, unless
--flag says otherwise, the serverAuth and ikeIntermediate extended key usages.`,
	}
	root.AddCommand(pkiKeyCommand(), pkiPubCommand(), pkiCACommand(), pkiIssueCommand(), pkiCRLCommand(), pkiPrintCommand(), pkiVerifyCommand())
	return root
}

// output writes to --out, or to standard output; private keys get mode 0600.
func writeOut(cmd *cobra.Command, out string, data []byte, secret bool) error {
	if out == "" || out == "-" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	mode := os.FileMode(0o644)
	if secret {
		mode = 0o600
	}
	return os.WriteFile(out, data, mode)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := credentials.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := credentials.ParsePrivateKey(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readCert(path string) (*x509.Certificate, error) {
	cs, err := credentials.LoadCertFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cs[0], nil
}

func pkiKeyCommand() *cobra.Command {
	var typ, out string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Generate a private key (PKCS#8 PEM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := pki.ParseKeyType(typ)
			if err != nil {
				return err
			}
			k, err := pki.GenerateKey(t, nil)
			if err != nil {
				return err
			}
			b, err := pki.KeyPEM(k)
			if err != nil {
				return err
			}
			return writeOut(cmd, out, b, true)
		},
	}
	cmd.Flags().StringVar(&typ, "type", "ecdsa", "ed25519, ecdsa (P-256), ecdsa384, ecdsa521, rsa (3072 bits), rsa4096 or rsa2048")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	return cmd
}

func pkiPubCommand() *cobra.Command {
	var in, out string
	cmd := &cobra.Command{
		Use:   "pub",
		Short: "Write the public key of a private key (for pubkeys = , raw public key authentication)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := readKey(in)
			if err != nil {
				return err
			}
			b, err := pki.PublicKeyPEM(k.Public())
			if err != nil {
				return err
			}
			return writeOut(cmd, out, b, false)
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "private key file (required)")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	cmd.MarkFlagRequired("in")
	return cmd
}

func pkiCACommand() *cobra.Command {
	var key, subject, out string
	var days, pathLen int
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make a self-signed CA certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := readKey(key)
			if err != nil {
				return err
			}
			c, err := pki.Issue(pki.Request{Subject: subject, CA: true, PathLen: pathLen, Lifetime: time.Duration(days) * 24 * time.Hour}, k.Public(), nil, k, time.Now())
			if err != nil {
				return err
			}
			return writeOut(cmd, out, pki.CertPEM(c), false)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the CA's private key (required)")
	cmd.Flags().StringVar(&subject, "dn", "", `distinguished name, e.g. "C=CH, O=Example, CN=Example CA" (required)`)
	cmd.Flags().IntVar(&days, "lifetime", 3650, "validity in days")
	cmd.Flags().IntVar(&pathLen, "pathlen", -1, "how many intermediate CAs may follow (-1: no limit)")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	cmd.MarkFlagRequired("key")
	cmd.MarkFlagRequired("dn")
	return cmd
}

func pkiIssueCommand() *cobra.Command {
	var caCert, caKey, key, pub, subject, out, serial string
	var sans, flags, crls, ocsps []string
	var days, pathLen int
	var isCA bool
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate signed by a CA (a gateway or client certificate, or an intermediate CA with --ca)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := readCert(caCert)
			if err != nil {
				return err
			}
			cak, err := readKey(caKey)
			if err != nil {
				return err
			}
			var pk crypto.PublicKey
			switch {
			case key != "" && pub != "":
				return errors.New("give --key or --pub, not both")
			case key != "":
				k, err := readKey(key)
				if err != nil {
					return err
				}
				pk = k.Public()
			case pub != "":
				data, err := credentials.ReadFile(pub)
				if err != nil {
					return err
				}
				if pk, _, err = credentials.ParsePublicKey(data); err != nil {
					return fmt.Errorf("%s: %w", pub, err)
				}
			default:
				return errors.New("--key or --pub is required")
			}
			req := pki.Request{Subject: subject, SANs: sans, CA: isCA, PathLen: pathLen, Flags: flags, CRLURIs: crls, OCSPURIs: ocsps}
			if cmd.Flags().Changed("lifetime") {
				req.Lifetime = time.Duration(days) * 24 * time.Hour
			}
			if serial != "" {
				b, err := hex.DecodeString(strings.ReplaceAll(serial, ":", ""))
				if err != nil {
					return fmt.Errorf("--serial: %v", err)
				}
				req.Serial = new(big.Int).SetBytes(b)
			}
			c, err := pki.Issue(req, pk, ca, cak, time.Now())
			if err != nil {
				return err
			}
			return writeOut(cmd, out, pki.CertPEM(c), false)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caCert, "cacert", "", "the issuing CA's certificate (required)")
	f.StringVar(&caKey, "cakey", "", "the issuing CA's private key (required)")
	f.StringVar(&key, "key", "", "private key of the new certificate")
	f.StringVar(&pub, "pub", "", "public key of the new certificate (instead of --key)")
	f.StringVar(&subject, "dn", "", "distinguished name (default: CN=<first --san>)")
	f.StringSliceVar(&sans, "san", nil, "subjectAltName: DNS name, IP address or e-mail address (repeatable); clients check the name they dial here")
	f.StringSliceVar(&flags, "flag", nil, "extended key usage: serverAuth, clientAuth, ikeIntermediate, ipsecIKE, ocspSigning (default serverAuth and ikeIntermediate)")
	f.StringSliceVar(&crls, "crl", nil, "CRL distribution point URI (repeatable)")
	f.StringSliceVar(&ocsps, "ocsp", nil, "OCSP responder URI (repeatable)")
	f.IntVar(&days, "lifetime", 825, "validity in days (825 is the longest Apple accepts for server certificates)")
	f.BoolVar(&isCA, "ca", false, "issue an intermediate CA certificate")
	f.IntVar(&pathLen, "pathlen", -1, "with --ca: how many CAs may follow (-1: no limit)")
	f.StringVar(&serial, "serial", "", "serial number in hex (default: random)")
	f.StringVar(&out, "out", "", "file to write (default: standard output)")
	cmd.MarkFlagRequired("cacert")
	cmd.MarkFlagRequired("cakey")
	return cmd
}

func pkiCRLCommand() *cobra.Command {
	var caCert, caKey, out string
	var revoke, revokeSerials []string
	var days int
	var number int64
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Make a CRL listing revoked certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := readCert(caCert)
			if err != nil {
				return err
			}
			cak, err := readKey(caKey)
			if err != nil {
				return err
			}
			now := time.Now()
			var entries []pki.Revoked
			for _, f := range revoke {
				c, err := readCert(f)
				if err != nil {
					return err
				}
				entries = append(entries, pki.Revoked{Serial: c.SerialNumber, At: now})
			}
			for _, s := range revokeSerials {
				b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
				if err != nil {
					return fmt.Errorf("--revoke-serial %s: %v", s, err)
				}
				entries = append(entries, pki.Revoked{Serial: new(big.Int).SetBytes(b), At: now})
			}
			if number == 0 {
				number = now.Unix()
			}
			der, err := pki.CRL(ca, cak, entries, number, now, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			return writeOut(cmd, out, pki.CRLPEM(der), false)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caCert, "cacert", "", "the CA's certificate (required)")
	f.StringVar(&caKey, "cakey", "", "the CA's private key (required)")
	f.StringSliceVar(&revoke, "revoke", nil, "certificate file to revoke (repeatable)")
	f.StringSliceVar(&revokeSerials, "revoke-serial", nil, "serial number to revoke, hex (repeatable)")
	f.IntVar(&days, "lifetime", 15, "days until the next update")
	f.Int64Var(&number, "number", 0, "CRL number (default: the current Unix time, so it grows)")
	f.StringVar(&out, "out", "", "file to write (default: standard output)")
	cmd.MarkFlagRequired("cacert")
	cmd.MarkFlagRequired("cakey")
	return cmd
}

func pkiPrintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "print FILE",
		Short: "Show a certificate, CRL, private or public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := credentials.ReadFile(args[0])
			if err != nil {
				return err
			}
			return printCredential(cmd.OutOrStdout(), data)
		},
	}
}

func printCredential(w io.Writer, data []byte) error {
	if cs, err := credentials.ParseCertificates(data); err == nil {
		for _, c := range cs {
			printCert(w, c)
		}
		return nil
	}
	if crl, err := credentials.ParseCRL(data); err == nil {
		fmt.Fprintf(w, "CRL\n  issuer:      %s\n  number:      %v\n  this update: %s\n  next update: %s\n  revoked:     %d\n", dn.String(crl.RawIssuer), crl.Number,
			crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339), len(crl.RevokedCertificateEntries))
		for _, e := range crl.RevokedCertificateEntries {
			fmt.Fprintf(w, "    %x  %s\n", e.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if k, err := credentials.ParsePrivateKey(data, nil); err == nil {
		spki, _ := x509.MarshalPKIXPublicKey(k.Public())
		fmt.Fprintf(w, "private key\n  type:    %s\n  subjkey: %x\n", keyDesc(k.Public()), credentials.PublicKeyID(spki))
		return nil
	} else if errors.Is(err, credentials.ErrPassphrase) {
		return errors.New("an encrypted private key")
	}
	if k, spki, err := credentials.ParsePublicKey(data); err == nil {
		fmt.Fprintf(w, "public key\n  type:    %s\n  subjkey: %x\n", keyDesc(k), credentials.PublicKeyID(spki))
		return nil
	}
	return errors.New("not a certificate, CRL or key (PEM or DER)")
}

func keyDesc(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func printCert(w io.Writer, c *x509.Certificate) {
	fmt.Fprintf(w, "certificate\n  subject:    %s\n  issuer:     %s\n", dn.String(c.RawSubject), dn.String(c.RawIssuer))
	fmt.Fprintf(w, "  serial:     %x\n  validity:   %s .. %s\n", c.SerialNumber, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  key:        %s\n  signature:  %s\n", c.PublicKeyAlgorithm, c.SignatureAlgorithm)
	var alt []string
	alt = append(alt, c.DNSNames...)
	alt = append(alt, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		alt = append(alt, ip.String())
	}
	if len(alt) > 0 {
		fmt.Fprintf(w, "  altNames:   %s\n", strings.Join(alt, ", "))
	}
	var flags []string
	if c.IsCA {
		flags = append(flags, "CA")
		if c.MaxPathLen > 0 || c.MaxPathLenZero {
			flags = append(flags, fmt.Sprintf("pathlen %d", c.MaxPathLen))
		}
	}
	for _, u := range c.ExtKeyUsage {
		flags = append(flags, map[x509.ExtKeyUsage]string{x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth", x509.ExtKeyUsageOCSPSigning: "ocspSigning"}[u])
	}
	for _, o := range c.UnknownExtKeyUsage {
		switch {
		case o.Equal(pki.OIDIKEIntermediate):
			flags = append(flags, "ikeIntermediate")
		case o.Equal(pki.OIDIPsecIKE):
			flags = append(flags, "ipsecIKE")
		default:
			flags = append(flags, o.String())
		}
	}
	if len(flags) > 0 {
		fmt.Fprintf(w, "  flags:      %s\n", strings.Join(flags, ", "))
	}
	for _, u := range c.CRLDistributionPoints {
		fmt.Fprintf(w, "  CRL URI:    %s\n", u)
	}
	for _, u := range c.OCSPServer {
		fmt.Fprintf(w, "  OCSP URI:   %s\n", u)
	}
	fmt.Fprintf(w, "  subjkey:    %x\n", credentials.PublicKeyID(c.RawSubjectPublicKeyInfo))
}

func pkiVerifyCommand() *cobra.Command {
	var cacerts, inter []string
	var id, revocation string
	cmd := &cobra.Command{
		Use:   "verify CERT",
		Short: "Verify a certificate against CA certificates (chain, validity, identity, revocation) as goipsec does for a peer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st := credentials.New(credentials.Options{})
			for _, f := range cacerts {
				cs, err := credentials.LoadCertFile(f)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				for _, c := range cs {
					st.AddCert(c, credentials.CA, f)
				}
			}
			leaf, err := readCert(args[0])
			if err != nil {
				return err
			}
			presented := [][]byte{leaf.Raw}
			for _, f := range inter {
				c, err := readCert(f)
				if err != nil {
					return err
				}
				presented = append(presented, c.Raw)
			}
			ident := credentials.SubjectIdentity(leaf)
			if id != "" {
				ident, err = parseIDArg(id)
				if err != nil {
					return err
				}
			}
			rev, err := credentials.ParseRevocation(revocation)
			if err != nil {
				return err
			}
			v, err := st.VerifyPeer(context.Background(), ident, presented, credentials.Policy{Revocation: rev})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s\n", credentials.Describe(v.Leaf))
			for _, c := range v.Chain[1:] {
				fmt.Fprintf(cmd.OutOrStdout(), "  issued by %s\n", credentials.Describe(c))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&cacerts, "cacert", nil, "trusted CA certificate (repeatable, required)")
	cmd.Flags().StringSliceVar(&inter, "intermediate", nil, "intermediate CA certificate the peer would send (repeatable)")
	cmd.Flags().StringVar(&id, "id", "", "identity to check: an FQDN, e-mail, IP address or DN (default: the subject)")
	cmd.Flags().StringVar(&revocation, "revocation", "relaxed", "strict, ifuri or relaxed (CRLs and OCSP are fetched over HTTP)")
	cmd.MarkFlagRequired("cacert")
	return cmd
}

// parseIDArg reads an identity the way swanctl.conf writes it (without type prefixes).
func parseIDArg(s string) (credentials.Identity, error) {
	if dn.Looks(s) {
		der, err := dn.Parse(s)
		return credentials.Identity{Type: credentials.IDDN, Data: der}, err
	}
	if ip := net.ParseIP(s); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			return credentials.Identity{Type: credentials.IDIPv4, Data: v4}, nil
		}
		return credentials.Identity{Type: credentials.IDIPv6, Data: ip}, nil
	}
	if strings.Contains(s, "@") {
		return credentials.Identity{Type: credentials.IDRFC822, Data: []byte(s)}, nil
	}
	return credentials.Identity{Type: credentials.IDFQDN, Data: []byte(s)}, nil
}
