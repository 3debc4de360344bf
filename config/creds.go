package config

import (
	"encoding/asn1"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// CertSettings are the certificate settings of an authentication round.
type CertSettings struct {
	// Certs: local.certs (ours, the first is used) or remote.certs (pinned peer certificates),
	// as written: relative to x509/ or absolute.
	Certs []string
	// PubKeys: raw public keys, relative to pubkey/ or absolute.
	PubKeys []string
	// CACerts (remote): the peer's chain must lead to one of these (relative to x509ca/).
	CACerts []string
	// CAID (remote): a CA in the peer's chain must have this identity.
	CAID Identity
	// CertPolicy (remote): policy OIDs the peer's certificate must carry.
	CertPolicy []asn1.ObjectIdentifier
	// Revocation (remote): strict, ifuri or relaxed.
	Revocation string
	// Refs are the files certs, pubkeys and cacerts name, with where they are named.
	Refs []CredentialRef
}

// CredentialRef is a credential file a setting names, and where: `goipsec check` reads each one
// and reports a missing or unreadable file at the setting's line.
type CredentialRef struct {
	Setting string // the setting's path, e.g. connections.gw.local.certs
	File    string // where the setting is
	Line    int
	// Folder is the swanctl folder a relative Name is in: x509, x509ca, pubkey, private, rsa,
	// ecdsa, pkcs8 or pkcs12.
	Folder string
	Name   string // as written: relative to Folder, or absolute
}

// CredentialRefs lists every credential file the configuration names, in order: the
// connections' certs, pubkeys and cacerts, the authorities' CA certificates and the key files of
// the secrets section.
func (c *Config) CredentialRefs() []CredentialRef {
	var out []CredentialRef
	for _, conn := range c.Connections {
		out = append(out, conn.Local.Refs...)
		out = append(out, conn.Remote.Refs...)
	}
	for _, a := range c.Authorities {
		if a.Ref.Name != "" {
			out = append(out, a.Ref)
		}
	}
	for _, k := range c.Secrets.Keys {
		if k.Ref.Name != "" {
			out = append(out, k.Ref)
		}
	}
	return out
}

// Passphrase returns the passphrase the secrets section gives for a key file (folder is private,
// rsa, ecdsa, pkcs8 or pkcs12; file as the folder lists it, or as configured), or nil.
func (s Secrets) Passphrase(folder, file string) []byte {
	for _, ks := range s.Keys {
		if ks.Type == folder && (filepath.Clean(ks.Path) == filepath.Clean(file) || filepath.Base(ks.Path) == file) {
			return ks.Secret
		}
	}
	return nil
}

// KeySecret is the passphrase of an encrypted private key (secrets.private-<name>, rsa-, ecdsa-,
// pkcs8-, pkcs12-).
type KeySecret struct {
	Name   string
	File   string // the file as written
	Line   int
	Type   string // private, rsa, ecdsa, pkcs8 or pkcs12: the folder the file is relative to
	Path   string // the key file, relative to the folder or absolute
	Secret []byte
	Ref    CredentialRef // the file setting
}

// Authority is an authorities.<name> section.
type Authority struct {
	Name        string
	File        string
	Line        int
	CACert      string // relative to x509ca/ or absolute
	CRLURIs     []string
	OCSPURIs    []string
	CertURIBase string
	Ref         CredentialRef // the cacert (or file) setting
}

// keyFolders are the secrets types that hold key passphrases (and the folders of swanctl.conf's
// directory they refer to).
var keyFolders = []string{"private", "rsa", "ecdsa", "pkcs8", "pkcs12"}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// refs lists the files a comma-separated setting names.
func refs(sec *Section, key, folder string) []CredentialRef {
	kv := explicit(sec, key)
	if kv == nil {
		return nil
	}
	var out []CredentialRef
	for _, name := range splitComma(kv.Value) {
		out = append(out, ref(kv, folder, name))
	}
	return out
}

func ref(kv *Setting, folder, name string) CredentialRef {
	return CredentialRef{Setting: kv.Path, File: kv.File, Line: kv.Line, Folder: folder, Name: name}
}

func (l *loader) certSettings(sec *Section, pattern string, isLocal bool) CertSettings {
	var c CertSettings
	list := func(key string) []string {
		if kv := explicit(sec, key); kv != nil {
			return splitComma(kv.Value)
		}
		return nil
	}
	c.Certs = list("certs")
	c.PubKeys = list("pubkeys")
	c.Refs = append(refs(sec, "certs", "x509"), refs(sec, "pubkeys", "pubkey")...)
	if isLocal {
		slices.SortStableFunc(c.Refs, func(a, b CredentialRef) int { return a.Line - b.Line })
		return c
	}
	c.CACerts = list("cacerts")
	c.Refs = append(c.Refs, refs(sec, "cacerts", "x509ca")...)
	slices.SortStableFunc(c.Refs, func(a, b CredentialRef) int { return a.Line - b.Line }) // as in the file
	if kv := explicit(sec, "ca_id"); kv != nil {
		c.CAID = parsed(l, sec, pattern, "ca_id", parseIdentity)
	}
	for _, f := range list("cert_policy") {
		oid, err := parseOID(f)
		if err != nil {
			l.valueError(sec.Setting("cert_policy"), fmt.Errorf("invalid OID %q", f))
			continue
		}
		c.CertPolicy = append(c.CertPolicy, oid)
	}
	c.Revocation = l.enum(sec, pattern, "revocation", "strict", "ifuri", "relaxed")
	return c
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, f := range strings.Split(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("invalid OID %q", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("invalid OID %q", s)
	}
	return oid, nil
}

// checkPubkeyConstraints checks the words of a pubkey auth value (the full parse, with its
// meaning, is ike/auth.ParseConstraints): key types, key sizes after a key type, hashes, and an
// ike: part.
func checkPubkeyConstraints(s string) error {
	for _, part := range strings.Split(s, "ike:") {
		part = strings.Trim(part, "-")
		if part == "" {
			continue
		}
		afterType := false
		for _, tok := range strings.Split(part, "-") {
			switch tok {
			case "pubkey", "rsa", "rsa/pss", "ecdsa", "ed25519":
				afterType = true
			case "sha1", "sha256", "sha384", "sha512", "sha2_256", "sha2_384", "sha2_512":
			case "ed448", "bliss":
				return fmt.Errorf("auth = %s: %s keys are not supported by goipsec", s, tok)
			default:
				if n, err := strconv.Atoi(tok); err != nil || n <= 0 || !afterType {
					return fmt.Errorf("auth = %s: unknown constraint %q (expected pubkey, rsa, rsa/pss, ecdsa or ed25519, a key size after a key type, sha256, sha384 or sha512)", s, tok)
				}
				afterType = false
			}
		}
	}
	return nil
}

func (l *loader) keySecrets(sec *Section) []*KeySecret {
	var out []*KeySecret
	for _, typ := range keyFolders {
		pattern := "secrets." + typ + "<suffix>"
		for _, p := range sectionsOf(sec, "secrets", pattern) {
			l.check(p, pattern)
			ks := &KeySecret{Name: p.Name, File: p.File, Line: p.Line, Type: typ}
			if kv := explicit(p, "file"); kv == nil {
				l.errorAt(p.File, p.Line, "%s: file is required (the key file in %s/ this passphrase is for)", p.Path, typ)
			} else {
				ks.Path = kv.Value
				ks.Ref = ref(kv, typ, kv.Value)
			}
			ks.Secret = l.requiredSecret(p)
			out = append(out, ks)
		}
	}
	return out
}

func (l *loader) authorities(sec *Section) []*Authority {
	if sec == nil {
		return nil
	}
	l.check(sec, "authorities")
	const pattern = "authorities.<name>"
	var out []*Authority
	for _, p := range sectionsOf(sec, "authorities", pattern) {
		l.check(p, pattern)
		a := &Authority{Name: p.Name, File: p.File, Line: p.Line}
		cacert, file := explicit(p, "cacert"), explicit(p, "file")
		switch {
		case cacert != nil && file != nil:
			l.errorAt(file.File, file.Line, "%s: give cacert or file, not both", p.Path)
		case cacert != nil:
			a.CACert = cacert.Value
			a.Ref = ref(cacert, "x509ca", cacert.Value)
		case file != nil:
			a.CACert = file.Value
			a.Ref = ref(file, "x509ca", file.Value)
		default:
			l.errorAt(p.File, p.Line, "%s: cacert is required (the CA certificate in x509ca/)", p.Path)
		}
		for _, key := range []string{"crl_uris", "ocsp_uris"} {
			kv := explicit(p, key)
			if kv == nil {
				continue
			}
			uris := splitComma(kv.Value)
			for _, u := range uris {
				if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					l.valueError(kv, fmt.Errorf("URI %q: only http:// and https:// are supported", u))
				}
			}
			if key == "crl_uris" {
				a.CRLURIs = uris
			} else {
				a.OCSPURIs = uris
			}
		}
		if kv := explicit(p, "cert_uri_base"); kv != nil {
			a.CertURIBase = kv.Value
		}
		out = append(out, a)
	}
	return out
}
