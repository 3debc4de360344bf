package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// swanctlAt runs strongSwan's swanctl against goipsec's VICI socket.
func swanctlAt(t *testing.T, sock string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(conf, []byte("swanctl {\n  socket = unix://"+sock+"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("swanctl", append(args, "--uri", "unix://"+sock)...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swanctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSwanctlLoadAllCertificates: a running goipsec that starts without connections gets a
// certificate-based configuration from `swanctl --load-all` (CA and end-entity certificates, a
// private key swanctl decrypts with its secrets section, an authority, the connection with its
// certificate inline), then charon connects to it; swanctl --list-certs and --list-authorities
// show what was loaded; --flush-certs and --load-creds --clear reach goipsec's handlers.
func TestSwanctlLoadAllCertificates(t *testing.T) {
	cs := newCertSetup(t, "ecdsa", "ecdsa 256")
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
	// goipsec runs from an empty directory: everything comes over VICI.
	g := startGoipsecIn(t, left, t.TempDir(), "daemon {\n  log {\n    level = debug\n  }\n}\n")

	// A swanctl directory as strongSwan users have it; the key is encrypted (PKCS#8, AES) and the
	// secrets section gives its passphrase.
	swanDir := t.TempDir()
	for _, sub := range []string{"x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		os.MkdirAll(filepath.Join(swanDir, sub), 0o700)
	}
	for _, rel := range []string{"x509/moon.pem", "x509ca/goipsec-ca.pem", "x509ca/strongswan-ca.pem"} {
		b, err := os.ReadFile(filepath.Join(cs.gdir, rel))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, swanDir, rel, b)
	}
	encrypted := runTool(t, "openssl", "pkcs8", "-topk8", "-v2", "aes256", "-in", filepath.Join(cs.gdir, "private", "moon.key"), "-passout", "pass:moon-key-pass")
	writeFile(t, swanDir, "private/moon.key", encrypted)
	conf := certGoipsecConf("pubkey", "pubkey", sunID, "", false)
	conf = conf[:strings.Index(conf, "daemon {")]
	conf += fmt.Sprintf(`authorities {
  strongswan {
    cacert = strongswan-ca.pem
    crl_uris = http://%s:8080/strongswan.crl
  }
}
secrets {
  private-moon {
    file = moon.key
    secret = "moon-key-pass"
  }
}
`, rightOuter)
	writeFile(t, swanDir, "swanctl.conf", []byte(conf))

	out := swanctlAt(t, g.vici, "--load-all", "--file", filepath.Join(swanDir, "swanctl.conf"))
	for _, want := range []string{"loaded certificate from", "moon.pem", "loaded ECDSA key from", "loaded authority 'strongswan'", "loaded connection 'gt'", "successfully loaded 1 connections, 0 unloaded"} {
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --load-all output lacks %q:\n%s", want, out)
		}
	}
	c.Initiate(t, "net")
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	if ok, out := right.Ping(t, leftInner4, 2); !ok {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}

	out = swanctlAt(t, g.vici, "--list-certs")
	for _, want := range []string{`subject:  "C=CH, O=goipsec test, CN=moon.example.org"`, "has private key", `subject:  "C=CH, O=strongSwan test, CN=strongSwan Root CA"`, "X.509 CA Certificates"} {
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --list-certs lacks %q:\n%s", want, out)
		}
	}
	out = swanctlAt(t, g.vici, "--list-authorities")
	if !strings.Contains(out, "strongswan:") || !strings.Contains(out, "C=CH, O=strongSwan test, CN=strongSwan Root CA") || !strings.Contains(out, "http://"+rightOuter+":8080/strongswan.crl") {
		t.Fatalf("swanctl --list-authorities:\n%s", out)
	}

	// flush-certs reaches goipsec's handler (swanctl prints its reply only with --raw); an
	// unknown type is refused with goipsec's message.
	for _, typ := range []string{"", "x509_crl", "ocsp_response", "x509"} {
		args := []string{"--flush-certs", "--raw"}
		if typ != "" {
			args = append(args, "--type", typ)
		}
		if out := swanctlAt(t, g.vici, args...); !strings.Contains(out, "success=yes") {
			t.Fatalf("swanctl %s:\n%s", strings.Join(args, " "), out)
		}
	}
	if out := swanctlAt(t, g.vici, "--flush-certs", "--raw", "--type", "x509_bogus"); !strings.Contains(out, "success=no") || !strings.Contains(out, `invalid certificate type "x509_bogus"`) {
		t.Fatalf("swanctl --flush-certs --type x509_bogus:\n%s", out)
	}
	if out := swanctlAt(t, g.vici, "--list-certs"); !strings.Contains(out, "CN=moon.example.org") {
		t.Fatalf("flush-certs removed a loaded certificate:\n%s", out)
	}
	// --load-creds --clear sends clear-creds, then loads a folder with the CA certificates only:
	// our certificate and key, loaded over VICI above, are gone; the authority stays.
	caOnly := t.TempDir()
	for _, rel := range []string{"x509ca/goipsec-ca.pem", "x509ca/strongswan-ca.pem"} {
		b, _ := os.ReadFile(filepath.Join(swanDir, rel))
		writeFile(t, caOnly, rel, b)
	}
	writeFile(t, caOnly, "swanctl.conf", []byte("secrets {\n}\n"))
	swanctlAt(t, g.vici, "--load-creds", "--clear", "--noprompt", "--file", filepath.Join(caOnly, "swanctl.conf"))
	out = swanctlAt(t, g.vici, "--list-certs")
	if strings.Contains(out, "CN=moon.example.org") || strings.Contains(out, "has private key") || !strings.Contains(out, "CN=strongSwan Root CA") {
		t.Fatalf("swanctl --list-certs after --load-creds --clear:\n%s", out)
	}
	if out := swanctlAt(t, g.vici, "--list-authorities"); !strings.Contains(out, "strongswan:") {
		t.Fatalf("authority gone after clear-creds:\n%s", out)
	}
}
