package strongswan

import (
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials/pki"
)

// pairCredentials makes a CA and a certificate for each side (identities and SANs are the outer
// addresses, as in the PSK scenarios), and returns every PEM file by name for the recording and
// each charon's swanctl files.
func pairCredentials(t *testing.T, kt pki.KeyType) (all, left, right map[string][]byte) {
	t.Helper()
	now := time.Now()
	caKey, err := pki.GenerateKey(pki.ECDSA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Issue(pki.Request{Subject: "C=CH, O=goipsec lab, CN=Lab CA", CA: true, PathLen: -1}, caKey.Public(), nil, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	all = map[string][]byte{"ca.pem": pki.CertPEM(ca)}
	left, right = map[string][]byte{"x509ca/ca.pem": all["ca.pem"]}, map[string][]byte{"x509ca/ca.pem": all["ca.pem"]}
	for _, side := range []struct {
		name, addr string
		files      map[string][]byte
	}{{"left", leftOuter, left}, {"right", rightOuter, right}} {
		k, err := pki.GenerateKey(kt, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.Issue(pki.Request{Subject: "C=CH, O=goipsec lab, CN=" + side.addr, SANs: []string{side.addr}}, k.Public(), ca, caKey, now)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.KeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		all[side.name+".pem"], all[side.name+".key"] = pki.CertPEM(c), kp
		side.files["x509/"+side.name+".pem"], side.files["private/"+side.name+".key"] = pki.CertPEM(c), kp
	}
	return all, left, right
}

// certConf turns a PSK swanctl.conf of swanctlConf into certificate authentication: local
// certificate and auth, remote auth, the secrets section dropped.
func certConf(conf, auth, local, remote string) string {
	name := "left"
	if local == rightOuter {
		name = "right"
	}
	conf = strings.Replace(conf, "    local {\n      auth = psk\n", "    local {\n      auth = "+auth+"\n      certs = "+name+".pem\n", 1)
	conf = strings.Replace(conf, "    remote {\n      auth = psk\n", "    remote {\n      auth = pubkey\n", 1)
	if i := strings.Index(conf, "secrets {"); i >= 0 {
		conf = conf[:i]
	}
	return conf
}
