// Package profile writes ready client profiles for a goipsec gateway: an Apple .mobileconfig
// (iOS, iPadOS, macOS), a PowerShell script for the Windows 10/11 built-in IKEv2 client, and a
// strongSwan for Android .sswan file. Each names the gateway, its identity and the algorithms:
// the first of the gateway's proposals the platform can express, so that the client offers
// exactly what the gateway accepts (and never the platform's legacy defaults).
package profile

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/goipsec/goipsec/proposal"
)

// ClientAuth is how the client authenticates.
type ClientAuth string

// Client authentication methods.
const (
	AuthEAP     ClientAuth = "eap"      // user name and password (EAP-MSCHAPv2)
	AuthEAPTLS  ClientAuth = "eap-tls"  // a certificate inside EAP
	AuthCert    ClientAuth = "cert"     // a certificate (IKE signature)
	AuthCertEAP ClientAuth = "cert-eap" // a certificate, then a password (RFC 4739)
	AuthPSK     ClientAuth = "psk"      // a preshared key
)

// Gateway describes the gateway and the user a profile is for.
type Gateway struct {
	// Name is the profile's display name.
	Name string
	// Server is the address or DNS name clients dial; ServerID the gateway's IKE identity
	// (clients check it: the certificate's subjectAltName).
	Server, ServerID string
	Auth             ClientAuth
	// User is the EAP identity (or the certificate's identity).
	User string
	// IKE and ESP are the gateway's proposals, in its order of preference.
	IKE, ESP []proposal.Proposal
	// CACert is the DER certificate of the CA that issued the gateway's certificate (nil: the
	// platform's trust store).
	CACert []byte
	// SplitTunnel: send only the gateway's subnets through the tunnel (default: everything).
	SplitTunnel bool
}

// choice is the algorithms picked for one platform.
type choice struct {
	encr        string // platform name
	encrBits    uint16
	aead        bool
	integ       string // platform name of the integrity algorithm (the PRF with AEAD)
	group       string // platform name of the key exchange
	groupID     uint16
	keyword     string // strongSwan keywords of the picked proposal
	espEncr     string
	espInteg    string
	espKeyword  string
	pfsGroup    string
	pfsGroupID  uint16
	ikeProposal proposal.Proposal
}

// platform lists what a client can express, by IKEv2 transform, in its names.
type platform struct {
	name  string
	encr  map[[2]uint16]string // {transform ID, key bits} → name
	integ map[uint16]string    // IKE: PRF ID → name (the integrity algorithm doubles as PRF)
	group map[uint16]string
	// esp: {encryption ID, bits} → name, espInteg: integrity ID → name; AEAD ESP uses aeadInteg.
	espEncr   map[[2]uint16]string
	espInteg  map[uint16]string
	aeadInteg map[[2]uint16]string
	pfs       map[uint16]string
}

// pick finds the first gateway proposal the platform can express; within it, the first transform
// of each type the platform has (the gateway's order of preference).
func (p *platform) pick(g *Gateway) (*choice, error) {
	for _, prop := range g.IKE {
		c := &choice{}
		for _, t := range prop.Of(proposal.TypeEncryption) {
			if n, ok := p.encr[[2]uint16{t.ID, t.KeyLength}]; ok {
				c.encr, c.encrBits, c.aead = n, t.KeyLength, t.ID == proposal.EncrAESGCM16 || t.ID == proposal.EncrChaCha20Poly1305
				c.ikeProposal.Transforms = append(c.ikeProposal.Transforms, t)
				break
			}
		}
		for _, t := range prop.Of(proposal.TypePRF) {
			if n, ok := p.integ[t.ID]; ok {
				c.integ = n
				c.ikeProposal.Transforms = append(c.ikeProposal.Transforms, t)
				break
			}
		}
		if !c.aead {
			// Non-AEAD: the integrity algorithm must be the PRF's (the platforms tie them).
			ok := false
			for _, t := range prop.Of(proposal.TypeIntegrity) {
				if integMatchesPRF(t.ID, c.ikeProposal) {
					c.ikeProposal.Transforms = append(c.ikeProposal.Transforms, t)
					ok = true
					break
				}
			}
			if !ok {
				c.integ = ""
			}
		}
		for _, t := range prop.Of(proposal.TypeKeyExchange) {
			if n, ok := p.group[t.ID]; ok {
				c.group, c.groupID = n, t.ID
				c.ikeProposal.Transforms = append(c.ikeProposal.Transforms, t)
				break
			}
		}
		if c.encr == "" || c.integ == "" || c.group == "" {
			continue
		}
		if err := p.pickESP(g, c); err != nil {
			return nil, err
		}
		c.keyword = c.ikeProposal.String()
		return c, nil
	}
	return nil, fmt.Errorf("none of the gateway's IKE proposals (%s) can be expressed for %s, which offers %s",
		proposal.FormatList(g.IKE), p.name, p.describe())
}

// integMatchesPRF: HMAC-SHA2-256-128 goes with PRF-HMAC-SHA2-256, and so on.
func integMatchesPRF(integ uint16, prop proposal.Proposal) bool {
	prf := prop.Of(proposal.TypePRF)
	if len(prf) == 0 {
		return false
	}
	switch prf[0].ID {
	case proposal.PRFHMACSHA1:
		return integ == proposal.IntegHMACSHA196
	case proposal.PRFHMACSHA2256:
		return integ == proposal.IntegHMACSHA2256128
	case proposal.PRFHMACSHA2384:
		return integ == proposal.IntegHMACSHA2384192
	case proposal.PRFHMACSHA2512:
		return integ == proposal.IntegHMACSHA2512256
	}
	return false
}

func (p *platform) pickESP(g *Gateway, c *choice) error {
	for _, prop := range g.ESP {
		var kw proposal.Proposal
		encr, integ := "", ""
		for _, t := range prop.Of(proposal.TypeEncryption) {
			if n, ok := p.espEncr[[2]uint16{t.ID, t.KeyLength}]; ok {
				encr = n
				kw.Transforms = append(kw.Transforms, t)
				if a, ok := p.aeadInteg[[2]uint16{t.ID, t.KeyLength}]; ok {
					integ = a
				}
				break
			}
		}
		if integ == "" {
			for _, t := range prop.Of(proposal.TypeIntegrity) {
				if n, ok := p.espInteg[t.ID]; ok {
					integ = n
					kw.Transforms = append(kw.Transforms, t)
					break
				}
			}
		}
		if encr == "" || integ == "" {
			continue
		}
		// PFS: the key exchange of the ESP proposal when it names one (goipsec asks for it
		// then); none otherwise.
		c.pfsGroup = p.pfs[0]
		for _, t := range prop.Of(proposal.TypeKeyExchange) {
			if n, ok := p.pfs[t.ID]; ok && t.ID != 0 {
				c.pfsGroup, c.pfsGroupID = n, t.ID
				kw.Transforms = append(kw.Transforms, t)
				break
			}
		}
		c.espEncr, c.espInteg, c.espKeyword = encr, integ, kw.String()
		return nil
	}
	return fmt.Errorf("none of the gateway's ESP proposals (%s) can be expressed for %s", proposal.FormatList(g.ESP), p.name)
}

func (p *platform) describe() string {
	var encr, groups []string
	for _, n := range p.encr {
		encr = append(encr, n)
	}
	for _, n := range p.group {
		groups = append(groups, n)
	}
	return "encryption " + strings.Join(sortedStrings(encr), ", ") + "; key exchange " + strings.Join(sortedStrings(groups), ", ")
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// uuid returns a random UUID (version 4), the identifiers profiles carry.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
