package interop

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// IKEv1 against strongSwan 5.9.8 (kernel-libipsec, so tunnel mode and ESP in UDP): Main and
// Aggressive Mode with PSK, both roles, then traffic both ways. IKEv1 negotiates one selector
// pair per Quick Mode, so these tunnels carry IPv4 only.

type v1Case struct {
	name       string
	aggressive bool
	ike, esp   string
	wantIKE    string // charon's --list-sas names
	wantESP    string
	// weak: the legacy algorithms Windows' L2TP/IPsec client offers, which goipsec accepts only
	// with weak_algorithms = yes.
	weak bool
}

var v1Cases = []v1Case{
	{"main", false, "aes256-sha256-modp2048", "aes256-sha256", "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", "AES_CBC-256/HMAC_SHA2_256_128", false},
	{"main-pfs-gcm", false, "aes128-sha384-ecp256", "aes256gcm16-ecp256", "AES_CBC-128/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_256", "AES_GCM_16-256/ECP_256", false},
	{"aggressive", true, "aes256-sha256-modp2048", "aes128-sha256", "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", "AES_CBC-128/HMAC_SHA2_256_128", false},
	{"main-3des", false, "3des-sha1-modp1024", "3des-sha1", "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024", "3DES_CBC/HMAC_SHA1_96", true},
}

func v1Swan(c v1Case, extra, childExtra string) swanConn {
	x := "    version = 1\n" + extra
	if c.aggressive {
		x += "    aggressive = yes\n"
	}
	return swanConn{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter, ike: c.ike, extra: x,
		children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: c.esp, extra: childExtra}}}
}

func v1Goipsec(c v1Case, initiate bool, extra, childExtra string) connConf {
	x := "    version = 1\n" + extra
	if c.weak {
		x += "    weak_algorithms = yes\n"
	}
	if c.aggressive {
		x += "    aggressive = yes\n"
	}
	cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter, ikeProposal: c.ike, espProposal: c.esp,
		localTS: leftNet4, remoteTS: rightNet4, extra: x, childExtra: childExtra}
	if initiate {
		cc.startAction = "start"
	}
	return cc
}

func checkTraffic4(t *testing.T, left, right *testnet.NS) {
	t.Helper()
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping %s from goipsec's side failed:\n%s", rightInner4, out)
	}
	if ok, out := right.Ping(t, leftInner4, 3); !ok {
		t.Fatalf("ping %s from strongSwan's side failed:\n%s", leftInner4, out)
	}
	testnet.TCPTransfer(t, left, right, leftInner4+":7011", 256<<10)
	testnet.TCPTransfer(t, right, left, rightInner4+":7012", 256<<10)
}

var reIKEv1 = regexp.MustCompile(`ESTABLISHED, IKEv1`)

func TestStrongSwanIKEv1(t *testing.T) {
	for _, tc := range v1Cases {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				_, left, right := setup(t)
				c := startCharonV1(t, right, v1Swan(tc, "", ""))
				g := startGoipsec(t, left, v1Goipsec(tc, goipsecInitiates, "", "").String())
				if !goipsecInitiates {
					c.Initiate(t, "net")
				}
				c.WaitEstablished(t, "gt", 30*time.Second)
				g.waitLog(t, "Child SA established", 15*time.Second)
				sas := c.ListSAs(t)
				for _, want := range []string{"INSTALLED", tc.wantIKE, tc.wantESP} {
					if !strings.Contains(sas, want) {
						t.Fatalf("swanctl --list-sas lacks %q:\n%s", want, sas)
					}
				}
				if !reIKEv1.MatchString(sas) {
					t.Fatalf("not an IKEv1 SA:\n%s", sas)
				}
				checkTraffic4(t, left, right)
			})
		}
	}
}

// TestStrongSwanIKEv1Rekey: Quick Mode rekeys from both sides keep traffic flowing, and a phase 1
// rekey hands the Child SAs to the new ISAKMP SA.
func TestStrongSwanIKEv1Rekey(t *testing.T) {
	tc := v1Cases[0]
	_, left, right := setup(t)
	c := startCharonV1(t, right, v1Swan(tc, "", "        rekey_time = 12s\n"))
	g := startGoipsec(t, left, v1Goipsec(tc, true, "    rekey_time = 25s\n", "        rekey_time = 8s\n").String())
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 15*time.Second)
	stop := make(chan struct{})
	done := pingWhile(t, left, rightInner4, stop)
	// Two Child SA rekeys and a phase 1 rekey.
	g.waitLogCount(t, 3, 40*time.Second, "Child SA established")
	g.waitLogCount(t, 2, 40*time.Second, "IKE SA established", "version=1")
	time.Sleep(2 * time.Second)
	close(stop)
	r := <-done
	if r[0] < 10 || r[1] < r[0]-2 {
		t.Fatalf("%d of %d pings answered across the rekeys", r[1], r[0])
	}
	checkTraffic4(t, left, right)
	sas := c.ListSAs(t)
	if strings.Count(sas, "ESTABLISHED, IKEv1") != 1 {
		t.Fatalf("want exactly one ISAKMP SA after the phase 1 rekey:\n%s", sas)
	}
}

// TestStrongSwanIKEv1DPD: when charon dies without a word, goipsec's R-U-THERE goes unanswered
// and the SA is declared dead; charon's own DPD is answered while both live.
func TestStrongSwanIKEv1DPD(t *testing.T) {
	tc := v1Cases[0]
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: v1Swan(tc, "    dpd_delay = 2s\n", "").String()})
	g := startGoipsec(t, left, v1Goipsec(tc, true, "    dpd_delay = 2s\n    dpd_timeout = 6s\n", "").String())
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 15*time.Second)
	time.Sleep(5 * time.Second) // several idle DPD rounds both ways
	c.WaitEstablished(t, "gt", time.Second)
	killInNS(t, right, "charon")
	g.waitLog(t, "why=dead_peer", 30*time.Second)
}

// TestStrongSwanIKEv1NAT: goipsec behind an nftables masquerade; both float to port 4500 and
// ESP goes in UDP.
func TestStrongSwanIKEv1NAT(t *testing.T) {
	tc := v1Cases[0]
	left, right := natSetup(t, true, goipsecInner, peerInner)
	sw := v1Swan(tc, "", "")
	sw.local, sw.localID, sw.remote, sw.remoteID = publicHost, publicHost, "%any", privateHost
	c := startCharonV1(t, right, sw)
	cc := v1Goipsec(tc, true, "", "")
	cc.local, cc.localID, cc.remote, cc.remoteID = privateHost, privateHost, publicHost, publicHost
	g := startGoipsec(t, left, cc.String())
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 15*time.Second)
	sas := c.ListSAs(t)
	if !strings.Contains(sas, natOutside+"[4") {
		t.Fatalf("charon does not see the NAT's address %s with a remapped port:\n%s", natOutside, sas)
	}
	checkTraffic4(t, left, right)
}

// startCharonV1 starts charon; with GOIPSEC_DEBUG_CHARON set its whole log is printed.
func startCharonV1(t *testing.T, ns *testnet.NS, conn swanConn) *strongswan.Charon {
	t.Helper()
	// charon answers Aggressive Mode with a PSK only with this setting (the offline attack on
	// its hash, strongswan.conf(5)); goipsec answers it and logs a warning.
	return strongswan.Start(t, ns, strongswan.Config{SwanctlConf: conn.String(), Debug: os.Getenv("GOIPSEC_DEBUG_CHARON") != "",
		CharonConf: "\ti_dont_care_about_security_and_use_aggressive_mode_psk = yes"})
}

// TestStrongSwanIKEv1Certificates: Main Mode authenticated with RSA signatures and X.509
// certificates (each side's CA trusted by the other), both roles.
func TestStrongSwanIKEv1Certificates(t *testing.T) {
	v1 := func(conf string) string {
		return strings.Replace(conf, "    proposals = aes256gcm16-prfsha256-x25519\n", "    version = 1\n    proposals = aes256-sha256-modp2048\n", 1)
	}
	for _, goipsecInitiates := range []bool{true, false} {
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(role, func(t *testing.T) {
			cs := newCertSetup(t, "rsa", "rsa 3072")
			_, left, right := setup(t)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: v1(certSwanConf("pubkey", "pubkey", moonID)), Files: cs.swanFiles})
			g := startGoipsecIn(t, left, cs.gdir, v1(certGoipsecConf("pubkey", "pubkey", sunID, "", goipsecInitiates)))
			if !goipsecInitiates {
				c.Initiate(t, "net")
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLog(t, "Child SA established", 10*time.Second)
			sas := c.ListSAs(t)
			if !reIKEv1.MatchString(sas) {
				t.Fatalf("not an IKEv1 SA:\n%s", sas)
			}
			if !strings.Contains(c.Log(), "authentication of '"+moonID+"' with RSA_EMSA_PKCS1_NULL successful") {
				t.Fatalf("charon did not authenticate goipsec's RSA signature:\n%s", testnet.Tail(c.Log(), 40))
			}
			checkTraffic4(t, left, right)
		})
	}
}

// TestStrongSwanIKEv1XAuthModeConfig: charon as a Cisco-style remote-access client (XAuth with a
// user name and password after Main Mode, a virtual IP by Mode Config) against goipsec's server;
// traffic from the virtual IP reaches goipsec's inner network. A wrong password is refused.
func TestStrongSwanIKEv1XAuthModeConfig(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"right-password", "bobs password", true}, {"wrong-password", "guess", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, left, right := setup(t)
			goipsecConf := fmt.Sprintf(`connections {
  gt {
    version = 1
    local_addrs = %s
    remote_addrs = %%any
    proposals = aes256-sha256-modp2048
    pools = vpn
    local { auth = psk
            id = %s }
    remote { auth = psk }
    remote-xauth { auth = xauth }
    children {
      net { local_ts = %s
            remote_ts = dynamic
            esp_proposals = aes256-sha256 }
    }
  }
}
pools {
  vpn { addrs = 10.5.0.0/24
        dns = 10.5.0.53 }
}
secrets {
  ike-gt { secret = "%s" }
  xauth-bob { id = bob
              secret = "bobs password" }
}
daemon {
  log {
    level = debug
  }
}
`, leftOuter, leftOuter, leftNet4, testPSK)
			swanConf := fmt.Sprintf(`connections {
  gt {
    version = 1
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256-sha256-modp2048
    vips = 0.0.0.0
    local { auth = psk
            id = %s }
    local-xauth { auth = xauth
                  xauth_id = bob }
    remote { auth = psk
             id = %s }
    children {
      net { local_ts = dynamic
            remote_ts = %s
            esp_proposals = aes256-sha256 }
    }
  }
}
secrets {
  ike-gt { secret = "%s" }
  xauth-bob { id = bob
              secret = "%s" }
}
`, rightOuter, leftOuter, rightOuter, leftOuter, leftNet4, testPSK, tc.password)
			g := startGoipsec(t, left, goipsecConf)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swanConf, Plugins: []string{"xauth-generic"},
				Debug: os.Getenv("GOIPSEC_DEBUG_CHARON") != ""})
			out, err := c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "20")
			if !tc.ok {
				if err == nil {
					t.Fatalf("charon got in with a wrong password:\n%s", out)
				}
				g.waitLog(t, `XAuth: user \"bob\"`, 10*time.Second)
				return
			}
			if err != nil {
				t.Fatalf("swanctl --initiate: %v\n%s", err, out)
			}
			g.waitLog(t, "Child SA established", 10*time.Second)
			sas := c.ListSAs(t)
			if !strings.Contains(sas, "10.5.0.1") {
				t.Fatalf("charon has no virtual IP from the pool:\n%s", sas)
			}
			if out, err := right.Output("ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", leftInner4); err != nil {
				t.Fatalf("ping %s from the virtual IP:\n%s", leftInner4, out)
			}
			testnet.TCPTransfer(t, left, right, leftInner4+":7051", 128<<10)
		})
	}
}
