package profile

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// strongSwan for Android reads .sswan files: JSON naming the gateway, the authentication type and
// the proposals in strongSwan's keywords (it implements what strongSwan does, so the gateway's
// first proposal is written as it is). Its defaults are strongSwan's (AES-GCM, AES-CBC, ChaCha20,
// SHA-2, ECP, Curve25519, MODP ≥ 2048): nothing legacy to opt out of. It has no IKEv2 PSK.
type sswan struct {
	UUID        string      `json:"uuid"`
	Name        string      `json:"name"`
	Type        string      `json:"type"`
	Remote      sswanRemote `json:"remote"`
	Local       *sswanLocal `json:"local,omitempty"`
	IKEProposal string      `json:"ike-proposal"`
	ESPProposal string      `json:"esp-proposal"`
	// split-tunneling: 1 blocks IPv4, 2 blocks IPv6 traffic outside the tunnel.
	SplitTunneling *sswanSplit `json:"split-tunneling,omitempty"`
}

type sswanRemote struct {
	Addr string `json:"addr"`
	ID   string `json:"id,omitempty"`
	Cert string `json:"cert,omitempty"`
}

type sswanLocal struct {
	EAPID string `json:"eap_id,omitempty"`
}

type sswanSplit struct {
	Subnets string `json:"subnets,omitempty"`
}

// SSwan returns a strongSwan for Android profile.
func SSwan(g *Gateway) ([]byte, error) {
	if len(g.IKE) == 0 || len(g.ESP) == 0 {
		return nil, errors.New("the gateway has no proposals")
	}
	p := sswan{UUID: uuid(), Name: g.Name, Remote: sswanRemote{Addr: g.Server, ID: g.ServerID},
		IKEProposal: firstKeywords(g.IKE[0].String()), ESPProposal: firstKeywords(g.ESP[0].String())}
	switch g.Auth {
	case AuthEAP:
		p.Type, p.Local = "ikev2-eap", &sswanLocal{EAPID: g.User}
	case AuthEAPTLS:
		p.Type = "ikev2-eap-tls"
	case AuthCert:
		p.Type = "ikev2-cert"
	case AuthCertEAP:
		p.Type, p.Local = "ikev2-cert-eap", &sswanLocal{EAPID: g.User}
	default:
		return nil, errors.New("strongSwan for Android has no IKEv2 PSK authentication (use eap, eap-tls, cert or cert-eap)")
	}
	if g.CACert != nil {
		p.Remote.Cert = base64.StdEncoding.EncodeToString(g.CACert)
	}
	return json.MarshalIndent(p, "", "  ")
}

// firstKeywords keeps a proposal's keyword form (aes256gcm16-prfsha256-x25519).
func firstKeywords(s string) string { return strings.TrimSpace(s) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
