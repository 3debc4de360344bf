package interop

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Certificate interop with strongSwan 5.9.8, driven the way users do it: goipsec's side is made by
// `goipsec pki`, strongSwan's by strongSwan's `pki`, each loaded from its swanctl directory layout
// (x509ca/, x509/, private/) by `goipsec run -c` and by charon.

const (
	goipsecCADN = "C=CH, O=goipsec test, CN=goipsec Root CA"
	swanCADN    = "C=CH, O=strongSwan test, CN=strongSwan Root CA"
	moonID      = "moon.example.org" // goipsec
	sunID       = "sun.example.org"  // charon
)

// runTool runs a CLI tool and returns what it wrote to standard output.
func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func writeFile(t *testing.T, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// certSetup is a goipsec swanctl directory (gdir) and charon's credential files.
type certSetup struct {
	gdir      string
	swanFiles map[string][]byte
	tmp       string
}

// newCertSetup makes goipsec's CA and certificate with goipsec pki (key type gKey) and
// strongSwan's CA and certificate with strongSwan's pki (key type sKey, e.g. "ecdsa 256",
// "rsa 3072", "ed25519"). Both sides trust both CAs. swanIssue adds arguments to the issuing of
// charon's certificate (CRL URIs, validity).
func newCertSetup(t *testing.T, gKey, sKey string, swanIssue ...string) *certSetup {
	t.Helper()
	testnet.Require(t, "pki")
	g := goipsecBinary(t)
	s := &certSetup{gdir: t.TempDir(), tmp: t.TempDir(), swanFiles: map[string][]byte{}}
	tmp := func(n string) string { return filepath.Join(s.tmp, n) }

	runTool(t, g, "pki", "key", "--type", "ecdsa384", "--out", tmp("gca.key"))
	runTool(t, g, "pki", "ca", "--key", tmp("gca.key"), "--dn", goipsecCADN, "--out", tmp("gca.pem"))
	os.MkdirAll(filepath.Join(s.gdir, "private"), 0o700)
	runTool(t, g, "pki", "key", "--type", gKey, "--out", filepath.Join(s.gdir, "private", "moon.key"))
	moon := runTool(t, g, "pki", "issue", "--cacert", tmp("gca.pem"), "--cakey", tmp("gca.key"), "--key", filepath.Join(s.gdir, "private", "moon.key"),
		"--dn", "C=CH, O=goipsec test, CN="+moonID, "--san", moonID, "--flag", "serverAuth", "--flag", "clientAuth")
	writeFile(t, s.gdir, "x509/moon.pem", moon)
	gca, _ := os.ReadFile(tmp("gca.pem"))

	swanKey := strings.Fields(sKey)
	genArgs := []string{"--gen", "--type", swanKey[0], "--outform", "pem"}
	if len(swanKey) > 1 {
		genArgs = append(genArgs, "--size", swanKey[1])
	}
	writeFile(t, s.tmp, "sca.key", runTool(t, "pki", "--gen", "--type", "ecdsa", "--size", "256", "--outform", "pem"))
	sca := runTool(t, "pki", "--self", "--ca", "--in", tmp("sca.key"), "--dn", swanCADN, "--outform", "pem")
	writeFile(t, s.tmp, "sca.pem", sca)
	sunKey := runTool(t, "pki", genArgs...)
	writeFile(t, s.tmp, "sun.key", sunKey)
	pub := runTool(t, "pki", "--pub", "--in", tmp("sun.key"), "--outform", "pem")
	writeFile(t, s.tmp, "sun.pub", pub)
	args := append([]string{"--issue", "--cacert", tmp("sca.pem"), "--cakey", tmp("sca.key"), "--type", "pub", "--in", tmp("sun.pub"),
		"--dn", "C=CH, O=strongSwan test, CN=" + sunID, "--san", sunID, "--flag", "serverAuth", "--outform", "pem"}, swanIssue...)
	sun := runTool(t, "pki", args...)

	writeFile(t, s.gdir, "x509ca/goipsec-ca.pem", gca)
	writeFile(t, s.gdir, "x509ca/strongswan-ca.pem", sca)
	s.swanFiles["x509ca/goipsec-ca.pem"] = gca
	s.swanFiles["x509ca/strongswan-ca.pem"] = sca
	s.swanFiles["x509/sun.pem"] = sun
	s.swanFiles["private/sun.key"] = sunKey
	return s
}

// certSwanConf is charon's connection: its certificate, expecting goipsec's identity.
func certSwanConf(localAuth, remoteAuth, remoteID string) string {
	return fmt.Sprintf(`connections {
  gt {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    local {
      auth = %s
      certs = sun.pem
      id = %s
    }
    remote {
      auth = %s
      id = %s
    }
    children {
      net {
        local_ts = %s
        remote_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
`, rightOuter, leftOuter, localAuth, sunID, remoteAuth, remoteID, rightNet4, leftNet4)
}

// certGoipsecConf is goipsec's side.
func certGoipsecConf(localAuth, remoteAuth, remoteID, remoteExtra string, initiate bool) string {
	start := ""
	if initiate {
		start = "        start_action = start\n"
	}
	return fmt.Sprintf(`connections {
  gt {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = %s
      certs = moon.pem
      id = %s
    }
    remote {
      auth = %s
      id = %s
%s    }
    children {
      net {
        local_ts = %s
        remote_ts = %s
        esp_proposals = aes256gcm16
%s      }
    }
  }
}
daemon {
  log {
    level = debug
  }
}
`, leftOuter, rightOuter, localAuth, moonID, remoteAuth, remoteID, remoteExtra, leftNet4, rightNet4, start)
}

// reSwanAuth matches charon's log of a successful authentication and the scheme used.
var reSwanAuth = regexp.MustCompile(`authentication of '([^']+)' (\(myself\) )?with (\S+) successful`)

// swanSchemes returns the signature schemes charon logged for its own and the peer's AUTH.
func swanSchemes(log string) (own, peer string) {
	for _, m := range reSwanAuth.FindAllStringSubmatch(log, -1) {
		if m[2] != "" {
			own = m[3]
		} else {
			peer = m[3]
		}
	}
	return own, peer
}

func TestStrongSwanCertificates(t *testing.T) {
	for _, tc := range []struct {
		name         string
		gKey, sKey   string
		gAuth, sAuth string
		// The schemes charon logs: the one goipsec used (peer) and its own.
		wantPeer, wantOwn string
	}{
		{"rsa-pkcs1", "rsa", "rsa 3072", "pubkey", "pubkey", "RSA_EMSA_PKCS1_SHA2_256", "RSA_EMSA_PKCS1_SHA2_256"},
		{"rsa-pss", "rsa", "rsa 3072", "rsa/pss", "rsa/pss-sha256", "RSA_EMSA_PSS_SHA2_256_SALT_32", "RSA_EMSA_PSS_SHA2_256_SALT_32"},
		{"ecdsa-p256", "ecdsa", "ecdsa 256", "pubkey", "pubkey", "ECDSA_WITH_SHA256_DER", "ECDSA_WITH_SHA256_DER"},
		{"ecdsa-p384", "ecdsa384", "ecdsa 384", "pubkey", "pubkey", "ECDSA_WITH_SHA384_DER", "ECDSA_WITH_SHA384_DER"},
		{"ed25519", "ed25519", "ed25519", "pubkey", "pubkey", "ED25519", "ED25519"},
	} {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				cs := newCertSetup(t, tc.gKey, tc.sKey)
				_, left, right := setup(t)
				c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf(tc.sAuth, "pubkey", moonID), Files: cs.swanFiles})
				g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf(tc.gAuth, "pubkey", sunID, "", goipsecInitiates))
				if !goipsecInitiates {
					c.Initiate(t, "net")
				}
				c.WaitEstablished(t, "gt", 30*time.Second)
				g.waitLog(t, "Child SA established", 10*time.Second)
				own, peer := swanSchemes(c.Log())
				if own != tc.wantOwn || peer != tc.wantPeer {
					t.Fatalf("charon authenticated itself with %q and goipsec with %q, want %q and %q", own, peer, tc.wantOwn, tc.wantPeer)
				}
				if ok, out := left.Ping(t, rightInner4, 2); !ok {
					t.Fatalf("ping through the tunnel:\n%s", out)
				}
				if ok, out := right.Ping(t, leftInner4, 2); !ok {
					t.Fatalf("ping back through the tunnel:\n%s", out)
				}
			})
		}
	}
}

// TestStrongSwanCertificateChain: each side's certificate is issued by an intermediate CA that
// only that side holds and sends in a CERT payload (goipsec's in x509/, charon's in its x509ca/);
// each side trusts the other's root only and builds the chain through the intermediate it
// received. Both roles.
func TestStrongSwanCertificateChain(t *testing.T) {
	for _, goipsecInitiates := range []bool{true, false} {
		t.Run(roleName(goipsecInitiates), func(t *testing.T) { testCertificateChain(t, goipsecInitiates) })
	}
}

func roleName(goipsecInitiates bool) string {
	if goipsecInitiates {
		return "goipsec-initiator"
	}
	return "goipsec-responder"
}

func testCertificateChain(t *testing.T, goipsecInitiates bool) {
	cs := newCertSetup(t, "ecdsa", "ecdsa 256")
	tmp := func(n string) string { return filepath.Join(cs.tmp, n) }
	writeFile(t, cs.tmp, "inter.key", runTool(t, "pki", "--gen", "--type", "ecdsa", "--size", "256", "--outform", "pem"))
	interPub := runTool(t, "pki", "--pub", "--in", tmp("inter.key"), "--outform", "pem")
	writeFile(t, cs.tmp, "inter.pub", interPub)
	inter := runTool(t, "pki", "--issue", "--cacert", tmp("sca.pem"), "--cakey", tmp("sca.key"), "--type", "pub", "--in", tmp("inter.pub"),
		"--dn", "C=CH, O=strongSwan test, CN=strongSwan Intermediate CA", "--ca", "--outform", "pem")
	writeFile(t, cs.tmp, "inter.pem", inter)
	sun := runTool(t, "pki", "--issue", "--cacert", tmp("inter.pem"), "--cakey", tmp("inter.key"), "--type", "pub", "--in", tmp("sun.pub"),
		"--dn", "C=CH, O=strongSwan test, CN="+sunID, "--san", sunID, "--flag", "serverAuth", "--outform", "pem")
	cs.swanFiles["x509/sun.pem"] = sun
	cs.swanFiles["x509ca/inter.pem"] = inter
	// goipsec's intermediate, made by goipsec pki, lies in x509/ (sent, not trusted) and is not
	// among charon's files.
	const gInterDN = "C=CH, O=goipsec test, CN=goipsec Intermediate CA"
	gbin := goipsecBinary(t)
	runTool(t, gbin, "pki", "key", "--type", "ecdsa", "--out", tmp("ginter.key"))
	runTool(t, gbin, "pki", "issue", "--ca", "--cacert", tmp("gca.pem"), "--cakey", tmp("gca.key"), "--key", tmp("ginter.key"), "--dn", gInterDN, "--out", tmp("ginter.pem"))
	ginter, _ := os.ReadFile(tmp("ginter.pem"))
	writeFile(t, cs.gdir, "x509/goipsec-inter.pem", ginter)
	writeFile(t, cs.gdir, "x509/moon.pem", runTool(t, gbin, "pki", "issue", "--cacert", tmp("ginter.pem"), "--cakey", tmp("ginter.key"),
		"--key", filepath.Join(cs.gdir, "private", "moon.key"), "--dn", "C=CH, O=goipsec test, CN="+moonID, "--san", moonID, "--flag", "serverAuth", "--flag", "clientAuth"))

	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
	conf := certGoipsecConf("pubkey", "pubkey", sunID, "      cacerts = strongswan-ca.pem\n", goipsecInitiates)
	conf = strings.Replace(conf, "daemon {\n", "daemon {\n  metrics_listen = 127.0.0.1:9464\n", 1)
	g := startGoipsecIn(t, left, cs.gdir, conf)
	if !goipsecInitiates {
		c.Initiate(t, "net")
	}
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	if ok, out := left.Ping(t, rightInner4, 2); !ok {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}
	// charon got goipsec's intermediate from goipsec's CERT payloads and used it.
	for _, want := range []string{`received issuer cert "` + gInterDN + `"`, `using untrusted intermediate certificate "` + gInterDN + `"`} {
		if !strings.Contains(c.Log(), want) {
			t.Fatalf("charon's log lacks %q:\n%s", want, grepLines(c.Log(), "cert"))
		}
	}
	if !goipsecInitiates {
		return
	}
	// status, doctor and the expiry metric show our certificate and the peer's.
	out, err := exec.Command(goipsecBinary(t), "status", "--socket", g.vici).CombinedOutput()
	if err != nil {
		t.Fatalf("goipsec status: %v\n%s", err, out)
	}
	for _, want := range []string{"C=CH, O=goipsec test, CN=moon.example.org", "gt (local)", "gt (peer " + sunID + ")", "CN=sun.example.org"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("goipsec status lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(goipsecBinary(t), "doctor", "gt", "--socket", g.vici).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `certificate "C=CH, O=strongSwan test, CN=sun.example.org" (peer `+sunID+`) issued by "C=CH, O=strongSwan test, CN=strongSwan Intermediate CA"`) {
		t.Fatalf("goipsec doctor: %v\n%s", err, out)
	}
	var metrics string
	// The connection is dialled inside the namespace (Do pins this thread to it); the request
	// is then written on it directly, since http.Client would dial from other threads.
	if err := left.Do(func() error {
		conn, err := net.Dial("tcp", "127.0.0.1:9464")
		if err != nil {
			return err
		}
		defer conn.Close()
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9464/metrics", nil)
		if err := req.Write(conn); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		metrics = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`goipsec_certificate_expiry_days\{kind="end_entity",serial="[0-9a-f]+",subject="C=CH, O=goipsec test, CN=moon.example.org"\} 8[0-9]{2}\.`).MatchString(metrics) {
		t.Fatalf("no expiry metric for our certificate:\n%s", grepLines(metrics, "certificate_expiry"))
	}
}

// serveInNS serves files over HTTP on addr inside a namespace (the listening socket is created
// there) and counts the requests.
func serveInNS(t *testing.T, ns *testnet.NS, addr string, files map[string][]byte) *atomic.Int32 {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &hits
}

// TestStrongSwanCertificateRefusals: goipsec refuses charon's certificate and logs the cause in one
// line: revoked (by a CRL fetched over HTTP from a server inside charon's namespace), expired, an
// identity that is not in the certificate, and an identity other than the one configured.
func TestStrongSwanCertificateRefusals(t *testing.T) {
	t.Run("revoked-crl-over-http", func(t *testing.T) {
		crlURI := "http://" + rightOuter + ":8080/strongswan.crl"
		cs := newCertSetup(t, "ecdsa", "ecdsa 256", "--crl", crlURI)
		tmp := func(n string) string { return filepath.Join(cs.tmp, n) }
		writeFile(t, cs.tmp, "sun.pem", cs.swanFiles["x509/sun.pem"])
		crl := runTool(t, "pki", "--signcrl", "--cacert", tmp("sca.pem"), "--cakey", tmp("sca.key"), "--reason", "key-compromise", "--cert", tmp("sun.pem"), "--outform", "der")
		_, left, right := setup(t)
		hits := serveInNS(t, right, rightOuter+":8080", map[string][]byte{"/strongswan.crl": crl})
		strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
		g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf("pubkey", "pubkey", sunID, "", true))
		lines := g.waitLogCount(t, 1, 30*time.Second, "negotiation failed")
		why := logAttr(lines[0], "why")
		for _, want := range []string{"was revoked by \"C=CH, O=strongSwan test, CN=strongSwan Root CA\"", "key compromise", crlURI, sunID} {
			if !strings.Contains(why, want) {
				t.Fatalf("failure %q lacks %q", why, want)
			}
		}
		if hits.Load() == 0 {
			t.Fatal("the CRL was never fetched")
		}
	})
	t.Run("expired", func(t *testing.T) {
		cs := newCertSetup(t, "ecdsa", "ecdsa 256", "--not-before", "01.01.20 00:00:00", "--not-after", "01.01.21 00:00:00")
		_, left, right := setup(t)
		// charon itself would not send an expired certificate as initiator; it answers goipsec.
		strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
		g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf("pubkey", "pubkey", sunID, "", true))
		lines := g.waitLogCount(t, 1, 30*time.Second, "negotiation failed")
		why := logAttr(lines[0], "why")
		if !strings.Contains(why, "expired on 2021-01-01") || !strings.Contains(why, sunID) {
			t.Fatalf("failure %q", why)
		}
	})
	t.Run("identity-not-in-certificate", func(t *testing.T) {
		// charon claims venus.example.org but authenticates with sun's certificate (subject and
		// subjectAltName sun.example.org); goipsec, configured for venus, refuses the certificate.
		cs := newCertSetup(t, "ecdsa", "ecdsa 256")
		_, left, right := setup(t)
		swanConf := strings.Replace(certSwanConf("pubkey", "pubkey", moonID), "id = "+sunID+"\n", "id = venus.example.org\n", 1)
		c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swanConf, Files: cs.swanFiles})
		g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf("pubkey", "pubkey", "venus.example.org", "", false))
		c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "10")
		lines := g.waitLogCount(t, 1, 30*time.Second, "negotiation failed")
		why := logAttr(lines[0], "why")
		if want := `identity venus.example.org is not in the peer's certificate (it holds "C=CH, O=strongSwan test, CN=sun.example.org", sun.example.org)`; !strings.Contains(why, want) {
			t.Fatalf("failure %q, want %q", why, want)
		}
		if !strings.Contains(c.Log(), "received AUTHENTICATION_FAILED notify error") {
			t.Fatalf("charon was not told:\n%s", grepLines(c.Log(), "AUTH"))
		}
	})
	t.Run("wrong-identity", func(t *testing.T) {
		cs := newCertSetup(t, "ecdsa", "ecdsa 256")
		_, left, right := setup(t)
		c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
		g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf("pubkey", "pubkey", "venus.example.org", "", false))
		c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "10")
		lines := g.waitLogCount(t, 1, 30*time.Second, "negotiation failed")
		why := logAttr(lines[0], "why")
		if !strings.Contains(why, "no connection for peer identity "+sunID) || !strings.Contains(why, "expects venus.example.org") {
			t.Fatalf("failure %q", why)
		}
	})
}

// TestStrongSwanCertificateEKU: extended key usages are not checked, by charon 5.9.8 nor by
// goipsec (docs/certificates.md): both certificates carry OCSPSigning as their only extended key
// usage (no serverAuth, clientAuth or ipsecIKE), and each side accepts the other's.
func TestStrongSwanCertificateEKU(t *testing.T) {
	cs := newCertSetup(t, "ecdsa", "ecdsa 256")
	tmp := func(n string) string { return filepath.Join(cs.tmp, n) }
	cs.swanFiles["x509/sun.pem"] = runTool(t, "pki", "--issue", "--cacert", tmp("sca.pem"), "--cakey", tmp("sca.key"), "--type", "pub", "--in", tmp("sun.pub"),
		"--dn", "C=CH, O=strongSwan test, CN="+sunID, "--san", sunID, "--flag", "ocspSigning", "--outform", "pem")
	moon := runTool(t, goipsecBinary(t), "pki", "issue", "--cacert", tmp("gca.pem"), "--cakey", tmp("gca.key"), "--key", filepath.Join(cs.gdir, "private", "moon.key"),
		"--dn", "C=CH, O=goipsec test, CN="+moonID, "--san", moonID, "--flag", "ocspSigning")
	writeFile(t, cs.gdir, "x509/moon.pem", moon)
	for _, b := range [][]byte{moon, cs.swanFiles["x509/sun.pem"]} {
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning || len(c.UnknownExtKeyUsage) != 0 {
			t.Fatalf("certificate %q: EKU %v %v, want OCSPSigning only (%v)", c.Subject, c.ExtKeyUsage, c.UnknownExtKeyUsage, err)
		}
	}
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: certSwanConf("pubkey", "pubkey", moonID), Files: cs.swanFiles})
	g := startGoipsecIn(t, left, cs.gdir, certGoipsecConf("pubkey", "pubkey", sunID, "", true))
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	if ok, out := left.Ping(t, rightInner4, 2); !ok {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}
}

// TestStrongSwanRawPublicKeys: both sides authenticate with raw public keys (pubkeys =), no
// certificates. Both roles.
func TestStrongSwanRawPublicKeys(t *testing.T) {
	for _, goipsecInitiates := range []bool{true, false} {
		t.Run(roleName(goipsecInitiates), func(t *testing.T) { testRawPublicKeys(t, goipsecInitiates) })
	}
}

func testRawPublicKeys(t *testing.T, goipsecInitiates bool) {
	testnet.Require(t, "pki")
	g := goipsecBinary(t)
	gdir := t.TempDir()
	runTool(t, g, "pki", "key", "--type", "ed25519", "--out", writeFile(t, gdir, "private/moon.key", nil))
	moonPub := runTool(t, g, "pki", "pub", "--in", filepath.Join(gdir, "private", "moon.key"))
	sunKey := runTool(t, "pki", "--gen", "--type", "ed25519", "--outform", "pem")
	tmpKey := writeFile(t, t.TempDir(), "sun.key", sunKey)
	sunPub := runTool(t, "pki", "--pub", "--in", tmpKey, "--outform", "pem")
	writeFile(t, gdir, "pubkey/moon.pub", moonPub)
	writeFile(t, gdir, "pubkey/sun.pub", sunPub)
	swanConf := fmt.Sprintf(`connections {
  gt {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    local {
      auth = pubkey
      id = %s
      pubkeys = sun.pub
    }
    remote {
      auth = pubkey
      id = %s
      pubkeys = moon.pub
    }
    children {
      net {
        local_ts = %s
        remote_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
`, rightOuter, leftOuter, sunID, moonID, rightNet4, leftNet4)
	conf := strings.Replace(certGoipsecConf("pubkey", "pubkey", sunID, "      pubkeys = sun.pub\n", goipsecInitiates), "      certs = moon.pem\n", "      pubkeys = moon.pub\n", 1)
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swanConf, Files: map[string][]byte{"pubkey/moon.pub": moonPub, "pubkey/sun.pub": sunPub, "private/sun.key": sunKey}})
	gp := startGoipsecIn(t, left, gdir, conf)
	if !goipsecInitiates {
		c.Initiate(t, "net")
	}
	c.WaitEstablished(t, "gt", 30*time.Second)
	gp.waitLog(t, "Child SA established", 10*time.Second)
	if own, peer := swanSchemes(c.Log()); own != "ED25519" || peer != "ED25519" {
		t.Fatalf("schemes %q %q", own, peer)
	}
	if ok, out := left.Ping(t, rightInner4, 2); !ok {
		t.Fatalf("ping:\n%s", out)
	}
}
