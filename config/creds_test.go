package config

import (
	"encoding/asn1"
	"testing"

	"github.com/goipsec/goipsec/credentials/dn"
)

// strongSwan's configuration quickstart (docs.strongswan.org, "Site-to-Site Case", gateway moon),
// with mobike = no, an authority and key passphrases: it loads unchanged.
const certConfig = `
connections {
    net-net {
        remote_addrs = 192.168.0.2
        mobike = no
        send_cert = always
        local {
            auth = pubkey
            certs = moonCert.pem
        }
        remote {
            auth = rsa/pss-sha256
            id = "C=CH, O=strongSwan, CN=sun.strongswan.org"
            cacerts = strongswanCert.pem
            ca_id = "C=CH, O=strongSwan, CN=strongSwan Root CA"
            cert_policy = 1.3.6.1.4.1.36906.1.1.1, 1.3.6.1.4.1.36906.1.1.2
            revocation = strict
        }
        children {
            net-net {
                local_ts  = 10.1.0.0/16
                remote_ts = 10.2.0.0/16
                start_action = trap
            }
        }
    }
    rw {
        local {
            auth = ecdsa-384-sha384
            id = moon.strongswan.org
            pubkeys = moon.pub
        }
        remote {
            id = "C=CH, O=strongSwan, CN=*"
            pubkeys = carol.pub, dave.pub
        }
    }
}
authorities {
    strongswan {
        cacert = strongswanCert.pem
        crl_uris = http://crl.strongswan.org/strongswan.crl
        ocsp_uris = http://ocsp.strongswan.org:8880
    }
}
secrets {
    private-moon {
        file = moonKey.pem
        secret = "nH5ZQEWtku0RJEZ6"
    }
    pkcs12-gw {
        file = gw.p12
        secret = 0x6b6579
    }
}
`

func TestCertificateConfig(t *testing.T) {
	cfg := mustLoad(t, certConfig)
	c := cfg.Connections[0]
	if c.Local.Method != AuthPubkey || c.Local.Constraints != "pubkey" || len(c.Local.Certs) != 1 || c.Local.Certs[0] != "moonCert.pem" {
		t.Errorf("local %+v", c.Local)
	}
	if !c.Local.ID.IsAny() || c.SendCert != "always" {
		t.Errorf("local id %v, send_cert %s", c.Local.ID, c.SendCert)
	}
	r := c.Remote
	want, _ := dn.Parse("C=CH, O=strongSwan, CN=sun.strongswan.org")
	if r.Method != AuthPubkey || r.Constraints != "rsa/pss-sha256" || r.ID.Type != IDASN1DN || string(r.ID.Data) != string(want) {
		t.Errorf("remote %+v", r)
	}
	if len(r.CACerts) != 1 || r.CAID.Type != IDASN1DN || r.Revocation != "strict" || len(r.CertPolicy) != 2 || !r.CertPolicy[1].Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 36906, 1, 1, 2}) {
		t.Errorf("remote cert settings %+v", r.CertSettings)
	}
	rw := cfg.Connections[1]
	if rw.Local.Constraints != "ecdsa-384-sha384" || rw.Local.PubKeys[0] != "moon.pub" || len(rw.Remote.PubKeys) != 2 || rw.Remote.Method != AuthPubkey || rw.Remote.Revocation != "relaxed" {
		t.Errorf("rw %+v %+v", rw.Local, rw.Remote)
	}
	if ok, n := dn.Match(rw.Remote.ID.Data, want); !ok || n != 1 {
		t.Errorf("remote id pattern does not match sun: %v", rw.Remote.ID)
	}
	if len(cfg.Authorities) != 1 || cfg.Authorities[0].CACert != "strongswanCert.pem" || cfg.Authorities[0].OCSPURIs[0] != "http://ocsp.strongswan.org:8880" {
		t.Errorf("authorities %+v", cfg.Authorities)
	}
	ks := cfg.Secrets.Keys
	if len(ks) != 2 || ks[0].Type != "private" || ks[0].Path != "moonKey.pem" || string(ks[0].Secret) != "nH5ZQEWtku0RJEZ6" || ks[1].Type != "pkcs12" || string(ks[1].Secret) != "key" {
		t.Errorf("key secrets %+v", ks)
	}
}
