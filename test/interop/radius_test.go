package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// RADIUS: a goipsec gateway relays its clients' EAP to FreeRADIUS 3.2 (started by the test in
// the gateway's namespace), takes the client's address from Framed-IP-Address, echoes Class in
// accounting with byte counters, fails over from a dead first server, and ends a session on the
// server's Disconnect-Request (RFC 5176).

const (
	radiusSecret = "radius-test-secret"
	radiusVIP    = "10.3.0.77"
)

// freeRADIUS is a FreeRADIUS server with its own minimal configuration (EAP-MD5, EAP-MSCHAPv2
// and optionally EAP-TLS, the users file, accounting into a detail file).
type freeRADIUS struct {
	dir string
	p   *testnet.Process
}

func startFreeRADIUS(t *testing.T, ns *testnet.NS, client string) *freeRADIUS {
	t.Helper()
	return startFreeRADIUSWith(t, ns, client, "")
}

// startFreeRADIUSWith is startFreeRADIUS with more entries in the users file.
func startFreeRADIUSWith(t *testing.T, ns *testnet.NS, client, moreUsers string) *freeRADIUS {
	t.Helper()
	return startFreeRADIUSTLS(t, ns, client, moreUsers, nil)
}

// startFreeRADIUSTLS is startFreeRADIUSWith with EAP-TLS when pki is not nil: the eap module's
// tls sub-module presents pki's server certificate and accepts clients whose certificate pki's
// CA issued.
func startFreeRADIUSTLS(t *testing.T, ns *testnet.NS, client, moreUsers string, pki *radiusPKI) *freeRADIUS {
	t.Helper()
	testnet.Require(t, "freeradius", "radclient")
	dir, err := os.MkdirTemp("", "gtradius-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"log", "run", "radacct"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	tls := ""
	if pki != nil {
		writeFile(t, dir, "certs/ca.pem", pki.ca)
		writeFile(t, dir, "certs/server.pem", pki.server)
		writeFile(t, dir, "certs/server.key", pki.serverKey)
		tls = freeRADIUSTLS
	}
	conf := strings.Replace(freeRADIUSConf, "    TLS\n", tls, 1)
	conf = strings.ReplaceAll(conf, "DIR", dir)
	conf = strings.ReplaceAll(conf, "CLIENT", client)
	conf = strings.ReplaceAll(conf, "SECRET", radiusSecret)
	os.WriteFile(filepath.Join(dir, "radiusd.conf"), []byte(conf), 0o600)
	users := fmt.Sprintf("carol Cleartext-Password := \"%s\"\n      Framed-IP-Address = %s,\n      Class = \"gold\"\n", eapPassword, radiusVIP) + moreUsers
	os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o600)
	p := ns.Start(t, "freeradius", "-X", "-f", "-d", dir)
	p.WaitOutput(t, "Ready to process requests", 20*time.Second)
	return &freeRADIUS{dir: dir, p: p}
}

// detail returns the accounting records FreeRADIUS wrote.
func (f *freeRADIUS) detail() string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "radacct", "detail"))
	return string(b)
}

const freeRADIUSConf = `prefix = /usr
exec_prefix = /usr
sysconfdir = DIR
localstatedir = DIR
sbindir = /usr/sbin
logdir = DIR/log
raddbdir = DIR
radacctdir = DIR/radacct
name = freeradius
confdir = DIR
modconfdir = DIR
run_dir = DIR/run
db_dir = DIR
libdir = /usr/lib/freeradius
dictdir = /usr/share/freeradius
pidfile = DIR/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
proxy_requests = no
log {
  destination = stdout
  colourise = no
  auth = yes
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}
client gw {
  ipaddr = CLIENT
  secret = SECRET
}
modules {
  files {
    filename = DIR/users
  }
  eap {
    default_eap_type = md5
    timer_expire = 60
    ignore_unknown_eap_types = no
    max_sessions = 4096
    md5 {
    }
    mschapv2 {
    }
    TLS
  }
  mschap {
  }
  pap {
  }
  chap {
  }
  detail {
    filename = DIR/radacct/detail
    permissions = 0600
    header = "%t"
  }
}
server default {
  listen {
    type = auth
    ipaddr = *
    port = 1812
  }
  listen {
    type = acct
    ipaddr = *
    port = 1813
  }
  authorize {
    eap {
      ok = return
    }
    files
    chap
    mschap
    pap
  }
  authenticate {
    eap
    Auth-Type PAP {
      pap
    }
    Auth-Type CHAP {
      chap
    }
    Auth-Type MS-CHAP {
      mschap
    }
  }
  preacct {
  }
  accounting {
    detail
  }
  post-auth {
  }
}
`

// freeRADIUSTLS is the eap module's EAP-TLS, pinned to TLS 1.2 (RFC 5216; TLS 1.3 for EAP is
// RFC 9190, which this test does not cover); no session cache, so every run is a full handshake.
const freeRADIUSTLS = `    tls-config tls-common {
      private_key_file = DIR/certs/server.key
      certificate_file = DIR/certs/server.pem
      ca_file = DIR/certs/ca.pem
      cipher_list = "DEFAULT"
      tls_min_version = "1.2"
      tls_max_version = "1.2"
      ecdh_curve = "prime256v1"
      cache {
        enable = no
      }
    }
    tls {
      tls = tls-common
    }
`

// radiusPKI is a CA made with goipsec pki, FreeRADIUS's server certificate (radiusServerID) and
// carol's client certificate (carolID), both issued by that CA.
type radiusPKI struct {
	ca, server, serverKey, carol, carolKey []byte
}

const (
	radiusServerID = "radius.example.org"
	carolID        = "carol@example.org"
)

func newRadiusPKI(t *testing.T) *radiusPKI {
	t.Helper()
	g := goipsecBinary(t)
	dir := t.TempDir()
	caKey, caPEM := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.pem")
	serverKey, carolKey := filepath.Join(dir, "server.key"), filepath.Join(dir, "carol.key")
	runTool(t, g, "pki", "key", "--type", "ecdsa", "--out", caKey)
	p := &radiusPKI{ca: runTool(t, g, "pki", "ca", "--key", caKey, "--dn", goipsecCADN)}
	writeFile(t, dir, "ca.pem", p.ca)
	runTool(t, g, "pki", "key", "--type", "ecdsa", "--out", serverKey)
	runTool(t, g, "pki", "key", "--type", "ecdsa", "--out", carolKey)
	p.server = runTool(t, g, "pki", "issue", "--cacert", caPEM, "--cakey", caKey, "--key", serverKey,
		"--dn", "C=CH, O=goipsec test, CN="+radiusServerID, "--san", radiusServerID, "--flag", "serverAuth")
	p.carol = runTool(t, g, "pki", "issue", "--cacert", caPEM, "--cakey", caKey, "--key", carolKey,
		"--dn", "C=CH, O=goipsec test, CN="+carolID, "--san", carolID, "--flag", "clientAuth")
	p.serverKey, _ = os.ReadFile(serverKey)
	p.carolKey, _ = os.ReadFile(carolKey)
	return p
}

// raRadiusGateway is goipsec relaying EAP to FreeRADIUS on 127.0.0.1, after a first server that
// does not answer (an address nobody has: the request times out).
func raRadiusGateway(extra string) string {
	gw := raGoipsecGateway("eap-radius\n      eap_id = %any", "")
	gw = strings.Replace(gw, "    pools = rw\n", "    pools = radius, rw\n", 1)
	return gw + radiusSection("  accounting = yes\n  accounting_interval = 2s\n"+extra)
}

// radiusSection is goipsec's radius section with extra settings: a first server that does not
// answer (an address nobody has: the request times out after 1 s), then FreeRADIUS on 127.0.0.1.
func radiusSection(extra string) string {
	return fmt.Sprintf(`radius {
  timeout = 1s
%s  servers {
    dead {
      address = 192.0.2.99
      secret = "%s"
      preference = 10
    }
    freeradius {
      address = 127.0.0.1
      secret = "%s"
    }
  }
}
`, extra, radiusSecret, radiusSecret)
}

// The relayed methods: EAP-MSCHAPv2 and EAP-MD5 with carol's password in the users file;
// EAP-TLS with her certificate (FreeRADIUS checks it against the CA and proves itself as
// radius.example.org, which charon checks as aaa_id); her certificate in a first round and
// EAP-MSCHAPv2 through RADIUS in a second (RFC 4739). Each ends with the server's
// Disconnect-Request and the accounting records are asserted.
func TestRemoteAccessRADIUS(t *testing.T) {
	const twoRounds = "    remote-1 {\n      auth = pubkey\n      id = " + carolID + "\n    }\n    remote-2 {\n      auth = eap-radius\n      eap_id = %any\n    }\n"
	for _, tc := range []struct {
		name, user, swan string
		gwRemote         string // the gateway's remote sections, when not one eap-radius round
		pki              bool   // FreeRADIUS with EAP-TLS; carol's certificate at charon, the CA at both
		eapLog           string
	}{
		{name: "eap-mschapv2", user: "carol", swan: raSwanClient("eap-mschapv2", "      eap_id = carol\n"),
			eapLog: "EAP method EAP_MSCHAPV2 succeeded, MSK established"},
		{name: "eap-md5", user: "carol", swan: raSwanClient("eap-md5", "      eap_id = carol\n"),
			eapLog: "EAP method EAP_MD5 succeeded, no MSK established"},
		{name: "eap-tls", user: carolID, pki: true,
			swan:   raSwanClient("eap-tls", "      certs = carol.pem\n      aaa_id = "+radiusServerID+"\n"),
			eapLog: "EAP method EAP_TLS succeeded, MSK established"},
		{name: "pubkey-then-eap-mschapv2", user: "carol", pki: true, gwRemote: twoRounds,
			swan: strings.Replace(strings.Replace(raSwanClient("pubkey", "      certs = carol.pem\n"), "    local {\n", "    local-1 {\n", 1),
				"    remote {\n", "    local-2 {\n      auth = eap-mschapv2\n      eap_id = carol\n    }\n    remote {\n", 1),
			eapLog: "EAP method EAP_MSCHAPV2 succeeded, MSK established"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, left, right := setup(t)
			var pki *radiusPKI
			gdir, files := t.TempDir(), map[string][]byte{}
			if tc.pki {
				pki = newRadiusPKI(t)
				writeFile(t, gdir, "x509ca/ca.pem", pki.ca)
				files["x509ca/ca.pem"], files["x509/carol.pem"], files["private/carol.key"] = pki.ca, pki.carol, pki.carolKey
			}
			users := fmt.Sprintf("%q\n      Framed-IP-Address = %s,\n      Class = \"gold\"\n", carolID, radiusVIP)
			fr := startFreeRADIUSTLS(t, left, "127.0.0.1", users, pki)
			daemon, _ := raDaemon(t)
			gw := raRadiusGateway("  dae {\n    enable = yes\n    listen = 127.0.0.1\n    secret = \"" + radiusSecret + "\"\n  }\n")
			if tc.gwRemote != "" {
				gw = strings.Replace(gw, "    remote {\n      auth = eap-radius\n      eap_id = %any\n    }\n", tc.gwRemote, 1)
			}
			g := startGoipsecIn(t, left, gdir, gw+daemon)
			swan := strings.Replace(tc.swan, "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Files: files, Plugins: append([]string{"eap-tls"}, eapPlugins...)})
			start := time.Now()
			c.Initiate(t, "net")
			c.WaitEstablished(t, "rw", 30*time.Second)
			t.Logf("established through RADIUS (with a failover) in %s", time.Since(start).Round(time.Millisecond))
			c.WaitLog(t, regexp.MustCompile(regexp.QuoteMeta(tc.eapLog)), 5*time.Second)
			if tc.gwRemote != "" {
				// The first round proved the IKE identity with carol's certificate.
				c.WaitLog(t, regexp.MustCompile(regexp.QuoteMeta("authentication of '"+carolID+"' (myself) with ECDSA")), time.Second)
				g.waitLog(t, "remote_id="+carolID, time.Second)
			}
			if sas := c.ListSAs(t); !regexp.MustCompile(`local\s+` + regexp.QuoteMeta(radiusVIP) + `/32`).MatchString(sas) {
				t.Fatalf("charon did not get the RADIUS server's Framed-IP-Address %s:\n%s", radiusVIP, sas)
			}
			g.waitLog(t, "RADIUS server did not answer, trying the next", time.Second)
			for _, dst := range []string{leftInner4} {
				if ok, out := right.Ping(t, dst, 5); !ok {
					t.Fatalf("ping from the virtual IP:\n%s", out)
				}
			}
			if ok, out := left.Ping(t, radiusVIP, 5); !ok {
				t.Fatalf("ping to the virtual IP:\n%s", out)
			}
			// An interim record carries the counters so far.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(fr.detail(), "Interim-Update") && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			// The server ends the session (Disconnect-Request); the gateway deletes the IKE SA.
			out := left.Run(t, "sh", "-c", "echo 'User-Name = \""+tc.user+"\"' | radclient -x 127.0.0.1:3799 disconnect "+radiusSecret)
			if !strings.Contains(out, "Disconnect-ACK") {
				t.Fatalf("radclient disconnect:\n%s", out)
			}
			c.WaitLog(t, regexp.MustCompile(`received DELETE for IKE_SA rw`), 10*time.Second)
			deadline = time.Now().Add(10 * time.Second)
			for !strings.Contains(fr.detail(), "Acct-Status-Type = Stop") && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			detail := fr.detail()
			records := strings.Split(detail, "\n\n")
			var startRec, stopRec, interim string
			for _, r := range records {
				switch {
				case strings.Contains(r, "Acct-Status-Type = Start"):
					startRec = r
				case strings.Contains(r, "Acct-Status-Type = Stop"):
					stopRec = r
				case strings.Contains(r, "Acct-Status-Type = Interim-Update"):
					interim = r
				}
			}
			if startRec == "" || stopRec == "" || interim == "" {
				t.Fatalf("accounting records (want Start, Interim-Update, Stop):\n%s", detail)
			}
			for _, rec := range []string{startRec, stopRec} {
				for _, want := range []string{`User-Name = "` + tc.user + `"`, `Class = 0x676f6c64`, `Framed-IP-Address = ` + radiusVIP, `NAS-Port-Type = Virtual`, `Acct-Session-Id = "`} {
					if !strings.Contains(rec, want) {
						t.Fatalf("record lacks %q:\n%s", want, rec)
					}
				}
			}
			in := regexp.MustCompile(`Acct-Input-Octets = (\d+)`).FindStringSubmatch(stopRec)
			outO := regexp.MustCompile(`Acct-Output-Octets = (\d+)`).FindStringSubmatch(stopRec)
			if in == nil || outO == nil || in[1] == "0" || outO[1] == "0" || !strings.Contains(stopRec, "Acct-Terminate-Cause = Admin-Reset") {
				t.Fatalf("stop record without traffic counters or cause:\n%s", stopRec)
			}
		})
	}
}
