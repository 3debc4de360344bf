package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"

	"github.com/goipsec/goipsec/credentials/pki"
)

// checkCredsConf names good, missing and broken credential files; each problem must be reported
// at the line of its setting.
const checkCredsConf = `connections {
    gw {
        remote_addrs = 192.0.2.2
        local {
            auth = pubkey
            certs = gw.pem
        }
        remote {
            auth = pubkey
            cacerts = ca.pem, missing-ca.pem
            pubkeys = bad.pub
        }
        children {
            net {
                remote_ts = 10.2.0.0/24
            }
        }
    }
    client {
        remote_addrs = 192.0.2.3
        local {
            auth = pubkey
            certs = nokey.pem
        }
        remote {
            auth = pubkey
            certs = /nonexistent/peer.pem
        }
        children {
            net {
                remote_ts = 10.3.0.0/24
            }
        }
    }
}
authorities {
    other {
        cacert = key-not-cert.pem
    }
}
secrets {
    private-enc {
        file = enc.pem
        secret = "not the passphrase"
    }
}
`

// lineOf is the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the text", s)
	return 0
}

// TestCheckCredentials: check loads the swanctl folders next to the configuration and every file
// a setting names, as the daemon does, with --offline too: a missing or unparsable named file is
// an error at its setting's line naming the file and what is wrong; a bad file in a folder is an
// error naming the file; a local certificate without its private key is a warning.
func TestCheckCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "goipsec.conf")
	writeFile(t, path, checkCredsConf)
	now := time.Now()
	caKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	ca, err := pki.Issue(pki.Request{Subject: "CN=CA", CA: true, PathLen: -1}, caKey.Public(), nil, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	gwKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	gw, _ := pki.Issue(pki.Request{SANs: []string{"gw.example.org"}}, gwKey.Public(), ca, caKey, now)
	otherKey, _ := pki.GenerateKey(pki.Ed25519, nil)
	nokey, _ := pki.Issue(pki.Request{SANs: []string{"client.example.org"}}, otherKey.Public(), ca, caKey, now)
	gwKeyPEM, _ := pki.KeyPEM(gwKey)
	encDER, err := pkcs8.MarshalPrivateKey(otherKey, []byte("the passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"x509ca/ca.pem":             pki.CertPEM(ca),
		"x509/gw.pem":               pki.CertPEM(gw),
		"x509/nokey.pem":            pki.CertPEM(nokey),
		"private/gw.key":            gwKeyPEM,
		"private/enc.pem":           encDER,
		"pubkey/bad.pub":            []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
		"x509ca/key-not-cert.pem":   gwKeyPEM,
		"x509/stray.pem":            []byte("not a certificate"),
		"x509crl/truncated.crl.der": []byte{0x30, 0x82, 0x01},
	}
	for rel, data := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o700)
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	at := func(key string) string { return fmt.Sprintf("%s:%d: ", path, lineOf(t, checkCredsConf, key)) }
	wants := []string{
		at("cacerts = ca.pem, missing-ca.pem") + "error: connections.gw.remote.cacerts = missing-ca.pem: " + filepath.Join(dir, "x509ca", "missing-ca.pem") + ": no such file",
		at("pubkeys = bad.pub") + "error: connections.gw.remote.pubkeys = bad.pub: " + filepath.Join(dir, "pubkey", "bad.pub") + ": ",
		at("certs = /nonexistent/peer.pem") + "error: connections.client.remote.certs = /nonexistent/peer.pem: /nonexistent/peer.pem: no such file",
		at("cacert = key-not-cert.pem") + "error: authorities.other.cacert = key-not-cert.pem: " + filepath.Join(dir, "x509ca", "key-not-cert.pem") + ": ",
		at("file = enc.pem") + "error: secrets.private-enc.file = enc.pem: " + filepath.Join(dir, "private", "enc.pem") + ": private key is encrypted and secrets has no matching private-<name> { file = enc.pem",
		filepath.Join(dir, "x509", "stray.pem") + ": error: ",
		filepath.Join(dir, "x509crl", "truncated.crl.der") + ": error: ",
		at("certs = nokey.pem") + "warning: connections.client.local.certs = nokey.pem: no private key for it in private/",
		path + ": test failed: 7 errors, 1 warning",
	}
	var out bytes.Buffer
	n := checkConfig(context.Background(), &out, path, checkEnv{}) // checkEnv{} is --offline
	report := out.String()
	for _, want := range wants {
		if !strings.Contains(report, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if n != 7 || strings.Contains(report, "gw.pem") {
		t.Errorf("%d errors; gw.pem, which loads and has its key, must not be reported", n)
	}
	// The folder file that a setting names is reported once, at the setting.
	if c := strings.Count(report, "key-not-cert.pem"); c != 2 { // the setting and the value
		t.Errorf("key-not-cert.pem appears %d times", c)
	}
	for _, line := range strings.Split(strings.TrimSpace(report), "\n") {
		if !strings.HasPrefix(line, dir) {
			t.Errorf("line without the file it is about: %q", line)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", report)
	}

	// The binary with --offline: the same report, exit status 1.
	if !testing.Short() {
		bin, err := exec.Command(goipsecBinary(t), "check", "--offline", "-c", path).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || string(bin) != report {
			t.Fatalf("goipsec check --offline: %v\n%s", err, bin)
		}
	}

	// Repaired: no errors.
	os.Remove(filepath.Join(dir, "x509", "stray.pem"))
	os.Remove(filepath.Join(dir, "x509crl", "truncated.crl.der"))
	os.WriteFile(filepath.Join(dir, "x509ca", "missing-ca.pem"), pki.CertPEM(ca), 0o600)
	pub, _ := pki.PublicKeyPEM(otherKey.Public())
	os.WriteFile(filepath.Join(dir, "pubkey", "bad.pub"), pub, 0o600)
	os.WriteFile(filepath.Join(dir, "x509ca", "key-not-cert.pem"), pki.CertPEM(ca), 0o600)
	keyPEM, _ := pki.KeyPEM(otherKey)
	os.WriteFile(filepath.Join(dir, "private", "enc.pem"), keyPEM, 0o600) // the key of nokey.pem, unencrypted
	writeFile(t, path, strings.Replace(checkCredsConf, "certs = /nonexistent/peer.pem", "certs = nokey.pem", 1))
	out.Reset()
	if n := checkConfig(context.Background(), &out, path, checkEnv{}); n != 0 || !strings.Contains(out.String(), "syntax is ok, test is successful") {
		t.Fatalf("repaired (%d errors):\n%s", n, out.String())
	}
}
