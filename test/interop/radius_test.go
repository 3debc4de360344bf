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

// freeRADIUS is a FreeRADIUS server with its own minimal configuration (EAP-MD5 and
// EAP-MSCHAPv2, the users file, accounting into a detail file).
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
	testnet.Require(t, "freeradius", "radclient")
	dir, err := os.MkdirTemp("", "gtradius-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"log", "run", "radacct"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	conf := strings.ReplaceAll(freeRADIUSConf, "DIR", dir)
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

func TestRemoteAccessRADIUS(t *testing.T) {
	for _, method := range []string{"eap-mschapv2", "eap-md5"} {
		t.Run(method, func(t *testing.T) {
			_, left, right := setup(t)
			fr := startFreeRADIUS(t, left, "127.0.0.1")
			daemon, _ := raDaemon(t)
			g := startGoipsec(t, left, raRadiusGateway("  dae {\n    enable = yes\n    listen = 127.0.0.1\n    secret = \""+radiusSecret+"\"\n  }\n")+daemon)
			swan := raSwanClient(method, "      eap_id = carol\n")
			swan = strings.Replace(swan, "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
			start := time.Now()
			c.Initiate(t, "net")
			c.WaitEstablished(t, "rw", 30*time.Second)
			t.Logf("established through RADIUS (with a failover) in %s", time.Since(start).Round(time.Millisecond))
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
			out := left.Run(t, "sh", "-c", "echo 'User-Name = \"carol\"' | radclient -x 127.0.0.1:3799 disconnect "+radiusSecret)
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
				for _, want := range []string{`User-Name = "carol"`, `Class = 0x676f6c64`, `Framed-IP-Address = ` + radiusVIP, `NAS-Port-Type = Virtual`, `Acct-Session-Id = "`} {
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
