package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/internal/testnet"
)

func runPKI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"pki"}, args...))
	err := root.Execute()
	return out.String(), err
}

func mustPKI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runPKI(t, args...)
	if err != nil {
		t.Fatalf("goipsec pki %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestPKI makes a CA, an intermediate CA, a gateway certificate and a CRL with goipsec pki, checks
// what they carry, and has goipsec's own verification and strongSwan's `pki --verify` accept the
// chain (strongSwan's pki comes with scripts/deps.sh).
func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, kt := range []string{"ecdsa", "ecdsa384", "ed25519", "rsa"} {
		mustPKI(t, "key", "--type", kt, "--out", p(kt+".key"))
		if out := mustPKI(t, "print", p(kt+".key")); !strings.Contains(out, "private key") {
			t.Fatalf("print %s key: %s", kt, out)
		}
	}
	mustPKI(t, "ca", "--key", p("ecdsa384.key"), "--dn", "C=CH, O=goipsec test, CN=Root CA", "--out", p("ca.pem"))
	mustPKI(t, "issue", "--cacert", p("ca.pem"), "--cakey", p("ecdsa384.key"), "--key", p("rsa.key"), "--ca", "--pathlen", "0",
		"--dn", "C=CH, O=goipsec test, CN=Intermediate CA", "--out", p("inter.pem"))
	mustPKI(t, "issue", "--cacert", p("inter.pem"), "--cakey", p("rsa.key"), "--key", p("ecdsa.key"),
		"--san", "vpn.example.com", "--san", "192.0.2.1", "--crl", "http://192.0.2.9/inter.crl", "--out", p("gw.pem"))
	out := mustPKI(t, "print", p("gw.pem"))
	for _, want := range []string{"subject:    CN=vpn.example.com", "altNames:   vpn.example.com, 192.0.2.1", "flags:      serverAuth, ikeIntermediate", "CRL URI:    http://192.0.2.9/inter.crl"} {
		if !strings.Contains(out, want) {
			t.Errorf("print gw.pem lacks %q:\n%s", want, out)
		}
	}
	// Native clients check the dialled name in subjectAltName and the serverAuth EKU.
	cs, err := credentials.LoadCertFile(p("gw.pem"))
	if err != nil || len(cs[0].DNSNames) != 1 || len(cs[0].ExtKeyUsage) != 1 || cs[0].NotAfter.Sub(cs[0].NotBefore).Hours() > 825*24 {
		t.Fatalf("gateway certificate: %v", err)
	}
	out = mustPKI(t, "verify", "--cacert", p("ca.pem"), "--intermediate", p("inter.pem"), "--id", "vpn.example.com", p("gw.pem"))
	if !strings.Contains(out, `issued by "C=CH, O=goipsec test, CN=Intermediate CA"`) {
		t.Fatalf("verify: %s", out)
	}
	if _, err := runPKI(t, "verify", "--cacert", p("ca.pem"), p("gw.pem")); err == nil || !strings.Contains(err.Error(), "no path to a trusted CA") {
		t.Fatalf("verify without the intermediate: %v", err)
	}
	if _, err := runPKI(t, "verify", "--cacert", p("ca.pem"), "--intermediate", p("inter.pem"), "--id", "other.example.com", p("gw.pem")); err == nil || !strings.Contains(err.Error(), "not in the peer's certificate") {
		t.Fatalf("verify with another name: %v", err)
	}
	mustPKI(t, "crl", "--cacert", p("inter.pem"), "--cakey", p("rsa.key"), "--revoke", p("gw.pem"), "--out", p("inter.crl"))
	if out := mustPKI(t, "print", p("inter.crl")); !strings.Contains(out, "revoked:     1") {
		t.Fatalf("print crl: %s", out)
	}

	// strongSwan's own tool accepts the chain.
	testnet.Require(t, "pki")
	cmd := exec.Command("pki", "--verify", "--in", p("gw.pem"), "--cacert", p("inter.pem"), "--cacert", p("ca.pem"))
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "certificate trusted") {
		t.Fatalf("strongSwan pki --verify: %v\n%s", err, b)
	}
}
