package interop

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Client profiles against a real client stack: `goipsec profile` writes the Apple and Windows
// profiles for a goipsec gateway; a strongSwan 5.9.8 road warrior configured with the algorithms
// each profile names connects with EAP-MSCHAPv2. A client with Apple's built-in defaults
// (AES-256-CBC, SHA2-256, MODP-2048) connects to a gateway that names modp2048; one with Windows'
// built-in defaults (MODP-1024) is refused, and the failure names the weak offer.

// appleToSwan and windowsToSwan translate the profiles' algorithm names into strongSwan keywords.
var (
	appleToSwan = map[string]string{"AES-256-GCM": "aes256gcm16", "AES-128-GCM": "aes128gcm16", "AES-256": "aes256", "AES-128": "aes128",
		"ChaCha20Poly1305": "chacha20poly1305", "SHA2-256": "sha256", "SHA2-384": "sha384", "SHA2-512": "sha512",
		"31": "x25519", "19": "ecp256", "20": "ecp384", "21": "ecp521", "14": "modp2048", "15": "modp3072", "16": "modp4096"}
	windowsToSwan = map[string]string{"GCMAES256": "aes256gcm16", "GCMAES128": "aes128gcm16", "AES256": "aes256", "AES128": "aes128",
		"SHA256": "sha256", "SHA384": "sha384", "ECP256": "ecp256", "ECP384": "ecp384", "Group14": "modp2048", "PFS2048": "modp2048"}
)

func profileOf(t *testing.T, conf, format string) string {
	t.Helper()
	out, err := exec.Command(goipsecBinary(t), "profile", "-c", conf, "--conn", "rw", "--user", "carol", "--format", format, "--server", leftOuter).CombinedOutput()
	if err != nil {
		t.Fatalf("goipsec profile --format %s: %v\n%s", format, err, out)
	}
	return string(out)
}

// plistString returns the value after <key>k</key> in a plist (first occurrence after from).
func plistString(s, from, k string) string {
	i := strings.Index(s, "<key>"+from+"</key>")
	if i < 0 {
		return ""
	}
	m := regexp.MustCompile(`<key>` + k + `</key>\s*<(?:string|integer)>([^<]*)<`).FindStringSubmatch(s[i:])
	if m == nil {
		return ""
	}
	return m[1]
}

func TestProfilesStrongSwanClient(t *testing.T) {
	gwConf := strings.Replace(raGoipsecGateway("eap-mschapv2\n      eap_id = %any", eapUserSecret("carol")),
		"    proposals = aes256gcm16-prfsha256-x25519\n", "    proposals = default, aes256-sha256-modp2048\n", 1)
	gwConf = strings.Replace(gwConf, "        esp_proposals = aes256gcm16\n", "        esp_proposals = default, aes256gcm16-ecp256\n", 1)
	apple := func(s string) (string, string) {
		ike := appleToSwan[plistString(s, "IKESecurityAssociationParameters", "EncryptionAlgorithm")] + "-prf" +
			appleToSwan[plistString(s, "IKESecurityAssociationParameters", "IntegrityAlgorithm")] + "-" +
			appleToSwan[plistString(s, "IKESecurityAssociationParameters", "DiffieHellmanGroup")]
		return ike, appleToSwan[plistString(s, "ChildSecurityAssociationParameters", "EncryptionAlgorithm")]
	}
	windows := func(s string) (string, string) {
		m := regexp.MustCompile(`-EncryptionMethod (\S+) -IntegrityCheckMethod (\S+) -DHGroup (\S+)`).FindStringSubmatch(s)
		e := regexp.MustCompile(`-CipherTransformConstants (\S+) -AuthenticationTransformConstants (\S+) -PfsGroup (\S+)`).FindStringSubmatch(s)
		if m == nil || e == nil {
			t.Fatalf("PowerShell script without algorithms:\n%s", s)
		}
		esp := windowsToSwan[e[1]]
		if e[3] != "None" {
			esp += "-" + windowsToSwan[e[3]]
		}
		return windowsToSwan[m[1]] + "-prf" + windowsToSwan[m[2]] + "-" + windowsToSwan[m[3]], esp
	}
	for _, tc := range []struct {
		name     string
		ike, esp func(string) (string, string)
		format   string
		fixed    [2]string // a client's built-in defaults instead of a profile
		wantFail string
	}{
		{name: "apple profile", format: "apple"},
		{name: "windows profile", format: "windows"},
		{name: "apple built-in defaults", fixed: [2]string{"aes256-sha256-modp2048", "aes256-sha256"}},
		{name: "windows built-in defaults", fixed: [2]string{"aes256-sha1-modp1024, 3des-sha1-modp1024", "aes256-sha1"}, wantFail: "modp1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			g := startGoipsec(t, left, gwConf+daemon)
			ike, esp := tc.fixed[0], tc.fixed[1]
			switch tc.format {
			case "apple":
				ike, esp = apple(profileOf(t, g.conf, "apple"))
			case "windows":
				ike, esp = windows(profileOf(t, g.conf, "windows"))
			}
			t.Logf("client proposals: IKE %s, ESP %s", ike, esp)
			swan := raSwanClient("eap-mschapv2", "      eap_id = carol\n")
			swan = strings.Replace(swan, "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			swan = strings.Replace(swan, "    proposals = aes256gcm16-prfsha256-x25519\n", "    proposals = "+ike+"\n", 1)
			swan = strings.Replace(swan, "        esp_proposals = aes256gcm16\n", "        esp_proposals = "+esp+"\n", 1)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
			if tc.wantFail != "" {
				c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "10")
				g.waitLog(t, "no IKE proposal chosen", 10*time.Second)
				if lines := g.logLines("no IKE proposal chosen"); !strings.Contains(lines[0], tc.wantFail) {
					t.Fatalf("refusal does not name the client's %s offer:\n%s", tc.wantFail, lines[0])
				}
				return
			}
			c.Initiate(t, "net")
			c.WaitEstablished(t, "rw", 30*time.Second)
			if ok, out := right.Ping(t, leftInner4, 3); !ok {
				t.Fatalf("ping through the tunnel:\n%s", out)
			}
		})
	}
}
