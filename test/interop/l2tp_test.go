package interop

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

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

func lnsConf(auth string) string {
	return fmt.Sprintf(`connections {
  l2tp {
    version = 1
    local_addrs = %s
    remote_addrs = %%any
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = %s }
    remote { auth = psk }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = aes256gcm16 }
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
`, lnsOuter, lnsOuter, auth, testPSK)
}

func lacConf() string {
	return fmt.Sprintf(`connections {
  office {
    version = 1
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = %s }
    remote { auth = psk
             id = %s }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = aes256gcm16
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
`, lacOuter, lnsOuter, lacOuter, lnsOuter, lnsOuter, testPSK)
}

func TestGoipsecL2TPIPsec(t *testing.T) {
	for _, auth := range []string{"mschapv2", "chap", "pap"} {
		t.Run(auth, func(t *testing.T) {
			testnet.Require(t, "ping")
			n := testnet.New(t)
			server, client := n.Namespace("lns"), n.Namespace("lac")
			srvIf, _ := n.Link(server, client, []string{lnsOuter + "/24"}, []string{lacOuter + "/24"})
			// On the wire: L2TP must never appear in the clear, only ESP.
			wire := server.Capture(t, srvIf, "udp port 1701 or esp")
			start := time.Now()
			s := startGoipsec(t, server, lnsConf(auth))
			c := startGoipsec(t, client, lacConf())
			c.waitLog(t, "L2TP session up", 30*time.Second)
			s.waitLog(t, "L2TP session up", 5*time.Second)
			setup := time.Since(start)
			line := s.logLines("L2TP session up")[0]
			if logAttr(line, "user") != "bob" || logAttr(line, "ppp_peer") != lacPPP || logAttr(line, "auth") != auth {
				t.Fatalf("server's session: %s", line)
			}
			// The L2TP datagrams went through IKEv1 transport-mode ESP, not in the clear.
			if len(c.logLines("Child SA established", "mode=transport", "version=1")) == 0 {
				t.Fatal("no IKEv1 transport-mode Child SA on the client")
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
			dump, err := exec.Command("tcpdump", "-nn", "-r", pcap).CombinedOutput()
			if err != nil {
				t.Fatalf("tcpdump -r: %v\n%s", err, dump)
			}
			if strings.Contains(string(dump), ".1701") || !strings.Contains(string(dump), "ESP(spi=") {
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

// statusJSON runs goipsec status --json against a daemon's control socket.
func statusJSON(t *testing.T, g *goipsecProc) string {
	t.Helper()
	out, err := exec.Command(goipsecBinary(t), "status", "--json", "--socket", g.vici).CombinedOutput()
	if err != nil {
		t.Fatalf("goipsec status --json: %v\n%s", err, out)
	}
	return string(out)
}
