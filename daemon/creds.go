package daemon

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/auth"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/status"
)

// credState is the daemon's credential store and what the status reports about it. The store
// lives as long as the daemon: a reload loads the credential folders again (new and changed files
// are picked up; a removed file's credentials stay until flush-certs or a restart), and VICI adds
// to it.
type credState struct {
	store *credentials.Store
	dir   string // the swanctl directory: the folder of the main configuration file

	mu sync.Mutex
	// peers records the certificate each connection's peer last authenticated with.
	peers map[string]peerCert
	// auths are the connections' authenticators, for status.
	auths map[string]*auth.Authenticator
}

type peerCert struct {
	id    string
	chain []*x509.Certificate
	when  time.Time
}

func (d *Daemon) credStore() *credState {
	d.credOnce.Do(func() {
		d.creds = &credState{store: credentials.New(credentials.Options{}), peers: map[string]peerCert{}, auths: map[string]*auth.Authenticator{}}
	})
	return d.creds
}

// Credentials is the daemon's credential store.
func (d *Daemon) Credentials() *credentials.Store { return d.credStore().store }

// loadCredentials loads the swanctl folders next to the main configuration file and the
// authorities section. A file in the folders that cannot be loaded is logged and the rest is
// loaded (as swanctl --load-creds does); the errors returned are the configuration's own
// (authorities naming files that do not load), with file and line.
func (d *Daemon) loadCredentials(cfg *config.Config) []error {
	cs := d.credStore()
	if len(cfg.Files) > 0 {
		cs.dir = filepath.Dir(cfg.Files[0])
	}
	if cs.dir != "" {
		n, lerrs := cs.store.LoadDir(cs.dir, cfg.Secrets.Passphrase)
		for _, e := range lerrs {
			d.log.Warn("credential not loaded", "why", e.Error())
		}
		if n != (credentials.Loaded{}) {
			d.log.Info("credentials loaded", "dir", cs.dir, "certs", n.Certs, "keys", n.Keys, "pubkeys", n.PublicKeys, "crls", n.CRLs)
		}
	}
	var errs []error
	for _, a := range cfg.Authorities {
		ca, err := cs.loadCert("x509ca", a.CACert)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: authorities.%s: %w", a.File, a.Line, a.Name, err))
			continue
		}
		cs.store.AddAuthority(&credentials.Authority{Name: a.Name, CA: ca, CRLURIs: a.CRLURIs, OCSPURIs: a.OCSPURIs, CertURIBase: a.CertURIBase, Source: a.File})
	}
	return errs
}

// path resolves a configured credential file: absolute, or relative to its folder.
func (cs *credState) path(folder, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(cs.dir, folder, file)
}

func (cs *credState) loadCert(folder, file string) (*x509.Certificate, error) {
	if c, ok := cs.certFromStore(file); ok {
		return c, nil
	}
	certs, err := credentials.LoadCertFile(cs.path(folder, file))
	if err != nil {
		return nil, err
	}
	kind := credentials.EndEntity
	if folder == "x509ca" {
		kind = credentials.CA
	}
	cs.store.AddCert(certs[0], kind, cs.path(folder, file))
	return certs[0], nil
}

func (cs *credState) loadPubKey(file string) (crypto.PublicKey, error) {
	if id, ok := strings.CutPrefix(file, credentials.StoreRef); ok {
		if pk := cs.store.PublicKeyByID(id); pk != nil {
			return pk.Key, nil
		}
	}
	data, err := credentials.ReadFile(cs.path("pubkey", file))
	if err != nil {
		return nil, err
	}
	k, _, err := credentials.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cs.path("pubkey", file), err)
	}
	return k, nil
}

func toCredID(id config.Identity) credentials.Identity {
	return credentials.Identity{Type: credentials.IDType(id.Type), Data: id.Data}
}

// attachAuthenticator gives a connection that authenticates with public keys on either side its
// Authenticator (PSK-only connections keep the PSK path). Without a configured local identity, a
// certificate's subject is our identity, as in strongSwan; a remote identity with wildcards is
// not sent as IDr and is matched by the Authenticator.
func (d *Daemon) attachAuthenticator(conn *connection, cfg *config.Config) error {
	c := conn.cfg
	if c.Local.Method != config.AuthPubkey && c.Remote.Method != config.AuthPubkey {
		return nil
	}
	cs := d.credStore()
	where := fmt.Sprintf("%s:%d: connection %s", c.File, c.Line, c.Name)
	ac := auth.Config{Conn: c.Name, Store: cs.store, SendCertReq: c.SendCertReq}
	switch c.SendCert {
	case "always":
		ac.SendCert = auth.SendCertAlways
	case "never":
		ac.SendCert = auth.SendCertNever
	}
	var err error
	if c.Local.Method == config.AuthPubkey {
		ac.Local.Method = auth.MethodPubkey
		if ac.Local.Constraints, err = auth.ParseConstraints(c.Local.Constraints); err != nil {
			return fmt.Errorf("%s: local: %w", where, err)
		}
		for _, f := range c.Local.Certs {
			cert, err := cs.loadCert("x509", f)
			if err != nil {
				return fmt.Errorf("%s: local.certs: %w", where, err)
			}
			ac.Local.Certs = append(ac.Local.Certs, cert)
		}
		if len(c.Local.PubKeys) > 0 {
			if ac.Local.PubKey, err = cs.loadPubKey(c.Local.PubKeys[0]); err != nil {
				return fmt.Errorf("%s: local.pubkeys: %w", where, err)
			}
		}
	}
	r := c.Remote
	ac.Remote.ID = toCredID(r.ID)
	if r.Method == config.AuthPubkey {
		ac.Remote.Method = auth.MethodPubkey
		if ac.Remote.Constraints, err = auth.ParseConstraints(r.Constraints); err != nil {
			return fmt.Errorf("%s: remote: %w", where, err)
		}
		for _, f := range r.PubKeys {
			k, err := cs.loadPubKey(f)
			if err != nil {
				return fmt.Errorf("%s: remote.pubkeys: %w", where, err)
			}
			ac.Remote.PubKeys = append(ac.Remote.PubKeys, k)
		}
		for _, f := range r.Certs {
			cert, err := cs.loadCert("x509", f)
			if err != nil {
				return fmt.Errorf("%s: remote.certs: %w", where, err)
			}
			ac.Remote.Policy.Certs = append(ac.Remote.Policy.Certs, cert)
		}
		for _, f := range r.CACerts {
			cert, err := cs.loadCert("x509ca", f)
			if err != nil {
				return fmt.Errorf("%s: remote.cacerts: %w", where, err)
			}
			ac.Remote.Policy.CACerts = append(ac.Remote.Policy.CACerts, cert)
		}
		ac.Remote.Policy.CAID = toCredID(r.CAID)
		ac.Remote.Policy.CertPolicies = r.CertPolicy
		if ac.Remote.Policy.Revocation, err = credentials.ParseRevocation(r.Revocation); err != nil {
			return fmt.Errorf("%s: remote.revocation: %w", where, err)
		}
	}
	name := c.Name
	ac.Verified = func(peer credentials.Identity, chain []*x509.Certificate) {
		cs.mu.Lock()
		cs.peers[name] = peerCert{id: peer.String(), chain: chain, when: time.Now()}
		cs.mu.Unlock()
	}
	a := auth.New(ac)
	conn.peer.Authenticator = a
	if conn.peer.LocalID.IsAny() && ac.Local.Method == auth.MethodPubkey && ac.Local.PubKey == nil {
		if cert := a.LocalCert(conn.peer.LocalID); cert != nil {
			conn.peer.LocalID = ike.Identity{Type: wire.IDDERASN1DN, Data: cert.RawSubject}
		} else {
			d.log.Warn("no certificate for connection yet (none in local.certs or x509/); it authenticates once one is loaded", "conn", c.Name)
		}
	}
	if toCredID(r.ID).IsPattern() {
		conn.peer.RemoteID = ike.Identity{}
	}
	cs.mu.Lock()
	cs.auths[c.Name] = a
	cs.mu.Unlock()
	return nil
}

// certKinds maps the store's roles to the status schema's kinds.
var certKinds = map[credentials.CertKind]string{credentials.EndEntity: status.CertEndEntity, credentials.CA: status.CertCA,
	credentials.AA: status.CertAA, credentials.OCSPSigner: status.CertOCSPSigner}

// CertStatuses lists the loaded certificates and the peers' certificates seen last, for status,
// doctor and metrics.
func (d *Daemon) CertStatuses() []status.Certificate {
	cs := d.credStore()
	now := time.Now()
	mk := func(c *x509.Certificate, kind, source string) status.Certificate {
		st := status.Certificate{Subject: dn.String(c.RawSubject), Issuer: dn.String(c.RawIssuer), Serial: fmt.Sprintf("%x", c.SerialNumber),
			Kind: kind, Source: source, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
			ExpiresInSeconds: int64(c.NotAfter.Sub(now) / time.Second), AltNames: []string{}, UsedBy: []string{}}
		_, st.HasPrivateKey = cs.store.PrivateKeyFor(c.PublicKey)
		st.AltNames = append(st.AltNames, c.DNSNames...)
		st.AltNames = append(st.AltNames, c.EmailAddresses...)
		for _, ip := range c.IPAddresses {
			st.AltNames = append(st.AltNames, ip.String())
		}
		return st
	}
	out := []status.Certificate{}
	index := map[string]int{}
	for _, c := range cs.store.Certs() {
		index[c.Fingerprint()] = len(out)
		out = append(out, mk(c.X509, certKinds[c.Kind], c.Source))
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, name := range sortedKeys(cs.auths) {
		if cert := cs.auths[name].LocalCertInUse(); cert != nil {
			if i, ok := index[(&credentials.Cert{X509: cert}).Fingerprint()]; ok {
				out[i].UsedBy = append(out[i].UsedBy, name+" (local)")
			}
		}
	}
	for _, name := range sortedKeys(cs.peers) {
		p := cs.peers[name]
		if len(p.chain) == 0 {
			continue
		}
		if i, ok := index[(&credentials.Cert{X509: p.chain[0]}).Fingerprint()]; ok {
			out[i].UsedBy = append(out[i].UsedBy, name+" (peer "+p.id+")")
			continue
		}
		st := mk(p.chain[0], status.CertPeer, "IKE from "+p.id)
		st.UsedBy = []string{name + " (peer " + p.id + ")"}
		out = append(out, st)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Credentials answers control.Daemon: the store the VICI credential commands work on.
func (p controlPort) Credentials() *credentials.Store { return p.d.Credentials() }

// certFromStore resolves a reference to a certificate loaded over VICI (inline in load-conn).
func (cs *credState) certFromStore(ref string) (*x509.Certificate, bool) {
	fp, ok := strings.CutPrefix(ref, credentials.StoreRef)
	if !ok {
		return nil, false
	}
	for _, c := range cs.store.Certs() {
		if c.Fingerprint() == fp {
			return c.X509, true
		}
	}
	return nil, false
}
