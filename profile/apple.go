package profile

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"

	"github.com/goipsec/goipsec/proposal"
)

// Apple's IKEv2 VPN payload (Apple's Configuration Profile Reference, "VPN.IKEv2"). Its defaults
// when a profile names no algorithms: AES-256 (CBC), SHA2-256, Diffie-Hellman group 14
// (MODP-2048) for IKE and the Child SA, no PFS — which a goipsec gateway accepts only when its
// proposals name modp2048 (its default proposals do not). The profile therefore always names the
// algorithms.
var apple = &platform{
	name: "Apple iOS/macOS",
	encr: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "AES-256-GCM", {proposal.EncrAESGCM16, 128}: "AES-128-GCM",
		{proposal.EncrChaCha20Poly1305, 0}: "ChaCha20Poly1305",
		{proposal.EncrAESCBC, 256}:         "AES-256", {proposal.EncrAESCBC, 128}: "AES-128",
	},
	integ: map[uint16]string{proposal.PRFHMACSHA2256: "SHA2-256", proposal.PRFHMACSHA2384: "SHA2-384", proposal.PRFHMACSHA2512: "SHA2-512"},
	group: map[uint16]string{31: "31", 19: "19", 20: "20", 21: "21", 14: "14", 15: "15", 16: "16"},
	espEncr: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "AES-256-GCM", {proposal.EncrAESGCM16, 128}: "AES-128-GCM",
		{proposal.EncrChaCha20Poly1305, 0}: "ChaCha20Poly1305",
		{proposal.EncrAESCBC, 256}:         "AES-256", {proposal.EncrAESCBC, 128}: "AES-128",
	},
	espInteg: map[uint16]string{proposal.IntegHMACSHA2256128: "SHA2-256", proposal.IntegHMACSHA2384192: "SHA2-384", proposal.IntegHMACSHA2512256: "SHA2-512"},
	aeadInteg: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "SHA2-256", {proposal.EncrAESGCM16, 128}: "SHA2-256", {proposal.EncrChaCha20Poly1305, 0}: "SHA2-256",
	},
	pfs: map[uint16]string{0: "", 31: "31", 19: "19", 20: "20", 21: "21", 14: "14", 15: "15", 16: "16"},
}

// plist values, written as Apple's property list XML.
type (
	pdict []pkv
	pkv   struct {
		k string
		v any
	}
)

func writePlist(b *bytes.Buffer, v any, indent string) {
	esc := func(s string) string {
		var e bytes.Buffer
		xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	switch v := v.(type) {
	case pdict:
		b.WriteString(indent + "<dict>\n")
		for _, kv := range v {
			fmt.Fprintf(b, "%s\t<key>%s</key>\n", indent, esc(kv.k))
			writePlist(b, kv.v, indent+"\t")
		}
		b.WriteString(indent + "</dict>\n")
	case []any:
		b.WriteString(indent + "<array>\n")
		for _, x := range v {
			writePlist(b, x, indent+"\t")
		}
		b.WriteString(indent + "</array>\n")
	case string:
		fmt.Fprintf(b, "%s<string>%s</string>\n", indent, esc(v))
	case int:
		fmt.Fprintf(b, "%s<integer>%d</integer>\n", indent, v)
	case bool:
		if v {
			b.WriteString(indent + "<true/>\n")
		} else {
			b.WriteString(indent + "<false/>\n")
		}
	case []byte:
		fmt.Fprintf(b, "%s<data>%s</data>\n", indent, base64.StdEncoding.EncodeToString(v))
	}
}

// Apple returns a .mobileconfig (an unsigned configuration profile) for the gateway.
func Apple(g *Gateway) ([]byte, error) {
	c, err := apple.pick(g)
	if err != nil {
		return nil, err
	}
	group, _ := strconv.Atoi(c.group)
	sa := func(encr, integ string, dh int) pdict {
		return pdict{{"EncryptionAlgorithm", encr}, {"IntegrityAlgorithm", integ}, {"DiffieHellmanGroup", dh}, {"LifeTimeInMinutes", 1440}}
	}
	childDH := group
	if c.pfsGroup != "" {
		childDH, _ = strconv.Atoi(c.pfsGroup)
	}
	ikev2 := pdict{
		{"RemoteAddress", g.Server},
		{"RemoteIdentifier", g.ServerID},
		{"LocalIdentifier", g.User},
		{"ServerCertificateIssuerCommonName", ""},
		{"IKESecurityAssociationParameters", sa(c.encr, c.integ, group)},
		{"ChildSecurityAssociationParameters", sa(c.espEncr, c.espInteg, childDH)},
		{"EnablePFS", c.pfsGroup != ""},
		{"DeadPeerDetectionRate", "Medium"},
		{"DisableMOBIKE", 0},
		{"DisableRedirect", 0},
		{"EnableCertificateRevocationCheck", 0},
		{"UseConfigurationAttributeInternalIPSubnet", 0},
	}
	// The issuer name is optional; without a CA certificate it is left out.
	ikev2 = removeKey(ikev2, "ServerCertificateIssuerCommonName")
	switch g.Auth {
	case AuthEAP:
		ikev2 = append(ikev2, pkv{"AuthenticationMethod", "None"}, pkv{"ExtendedAuthEnabled", 1}, pkv{"AuthName", g.User})
	case AuthEAPTLS:
		ikev2 = append(ikev2, pkv{"AuthenticationMethod", "Certificate"}, pkv{"ExtendedAuthEnabled", 1})
	case AuthCert:
		ikev2 = append(ikev2, pkv{"AuthenticationMethod", "Certificate"}, pkv{"ExtendedAuthEnabled", 0})
	case AuthCertEAP:
		ikev2 = append(ikev2, pkv{"AuthenticationMethod", "Certificate"}, pkv{"ExtendedAuthEnabled", 1}, pkv{"AuthName", g.User})
	case AuthPSK:
		ikev2 = append(ikev2, pkv{"AuthenticationMethod", "SharedSecret"}, pkv{"ExtendedAuthEnabled", 0})
	default:
		return nil, fmt.Errorf("unknown client authentication %q", g.Auth)
	}
	vpnUUID := uuid()
	vpn := pdict{
		{"PayloadType", "com.apple.vpn.managed"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", "org.goipsec.vpn." + vpnUUID},
		{"PayloadUUID", vpnUUID},
		{"PayloadDisplayName", g.Name},
		{"UserDefinedName", g.Name},
		{"VPNType", "IKEv2"},
		{"IKEv2", ikev2},
		{"IPv4", pdict{{"OverridePrimary", map[bool]int{true: 0, false: 1}[g.SplitTunnel]}}},
	}
	content := []any{vpn}
	if g.CACert != nil {
		caUUID := uuid()
		content = append([]any{pdict{
			{"PayloadType", "com.apple.security.root"},
			{"PayloadVersion", 1},
			{"PayloadIdentifier", "org.goipsec.ca." + caUUID},
			{"PayloadUUID", caUUID},
			{"PayloadDisplayName", g.Name + " CA"},
			{"PayloadContent", g.CACert},
		}}, content...)
	}
	topUUID := uuid()
	top := pdict{
		{"PayloadType", "Configuration"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", "org.goipsec.profile." + topUUID},
		{"PayloadUUID", topUUID},
		{"PayloadDisplayName", g.Name + " (goipsec)"},
		{"PayloadDescription", "IKEv2 VPN to " + g.Server + ": " + c.keyword + " / " + c.espKeyword},
		{"PayloadContent", content},
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writePlist(&b, top, "")
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

func removeKey(d pdict, k string) pdict {
	out := d[:0]
	for _, kv := range d {
		if kv.k != k {
			out = append(out, kv)
		}
	}
	return out
}
