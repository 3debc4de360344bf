package profile

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/proposal"
)

// parsePlist decodes Apple's property list XML with encoding/xml into Go values (map, slice,
// string, int64, bool, []byte), failing on anything the plist DTD does not allow: the syntax check
// a device would do.
func parsePlist(b []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var root any
	seenPlist := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" || seenPlist {
				return nil, fmt.Errorf("unexpected <%s> at the top", se.Name.Local)
			}
			seenPlist = true
			v, err := plistValue(d)
			if err != nil {
				return nil, err
			}
			root = v
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no plist")
	}
	return root, nil
}

// plistValue reads the next value element.
func plistValue(d *xml.Decoder) (any, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("text outside an element: %q", t)
			}
			continue
		case xml.EndElement:
			return nil, errEnd
		case xml.StartElement:
			switch t.Name.Local {
			case "dict":
				m := map[string]any{}
				for {
					var key struct {
						XMLName xml.Name
						Text    string `xml:",chardata"`
					}
					tok, err := nextStart(d)
					if err == errEnd {
						return m, nil
					}
					if err != nil {
						return nil, err
					}
					if tok.Name.Local != "key" {
						return nil, fmt.Errorf("<%s> where a <key> belongs", tok.Name.Local)
					}
					if err := d.DecodeElement(&key, &tok); err != nil {
						return nil, err
					}
					v, err := plistValue(d)
					if err != nil {
						return nil, fmt.Errorf("value of %s: %w", key.Text, err)
					}
					m[key.Text] = v
				}
			case "array":
				var out []any
				for {
					v, err := plistValue(d)
					if err == errEnd {
						return out, nil
					}
					if err != nil {
						return nil, err
					}
					out = append(out, v)
				}
			case "string", "integer", "data":
				var s string
				if err := d.DecodeElement(&s, &t); err != nil {
					return nil, err
				}
				if t.Name.Local == "integer" {
					var n int64
					if _, err := fmt.Sscan(s, &n); err != nil {
						return nil, fmt.Errorf("integer %q", s)
					}
					return n, nil
				}
				return s, nil
			case "true", "false":
				d.Skip()
				return t.Name.Local == "true", nil
			}
			return nil, fmt.Errorf("unknown plist element <%s>", t.Name.Local)
		}
	}
}

var errEnd = fmt.Errorf("end of container")

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errEnd
		}
	}
}

func gw(t *testing.T, ike, esp string, auth ClientAuth) *Gateway {
	i, err := proposal.ParseIKE(ike)
	if err != nil {
		t.Fatal(err)
	}
	e, err := proposal.ParseESP(esp)
	if err != nil {
		t.Fatal(err)
	}
	return &Gateway{Name: "Office", Server: "vpn.example.org", ServerID: "vpn.example.org", Auth: auth, User: "carol", IKE: i, ESP: e, CACert: []byte{0x30, 0x82}}
}

func TestApple(t *testing.T) {
	for _, tc := range []struct {
		ike, esp                    string
		wantEncr, wantInteg, wantDH string
		wantESP, wantESPInteg       string
		wantPFS                     bool
	}{
		{"aes256gcm16-prfsha256-x25519", "aes256gcm16", "AES-256-GCM", "SHA2-256", "31", "AES-256-GCM", "SHA2-256", false},
		// The gateway's order of preference, within its first proposal the platform can express.
		{"aes128gcm16-aes256gcm16-prfsha384-ecp384-ecp256", "aes256-sha256-ecp256", "AES-128-GCM", "SHA2-384", "20", "AES-256", "SHA2-256", true},
		// goipsec's default proposals.
		{"default", "default", "AES-256-GCM", "SHA2-256", "31", "AES-256-GCM", "SHA2-256", false},
	} {
		g := gw(t, tc.ike, tc.esp, AuthEAP)
		b, err := Apple(g)
		if err != nil {
			t.Fatal(err)
		}
		v, err := parsePlist(b)
		if err != nil {
			t.Fatalf("%s: plist does not parse: %v\n%s", tc.ike, err, b)
		}
		top := v.(map[string]any)
		content := top["PayloadContent"].([]any)
		if len(content) != 2 || content[0].(map[string]any)["PayloadType"] != "com.apple.security.root" {
			t.Fatalf("payloads %v", content)
		}
		vpn := content[1].(map[string]any)
		ikev2 := vpn["IKEv2"].(map[string]any)
		ikeSA := ikev2["IKESecurityAssociationParameters"].(map[string]any)
		childSA := ikev2["ChildSecurityAssociationParameters"].(map[string]any)
		if vpn["VPNType"] != "IKEv2" || ikev2["RemoteAddress"] != "vpn.example.org" || ikev2["AuthenticationMethod"] != "None" ||
			ikev2["ExtendedAuthEnabled"] != int64(1) || ikev2["AuthName"] != "carol" {
			t.Fatalf("%s: IKEv2 payload %v", tc.ike, ikev2)
		}
		if ikeSA["EncryptionAlgorithm"] != tc.wantEncr || ikeSA["IntegrityAlgorithm"] != tc.wantInteg || fmt.Sprint(ikeSA["DiffieHellmanGroup"]) != tc.wantDH {
			t.Fatalf("%s: IKE SA %v", tc.ike, ikeSA)
		}
		if childSA["EncryptionAlgorithm"] != tc.wantESP || childSA["IntegrityAlgorithm"] != tc.wantESPInteg || ikev2["EnablePFS"] != tc.wantPFS {
			t.Fatalf("%s: Child SA %v, PFS %v", tc.ike, childSA, ikev2["EnablePFS"])
		}
	}
	if _, err := Apple(gw(t, "aes192-sha256-x25519", "aes256gcm16", AuthEAP)); err == nil || !strings.Contains(err.Error(), "Apple") {
		t.Fatalf("a gateway Apple cannot talk to: %v", err)
	}
}

func TestWindows(t *testing.T) {
	b, err := Windows(gw(t, "aes256gcm16-prfsha256-ecp256, aes256-sha256-modp3072", "aes256gcm16-ecp256", AuthEAP))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"Add-VpnConnection -Name 'Office' -ServerAddress 'vpn.example.org' -TunnelType Ikev2 -AuthenticationMethod Eap -EncryptionLevel Required",
		"Set-VpnConnectionIPsecConfiguration -ConnectionName 'Office' -EncryptionMethod GCMAES256 -IntegrityCheckMethod SHA256 -DHGroup ECP256 `",
		"-CipherTransformConstants GCMAES256 -AuthenticationTransformConstants GCMAES256 -PfsGroup ECP256 -Force",
		"Import-Certificate -FilePath $caFile -CertStoreLocation Cert:\\LocalMachine\\Root",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("script lacks %q:\n%s", want, s)
		}
	}
	// PowerShell quoting of names.
	g := gw(t, "default", "default", AuthCert)
	g.Name = "Bob's VPN"
	b, _ = Windows(g)
	if !strings.Contains(string(b), "-Name 'Bob''s VPN'") || !strings.Contains(string(b), "-AuthenticationMethod MachineCertificate") {
		t.Fatalf("quoting:\n%s", b)
	}
	if _, err := Windows(gw(t, "default", "default", AuthPSK)); err == nil {
		t.Fatal("PSK accepted for Windows")
	}
	// goipsec's default proposals offer X25519 first; Windows has none, so ECP-256 is named.
	b, _ = Windows(gw(t, "default", "default", AuthEAP))
	if !strings.Contains(string(b), "-DHGroup ECP256") {
		t.Fatalf("default proposals:\n%s", b)
	}
}

func TestSSwan(t *testing.T) {
	b, err := SSwan(gw(t, "aes256gcm16-prfsha256-x25519", "aes256gcm16", AuthEAP))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p["type"] != "ikev2-eap" || p["ike-proposal"] != "aes256gcm16-prfsha256-x25519" || p["esp-proposal"] != "aes256gcm16-noesn" ||
		p["remote"].(map[string]any)["addr"] != "vpn.example.org" || p["local"].(map[string]any)["eap_id"] != "carol" ||
		p["remote"].(map[string]any)["cert"] != "MII=" || len(p["uuid"].(string)) != 36 {
		t.Fatalf("profile %s", b)
	}
	if _, err := SSwan(gw(t, "default", "default", AuthPSK)); err == nil {
		t.Fatal("PSK accepted for Android")
	}
}

func FuzzPlistWriter(f *testing.F) {
	f.Add("Office", "vpn.example.org", "carol")
	f.Fuzz(func(t *testing.T, name, server, user string) {
		g := gw(t, "default", "default", AuthEAP)
		g.Name, g.Server, g.User = name, server, user
		b, err := Apple(g)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parsePlist(b); err != nil && strings.ToValidUTF8(name+server+user, "") == name+server+user && !strings.ContainsAny(name+server+user, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff") {
			t.Fatalf("names %q %q %q break the plist: %v", name, server, user, err)
		}
	})
}
