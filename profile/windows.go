package profile

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/goipsec/goipsec/proposal"
)

// The Windows 10/11 built-in IKEv2 client. Unless told otherwise (Set-VpnConnectionIPsecConfiguration)
// it offers 3DES or AES-CBC with SHA-1 or SHA-256 and Diffie-Hellman group 2 (MODP-1024) for IKE,
// AES-CBC/3DES with SHA-1 for ESP, and no PFS: MODP-1024 and 3DES/SHA-1 are weak, and a goipsec
// gateway refuses them (IKE_SA_INIT fails with NO_PROPOSAL_CHOSEN, naming the client's offer).
// The script therefore sets the algorithms the gateway accepts. Windows ties IKE's PRF to its
// integrity algorithm and names AES-GCM for ESP in both the cipher and the authentication
// transform.
var windows = &platform{
	name: "Windows 10/11",
	encr: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "GCMAES256", {proposal.EncrAESGCM16, 128}: "GCMAES128",
		{proposal.EncrAESCBC, 256}: "AES256", {proposal.EncrAESCBC, 192}: "AES192", {proposal.EncrAESCBC, 128}: "AES128",
	},
	integ: map[uint16]string{proposal.PRFHMACSHA2256: "SHA256", proposal.PRFHMACSHA2384: "SHA384"},
	group: map[uint16]string{19: "ECP256", 20: "ECP384", 14: "Group14"},
	espEncr: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "GCMAES256", {proposal.EncrAESGCM16, 192}: "GCMAES192", {proposal.EncrAESGCM16, 128}: "GCMAES128",
		{proposal.EncrAESCBC, 256}: "AES256", {proposal.EncrAESCBC, 192}: "AES192", {proposal.EncrAESCBC, 128}: "AES128",
	},
	espInteg: map[uint16]string{proposal.IntegHMACSHA2256128: "SHA256128"},
	aeadInteg: map[[2]uint16]string{
		{proposal.EncrAESGCM16, 256}: "GCMAES256", {proposal.EncrAESGCM16, 192}: "GCMAES192", {proposal.EncrAESGCM16, 128}: "GCMAES128",
	},
	pfs: map[uint16]string{0: "None", 19: "ECP256", 20: "ECP384", 14: "PFS2048"},
}

// psQuote quotes a PowerShell single-quoted string.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Windows returns a PowerShell script that creates the connection (Add-VpnConnection) and sets
// its algorithms (Set-VpnConnectionIPsecConfiguration).
func Windows(g *Gateway) ([]byte, error) {
	c, err := windows.pick(g)
	if err != nil {
		return nil, err
	}
	var auth string
	switch g.Auth {
	case AuthEAP:
		auth = "Eap" // EAP-MSCHAPv2, the built-in default EAP method
	case AuthCert:
		auth = "MachineCertificate"
	case AuthEAPTLS:
		auth = "Eap"
	default:
		return nil, fmt.Errorf("the Windows IKEv2 client cannot authenticate with %s (use eap, eap-tls or cert)", g.Auth)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# IKEv2 VPN to %s, written by goipsec profile.\n", g.Server)
	fmt.Fprintf(&b, "# Algorithms the gateway accepts: IKE %s, ESP %s.\n", c.keyword, c.espKeyword)
	b.WriteString("# Run in PowerShell (as the user; as administrator with -AllUserConnection added).\n")
	b.WriteString("$ErrorActionPreference = 'Stop'\n")
	name := psQuote(g.Name)
	if g.CACert != nil {
		b.WriteString("# The CA that issued the gateway's certificate, into the machine's trusted roots.\n")
		fmt.Fprintf(&b, "$ca = [Convert]::FromBase64String('%s')\n", b64(g.CACert))
		b.WriteString("$caFile = Join-Path $env:TEMP 'goipsec-ca.cer'\n[IO.File]::WriteAllBytes($caFile, $ca)\n")
		b.WriteString("Import-Certificate -FilePath $caFile -CertStoreLocation Cert:\\LocalMachine\\Root | Out-Null\n")
	}
	fmt.Fprintf(&b, "Add-VpnConnection -Name %s -ServerAddress %s -TunnelType Ikev2 -AuthenticationMethod %s -EncryptionLevel Required -RememberCredential",
		name, psQuote(g.Server), auth)
	if g.Auth == AuthEAPTLS {
		b.WriteString(" -EapConfigXmlStream (New-EapConfiguration -Tls -UserCertificate).EapConfigXmlStream")
	}
	if g.SplitTunnel {
		b.WriteString(" -SplitTunneling")
	}
	b.WriteString(" -Force\n")
	fmt.Fprintf(&b, "Set-VpnConnectionIPsecConfiguration -ConnectionName %s -EncryptionMethod %s -IntegrityCheckMethod %s -DHGroup %s `\n",
		name, c.encr, c.integ, c.group)
	fmt.Fprintf(&b, "    -CipherTransformConstants %s -AuthenticationTransformConstants %s -PfsGroup %s -Force\n", c.espEncr, c.espInteg, c.pfsGroup)
	fmt.Fprintf(&b, "Write-Host \"VPN connection %s created; connect with: rasdial %s\"\n", g.Name, psQuote(g.Name))
	return b.Bytes(), nil
}
