package interop

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/internal/testnet"
)

// L2TP/IPsec between two goipsec daemons: an IKEv1 transport-mode connection protects UDP 1701,
// goipsec's LNS on one side, its LAC on the other; PPP authenticates, IPCP assigns an address
// from the pool, and traffic from the client's PPP address reaches the server's and back.

const (
	lnsOuter = "192.0.2.1"
	lacOuter = "192.0.2.2"
	lnsPPP   = "10.3.0.254"
	lacPPP   = "10.3.0.1"
)

// Proposals: strong ones, or what Windows' built-in client offers first (weak: SHA-1, MODP1024).
const (
	strongIKE, strongESP = "aes256-sha256-modp2048", "aes256gcm16"
	weakIKE, weakESP     = "aes256-sha1-modp1024", "aes256-sha1"
)

func lnsConf(auth, ike, esp string) string {
	weak := "no"
	if ike == weakIKE {
		weak = "yes"
	}
	return fmt.Sprintf(`connections {
  l2tp {
    version = 1
    weak_algorithms = %s
    local_addrs = %s
    remote_addrs = %%any
    proposals = %s
    local { auth = psk
            id = %s }
    remote { auth = psk }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = %s }
    }
  }
}
pools {
  clients { addrs = 10.3.0.0/24
            dns = 10.3.0.53 }
}
l2tp {
  lns { pool = clients
        auth = %s }
}
secrets {
  ike-any { secret = "%s" }
  eap-bob { id = bob
            secret = "bobs password" }
}
daemon {
  log {
    level = debug
  }
}
`, weak, lnsOuter, ike, lnsOuter, esp, auth, testPSK)
}

func lacConf(ike, esp string) string {
	weak := "no"
	if ike == weakIKE {
		weak = "yes"
	}
	return fmt.Sprintf(`connections {
  office {
    version = 1
    weak_algorithms = %s
    local_addrs = %s
    remote_addrs = %s
    proposals = %s
    local { auth = psk
            id = %s }
    remote { auth = psk
             id = %s }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = %s
             start_action = trap }
    }
  }
}
l2tp {
  lac-office { remote = %s
               user = bob }
}
secrets {
  ike-any { secret = "%s" }
  eap-bob { id = bob
            secret = "bobs password" }
}
daemon {
  log {
    level = debug
  }
}
`, weak, lacOuter, lnsOuter, ike, lacOuter, lnsOuter, esp, lnsOuter, testPSK)
}

func TestGoipsecL2TPIPsec(t *testing.T) {
	for _, tc := range []struct{ auth, ike, esp string }{
		{"mschapv2", strongIKE, strongESP},
		{"chap", strongIKE, strongESP},
		{"pap", weakIKE, weakESP}, // with the algorithms Windows' client offers
	} {
		auth := tc.auth
		t.Run(auth, func(t *testing.T) {
			testnet.Require(t, "ping")
			n := testnet.New(t)
			server, client := n.Namespace("lns"), n.Namespace("lac")
			srvIf, _ := n.Link(server, client, []string{lnsOuter + "/24"}, []string{lacOuter + "/24"})
			// On the wire: L2TP must never appear in the clear, only ESP.
			wire := server.Capture(t, srvIf, "udp port 1701 or esp")
			s := startGoipsec(t, server, lnsConf(auth, tc.ike, tc.esp))
			start := time.Now()
			c := startGoipsec(t, client, lacConf(tc.ike, tc.esp))
			c.waitLog(t, "L2TP session up", 30*time.Second)
			s.waitLog(t, "L2TP session up", 5*time.Second)
			setup := time.Since(start)
			line := s.logLines("L2TP session up")[0]
			if logAttr(line, "user") != "bob" || logAttr(line, "ppp_peer") != lacPPP || logAttr(line, "auth") != auth {
				t.Fatalf("server's session: %s", line)
			}
			// The L2TP datagrams went through IKEv1 transport-mode ESP, not in the clear.
			if len(c.logLines("Child SA established", "mode=transport", "version=1", "proposal="+tc.esp)) == 0 {
				t.Fatal("no IKEv1 transport-mode Child SA with the configured proposal on the client")
			}
			if tc.ike == weakIKE && len(s.logLines("uses weak algorithms")) == 0 {
				t.Fatal("weak algorithms in use but not logged as weak")
			}
			if out, err := client.Output("ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", lacPPP, lnsPPP); err != nil {
				t.Fatalf("ping %s from %s through PPP failed:\n%s", lnsPPP, lacPPP, out)
			}
			// A packet larger than the PPP MTU: fragmented inside (the route to the server's PPP
			// address leaves room for UDP, L2TP and PPP), never the L2TP datagram before ESP.
			if out, err := client.Output("ping", "-4", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "1372", "-I", lacPPP, lnsPPP); err != nil {
				t.Logf("client status:\n%s\nserver status:\n%s", statusJSON(t, c), statusJSON(t, s))
				t.Fatalf("ping with 1400-byte packets (fragmented L2TP) failed:\n%s", out)
			}
			testnet.TCPTransfer(t, server, client, lnsPPP+":7021", 256<<10)
			pcap := wire.Stop()
			// -t: no timestamps, which can contain ".1701" themselves (16:34:02.170177).
			dump, err := exec.Command("tcpdump", "-nn", "-t", "-r", pcap).CombinedOutput()
			if err != nil {
				t.Fatalf("tcpdump -r: %v\n%s", err, dump)
			}
			inClear, err := exec.Command("tcpdump", "-nn", "-t", "-r", pcap, "udp port 1701").Output()
			if err != nil {
				t.Fatalf("tcpdump -r %s 'udp port 1701': %v", pcap, err)
			}
			if len(inClear) != 0 || !strings.Contains(string(dump), "ESP(spi=") {
				t.Fatalf("L2TP in the clear on the wire, or no ESP (%d bytes of tcpdump output):\n%s", len(dump), dump)
			}
			st := statusJSON(t, s)
			if !strings.Contains(st, `"l2tp_sessions"`) || !strings.Contains(st, `"user": "bob"`) {
				t.Fatalf("status lacks the L2TP session:\n%s", st)
			}
			t.Logf("L2TP/IPsec (IKEv1 + L2TP + PPP %s) up in %v", auth, setup.Round(time.Millisecond))
		})
	}
}

// TestGoipsecL2TPRADIUS: goipsec's LNS checks its PPP users with FreeRADIUS (l2tp.lns.users =
// radius) for each PPP authentication, after a first RADIUS server that does not answer (the
// check fails over while the service keeps running); the secrets section holds a wrong password
// for the user, so only RADIUS can have let it in. A user RADIUS refuses does not come up.
func TestGoipsecL2TPRADIUS(t *testing.T) {
	for _, auth := range []string{"mschapv2", "chap", "pap"} {
		t.Run(auth, func(t *testing.T) {
			testnet.Require(t, "ping")
			n := testnet.New(t)
			server, client := n.Namespace("lns"), n.Namespace("lac")
			n.Link(server, client, []string{lnsOuter + "/24"}, []string{lacOuter + "/24"})
			fr := startFreeRADIUSWith(t, server, "127.0.0.1", "bob Cleartext-Password := \"bobs password\"\n")
			s := startGoipsec(t, server, lnsRadiusConf(auth))
			c := startGoipsec(t, client, lacConf(strongIKE, strongESP))
			c.waitLog(t, "L2TP session up", 30*time.Second)
			s.waitLog(t, "L2TP session up", 5*time.Second)
			checked := s.logLines("PPP user checked by RADIUS", "user=bob", "ok=true")
			if len(checked) == 0 || logAttr(s.logLines("L2TP session up")[0], "auth") != auth {
				t.Fatalf("session up without a RADIUS check by %s:\n%s", auth, testnet.Tail(s.p.Output(), 40))
			}
			if !strings.Contains(fr.p.Output(), "Login OK: [bob") {
				t.Fatalf("FreeRADIUS did not log bob's login:\n%s", testnet.Tail(fr.p.Output(), 40))
			}
			if out, err := client.Output("ping", "-4", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-I", lacPPP, lnsPPP); err != nil {
				t.Fatalf("ping through PPP failed:\n%s", out)
			}
			t.Logf("RADIUS check (with failover): %s", logAttr(checked[0], "took"))
		})
	}
	t.Run("refused", func(t *testing.T) {
		testnet.Require(t, "ping")
		n := testnet.New(t)
		server, client := n.Namespace("lns"), n.Namespace("lac")
		n.Link(server, client, []string{lnsOuter + "/24"}, []string{lacOuter + "/24"})
		startFreeRADIUSWith(t, server, "127.0.0.1", "bob Cleartext-Password := \"another password\"\n")
		s := startGoipsec(t, server, lnsRadiusConf("mschapv2"))
		startGoipsec(t, client, lacConf(strongIKE, strongESP))
		s.waitLog(t, "PPP user checked by RADIUS", 30*time.Second)
		if len(s.logLines("PPP user checked by RADIUS", "ok=false")) == 0 {
			t.Fatalf("RADIUS refused bob, the check says otherwise:\n%s", testnet.Tail(s.p.Output(), 40))
		}
		time.Sleep(time.Second)
		if len(s.logLines("L2TP session up")) != 0 {
			t.Fatal("a session came up with a password RADIUS refused")
		}
	})
}

// lnsRadiusConf is lnsConf with users = radius, a dead first RADIUS server and FreeRADIUS on
// 127.0.0.1, and a wrong password for bob in the secrets.
func lnsRadiusConf(auth string) string {
	conf := lnsConf(auth, strongIKE, strongESP)
	conf = strings.Replace(conf, "        auth = "+auth+" }", "        auth = "+auth+"\n        users = radius }", 1)
	conf = strings.Replace(conf, `secret = "bobs password"`, `secret = "not bobs password"`, 1)
	return conf + radiusSection("")
}

// statusJSON runs goipsec status --json against a daemon's control socket.
func statusJSON(t *testing.T, g *goipsecProc) string {
	t.Helper()
	out, err := exec.Command(goipsecBinary(t), "status", "--json", "--socket", g.vici).CombinedOutput()
	if err != nil {
		t.Fatalf("goipsec status --json: %v\n%s", err, out)
	}
	return string(out)
}

// TestMeasureL2TPAgainstIKEv2 measures, in one run and on the same kind of topology, the set-up
// time and TCP throughput of L2TP/IPsec through goipsec's LNS (IKEv1 Main Mode + Quick Mode in
// transport mode, L2TP, PPP with MS-CHAPv2, IPCP) and of a plain IKEv2 tunnel between two goipsec
// daemons. It logs the figures and their ratios; it fails only when traffic does not flow.
func TestMeasureL2TPAgainstIKEv2(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const dur = 3 * time.Second
	n := testnet.New(t)

	// L2TP/IPsec.
	server, client := n.Namespace("lns"), n.Namespace("lac")
	n.Link(server, client, []string{lnsOuter + "/24"}, []string{lacOuter + "/24"})
	startGoipsec(t, server, lnsConf("mschapv2", strongIKE, strongESP))
	start := time.Now()
	c := startGoipsec(t, client, lacConf(strongIKE, strongESP))
	c.waitLog(t, "L2TP session up", 30*time.Second)
	l2tpSetup := time.Since(start)
	l2tpTput, err := netlab.Throughput(context.Background(), &netlab.NS{Name: client.Name()}, netip.MustParseAddr(lacPPP),
		&netlab.NS{Name: server.Name()}, netip.MustParseAddrPort(lnsPPP+":7031"), dur)
	if err != nil || l2tpTput.Bytes == 0 {
		t.Fatalf("L2TP/IPsec throughput: %v", err)
	}

	// IKEv2, tunnel mode, between the same kind of namespaces.
	left, right := n.Namespace("v2l"), n.Namespace("v2r")
	n.Link(left, right, []string{leftOuter + "/24"}, []string{rightOuter + "/24"})
	left.AddAddr("lo", leftInner4+"/24")
	right.AddAddr("lo", rightInner4+"/24")
	resp := connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter, ikeProposal: "aes256gcm16-prfsha256-x25519",
		espProposal: strongESP, localTS: rightNet4, remoteTS: leftNet4}
	init := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter, ikeProposal: "aes256gcm16-prfsha256-x25519",
		espProposal: strongESP, localTS: leftNet4, remoteTS: rightNet4, startAction: "start"}
	startGoipsec(t, right, resp.String())
	start = time.Now()
	g := startGoipsec(t, left, init.String())
	g.waitLog(t, "Child SA established", 30*time.Second)
	v2Setup := time.Since(start)
	v2Tput, err := netlab.Throughput(context.Background(), &netlab.NS{Name: left.Name()}, netip.MustParseAddr(leftInner4),
		&netlab.NS{Name: right.Name()}, netip.MustParseAddrPort(rightInner4+":7032"), dur)
	if err != nil || v2Tput.Bytes == 0 {
		t.Fatalf("IKEv2 throughput: %v", err)
	}
	t.Logf("measurement (same run):\n"+
		"  %-42s set-up %8v  TCP %6.3f Gbit/s\n"+
		"  %-42s set-up %8v  TCP %6.3f Gbit/s\n"+
		"  ratio L2TP/IKEv2: set-up %.2fx, throughput %.2f",
		"L2TP/IPsec (IKEv1 MM+QM, L2TP, PPP, IPCP)", l2tpSetup.Round(time.Millisecond), l2tpTput.Gbps(),
		"IKEv2 tunnel (aes256gcm16, x25519)", v2Setup.Round(time.Millisecond), v2Tput.Gbps(),
		l2tpSetup.Seconds()/v2Setup.Seconds(), l2tpTput.Gbps()/v2Tput.Gbps())
}
