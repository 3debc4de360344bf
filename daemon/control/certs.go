package control

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/vici"
)

// Certificate and key commands, as strongSwan's vici plugin answers them (src/libcharon/plugins/vici/
// README.md: load-cert, load-key, unload-key, get-keys, load-authority, unload-authority,
// get-authorities, list-authorities, list-certs, flush-certs), so that swanctl --load-creds,
// --load-authorities, --list-certs and --list-authorities work against goipsec.

// certCommands are the certificate and key commands (registered after credCommands, whose
// clear-creds they extend).
func (s *Service) certCommands(r *vici.Registry) {
	r.Handle("load-cert", s.loadCert)
	r.Handle("load-key", s.loadKey)
	r.Handle("unload-key", s.unloadKey)
	r.Handle("get-keys", s.getKeys)
	r.Handle("load-token", func(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
		return nil, fmt.Errorf("keys on tokens (PKCS#11) are not supported by goipsec")
	})
	r.Handle("load-authority", s.loadAuthority)
	r.Handle("unload-authority", s.unloadAuthority)
	r.Handle("get-authorities", s.getAuthorities)
	r.Handle("list-authorities", s.listAuthorities)
	r.Handle("list-certs", s.listCerts)
	r.Handle("flush-certs", s.flushCerts)
	r.Handle("clear-creds", func(ctx context.Context, req *vici.Message, es vici.EventStreamer) (*vici.Message, error) {
		s.d.Credentials().Clear()
		return s.clearCreds(ctx, req, es)
	})
}

func success() *vici.Message { return vici.NewMessage().Set("success", "yes") }

// certFlags maps strongSwan's load-cert flag to a role.
var certFlags = map[string]credentials.CertKind{"": credentials.EndEntity, "NONE": credentials.EndEntity,
	"CA": credentials.CA, "AA": credentials.AA, "OCSP": credentials.OCSPSigner}

func (s *Service) loadCert(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	data := []byte(req.Get("data"))
	st := s.d.Credentials()
	switch t := strings.ToUpper(req.Get("type")); t {
	case "X509":
		kind, ok := certFlags[strings.ToUpper(req.Get("flag"))]
		if !ok {
			return nil, fmt.Errorf("load-cert: unknown flag %q (expected NONE, CA, AA or OCSP)", req.Get("flag"))
		}
		certs, err := credentials.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("load-cert: %v", err)
		}
		for _, c := range certs {
			st.AddCert(c, kind, "vici")
			s.opts.Logger.Info("certificate loaded over VICI", "subject", dn.String(c.RawSubject), "kind", kind.String())
		}
	case "X509_CRL":
		crl, err := credentials.ParseCRL(data)
		if err != nil {
			return nil, fmt.Errorf("load-cert: CRL: %v", err)
		}
		st.AddCRL(crl)
		s.opts.Logger.Info("CRL loaded over VICI", "issuer", dn.String(crl.RawIssuer))
	case "X509_AC":
		return nil, fmt.Errorf("load-cert: attribute certificates are not supported by goipsec")
	default:
		return nil, fmt.Errorf("load-cert: unknown certificate type %q (expected X509 or X509_CRL)", req.Get("type"))
	}
	return success(), nil
}

func (s *Service) loadKey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	switch t := strings.ToLower(req.Get("type")); t {
	case "rsa", "ecdsa", "ed25519", "any", "private", "":
	default:
		return nil, fmt.Errorf("load-key: %s keys are not supported by goipsec", t)
	}
	// swanctl decrypts keys itself (with the secrets section's passphrases) before sending them.
	k, err := credentials.ParsePrivateKey([]byte(req.Get("data")), nil)
	if err != nil {
		return nil, fmt.Errorf("load-key: %v", err)
	}
	id, err := s.d.Credentials().AddKey(k, "vici")
	if err != nil {
		return nil, fmt.Errorf("load-key: %v", err)
	}
	s.opts.Logger.Info("private key loaded over VICI", "id", id)
	return success().Set("id", id), nil
}

func (s *Service) unloadKey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	id := strings.ToLower(strings.ReplaceAll(req.Get("id"), ":", ""))
	if !s.d.Credentials().RemoveKey(id) {
		return nil, fmt.Errorf("unload-key: no private key with id %q", req.Get("id"))
	}
	return success(), nil
}

func (s *Service) getKeys(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var ids []string
	for _, k := range s.d.Credentials().Keys() {
		ids = append(ids, k.ID)
	}
	return vici.NewMessage().SetList("keys", ids...), nil
}

func (s *Service) loadAuthority(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	items := req.Items()
	if len(items) != 1 || items[0].Kind != vici.KindSection {
		return nil, fmt.Errorf("load-authority: expected one section named after the authority")
	}
	name, sec := items[0].Key, items[0].Section
	if sec.Get("handle") != "" || sec.Get("slot") != "" || sec.Get("module") != "" {
		return nil, fmt.Errorf("load-authority %s: CA certificates on tokens are not supported by goipsec", name)
	}
	certs, err := credentials.ParseCertificates([]byte(sec.Get("cacert")))
	if err != nil {
		return nil, fmt.Errorf("load-authority %s: cacert: %v", name, err)
	}
	a := &credentials.Authority{Name: name, CA: certs[0], CRLURIs: sec.List("crl_uris"), OCSPURIs: sec.List("ocsp_uris"), CertURIBase: sec.Get("cert_uri_base"), Source: "vici"}
	s.d.Credentials().AddAuthority(a)
	s.opts.Logger.Info("authority loaded over VICI", "name", name, "ca", dn.String(a.CA.RawSubject))
	return success(), nil
}

func (s *Service) unloadAuthority(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if !s.d.Credentials().RemoveAuthority(req.Get("name")) {
		return nil, fmt.Errorf("unload-authority: no authority named %q", req.Get("name"))
	}
	return success(), nil
}

func (s *Service) getAuthorities(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var names []string
	for _, a := range s.d.Credentials().Authorities() {
		names = append(names, a.Name)
	}
	return vici.NewMessage().SetList("authorities", names...), nil
}

func (s *Service) listAuthorities(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	want := req.Get("name")
	for _, a := range s.d.Credentials().Authorities() {
		if want != "" && a.Name != want {
			continue
		}
		ev := vici.NewMessage()
		s := ev.AddSection(a.Name)
		if a.CA != nil {
			s.Set("cacert", dn.String(a.CA.RawSubject))
		}
		s.SetList("crl_uris", a.CRLURIs...).SetList("ocsp_uris", a.OCSPURIs...)
		if a.CertURIBase != "" {
			s.Set("cert_uri_base", a.CertURIBase)
		}
		if err := stream.Stream("list-authority", ev); err != nil {
			return nil, err
		}
	}
	return vici.NewMessage(), nil
}

// viciListCerts streams list-cert events: type, flag, has_privkey and the DER data, which swanctl
// --list-certs parses and prints itself.
func (s *Service) listCerts(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	typ := strings.ToUpper(req.Get("type"))
	flag := strings.ToUpper(req.Get("flag"))
	subject := req.Get("subject")
	st := s.d.Credentials()
	if typ == "" || typ == "ANY" || typ == "X509" {
		for _, c := range st.Certs() {
			if flag != "" && flag != "ANY" && flag != c.Kind.VICIFlag() {
				continue
			}
			if subject != "" && !subjectMatches(c.X509, subject) {
				continue
			}
			ev := vici.NewMessage().Set("type", "X509").Set("flag", c.Kind.VICIFlag())
			if _, ok := st.PrivateKeyFor(c.X509.PublicKey); ok {
				ev.Set("has_privkey", "yes")
			}
			ev.Set("data", string(c.X509.Raw))
			if err := stream.Stream("list-cert", ev); err != nil {
				return nil, err
			}
		}
	}
	if typ == "" || typ == "ANY" || typ == "X509_CRL" {
		for _, crl := range st.CRLs() {
			ev := vici.NewMessage().Set("type", "X509_CRL").Set("flag", "NONE").Set("data", string(crl.Raw))
			if err := stream.Stream("list-cert", ev); err != nil {
				return nil, err
			}
		}
	}
	return vici.NewMessage(), nil
}

func subjectMatches(c *x509.Certificate, subject string) bool {
	if der, err := dn.Parse(subject); err == nil && dn.Equal(der, c.RawSubject) {
		return true
	}
	return credentials.CertHasIdentity(c, credentials.Identity{Type: credentials.IDFQDN, Data: []byte(subject)})
}

// flushCaches maps flush-certs' type (strongSwan's certificate type names, or the swanctl folder
// names vici_cert_info.c accepts) to the store's caches: strongSwan's cache holds verified
// certificates (our verified chains), fetched CRLs and OCSP responses; attribute certificates and
// raw public keys are never cached.
var flushCaches = map[string]credentials.Caches{
	"": credentials.AllCaches, "ANY": credentials.AllCaches,
	"X509": credentials.CachedChains, "X509CA": credentials.CachedChains, "X509AA": credentials.CachedChains, "X509OCSP": credentials.CachedChains,
	"X509_CRL": credentials.CachedCRLs, "X509CRL": credentials.CachedCRLs, "OCSP_RESPONSE": credentials.CachedOCSP,
	"X509_AC": 0, "X509AC": 0, "PUBKEY": 0,
}

// flushCerts empties the caches of fetched and verified credentials, as strongSwan's flush-certs
// does; loaded certificates stay (clear-creds removes those).
func (s *Service) flushCerts(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	c, ok := flushCaches[strings.ToUpper(req.Get("type"))]
	if !ok {
		return nil, fmt.Errorf("flush-certs: invalid certificate type %q (expected X509, X509_AC, X509_CRL, OCSP_RESPONSE, PUBKEY or ANY)", req.Get("type"))
	}
	s.d.Credentials().FlushCaches(c)
	return success(), nil
}

// inlineCreds replaces the certificate and key data swanctl sends in load-conn (the contents of
// the files that local/remote certs, cacerts and pubkeys name) by references to the store
// ("vici:" + fingerprint or key ID), which the configuration then carries like file names.
func (s *Service) inlineCreds(req *vici.Message) error {
	st := s.d.Credentials()
	for _, conn := range req.Items() {
		if conn.Kind != vici.KindSection {
			continue
		}
		for _, round := range conn.Section.Items() {
			if round.Kind != vici.KindSection || !(strings.HasPrefix(round.Key, "local") || strings.HasPrefix(round.Key, "remote")) {
				continue
			}
			sec := round.Section
			for _, key := range []string{"certs", "cacerts"} {
				var refs []string
				for _, blob := range sec.List(key) {
					certs, err := credentials.ParseCertificates([]byte(blob))
					if err != nil {
						return fmt.Errorf("load-conn %s.%s.%s: %v", conn.Key, round.Key, key, err)
					}
					kind := credentials.EndEntity
					if key == "cacerts" {
						kind = credentials.CA
					}
					c := st.AddCert(certs[0], kind, "vici")
					refs = append(refs, credentials.StoreRef+c.Fingerprint())
				}
				if refs != nil {
					sec.SetList(key, refs...)
				}
			}
			var refs []string
			for _, blob := range sec.List("pubkeys") {
				k, _, err := credentials.ParsePublicKey([]byte(blob))
				if err != nil {
					return fmt.Errorf("load-conn %s.%s.pubkeys: %v", conn.Key, round.Key, err)
				}
				pk, err := st.AddPublicKey(k, "vici")
				if err != nil {
					return err
				}
				refs = append(refs, credentials.StoreRef+pk.ID)
			}
			if refs != nil {
				sec.SetList("pubkeys", refs...)
			}
		}
	}
	return nil
}
