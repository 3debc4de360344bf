package daemon

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/vici"
)

// VICI credential commands, as strongSwan's vici plugin answers them (src/libcharon/plugins/vici/
// README.md: load-cert, load-key, unload-key, get-keys, load-authority, unload-authority,
// get-authorities, list-authorities, list-certs, flush-certs), so that swanctl --load-creds,
// --load-authorities, --list-certs and --list-authorities work against goipsec.

// registerCredHandlers adds the credential commands to a registry (called by VICI()).
func (d *Daemon) registerCredHandlers(r *vici.Registry) {
	r.Handle("load-cert", d.viciLoadCert)
	r.Handle("load-key", d.viciLoadKey)
	r.Handle("unload-key", d.viciUnloadKey)
	r.Handle("get-keys", d.viciGetKeys)
	r.Handle("load-token", func(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
		return nil, fmt.Errorf("keys on tokens (PKCS#11) are not supported by goipsec")
	})
	r.Handle("load-authority", d.viciLoadAuthority)
	r.Handle("unload-authority", d.viciUnloadAuthority)
	r.Handle("get-authorities", d.viciGetAuthorities)
	r.Handle("list-authorities", d.viciListAuthorities)
	r.Handle("list-certs", d.viciListCerts)
	r.Handle("flush-certs", d.viciFlushCerts)
	clear := d.viciClearCreds
	r.Handle("clear-creds", func(ctx context.Context, req *vici.Message, s vici.EventStreamer) (*vici.Message, error) {
		st := d.Credentials()
		st.FlushCerts(-1)
		for _, k := range st.Keys() {
			st.RemoveKey(k.ID)
		}
		return clear(ctx, req, s)
	})
}

func success() *vici.Message { return vici.NewMessage().Set("success", "yes") }

// certFlags maps strongSwan's load-cert flag to a role.
var certFlags = map[string]credentials.CertKind{"": credentials.EndEntity, "NONE": credentials.EndEntity,
	"CA": credentials.CA, "AA": credentials.AA, "OCSP": credentials.OCSPSigner}

func (d *Daemon) viciLoadCert(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	data := []byte(req.Get("data"))
	st := d.Credentials()
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
			d.log.Info("certificate loaded over VICI", "subject", dn.String(c.RawSubject), "kind", kind.String())
		}
	case "X509_CRL":
		crl, err := credentials.ParseCRL(data)
		if err != nil {
			return nil, fmt.Errorf("load-cert: CRL: %v", err)
		}
		st.AddCRL(crl)
		d.log.Info("CRL loaded over VICI", "issuer", dn.String(crl.RawIssuer))
	case "X509_AC":
		return nil, fmt.Errorf("load-cert: attribute certificates are not supported by goipsec")
	default:
		return nil, fmt.Errorf("load-cert: unknown certificate type %q (expected X509 or X509_CRL)", req.Get("type"))
	}
	return success(), nil
}

func (d *Daemon) viciLoadKey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
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
	id, err := d.Credentials().AddKey(k, "vici")
	if err != nil {
		return nil, fmt.Errorf("load-key: %v", err)
	}
	d.log.Info("private key loaded over VICI", "id", id)
	return success().Set("id", id), nil
}

func (d *Daemon) viciUnloadKey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	id := strings.ToLower(strings.ReplaceAll(req.Get("id"), ":", ""))
	if !d.Credentials().RemoveKey(id) {
		return nil, fmt.Errorf("unload-key: no private key with id %q", req.Get("id"))
	}
	return success(), nil
}

func (d *Daemon) viciGetKeys(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var ids []string
	for _, k := range d.Credentials().Keys() {
		ids = append(ids, k.ID)
	}
	return vici.NewMessage().SetList("keys", ids...), nil
}

func (d *Daemon) viciLoadAuthority(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
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
	d.Credentials().AddAuthority(a)
	d.log.Info("authority loaded over VICI", "name", name, "ca", dn.String(a.CA.RawSubject))
	return success(), nil
}

func (d *Daemon) viciUnloadAuthority(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if !d.Credentials().RemoveAuthority(req.Get("name")) {
		return nil, fmt.Errorf("unload-authority: no authority named %q", req.Get("name"))
	}
	return success(), nil
}

func (d *Daemon) viciGetAuthorities(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var names []string
	for _, a := range d.Credentials().Authorities() {
		names = append(names, a.Name)
	}
	return vici.NewMessage().SetList("authorities", names...), nil
}

func (d *Daemon) viciListAuthorities(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	want := req.Get("name")
	for _, a := range d.Credentials().Authorities() {
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
func (d *Daemon) viciListCerts(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	typ := strings.ToUpper(req.Get("type"))
	flag := strings.ToUpper(req.Get("flag"))
	subject := req.Get("subject")
	st := d.Credentials()
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

// viciFlushCerts empties the volatile caches, as strongSwan's flush-certs does: fetched CRLs and
// OCSP responses (loaded certificates stay; clear-creds removes those).
func (d *Daemon) viciFlushCerts(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	switch t := strings.ToUpper(req.Get("type")); t {
	case "", "ANY", "X509", "X509_CRL", "OCSP_RESPONSE":
	default:
		return nil, fmt.Errorf("flush-certs: unknown type %q", req.Get("type"))
	}
	d.Credentials().FlushCaches()
	return success(), nil
}

// inlineCreds replaces the certificate and key data swanctl sends in load-conn (the contents of
// the files that local/remote certs, cacerts and pubkeys name) by references to the store
// ("vici:" + fingerprint or key ID), which the configuration then carries like file names.
func (d *Daemon) inlineCreds(req *vici.Message) error {
	st := d.Credentials()
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
					refs = append(refs, viciRef+c.Fingerprint())
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
				refs = append(refs, viciRef+pk.ID)
			}
			if refs != nil {
				sec.SetList("pubkeys", refs...)
			}
		}
	}
	return nil
}

// viciRef prefixes references to credentials loaded over VICI.
const viciRef = "vici:"

// fromStore resolves a "vici:" reference.
func (cs *credState) certFromStore(ref string) (*x509.Certificate, bool) {
	fp, ok := strings.CutPrefix(ref, viciRef)
	if !ok {
		return nil, false
	}
	if _, err := hex.DecodeString(fp); err != nil {
		return nil, false
	}
	for _, c := range cs.store.Certs() {
		if c.Fingerprint() == fp {
			return c.X509, true
		}
	}
	return nil, false
}
