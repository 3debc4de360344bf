package interop

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// MOBIKE (RFC 4555) against strongSwan 5.9.8, both roles: the initiator's address goes away
// during a ping flood through the tunnel; it moves the IKE SA and the Child SA to its other
// address with UPDATE_SA_ADDRESSES, and the flood goes on. The packets lost across the move are
// counted and bounded.

// pingFlood pings dst from ns every 10 ms, count times, and returns sent and received.
func pingFlood(t *testing.T, ns *testnet.NS, src, dst string, count int) (int, int) {
	out, _ := ns.Output("ping", "-4", "-n", "-q", "-I", src, "-i", "0.01", "-c", strconv.Itoa(count), "-W", "1", dst)
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping output:\n%s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return sent, recv
}

// mobikeSwan is charon's connection, moving (client) or following (gateway).
func mobikeSwan(local, remote string) string {
	return fmt.Sprintf(`connections {
  gt {
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = yes
    local {
      auth = psk
      id = sun.example.org
    }
    remote {
      auth = psk
      id = moon.example.org
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
secrets {
  ike-gt {
    secret = "%s"
  }
}
`, local, remote, rightNet4, leftNet4, testPSK)
}

func mobikeGoipsec(remote, start string) string {
	return fmt.Sprintf(`connections {
  gt {
    remote_addrs = %s
    proposals = aes256gcm16-prfsha256-x25519
    mobike = yes
    local {
      auth = psk
      id = moon.example.org
    }
    remote {
      auth = psk
      id = sun.example.org
    }
    children {
      net {
        local_ts = %s
        remote_ts = %s
        esp_proposals = aes256gcm16
%s      }
    }
  }
}
secrets {
  ike-gt {
    secret = "%s"
  }
}
daemon {
}
`, remote, leftNet4, rightNet4, start, testPSK)
}

const floodCount = 500 // 5 s at one ping every 10 ms

// The flood runs for 5 s; the address goes away after 1.5 s. Bounded loss: what the old
// address's packets and the update's round trip cost, and the route change's settling.
const maxMoveLoss = 60

func TestMOBIKEStrongSwanClientMoves(t *testing.T) {
	_, left, right, _, rightIf := setupOuter(t, leftOuter+"/24", rightOuter+"/24")
	right.Sysctl(t, "net.ipv4.conf.all.promote_secondaries", "1")
	right.AddAddr(rightIf, "192.0.2.3/24")
	g := startGoipsec(t, left, mobikeGoipsec("%any", ""))
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: mobikeSwan("%any", leftOuter)})
	c.Initiate(t, "net")
	c.WaitEstablished(t, "gt", 30*time.Second)
	done := make(chan [2]int, 1)
	go func() {
		s, r := pingFlood(t, right, rightInner4, leftInner4, floodCount)
		done <- [2]int{s, r}
	}()
	time.Sleep(1500 * time.Millisecond)
	right.Run(t, "ip", "addr", "del", rightOuter+"/24", "dev", rightIf)
	res := <-done
	g.waitLog(t, "peer moved the IKE SA (MOBIKE)", 5*time.Second)
	lines := g.logLines("peer moved the IKE SA (MOBIKE)")
	if !strings.Contains(lines[0], "to=192.0.2.3:4500") {
		t.Fatalf("goipsec followed to the wrong address: %s", lines[0])
	}
	lost := res[0] - res[1]
	t.Logf("MOBIKE move of the strongSwan client: %d of %d pings lost", lost, res[0])
	if lost > maxMoveLoss {
		t.Fatalf("%d of %d pings lost across the move", lost, res[0])
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping back after the move:\n%s", out)
	}
}

func TestMOBIKEGoipsecClientMoves(t *testing.T) {
	_, left, right, leftIf, _ := setupOuter(t, leftOuter+"/24", rightOuter+"/24")
	left.Sysctl(t, "net.ipv4.conf.all.promote_secondaries", "1")
	left.AddAddr(leftIf, "192.0.2.11/24")
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: mobikeSwan(rightOuter, "%any")})
	g := startGoipsec(t, left, mobikeGoipsec(rightOuter, "        start_action = start\n"))
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	done := make(chan [2]int, 1)
	go func() {
		s, r := pingFlood(t, left, leftInner4, rightInner4, floodCount)
		done <- [2]int{s, r}
	}()
	time.Sleep(1500 * time.Millisecond)
	left.Run(t, "ip", "addr", "del", leftOuter+"/24", "dev", leftIf)
	res := <-done
	c.WaitLog(t, regexp.MustCompile(`remote endpoint changed from 192\.0\.2\.1\[4500\] to 192\.0\.2\.11\[4500\]`), 5*time.Second)
	lost := res[0] - res[1]
	t.Logf("MOBIKE move of the goipsec client: %d of %d pings lost", lost, res[0])
	if lost > maxMoveLoss {
		t.Fatalf("%d of %d pings lost across the move", lost, res[0])
	}
}
