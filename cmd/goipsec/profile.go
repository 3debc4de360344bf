package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/profile"
)

func newProfileCommand() *cobra.Command {
	var path, conn, user, format, server, ca, out string
	var split bool
	cmd := &cobra.Command{
		Use:   "profile --conn NAME --user USER --format apple|windows|sswan",
		Short: "Write a client profile for a remote-access connection (Apple, Windows, strongSwan Android)",
		Long: `profile writes, for a gateway connection of the configuration and a user, a ready client
profile: an Apple .mobileconfig (iOS, iPadOS, macOS), a PowerShell script for the Windows 10/11
built-in IKEv2 client (Add-VpnConnection and Set-VpnConnectionIPsecConfiguration), or a strongSwan
for Android .sswan file. The client is set to the first of the connection's IKE and ESP proposals
it can express — never to its legacy defaults (Windows: MODP-1024 and 3DES/SHA-1; Apple:
MODP-2048), which goipsec refuses or does not offer by default. The authentication follows the
connection's remote rounds (EAP, EAP-TLS, certificate, certificate then EAP, PSK), the gateway's
identity its local id. --ca adds the CA certificate (PEM or DER) the device must trust.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			var c *config.Connection
			for _, x := range cfg.Connections {
				if x.Name == conn {
					c = x
				}
			}
			if c == nil {
				return fmt.Errorf("%s has no connection named %q", path, conn)
			}
			g, err := gatewayOf(c, server, user)
			if err != nil {
				return err
			}
			g.SplitTunnel = split
			if ca != "" {
				if g.CACert, err = readCACertDER(filepath.Join(filepath.Dir(path), "x509ca"), ca); err != nil {
					return err
				}
			}
			var b []byte
			switch format {
			case "apple", "mobileconfig":
				b, err = profile.Apple(g)
			case "windows", "powershell":
				b, err = profile.Windows(g)
			case "sswan", "android":
				b, err = profile.SSwan(g)
			default:
				return fmt.Errorf("unknown format %q (apple, windows or sswan)", format)
			}
			if err != nil {
				return fmt.Errorf("connection %s: %w", conn, err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return os.WriteFile(out, b, 0o600)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "config", "c", "/etc/goipsec/goipsec.conf", "configuration file")
	f.StringVar(&conn, "conn", "", "the gateway's connection (required)")
	f.StringVar(&user, "user", "", "the user's EAP identity (or certificate identity)")
	f.StringVar(&format, "format", "apple", "apple (.mobileconfig), windows (PowerShell) or sswan (strongSwan Android)")
	f.StringVar(&server, "server", "", "address or DNS name clients dial (default: the connection's local id when it is a name, else its single local address)")
	f.StringVar(&ca, "ca", "", "CA certificate to trust (x509ca/ or a path)")
	f.StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	f.BoolVar(&split, "split", false, "send only the gateway's subnets through the tunnel")
	cmd.MarkFlagRequired("conn")
	return cmd
}

// gatewayOf describes a gateway connection for the profile writers.
func gatewayOf(c *config.Connection, server, user string) (*profile.Gateway, error) {
	g := &profile.Gateway{Name: c.Name, Server: server, ServerID: c.Local.ID.Text, User: user, IKE: c.Proposals}
	if len(c.Children) == 0 {
		return nil, fmt.Errorf("connection %s has no children", c.Name)
	}
	g.ESP = c.Children[0].ESPProposals
	if g.Server == "" {
		switch {
		case c.Local.ID.Type == config.IDFQDN:
			g.Server = c.Local.ID.Text
		case len(c.LocalAddrs) == 1 && c.LocalAddrs[0].Kind == config.AddrSingle:
			g.Server = c.LocalAddrs[0].Start.String()
		default:
			return nil, fmt.Errorf("connection %s: say where clients connect to (--server)", c.Name)
		}
	}
	if g.ServerID == "" || g.ServerID == "%any" {
		g.ServerID = g.Server
	}
	rounds := c.RemoteRounds
	switch {
	case len(rounds) == 2 && rounds[0].Method == config.AuthPubkey && rounds[1].Method == config.AuthEAP:
		g.Auth = profile.AuthCertEAP
	case len(rounds) >= 1 && rounds[0].Method == config.AuthEAP && rounds[0].EAP == "tls":
		g.Auth = profile.AuthEAPTLS
	case len(rounds) >= 1 && rounds[0].Method == config.AuthEAP:
		g.Auth = profile.AuthEAP
	case len(rounds) >= 1 && rounds[0].Method == config.AuthPubkey:
		g.Auth = profile.AuthCert
	case len(rounds) >= 1 && rounds[0].Method == config.AuthPSK:
		g.Auth = profile.AuthPSK
	default:
		return nil, fmt.Errorf("connection %s: cannot tell how clients authenticate", c.Name)
	}
	if (g.Auth == profile.AuthEAP || g.Auth == profile.AuthCertEAP) && user == "" {
		return nil, fmt.Errorf("connection %s authenticates users with EAP: name one (--user)", c.Name)
	}
	return g, nil
}

// readCACertDER reads a certificate (PEM or DER), relative to dir unless absolute.
func readCACertDER(dir, name string) ([]byte, error) {
	p := name
	if !filepath.IsAbs(p) {
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join(dir, name)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}
