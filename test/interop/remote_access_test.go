package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Remote access: a road warrior gets a virtual IP from its gateway's pool in a configuration
// payload (RFC 7296 §2.19), and the tunnel carries traffic from that address. Both roles against
// strongSwan 5.9.8 (whose kernel-libipsec puts a received virtual IP on its TUN device).

const (
	poolNet   = "10.3.0.0/24"
	firstVIP  = "10.3.0.1"
	poolDNS   = "10.1.0.53"
	swanVIPRe = `10\.3\.0\.1/32`
)

// raSwanClient is charon as road warrior: it asks for any IPv4 address.
func raSwanClient(localAuth, extraLocal string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    vips = 0.0.0.0
    local {
      auth = %s
      id = carol@example.org
%s    }
    remote {
      auth = psk
      id = %s
    }
    children {
      net {
        remote_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
secrets {
  ike-rw {
    id = carol@example.org
    secret = "%s"
  }
}
`, rightOuter, leftOuter, localAuth, extraLocal, leftOuter, leftNet4, testPSK)
}

// raGoipsecGateway is goipsec as gateway with a pool; remoteAuth is how clients authenticate.
func raGoipsecGateway(remoteAuth, extra string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    pools = rw
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = %s
    }
    children {
      net {
        local_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
pools {
  rw {
    addrs = %s
    dns = %s
  }
}
secrets {
  ike-rw {
    secret = "%s"
  }
%s}
`, leftOuter, leftOuter, remoteAuth, leftNet4, poolNet, poolDNS, testPSK, extra)
}

// raDaemon is the daemon section of a test: its own state directory and resolv.conf.
func raDaemon(t *testing.T) (string, string) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644)
	return fmt.Sprintf("daemon {\n  state_dir = %s\n  resolv_conf = %s\n}\n", dir, resolv), resolv
}

func TestRemoteAccessStrongSwanClientPool(t *testing.T) {
	_, left, right := setup(t)
	daemon, _ := raDaemon(t)
	// The gateway's child runs an updown script that records every call.
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "updown.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nenv | grep '^PLUTO_' | sort | tr '\\n' ' ' >> "+calls+"\necho >> "+calls+"\n"), 0o755)
	gw := strings.Replace(raGoipsecGateway("psk", ""), "        esp_proposals = aes256gcm16\n", "        esp_proposals = aes256gcm16\n        updown = "+script+"\n        hostaccess = yes\n", 1)
	g := startGoipsec(t, left, gw+daemon)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanClient("psk", "")})
	c.Initiate(t, "net")
	c.WaitEstablished(t, "rw", 30*time.Second)
	if sas := c.ListSAs(t); !regexp.MustCompile(`local\s+` + swanVIPRe).MatchString(sas) {
		t.Fatalf("charon's Child SA does not use the virtual IP %s:\n%s", firstVIP, sas)
	}
	// charon has no resolve plugin loaded: it reads the attribute and cannot install it.
	c.WaitLog(t, regexp.MustCompile(`processing INTERNAL_IP4_DNS attribute`), 5*time.Second)
	g.waitLog(t, "virtual IP leased", 5*time.Second)
	if ok, out := right.Ping(t, leftInner4, 3); !ok {
		t.Fatalf("ping from the virtual IP through the tunnel:\n%s", out)
	}
	if ok, out := left.Ping(t, firstVIP, 3); !ok {
		t.Fatalf("ping to the virtual IP through the tunnel:\n%s", out)
	}
	// swanctl lists the pool and the lease, loads a second pool and unloads it.
	if out := swanctlAt(t, g.vici, "--list-pools", "--leases"); !regexp.MustCompile(`rw\s+10\.3\.0\.1\s+1 / 0 / 254`).MatchString(out) ||
		!regexp.MustCompile(`10\.3\.0\.1\s+online\s+'carol@example.org'`).MatchString(out) {
		t.Fatalf("swanctl --list-pools --leases:\n%s", out)
	}
	poolFile := filepath.Join(dir, "pools.conf")
	os.WriteFile(poolFile, []byte("pools {\n  extra {\n    addrs = 10.9.0.0/30\n  }\n}\n"), 0o600)
	swanctlAt(t, g.vici, "--load-pools", "--file", poolFile)
	if out := swanctlAt(t, g.vici, "--list-pools"); !strings.Contains(out, "extra") || !strings.Contains(out, "10.9.0.1") {
		t.Fatalf("loaded pool not listed:\n%s", out)
	}
	// A Child SA rekey is invisible to the script; the end of the tunnel is a down-client call.
	c.Swanctl(t, "--rekey", "--child", "net")
	g.waitLogCount(t, 2, 10*time.Second, "Child SA established")
	g.waitLogCount(t, 1, 10*time.Second, "Child SA deleted")
	c.Swanctl(t, "--terminate", "--ike", "rw")
	deadline := time.Now().Add(10 * time.Second)
	var lines []string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(calls)
		if lines = strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(lines) != 2 {
		t.Fatalf("updown calls, want up then down:\n%s", strings.Join(lines, "\n"))
	}
	for i, verb := range []string{"up-client", "down-client"} {
		for _, want := range []string{"PLUTO_VERB=" + verb + " ", "PLUTO_CONNECTION=net ", "PLUTO_ME=" + leftOuter + " ", "PLUTO_PEER=" + rightOuter + " ",
			"PLUTO_MY_CLIENT=" + leftNet4 + " ", "PLUTO_PEER_CLIENT=" + firstVIP + "/32 ", "PLUTO_PEER_SOURCEIP=" + firstVIP + " ",
			"PLUTO_PEER_ID=carol@example.org ", "PLUTO_MY_ID=" + leftOuter + " ", "PLUTO_INTERFACE=goipsec0 ", "PLUTO_HOST_ACCESS=1 ",
			"PLUTO_UDP_ENC=4500 ", "PLUTO_UNIQUEID=", "PLUTO_REQID="} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("call %d lacks %q:\n%s", i+1, want, lines[i])
			}
		}
	}
}

// raSwanGateway is charon as gateway with a pool and, for clients, psk or EAP.
func raSwanGateway(remoteAuth, extraSecrets string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    pools = rw
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = %s
    }
    children {
      net {
        local_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
pools {
  rw {
    addrs = %s
    dns = %s
  }
}
secrets {
  ike-rw {
    secret = "%s"
  }
%s}
`, rightOuter, rightOuter, remoteAuth, rightNet4, poolNet, poolDNS, testPSK, extraSecrets)
}

// raGoipsecClient is goipsec as road warrior asking for an IPv4 address.
func raGoipsecClient(localAuth, localExtra, extra string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    vips = 0.0.0.0
    local {
      auth = %s
      id = carol@example.org
%s    }
    remote {
      auth = psk
      id = %s
    }
    children {
      net {
        remote_ts = %s
        esp_proposals = aes256gcm16
        start_action = start
      }
    }
  }
}
secrets {
  ike-rw {
    secret = "%s"
  }
%s}
`, leftOuter, rightOuter, localAuth, localExtra, rightOuter, rightNet4, testPSK, extra)
}

func TestRemoteAccessGoipsecClientPool(t *testing.T) {
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanGateway("psk", "")})
	daemon, resolv := raDaemon(t)
	g := startGoipsec(t, left, raGoipsecClient("psk", "", "")+daemon)
	g.waitLog(t, "Child SA established", 30*time.Second)
	g.waitLog(t, "virtual IPs installed", time.Second)
	b, _ := os.ReadFile(resolv)
	if !strings.HasPrefix(string(b), "# written by goipsec") || !strings.Contains(string(b), "nameserver "+poolDNS) {
		t.Fatalf("resolv.conf with the gateway's DNS server:\n%s", b)
	}
	if out, _ := left.Output("ip", "-4", "addr", "show", "dev", "goipsec0"); !strings.Contains(out, firstVIP+"/32") {
		t.Fatalf("virtual IP not on the TUN device:\n%s", out)
	}
	// The tunnel carries traffic from the virtual IP: the route's source is it.
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}
	if ok, out := right.Ping(t, firstVIP, 3); !ok {
		t.Fatalf("ping to the virtual IP:\n%s", out)
	}
	if sas := c.ListSAs(t); !regexp.MustCompile(`remote\s+` + swanVIPRe).MatchString(sas) {
		t.Fatalf("charon's Child SA does not use the virtual IP:\n%s", sas)
	}
	// Closing the tunnel gives back resolv.conf and takes the address away.
	c.Swanctl(t, "--terminate", "--ike", "rw")
	g.waitLog(t, "DNS servers restored", 10*time.Second)
	if b, _ := os.ReadFile(resolv); string(b) != "nameserver 192.0.2.53\n" {
		t.Fatalf("resolv.conf not restored:\n%s", b)
	}
	if out, _ := left.Output("ip", "-4", "addr", "show", "dev", "goipsec0"); strings.Contains(out, firstVIP) {
		t.Fatalf("virtual IP still on the TUN device:\n%s", out)
	}
}

const eapPassword = "carol-eap-password"

// eapUserSecret is the user's password in swanctl.conf's secrets syntax (both daemons read it).
func eapUserSecret(user string) string {
	return fmt.Sprintf("  eap-%s {\n    id = %s\n    secret = \"%s\"\n  }\n", user, user, eapPassword)
}

var eapPlugins = []string{"eap-identity", "eap-md5", "eap-mschapv2", "eap-dynamic"}

// strongSwan road warrior with EAP against a goipsec gateway that authenticates with its PSK and
// leases the virtual IP under the EAP identity.
func TestRemoteAccessStrongSwanClientEAP(t *testing.T) {
	for _, tc := range []struct{ method, gatewayAuth string }{
		{"eap-mschapv2", "eap-mschapv2"},
		{"eap-md5", "eap-md5"},
		{"eap-mschapv2", "eap-dynamic"},
	} {
		t.Run(tc.method+"/"+tc.gatewayAuth, func(t *testing.T) {
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			gw := strings.Replace(raGoipsecGateway(tc.gatewayAuth+"\n      eap_id = %any", eapUserSecret("carol")), "  ike-rw {", "  ike-rw {", 1)
			g := startGoipsec(t, left, gw+daemon)
			swan := raSwanClient(tc.method, "      eap_id = carol\n")
			swan = strings.Replace(swan, "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
			c.Initiate(t, "net")
			c.WaitEstablished(t, "rw", 30*time.Second)
			if sas := c.ListSAs(t); !regexp.MustCompile(`local\s+` + swanVIPRe).MatchString(sas) {
				t.Fatalf("charon's Child SA does not use the virtual IP:\n%s", sas)
			}
			method := strings.ToUpper(strings.TrimPrefix(tc.method, "eap-"))
			c.WaitLog(t, regexp.MustCompile(`EAP method EAP_`+method+` succeeded`), 5*time.Second)
			g.waitLog(t, "id=carol addrs=[10.3.0.1]", 5*time.Second)
			if ok, out := right.Ping(t, leftInner4, 3); !ok {
				t.Fatalf("ping from the virtual IP through the tunnel:\n%s", out)
			}
			if ok, out := left.Ping(t, firstVIP, 3); !ok {
				t.Fatalf("ping to the virtual IP:\n%s", out)
			}
		})
	}
}

// goipsec road warrior with EAP-MSCHAPv2 against a strongSwan gateway with a pool.
func TestRemoteAccessGoipsecClientEAP(t *testing.T) {
	_, left, right := setup(t)
	swan := raSwanGateway("eap-mschapv2\n      eap_id = %any", eapUserSecret("carol"))
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
	daemon, _ := raDaemon(t)
	g := startGoipsec(t, left, raGoipsecClient("eap-mschapv2", "      eap_id = carol\n", eapUserSecret("carol"))+daemon)
	g.waitLog(t, "Child SA established", 30*time.Second)
	c.WaitLog(t, regexp.MustCompile(`EAP method EAP_MSCHAPV2 succeeded, MSK established`), 5*time.Second)
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}
	if sas := c.ListSAs(t); !regexp.MustCompile(`remote\s+` + swanVIPRe).MatchString(sas) {
		t.Fatalf("charon's Child SA does not use the virtual IP:\n%s", sas)
	}
}

// When the gateway wants EAP and the client offers its PSK, strongSwan answers only
// AUTHENTICATION_FAILED; the failure says what we did and names EAP as the likely want. (Where the
// protocol tells — an EAP request to a PSK client, a client without AUTH at a PSK gateway, a PSK
// client at an EAP gateway — the engine tests assert the side is named exactly.)
func TestRemoteAccessEAPMismatchMessage(t *testing.T) {
	_, left, right := setup(t)
	swan := raSwanGateway("eap-mschapv2\n      eap_id = %any", eapUserSecret("carol"))
	strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
	daemon, _ := raDaemon(t)
	g := startGoipsec(t, left, raGoipsecClient("psk", "", "")+daemon)
	g.waitLog(t, "negotiation failed", 30*time.Second)
	lines := g.logLines("negotiation failed")
	if len(lines) == 0 || !strings.Contains(lines[0], "authenticating with a PSK") || !strings.Contains(lines[0], "whether the peer wants EAP from us") {
		t.Fatalf("failure does not name the side that wants EAP:\n%s", strings.Join(lines, "\n"))
	}
}

// raCertGateway is goipsec as gateway authenticating with its certificate (moon); rounds are the
// remote sections.
func raCertGateway(rounds string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    pools = rw
    local {
      auth = pubkey
      certs = moon.pem
      id = %s
    }
%s    children {
      net {
        local_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
pools {
  rw {
    addrs = %s
  }
}
secrets {
%s}
`, leftOuter, moonID, rounds, leftNet4, poolNet, eapUserSecret("carol"))
}

// raCertSwanClient is charon (sun) as road warrior authenticating with rounds.
func raCertSwanClient(rounds string) string {
	return fmt.Sprintf(`connections {
  rw {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    vips = 0.0.0.0
%s    remote {
      auth = pubkey
      id = %s
    }
    children {
      net {
        remote_ts = %s
        esp_proposals = aes256gcm16
      }
    }
  }
}
secrets {
%s}
`, rightOuter, leftOuter, rounds, moonID, leftNet4, eapUserSecret("carol"))
}

// EAP-TLS: the strongSwan client proves itself with its certificate inside EAP (the goipsec
// gateway checks the chain for the EAP identity), and checks the gateway's certificate against
// aaa_id; certificate then EAP-MSCHAPv2 in two rounds (RFC 4739).
func TestRemoteAccessCertificatesAndEAP(t *testing.T) {
	for _, tc := range []struct{ name, gw, swan, wantLog string }{
		{"eap-tls",
			"    remote {\n      auth = eap-tls\n      eap_id = %any\n    }\n",
			"    local {\n      auth = eap-tls\n      certs = sun.pem\n      id = " + sunID + "\n      aaa_id = " + moonID + "\n    }\n",
			"EAP method EAP_TLS succeeded, MSK established"},
		{"pubkey-then-eap-mschapv2",
			"    remote-1 {\n      auth = pubkey\n      id = " + sunID + "\n    }\n    remote-2 {\n      auth = eap-mschapv2\n      eap_id = %any\n    }\n",
			"    local-1 {\n      auth = pubkey\n      certs = sun.pem\n      id = " + sunID + "\n    }\n    local-2 {\n      auth = eap-mschapv2\n      eap_id = carol\n    }\n",
			"EAP method EAP_MSCHAPV2 succeeded, MSK established"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newCertSetup(t, "ecdsa", "ecdsa 256")
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			g := startGoipsecIn(t, left, cs.gdir, raCertGateway(tc.gw)+daemon)
			c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raCertSwanClient(tc.swan), Files: cs.swanFiles,
				Plugins: append([]string{"eap-tls"}, eapPlugins...)})
			c.Initiate(t, "net")
			c.WaitEstablished(t, "rw", 30*time.Second)
			c.WaitLog(t, regexp.MustCompile(regexp.QuoteMeta(tc.wantLog)), 5*time.Second)
			g.waitLog(t, "virtual IP leased", 5*time.Second)
			if ok, out := right.Ping(t, leftInner4, 3); !ok {
				t.Fatalf("ping from the virtual IP:\n%s", out)
			}
			if ok, out := left.Ping(t, firstVIP, 3); !ok {
				t.Fatalf("ping to the virtual IP:\n%s", out)
			}
		})
	}
}

// reauth_time: the goipsec road warrior re-authenticates with a new IKE SA every 4 s, keeping its
// virtual IP; pings every 50 ms meanwhile lose at most a few.
func TestRemoteAccessGoipsecClientReauth(t *testing.T) {
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanGateway("psk", "")})
	daemon, _ := raDaemon(t)
	conf := strings.Replace(raGoipsecClient("psk", "", ""), "    vips = 0.0.0.0\n", "    vips = 0.0.0.0\n    reauth_time = 4s\n", 1)
	g := startGoipsec(t, left, conf+daemon)
	g.waitLog(t, "Child SA established", 30*time.Second)
	out, _ := left.Output("ping", "-4", "-n", "-q", "-i", "0.05", "-c", "200", "-W", "1", rightInner4)
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping:\n%s", out)
	}
	g.waitLogCount(t, 2, time.Second, "re-authenticated by a new IKE SA: deleting this one")
	// A third re-authentication may be under way: wait for one IKE SA.
	var sas string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if sas = c.ListSAs(t); strings.Count(sas, "ESTABLISHED") == 1 {
			break
		}
	}
	if strings.Count(sas, "ESTABLISHED") != 1 || !regexp.MustCompile(`remote\s+`+swanVIPRe).MatchString(sas) {
		t.Fatalf("charon after re-authentication:\n%s", sas)
	}
	t.Logf("re-authentication twice during 200 pings: %s of %s answered", m[2], m[1])
	if sent, _ := strconv.Atoi(m[1]); sent-atoi(m[2]) > 2 {
		t.Fatalf("%s of %s pings lost across re-authentications", m[1], m[2])
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
