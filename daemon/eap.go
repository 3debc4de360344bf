package daemon

import (
	"fmt"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/eap"
)

// dynamicMethods are what remote.auth = eap-dynamic offers, preferred first (the client may Nak
// to another): the methods with mutual authentication and a key before EAP-MD5.
var dynamicMethods = []eap.Type{eap.TypeMSCHAPv2, eap.TypeMD5}

// userPassword finds an EAP user's password in the secrets of the running configuration.
func (d *Daemon) userPassword(user string) ([]byte, bool) {
	snap := d.peers.Load()
	if snap == nil || snap.secrets == nil {
		return nil, false
	}
	return snap.secrets.UserPassword(user)
}

// attachEAP gives a connection its EAP client (local rounds) and server (remote rounds).
func (d *Daemon) attachEAP(conn *connection) error {
	c := conn.cfg
	where := fmt.Sprintf("%s:%d: connection %s", c.File, c.Line, c.Name)
	for i, r := range c.LocalRounds {
		if r.Method != config.AuthEAP {
			continue
		}
		var methods []eap.Type
		if r.EAP != "" {
			t, ok := eap.ParseType(r.EAP)
			if !ok {
				return fmt.Errorf("%s: %s.auth = eap-%s is not supported as EAP client (eap, eap-mschapv2, eap-md5, eap-tls, eap-ttls)", where, r.Section, r.EAP)
			}
			methods = []eap.Type{t}
		}
		id := r.EAPID
		if !r.EAPIDSet || id.IsAny() {
			id = r.ID
		}
		identity := id.Text
		if id.IsAny() {
			identity = ""
		}
		name := c.Name
		spec := &ike.EAPClientSpec{Second: i > 0, EAPOnly: len(c.RemoteRounds) > 0 && c.RemoteRounds[0].Method == config.AuthEAP}
		if i > 0 {
			spec.ID = toIKEID(id)
		}
		aaa := r.AAAID
		spec.New = func() *eap.Client {
			user := identity
			if user == "" {
				user = conn.peer.LocalID.String()
			}
			cc := eap.ClientConfig{Identity: user, Methods: methods, Password: func() ([]byte, bool) {
				pw, ok := d.userPassword(user)
				if !ok {
					d.log.Warn("no EAP password for our identity (secrets.eap)", "conn", name, "eap_id", user)
				}
				return pw, ok
			}}
			if len(methods) == 0 || methods[0] == eap.TypeTLS || methods[0] == eap.TypeTTLS {
				withCert := len(methods) == 0 || methods[0] == eap.TypeTLS
				tc, err := d.clientTLS(conn, user, aaa, withCert) // eaptls.go
				if err != nil && len(methods) > 0 {
					d.log.Warn("EAP-TLS/TTLS credentials missing", "conn", name, "err", err)
				}
				cc.TLS = tc
			}
			return eap.NewClient(cc)
		}
		conn.peer.LocalEAP = spec
	}
	for i, r := range c.RemoteRounds {
		if r.Method != config.AuthEAP {
			continue
		}
		var methods []eap.Type
		switch r.EAP {
		case "dynamic", "":
			methods = dynamicMethods
		case "radius":
			ask := r.EAPIDSet && r.EAPID.IsAny()
			fixed := ""
			if r.EAPIDSet && !r.EAPID.IsAny() {
				fixed = r.EAPID.Text
			}
			conn.peer.RemoteEAP = &ike.EAPServerSpec{Second: i > 0, Blocking: true, New: d.radiusEAP(ask, fixed)}
			continue
		default:
			t, ok := eap.ParseType(r.EAP)
			if !ok {
				return fmt.Errorf("%s: %s.auth = eap-%s is not supported as EAP server (eap-mschapv2, eap-md5, eap-tls, eap-ttls, eap-dynamic, eap-radius)", where, r.Section, r.EAP)
			}
			methods = []eap.Type{t}
		}
		usesTLS := methods[0] == eap.TypeTLS || methods[0] == eap.TypeTTLS
		ask := r.EAPIDSet && r.EAPID.IsAny()
		fixed := ""
		if r.EAPIDSet && !r.EAPID.IsAny() {
			fixed = r.EAPID.Text
		}
		server := conn.peer.LocalID.String()
		// TLS-based methods verify certificates (maybe fetching CRLs) and compute a handshake: their
		// steps run off the IKE SA, like a RADIUS round trip.
		conn.peer.RemoteEAP = &ike.EAPServerSpec{Second: i > 0, EAPOnly: len(c.LocalRounds) > 0 && c.LocalRounds[0].Method == config.AuthEAP,
			Blocking: usesTLS,
			New: func(peer ike.EAPPeer) (ike.EAPServer, error) {
				identity := fixed
				if identity == "" && !ask {
					identity = peer.ID.String()
				}
				sc := eap.ServerConfig{Methods: methods, AskIdentity: ask, Identity: identity, Password: d.userPassword, ServerName: server}
				if usesTLS {
					sc.TLSFor = func(user string) (*eap.TLSConfig, error) { return d.serverTLS(conn, user) } // eaptls.go
				}
				return eap.NewServer(sc)
			}}
	}
	return nil
}
